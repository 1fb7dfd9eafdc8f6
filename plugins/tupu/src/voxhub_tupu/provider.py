"""The ``tupu`` provider: Tupu (图普科技) live speech-stream moderation v3.

Lifecycle:

* ``submit`` / ``submit_batch``: one request carries one or many
  ``speechStream[]`` items; each item becomes its own voxhub job, keyed by the
  ``requestId`` Tupu returns (``handle.vendor_ids["requestId"]``);
* results arrive **only by callback** (``Capability.CALLBACK_ONLY``):
  :meth:`TupuProvider.parse_callback` verifies each one with Tupu's public key
  and returns its payload as the event data; :func:`voxhub_tupu.report.build_report`
  turns a job's stored payloads into a ModerationReport;
* ``status`` asks the stream search endpoint (its answer's shape is not
  documented, so it is read tolerantly; see the README);
* ``close`` calls the close endpoint for the job's ``requestId``.

This module is the lifecycle only. Talking to Tupu (signing every request body,
verifying every answer before it is read, mapping failures to voxhub errors) is
:class:`voxhub_tupu.api.TupuApi`; there is no setting that skips verification.
What the provider declares (options, credentials) is :mod:`voxhub_tupu.options`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urlsplit

import attrs
from cryptography.hazmat.primitives.asymmetric import rsa
from voxhub.plugin import (
    CallbackEvent,
    CallbackRejected,
    CallbackRequest,
    ConfigurationError,
    InvalidInputError,
    JobHandle,
    JobRequest,
    JobState,
    JobStatus,
    ModerationReport,
    NotFoundError,
    PluginError,
    Provider,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    RemoteUrl,
    StreamUrl,
    Submitted,
    redact_text,
)

from .api import CLOSE_PATH, SEARCH_PATH, SUBMIT_PATH, TupuApi, TupuAuth
from .codes import TASK_NAMES, as_int
from .errors import describe_code
from .options import INFO, callback_rules, task_ids
from .report import build_report, end_code, is_end_of_task, request_ids
from .signing import (
    KeyConfigurationError,
    VerificationError,
    load_private_key,
    load_public_key,
    verify_response,
)

__all__ = ["CALLBACK_RESPONSE", "TupuAuth", "TupuProvider"]

#: Body voxhub answers Tupu's callbacks with (Tupu documents none; any 2xx is
#: taken as delivered, as for its file-API callbacks).
CALLBACK_RESPONSE: Final = b'{"code":0,"message":"success"}'

# The ProviderContext default for callback_events: "no store behind this context".
_UNWIRED_CALLBACK_EVENTS: Final = attrs.fields(ProviderContext).callback_events.default
#: Seed 003: RTMP, HLS, HTTP-FLV and RTSP (HLS and HTTP-FLV are http(s) URLs).
_STREAM_SCHEMES: Final = ("rtmp", "rtsp", "http", "https")

# Search answers are undocumented: these vendor words are mapped, others mean running.
_ENDED_WORDS: Final = frozenset({"end", "ended", "closed", "close", "finished", "finish",
                                 "stopped", "stop", "complete", "completed", "done"})
_QUEUED_WORDS: Final = frozenset({"pending", "waiting", "queued", "queue", "init", "created"})
_FAILED_WORDS: Final = frozenset({"failed", "fail", "error", "abnormal"})


def _setting_path(settings: ProviderSettings, name: str) -> str:
    value = settings.require(name)
    return str(Path(value).expanduser())


class TupuProvider(Provider):
    """Tupu speech-stream moderation. See the module docstring and the README."""

    info = INFO

    def __init__(self) -> None:
        self._public_keys: dict[tuple[str, int], rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    # --- credentials --------------------------------------------------------------

    def authenticate(self, ctx: ProviderContext) -> TupuAuth:
        """Load the private key and Tupu's public key; a missing one is a ConfigurationError."""
        settings = ctx.settings
        secret_id = settings.require("secret_id")
        private_path = _setting_path(settings, "private_key")
        public_path = _setting_path(settings, "public_key")
        try:
            private_key = load_private_key(
                private_path, settings.secret("private_key_passphrase") or None
            )
        except KeyConfigurationError as exc:
            raise ConfigurationError(
                f"private_key of profile {settings.profile!r}: {exc}",
                provider=ctx.provider, operation="authenticate",
            ) from None
        public_key = self._load_public(ctx, public_path)
        ctx.log.debug("tupu.keys_loaded", private_key=private_path, public_key=public_path,
                      key_bits=private_key.key_size)
        return TupuAuth(secret_id, private_key, public_key, private_path, public_path)

    def _load_public(self, ctx: ProviderContext, path: str) -> rsa.RSAPublicKey:
        try:
            mtime = Path(path).stat().st_mtime_ns
        except OSError:
            mtime = -1
        with self._lock:
            cached = self._public_keys.get((path, mtime))
        if cached is not None:
            return cached
        try:
            key = load_public_key(path)
        except KeyConfigurationError as exc:
            raise ConfigurationError(
                f"public_key of profile {ctx.settings.profile!r} (Tupu's public key): {exc}",
                provider=ctx.provider, operation="authenticate",
            ) from None
        with self._lock:
            self._public_keys[(path, mtime)] = key
        return key

    # --- validation ---------------------------------------------------------------

    def validate(self, ctx: ProviderContext, request: JobRequest) -> JobRequest:
        """Check the stream URL and options; task names become task ids."""
        _stream_url(request, ctx.provider)
        options = dict(request.options)
        if "tasks" in options:
            options["tasks"] = task_ids(options["tasks"], ctx.provider)
        if "callback_rules" in options:
            callback_rules(options, ctx.provider)
        return attrs.evolve(request, options=options)

    # --- submit -------------------------------------------------------------------

    def submit(
        self, ctx: ProviderContext, request: JobRequest, handle: JobHandle
    ) -> JobHandle | Submitted:
        """Start moderating one stream; the handle gets Tupu's ``requestId``."""
        return self.submit_batch(ctx, [(request, handle)])[0]

    def submit_batch(
        self, ctx: ProviderContext, items: Sequence[tuple[JobRequest, JobHandle]]
    ) -> list[JobHandle | Submitted]:
        """Start several streams in one request (one ``speechStream[]`` item per job).

        One creating request: when its outcome is unknown (answer lost, unverifiable,
        or without a requestId per stream) the error is ``in_doubt`` and the core
        decides what happens next.
        """
        if not items:
            return []
        task_lists = {tuple(r.options.get("tasks") or ()) for r, _ in items}
        if len(task_lists) > 1:
            raise InvalidInputError(
                "streams submitted in one batch must ask for the same tasks "
                "(Tupu takes one tasks list per request)",
                field="tasks", provider=ctx.provider, operation="submit",
            )
        streams = [_stream_item(ctx, request, handle) for request, handle in items]
        tasks = list(task_lists.pop())
        body: dict[str, Any] = {"speechStream": streams}
        if tasks:
            body["tasks"] = tasks
        payload = TupuApi(ctx).post(SUBMIT_PATH, body, operation="submit", idempotent=False)
        results = payload.get("result")
        if not isinstance(results, list) or len(results) != len(items):
            count = len(results) if isinstance(results, list) else "no"
            raise ProviderError(
                f"Tupu accepted the submit but returned {count} result(s) for "
                f"{len(items)} stream(s); the streams may be running (close them in the console)",
                provider=ctx.provider, operation="submit", in_doubt=True,
            )
        handles: list[JobHandle | Submitted] = []
        for (_request, handle), stream, result in zip(items, streams, results, strict=True):
            rid = result.get("requestId") if isinstance(result, Mapping) else None
            if not isinstance(rid, str | int) or isinstance(rid, bool) or not str(rid):
                raise ProviderError(
                    "Tupu's submit answer has a result without requestId; the streams may be "
                    "running (close them in the console)",
                    provider=ctx.provider, operation="submit", in_doubt=True,
                )
            state = {"callback_rules": stream["callbackRules"]}
            if tasks:
                state["tasks"] = tasks
            handles.append(handle.with_vendor(ids={"requestId": str(rid)}, state=state))
            # The stream URL is not logged: RTMP paths often carry a stream key.
            ctx.log.info("tupu.stream_submitted", job_id=handle.job_id, request_id=str(rid),
                         callback_rules=stream["callbackRules"])
        return handles

    # --- status, fetch, close -----------------------------------------------------

    def status(self, ctx: ProviderContext, handle: JobHandle) -> JobStatus:
        """Ask the search endpoint; undocumented answers read tolerantly (default RUNNING).

        The orchestrator keeps the stored status up to date from callbacks; this
        call is what ``voxhub status --refresh`` and recovery use.
        """
        rid = _request_id(handle, ctx.provider, "status")
        try:
            payload = TupuApi(ctx).post(SEARCH_PATH, {"requestId": rid}, operation="status",
                                        idempotent=True)
        except NotFoundError as exc:
            if exc.code != "unsigned":
                raise
            # An unsigned 404 is a missing endpoint, not an unknown stream (that is code 16).
            return JobStatus(JobState.RUNNING, detail="Tupu's search endpoint is unavailable; "
                             "the state follows callbacks")
        return _status_from_search(payload, rid)

    def fetch(self, ctx: ProviderContext, handle: JobHandle) -> ModerationReport:
        """Build the report from the job's stored callback payloads (``ctx.callback_events``).

        Tupu cannot be asked for results: they exist only in the callbacks the
        orchestrator stored. A context without access to them (the unwired
        default) is a PluginError rather than a silently empty report.
        """
        if ctx.callback_events is _UNWIRED_CALLBACK_EVENTS:
            raise PluginError(
                "Tupu results arrive only by callback: fetch needs the job's stored callback "
                "payloads (ProviderContext.callback_events, wired by the voxhub orchestrator); "
                "outside it, call voxhub_tupu.build_report(job_id, payloads)",
                provider=ctx.provider, operation="fetch",
            )
        payloads = ctx.callback_events(handle.job_id)
        return build_report(handle.job_id, payloads,
                            request_id=handle.vendor_ids.get("requestId"))

    def close(self, ctx: ProviderContext, handle: JobHandle) -> None:
        """Close the job's stream; closing an already closed or unknown stream is not an error."""
        rid = handle.vendor_ids.get("requestId")
        if not rid:
            return  # never reached Tupu
        body = {"speechStream": [{"requestId": rid}]}
        try:
            payload = TupuApi(ctx).post(CLOSE_PATH, body, operation="close", idempotent=True)
        except NotFoundError:
            ctx.log.info("tupu.stream_already_gone", job_id=handle.job_id, request_id=rid)
            return
        statuses = [r.get("status") for r in payload.get("result") or ()
                    if isinstance(r, Mapping) and str(r.get("requestId", rid)) == rid]
        ctx.log.info("tupu.stream_closed", job_id=handle.job_id, request_id=rid,
                     vendor_status=statuses[0] if statuses else None)

    # --- callbacks ----------------------------------------------------------------

    def parse_callback(self, ctx: ProviderContext, request: CallbackRequest) -> CallbackEvent:
        """Verify a callback with Tupu's public key, then read its stream id and state.

        Anything that does not verify (unsigned, forged, tampered, malformed) is
        refused with ``CallbackRejected(http_status=401)`` before it is read.
        """
        auth = cast(TupuAuth, ctx.auth)  # the core authenticates every context it hands out
        try:
            payload = verify_response(request.body, auth.public_key)
        except VerificationError as exc:
            ctx.log.warning("tupu.callback_refused", reason=str(exc), bytes=len(request.body))
            raise CallbackRejected(
                f"callback refused: {exc}", http_status=401,
                provider=ctx.provider, operation="callback",
            ) from None
        ids = request_ids(payload)
        if not ids:
            raise CallbackRejected(
                "verified callback names no requestId", http_status=400,
                provider=ctx.provider, operation="callback",
            )
        if len(ids) > 1:
            ctx.log.warning("tupu.callback_many_streams", request_ids=ids)
        status = _callback_status(payload)
        ctx.log.debug("tupu.callback", request_id=ids[0], state=status.state.value,
                      tasks=[TASK_NAMES.get(k, k) for k, v in payload.items()
                             if isinstance(v, Mapping)])
        return CallbackEvent(
            vendor_id=ids[0],
            status=status,
            data=payload,
            # The verified payload, canonicalized: envelope fields and whitespace around the
            # signed ``json`` do not make a new delivery.
            delivery_id="tupu:" + json.dumps(payload, sort_keys=True, separators=(",", ":"),
                                             ensure_ascii=False),
            response_status=200,
            response_body=CALLBACK_RESPONSE,
            response_content_type="application/json",
        )


