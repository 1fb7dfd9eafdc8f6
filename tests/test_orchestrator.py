"""The orchestrator end to end against the echo sandbox: lifecycle, exactly-once, batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest
from voxhub import (
    InvalidInputError,
    JobFailedError,
    JobRequest,
    JobState,
    LocalFile,
    Orchestrator,
    RemoteUrl,
    Transcript,
    UnsupportedOptionError,
    WaitTimeoutError,
)
from voxhub.clock import FakeClock
from voxhub.config import Config
from voxhub.errors import (
    ConfigurationError,
    NotFoundError,
    ProviderUnavailableError,
    TransportError,
)
from voxhub.models import JobHandle, JobKind, new_job_id
from voxhub.orchestrator import ClosePolicy
from voxhub.plugin import hookimpl
from voxhub.plugins import PluginManager
from voxhub.provider import Capability
from voxhub.sandbox import FaultPlan, RunningSandbox
from voxhub.store import Phase, Store
from voxhub.submission import derive_idempotency_key
from voxhub_echo.provider import EchoProvider


def test_run_submits_waits_fetches(orch: Orchestrator, echo: RunningSandbox, media: Path) -> None:
    outcome = orch.run(JobRequest(provider="echo", media=LocalFile(media), language="en"))
    assert outcome.ok, outcome.error
    assert isinstance(outcome.result, Transcript)
    assert outcome.result.text == "hello world.wav"
    assert outcome.result.segments[0].words[1].start == 1.0
    record = orch.store.get(outcome.handle.job_id)
    assert record.phase == Phase.SUBMITTED and record.has_result
    assert record.handle.vendor_ids["job"]
    assert [e.type for e in orch.store.events(record.job_id)][:3] == [
        "recorded",
        "sending",
        "submitted",
    ]
    assert echo.sandbox.counters.get("jobs.created") == 1


def test_same_input_is_never_submitted_twice(
    orch: Orchestrator, echo: RunningSandbox, media: Path
) -> None:
    first = orch.run(JobRequest(provider="echo", media=LocalFile(media)))
    second = orch.run(JobRequest(provider="echo", media=LocalFile(media)))
    assert first.handle and second.handle and first.handle.job_id == second.handle.job_id
    assert second.result == first.result
    assert echo.sandbox.counters.get("jobs.created") == 1


def test_fetch_after_close_comes_from_the_store(
    orch: Orchestrator, echo: RunningSandbox, media: Path
) -> None:
    outcome = orch.run(JobRequest(provider="echo", media=LocalFile(media)), close="after-fetch")
    assert outcome.ok and outcome.handle
    assert echo.sandbox.counters.get(f"DELETE /v1/jobs/{outcome.handle.vendor_ids['job']}") == 1
    assert orch.fetch(outcome.handle.job_id) == outcome.result
    orch.close(outcome.handle.job_id)  # idempotent
    assert orch.export(outcome.handle.job_id, "txt") == "hello world.wav\n"


def test_invalid_options_are_refused_before_any_request(
    orch: Orchestrator, echo: RunningSandbox
) -> None:
    url = RemoteUrl("http://127.0.0.1/a.wav")
    with pytest.raises(InvalidInputError) as info:
        orch.submit(JobRequest(provider="echo", media=url, options={"speed": 0}))
    assert info.value.field == "speed" and "1..10" in str(info.value)
    with pytest.raises(UnsupportedOptionError) as unknown:
        orch.submit(JobRequest(provider="echo", media=url, options={"sped": 3}))
    assert unknown.value.field == "sped" and "speed" in str(unknown.value)
    with pytest.raises(InvalidInputError) as cross:
        orch.submit(JobRequest(provider="echo", media=url, options={"fail": True, "text": "x"}))
    assert cross.value.field == "fail"
    with pytest.raises(InvalidInputError) as missing:
        orch.submit(JobRequest(provider="echo", media=LocalFile("/no/such/file.wav")))
    assert missing.value.field == "media"
    assert echo.sandbox.counters.get("requests") == 0
    assert orch.store.jobs() == []


def test_vendor_failure_raises_with_reason(orch: Orchestrator) -> None:
    handle = orch.submit(
        JobRequest(provider="echo", media=RemoteUrl("http://x/a"), options={"fail": True})
    )
    with pytest.raises(JobFailedError) as info:
        orch.wait(handle)
    assert info.value.detail == "synthetic failure requested"
    assert info.value.handle == handle
    assert orch.status(handle.job_id).state is JobState.FAILED


def test_a_failed_input_can_run_again_as_a_new_job(
    orch: Orchestrator, echo: RunningSandbox
) -> None:
    request = JobRequest(provider="echo", media=RemoteUrl("http://x/a"), options={"fail": True})
    with pytest.raises(JobFailedError) as first:
        orch.run(request)
    with pytest.raises(JobFailedError) as second:
        orch.run(request)
    assert first.value.handle and second.value.handle
    assert first.value.handle.job_id != second.value.handle.job_id
    assert echo.sandbox.counters.get("jobs.created") == 2


def test_wait_timeout_carries_the_handle_and_the_job_keeps_running(
    voxhub_sandbox: Callable[..., RunningSandbox], voxhub_orchestrator: Callable[..., Orchestrator]
) -> None:
    slow = voxhub_sandbox("echo", steps=1000)
    clock = FakeClock()
    orch = voxhub_orchestrator({"echo": slow.settings()}, clock=clock)
    handle = orch.submit(JobRequest(provider="echo", media=RemoteUrl("http://x/a")))
    with pytest.raises(WaitTimeoutError) as info:
        orch.wait(handle, timeout=2.0)
    assert info.value.handle == handle and handle.job_id in str(info.value)
    polls = slow.sandbox.counters.get(f"GET /v1/jobs/{handle.vendor_ids['job']}")
    assert 3 <= polls <= 40  # backed off, not a busy loop
    assert sum(clock.slept) == pytest.approx(2.0, abs=0.3)


def test_run_many_yields_every_outcome_and_one_failure_stops_nothing(
    orch: Orchestrator, echo: RunningSandbox
) -> None:
    requests = [
        JobRequest(
            provider="echo", media=RemoteUrl(f"http://x/file{i}"), options={"fail": i % 5 == 0}
        )
        for i in range(20)
    ]
    outcomes = list(orch.run_many(requests, concurrency=6))
    assert len(outcomes) == 20
    failed = [o for o in outcomes if not o.ok]
    assert len(failed) == 4 and all(isinstance(o.error, JobFailedError) for o in failed)
    assert echo.sandbox.counters.get("jobs.created") == 20
    assert echo.sandbox.counters.get("jobs.duplicates") == 0


def test_batch_survives_injected_faults_without_duplicates(
    voxhub_sandbox: Callable[..., RunningSandbox], voxhub_orchestrator: Callable[..., Orchestrator]
) -> None:
    faults = FaultPlan(rate_limited=0.15, retry_after=0.01, server_error=0.1, drop=0.05, seed=7)
    sandbox = voxhub_sandbox("echo", faults=faults)
    orch = voxhub_orchestrator({"echo": sandbox.settings()}, clock=FakeClock())
    requests = [JobRequest(provider="echo", media=RemoteUrl(f"http://x/{i}")) for i in range(40)]
    outcomes = list(orch.run_many(requests, concurrency=8))
    assert all(o.ok for o in outcomes), [str(o.error) for o in outcomes if not o.ok]
    counters = sandbox.sandbox.counters
    assert counters.get("faults.rate_limited") + counters.get("faults.drop") > 0
    assert counters.get("jobs.duplicates") == 0
    assert counters.get("jobs.created") == 40 + 0  # lost answers were recovered, not resubmitted


def test_lost_submit_answer_is_recovered_not_resubmitted(
    voxhub_sandbox: Callable[..., RunningSandbox], voxhub_orchestrator: Callable[..., Orchestrator]
) -> None:
    sandbox = voxhub_sandbox("echo", drop_after_create=True)
    orch = voxhub_orchestrator({"echo": sandbox.settings()}, clock=FakeClock())
    handle = orch.submit(JobRequest(provider="echo", media=RemoteUrl("http://x/lost")))
    assert handle.vendor_ids["job"]
    assert sandbox.sandbox.counters.get("jobs.created") == 1
    assert "recovered" in [e.type for e in orch.store.events(handle.job_id)]


def test_crash_after_claim_is_resumed_from_the_store(
    echo: RunningSandbox, voxhub_orchestrator: Callable[..., Orchestrator], tmp_path: Path
) -> None:
    # Simulate a process that recorded and claimed a job, then died before sending.
    first = voxhub_orchestrator({"echo": echo.settings()}, clock=FakeClock())
    request = first.prepare(JobRequest(provider="echo", media=RemoteUrl("http://x/crash")))
    from voxhub.models import JobHandle, new_job_id
    from voxhub.orchestrator import derive_idempotency_key

    key = derive_idempotency_key(request)
    handle = JobHandle(new_job_id(), "echo", request.kind, "echo", idempotency_key=key)  # type: ignore[arg-type]
    first.store.record(request, handle)
    first.store.claim(handle.job_id)
    first.store.owner = "dead-host-that-does-not-exist:1:x"  # pretend the claim was another's
    first.store.release(handle.job_id, error="killed", unsent=False)  # in doubt
    second = voxhub_orchestrator({"echo": echo.settings()}, clock=FakeClock())
    outcomes = list(second.resume())
    assert len(outcomes) == 1 and outcomes[0].ok, outcomes[0].error
    assert echo.sandbox.counters.get("jobs.created") == 1
    assert second.store.get(handle.job_id).has_result


def test_resume_from_a_handle_in_a_fresh_orchestrator(
    echo: RunningSandbox, voxhub_orchestrator: Callable[..., Orchestrator], tmp_path: Path
) -> None:
    from voxhub.store import Store

    first = voxhub_orchestrator({"echo": echo.settings()}, clock=FakeClock())
    handle = first.submit(JobRequest(provider="echo", media=RemoteUrl("http://x/a b")))
    other = voxhub_orchestrator(
        {"echo": echo.settings()}, clock=FakeClock(), store=Store(tmp_path / "other.db")
    )
    assert other.wait(handle).state is JobState.SUCCEEDED
    assert other.fetch(handle).text == "a b"  # the words of the URL's last path segment


def test_transport_failure_is_typed_and_names_provider(
    voxhub_orchestrator: Callable[..., Orchestrator],
) -> None:
    orch = voxhub_orchestrator(
        {"echo": {"base_url": "http://127.0.0.1:9", "api_key": "k" * 12}}, clock=FakeClock()
    )
    with pytest.raises(TransportError) as info:
        orch.submit(JobRequest(provider="echo", media=RemoteUrl("http://x/a")))
    assert info.value.provider == "echo" and info.value.operation == "submit"
    record = orch.store.jobs()[0]
    assert record.phase == Phase.RECORDED and record.error  # provably unsent: safe to resume


def test_missing_credentials_are_a_configuration_error(
    voxhub_orchestrator: Callable[..., Orchestrator],
) -> None:
    orch = voxhub_orchestrator({})
    with pytest.raises(ConfigurationError) as info:
        orch.submit(JobRequest(provider="echo", media=RemoteUrl("http://x/a")))
    assert "VOXHUB_ECHO_API_KEY" in str(info.value)


def test_unknown_provider_and_job(voxhub_orchestrator: Callable[..., Orchestrator]) -> None:
    orch = voxhub_orchestrator({})
    with pytest.raises(ConfigurationError, match="unknown provider 'nope'"):
        orch.submit(JobRequest(provider="nope"))
    with pytest.raises(NotFoundError):
        orch.status("vx_missing")


class Recorder:
    """An observer plugin: wraps every submit and receives every event."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl(wrapper=True)
    def submit(self, ctx, request, handle):  # type: ignore[no-untyped-def]
        self.calls.append(f"before-submit:{ctx.provider}")
        result = yield
        self.calls.append(f"after-submit:{result.vendor_ids['job'] != ''}")
        return result

    @hookimpl
    def job_state_changed(self, handle, old, new):  # type: ignore[no-untyped-def]
        self.calls.append(f"state:{new.state.value}")

    @hookimpl
    def job_completed(self, handle, result):  # type: ignore[no-untyped-def]
        self.calls.append("completed")


