"""Fault storm: hundreds of jobs through ``run_many`` while the sandbox misbehaves.

The sandbox answers a share of requests with 429 + ``Retry-After``, 502/503/504,
answers more slowly than the client's read timeout, or drops the connection (and,
for Rev.ai, the fault plan's ``drop_after`` loses the answer of some submits *after*
the job was created).
Proven here:

* every job ends succeeded, or failed with the vendor's own terminal reason — a
  transport fault only stops a job when the provider's retry policy says so, and
  resuming the batch then finishes it;
* the sandbox counted exactly one vendor job per input (no duplicate submission);
* every logical call stayed inside its provider's :class:`RetryPolicy` (attempts,
  429 budget, Retry-After honoured, jittered back-off, POSTs never repeated after an
  ambiguous answer), and the sandbox saw exactly the attempts the client made.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reliability_support import Call, RecordingHttp, policy_violations
from voxhub import (
    Config,
    JobFailedError,
    JobRequest,
    JobState,
    Orchestrator,
    ProviderUnavailableError,
    RemoteUrl,
    Transcript,
)
from voxhub.orchestrator import Outcome
from voxhub.plugins import PluginManager
from voxhub.policies import Timeouts
from voxhub.sandbox import FaultPlan, RunningSandbox
from voxhub.store import Store
from voxhub_revai.sandbox import FAILURES, RevaiSandbox

#: Shorter than the slow answers below, so some calls end in a read timeout.
READ_TIMEOUT = 0.5
#: NHN's submits are not faulted and cannot be recovered: a timeout there would only be
#: machine load, so its read timeout leaves room; slow polls still run just past it.
NHN_READ_TIMEOUT = 2.0
RETRY_AFTER = 0.1
JOBS = 200


def storm(
    seed: int,
    only_paths: tuple[str, ...] | None = None,
    read_timeout: float = READ_TIMEOUT,
    drop_after: float = 0.0,
) -> FaultPlan:
    """About 25% of requests faulted: 12% 429, 5% 5xx, 3% drops, 3% read timeouts.

    ``drop_after`` adds that share of submits (POSTs) whose answer is lost after the
    vendor created the job.
    """
    return FaultPlan(
        rate_limited=0.12,
        retry_after=RETRY_AFTER,
        server_error=0.05,
        drop=0.03,
        slow=0.03,
        # Just past the read timeout: the call times out, and the request lands within
        # its in-flight window, which the core waits out before it trusts "not found".
        slow_seconds=read_timeout + 0.05,
        seed=seed,
        only_paths=only_paths,
        drop_after=drop_after,
    )


def _orchestrator(
    tmp_path: Path,
    plugins: PluginManager,
    server: RunningSandbox,
    profile: str,
    read_timeout: float = READ_TIMEOUT,
) -> tuple[Orchestrator, RecordingHttp]:
    http = RecordingHttp(timeouts=Timeouts(connect=2, read=read_timeout))
    orch = Orchestrator(
        store=Store(tmp_path / "storm.db"),
        config=Config.from_profiles({profile: server.settings()}),
        plugins=plugins,
        http=http,
    )
    return orch, http


def _check_outcomes(outcomes: list[Outcome], calls: list[Call], reasons: set[str]) -> int:
    """Each outcome is a success, a vendor failure, or a fault the policy gave up on.

    Returns how many jobs stopped on such a policy decision (they are resumed later).
    """
    stopped = 0
    for outcome in outcomes:
        if outcome.ok:
            assert isinstance(outcome.result, Transcript) and outcome.result.text
            continue
        error = outcome.error
        if isinstance(error, JobFailedError):
            assert error.reason in reasons, f"not a vendor terminal reason: {error!r}"
            continue
        # Only acceptable when some call really spent its retry budget.
        assert isinstance(error, ProviderUnavailableError), f"unexpected: {error!r}"
        assert any(c.gave_up and c.exhausted for c in calls), f"{error!r} without a spent budget"
        stopped += 1
    return stopped


def _settled(sandbox: Any) -> dict[str, int]:
    """The sandbox's counters once it has finished every request: a slow answer the client
    gave up on (read timeout) is still being served, and counted, after the batch ends."""
    counters = dict(sandbox.counters.snapshot())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)  # longer than any slow answer of the storm
        now = dict(sandbox.counters.snapshot())
        if now == counters:
            break
        counters = now
    return counters


def _check_attempts_match_server(calls: list[Call], counters: dict[str, int]) -> None:
    # Nothing retries behind the transport's back: the server saw every attempt, no more.
    sent = Counter[str]()
    for call in calls:
        sent[f"{call.method} /{call.path}"] += len(call.outcomes)
    routes = {k: v for k, v in counters.items() if k.split(" ", 1)[0] in {"GET", "POST"}}
    assert routes == dict(sent)
    assert counters["requests"] == sum(sent.values())


@pytest.mark.slow
def test_revai_batch_survives_a_fault_storm(
    tmp_path: Path,
    voxhub_plugins: PluginManager,
    voxhub_sandbox: Callable[..., RunningSandbox],
) -> None:
    server = voxhub_sandbox(
        "revai",
        processing_seconds=0,
        use_engine=False,
        failure_rate=0.03,
        seed=11,
        faults=storm(seed=5, drop_after=0.03),  # drop_after: the job exists, its answer is lost
    )
    sandbox = server.sandbox
    assert isinstance(sandbox, RevaiSandbox)
    orch, http = _orchestrator(tmp_path, voxhub_plugins, server, "revai")
    # Non-loopback URLs: the sandbox never fetches them and answers a placeholder transcript.
    requests = [
        JobRequest(provider="revai", media=RemoteUrl(f"https://media.voxhub.invalid/storm-{i}.wav"))
        for i in range(JOBS)
    ]
    run = orch.run_many(requests, concurrency=16, batch="storm")
    outcomes = list(run)
    assert len(outcomes) == JOBS
    reasons = {reason for reason, _ in FAILURES}
    stopped = _check_outcomes(outcomes, http.calls, reasons)
    assert stopped <= JOBS // 50, f"{stopped} jobs stopped by faults: the policy is too thin"
    if stopped:
        # What a user does after a policy gave up: resume the batch, faults still on.
        resumed = list(orch.resume(batch="storm", concurrency=8))
        # Finished, or failed at the vendor; a job that already failed there is left alone
        # (reported as skipped, never resubmitted without --retry-failed).
        assert all(
            o.ok
            or isinstance(o.error, JobFailedError)
            or (o.skipped and o.handle and orch.store.get(o.handle.job_id).state == "failed")
            for o in resumed
        ), resumed

    counters = _settled(sandbox)
    # The storm really happened, on every kind of fault.
    for fault in ("faults.rate_limited", "faults.drop", "faults.slow", "faults.drop_after"):
        assert counters.get(fault, 0) > 0, fault
    assert sum(counters.get(f"faults.{s}", 0) for s in (502, 503, 504)) > 0
    assert any(c.operation == "recover" for c in http.calls), "no lost answer was recovered"

    # Exactly one vendor job per input.
    records = orch.store.jobs(batch=run.batch_id)  # the batch's id (its name is "storm")
    assert len(records) == JOBS
    assert counters["jobs.created"] == JOBS and "jobs.duplicates" not in counters
    assert all(sandbox.jobs_for_key(r.handle.idempotency_key or "") == 1 for r in records)

    # Every job is finished in the store: a result, or the vendor's failure reason.
    states = Counter(r.status.state for r in records if r.status is not None)
    assert states[JobState.SUCCEEDED] + states[JobState.FAILED] == JOBS
    assert states[JobState.FAILED] == counters.get("jobs.failed", 0)
    assert all(r.has_result for r in records if r.status and r.status.state is JobState.SUCCEEDED)

    assert policy_violations(http.calls, RETRY_AFTER) == []
    _check_attempts_match_server(http.calls, counters)
    orch.close_resources()


@pytest.mark.slow
def test_nhn_async_batch_survives_a_fault_storm_on_status_polls(
    tmp_path: Path,
    voxhub_plugins: PluginManager,
    voxhub_sandbox: Callable[..., RunningSandbox],
) -> None:
    # NHN cannot look a task up by key (no ``recover``), so an ambiguous submit must stay
    # in doubt rather than be resent: the storm targets the status polls (GET .../status).
    app_key = "storm-appkey"
    prefix = f"/v2.1/appkeys/{app_key}/stt/async/"
    server = voxhub_sandbox(
        "nhn",
        app_key=app_key,
        processing_seconds=0,
        use_engine=False,
        faults=storm(seed=9, only_paths=(prefix,), read_timeout=NHN_READ_TIMEOUT),
    )
    orch, http = _orchestrator(tmp_path, voxhub_plugins, server, "nhn", NHN_READ_TIMEOUT)
    requests = [
        JobRequest(provider="nhn", media=RemoteUrl(f"https://media.voxhub.invalid/nhn-{i}.mp3"))
        for i in range(JOBS)
    ]
    run = orch.run_many(requests, concurrency=16, batch="nhn-storm")
    outcomes = list(run)
    stopped = _check_outcomes(outcomes, http.calls, {"FAILED"})
    assert stopped <= JOBS // 50
    if stopped:
        resumed = list(orch.resume(batch="nhn-storm", concurrency=8))
        assert all(o.ok for o in resumed), resumed

    counters = _settled(server.sandbox)
    assert counters.get("faults.rate_limited", 0) > 0 and counters.get("faults.drop", 0) > 0
    assert counters.get("faults.slow", 0) > 0
    assert counters["tasks.created"] == JOBS
    records = orch.store.jobs(batch=run.batch_id)  # the batch's id (its name is "nhn-storm")
    assert len(records) == JOBS
    assert len({r.handle.vendor_ids["task_id"] for r in records}) == JOBS
    assert all(r.status and r.status.state is JobState.SUCCEEDED and r.has_result for r in records)
    assert policy_violations(http.calls, RETRY_AFTER) == []
    _check_attempts_match_server(http.calls, counters)
    orch.close_resources()