def _stream_item(ctx: ProviderContext, request: JobRequest, handle: JobHandle) -> dict[str, Any]:
    """One ``speechStream[]`` entry; validate already checked the URL and the options."""
    callback = request.callback_url or ctx.callback_url_for(handle.job_id)
    if not callback:
        raise InvalidInputError(
            "Tupu delivers stream results only by callback, and no callback URL is known "
            f"for job {handle.job_id}: run the voxhub callback receiver and set "
            "`[voxhub] callback_url` (VOXHUB_CALLBACK_URL) to its public URL, "
            "or pass a callback_url with the request",
            field="callback_url", provider=ctx.provider, operation="submit",
        )
    if urlsplit(callback).scheme not in ("http", "https"):
        raise InvalidInputError(
            "the callback URL must be http or https", field="callback_url",
            provider=ctx.provider, operation="submit",
        )
    options = request.options
    rules = callback_rules(options, ctx.provider)
    item: dict[str, Any] = {
        "url": cast(StreamUrl | RemoteUrl, request.media).url,
        "callback": callback,
        "callbackRules": int(rules),
        "returnPreSpeech": bool(options.get("return_pre_speech", False)),
    }
    for option, field in (("room_id", "roomId"), ("user_id", "userId"),
                          ("forum_id", "forumId")):
        value = options.get(option)
        if value not in (None, ""):
            item[field] = str(value)
    return item