def test_observer_plugins_wrap_calls_and_receive_events(
    echo: RunningSandbox, voxhub_orchestrator: Callable[..., Orchestrator], media: Path
) -> None:
    from voxhub.plugins import PluginManager

    recorder = Recorder()
    plugins = PluginManager.load(
        env={"VOXHUB_LOAD_PLUGINS": "voxhub-echo"}, extra=[("recorder", recorder)]
    )
    orch = Orchestrator(
        store=media.parent / "o.db",
        config=__import__("voxhub").Config.from_profiles({"echo": echo.settings()}),
        plugins=plugins,
        clock=FakeClock(),
    )
    assert orch.run(JobRequest(provider="echo", media=LocalFile(media))).ok
    assert recorder.calls[:2] == ["before-submit:echo", "after-submit:True"]
    assert "state:queued" in recorder.calls and "state:succeeded" in recorder.calls
    assert recorder.calls[-1] == "completed"


# --- exactly-once submission (voxhub.submission) ------------------------------------------


def test_an_in_doubt_submit_that_created_nothing_is_sent_again_after_recover(
    echo: RunningSandbox, voxhub_orchestrator: Callable[..., Orchestrator]
) -> None:
    clock = FakeClock()
    orch = voxhub_orchestrator({"echo": echo.settings()}, clock=clock)
    # A gateway error: the request may have reached the vendor, yet nothing was created.
    echo.sandbox.script(path="/v1/jobs", method="POST", status=502, body="bad gateway")
    handle = orch.submit(JobRequest(provider="echo", media=RemoteUrl("http://x/gateway")))
    counters = echo.sandbox.counters
    assert counters.get("POST /v1/jobs") == 2 and counters.get("jobs.created") == 1
    assert counters.get("GET /v1/jobs") == 1  # one recover: the 502 ended the request
    types = [e.type for e in orch.store.events(handle.job_id)]
    assert types.count("sending") == 2 and "recover-none" in types and types[-1] == "status"
    policy = orch.provider_entry("echo").info.retry
    assert len(clock.slept) == 1  # the provider's back-off before recover, nothing more
    assert policy.backoff_base / 2 <= clock.slept[0] <= policy.backoff_base


