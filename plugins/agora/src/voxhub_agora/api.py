"""Agora's REST API as an :class:`~voxhub.plugin.ApiClient`: hosts, auth, request ids, errors.

Used by both providers. What it adds to the core's client (pooling, timeouts,
transport retries, 429 handling and the per-profile rate limit stay in the core):

* **auth** — ``Authorization: Basic ...`` or ``agora token="<AccessToken2>"``; in token
  mode the token is built for the channel the request is about (:class:`AgoraAuth`);
* **hosts** — the host its product's reference shows first (STT: ``https://api.agora.io``;
  transcoder: ``https://api.sd-rtn.com``, seed 001), the other when the first cannot be
  reached (Agora's dual-domain guidance). A host that worked is preferred
  for later calls of the same profile. An explicit ``base_url`` disables the fallback;
* **X-Request-ID** — every request carries a fresh one; the answer's id (or ours when the
  answer has none) is logged and kept on errors as ``request_id``;
* **errors** — :meth:`AgoraApi.parse_error` reads Agora's three error shapes
  (:func:`voxhub_agora.errors.parse_error`);
* **Agora's back-off** — integer code 20 is retried after 3 then 6 s, codes 501/502/504
  and HTTP 500/502/503/504 after 1, 3 and 6 s (spec 1.9), for requests that are safe to
  repeat (``idempotent``). A request that creates a task is sent once: when its outcome
  is unknown it fails with ``in_doubt=True`` and the core resolves it through the
  provider's ``recover`` before anything is sent again.
"""

from __future__ import annotations

import json as jsonlib
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from voxhub.plugin import ApiClient, ProviderError, ProviderUnavailableError, VoxhubError

from .errors import parse_error, retry_delays

if TYPE_CHECKING:
    from voxhub.plugin import ProviderContext, Response

    from .auth import AgoraAuth

__all__ = ["DEFAULT_HOSTS", "TRANSCODER_HOSTS", "AgoraApi", "HostPreference"]

#: Agora's REST hosts in the order tried (spec 1.1: same paths on both). The STT pages
#: show only api.agora.io, so it comes first for STT.
DEFAULT_HOSTS: tuple[str, ...] = ("https://api.agora.io", "https://api.sd-rtn.com")
#: The Cloud Transcoder reference (seed 001) shows only api.sd-rtn.com: it comes first.
TRANSCODER_HOSTS: tuple[str, ...] = ("https://api.sd-rtn.com", "https://api.agora.io")

# Every status comes back from ApiClient.request: this client maps failures itself, after
# deciding whether another host or Agora's back-off applies.
_ANY_STATUS = range(100, 600)


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


class AgoraApi(ApiClient):
    """Requests of one provider call about one channel (see the module docstring).

    Build one per call (``AgoraProvider.api``); it is not shared between threads.
    """

    name = "Agora"

    def __init__(
        self,
        ctx: ProviderContext,
        auth: AgoraAuth,
        *,
        hosts: Sequence[str],
        preference: HostPreference,
        product: str,
        channel: str = "",
    ) -> None:
        # An explicit base_url (a sandbox, a proxy) is the only host: falling back from it
        # to the public API would be a surprise.
        explicit = ctx.base_url
        self.hosts: tuple[str, ...] = (explicit,) if explicit else tuple(hosts)
        super().__init__(ctx, base_url=self.hosts[0])
        self.auth = auth
        self.product = product
        self.preference = preference
        self.channel = channel
        self.sent_request_id: str | None = None

    # --- the ApiClient hooks ---------------------------------------------------------------

    def auth_headers(self) -> Mapping[str, str]:
        """Basic credentials, or an AccessToken2 for :attr:`channel` (token mode)."""
        return {"Authorization": self.auth.header(channel=self.channel,
                                                  now=self.ctx.clock.time())}

    def parse_error(self, response: Response, operation: str) -> VoxhubError:
        """Agora's error answer as a voxhub error (keeps status, code and X-Request-ID)."""
        try:
            body: Any = jsonlib.loads(response.data) if response.data else None
        except (ValueError, UnicodeDecodeError, RecursionError):  # nested thousands deep
            body = response.text
        return parse_error(
            response.status, body, provider=self.ctx.provider, operation=operation,
            request_id=self.request_id(response), product=self.product,
            retry_after=self.retry_after(response) if response.status == 429 else None,
        )

    def json(self, response: Response, operation: str) -> Any:
        """The JSON body; ``None`` for an empty one (Agora's update answers are empty)."""
        if not response.data.strip():
            return None
        return super().json(response, operation)

    # --- sending ---------------------------------------------------------------------------

    def request_id(self, response: Response) -> str | None:
        """The answer's ``X-Request-ID``, else the one this client sent."""
        return response.header("X-Request-ID") or self.sent_request_id

    def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        idempotent: bool | None = None,
        **kw: Any,
    ) -> Response:
        """Send one request (see the module docstring); a failure raises the mapped error.

        ``idempotent`` defaults to False for POST and PATCH. A request that is safe to
        repeat gets Agora's back-off, and its failure never leaves a submission in doubt
        (``in_doubt=False``): only the creating requests decide that.
        """
        if idempotent is None:
            idempotent = method.upper() not in {"POST", "PATCH"}
        ok = kw.pop("ok", ())
        attempt = 0
        try:
            while True:
                response = self._send(method, path, operation=operation,
                                      idempotent=idempotent, **kw)
                if response.ok or response.status in ok:
                    return response
                error = self.parse_error(response, operation)
                delays = retry_delays(error) if idempotent else ()
                if attempt >= len(delays):
                    raise error
                self.ctx.log.warning(
                    "agora.retry", operation=operation, status=response.status,
                    code=error.details.get("code"), request_id=self.request_id(response),
                    delay=delays[attempt], attempt=attempt + 1,
                )
                self.ctx.clock.sleep(delays[attempt])
                attempt += 1
        except ProviderError as exc:
            if idempotent:
                exc.in_doubt = False  # repeating it is harmless: it created nothing
            raise

    def _send(self, method: str, path: str, *, operation: str, idempotent: bool,
              **kw: Any) -> Response:
        """One exchange, on the preferred host, then the next one it could not reach."""
        ctx = self.ctx
        headers = dict(kw.pop("headers", None) or {})
        hosts = self.preference.order(ctx.profile, self.hosts)
        for index, host in enumerate(hosts):
            self.sent_request_id = str(uuid.uuid4())
            try:
                response = super().request(
                    method, host + path, operation=operation,
                    headers={**headers, "X-Request-ID": self.sent_request_id},
                    ok=_ANY_STATUS, idempotent=idempotent, **kw,
                )
            except ProviderUnavailableError as exc:
                # Another host only when this one provably never had the request, or when
                # sending it twice is harmless; an ambiguous create goes to the core.
                if index + 1 < len(hosts) and (idempotent or not exc.in_doubt):
                    ctx.log.warning(
                        "agora.host_fallback", operation=operation, failed=host,
                        next=hosts[index + 1], error=str(exc),
                    )
                    continue
                raise
            ctx.log.info(
                "agora.answer", operation=operation, method=method, status=response.status,
                request_id=self.request_id(response), host=host,
            )
            if index:
                self.preference.remember(ctx.profile, host)
            return response
        raise ProviderError("no Agora host configured", provider=ctx.provider,
                            operation=operation)  # pragma: no cover - hosts is never empty