def _stream_url(request: JobRequest, provider: str) -> str:
    media = request.media
    if isinstance(media, RemoteUrl) and media.auth_headers:
        raise InvalidInputError(
            "Tupu pulls streams itself and cannot send auth headers; put credentials in the "
            "stream URL if the origin supports it", field="media", provider=provider,
            operation="validate",
        )
    if not isinstance(media, StreamUrl | RemoteUrl):
        raise InvalidInputError(
            "Tupu moderates live streams: give a stream URL (rtmp://, rtsp://, HLS or "
            "HTTP-FLV), not a local file or channel", field="media", provider=provider,
            operation="validate",
        )
    scheme = urlsplit(media.url).scheme.lower()
    if scheme not in _STREAM_SCHEMES:
        raise InvalidInputError(
            f"unsupported stream URL scheme {scheme or '(none)'!r} "
            f"(Tupu pulls {', '.join(_STREAM_SCHEMES)})",
            field="media", provider=provider, operation="validate",
        )
    return media.url


def _request_id(handle: JobHandle, provider: str, operation: str) -> str:
    rid = handle.vendor_ids.get("requestId")
    if not rid:
        raise NotFoundError(f"job {handle.job_id} has no Tupu requestId (never submitted)",
                            provider=provider, operation=operation)
    return rid


