"""Retry of failed async tasks, and fault injection (429 / 5xx / dropped connections)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from nhn_helpers import new_handle, wait_terminal, write_wav
from voxhub.clock import FakeClock
from voxhub.errors import (
    InvalidInputError,
    ProviderUnavailableError,
    RateLimitedError,
    TransportError,
)
from voxhub.models import JobHandle, JobRequest, JobState, LocalFile, RemoteUrl, Transcript
from voxhub.provider import ProviderContext, Submitted
from voxhub.sandbox import FaultPlan, RunningSandbox
from voxhub.transport import RetryPolicy
from voxhub_nhn.provider import NhnProvider

URL = "https://media.example.com/call.mp3"


@pytest.mark.parametrize("new_id", [True, False], ids=["new-task-id", "same-task-id"])
def test_failed_task_retried_to_success(
    new_id: bool, provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext],
) -> None:
    server = nhn_sandbox(failure_rate=1.0, retry_new_id=new_id, processing_seconds=0.2)
    ctx = nhn_ctx(server)
    handle = provider.submit(ctx, JobRequest("nhn", media=RemoteUrl(URL)), new_handle())
    assert isinstance(handle, JobHandle)
    first = handle.vendor_ids["task_id"]
    assert wait_terminal(provider, ctx, handle)[-1].state is JobState.FAILED

    retried = provider.retry(ctx, handle)
    assert retried.job_id == handle.job_id  # the same voxhub job
    assert retried.vendor_state["task_history"] == [first]
    assert retried.vendor_state["retries"] == 1
    assert retried.vendor_state["mode"] == "async"
    second = retried.vendor_ids["task_id"]
    assert (second != first) is new_id
    assert server.sandbox.task_state(second) in ("PENDING", "IN_PROGRESS")  # type: ignore[attr-defined]
    assert wait_terminal(provider, ctx, retried)[-1].state is JobState.SUCCEEDED
    transcript = provider.fetch(ctx, retried)
    assert isinstance(transcript, Transcript) and transcript.text
    counts = server.sandbox.counters.snapshot()
    app = server.sandbox.app_key  # type: ignore[attr-defined]
    assert counts[f"GET /v2.1/appkeys/{app}/stt/async/{first}/retry"] == 1
    assert counts["tasks.retried"] == 1


def test_retry_refused_for_sync_jobs_and_unfailed_tasks(
    provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext], tmp_path: Path,
) -> None:
    server = nhn_sandbox(processing_seconds=5.0)
    ctx = nhn_ctx(server)
    out = provider.submit(ctx, JobRequest("nhn", media=LocalFile(write_wav(tmp_path / "a.wav", 1))),
                          new_handle())
    assert isinstance(out, Submitted)
    with pytest.raises(InvalidInputError, match="synchronous"):
        provider.retry(ctx, out.handle)
    handle = provider.submit(ctx, JobRequest("nhn", media=RemoteUrl(URL)), new_handle())
    assert isinstance(handle, JobHandle)
    with pytest.raises(InvalidInputError) as info:
        provider.retry(ctx, handle)
    assert info.value.details["code"] == 4000001


@pytest.mark.parametrize(
    "plan",
    [
        # Seeds checked to give no run of 6 faults in the first 300 requests: deterministic.
        FaultPlan(rate_limited=0.3, retry_after=0.01, seed=1),
        FaultPlan(server_error=0.3, seed=2),
        FaultPlan(drop=0.3, seed=3),
    ],
    ids=["429", "5xx", "drop"],
)
def test_status_polls_survive_faults(
    plan: FaultPlan, provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext],
) -> None:
    server = nhn_sandbox(processing_seconds=0.2)
    ctx = nhn_ctx(server, retry=RetryPolicy(max_attempts=6, max_rate_limited_attempts=6,
                                             backoff_base=0.01, retry_after_max=0.05))
    handle = provider.submit(ctx, JobRequest("nhn", media=RemoteUrl(URL)), new_handle())
    assert isinstance(handle, JobHandle)
    # Faults only on the status path: GETs are idempotent and retried per RetryPolicy.
    server.sandbox.set_faults(FaultPlan(**{**plan.to_dict(), "only_paths": ("/v2.1/",)}))
    assert wait_terminal(provider, ctx, handle)[-1].state is JobState.SUCCEEDED
    faults = {k: v for k, v in server.sandbox.counters.snapshot().items()
              if k.startswith("faults.")}
    assert sum(faults.values()) >= 1


def test_rate_limited_submit_is_retried_and_honours_retry_after(
    provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext], fake_clock: FakeClock, tmp_path: Path,
) -> None:
    server = nhn_sandbox(faults=FaultPlan(rate_limited=1.0, retry_after=0.02))
    ctx = nhn_ctx(server)
    wav = write_wav(tmp_path / "a.wav", 1.0)
    with pytest.raises(RateLimitedError) as info:
        provider.submit(ctx, JobRequest("nhn", media=LocalFile(wav)), new_handle())
    assert info.value.code == 4291000 and info.value.retry_after == 0.02
    assert 0.02 in fake_clock.slept  # Retry-After was honoured between attempts
    # 429 means "refused before processing": safe to resend, so it was (4 attempts).
    assert server.sandbox.counters.get("faults.rate_limited") == 4
    server.sandbox.set_faults(FaultPlan(rate_limited=0.5, retry_after=0.01, seed=1))
    out = provider.submit(ctx, JobRequest("nhn", media=LocalFile(wav)), new_handle())
    assert isinstance(out, Submitted)


@pytest.mark.parametrize("fault", ["server_error", "drop"])
def test_ambiguous_submit_failures_are_not_resent(
    fault: str, provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext], tmp_path: Path,
) -> None:
    plan = FaultPlan(server_error=1.0) if fault == "server_error" else FaultPlan(drop=1.0)
    server = nhn_sandbox(faults=plan)
    ctx = nhn_ctx(server)
    app = server.sandbox.app_key  # type: ignore[attr-defined]
    for media, path in ((LocalFile(write_wav(tmp_path / "a.wav", 1.0)), "stt"),
                        (RemoteUrl(URL), "stt/async")):
        server.sandbox.counters.reset()
        with pytest.raises(ProviderUnavailableError) as info:
            provider.submit(ctx, JobRequest("nhn", media=media), new_handle())
        if fault == "drop":
            assert isinstance(info.value, TransportError)
            assert info.value.in_doubt is True
        assert server.sandbox.counters.get(f"POST /v2.1/appkeys/{app}/{path}") == 1
    assert server.sandbox.counters.get("tasks.created") == 0


def test_gateway_5xx_on_status_retried_then_surfaced(
    provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext],
) -> None:
    server = nhn_sandbox(processing_seconds=0.0)
    ctx = nhn_ctx(server)
    handle = provider.submit(ctx, JobRequest("nhn", media=RemoteUrl(URL)), new_handle())
    assert isinstance(handle, JobHandle)
    server.sandbox.answer_code(5030001, times=2, endpoint="status")  # type: ignore[attr-defined]
    assert provider.status(ctx, handle).state is JobState.SUCCEEDED  # 2 retried 503s, then ok
    assert server.sandbox.counters.get("scripted.answer") == 2
    server.sandbox.answer_code(5020001, times=10, endpoint="status")  # type: ignore[attr-defined]
    with pytest.raises(ProviderUnavailableError) as info:
        provider.status(ctx, handle)
    assert info.value.code == 5020001 and info.value.status == 502
