"""HTTP for provider plugins: pooled connections, timeouts, retries, streamed uploads, logs.

One :class:`HttpClient` per orchestrator owns a transport (by default
:class:`Urllib3Transport`, pooled keep-alive connections). Each provider call gets
a :class:`ProviderHttp` (``ctx.http``) bound to its provider, its retry policy and
its client-side rate limit, so plugin code only says what to send.

Retry rules (decided here, above the transport seam):

* ``idempotent=True`` calls (status, fetch, close, list) retry on connection
  errors, timeouts and the policy's retryable statuses;
* ``idempotent=False`` calls (submits) retry only when the request provably did
  not reach the server (a :class:`SendError` with ``in_doubt=False``: connection
  refused, or broken off before the whole request was sent) or was explicitly
  refused before processing (the policy's rate-limit statuses, e.g. 429);
  anything ambiguous is raised, with ``in_doubt=True``, so the provider can check
  what happened;
* a one-shot body (an iterator given to :class:`RawBody`) is sent once: nothing to
  resend it from.

``Retry-After`` (seconds or an HTTP date) is honoured, capped by the policy; an
unreadable one gets the normal back-off. Every wait is told to the client's
back-off listeners (:meth:`HttpClient.add_backoff_listener`) and logged at info
level as ``backoff``; inside a :func:`~voxhub.policies.deadline_scope` a request
stops retrying when its next wait would end past the deadline.
Tests replace the network with ``HttpClient(transport=MockTransport(handler))``.
"""

from __future__ import annotations

import json as jsonlib
import logging
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import attrs
import structlog

from ._backoff import BackoffListener, Backoffs, request_path, retry_delay
from ._bodies import (
    CHUNK_SIZE,
    BodyLengthError,
    MultipartBody,
    Part,
    ProgressFn,
    RawBody,
    StreamBody,
    current_progress,
    upload_progress,
)
from ._transports import (
    BaseTransport,
    HttpRequest,
    MockTransport,
    Response,
    SendError,
    Urllib3Transport,
)
from .clock import Clock, SystemClock
from .errors import InvalidInputError, RequestTimeoutError, TransportError
from .policies import (
    Backoff,
    RetryPolicy,
    Timeouts,
    current_deadline,
    deadline_scope,
    parse_retry_after,
)
from .redact import mask_url, redact

__all__ = [
    "CHUNK_SIZE",
    "Backoff",
    "BackoffListener",
    "BaseTransport",
    "Body",
    "BodyLengthError",
    "HttpClient",
    "HttpRequest",
    "MockTransport",
    "MultipartBody",
    "Part",
    "ProgressFn",
    "ProviderHttp",
    "RateLimiter",
    "RawBody",
    "Response",
    "RetryPolicy",
    "SendError",
    "StreamBody",
    "Timeouts",
    "Urllib3Transport",
    "current_deadline",
    "deadline_scope",
    "parse_retry_after",
    "upload_progress",
]

log = structlog.get_logger("voxhub.transport")

USER_AGENT = "voxhub/0.1"

Body = bytes | MultipartBody | RawBody | StreamBody | None