def test_a_lost_connection_is_resent_only_after_its_in_flight_window(
    echo: RunningSandbox, voxhub_orchestrator: Callable[..., Orchestrator]
) -> None:
    clock = FakeClock()
    orch = voxhub_orchestrator({"echo": echo.settings()}, clock=clock)
    # The connection closes with no answer (here before the vendor acted): nobody saw
    # the request end, so it may still land; recover is asked again once it cannot.
    echo.sandbox.script(path="/v1/jobs", method="POST", action="drop")
    handle = orch.submit(JobRequest(provider="echo", media=RemoteUrl("http://x/dropped")))
    counters = echo.sandbox.counters
    assert counters.get("POST /v1/jobs") == 2 and counters.get("jobs.created") == 1
    assert counters.get("GET /v1/jobs") == 2
    timeouts = orch.http.timeouts
    window = [s for s in clock.slept if s > timeouts.read]
    assert len(window) == 1 and window[0] <= timeouts.connect + timeouts.read
    assert orch.store.get(handle.job_id).phase == Phase.SUBMITTED


def test_in_doubt_resends_are_bounded_by_the_retry_policy(
    echo: RunningSandbox, voxhub_orchestrator: Callable[..., Orchestrator]
) -> None:
    orch = voxhub_orchestrator({"echo": echo.settings()}, clock=FakeClock())
    echo.sandbox.script(path="/v1/jobs", method="POST", status=503, body="down", times=100)
    with pytest.raises(ProviderUnavailableError) as info:
        orch.submit(JobRequest(provider="echo", media=RemoteUrl("http://x/down")))
    attempts = orch.provider_entry("echo").info.retry.max_attempts
    assert echo.sandbox.counters.get("POST /v1/jobs") == attempts
    assert echo.sandbox.counters.get("jobs.created") == 0
    assert info.value.in_doubt is False  # recover proved that nothing was created
    record = orch.store.jobs()[0]
    assert record.phase == Phase.RECORDED and "down" in (record.error or "")


