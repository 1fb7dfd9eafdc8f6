"""Back-off visibility and limits: every retry wait is told and logged, ``Retry-After``
is read strictly and capped, and the deadline in scope caps a request's total wait.

Real HTTP over loopback (werkzeug servers, the Rev.ai sandbox); the fake clock makes
every wait instant and records it, so nothing here depends on timing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, MutableMapping
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs
from transport_support import Handler, client, sequence
from voxhub import JobRequest, LocalFile, Orchestrator
from voxhub.clock import FakeClock
from voxhub.errors import RateLimitedError, TransportError
from voxhub.models import JobHandle, JobKind, JobState, JobStatus
from voxhub.policies import current_deadline, deadline_scope
from voxhub.provider import PollingHints
from voxhub.redact import MASK, Secret
from voxhub.sandbox import RunningSandbox
from voxhub.store import Store
from voxhub.transport import Backoff, HttpClient, RetryPolicy, parse_retry_after
from voxhub.waiting import Waiter
from werkzeug.wrappers import Response

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "samples" / "hello.wav"


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every log event of the test, whatever level filter an earlier test configured."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        with capture_logs() as captured:
            yield captured
    finally:
        structlog.configure(**saved)


def listen(http: HttpClient) -> list[Backoff]:
    notices: list[Backoff] = []
    http.add_backoff_listener(notices.append)
    return notices


def jitter_bounds(policy: RetryPolicy, nth: int) -> tuple[float, float]:
    ceiling = min(policy.backoff_max, policy.backoff_base * 2 ** (nth - 1))
    return ceiling / 2, ceiling


# --- Retry-After: read strictly, capped, told --------------------------------------------


def test_an_unreadable_retry_after_gets_the_normal_back_off_and_is_told(
    server: Callable[[Handler], str], logs: list[MutableMapping[str, Any]]
) -> None:
    handler, seen = sequence(
        Response("slow", 429, headers={"Retry-After": "abc"}),
        Response("slow", 429, headers={"Retry-After": "abc"}),
        Response("ok"),
    )
    clock = FakeClock()
    http = client(clock)
    notices = listen(http)
    policy = RetryPolicy(backoff_base=2.0, backoff_max=60.0)
    resp = http.bind("revai", retry=policy).request(
        "GET", server(handler) + "/jobs/j1?access_token=zz-secret", operation="status"
    )
    assert resp.ok and len(seen) == 3
    assert [n.reason for n in notices] == ["429 (Retry-After unreadable)"] * 2
    assert [n.attempt for n in notices] == [1, 2]
    for nth, notice in enumerate(notices, 1):
        low, high = jitter_bounds(policy, nth)
        assert low <= notice.seconds <= high  # the policy's back-off, not 0 and not forever
    assert clock.slept == [n.seconds for n in notices]
    first = notices[0]
    assert (first.provider, first.method, first.path, first.operation) == (
        "revai", "GET", "/jobs/j1", "status"
    )
    lines = [e for e in logs if e["event"] == "backoff"]
    assert [e["log_level"] for e in lines] == ["info", "info"]
    assert lines[0]["provider"] == "revai"
    assert lines[0]["reason"] == "429 (Retry-After unreadable)"
    assert lines[0]["seconds"] == round(first.seconds, 3)
    assert "zz-secret" not in repr(logs) and "zz-secret" not in repr(notices)


def test_a_huge_retry_after_is_capped_per_wait(server: Callable[[Handler], str]) -> None:
    handler, _ = sequence(
        Response("", 429, headers={"Retry-After": "100000"}),
        Response("", 503, headers={"Retry-After": "100000"}),
        Response("ok"),
    )
    clock = FakeClock()
    http = client(clock)
    notices = listen(http)
    assert http.bind("t").request("GET", server(handler), operation="status").ok
    assert clock.slept == [300.0, 300.0]  # RetryPolicy.retry_after_max, the documented cap
    assert [n.reason for n in notices] == ["429 (Retry-After capped)", "503 (Retry-After capped)"]
    assert [n.seconds for n in notices] == [300.0, 300.0]


def test_a_readable_retry_after_is_honoured_as_seconds_or_date(
    server: Callable[[Handler], str],
) -> None:
    clock = FakeClock(start=1_700_000_000.0)  # whole seconds, as HTTP dates have
    in_30s = formatdate(clock.time() + 30, usegmt=True)
    handler, _ = sequence(
        Response("", 429, headers={"Retry-After": "7"}),
        Response("", 429, headers={"Retry-After": in_30s}),
        Response("", 503),  # no header: the policy's back-off
        Response("ok"),
    )
    http = client(clock)
    notices = listen(http)
    policy = RetryPolicy(backoff_base=4.0)
    assert http.bind("t", retry=policy).request("GET", server(handler), operation="x").ok
    assert [n.reason for n in notices] == ["429 (Retry-After)", "429 (Retry-After)", "503"]
    assert notices[0].seconds == 7.0
    assert notices[1].seconds == 23.0  # the date was 30 s away before the 7 s wait
    low, high = jitter_bounds(policy, 1)  # the first server error of this request
    assert low <= notices[2].seconds <= high


@pytest.mark.parametrize(
    "value",
    ["abc", "-5", "nan", "inf", "1e3", "+7", "1_000", "\u0663", "7 s", "", " ", "9" * 400,
     "Sun, 06 Nov 99999 08:49:37 GMT", "Mon, 32 Foo 2024 25:00:00 GMT"],
)
def test_retry_after_values_that_cannot_be_read(value: str) -> None:
    assert parse_retry_after(value, now=0.0) is None


def test_retry_after_values_that_can_be_read() -> None:
    epoch_1994 = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT
    assert parse_retry_after(" 120 ") == 120.0
    assert parse_retry_after("100000") == 100000.0  # read as sent; the client caps it
    for form in ("Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
                 "Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850
                 "Sun Nov  6 08:49:37 1994"):  # asctime: no zone, read as GMT
        assert parse_retry_after(form, now=epoch_1994 - 60) == 60.0
        assert parse_retry_after(form, now=epoch_1994 + 60) == 0.0  # past: now


# --- the deadline in scope --------------------------------------------------------------


def test_the_deadline_caps_the_total_wait_of_one_request(
    server: Callable[[Handler], str],
) -> None:
    handler, seen = sequence(Response("", 429, headers={"Retry-After": "30"}))
    clock = FakeClock()
    http = client(clock)
    notices = listen(http)
    with deadline_scope(clock.monotonic() + 100):
        resp = http.bind("revai").request("GET", server(handler), operation="status")
    # 30 + 30 + 30 fit in 100 s; a fourth wait would not: the fourth answer is returned.
    assert clock.slept == [30.0, 30.0, 30.0] and len(seen) == 4
    assert resp.status == 429 and resp.attempts == 4
    assert resp.gave_up is not None and "deadline" in resp.gave_up
    assert len(notices) == 3


def test_past_the_deadline_nothing_is_waited(
    server: Callable[[Handler], str], logs: list[MutableMapping[str, Any]]
) -> None:
    handler, seen = sequence(Response("", 503))
    clock = FakeClock()
    http = client(clock)
    notices = listen(http)
    with deadline_scope(clock.monotonic() - 1):
        resp = http.bind("t").request("GET", server(handler), operation="status")
    assert resp.status == 503 and len(seen) == 1 and clock.slept == [] and notices == []
    gave_up = [e for e in logs if e["event"] == "backoff.gave_up"]
    assert gave_up and gave_up[0]["provider"] == "t" and gave_up[0]["reason"] == "503"


def test_connection_errors_are_told_and_stop_at_the_deadline() -> None:
    clock = FakeClock()
    http = client(clock)
    notices = listen(http)
    policy = RetryPolicy(max_attempts=3, backoff_base=1.0)
    with pytest.raises(TransportError) as failed:
        http.bind("t", retry=policy).request("GET", "http://127.0.0.1:9/x", operation="status")
    assert [n.reason for n in notices] == ["connection refused"] * 2
    assert "deadline" not in str(failed.value) and "gave_up" not in failed.value.details
    notices.clear()
    with pytest.raises(TransportError) as failed, deadline_scope(clock.monotonic() + 0.4):
        http.bind("t", retry=policy).request("GET", "http://127.0.0.1:9/x", operation="status")
    assert notices == []  # the first wait (0.5 to 1 s) would already pass the deadline
    assert failed.value.details == {"attempts": 1, "gave_up": "deadline"}
    assert "would pass the deadline" in str(failed.value)
    assert failed.value.provider == "t"


def test_deadline_scopes_nest_to_the_earliest_and_end_with_their_block() -> None:
    assert current_deadline() is None
    with deadline_scope(50.0) as outer:
        assert outer == 50.0
        with deadline_scope(80.0) as inner:
            assert inner == 50.0  # an inner block never extends the time left
        with deadline_scope(None), deadline_scope(20.0):
            assert current_deadline() == 20.0
        assert current_deadline() == 50.0
    assert current_deadline() is None
    seen: list[float | None] = []
    with deadline_scope(5.0):  # a scope belongs to its thread
        thread = threading.Thread(target=lambda: seen.append(current_deadline()))
        thread.start()
        thread.join()
    assert seen == [None]
    with pytest.raises(ValueError, match="nan"), deadline_scope(float("nan")):
        pass


def test_a_wait_with_a_timeout_puts_its_deadline_in_scope(tmp_path: Path) -> None:
    clock = FakeClock()
    clock.advance(1000)
    asked: list[float | None] = []

    def status(handle: JobHandle) -> JobStatus:
        asked.append(current_deadline())
        return JobStatus(JobState.RUNNING if len(asked) < 3 else JobState.SUCCEEDED)

    store = Store(tmp_path / "jobs.db", clock=clock)
    try:
        waiter = Waiter(store=store, clock=clock, status=status)
        handle = JobHandle("vx_1", "t", JobKind.TRANSCRIPTION, "t", vendor_ids={"job": "j1"})
        hints = PollingHints(first_poll=1.0, max_interval=2.0)
        waiter.wait(handle, hints, callbacks=False, timeout=60)
        assert asked == [1060.0] * 3
        asked.clear()
        waiter.wait(handle, hints, callbacks=False)
        assert asked == [None] * 3
    finally:
        store.close()


def test_a_rate_limited_status_gives_up_at_the_wait_timeout_with_the_vendor_error(
    voxhub_sandbox: Callable[..., RunningSandbox],
    voxhub_orchestrator: Callable[..., Orchestrator],
) -> None:
    revai = voxhub_sandbox("revai", processing_seconds=30)
    clock = FakeClock()
    orch = voxhub_orchestrator({"revai": revai.settings()}, clock=clock)
    handle = orch.submit(JobRequest(provider="revai", media=LocalFile(SAMPLE)))
    notices = listen(orch.http)
    revai.sandbox.script(endpoint="get_job", status=429, headers={"Retry-After": "100000"},
                         body={"title": "Too Many Requests"}, times=40)
    with pytest.raises(RateLimitedError) as limited:
        orch.wait(handle, timeout=700)
    # Capped at 300 s per wait; 300 + 300 fit in 700 s, a third wait would not.
    assert clock.slept == [300.0, 300.0]
    assert [(n.provider, n.reason) for n in notices] == [("revai", "429 (Retry-After capped)")] * 2
    assert limited.value.provider == "revai" and limited.value.details["gave_up"] == "deadline"
    assert "would pass the deadline" in str(limited.value)


def test_an_unreadable_retry_after_on_a_vendor_is_waited_out_visibly(
    voxhub_sandbox: Callable[..., RunningSandbox],
    voxhub_orchestrator: Callable[..., Orchestrator],
) -> None:
    revai = voxhub_sandbox("revai", processing_seconds=30)
    clock = FakeClock()
    orch = voxhub_orchestrator({"revai": revai.settings()}, clock=clock)
    handle = orch.submit(JobRequest(provider="revai", media=LocalFile(SAMPLE)))
    notices = listen(orch.http)
    revai.sandbox.script(endpoint="get_job", status=429, headers={"Retry-After": "abc"}, times=3)
    assert orch.status(handle).state in {JobState.QUEUED, JobState.RUNNING}
    assert [n.reason for n in notices] == ["429 (Retry-After unreadable)"] * 3
    assert [n.path.rsplit("/", 1)[-1] for n in notices] == [handle.vendor_id] * 3
    assert all(0 < n.seconds <= 30 for n in notices)


# --- listeners ----------------------------------------------------------------------------


def test_a_failing_listener_is_logged_and_the_request_goes_on(
    server: Callable[[Handler], str], logs: list[MutableMapping[str, Any]]
) -> None:
    handler, _ = sequence(Response("", 503), Response("", 503), Response("ok"))
    http = client()

    def broken(notice: Backoff) -> None:
        raise RuntimeError("display went away")

    http.add_backoff_listener(broken)
    notices = listen(http)  # added after the broken one: still told
    assert http.bind("t").request("GET", server(handler), operation="status").ok
    assert len(notices) == 2
    assert [e["event"] for e in logs].count("backoff.listener_failed") == 2


def test_removing_a_listener_stops_its_notices(server: Callable[[Handler], str]) -> None:
    handler, _ = sequence(Response("", 503), Response("ok"))
    http = client()
    told: list[Backoff] = []
    remove_one = http.add_backoff_listener(told.append)
    remove_two = http.add_backoff_listener(told.append)  # registered twice: told twice
    assert http.bind("t").request("GET", server(handler), operation="status").ok
    assert len(told) == 2
    remove_one()
    remove_one()  # removing twice is harmless and leaves the other registration
    handler, _ = sequence(Response("", 503), Response("ok"))
    assert http.bind("t").request("GET", server(handler), operation="status").ok
    assert len(told) == 3
    remove_two()
    handler, _ = sequence(Response("", 503), Response("ok"))
    assert http.bind("t").request("GET", server(handler), operation="status").ok
    assert len(told) == 3


def test_paths_in_notices_never_carry_secrets(
    server: Callable[[Handler], str], logs: list[MutableMapping[str, Any]]
) -> None:
    key = Secret("k-5f4e3d2c1b0a")
    handler, _ = sequence(Response("", 503), Response("ok"))
    http = client()
    notices = listen(http)
    url = server(handler) + f"/v1/{key.reveal()}/jobs?sig=abcdef"
    assert http.bind("t").request("GET", url, operation="status").ok
    assert any(e["event"] == "backoff" for e in logs)
    assert notices[0].path == f"/v1/{MASK}/jobs"
    assert key.reveal() not in repr(logs) and "abcdef" not in repr(logs)
