"""Through voxhub's Orchestrator: submit, wait on callbacks, fetch the report from the store.

The test receiver stores each verified callback as the core receiver does: the
event's data as a ``callback`` event, and its status unless the job's stored
status is already final (callbacks may arrive out of order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from voxhub.errors import ConfigurationError
from voxhub.models import JobRequest, JobState, ModerationReport, StreamUrl
from voxhub.orchestrator import Orchestrator
from voxhub.provider import CallbackEvent
from voxhub.sandbox import RunningSandbox
from voxhub.store import Store
from voxhub_tupu.codes import TASK_TRANSCRIPTION


def _store_callbacks(store: Store) -> Callable[[str, CallbackEvent], None]:
    def on_event(job_id: str, event: CallbackEvent) -> None:
        store.add_event(job_id, "callback", dict(event.data))
        current = store.get(job_id).status
        if event.status is not None and not (current is not None and current.is_terminal):
            store.set_status(job_id, event.status)

    return on_event


def test_orchestrator_submit_wait_fetch(
    voxhub_orchestrator: Callable[..., Orchestrator],
    voxhub_store: Store,
    tupu_sandbox: Callable[..., RunningSandbox],
    receiver: Any,
) -> None:
    server = tupu_sandbox()
    orch = voxhub_orchestrator(profiles={"tupu": server.settings()}, callback_url=receiver.url)
    receiver.ctx = orch.context("tupu")
    receiver.on_event = _store_callbacks(voxhub_store)

    request = JobRequest(provider="tupu", media=StreamUrl("rtmp://live.example.com/app/9"),
                         options={"tasks": ["transcription", "moderation", "vulgar"],
                                  "room_id": "9"})
    handle = orch.submit(request)
    sent = server.sandbox.submissions[0]["speechStream"][0]  # type: ignore[attr-defined]
    assert sent["callback"].startswith(f"{receiver.url}/callbacks/tupu/{handle.job_id}/")

    status = orch.wait(handle, timeout=10)
    assert status.state is JobState.SUCCEEDED
    receiver.wait_for(lambda r: sum(TASK_TRANSCRIPTION in p
                                    for p in r.payloads(handle.job_id)) == 4)
    report = orch.fetch(handle, refresh=True)
    assert isinstance(report, ModerationReport) and report.ended
    assert sorted(f.label for f in report.findings) == ["ADs", "vulgar"]
    assert len(report.transcript) == 4
    # The stored result is the report; the events hold every verified payload.
    assert orch.fetch(handle) == report
    assert len([e for e in voxhub_store.events(handle.job_id) if e.type == "callback"]) == len(
        receiver.for_job(handle.job_id))
    orch.close(handle)  # closing an ended stream is fine


def test_orchestrator_refuses_without_a_callback_url(
    voxhub_orchestrator: Callable[..., Orchestrator],
    tupu_sandbox: Callable[..., RunningSandbox],
) -> None:
    server = tupu_sandbox()
    orch = voxhub_orchestrator(profiles={"tupu": server.settings()})
    request = JobRequest(provider="tupu", media=StreamUrl("rtmp://live.example.com/app/9"))
    with pytest.raises(ConfigurationError, match="callback_url"):
        orch.submit(request)
    assert server.sandbox.counters.get("requests") == 0


def test_several_streams_go_in_one_request_as_separate_jobs(
    voxhub_orchestrator: Callable[..., Orchestrator],
    voxhub_store: Store,
    tupu_sandbox: Callable[..., RunningSandbox],
    receiver: Any,
) -> None:
    server = tupu_sandbox()
    orch = voxhub_orchestrator(profiles={"tupu": server.settings()}, callback_url=receiver.url)
    receiver.ctx = orch.context("tupu")
    receiver.on_event = _store_callbacks(voxhub_store)
    requests = [JobRequest(provider="tupu", media=StreamUrl(f"rtmp://live.example.com/app/{i}"))
                for i in range(3)]
    handles = orch.submit_many(requests)
    assert len({h.job_id for h in handles}) == 3
    assert len(server.sandbox.submissions) == 1  # type: ignore[attr-defined]
    assert len(server.sandbox.submissions[0]["speechStream"]) == 3  # type: ignore[attr-defined]
    assert len({h.vendor_id for h in handles}) == 3  # each stream keyed by its own requestId
    # Submitting the same streams again creates nothing new.
    assert [h.job_id for h in orch.submit_many(requests)] == [h.job_id for h in handles]
    assert len(server.sandbox.submissions) == 1  # type: ignore[attr-defined]
