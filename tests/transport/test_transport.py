"""Transport: retries, Retry-After and back-off against real loopback servers, and the
retry logic above the seam driven through ``MockTransport``.
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog
from transport_support import (
    Handler,
    RawHandler,
    client,
    content_length,
    read_head,
    reset,
    sequence,
)
from voxhub import transport as transport_module
from voxhub.clock import FakeClock
from voxhub.errors import RequestTimeoutError, TransportError
from voxhub.logging_setup import configure_logging
from voxhub.redact import Secret
from voxhub.transport import (
    HttpClient,
    HttpRequest,
    MockTransport,
    RateLimiter,
    RawBody,
    RetryPolicy,
    SendError,
    Timeouts,
    parse_retry_after,
    upload_progress,
)
from voxhub.transport import Response as VxResponse
from werkzeug.wrappers import Request, Response

# --- retries against a real server ----------------------------------------------------


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


def test_read_timeout_is_a_timeout_error_and_in_doubt(server: Callable[[Handler], str]) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("late")

    http = client(timeouts=Timeouts(connect=1, read=0.2)).bind(
        "t", retry=RetryPolicy(max_attempts=2)
    )
    with pytest.raises(RequestTimeoutError) as info:
        http.request("GET", server(slow), operation="status")
    assert info.value.details["attempts"] == 2
    assert info.value.in_doubt is True  # the whole request went out: it may have been acted on


def test_dropped_connection_on_get_is_retried(
    raw_server: Callable[[RawHandler], str],
) -> None:
    calls: list[int] = []

    def flaky(conn: socket.socket, stop: threading.Event) -> None:
        read_head(conn)
        calls.append(1)
        if len(calls) == 1:
            reset(conn)  # the answer is lost on the way
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    resp = client().bind("t").request("GET", raw_server(flaky), operation="status")
    assert resp.ok and resp.text == "ok" and len(calls) == 2


def test_connections_are_kept_alive_between_requests(
    raw_server: Callable[[RawHandler], str],
) -> None:
    bodies: list[bytes] = []
    connections: list[int] = []

    def keep_alive(conn: socket.socket, stop: threading.Event) -> None:
        connections.append(1)
        buffered = b""
        while True:
            while b"\r\n\r\n" not in buffered:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffered += chunk
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            while len(buffered) < content_length(head):
                buffered += conn.recv(65536)
            bodies.append(buffered[: content_length(head)])
            buffered = buffered[content_length(head) :]
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    url = raw_server(keep_alive)
    http = client().bind("t")
    for _ in range(3):
        assert http.request("GET", url, operation="status").text == "ok"
    http.request("POST", url, operation="submit", body=RawBody(b"x" * 10))
    http.request("POST", url, operation="submit", json={"a": 1})
    assert bodies == [b"", b"", b"", b"x" * 10, b'{"a": 1}']
    assert len(connections) == 1  # one pooled connection for all


# --- the retry logic above the seam, with MockTransport -------------------------------


def mock_client(
    handler: Callable[[HttpRequest], VxResponse], clock: FakeClock | None = None
) -> HttpClient:
    return HttpClient(clock=clock or FakeClock(), transport=MockTransport(handler))


def test_mock_transport_sees_the_request_as_it_would_go_on_the_wire() -> None:
    seen: list[HttpRequest] = []

    def handler(request: HttpRequest) -> VxResponse:
        seen.append(request)
        return VxResponse(201, {"X-Request-ID": "r1"}, request.read())

    http = mock_client(handler).bind("t")
    resp = http.request(
        "post",
        "https://api.example/v1/jobs",
        operation="submit",
        params={"fast": True, "skip": None, "n": 2},
        json={"a": "é"},
        headers={"Authorization": "Bearer x"},
    )
    assert resp.status == 201 and resp.url == "https://api.example/v1/jobs?fast=true&n=2"
    assert resp.data == '{"a": "é"}'.encode()
    request = seen[0]
    assert request.method == "POST" and request.header("content-type") == "application/json"
    assert request.header("user-agent") == "voxhub/0.1"
    assert request.header("authorization") == "Bearer x"


def test_never_sent_failures_are_retried_for_submits_with_policy_back_off() -> None:
    attempts: list[int] = []

    def refused(request: HttpRequest) -> VxResponse:
        attempts.append(1)
        raise SendError.unsent("connection refused")

    clock = FakeClock()
    policy = RetryPolicy(max_attempts=4, backoff_base=1.0, backoff_max=3.0)
    with pytest.raises(TransportError) as info:
        mock_client(refused, clock).bind("t", retry=policy).request(
            "POST", "http://x/jobs", operation="submit", json={}
        )
    assert len(attempts) == 4 and info.value.in_doubt is False
    assert info.value.details["attempts"] == 4
    # Full jitter in [ceiling / 2, ceiling] with ceilings 1, 2, 3 (capped).
    for slept, ceiling in zip(clock.slept, [1.0, 2.0, 3.0], strict=True):
        assert ceiling / 2 <= slept <= ceiling


def test_maybe_sent_failures_stop_a_submit_but_not_a_status_call() -> None:
    calls: list[str] = []

    def lost(request: HttpRequest) -> VxResponse:
        calls.append(request.method)
        if len(calls) < 3:
            raise SendError.maybe_sent("read timed out", timeout=True)
        return VxResponse(200, data=b"{}")

    http = mock_client(lost).bind("t")
    with pytest.raises(RequestTimeoutError) as info:
        http.request("POST", "http://x/jobs", operation="submit", json={})
    assert info.value.in_doubt is True and calls == ["POST"]
    resp = http.request("GET", "http://x/jobs/1", operation="status")
    assert resp.ok and resp.attempts == 2 and calls == ["POST", "GET", "GET"]


def test_retry_after_is_capped_by_the_policy() -> None:
    answers = iter([VxResponse(503, {"Retry-After": "9999"}), VxResponse(200)])
    clock = FakeClock()
    http = mock_client(lambda request: next(answers), clock).bind(
        "t", retry=RetryPolicy(retry_after_max=12.0)
    )
    assert http.request("GET", "http://x/", operation="status").ok
    assert clock.slept == [12.0]


def test_upload_progress_reaches_the_transport_through_the_context(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"z" * (600 * 1024))
    progress: list[tuple[int, int]] = []
    http = mock_client(lambda request: VxResponse(200, data=request.read())).bind("t")
    with upload_progress(lambda s, t: progress.append((s, t))):
        resp = http.request("PUT", "http://x/", operation="upload", body=RawBody(path))
    assert resp.data == path.read_bytes()
    assert progress == [(262144, 614400), (524288, 614400), (614400, 614400)]


def test_no_debug_work_when_debug_is_filtered(monkeypatch: pytest.MonkeyPatch) -> None:
    redacted: list[object] = []
    real = transport_module.redact
    monkeypatch.setattr(transport_module, "redact", lambda v: redacted.append(v) or real(v))
    http = mock_client(lambda request: VxResponse(200)).bind("t")
    configure_logging("warning", "console", stream=io.StringIO())
    try:
        for _ in range(3):
            http.request("GET", "http://x/", operation="status", headers={"A": "b"})
        assert redacted == []
        configure_logging("debug", "console", stream=io.StringIO())
        http.request("GET", "http://x/", operation="status", headers={"A": "b"})
        assert len(redacted) == 1  # one redaction per logged request, nothing else
    finally:
        structlog.reset_defaults()


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
    text = out.getvalue()
    assert "http.response" in text  # the request was logged at debug level...
    assert "tok-9f8e7d6c5b4a" not in text and "abcdef123456" not in text  # ...without secrets
    assert "***" in text


# --- small pieces ---------------------------------------------------------------------


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


def test_policies_import_without_urllib3() -> None:
    # Provider metadata holds a RetryPolicy; listing providers must not load urllib3.
    code = "import sys, voxhub.policies; assert 'urllib3' not in sys.modules, 'urllib3 loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
