"""The transport seam: one call that puts a request on the wire and returns its answer.

:class:`~voxhub.transport.HttpClient` keeps every policy decision (retries,
back-off, ``Retry-After``, rate limits, logging); a transport only sends one
attempt. :class:`Urllib3Transport` is the real one (pooled keep-alive
connections); :class:`MockTransport` answers from a function, for tests of the
logic above the seam.

A transport reports a failed attempt as :class:`SendError`, whose ``in_doubt``
says whether the server may have received the whole request.

Public names are re-exported by :mod:`voxhub.transport`.
"""

from __future__ import annotations

import abc
import contextvars
import functools
import json as jsonlib
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from ._bodies import CHUNK_SIZE, ProgressFn, StreamBody
from .errors import ProviderError
from .policies import Timeouts

__all__ = [
    "BaseTransport",
    "HttpRequest",
    "MockTransport",
    "Response",
    "SendError",
    "Urllib3Transport",
]


# --- the two messages -----------------------------------------------------------


@attrs.define(eq=False)
class HttpRequest:
    """One request as it goes on the wire: headers are final, the body can be replayed.

    ``body`` is ``bytes`` or a streamed body (:class:`~voxhub.transport.MultipartBody`,
    :class:`~voxhub.transport.RawBody`); ``progress`` is told about uploaded bytes.
    The same object is handed to the transport again for each retry.
    """

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | StreamBody | None = None
    timeouts: Timeouts = attrs.field(factory=Timeouts)
    progress: ProgressFn | None = None

    @property
    def replayable(self) -> bool:
        """Whether the body can be sent again (a one-shot stream cannot, once started)."""
        body = self.body
        return body is None or isinstance(body, bytes) or body.replayable

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def stream(self) -> bytes | Iterator[bytes] | None:
        """The body for one attempt: small bytes as they are, anything larger in chunks."""
        body = self.body
        if body is None or (isinstance(body, bytes) and len(body) <= CHUNK_SIZE):
            return body
        if isinstance(body, bytes):
            return _slices(body)
        return body.iter_chunks(self.progress)

    def read(self) -> bytes:
        """The whole body, streamed through ``progress`` as a server reading it would."""
        body = self.stream()
        if body is None or isinstance(body, bytes):
            return body or b""
        return b"".join(body)


