"""HTTP for provider plugins: pooled urllib3, timeouts, retries, streaming uploads, redacted logs.

One :class:`HttpClient` per orchestrator owns the connection pool. Each provider
call gets a :class:`ProviderHttp` (``ctx.http``) bound to its provider, its retry
policy and its client-side rate limit, so plugin code only says what to send.

Retry rules:

* ``idempotent=True`` calls (status, fetch, close, list) retry on connection
  errors, read timeouts and the policy's retryable statuses;
* ``idempotent=False`` calls (submits) retry only when the request provably did
  not reach the server (connection could not be established) or was explicitly
  refused before processing (the policy's rate-limit statuses, e.g. 429);
  anything ambiguous is raised so the provider can check what happened.

``Retry-After`` (seconds or an HTTP date) is honoured, capped by the policy.
"""

from __future__ import annotations

import contextlib
import contextvars
import json as jsonlib
import mimetypes
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs
import structlog
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from .clock import Clock, SystemClock
from .errors import ProviderError, RequestTimeoutError, TransportError
from .redact import mask_url, redact

__all__ = [
    "HttpClient",
    "MultipartBody",
    "Part",
    "ProviderHttp",
    "RateLimiter",
    "Response",
    "RetryPolicy",
    "Timeouts",
    "parse_retry_after",
    "upload_progress",
]

log = structlog.get_logger("voxhub.transport")

#: Size of the pieces a file is streamed in. Constant memory whatever the file size.
CHUNK_SIZE = 256 * 1024
USER_AGENT = "voxhub/0.1"


@attrs.frozen
class Timeouts:
    """Connect and read timeouts in seconds; ``read`` is between bytes, not for the whole call."""

    connect: float = 10.0
    read: float = 60.0


@attrs.frozen
class RetryPolicy:
    """How a provider wants failed calls retried.

    ``max_attempts`` bounds attempts for server errors and transport failures;
    rate-limit answers have their own, larger bound (vendors such as Rev.ai ask
    to retry 429 beyond the 5xx cap).
    """

    max_attempts: int = 5
    max_rate_limited_attempts: int = 30
    retry_statuses: frozenset[int] = frozenset({502, 503, 504})
    rate_limit_statuses: frozenset[int] = frozenset({429})
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 300.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Exponential back-off with full jitter for the ``attempt``-th retry (1-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return (rng or random).uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


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


ProgressFn = Callable[[int, int], None]

# Set by the orchestrator around a submit, so uploads report progress without every
# provider having to pass a callback through.
_UPLOAD_PROGRESS: contextvars.ContextVar[ProgressFn | None] = contextvars.ContextVar(
    "voxhub_upload_progress", default=None
)


@contextlib.contextmanager
def upload_progress(callback: ProgressFn | None) -> Generator[None, None, None]:
    """Report the progress of uploads made inside this block to ``callback(sent, total)``."""
    token = _UPLOAD_PROGRESS.set(callback)
    try:
        yield
    finally:
        _UPLOAD_PROGRESS.reset(token)


# --- multipart ------------------------------------------------------------------


@attrs.frozen
class Part:
    """One part of a multipart form: inline ``value`` or a file ``path`` streamed from disk."""

    name: str
    value: bytes | str | None = None
    path: Path | None = None
    filename: str | None = None
    content_type: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.value is None) == (self.path is None):
            raise ValueError("a Part needs exactly one of value or path")


