"""One Agora REST exchange: host choice and fallback, auth header, request ids, errors, retries.

Used by both providers. What it adds on top of ``ctx.http`` (pooling, timeouts,
transport retries, 429 handling and the per-profile rate limit stay in the core):

* **hosts** — ``https://api.agora.io`` first, then ``https://api.sd-rtn.com`` when the
  first cannot be reached (Agora's dual-domain guidance). A host that worked is preferred
  for later calls of the same profile. An explicit ``base_url`` disables the fallback.
* **X-Request-ID** — every request carries a fresh one; the answer's id (or ours when the
  answer has none) is logged and kept on errors as ``request_id``.
* **Agora's back-off** — integer code 20 is retried after 3 then 6 s, codes 501/502/504
  and HTTP 500/502/503/504 after 1, 3 and 6 s (spec 1.9). The core's own status retries
  are switched off for these calls so the two schedules never multiply.
"""

from __future__ import annotations

import json as jsonlib
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from voxhub.errors import ProviderError, ProviderUnavailableError, TransportError, VoxhubError
from voxhub.provider import ProviderContext
from voxhub.transport import Response

from .auth import AgoraAuth
from .errors import error_from_answer, retry_delays

__all__ = ["DEFAULT_HOSTS", "AgoraApi", "Answer", "HostPreference"]

#: Agora's REST hosts in the order tried (spec 1.1: same paths on both).
DEFAULT_HOSTS: tuple[str, ...] = ("https://api.agora.io", "https://api.sd-rtn.com")


@attrs.frozen
class Answer:
    """A successful answer: HTTP status, parsed JSON body (``None`` when empty), request id."""

    status: int
    body: Any
    request_id: str | None


class HostPreference:
    """Remembers, per profile, the host that answered last (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._preferred: dict[str, str] = {}

    def order(self, profile: str, hosts: Sequence[str]) -> list[str]:
        """``hosts`` with the remembered one first."""
        with self._lock:
            first = self._preferred.get(profile)
        if first in hosts:
            return [first, *(h for h in hosts if h != first)]  # type: ignore[list-item]
        return list(hosts)

    def remember(self, profile: str, host: str) -> None:
        """Prefer ``host`` for ``profile`` from now on."""
        with self._lock:
            self._preferred[profile] = host


class AgoraApi:
    """Requests of one provider call (see the module docstring)."""

    def __init__(
        self,
        ctx: ProviderContext,
        auth: AgoraAuth,
        *,
        hosts: Sequence[str],
        preference: HostPreference,
        product: str,
    ) -> None:
        self.ctx = ctx
        self.auth = auth
        self.product = product
        self.preference = preference
        explicit = (ctx.settings.base_url or "").rstrip("/")
        # An explicit base_url (a sandbox, a proxy) is the only host: falling back from it to
        # the public API would be a surprise.
        self.hosts: tuple[str, ...] = (explicit,) if explicit else tuple(hosts)

    def call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        channel: str = "",
        retry: bool = True,
        idempotent: bool = True,
    ) -> Answer:
        """Send one request (retrying as Agora documents) and return the parsed answer.

        ``channel`` goes into a REST-auth token built in token mode. ``idempotent``
        tells the core whether a request that may have reached Agora can be repeated
        (every Agora call is safe to repeat except a sequenced update, see ``update``).

        Raises:
            VoxhubError: the mapped error of the last answer (see :mod:`.errors`).
        """
        attempt = 0
        while True:
            response, request_id = self._exchange(
                method, path, operation=operation, json=json, params=params, channel=channel,
                idempotent=idempotent,
            )
            if 200 <= response.status < 300:
                return Answer(response.status, self._body(response, operation), request_id)
            error = self.error(response, operation, request_id)
            delays = retry_delays(error) if retry else ()
            if attempt >= len(delays):
                # Agora answered, so the outcome is known: the operation failed. Sending it
                # again is safe (one task per builder token / agent name / instanceId), so
                # the orchestrator need not treat the job as "in doubt".
                error.in_doubt = False
                raise error
            self.ctx.log.warning(
                "agora.retry", operation=operation, status=response.status,
                code=error.details.get("code"), request_id=request_id,
                delay=delays[attempt], attempt=attempt + 1,
            )
            self.ctx.clock.sleep(delays[attempt])
            attempt += 1

    def error(self, response: Response, operation: str, request_id: str | None) -> VoxhubError:
        """The mapped error of a non-2xx answer."""
        try:
            body: Any = jsonlib.loads(response.data) if response.data else None
        except (ValueError, UnicodeDecodeError):
            body = response.text
        return error_from_answer(
            response.status, body, provider=self.ctx.provider, operation=operation,
            request_id=request_id, product=self.product,
        )

    def _body(self, response: Response, operation: str) -> Any:
        if not response.data.strip():
            return None
        return response.json(provider=self.ctx.provider, operation=operation)

    def _exchange(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        json: Any,
        params: Mapping[str, Any] | None,
        channel: str,
        idempotent: bool,
    ) -> tuple[Response, str | None]:
        ctx = self.ctx
        # Agora's statuses are retried by ``call`` with Agora's schedule; the core keeps
        # transport errors and 429 (Retry-After) for itself.
        policy = attrs.evolve(ctx.http.retry, retry_statuses=frozenset())
        hosts = self.preference.order(ctx.profile, self.hosts)
        for index, host in enumerate(hosts):
            sent_id = str(uuid.uuid4())
            headers = {
                "Authorization": self.auth.header(channel=channel, now=ctx.clock.time()),
                "Accept": "application/json",
                "X-Request-ID": sent_id,
            }
            if json is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = ctx.http.request(
                    method, host + path, operation=operation, headers=headers, params=params,
                    json=json, idempotent=idempotent, retry=policy,
                )
            except ProviderUnavailableError as exc:
                unreachable = isinstance(exc, TransportError) or not exc.in_doubt
                if unreachable and index + 1 < len(hosts):
                    ctx.log.warning(
                        "agora.host_fallback", operation=operation, failed=host,
                        next=hosts[index + 1], error=str(exc),
                    )
                    continue
                raise
            request_id = response.header("X-Request-ID") or sent_id
            ctx.log.info(
                "agora.answer", operation=operation, method=method, status=response.status,
                request_id=request_id, host=host,
            )
            if index:
                self.preference.remember(ctx.profile, host)
            return response, request_id
        raise ProviderError("no Agora host configured", provider=ctx.provider,
                            operation=operation)  # pragma: no cover - hosts is never empty