def _slices(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for at in range(0, len(data), CHUNK_SIZE):
        yield bytes(view[at : at + CHUNK_SIZE])


@attrs.frozen
class Response:
    """A complete HTTP answer (body read), as providers see it.

    ``attempts`` counts the tries it took; ``gave_up`` is set when retrying stopped
    before the retry policy's attempts were spent (the next wait would have passed
    the deadline in scope) and says so in words, else ``None``.
    """

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    data: bytes = b""
    url: str = ""
    attempts: int = 1
    gave_up: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
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
        # RecursionError: a hostile answer nested thousands deep (issue 16).
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            ctype = self.header("Content-Type") or "no content type"
            raise ProviderError(
                f"expected JSON from the provider, got {len(self.data)} bytes of {ctype} "
                f"(HTTP {self.status})",
                provider=provider,
                operation=operation,
                status=self.status,
            ) from exc


class SendError(Exception):
    """One attempt failed without a complete answer.

    ``reason`` is a short phrase for people ("connection refused"); ``in_doubt``
    is True when the server may have received the whole request (and acted on
    it), False when it provably did not; ``timeout`` marks a timeout of any kind.
    """

    def __init__(self, reason: str, *, in_doubt: bool, timeout: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.in_doubt = in_doubt
        self.timeout = timeout

    @classmethod
    def unsent(cls, reason: str = "connection refused", *, timeout: bool = False) -> SendError:
        """A failure before the server could have the request (refused, stalled upload)."""
        return cls(reason, in_doubt=False, timeout=timeout)

    @classmethod
    def maybe_sent(
        cls, reason: str = "connection dropped by the server", *, timeout: bool = False
    ) -> SendError:
        """A failure after the whole request went out (dropped answer, read timeout)."""
        return cls(reason, in_doubt=True, timeout=timeout)


# --- the seam -------------------------------------------------------------------


class BaseTransport(abc.ABC):
    """Sends one attempt of a request; everything about retrying lives above it."""

    @abc.abstractmethod
    def handle(self, request: HttpRequest) -> Response:
        """Send ``request`` once and return the whole answer, or raise :class:`SendError`."""

    def close(self) -> None:  # noqa: B027 - optional hook, most transports hold nothing
        """Release pooled connections (the client is being closed)."""


class MockTransport(BaseTransport):
    """A transport that answers with ``handler(request)``, for tests above the seam.

    The handler returns a :class:`Response` (``url`` is filled in when left empty)
    or raises :class:`SendError` to play a failed attempt, e.g.
    ``SendError.unsent()`` for a refused connection or ``SendError.maybe_sent()``
    for an answer lost after the request went out. It reads the body with
    ``request.read()`` when it wants it, which drives upload progress.
    """

    def __init__(self, handler: Callable[[HttpRequest], Response]) -> None:
        self.handler = handler

    def handle(self, request: HttpRequest) -> Response:
        """Answer with the handler's response."""
        response = self.handler(request)
        return response if response.url else attrs.evolve(response, url=request.url)


# --- urllib3 --------------------------------------------------------------------


class _Sending:
    """What one attempt's connection needs to know, and tells back."""

    __slots__ = ("complete", "write")

    def __init__(self, write: float) -> None:
        self.write = write
        self.complete = False


# urllib3 gives a connection only a single number (the connect timeout, applied to the
# socket for the whole time the request is being sent). The attempt's write timeout
# reaches the connection through this variable, set by Urllib3Transport.handle on the
# same thread.
_SENDING: contextvars.ContextVar[_Sending | None] = contextvars.ContextVar(
    "voxhub_sending", default=None
)


class _WriteStalled(Exception):
    # Deliberately not an OSError/HTTPError: urllib3 then lets it through unchanged
    # (instead of calling it "Connection aborted") and still discards the connection.
    pass


class _TimedConnection(HTTPConnection):
    """urllib3's connection with a write timeout of its own for sending the request."""

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        state = _SENDING.get()
        if state is None:
            super().request(method, url, body=body, headers=headers, **kwargs)
            return
        if self.sock is None:
            self.connect()  # under the connect timeout urllib3 has just set
        # super().request applies self.timeout to the socket before it sends anything.
        self.timeout = state.write
        try:
            super().request(method, url, body=body, headers=headers, **kwargs)
        except TimeoutError as exc:
            raise _WriteStalled from exc
        state.complete = True

    def send(self, data: Any) -> None:
        # http.client sends each chunk with sendall(), whose timeout bounds the whole
        # chunk. One send() per wait makes the write timeout a limit on *progress*:
        # a slow but steady reader never trips it.
        sock = self.sock
        if sock is None or not isinstance(data, bytes | bytearray | memoryview):
            super().send(data)
            return
        view = memoryview(data).cast("B")
        while view:
            view = view[sock.send(view) :]


class _TimedHTTPSConnection(_TimedConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _TimedConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TimedHTTPSConnection


# Retries and redirects are HttpClient's business. One shared (immutable) Retry saves
# urllib3 building one per request from ``retries=False``.
_NO_RETRIES = urllib3.Retry(total=False, redirect=False)


@functools.lru_cache(maxsize=64)
def _urllib3_timeout(timeouts: Timeouts) -> urllib3.Timeout:
    return urllib3.Timeout(connect=timeouts.connect, read=timeouts.read)


class Urllib3Transport(BaseTransport):
    """Pooled keep-alive HTTP(S) over urllib3, with connect, write and read timeouts."""

    def __init__(
        self, *, verify_tls: bool = True, ca_bundle: str | None = None, maxsize: int = 32
    ) -> None:
        kwargs: dict[str, Any] = {"maxsize": maxsize, "block": False, "retries": False}
        if not verify_tls:
            kwargs["cert_reqs"] = "CERT_NONE"
        elif ca_bundle:
            kwargs["ca_certs"] = ca_bundle
        self.pool = urllib3.PoolManager(**kwargs)
        self.pool.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def close(self) -> None:
        """Close every pooled connection."""
        self.pool.clear()

    def handle(self, request: HttpRequest) -> Response:
        """Send ``request`` once on a pooled connection."""
        body = request.stream()
        headers = request.headers
        if (
            body is not None
            and not isinstance(body, bytes)
            and isinstance(request.body, bytes)
            and request.header("Content-Length") is None
        ):
            # Large bytes go out in slices (see HttpRequest.stream); without a length
            # urllib3 would switch to chunked encoding, which some vendors refuse.
            headers = {**headers, "Content-Length": str(len(request.body))}
        state = _Sending(request.timeouts.write)
        token = _SENDING.set(state)
        try:
            raw = self.pool.urlopen(
                request.method,
                request.url,
                body=body,
                headers=headers,
                timeout=_urllib3_timeout(request.timeouts),
                retries=_NO_RETRIES,
                redirect=False,
                preload_content=True,
            )
        except _WriteStalled:
            # A stall is found while the request is still being sent, so the server
            # holds an incomplete request: an HTTP server cannot act on a request whose
            # body has not fully arrived (Content-Length framing), hence not in doubt.
            raise SendError.unsent(
                f"upload stalled: the server read nothing for {state.write:g} s", timeout=True
            ) from None
        except (HTTPError, OSError) as exc:
            # Only a request that fully left this process can have been acted on: a
            # connection refused, reset or timed out before the last byte was handed to
            # the kernel leaves the server with at most part of it.
            raise SendError(
                _describe(exc, sent=state.complete),
                in_doubt=state.complete,
                timeout=_is_timeout(exc),
            ) from exc
        finally:
            _SENDING.reset(token)
        return Response(
            status=raw.status,
            headers=dict(raw.headers.items()),
            data=raw.data or b"",
            url=request.url,
        )


def _is_timeout(exc: BaseException) -> bool:
    # urllib3's NewConnectionError subclasses ConnectTimeoutError for history's sake:
    # a refused connection is not a timeout.
    if isinstance(exc, NewConnectionError):
        return False
    return isinstance(exc, ReadTimeoutError | ConnectTimeoutError | socket.timeout) or (
        "timed out" in str(exc)
    )


def _describe(exc: BaseException, *, sent: bool) -> str:
    if isinstance(exc, ReadTimeoutError):
        return "read timed out"
    if isinstance(exc, SSLError):
        return "TLS error (certificate verification failed?)"
    text = str(getattr(exc, "reason", None) or exc)
    if "refused" in text.lower():
        return "connection refused"
    if isinstance(exc, ProtocolError):
        if sent:
            return "connection dropped by the server"
        return "connection closed by the server before the whole request was sent"
    if _is_timeout(exc):
        return "connect timed out" if isinstance(exc, ConnectTimeoutError) else "timed out"
    return type(exc).__name__