class MultipartBody:
    """A ``multipart/form-data`` body whose file parts are streamed in chunks.

    The length is computed up front (so the request has a ``Content-Length``, as
    vendors expect) and the body can be produced again for a retry. A file part
    sends only the file's base name, never its directory.
    """

    def __init__(self, parts: Sequence[Part]) -> None:
        self.parts = tuple(parts)
        self.boundary = "voxhub-" + uuid.uuid4().hex
        self._heads = [self._head(p) for p in self.parts]

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _head(self, part: Part) -> bytes:
        disposition = f'form-data; name="{_quote(part.name)}"'
        content_type = part.content_type
        if part.path is not None:
            filename = part.filename or part.path.name
            disposition += f'; filename="{_quote(Path(filename).name)}"'
            content_type = content_type or (
                mimetypes.guess_type(filename)[0] or "application/octet-stream"
            )
        lines = [f"--{self.boundary}", f"Content-Disposition: {disposition}"]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _value(self, part: Part) -> bytes:
        return part.value.encode() if isinstance(part.value, str) else (part.value or b"")

    @property
    def file_size(self) -> int:
        """Total bytes of the file parts (what progress reports count)."""
        return sum(p.path.stat().st_size for p in self.parts if p.path is not None)

    @property
    def content_length(self) -> int:
        total = len(f"--{self.boundary}--\r\n")
        for head, part in zip(self._heads, self.parts, strict=True):
            size = part.path.stat().st_size if part.path is not None else len(self._value(part))
            total += len(head) + size + 2
        return total

    def iter_chunks(self, progress: Callable[[int, int], None] | None = None) -> Iterator[bytes]:
        """Yield the body; ``progress(sent_file_bytes, total_file_bytes)`` after each chunk."""
        total = self.file_size
        sent = 0
        for head, part in zip(self._heads, self.parts, strict=True):
            yield head
            if part.path is None:
                yield self._value(part)
            else:
                with part.path.open("rb") as fh:
                    while chunk := fh.read(CHUNK_SIZE):
                        sent += len(chunk)
                        yield chunk
                        if progress is not None:
                            progress(sent, total)
            yield b"\r\n"
        yield f"--{self.boundary}--\r\n".encode()


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


# --- responses ------------------------------------------------------------------


@attrs.frozen
class Response:
    """A complete HTTP answer (body read), as providers see it."""

    status: int
    headers: Mapping[str, str]
    data: bytes
    url: str
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def json(self, *, provider: str | None = None, operation: str | None = None) -> Any:
        """The body parsed as JSON, or a :class:`ProviderError` saying it is not JSON."""
        try:
            return jsonlib.loads(self.data)
        except (ValueError, UnicodeDecodeError) as exc:
            ctype = self.header("Content-Type") or "no content type"
            raise ProviderError(
                f"expected JSON from the provider, got {len(self.data)} bytes of {ctype} "
                f"(HTTP {self.status})",
                provider=provider,
                operation=operation,
                status=self.status,
            ) from exc


# --- the client -----------------------------------------------------------------

Body = bytes | MultipartBody | None


