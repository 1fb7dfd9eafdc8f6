"""Transport: retries, Retry-After, timeouts, streaming uploads — against real loopback servers."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from voxhub import FakeClock, RetryPolicy, Timeouts, configure_logging
from voxhub.errors import RequestTimeoutError, TransportError
from voxhub.logging_setup import ensure_default_logging
from voxhub.redact import Secret
from voxhub.transport import HttpClient, MultipartBody, Part, RateLimiter, parse_retry_after
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

Handler = Callable[[Request], Response]


@pytest.fixture
def server() -> Iterator[Callable[[Handler], str]]:
    """Start a WSGI app (a function of the request) on an ephemeral loopback port."""
    servers = []

    def start(handler: Handler) -> str:
        def app(environ, start_response):  # type: ignore[no-untyped-def]
            return handler(Request(environ))(environ, start_response)

        srv = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(
            target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_port}"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def sequence(*responses: Response) -> tuple[Handler, list[Request]]:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        request.get_data()
        seen.append(request)
        return responses[min(len(seen), len(responses)) - 1]

    return handler, seen


def client(clock: FakeClock | None = None, **kw: object) -> HttpClient:
    return HttpClient(clock=clock or FakeClock(), **kw)  # type: ignore[arg-type]


def test_retries_server_errors_then_succeeds(server: Callable[[Handler], str]) -> None:
    handler, seen = sequence(Response("busy", 503), Response("bad gw", 502), Response("ok"))
    clock = FakeClock()
    http = client(clock).bind("t", retry=RetryPolicy(max_attempts=5))
    resp = http.request("GET", server(handler) + "/x", operation="status")
    assert resp.status == 200 and resp.attempts == 3 and len(seen) == 3
    assert len(clock.slept) == 2 and all(0 < s <= 30 for s in clock.slept)


def test_gives_up_after_max_attempts_and_returns_last_answer(
    server: Callable[[Handler], str],
) -> None:
    handler, seen = sequence(Response("down", 504))
    http = client().bind("t", retry=RetryPolicy(max_attempts=5))
    resp = http.request("GET", server(handler), operation="status")
    assert resp.status == 504 and len(seen) == 5


def test_retry_after_seconds_and_date_are_honoured(server: Callable[[Handler], str]) -> None:
    handler, seen = sequence(
        Response("slow down", 429, headers={"Retry-After": "7"}),
        Response("slow down", 429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        Response("ok"),
    )
    clock = FakeClock()
    resp = client(clock).bind("t").request("GET", server(handler), operation="status")
    assert resp.ok and len(seen) == 3
    assert clock.slept[0] == 7.0
    assert clock.slept[1] == 0.0  # a date in the past means "now"


def test_rate_limit_retries_beyond_the_server_error_cap(server: Callable[[Handler], str]) -> None:
    handler, seen = sequence(
        *([Response("", 429, headers={"Retry-After": "1"})] * 8), Response("ok")
    )
    policy = RetryPolicy(max_attempts=2, max_rate_limited_attempts=20)
    resp = client().bind("t", retry=policy).request("POST", server(handler), operation="submit")
    assert resp.ok and len(seen) == 9  # 429 is a refusal, so even a submit retries it


def test_submit_is_not_retried_on_ambiguous_server_errors(server: Callable[[Handler], str]) -> None:
    handler, seen = sequence(Response("gateway timeout", 504), Response("ok"))
    resp = client().bind("t").request("POST", server(handler), operation="submit", json={})
    assert resp.status == 504 and len(seen) == 1


def test_connection_refused_is_retried_even_for_submits() -> None:
    clock = FakeClock()
    http = client(clock).bind("t", retry=RetryPolicy(max_attempts=3))
    with pytest.raises(TransportError) as info:
        http.request("POST", "http://127.0.0.1:9/nothing", operation="submit", json={})
    assert info.value.details["attempts"] == 3
    assert info.value.in_doubt is False
    assert "connection refused" in str(info.value)
    assert info.value.provider == "t" and info.value.operation == "submit"


def test_read_timeout_is_a_timeout_error(server: Callable[[Handler], str]) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("late")

    http = client(timeouts=Timeouts(connect=1, read=0.2)).bind(
        "t", retry=RetryPolicy(max_attempts=2)
    )
    with pytest.raises(RequestTimeoutError) as info:
        http.request("GET", server(slow), operation="status")
    assert info.value.details["attempts"] == 2


def test_dropped_connection_on_get_is_retried(server: Callable[[Handler], str]) -> None:
    calls = []

    def flaky(request: Request) -> Response:
        calls.append(1)
        if len(calls) == 1:
            from voxhub.sandbox import _drop_connection

            _drop_connection(request.environ)
            raise ConnectionResetError
        return Response("ok")

    resp = client().bind("t").request("GET", server(flaky), operation="status")
    assert resp.ok and len(calls) == 2


def test_streaming_multipart_upload_of_a_large_sparse_file(
    server: Callable[[Handler], str], tmp_path: Path
) -> None:
    big = tmp_path / "big.wav"
    with big.open("wb") as fh:  # 64 MiB, sparse: nothing is written to disk
        fh.truncate(64 * 1024 * 1024)
        fh.seek(-4, 2)
        fh.write(b"tail")
    received: dict[str, object] = {}

    def upload(request: Request) -> Response:
        part = request.files["media"]
        digest = hashlib.sha256()
        size = 0
        while chunk := part.stream.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        received.update(
            size=size,
            sha=digest.hexdigest(),
            name=part.filename,
            ctype=part.content_type,
            options=request.form["options"],
            length=request.content_length,
        )
        return Response("{}", content_type="application/json")

    progress: list[tuple[int, int]] = []
    body = MultipartBody([Part("options", '{"a": 1}'), Part("media", path=big)])
    resp = (
        client()
        .bind("t")
        .request(
            "POST",
            server(upload),
            operation="submit",
            body=body,
            progress=lambda s, t: progress.append((s, t)),
        )
    )
    assert resp.ok
    expected = hashlib.sha256()
    with big.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            expected.update(chunk)
    assert received["size"] == big.stat().st_size
    assert received["sha"] == expected.hexdigest()
    assert received["name"] == "big.wav"  # the base name only, never the directory
    assert received["ctype"] in {"audio/x-wav", "audio/wav"}
    assert received["options"] == '{"a": 1}'
    assert received["length"] == body.content_length
    assert progress[-1] == (big.stat().st_size, big.stat().st_size)
    assert [s for s, _ in progress] == sorted(s for s, _ in progress)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_request_logs_never_contain_secrets(server: Callable[[Handler], str], fmt: str) -> None:
    token = Secret("tok-9f8e7d6c5b4a")
    handler, _ = sequence(Response("ok"))
    out = io.StringIO()
    configure_logging("debug", fmt, stream=out)
    try:
        client().bind("t").request(
            "GET",
            server(handler) + "/x?sig=abcdef123456",
            operation="status",
            headers={"Authorization": f"Bearer {token.reveal()}"},
        )
    finally:
        structlog.reset_defaults()
        ensure_default_logging()
    text = out.getvalue()
    assert "http.response" in text  # the request was logged at debug level...
    assert "tok-9f8e7d6c5b4a" not in text and "abcdef123456" not in text  # ...without secrets
    assert "***" in text


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_rate_limiter_spaces_calls() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, burst=1, clock=clock)
    waits = [limiter.acquire() for _ in range(5)]
    assert waits[0] == 0
    assert sum(waits) == pytest.approx(0.4, abs=1e-6)