def _callback_status(payload: Mapping[str, Any]) -> JobStatus:
    """RUNNING for result callbacks; SUCCEEDED/FAILED for the end-of-task callback."""
    if not is_end_of_task(payload):
        return JobStatus(JobState.RUNNING, vendor_state="running")
    code = end_code(payload)
    vendor_state = str(payload.get("status"))
    if code == 0:
        return JobStatus(JobState.SUCCEEDED, vendor_state=vendor_state, raw=dict(payload))
    message = payload.get("message")
    detail = describe_code(code)
    if message not in (None, ""):
        detail = f"{detail} ({redact_text(str(message))[:300]})"
    return JobStatus(JobState.FAILED, vendor_state=vendor_state, reason=f"code {code}",
                     detail=detail, raw=dict(payload))


def _status_from_search(payload: Mapping[str, Any], rid: str) -> JobStatus:
    """Read a search answer: ``result`` as a list or an object, or the payload itself."""
    result = payload.get("result")
    record: Mapping[str, Any] = payload
    if isinstance(result, list):
        matches = [r for r in result if isinstance(r, Mapping)]
        record = next((r for r in matches if str(r.get("requestId")) == rid),
                      matches[0] if matches else payload)
    elif isinstance(result, Mapping):
        record = result
    word = record.get("status", record.get("state"))
    if word in (None, ""):
        return JobStatus(JobState.RUNNING, detail="search answer states no status",
                         raw=dict(payload))
    text = str(word).strip().lower()
    code = as_int(record.get("code", 0))
    if text in _ENDED_WORDS:
        if code not in (None, 0):
            return JobStatus(JobState.FAILED, vendor_state=str(word), reason=f"code {code}",
                             detail=describe_code(code), raw=dict(payload))
        return JobStatus(JobState.SUCCEEDED, vendor_state=str(word), raw=dict(payload))
    if text in _FAILED_WORDS:
        return JobStatus(JobState.FAILED, vendor_state=str(word),
                         reason=f"code {code}" if code else None, raw=dict(payload))
    if text in _QUEUED_WORDS:
        return JobStatus(JobState.QUEUED, vendor_state=str(word), raw=dict(payload))
    return JobStatus(JobState.RUNNING, vendor_state=str(word), raw=dict(payload))