class HttpClient:
    """The pooled HTTP client an orchestrator owns (one pool, thread-safe)."""

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
    ) -> None:
        self.clock = clock or SystemClock()
        self.timeouts = timeouts or Timeouts()
        self.user_agent = user_agent
        self._rng = rng or random.Random()
        kwargs: dict[str, Any] = {"maxsize": maxsize, "block": False, "retries": False}
        if not verify_tls:
            kwargs["cert_reqs"] = "CERT_NONE"
        elif ca_bundle:
            kwargs["ca_certs"] = ca_bundle
        self.pool = urllib3.PoolManager(**kwargs)

    def close(self) -> None:
        self.pool.clear()

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

    # The single place where bytes leave the process.
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
        progress: Callable[[int, int], None] | None = None,
    ) -> Response:
        if params:
            clean = {k: _param(v) for k, v in params.items() if v is not None}
            if clean:
                url = f"{url}{'&' if '?' in url else '?'}{urlencode(clean)}"
        send_headers = {"User-Agent": self.user_agent, **(headers or {})}
        payload: bytes | None = None
        if json is not None:
            payload = jsonlib.dumps(json, ensure_ascii=False).encode()
            send_headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, MultipartBody):
            send_headers["Content-Type"] = body.content_type
            send_headers["Content-Length"] = str(body.content_length)
        elif body is not None:
            payload = body

        attempt = 0
        errors = 0
        limited = 0
        while True:
            attempt += 1
            if limiter is not None:
                limiter.acquire()
            data: Any = payload
            if isinstance(body, MultipartBody):
                data = body.iter_chunks(progress or _UPLOAD_PROGRESS.get())
            started = self.clock.monotonic()
            bound = log.bind(
                provider=provider,
                operation=operation,
                method=method,
                url=mask_url(url),
                attempt=attempt,
            )
            try:
                raw = self.pool.request(
                    method,
                    url,
                    body=data,
                    headers=send_headers,
                    timeout=urllib3.Timeout(connect=timeouts.connect, read=timeouts.read),
                    retries=False,
                    redirect=False,
                    preload_content=True,
                )
            except (HTTPError, OSError) as exc:
                unsent = _provably_unsent(exc)
                errors += 1
                reason = _describe_exc(exc)
                bound.warning("http.error", error=reason, unsent=unsent)
                if (idempotent or unsent) and errors < retry.max_attempts:
                    self.clock.sleep(retry.backoff(errors, self._rng))
                    continue
                cls = RequestTimeoutError if _is_timeout(exc) else TransportError
                raise cls(
                    f"{method} {mask_url(url)} failed after {attempt} attempt(s): {reason}",
                    provider=provider,
                    operation=operation,
                    details={"attempts": attempt},
                    in_doubt=not unsent,
                ) from None
            resp = Response(
                status=raw.status,
                headers=dict(raw.headers.items()),
                data=raw.data or b"",
                url=url,
                attempts=attempt,
            )
            bound.debug(
                "http.response",
                status=resp.status,
                bytes=len(resp.data),
                seconds=round(self.clock.monotonic() - started, 4),
                request_headers=redact(send_headers),
                request_id=resp.header("X-Request-ID"),
            )
            if resp.status in retry.rate_limit_statuses:
                limited += 1
                if limited < retry.max_rate_limited_attempts:
                    delay = parse_retry_after(resp.header("Retry-After"), self.clock.time())
                    delay = retry.backoff(limited, self._rng) if delay is None else delay
                    self.clock.sleep(min(delay, retry.retry_after_max))
                    continue
            elif resp.status in retry.retry_statuses and idempotent:
                errors += 1
                if errors < retry.max_attempts:
                    delay = parse_retry_after(resp.header("Retry-After"), self.clock.time())
                    delay = retry.backoff(errors, self._rng) if delay is None else delay
                    self.clock.sleep(min(delay, retry.retry_after_max))
                    continue
            return resp


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _provably_unsent(exc: BaseException) -> bool:
    """True when the request cannot have reached the server (no connection was made)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NewConnectionError | ConnectionRefusedError) or (
            isinstance(current, ConnectTimeoutError) and "connect" in str(current).lower()
        ):
            return True
        reason = getattr(current, "reason", None)
        current = reason if isinstance(reason, BaseException) else current.__cause__
    return False


def _is_timeout(exc: BaseException) -> bool:
    # urllib3's NewConnectionError subclasses ConnectTimeoutError for history's sake:
    # a refused connection is not a timeout.
    if isinstance(exc, NewConnectionError):
        return False
    return isinstance(exc, ReadTimeoutError | ConnectTimeoutError | socket.timeout) or (
        "timed out" in str(exc)
    )


def _describe_exc(exc: BaseException) -> str:
    if isinstance(exc, ReadTimeoutError):
        return "read timed out"
    if isinstance(exc, SSLError):
        return "TLS error (certificate verification failed?)"
    if isinstance(exc, ProtocolError):
        return "connection dropped by the server"
    text = str(getattr(exc, "reason", None) or exc)
    if "refused" in text.lower():
        return "connection refused"
    if _is_timeout(exc):
        return "timed out"
    return type(exc).__name__


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
        """Send one request; ``idempotent`` defaults to True for everything but POST and PATCH."""
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
