"""Receiving provider callbacks (webhooks) and turning them into job updates.

Two layers:

* :class:`CallbackHandler` — framework-agnostic: given the provider, the job id
  and token from the URL, headers and body, it checks, records and answers.
  Embed it in any web framework.
* :func:`wsgi_app` — a WSGI application mounting it at
  ``/callbacks/<provider>/<job_id>/<token>``, for Flask, Django or any WSGI server;
  ``voxhub callbacks serve`` runs it standalone.

Each job submitted with callbacks gets its own URL with an unguessable token
(see :mod:`voxhub.callback_tokens`: only its SHA-256 is stored), because some
vendors (Rev.ai) sign nothing.
A callback is refused — with a 4xx, logged without secrets, the job untouched —
when the body is too large, the provider or job is unknown, the token is wrong,
the body is not JSON (415, before it is parsed), the provider's own verification
fails, or the body cannot be read.

Unsigned callbacks are *hints*: they are recorded as ``callback-hint`` events and
the waiting orchestrator confirms the state with one status call. Signed ones
(the provider verified them) update the job's status directly. A replayed
callback — the same delivery for the same job, by meaning: the provider's
``CallbackEvent.delivery_id`` (Rev.ai: job id and status; Tupu: the verified
payload, canonicalized), else the body's canonical JSON — is acknowledged and
recorded only once: the store checks and inserts in one transaction (see
:meth:`voxhub.store.Store.add_event`), so this holds across any number of receiver
processes on one store, e.g. behind a load balancer (docs/scale.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import structlog

from .errors import CallbackRejected, ConfigurationError, VoxhubError
from .provider import CallbackEvent, CallbackRequest

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .orchestrator import Orchestrator

__all__ = ["CallbackHandler", "CallbackResponse", "delivery_digest", "is_json_type", "wsgi_app"]

log = structlog.get_logger("voxhub.callbacks")

#: Largest callback body accepted, in bytes (vendors send small JSON documents).
MAX_BODY = 1024 * 1024


def is_json_type(content_type: str) -> bool:
    """Whether a Content-Type header names JSON (``application/json`` or ``*/*+json``)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def delivery_digest(event: CallbackEvent, body: bytes) -> str:
    """What identifies a delivery for replay detection, by meaning rather than bytes.

    The provider's ``delivery_id`` when it set one; else the body's canonical JSON
    (sorted keys, no whitespace), so a re-indented copy is the same delivery; else
    (not JSON, which the receiver refuses anyway) the raw bytes.
    """
    if event.delivery_id is not None:
        text = "id:" + event.delivery_id
    else:
        try:
            text = "json:" + json.dumps(
                json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
        except (ValueError, RecursionError):
            return hashlib.sha256(body).hexdigest()
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@attrs.frozen
class CallbackResponse:
    """The HTTP answer to give the caller."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


def _answer(status: int, message: str) -> CallbackResponse:
    return CallbackResponse(
        status, json.dumps({"status": status, "message": message}).encode(), "application/json"
    )


class CallbackHandler:
    """Checks, records and answers provider callbacks for an orchestrator's store."""

    def __init__(self, orchestrator: Orchestrator, *, max_body: int = MAX_BODY) -> None:
        self.orchestrator = orchestrator
        self.max_body = max_body

    def handle(
        self,
        provider: str,
        job_id: str,
        token: str,
        headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str] | None = None,
    ) -> CallbackResponse:
        """Process one callback request; never raises for bad input, answers 4xx instead."""
        bound = log.bind(provider=provider, job_id=job_id)
        if len(body) > self.max_body:
            bound.warning("callback.rejected", reason="too large", bytes=len(body))
            return _answer(413, f"callback body over {self.max_body} bytes")
        store = self.orchestrator.store
        if provider not in self.orchestrator.plugins.providers:
            bound.warning("callback.rejected", reason="unknown provider")
            return _answer(404, "unknown provider")
        record = store.find(job_id)
        if record is None or record.provider != provider:
            bound.warning("callback.rejected", reason="unknown job")
            return _answer(404, "unknown job")
        if not self.orchestrator.callback_tokens.matches(job_id, token):
            bound.warning("callback.rejected", reason="bad token")
            return _answer(401, "invalid callback token")
        lowered = {k.lower(): v for k, v in headers.items()}
        if not is_json_type(lowered.get("content-type", "")):
            # Vendors post JSON: anything else is refused before a byte of it is parsed.
            bound.warning("callback.rejected", reason="not JSON",
                          content_type=lowered.get("content-type", "")[:80])
            return _answer(415, "callback body must be application/json")
        request = CallbackRequest(
            headers=lowered,
            body=body,
            query=dict(query or {}),
            token=token,
        )
        try:
            ctx = self.orchestrator.context(record.provider, record.profile)
            # Typed loosely on purpose: a broken plugin's answer is refused below, not trusted.
            event: object = self.orchestrator.plugins.calls(record.provider).parse_callback(
                ctx, request
            )
        except CallbackRejected as exc:
            bound.warning("callback.rejected", reason=exc.message, status=exc.http_status)
            return _answer(exc.http_status, exc.message)
        except ConfigurationError as exc:
            bound.error("callback.misconfigured", error=str(exc))
            return _answer(503, "receiver misconfigured for this provider")
        except VoxhubError as exc:
            bound.warning("callback.rejected", reason=str(exc))
            return _answer(400, "unreadable callback")
        if not isinstance(event, CallbackEvent):
            bound.error("callback.plugin_error", result=type(event).__name__)
            return _answer(500, "provider plugin returned no event")
        return self._record(record.job_id, record.handle.vendor_ids, event, body, bound)

    def _record(
        self,
        job_id: str,
        vendor_ids: Mapping[str, str],
        event: CallbackEvent,
        body: bytes,
        bound: Any,
    ) -> CallbackResponse:
        store = self.orchestrator.store
        if (
            event.vendor_id is not None
            and vendor_ids
            and event.vendor_id not in vendor_ids.values()
        ):
            bound.warning("callback.rejected", reason="callback names another vendor job")
            return _answer(409, "callback is for another job")
        digest = delivery_digest(event, body)
        data = dict(event.data)
        if event.status is not None:
            data["_status"] = {
                "state": event.status.state.value,
                "vendor_state": event.status.vendor_state,
                "reason": event.status.reason,
                "detail": event.status.detail,
            }
        # Unsigned: the waiter confirms with one status call before trusting it.
        hint = event.status is not None and event.confirm
        # The store decides whether the delivery is new, in the insert's transaction: two
        # receivers (processes, machines) given the same delivery at once store it once.
        stored = store.add_event(job_id, "callback-hint" if hint else "callback", data, once=digest)
        if not stored:
            bound.info("callback.replayed")
            return self._reply(event)
        if not hint and event.status is not None:
            self.orchestrator.record_status(job_id, event.status)
        bound.info(
            "callback.recorded",
            hint=event.confirm,
            state=event.status.state.value if event.status else None,
        )
        return self._reply(event)

    @staticmethod
    def _reply(event: CallbackEvent) -> CallbackResponse:
        return CallbackResponse(
            event.response_status, event.response_body, event.response_content_type
        )


def wsgi_app(handler: CallbackHandler, prefix: str = "/callbacks") -> Any:
    """A WSGI application serving ``{prefix}/<provider>/<job_id>/<token>`` (POST only)."""
    from werkzeug.exceptions import HTTPException
    from werkzeug.routing import Map, Rule
    from werkzeug.wrappers import Request, Response

    url_map = Map(
        [
            Rule(f"{prefix}/<provider>/<job_id>/<token>", endpoint="callback", methods=["POST"]),
            Rule("/healthz", endpoint="health", methods=["GET"]),
        ]
    )

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        # Read at most one byte more than allowed: enough to refuse, never a huge buffer.
        request.max_content_length = None
        try:
            endpoint, args = url_map.bind_to_environ(environ).match()
        except HTTPException as exc:
            return exc(environ, start_response)
        if endpoint == "health":
            return Response("ok")(environ, start_response)
        length = request.content_length
        if length is not None and length > handler.max_body:
            answer = _answer(413, f"callback body over {handler.max_body} bytes")
        else:
            body = request.stream.read(handler.max_body + 1)
            answer = handler.handle(
                args["provider"],
                args["job_id"],
                args["token"],
                dict(request.headers),
                body,
                dict(request.args),
            )
        return Response(answer.body, status=answer.status, content_type=answer.content_type)(
            environ, start_response
        )

    return app
