"""End to end through voxhub's Orchestrator, with the plugin loaded from its entry point."""

from __future__ import annotations

import pytest
from voxhub.orchestrator import ClosePolicy
from voxhub.plugin import JobFailedError, JobRequest, JobState, LocalFile, RemoteUrl, Transcript


@pytest.fixture
def orch(voxhub_sandbox, voxhub_orchestrator, voxhub_clock, media_dir):
    def make(**sandbox_options):
        sandbox_options.setdefault("processing_seconds", 0)
        sandbox_options.setdefault("use_engine", False)
        sandbox_options.setdefault("sidecar_dirs", [media_dir])
        run = voxhub_sandbox("revai", **sandbox_options)
        return run, voxhub_orchestrator(profiles={"revai": run.settings()}, clock=voxhub_clock)

    return make


def test_run_fetch_export_close(orch, wav, kit):
    run, o = orch()
    outcome = o.run(JobRequest(provider="revai", media=LocalFile(wav),
                               options={"verbatim": "false"}), close=ClosePolicy.NEVER)
    assert outcome.ok, outcome.error
    assert isinstance(outcome.result, Transcript)
    assert outcome.result.text == kit.SPOKEN
    handle = outcome.handle
    assert handle is not None
    assert o.export(handle, "srt").startswith("1\n00:00:00,000")
    assert o.export(handle, "vtt").startswith("WEBVTT")
    # txt is voxhub's plain text (never Rev's speaker/time columns); labels on request.
    assert o.export(handle, "txt") == "".join(
        s.text.strip() + "\n" for s in outcome.result.segments)
    assert o.export(handle, "txt", speakers=True).startswith("Speaker 0: Hello there.")
    o.close(handle)
    assert run.sandbox.counters.get("jobs.deleted") == 1
    # The same input again is the same job: nothing new is sent.
    again = o.submit(JobRequest(provider="revai", media=LocalFile(wav),
                                options={"verbatim": "false"}))
    assert again.job_id == handle.job_id
    assert run.sandbox.counters.get("jobs.created") == 1


def test_lost_answer_through_orchestrator_one_job(orch, wav):
    run, o = orch()
    run.sandbox.script(endpoint="create_job", action="drop_after")
    handle = o.submit(JobRequest(provider="revai", media=LocalFile(wav)))
    assert o.wait(handle).state is JobState.SUCCEEDED
    counters = run.sandbox.counters
    assert counters.get("jobs.created") == 1 and counters.get("jobs.duplicates") == 0
    assert run.sandbox.jobs_for_key(handle.idempotency_key or "") == 1
    assert counters.get("scripted.drop_after") == 1


def test_lost_answers_over_the_control_api_then_one_job(orch, wav):
    # What a test outside this process does: script the lost answer over HTTP.
    import urllib3

    run, o = orch()
    scripted = urllib3.request("POST", f"{run.base_url}/_sandbox/script",
                               json={"endpoint": "create_job", "action": "drop_after"})
    assert scripted.status == 200, scripted.data
    refused = urllib3.request("POST", f"{run.base_url}/_sandbox/script",
                              json={"endpoint": "create_job", "action": "explode"})
    assert refused.status == 400 and "action" in refused.json()["error"]
    handle = o.submit(JobRequest(provider="revai", media=LocalFile(wav)))
    assert o.wait(handle).state is JobState.SUCCEEDED
    assert run.sandbox.counters.get("jobs.created") == 1


def test_failed_job_outcome(orch):
    _run, o = orch(failure_rate=1.0)
    with pytest.raises(JobFailedError) as failed:
        o.run(JobRequest(provider="revai", media=RemoteUrl("https://a.example/x.mp3")))
    assert failed.value.handle is not None and failed.value.reason
    status = o.store.get(failed.value.handle.job_id).status
    assert status is not None and status.state is JobState.FAILED


def test_upload_progress_reaches_the_caller(orch, wav):
    _run, o = orch()
    seen: list[tuple[int, int]] = []
    o.submit(JobRequest(provider="revai", media=LocalFile(wav)),
             progress=lambda sent, total: seen.append((sent, total)))
    size = wav.stat().st_size
    assert seen and seen[-1] == (size, size)
