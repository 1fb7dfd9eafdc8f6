"""Through voxhub's Orchestrator and its real callback receiver (``voxhub.callbacks``).

The receiver verifies each callback with the provider's ``parse_callback``, stores
it as a ``callback`` event and applies its status; ``fetch`` builds the report
from those stored events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from voxhub.callbacks import CallbackHandler, wsgi_app
from voxhub.orchestrator import Orchestrator
from voxhub.plugin import ConfigurationError, JobRequest, JobState, ModerationReport, StreamUrl
from voxhub.sandbox import RunningSandbox
from voxhub.store import Store
from voxhub_tupu.codes import TASK_TRANSCRIPTION
from werkzeug.serving import make_server


@pytest.fixture
def wired(
    voxhub_orchestrator: Callable[..., Orchestrator],
    tupu_sandbox: Callable[..., RunningSandbox],
) -> Iterator[tuple[Orchestrator, RunningSandbox, str]]:
    """An orchestrator, a Tupu sandbox and voxhub's own callback receiver on loopback."""
    server = tupu_sandbox()
    holder: dict[str, Orchestrator] = {}

    def app(environ: Any, start_response: Any) -> Any:
        return wsgi_app(CallbackHandler(holder["orch"]))(environ, start_response)

    receiver = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_port}"
    holder["orch"] = voxhub_orchestrator(profiles={"tupu": server.settings()}, callback_url=url)
    yield holder["orch"], server, url
    receiver.shutdown()
    receiver.server_close()


def _callbacks(store: Store, job_id: str) -> list[dict[str, Any]]:
    return [e.data for e in store.events(job_id) if e.type == "callback"]


def _wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for callbacks"
        time.sleep(0.05)


def test_orchestrator_submit_wait_fetch(
    wired: tuple[Orchestrator, RunningSandbox, str],
) -> None:
    orch, server, url = wired
    request = JobRequest(provider="tupu", media=StreamUrl("rtmp://live.example.com/app/9"),
                         options={"tasks": ["transcription", "moderation", "vulgar"],
                                  "room_id": "9"})
    handle = orch.submit(request)
    sent = server.sandbox.submissions[0]["speechStream"][0]  # type: ignore[attr-defined]
    assert sent["callback"].startswith(f"{url}/callbacks/tupu/{handle.job_id}/")

    status = orch.wait(handle, timeout=10)
    assert status.state is JobState.SUCCEEDED
    # The end-of-task callback may overtake the last slices: wait for all four.
    _wait_until(lambda: sum(TASK_TRANSCRIPTION in p
                            for p in _callbacks(orch.store, handle.job_id)) == 4)
    report = orch.fetch(handle)
    assert isinstance(report, ModerationReport) and report.ended
    assert sorted(f.label for f in report.findings) == ["ADs", "vulgar"]
    assert len(report.transcript) == 4
    assert orch.fetch(handle) == report
    # Every delivered callback was stored once.
    assert len(_callbacks(orch.store, handle.job_id)) == server.sandbox.counters.get(
        "callbacks.delivered")
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
    wired: tuple[Orchestrator, RunningSandbox, str],
) -> None:
    orch, server, _ = wired
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
