"""End to end through ``voxhub.Orchestrator`` (store, idempotency, status, fetch, close)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from voxhub.errors import InvalidInputError
from voxhub.models import JobKind, JobRequest, JobState, RtcChannel, TaskInfo
from voxhub.orchestrator import WaitPolicy
from voxhub.sandbox import RunningSandbox
from voxhub_agora.transcoder import AgoraTranscoderProvider

FAST = WaitPolicy(first_poll=0.05, max_interval=0.1)


@pytest.mark.parametrize("version", ["v7", "v6"])
def test_channel_transcription_end_to_end(version: str, voxhub_orchestrator: Any,
                                          stt_sandbox: RunningSandbox) -> None:
    orch = voxhub_orchestrator(profiles={"agora-stt": {**stt_sandbox.settings(),
                                                       "auth": "token"}})
    request = JobRequest(provider="agora-stt", media=RtcChannel("e2e"),
                         options={"languages": ["en-US"], "api_version": version})
    handle = orch.submit(request)
    assert orch.submit(request).job_id == handle.job_id  # same input, same job
    time.sleep(0.25)
    assert orch.status(handle).state is JobState.RUNNING
    # A second app (another input) asking for the same channel joins the live task.
    other = orch.submit(JobRequest(provider="agora-stt", media=RtcChannel("e2e"),
                                   options={"languages": ["en-US", "ja-JP"],
                                            "api_version": version}))
    assert other.vendor_ids == handle.vendor_ids
    sandbox = stt_sandbox.sandbox
    assert sandbox.counters.get("tasks.created") == 1
    orch.close(other)
    assert sandbox.counters.get("tasks.stopped") == 0
    orch.close(handle)
    assert sandbox.counters.get("tasks.stopped") == 1
    assert orch.status(handle).state is JobState.CANCELLED


def test_wait_and_fetch_when_the_task_ends(voxhub_orchestrator: Any,
                                           stt_sandbox: RunningSandbox) -> None:
    stt_sandbox.sandbox.task_lifetime = 0.3  # type: ignore[attr-defined]
    orch = voxhub_orchestrator(profiles={"agora-stt": stt_sandbox.settings()})
    handle = orch.submit(JobRequest(provider="agora-stt", media=RtcChannel("short"),
                                    language="en-US", options={"api_version": "v6"}))
    status = orch.wait(handle, timeout=10, policy=FAST)
    assert status.state is JobState.SUCCEEDED
    result = orch.fetch(handle)
    assert isinstance(result, TaskInfo) and result.task_id == handle.vendor_ids["task_id"]


def test_invalid_request_sends_nothing(voxhub_orchestrator: Any,
                                       stt_sandbox: RunningSandbox) -> None:
    orch = voxhub_orchestrator(profiles={"agora-stt": stt_sandbox.settings()})
    with pytest.raises(InvalidInputError, match="max_idle_time"):
        orch.submit(JobRequest(provider="agora-stt", media=RtcChannel("x"),
                               options={"languages": ["en-US"], "max_idle_time": 1}))
    assert stt_sandbox.sandbox.counters.get("requests") == 0


def test_transcoding_end_to_end(voxhub_orchestrator: Any, tc_sandbox: RunningSandbox,
                                tmp_path: Path, h: Any) -> None:
    path = tmp_path / "mix.json"
    path.write_text(json.dumps(h.transcoder_doc()))
    orch = voxhub_orchestrator(profiles={"agora-transcoder": tc_sandbox.settings()})
    request = JobRequest(provider="agora-transcoder", kind=JobKind.TRANSCODING,
                         options={"config_file": str(path)})
    handle = orch.submit(request)
    assert orch.submit(request).job_id == handle.job_id
    time.sleep(0.25)
    assert orch.status(handle).state is JobState.RUNNING
    # Updates go through the provider (no core "update" yet); the new handle is stored.
    entry = orch.plugins.provider("agora-transcoder")
    provider = entry.provider
    assert isinstance(provider, AgoraTranscoderProvider)
    ctx = orch.context("agora-transcoder")
    updated = provider.update(ctx, handle, path)
    orch.store.update_handle(updated)
    assert orch.store.get(handle.job_id).handle.vendor_state["sequence_id"] == 1
    orch.close(handle)
    assert tc_sandbox.sandbox.counters.get("tasks.stopped") == 1


def test_no_secrets_in_logs_errors_or_store(voxhub_orchestrator: Any, voxhub_store: Any,
                                            stt_sandbox: RunningSandbox,
                                            debug_logs: list[Any]) -> None:
    creds = stt_sandbox.sandbox.credentials()
    secrets = [creds["app_certificate"], creds["customer_secret"], creds["customer_id"]]
    logs = debug_logs
    for auth in ("basic", "token"):
        orch = voxhub_orchestrator(profiles={"agora-stt": {**stt_sandbox.settings(),
                                                           "auth": auth}})
        handle = orch.submit(JobRequest(
            provider="agora-stt", media=RtcChannel(f"secret-{auth}"),
            options={"languages": ["en-US"], "api_version": "v6"}))
        orch.status(handle)
        ctx = orch.context("agora-stt")
        secrets.append(ctx.auth.header(now=time.time()).split('"')[-2]
                       if auth == "token" else ctx.auth.header(now=time.time()))
        orch.close(handle)
    bad = voxhub_orchestrator(profiles={"agora-stt": {**stt_sandbox.settings(),
                                                      "customer_secret": "wrong-secret-1"}})
    with pytest.raises(Exception) as info:
        bad.submit(JobRequest(provider="agora-stt", media=RtcChannel("bad"),
                              options={"languages": ["en-US"]}))
    secrets.append("wrong-secret-1")
    texts = [repr(event) for event in logs] + [str(info.value), repr(info.value),
                                               repr(orch.context("agora-stt"))]
    for secret in secrets:
        for text in texts:
            assert secret not in text
    with sqlite3.connect(voxhub_store.path) as conn:
        dump = "\n".join(str(row) for row in conn.execute("SELECT * FROM jobs"))
        dump += "\n".join(str(row) for row in conn.execute("SELECT * FROM events"))
    for secret in secrets:
        assert secret not in dump
    assert any(e.get("event") == "agora.answer" and e.get("request_id") for e in logs)