class RateLimiter:
    """A token bucket: at most ``rate`` calls per second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int | None = None, clock: Clock | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = float(burst if burst is not None else max(1, int(rate)))
        self._clock = clock or SystemClock()
        self._tokens = self.capacity
        self._last = self._clock.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping as needed; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                # The epsilon keeps float rounding from turning a refilled bucket into
                # an endless series of vanishing sleeps.
                if self._tokens >= 1 - 1e-9:
                    self._tokens = max(0.0, self._tokens - 1)
                    return waited
                delay = (1 - self._tokens) / self.rate
            self._clock.sleep(delay)
            waited += delay


# structlog's configured wrapper class decides what is logged. Asking it once per
# configuration lets a request skip building its debug event (header redaction, URL
# masking, timing) when debug is filtered out, which it is outside debugging.
_debug_cache: tuple[object, bool] = (None, True)


def _debug_enabled() -> bool:
    global _debug_cache
    wrapper = structlog.get_config()["wrapper_class"]
    cached_for, enabled = _debug_cache
    if wrapper is not cached_for:
        level_of = getattr(wrapper, "get_effective_level", None)
        try:
            enabled = level_of is None or level_of(None) <= logging.DEBUG
        except (AttributeError, TypeError):  # a wrapper that needs a real logger: let it filter
            enabled = True
        _debug_cache = (wrapper, enabled)
    return enabled


class HttpClient:
    """The HTTP client an orchestrator owns: one transport (one pool), thread-safe.

    ``transport`` replaces the network (e.g. :class:`MockTransport` in tests);
    ``verify_tls``, ``ca_bundle`` and ``maxsize`` configure the default
    :class:`Urllib3Transport` and are ignored when a transport is given.
    Deadlines given to :func:`~voxhub.policies.deadline_scope` are read on
    ``clock.monotonic()``.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        timeouts: Timeouts | None = None,
        verify_tls: bool = True,
        ca_bundle: str | None = None,
        maxsize: int = 32,
        user_agent: str = USER_AGENT,
        rng: random.Random | None = None,
        transport: BaseTransport | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.timeouts = timeouts or Timeouts()
        self.user_agent = user_agent
        self._rng = rng or random.Random()
        self.transport = transport or Urllib3Transport(
            verify_tls=verify_tls, ca_bundle=ca_bundle, maxsize=maxsize
        )
        self._backoffs = Backoffs(self.clock)

    def add_backoff_listener(self, listener: BackoffListener) -> Callable[[], None]:
        """Call ``listener(Backoff)`` before every retry wait; returns a function that removes it.

        Thread-safe. The listener runs on the thread making the request, just before
        it sleeps, so it should be quick (hand the notice to a display, a queue). An
        exception it raises is logged and ignored: it never fails the request.
        """
        return self._backoffs.add(listener)

    def close(self) -> None:
        """Close the transport's pooled connections."""
        self.transport.close()

    def bind(
        self,
        provider: str,
        *,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        timeouts: Timeouts | None = None,
    ) -> ProviderHttp:
        """A view of this client for one provider's calls."""
        return ProviderHttp(
            self, provider, retry or RetryPolicy(), limiter, timeouts or self.timeouts
        )

    def send(
        self,
        method: str,
        url: str,
        *,
        provider: str,
        operation: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        body: Body = None,
        retry: RetryPolicy,
        idempotent: bool,
        timeouts: Timeouts,
        limiter: RateLimiter | None = None,
        progress: ProgressFn | None = None,
    ) -> Response:
        """Send a request with the retry policy applied; the one way bytes leave the process."""
        if params:
            clean = {k: _param(v) for k, v in params.items() if v is not None}
            if clean:
                url = f"{url}{'&' if '?' in url else '?'}{urlencode(clean)}"
        request = HttpRequest(
            method,
            url,
            _headers(self.user_agent, headers, json, body),
            _content(json, body),
            timeouts,
            progress or current_progress(),
        )
        debug = _debug_enabled()
        attempt = errors = limited = 0
        while True:
            attempt += 1
            if limiter is not None:
                limiter.acquire()
            started = self.clock.monotonic() if debug else 0.0
            try:
                resp = self.transport.handle(request)
            except SendError as exc:
                errors += 1
                log.warning(
                    "http.error",
                    provider=provider,
                    operation=operation,
                    method=method,
                    url=mask_url(url),
                    attempt=attempt,
                    error=exc.reason,
                    in_doubt=exc.in_doubt,
                )
                gave_up = None
                if (
                    (idempotent or not exc.in_doubt)
                    and errors < retry.max_attempts
                    and request.replayable
                ):
                    gave_up = self._backoffs.pause(Backoff(
                        provider, exc.reason, retry.backoff(errors, self._rng), attempt,
                        method, request_path(url), operation,
                    ))
                    if gave_up is None:
                        continue
                cls = RequestTimeoutError if exc.timeout else TransportError
                message = (
                    f"{method} {mask_url(url)} failed after {attempt} attempt(s): {exc.reason}"
                )
                raise cls(
                    f"{message}; {gave_up}" if gave_up else message,
                    provider=provider,
                    operation=operation,
                    details={"attempts": attempt, **({"gave_up": "deadline"} if gave_up else {})},
                    in_doubt=exc.in_doubt,
                ) from None
            except BodyLengthError as exc:
                # Found before the last byte went out (see _bodies): nothing was acted on.
                raise InvalidInputError(
                    str(exc), field="body", provider=provider, operation=operation
                ) from None
            if attempt > 1:
                resp = attrs.evolve(resp, attempts=attempt)
            if debug:
                log.debug(
                    "http.response",
                    provider=provider,
                    operation=operation,
                    method=method,
                    url=mask_url(url),
                    attempt=attempt,
                    status=resp.status,
                    bytes=len(resp.data),
                    seconds=round(self.clock.monotonic() - started, 4),
                    request_headers=redact(request.headers),
                    request_id=resp.header("X-Request-ID"),
                )
            status = resp.status
            nth = 0  # which retry of its kind this answer would get (0: none)
            if status in retry.rate_limit_statuses:
                limited += 1
                if limited < retry.max_rate_limited_attempts and request.replayable:
                    nth = limited
            elif status in retry.retry_statuses and idempotent:
                errors += 1
                if errors < retry.max_attempts and request.replayable:
                    nth = errors
            if nth:
                wait, reason = retry_delay(resp, nth, retry, self.clock, self._rng)
                gave_up = self._backoffs.pause(Backoff(
                    provider, reason, wait, attempt, method, request_path(url), operation
                ))
                if gave_up is None:
                    continue
                resp = attrs.evolve(resp, gave_up=f"gave up after {attempt} attempt(s): {gave_up}")
            return resp


