"""agora-stt failures against its sandbox: Agora's errors and back-off, hosts, and starts
whose outcome is unknown (sent once, left in doubt, resolved by the core through recover)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from voxhub.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    ProviderUnavailableError,
)
from voxhub.models import JobState
from voxhub.sandbox import FaultPlan, RunningSandbox
from voxhub.transport import Timeouts
from voxhub_agora.errors import AgoraInvalidRequestError, BuilderTokenError, TaskConflictError
from voxhub_agora.sandbox_stt import AgoraSttSandbox
from voxhub_agora.stt import AgoraSttProvider

VERSIONS = ("v7", "v6", "v5")


def test_mismatched_pair_is_a_builder_token_error(stt: AgoraSttProvider, make_ctx: Any,
                                                  stt_sandbox: RunningSandbox, h: Any) -> None:
    ctx = make_ctx(stt, stt_sandbox)
    request = h.stt_request("a", api_version="v6")
    first = stt.submit(ctx, request, h.handle_for(request)).handle
    other_request = h.stt_request("b", api_version="v6")
    other = stt.submit(ctx, other_request, h.handle_for(other_request)).handle
    crossed = first.with_vendor({"builder_token_name": other.vendor_ids["builder_token_name"]})
    with pytest.raises(BuilderTokenError, match="code 53") as info:
        stt.status(ctx, crossed)
    assert info.value.request_id


@pytest.mark.parametrize(("endpoint", "status", "body", "error", "message"), [
    ("start", 400, {"code": 2, "reason": "body schema check fail, languages: bad"},
     AgoraInvalidRequestError, "code 2"),
    ("start", 409, {"code": 49, "reason": "The task has been started, current status is "
                    "STARTED, taskId is abc123"}, None, None),
    ("acquire", 400, {"code": 62}, PermissionDeniedError, "not enabled"),
    ("start", 400, {"code": 62}, ProviderUnavailableError, "network problem"),
    ("start", 500, {"code": 1}, ProviderUnavailableError, "internal error (code 1)"),
    ("start", 400, {"code": 1001}, None, None),  # unparsable token: re-acquired, then works
    ("start", 400, {"message": "the product name does not match with builderToken"}, None, None),
    ("acquire", 400, {"message": "invalid_appid!"}, PermissionDeniedError, "not enabled"),
    ("acquire", 401, {"message": "Invalid authentication credentials"}, AuthenticationError,
     "customer ID"),
    ("acquire", 403, {"message": "forbidden"}, PermissionDeniedError, "not enabled"),
])
def test_error_codes_mapped(endpoint: str, status: int, body: dict[str, Any],
                            error: type[Exception] | None, message: str | None,
                            stt: AgoraSttProvider, stt_sandbox: RunningSandbox, make_ctx: Any,
                            h: Any) -> None:
    sandbox = stt_sandbox.sandbox
    assert isinstance(sandbox, AgoraSttSandbox)
    sandbox.script(endpoint=endpoint, status=status, body=body)
    ctx = make_ctx(stt, stt_sandbox)
    request = h.stt_request("codes", api_version="v6")
    if error is None:
        submitted = stt.submit(ctx, request, h.handle_for(request))
        if body.get("code") == 49:
            assert submitted.handle.vendor_ids["task_id"] == "abc123"
        else:
            assert sandbox.counters.get("tasks.created") == 1
        return
    with pytest.raises(error) as info:
        stt.submit(ctx, request, h.handle_for(request))
    assert message is not None and message in str(info.value)
    assert getattr(info.value, "request_id", None) or info.value.details.get("request_id")
    # Only a failed start leaves doubt (Agora may have started the task); a refused
    # acquire started nothing.
    in_doubt = endpoint == "start" and error is ProviderUnavailableError
    assert getattr(info.value, "in_doubt", False) is in_doubt


def test_answers_are_scripted_over_http(stt: AgoraSttProvider, stt_sandbox: RunningSandbox,
                                        make_ctx: Any, h: Any) -> None:
    import urllib3

    pool = urllib3.PoolManager()
    base = stt_sandbox.base_url
    answer = pool.request("POST", f"{base}/_sandbox/script", json={
        "endpoint": "acquire", "status": 403, "body": {"message": "forbidden"}})
    assert answer.status == 200, answer.data
    ctx = make_ctx(stt, stt_sandbox)
    request = h.stt_request("scripted", api_version="v6")
    with pytest.raises(PermissionDeniedError):
        stt.submit(ctx, request, h.handle_for(request))
    # Only the next acquire was scripted: the one after it is Agora's own.
    stt.submit(ctx, request, h.handle_for(request))
    assert stt_sandbox.sandbox.counters.get("tasks.created") == 1
    # The kit's one mechanism replaced the emulator's own error endpoint.
    gone = pool.request("POST", f"{base}/_sandbox/agora/errors", json={"endpoint": "start"})
    assert gone.status == 404


def test_query_of_ended_task_and_code_404(stt: AgoraSttProvider, stt_sandbox: RunningSandbox,
                                          make_ctx: Any, h: Any) -> None:
    ctx = make_ctx(stt, stt_sandbox)
    request = h.stt_request("gone", api_version="v6")
    handle = stt.submit(ctx, request, h.handle_for(request)).handle
    sandbox = stt_sandbox.sandbox
    assert isinstance(sandbox, AgoraSttSandbox)
    sandbox.script(endpoint="query", status=404,
                   body={"code": 404, "reason": "The task is not found"})
    status = stt.status(ctx, handle)
    assert status.state is JobState.SUCCEEDED and status.vendor_state == "ENDED"
    with pytest.raises(NotFoundError):
        stt.query(ctx, handle.with_vendor({"task_id": "nope"}))


@pytest.mark.parametrize(("code", "delays"), [
    (20, [3.0, 6.0]), (501, [1.0, 3.0, 6.0]), (502, [1.0, 3.0, 6.0]), (504, [1.0, 3.0, 6.0]),
])
def test_retryable_codes_use_agoras_backoff(code: int, delays: list[float], clock: Any,
                                            stt: AgoraSttProvider, stt_sandbox: RunningSandbox,
                                            make_ctx: Any, h: Any) -> None:
    sandbox = stt_sandbox.sandbox
    assert isinstance(sandbox, AgoraSttSandbox)
    ctx = make_ctx(stt, stt_sandbox)
    request = h.stt_request("retry", api_version="v6")
    submitted = stt.submit(ctx, request, h.handle_for(request))
    # A query fails as often as the schedule allows retries, then succeeds.
    sandbox.script(endpoint="query", status=500, body={"code": code}, times=len(delays))
    clock.slept.clear()
    assert stt.status(ctx, submitted.handle).state is JobState.RUNNING
    assert clock.slept == delays
    # One failure more than the schedule allows is raised, with its request id; a query
    # never leaves anything in doubt.
    sandbox.script(endpoint="query", status=500, body={"code": code}, times=len(delays) + 1)
    with pytest.raises(ProviderUnavailableError) as info:
        stt.query(ctx, submitted.handle)
    assert info.value.details["code"] == code and info.value.details["request_id"]
    assert info.value.in_doubt is False


@pytest.mark.parametrize("version", VERSIONS)
def test_failed_start_is_sent_once_and_left_in_doubt(version: str, clock: Any,
                                                     stt: AgoraSttProvider, make_ctx: Any,
                                                     stt_sandbox: RunningSandbox, h: Any) -> None:
    sandbox = stt_sandbox.sandbox
    endpoint = "join" if version == "v7" else "start"
    sandbox.script(endpoint=endpoint, status=500, body={"code": 501}, times=5)
    ctx = make_ctx(stt, stt_sandbox)
    request = h.stt_request("doubt", api_version=version)
    clock.slept.clear()
    with pytest.raises(ProviderUnavailableError) as info:
        stt.submit(ctx, request, h.handle_for(request))
    # No resend inside the plugin: the core decides, after asking ``recover``.
    assert info.value.in_doubt is True and clock.slept == []
    assert sandbox.counters.get("scripted.answer") == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_core_resolves_a_start_that_failed_in_doubt(version: str, orchestrator: Any,
                                                    stt_sandbox: RunningSandbox, h: Any) -> None:
    sandbox = stt_sandbox.sandbox
    endpoint = "join" if version == "v7" else "start"
    sandbox.script(endpoint=endpoint, status=500, body={"code": 501})
    orch = orchestrator(stt_sandbox)
    handle = orch.submit(h.stt_request("resolved", api_version=version))
    counters = sandbox.counters.snapshot()
    assert counters["tasks.created"] == 1 and counters["scripted.answer"] == 1
    if version != "v7":
        # The resend used the builder token recorded before the first start.
        assert counters["tokens.acquired"] == 1
        assert handle.vendor_ids["builder_token_name"] == next(iter(sandbox.tokens))
    assert not orch.status(handle).is_terminal


@pytest.mark.parametrize("version", VERSIONS)
def test_lost_start_answer_is_recovered_not_repeated(version: str, orchestrator: Any,
                                                     stt_sandbox: RunningSandbox,
                                                     h: Any) -> None:
    # Agora starts the task, then the answer is lost on its way back.
    sandbox = stt_sandbox.sandbox
    endpoint = "join" if version == "v7" else "start"
    sandbox.script(endpoint=endpoint, action="drop_after")
    orch = orchestrator(stt_sandbox)
    handle = orch.submit(h.stt_request("lost", api_version=version))
    assert sandbox.counters.get("tasks.created") == 1
    task_id = next(iter(sandbox.tasks))
    assert task_id in (handle.vendor_ids.get("agent_id"), handle.vendor_ids.get("task_id"))
    # The found task is the channel's: another app asking for the channel joins it.
    other = orch.submit(h.stt_request("lost", api_version=version))
    assert other.vendor_ids == handle.vendor_ids
    assert sandbox.counters.get("tasks.created") == 1
    orch.close(other)
    orch.close(handle)
    assert sandbox.counters.get("tasks.stopped") == 1


def test_retries_under_injected_faults(orchestrator: Any, h: Any,
                                       stt_sandbox: RunningSandbox) -> None:
    running = stt_sandbox
    running.sandbox.set_faults(FaultPlan(server_error=0.3, rate_limited=0.1, retry_after=0.01,
                                         seed=7))
    orch = orchestrator(running)
    for version in VERSIONS:
        handle = orch.submit(h.stt_request(f"flaky-{version}", api_version=version))
        for _ in range(3):
            orch.status(handle)
        orch.close(handle)
    counters = running.sandbox.counters.snapshot()
    assert counters["tasks.created"] == 3 and counters["tasks.stopped"] == 3
    assert sum(v for k, v in counters.items() if k.startswith("faults.")) > 3


def test_dropped_connections_are_retried(orchestrator: Any, h: Any,
                                         stt_sandbox: RunningSandbox) -> None:
    running = stt_sandbox
    running.sandbox.set_faults(FaultPlan(drop=0.3, seed=3))
    orch = orchestrator(running)
    handle = orch.submit(h.stt_request("drops", api_version="v6"))
    assert orch.status(handle).state is JobState.RUNNING
    assert running.sandbox.counters.get("tasks.created") == 1


def test_host_fallback_when_first_host_is_unreachable(make_ctx: Any, h: Any, lock_dir: Path,
                                                      stt_sandbox: RunningSandbox) -> None:
    provider = AgoraSttProvider(hosts=("http://127.0.0.1:9", stt_sandbox.base_url),
                                lock_dir=lock_dir)
    ctx = make_ctx(provider, stt_sandbox, base_url=None)
    assert ctx.settings.base_url is None
    request = h.stt_request("fallback")
    handle = provider.submit(ctx, request, h.handle_for(request)).handle
    provider.status(ctx, handle)
    assert stt_sandbox.sandbox.counters.get("tasks.created") == 1


def test_explicit_base_url_has_no_fallback(make_ctx: Any, h: Any, lock_dir: Path,
                                           stt_sandbox: RunningSandbox) -> None:
    provider = AgoraSttProvider(hosts=(stt_sandbox.base_url,), lock_dir=lock_dir)
    ctx = make_ctx(provider, None, auth="basic", base_url="http://127.0.0.1:9",
                   **{k: v for k, v in stt_sandbox.settings().items() if k != "base_url"})
    request = h.stt_request("nofallback")
    with pytest.raises(ProviderUnavailableError):
        provider.submit(ctx, request, h.handle_for(request))
    assert stt_sandbox.sandbox.counters.get("requests") == 0


def test_recover_finds_lost_starts(stt: AgoraSttProvider, stt_sandbox: RunningSandbox,
                                   make_ctx: Any, h: Any) -> None:
    ctx = make_ctx(stt, stt_sandbox)
    request = h.stt_request("lost", key="lost-input", dedupe_channel=False)
    started = stt.submit(ctx, request, h.handle_for(request)).handle
    found = stt.recover(ctx, request, h.handle_for(request))
    assert found is not None and found.vendor_ids == started.vendor_ids
    never = h.stt_request("never", key="never-sent")
    assert stt.recover(ctx, never, h.handle_for(never)) is None
    v6 = h.stt_request("lost6", api_version="v6")
    v6_handle = h.handle_for(v6)
    stt.submit(ctx, v6, v6_handle)
    recovered = stt.recover(ctx, v6, v6_handle)
    assert recovered is not None and "task_id" in recovered.vendor_ids


def test_conflict_error_carries_task_id() -> None:
    from voxhub_agora.errors import parse_error

    error = parse_error(409, {"reason": "TaskConflict", "detail": "x", "agent_id": "a1"},
                              provider="agora-stt", operation="join", request_id="r")
    assert isinstance(error, TaskConflictError) and error.task_id == "a1"


def test_lost_start_answers_reuse_the_recorded_token(stt: AgoraSttProvider, make_ctx: Any,
                                                      clock: Any, h: Any,
                                                      stt_sandbox: RunningSandbox) -> None:
    from voxhub.errors import RequestTimeoutError as VoxTimeout

    sandbox = stt_sandbox.sandbox
    tasks_path = f"/v1/projects/{sandbox.app_id}/rtsc/speech-to-text/tasks"  # type: ignore[attr-defined]
    # Every start answer arrives after the client gave up: the task exists, nobody knows.
    sandbox.set_faults(FaultPlan(slow=1.0, slow_seconds=0.3, only_paths=(tasks_path,)))
    request = h.stt_request("lost-answers", key="one-input", api_version="v6")
    impatient = make_ctx(stt, stt_sandbox, timeouts=Timeouts(connect=2.0, read=0.1))
    with pytest.raises(VoxTimeout) as info:
        stt.submit(impatient, request, h.handle_for(request))
    assert info.value.in_doubt is True  # sent once; the start may have happened
    time.sleep(0.35)
    sandbox.set_faults(FaultPlan())
    # The next attempt (another process could do the same) reuses the recorded token.
    submitted = stt.submit(make_ctx(stt, stt_sandbox), request, h.handle_for(request))
    assert submitted.handle.vendor_ids["task_id"] == next(iter(sandbox.tasks))  # type: ignore[attr-defined]
    assert sandbox.counters.get("tasks.created") == 1
    assert sandbox.counters.get("tokens.acquired") == 1
