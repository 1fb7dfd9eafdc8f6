"""End to end through voxhub's Orchestrator and CLI, against the sandbox on real sockets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from nhn_helpers import write_wav
from voxhub.cli import cli
from voxhub.errors import InvalidInputError, JobFailedError, ProviderUnavailableError
from voxhub.models import JobRequest, JobState, LocalFile, RemoteUrl, Transcript
from voxhub.orchestrator import Orchestrator, WaitPolicy
from voxhub.plugins import PluginManager
from voxhub.sandbox import RunningSandbox
from voxhub.store import Store
from voxhub_nhn.commands import retry_job
from voxhub_nhn.sandbox import NhnSandbox

KOREAN = "오늘 날씨가 맑습니다. 내일은 비가 오겠습니다."
FAST = WaitPolicy(first_poll=0.05, max_interval=0.1)


def test_sync_job_through_the_orchestrator(
    voxhub_orchestrator: Callable[..., Orchestrator],
    nhn_sandbox: Callable[..., RunningSandbox], tmp_path: Path,
) -> None:
    wav = write_wav(tmp_path / "weather.wav", 2.0)
    (tmp_path / "weather.wav.txt").write_text(KOREAN, encoding="utf-8")
    server = nhn_sandbox(media_dirs=[tmp_path])
    orch = voxhub_orchestrator({"nhn": server.settings()})
    outcome = orch.run(JobRequest("nhn", media=LocalFile(wav),
                                  options={"biasing_list": "맑음_맑습"}))
    assert outcome.ok, outcome.error
    assert isinstance(outcome.result, Transcript) and outcome.result.text == KOREAN.replace(
        "맑습", "맑음")
    assert outcome.handle is not None
    job = outcome.handle.job_id
    # Stored at submit: status and fetch need no further request.
    before = server.sandbox.counters.get("requests")
    assert orch.status(job).state is JobState.SUCCEEDED
    for fmt in ("txt", "json", "srt", "vtt"):
        assert "날씨가" in orch.export(job, fmt)
    assert server.sandbox.counters.get("requests") == before == 1
    # The same input again is the same job (idempotency), not a second upload.
    again = orch.submit(JobRequest("nhn", media=LocalFile(wav),
                                   options={"biasing_list": "맑음_맑습"}))
    assert again.job_id == job and server.sandbox.counters.get("requests") == 1


def test_async_job_through_the_orchestrator(
    voxhub_orchestrator: Callable[..., Orchestrator],
    nhn_sandbox: Callable[..., RunningSandbox], media_dir: Path, media_server: RunningSandbox,
) -> None:
    write_wav(media_dir / "talk.wav", 2.0)
    (media_dir / "talk.wav.txt").write_text(KOREAN, encoding="utf-8")
    server = nhn_sandbox(processing_seconds=0.3)
    orch = voxhub_orchestrator({"nhn": server.settings()})
    handle = orch.submit(JobRequest("nhn", media=RemoteUrl(f"{media_server.base_url}/talk.wav")))
    assert "task_id" in handle.vendor_ids
    assert orch.wait(handle, policy=FAST, timeout=10).state is JobState.SUCCEEDED
    result = orch.fetch(handle)
    assert isinstance(result, Transcript) and result.text == KOREAN
    assert json.loads(orch.export(handle, "json"))["text"] == KOREAN


def test_failed_task_retried_through_orchestrator_and_cli(
    voxhub_orchestrator: Callable[..., Orchestrator], voxhub_plugins: PluginManager,
    nhn_sandbox: Callable[..., RunningSandbox], tmp_path: Path,
) -> None:
    server = nhn_sandbox(processing_seconds=0.2, failure_rate=1.0)
    settings = server.settings()
    store_path = tmp_path / "jobs.db"
    store = Store(store_path)  # a file the CLI below opens too
    orch = voxhub_orchestrator({"nhn": settings}, store=store)
    handle = orch.submit(JobRequest("nhn", media=RemoteUrl("https://example.com/a.mp3")))
    first = handle.vendor_ids["task_id"]
    with pytest.raises(JobFailedError):
        orch.wait(handle, policy=FAST, timeout=10)
    assert orch.status(handle).state is JobState.FAILED

    # 1. from Python
    retried = retry_job(orch, handle.job_id)
    second = retried.vendor_ids["task_id"]
    assert second != first and retried.job_id == handle.job_id
    assert orch.store.get(handle.job_id).handle.vendor_ids["task_id"] == second
    assert orch.status(handle.job_id).state in (JobState.QUEUED, JobState.RUNNING)

    # A retried task always succeeds in the sandbox.
    assert orch.wait(handle.job_id, policy=FAST, timeout=10).state is JobState.SUCCEEDED
    assert isinstance(orch.fetch(handle.job_id), Transcript)

    # 2. from the command line, on a second failed job, in a separate orchestrator
    other = orch.submit(JobRequest("nhn", media=RemoteUrl("https://example.com/b.mp3")))
    with pytest.raises(JobFailedError):
        orch.wait(other, policy=FAST, timeout=10)
    config = tmp_path / "config.toml"
    config.write_text("[nhn]\n" + "".join(f'{k} = "{v}"\n' for k, v in settings.items()),
                      encoding="utf-8")
    voxhub_plugins.register_commands(cli)
    result = CliRunner().invoke(
        cli, ["--store", str(store_path), "--config", str(config), "nhn", "retry", other.job_id,
              "--wait", "--timeout", "10"],
    )
    assert result.exit_code == 0, result.output
    line = json.loads(result.output.strip().splitlines()[-1])
    assert line["job_id"] == other.job_id
    assert line["previous_task_ids"] == [other.vendor_ids["task_id"]]
    assert line["task_id"] != other.vendor_ids["task_id"] and line["state"] == "succeeded"
    assert store.get(other.job_id).handle.vendor_ids["task_id"] == line["task_id"]
    for secret in (settings["secret_key"], settings["uak_token"]):
        assert secret not in result.output


def test_retry_refuses_jobs_that_did_not_fail(
    voxhub_orchestrator: Callable[..., Orchestrator],
    nhn_sandbox: Callable[..., RunningSandbox], tmp_path: Path,
) -> None:
    server = nhn_sandbox()
    orch = voxhub_orchestrator({"nhn": server.settings()})
    outcome = orch.run(JobRequest("nhn", media=LocalFile(write_wav(tmp_path / "a.wav", 1.0))))
    assert outcome.handle is not None
    with pytest.raises(InvalidInputError, match="only failed jobs can be retried"):
        retry_job(orch, outcome.handle.job_id)


def test_engine_failure_is_not_in_doubt_and_can_be_submitted_again(
    voxhub_orchestrator: Callable[..., Orchestrator],
    nhn_sandbox: Callable[..., RunningSandbox], tmp_path: Path,
) -> None:
    server = nhn_sandbox()
    assert isinstance(server.sandbox, NhnSandbox)
    server.sandbox.answer_code(5004001, endpoint="sync")
    orch = voxhub_orchestrator({"nhn": server.settings()})
    request = JobRequest("nhn", media=LocalFile(write_wav(tmp_path / "a.wav", 1.0)))
    with pytest.raises(ProviderUnavailableError) as info:
        orch.submit(request)
    assert info.value.details["code"] == 5004001 and info.value.in_doubt is False
    handle = orch.submit(request)  # the answer was definite: the same job is simply sent again
    assert orch.status(handle).state is JobState.SUCCEEDED
    assert server.sandbox.counters.get("sync.recognitions") == 1
