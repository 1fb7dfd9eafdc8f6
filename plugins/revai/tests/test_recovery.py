"""Lost submit answers, retries under injected faults, and recovery: never a duplicate job.

``submit`` sends one ``POST /jobs``; when its fate is unknown it raises ``in_doubt``
and the core asks ``recover`` before sending anything again. The provider's half is
tested directly, the whole protocol through the orchestrator.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import attrs
import pytest
from voxhub.plugin import (
    JobRequest,
    JobState,
    LocalFile,
    ProviderError,
    ProviderUnavailableError,
    RemoteUrl,
    RequestTimeoutError,
    TransportError,
)
from voxhub.sandbox import serve
from voxhub.sandbox_kit import FaultPlan
from voxhub.transport import Timeouts
from voxhub_revai import RevaiSandbox

JOBS = "/speechtotext/v1/jobs"


def _lose_next_submit_answer(run) -> None:
    # The kit's scripted reaction: create the job as usual, then drop the connection.
    run.sandbox.script(endpoint="create_job", action="drop_after")


def test_lost_upload_answer_raises_in_doubt_and_recover_finds_it(kit, make_sandbox, provider,
                                                                 wav):
    run = make_sandbox()
    _lose_next_submit_answer(run)
    ctx = kit.make_ctx(run, fake_clock=True)
    request, handle = kit.new_job(wav)
    with pytest.raises(TransportError) as info:
        provider.submit(ctx, request, handle)
    assert info.value.in_doubt is True
    counters = run.sandbox.counters
    assert counters.get("scripted.drop_after") == 1
    assert counters.get("POST /speechtotext/v1/jobs") == 1  # sent once, never again by itself
    assert counters.get("jobs.created") == 1
    found = provider.recover(ctx, request, handle)
    assert found is not None and found.vendor_ids["job"] == run.sandbox.job_ids()[0]
    assert found.vendor_state == {"upload": True}
    assert provider.fetch(ctx, found).text == kit.SPOKEN


def test_lost_url_answer_is_recovered_through_the_orchestrator(make_sandbox, make_orch):
    run = make_sandbox()
    _lose_next_submit_answer(run)
    handle = make_orch(run).submit(
        JobRequest(provider="revai", media=RemoteUrl("https://media.example.com/x.mp3")))
    counters = run.sandbox.counters
    assert counters.get("jobs.created") == 1 and counters.get("jobs.duplicates") == 0
    assert counters.get("POST /speechtotext/v1/jobs") == 1
    assert counters.get("GET /speechtotext/v1/jobs") >= 1  # the look-up that found it
    assert handle.vendor_ids["job"] == run.sandbox.job_ids()[0]


def test_lost_request_is_sent_again_once(make_sandbox, make_orch, wav):
    # A request dropped before the vendor acted: nothing to recover, so it is sent again,
    # exactly once (by the transport if it knows it never arrived, else after a look-up).
    run = make_sandbox()
    run.sandbox.script(endpoint="create_job", action="drop")
    make_orch(run).submit(JobRequest(provider="revai", media=LocalFile(wav)))
    counters = run.sandbox.counters
    assert counters.get("scripted.drop") == 1
    assert counters.get("POST /speechtotext/v1/jobs") == 2
    assert counters.get("jobs.created") == 1
    assert counters.get("jobs.duplicates") == 0


def test_random_faults_everywhere_no_duplicates(kit, make_sandbox, make_orch, provider, wav):
    plan = FaultPlan(rate_limited=0.1, retry_after=0.01, server_error=0.1, drop=0.05,
                     drop_after=0.15, seed=4)
    run = make_sandbox(faults=plan)
    orch = make_orch(run)
    ctx = kit.make_ctx(run, fake_clock=True)
    handles = []
    for i in range(6):
        media = LocalFile(wav) if i % 2 == 0 else RemoteUrl(f"https://media.example.com/{i}.mp3")
        request = JobRequest(provider="revai", media=media, idempotency_key=f"storm-{i}")
        for _attempt in range(3):  # what a user does when a submit gave up: submit again
            try:
                handles.append(orch.submit(request))
                break
            except ProviderUnavailableError:
                continue
    assert len(handles) == 6
    for handle in handles:
        assert provider.status(ctx, handle).state is JobState.SUCCEEDED
        assert provider.fetch(ctx, handle).text
        assert provider.export(ctx, handle, "vtt")
        provider.close(ctx, handle)
    counters = run.sandbox.counters.snapshot()
    assert counters["jobs.created"] == 6
    assert counters.get("jobs.duplicates", 0) == 0
    assert len({h.vendor_ids["job"] for h in handles}) == 6
    assert counters.get("faults.drop_after", 0) >= 1  # some answers really were lost
    injected = sum(v for k, v in counters.items() if k.startswith("faults."))
    assert injected >= 5, counters  # the run really was under fire


def test_fault_plan_drop_after_spares_reads(make_sandbox, kit, provider):
    # drop_after loses answers of creating requests only: a read is answered as usual.
    run = make_sandbox(faults=FaultPlan(drop_after=1.0))
    ctx = kit.make_ctx(run, fake_clock=True)
    assert provider.account(ctx).email
    with pytest.raises(TransportError) as info:
        provider.submit(ctx, *kit.new_job(RemoteUrl("https://media.example.com/a.mp3")))
    assert info.value.in_doubt is True
    assert run.sandbox.counters.get("faults.drop_after") == 1
    assert run.sandbox.counters.get("jobs.created") == 1


def test_rate_limited_submit_is_retried_by_transport(kit, make_sandbox, provider, wav):
    run = make_sandbox(faults=FaultPlan(rate_limited=0.5, retry_after=2, seed=5))
    ctx = kit.make_ctx(run, fake_clock=True)
    for _ in range(4):
        request, handle = kit.new_job(wav)
        provider.submit(ctx, request, handle)
    counters = run.sandbox.counters
    assert counters.get("faults.rate_limited") > 0
    assert counters.get("jobs.created") == 4
    assert 2.0 in ctx.clock.slept  # Retry-After honoured


def test_persistent_503_gives_up_in_doubt(kit, make_sandbox, provider, wav):
    run = make_sandbox(faults=FaultPlan(server_error=1.0, server_error_statuses=(503,)))
    ctx = kit.make_ctx(run, fake_clock=True)
    request, handle = kit.new_job(wav)
    with pytest.raises(ProviderUnavailableError) as info:
        provider.submit(ctx, request, handle)
    assert info.value.status == 503
    assert info.value.in_doubt is True  # a gateway may have passed it on
    assert run.sandbox.counters.get("POST /speechtotext/v1/jobs") == 1
    assert run.sandbox.counters.get("jobs.created") == 0


@pytest.mark.parametrize(("fail_posts", "ok"), [(2, True), (6, False)])
def test_gateway_errors_on_submit_are_looked_up_then_resent(make_sandbox, make_orch, wav,
                                                            fail_posts, ok):
    run = make_sandbox()
    run.sandbox.script(endpoint="create_job", status=502, body="bad gateway", times=fail_posts)
    request = JobRequest(provider="revai", media=LocalFile(wav))
    if ok:
        assert make_orch(run).submit(request).vendor_ids["job"]
    else:
        with pytest.raises(ProviderUnavailableError):
            make_orch(run).submit(request)
    counters = run.sandbox.counters
    posts = counters.get("POST /speechtotext/v1/jobs")
    assert posts == (fail_posts + 1 if ok else counters.get("scripted.answer"))
    assert counters.get("jobs.created") == (1 if ok else 0)
    # Every resend came after a look-up that found nothing.
    assert counters.get("GET /speechtotext/v1/jobs") >= posts - 1


def test_without_idempotency_key_a_lost_answer_cannot_be_looked_up(kit, make_sandbox, provider):
    run = make_sandbox()
    _lose_next_submit_answer(run)
    ctx = kit.make_ctx(run, fake_clock=True)
    request, handle = kit.new_job(RemoteUrl("https://media.example.com/x.mp3"),
                                  idempotency_key=None)
    with pytest.raises(TransportError) as info:
        provider.submit(ctx, request, handle)
    assert info.value.in_doubt is True
    with pytest.raises(ProviderError) as lookup:
        provider.recover(ctx, request, handle)
    assert lookup.value.in_doubt is True  # "not found" would be a lie: it stays in doubt
    assert run.sandbox.counters.get("POST /speechtotext/v1/jobs") == 1  # not sent again


def test_recover_finds_by_key_and_respects_time_window(kit, sandbox, ctx, provider, wav):
    request, handle = kit.new_job(wav)
    assert provider.recover(ctx, request, handle) is None
    submitted = provider.submit(ctx, request, handle)
    for _ in range(3):  # other jobs, newer, in between
        other, other_handle = kit.new_job(RemoteUrl("https://media.example.com/o.mp3"))
        provider.submit(ctx, other, other_handle)
    found = provider.recover(ctx, request, handle)
    assert found is not None and found.vendor_ids == submitted.vendor_ids
    future = attrs.evolve(handle, created_at=handle.created_at + timedelta(hours=1))
    assert provider.recover(ctx, request, future) is None  # older than the window: not searched


def test_read_timeouts_on_gets_are_retried(kit, make_sandbox, provider, wav):
    plan = FaultPlan(slow=0.5, slow_seconds=0.4, seed=2, only_paths=("/speechtotext/v1/account",))
    run = make_sandbox(faults=plan)
    ctx = kit.make_ctx(run, timeouts=Timeouts(connect=2, read=0.15), fake_clock=True)
    for _ in range(3):
        assert provider.account(ctx).email
    assert run.sandbox.counters.get("faults.slow") >= 1


class SlowFirstSubmit(RevaiSandbox):
    """The emulator answering its first submit late: the client's read times out first."""

    def __init__(self, delay: float, **kw):
        super().__init__(**kw)
        self.delay = delay
        self._slowed = threading.Event()

    def on_create_job(self, request):
        answer = super().on_create_job(request)
        if not self._slowed.is_set():
            self._slowed.set()
            time.sleep(self.delay)
        return answer


def test_submit_timeout_is_in_doubt_and_the_job_is_found(kit, provider):
    with serve(SlowFirstSubmit(0.3, processing_seconds=0, use_engine=False)) as run:
        ctx = kit.make_ctx(run, timeouts=Timeouts(connect=2, read=0.05))
        request, handle = kit.new_job(RemoteUrl("https://media.example.com/slow.mp3"))
        with pytest.raises(RequestTimeoutError) as info:
            provider.submit(ctx, request, handle)
        assert info.value.in_doubt is True
        found = provider.recover(ctx, request, handle)
        assert found is not None and found.vendor_ids["job"] == run.sandbox.job_ids()[0]
        assert run.sandbox.counters.get("POST /speechtotext/v1/jobs") == 1
        assert run.sandbox.counters.get("jobs.created") == 1
