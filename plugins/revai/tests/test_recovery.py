"""Retries under injected faults, lost submit answers and recovery: never a duplicate job."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest
from voxhub.errors import ProviderUnavailableError, RequestTimeoutError, TransportError
from voxhub.models import JobState, RemoteUrl
from voxhub.sandbox import FaultPlan, serve
from voxhub.transport import Timeouts
from voxhub_revai import RevaiSandbox
from werkzeug.wrappers import Response


def test_lost_upload_answer_is_recovered_not_resubmitted(kit, make_sandbox, provider, wav):
    run = make_sandbox(drop_after_create=1)
    ctx = kit.make_ctx(run, fake_clock=True)
    request, handle = kit.new_job(wav)
    handle = provider.submit(ctx, request, handle)
    counters = run.sandbox.counters
    assert counters.get("faults.drop_after_create") == 1
    assert counters.get("jobs.created") == 1
    assert counters.get("jobs.duplicates") == 0
    assert counters.get("POST /speechtotext/v1/jobs") == 1  # no second upload
    assert run.sandbox.jobs_for_key(handle.idempotency_key) == 1
    assert handle.vendor_ids["job"] == run.sandbox.job_ids()[0]
    assert provider.fetch(ctx, handle).text == kit.SPOKEN


def test_lost_url_answer_is_recovered(kit, make_sandbox, provider):
    run = make_sandbox(drop_after_create=1)
    ctx = kit.make_ctx(run, fake_clock=True)
    request, handle = kit.new_job(RemoteUrl("https://media.example.com/x.mp3"))
    handle = provider.submit(ctx, request, handle)
    assert run.sandbox.counters.get("jobs.created") == 1
    assert handle.vendor_ids["job"] == run.sandbox.job_ids()[0]


def test_lost_request_is_sent_again_once(kit, make_sandbox, provider, wav):
    # The base "drop" fault loses the request before a job exists: recover finds nothing,
    # so the upload is sent again, exactly once.
    run = make_sandbox(faults=FaultPlan(drop=1.0, only_paths=("/speechtotext/v1/jobs",)))
    ctx = kit.make_ctx(run, fake_clock=True)
    request, handle = kit.new_job(wav)
    sandbox = run.sandbox
    # Let the first POST be dropped, then stop faulting (deterministic).
    original = sandbox._pick_fault
    calls = {"n": 0}

    def first_only(path: str) -> str | None:
        calls["n"] += 1
        return original(path) if calls["n"] == 1 else None

    sandbox._pick_fault = first_only  # type: ignore[method-assign]
    handle = provider.submit(ctx, request, handle)
    assert sandbox.counters.get("faults.drop") == 1
    assert sandbox.counters.get("POST /speechtotext/v1/jobs") == 2
    assert sandbox.counters.get("jobs.created") == 1
    assert sandbox.counters.get("jobs.duplicates") == 0


def test_random_faults_everywhere_no_duplicates(kit, make_sandbox, provider, wav):
    plan = FaultPlan(rate_limited=0.1, retry_after=0.01, server_error=0.15, drop=0.1, seed=11)
    run = make_sandbox(faults=plan, drop_after_create_rate=0.2)
    ctx = kit.make_ctx(run, fake_clock=True)
    handles = []
    for i in range(6):
        media = wav if i % 2 == 0 else RemoteUrl(f"https://media.example.com/{i}.mp3")
        request, handle = kit.new_job(media)
        handles.append(provider.submit(ctx, request, handle))
    for handle in handles:
        assert provider.status(ctx, handle).state is JobState.SUCCEEDED
        assert provider.fetch(ctx, handle).text
        assert provider.export(ctx, handle, "vtt")
        provider.close(ctx, handle)
    counters = run.sandbox.counters.snapshot()
    assert counters["jobs.created"] == 6
    assert counters.get("jobs.duplicates", 0) == 0
    assert len({h.vendor_ids["job"] for h in handles}) == 6
    injected = sum(v for k, v in counters.items() if k.startswith("faults."))
    assert injected >= 5, counters  # the run really was under fire


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
    assert info.value.in_doubt is True
    assert run.sandbox.counters.get("jobs.created") == 0


class FlakyPosts(RevaiSandbox):
    """The emulator with its first ``fail_posts`` submits answered 502 before any job exists."""

    def __init__(self, fail_posts: int, **kw):
        super().__init__(**kw)
        self.fail_posts = fail_posts

    def dispatch(self, request):
        if request.method == "POST" and self.fail_posts > 0:
            self.fail_posts -= 1
            self._drain(request)
            return Response("bad gateway", status=502)
        return super().dispatch(request)


@pytest.mark.parametrize(("fail_posts", "ok"), [(2, True), (5, False)])
def test_gateway_errors_on_submit_recover_then_resend(kit, provider, wav, fail_posts, ok):
    with serve(FlakyPosts(fail_posts, processing_seconds=0, use_engine=False)) as run:
        ctx = kit.make_ctx(run, fake_clock=True)
        request, handle = kit.new_job(wav)
        if ok:
            assert provider.submit(ctx, request, handle).vendor_ids["job"]
        else:
            with pytest.raises(ProviderUnavailableError) as info:
                provider.submit(ctx, request, handle)
            # Every attempt was followed by a look-up that found nothing: not in doubt.
            assert info.value.in_doubt is False
            assert info.value.details["recover_checked"] is True
        counters = run.sandbox.counters
        assert counters.get("POST /speechtotext/v1/jobs") == min(fail_posts + 1, 5)
        assert counters.get("jobs.created") == (1 if ok else 0)
        assert counters.get("GET /speechtotext/v1/jobs") == min(fail_posts, 5)


def test_without_idempotency_key_ambiguous_failure_is_raised(kit, make_sandbox, provider):
    run = make_sandbox(drop_after_create=1)
    ctx = kit.make_ctx(run, fake_clock=True)
    request, handle = kit.new_job(RemoteUrl("https://media.example.com/x.mp3"),
                                  idempotency_key=None)
    with pytest.raises(TransportError) as info:
        provider.submit(ctx, request, handle)
    assert info.value.in_doubt is True
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


def test_submit_timeout_then_recover(kit, make_sandbox, provider):
    # The answer is slower than the read timeout; the job exists by the time we look.
    plan = FaultPlan(slow=1.0, slow_seconds=0.15, only_paths=("/speechtotext/v1/jobs",))
    run = make_sandbox(faults=plan)
    sandbox = run.sandbox
    original = sandbox._pick_fault
    seen = {"n": 0}

    def first_post_only(path: str) -> str | None:
        seen["n"] += 1
        return original(path) if seen["n"] == 1 else None

    sandbox._pick_fault = first_post_only  # type: ignore[method-assign]
    ctx = kit.make_ctx(run, timeouts=Timeouts(connect=2, read=0.05))
    request, handle = kit.new_job(RemoteUrl("https://media.example.com/slow.mp3"))
    # The transport raises RequestTimeoutError (in doubt); submit waits, recovers, no resend.
    handle = provider.submit(ctx, request, handle)
    assert sandbox.counters.get("jobs.created") == 1
    assert sandbox.counters.get("POST /speechtotext/v1/jobs") == 1
    assert handle.vendor_ids["job"] == sandbox.job_ids()[0]
    assert issubclass(RequestTimeoutError, ProviderUnavailableError)