class CallOrder:
    """An observer plugin writing down the order of lifecycle calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _seen(self, name: str) -> Iterator[None]:
        self.calls.append(name)
        return (yield)  # type: ignore[misc]

    @hookimpl(wrapper=True)
    def authenticate(self, ctx):  # type: ignore[no-untyped-def]
        return (yield from self._seen("authenticate"))

    @hookimpl(wrapper=True)
    def validate(self, ctx, request):  # type: ignore[no-untyped-def]
        return (yield from self._seen("validate"))

    @hookimpl(wrapper=True)
    def submit(self, ctx, request, handle):  # type: ignore[no-untyped-def]
        return (yield from self._seen("submit"))

    @hookimpl(wrapper=True)
    def recover(self, ctx, request, handle):  # type: ignore[no-untyped-def]
        return (yield from self._seen("recover"))


def _observed(echo: RunningSandbox, store: Store, observer: object) -> Orchestrator:
    plugins = PluginManager.load(
        env={"VOXHUB_LOAD_PLUGINS": "voxhub-echo"}, extra=[("observer", observer)]
    )
    return Orchestrator(
        store=store,
        config=Config.from_profiles({"echo": echo.settings()}),
        plugins=plugins,
        clock=FakeClock(),
    )


def _stored(orch: Orchestrator, request: JobRequest) -> JobHandle:
    """A job recorded by a process that died before sending it."""
    request = attrs.evolve(request, idempotency_key=derive_idempotency_key(request))
    assert request.kind is not None and request.profile is not None
    handle = JobHandle(
        new_job_id(), request.provider, request.kind, request.profile,
        idempotency_key=request.idempotency_key,
    )
    orch.store.record(request, handle)
    return handle


def test_resume_authenticates_and_validates_a_stored_request_before_submitting(
    echo: RunningSandbox, orch: Orchestrator
) -> None:
    handle = _stored(orch, orch.prepare(JobRequest(provider="echo", media=RemoteUrl("http://x/r"))))
    observer = CallOrder()
    fresh = _observed(echo, orch.store, observer)
    outcomes = list(fresh.resume())
    assert [o.ok for o in outcomes] == [True] and outcomes[0].handle
    assert outcomes[0].handle.job_id == handle.job_id
    assert observer.calls == ["authenticate", "validate", "submit"]


def test_resume_refuses_a_stored_request_that_no_longer_validates(
    echo: RunningSandbox, orch: Orchestrator
) -> None:
    # Stored by an older version, say, with an option its provider now refuses.
    bad = JobRequest(
        provider="echo", kind=JobKind.TRANSCRIPTION, profile="echo",
        media=RemoteUrl("http://x/old"), options={"speed": 0},
    )
    handle = _stored(orch, bad)
    outcomes = list(orch.resume())
    assert len(outcomes) == 1 and isinstance(outcomes[0].error, InvalidInputError)
    assert outcomes[0].error.field == "speed"
    assert echo.sandbox.counters.get("requests") == 0
    record = orch.store.get(handle.job_id)
    assert record.phase == Phase.RECORDED and "speed" in (record.error or "")


def test_an_in_doubt_job_resent_on_resume_is_validated_after_recover_found_nothing(
    echo: RunningSandbox, orch: Orchestrator
) -> None:
    handle = _stored(orch, orch.prepare(JobRequest(provider="echo", media=RemoteUrl("http://x/d"))))
    orch.store.claim(handle.job_id)
    orch.store.owner = "dead-host-that-does-not-exist:1:x"  # the claim was a dead process's
    orch.store.release(handle.job_id, error="killed", unsent=False)  # in doubt
    observer = CallOrder()
    fresh = _observed(echo, Store(orch.store.path), observer)
    outcomes = list(fresh.resume())
    assert [o.ok for o in outcomes] == [True]
    # authenticate (context), recover twice around the in-flight window, then the resend.
    assert observer.calls == ["authenticate", "recover", "recover", "validate", "submit"]
    assert echo.sandbox.counters.get("jobs.created") == 1


def test_threads_submitting_one_input_follow_the_claim_instead_of_recovering_it(
    voxhub_sandbox: Callable[..., RunningSandbox], voxhub_orchestrator: Callable[..., Orchestrator]
) -> None:
    # Real time: the first submit's answer takes 0.5 s; the other thread must wait for it
    # (the claim is this process's and alive), not resolve it as if its sender had died.
    slow = voxhub_sandbox(
        "echo", faults=FaultPlan(slow=1.0, slow_seconds=0.5, only_paths=("/v1/jobs",))
    )
    orch = voxhub_orchestrator({"echo": slow.settings()})
    request = JobRequest(provider="echo", media=RemoteUrl("http://x/same"))
    with ThreadPoolExecutor(max_workers=3) as pool:
        handles = list(pool.map(lambda _: orch.submit(request), range(3)))
    assert len({h.job_id for h in handles}) == 1 and all(h.vendor_ids for h in handles)
    counters = slow.sandbox.counters
    assert counters.get("jobs.created") == 1 and counters.get("POST /v1/jobs") == 1
    assert counters.get("GET /v1/jobs") == 0  # nobody looked for it: nothing was in doubt


class LossyBatchEcho(EchoProvider):
    """Echo with batch submits whose answer is lost after the vendor made only the first job."""

    info = attrs.evolve(
        EchoProvider.info,
        name="echo-batch",
        capabilities=EchoProvider.info.capabilities | {Capability.BATCH_SUBMIT},
    )

    def submit_batch(self, ctx, items):  # type: ignore[no-untyped-def]
        self.submit(ctx, *items[0])
        raise ProviderUnavailableError(
            "batch answer lost", provider=ctx.provider, operation="submit", in_doubt=True
        )


class LossyBatchPlugin:
    @hookimpl
    def register_providers(self) -> list[EchoProvider]:
        return [LossyBatchEcho()]


def test_an_in_doubt_batch_is_resolved_job_by_job(echo: RunningSandbox, tmp_path: Path) -> None:
    plugins = PluginManager.load(
        env={"VOXHUB_LOAD_PLUGINS": "voxhub-echo"}, extra=[("lossy", LossyBatchPlugin())]
    )
    orch = Orchestrator(
        store=tmp_path / "batch.db",
        config=Config.from_profiles({"echo-batch": echo.settings()}),
        plugins=plugins,
        clock=FakeClock(),
    )
    requests = [JobRequest(provider="echo-batch", media=RemoteUrl(f"http://x/{n}")) for n in "ab"]
    first, second = orch.submit_many(requests)
    counters = echo.sandbox.counters
    assert counters.get("jobs.created") == 2 and counters.get("jobs.duplicates") == 0
    assert "recovered" in [e.type for e in orch.store.events(first.job_id)]
    second_events = [e.type for e in orch.store.events(second.job_id)]
    assert "recover-none" in second_events and second_events.count("sending") == 2
    assert orch.wait(second).state is JobState.SUCCEEDED
    orch.close_resources()


def test_close_policy_is_an_enum_and_a_bad_one_is_named(orch: Orchestrator) -> None:
    assert ClosePolicy("after-fetch") is ClosePolicy.AFTER_FETCH and ClosePolicy.NEVER == "never"
    with pytest.raises(InvalidInputError) as info:
        orch.run(JobRequest(provider="echo", media=RemoteUrl("http://x/c")), close="later")
    assert info.value.field == "close"
    assert orch.store.jobs() == []  # refused before anything was stored


def test_a_job_costs_one_write_per_state_change(
    orch: Orchestrator, echo: RunningSandbox, media: Path
) -> None:
    before = orch.store.write_stats().transactions
    outcome = orch.run(JobRequest(provider="echo", media=LocalFile(media)))
    assert outcome.ok and outcome.handle
    events = [e.type for e in orch.store.events(outcome.handle.job_id)]
    # Recorded and claimed in one write; accepted with its first status; then one write per
    # status change, the final one together with the result.
    assert events[:4] == ["recorded", "sending", "submitted", "status"]
    assert events[-2:] == ["status", "result"]
    writes = orch.store.write_stats().transactions - before
    assert writes == 2 + events.count("status") - 1
    record = orch.store.get(outcome.handle.job_id)
    assert record.has_result and record.status == outcome.status