def _headers(
    user_agent: str, given: Mapping[str, str] | None, json: Any, body: Body
) -> dict[str, str]:
    headers = {"User-Agent": user_agent}
    if given:
        headers.update(given)
    if json is not None:
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, MultipartBody):
        headers["Content-Type"] = body.content_type  # carries the boundary: always ours
        headers["Content-Length"] = str(body.content_length)
    elif body is not None and not isinstance(body, bytes):
        headers.setdefault("Content-Type", body.content_type)
        headers["Content-Length"] = str(body.content_length)
    return headers


def _content(json: Any, body: Body) -> bytes | StreamBody | None:
    if json is not None:
        return jsonlib.dumps(json, ensure_ascii=False).encode()
    return body


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@attrs.define
class ProviderHttp:
    """``ctx.http``: the shared client bound to one provider's policy, limits and name."""

    client: HttpClient
    provider: str
    retry: RetryPolicy
    limiter: RateLimiter | None
    timeouts: Timeouts

    def request(
        self,
        method: str,
        url: str,
        *,
        operation: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        body: Body = None,
        idempotent: bool | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Response:
        """Send one request; ``idempotent`` defaults to True for everything but POST and PATCH.

        ``body`` is ``bytes``, a :class:`MultipartBody` or a :class:`RawBody` (streamed
        with a ``Content-Length``); ``progress(sent, total)`` follows an upload, and
        defaults to the callback of the enclosing :func:`upload_progress` block.
        """
        if idempotent is None:
            idempotent = method.upper() not in {"POST", "PATCH"}
        return self.client.send(
            method.upper(),
            url,
            provider=self.provider,
            operation=operation,
            headers=headers,
            params=params,
            json=json,
            body=body,
            retry=retry or self.retry,
            idempotent=idempotent,
            timeouts=timeouts or self.timeouts,
            limiter=self.limiter,
            progress=progress,
        )
