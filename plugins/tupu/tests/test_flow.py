"""The provider against TupuSandbox over real sockets; callbacks through a real receiver."""

from __future__ import annotations

import io
import json
import time
import wave
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import urllib3
from cryptography.hazmat.primitives.asymmetric import rsa
from tupu_helpers import (
    ALL_TASKS,
    MakeCtx,
    Start,
    count,
    eventually,
    new_handle,
    request,
    setup,
    submit,
    terminal,
)
from voxhub.plugin import (
    CallbackRejected,
    CallbackRequest,
    InvalidInputError,
    JobHandle,
    JobState,
)
from voxhub_tupu.codes import TASK_SPEECH_MODERATION, TASK_TRANSCRIPTION, TASK_VULGAR_SPEECH
from voxhub_tupu.report import build_report
from voxhub_tupu.sandbox import DEFAULT_SCRIPT
from voxhub_tupu.signing import sign_payload

# --------------------------------------------------------------------------
# Submitting, callbacks, report
# --------------------------------------------------------------------------


def test_submit_one_stream_callbacks_and_report(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context)
    handle = submit(ctx, provider, tasks=ALL_TASKS, room_id="r1", user_id="u1", forum_id="f1")
    rid = handle.vendor_ids["requestId"]
    job = handle.job_id

    receiver.wait_for(lambda r: r.ended(job) and count(r, job, TASK_TRANSCRIPTION) == 4)
    events = receiver.for_job(job)
    assert {e.vendor_id for e in events} == {rid}
    assert all(e.response_status == 200 and b'"code":0' in e.response_body for e in events)
    end = terminal(receiver, job)
    assert end.status.state is JobState.SUCCEEDED and end.status.vendor_state == "end"
    running = [e for e in events if e is not end]
    assert all(e.status.state is JobState.RUNNING for e in running)

    body = sandbox.submissions[0]
    item = body["speechStream"][0]
    assert item["callback"] == receiver.url_for(job)
    # voxhub's default with the transcription task: all results + end of task (seed 003:
    # under rules 0 and 2 only violations are sent, and a transcript is not one).
    assert item["callbackRules"] == 3
    assert (item["roomId"], item["userId"], item["forumId"]) == ("r1", "u1", "f1")
    assert item["returnPreSpeech"] is False
    assert body["tasks"] == [TASK_TRANSCRIPTION, TASK_SPEECH_MODERATION, TASK_VULGAR_SPEECH]
    assert isinstance(body["timestamp"], int) and isinstance(body["nonce"], str)
    assert handle.vendor_state["callback_rules"] == 3

    report = build_report(job, receiver.payloads(job), request_id=rid)
    assert report.ended and report.job_id == job and report.provider == "tupu"
    assert [s.text for s in report.transcript] == [s.text for s in DEFAULT_SCRIPT]
    for piece in report.transcript:
        assert isinstance(piece.start, datetime) and isinstance(piece.end, datetime)
        assert piece.start.utcoffset() == timedelta(hours=8)
        assert piece.end - piece.start == timedelta(seconds=10)
    assert sorted(f.label for f in report.findings) == ["ADs", "vulgar"]
    ads = next(f for f in report.findings if f.label == "ADs")
    assert (ads.action, ads.score, ads.review, ads.text) == ("block", 0.97, False, "加微信买便宜货")
    assert ads.details["keywords"] == ["加微信"] and ads.details["hints"] == ["加微信买便宜货"]
    assert ads.details["task"] == "moderation" and ads.details["roomId"] == "r1"
    vulgar = next(f for f in report.findings if f.label == "vulgar")
    assert (vulgar.score, vulgar.review, vulgar.details["vendor_label"]) == (0.91, True, 1)

    # The evidence audio is real and served by the sandbox.
    assert ads.evidence_url is not None and ads.evidence_url.startswith(sandbox.root_url)
    clip = urllib3.request("GET", ads.evidence_url)
    assert clip.status == 200 and clip.data[:4] == b"RIFF"


def test_submit_batch_one_request_many_jobs(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context)
    items = [(provider.validate(ctx, request(f"rtmp://live.example.com/app/{i}",
                                              tasks=["transcription"], user_id=f"u{i}")),
              new_handle()) for i in range(3)]
    handles = provider.submit_batch(ctx, items)
    assert len(handles) == 3
    assert all(isinstance(h, JobHandle) for h in handles)
    rids = [h.vendor_ids["requestId"] for h in handles]  # type: ignore[union-attr]
    assert len(set(rids)) == 3
    assert len(sandbox.submissions) == 1
    sent = sandbox.submissions[0]["speechStream"]
    assert [s["callback"] for s in sent] == [receiver.url_for(h.job_id) for _, h in items]
    assert sandbox.counters.get("streams.submitted") == 3

    receiver.wait_for(lambda r: all(r.ended(h.job_id) for _, h in items))
    for (_, handle), rid in zip(items, rids, strict=True):
        events = receiver.for_job(handle.job_id)
        assert {e.vendor_id for e in events} == {rid}
        report = build_report(handle.job_id, [e.data for e in events], request_id=rid)
        assert report.findings == ()  # transcription only
        assert report.transcript and report.ended


def test_batch_with_different_tasks_is_refused_before_sending(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context)
    items = [(request(tasks=["vulgar"]), new_handle()),
             (request(tasks=["transcription"]), new_handle())]
    with pytest.raises(InvalidInputError) as info:
        provider.submit_batch(ctx, items)
    assert info.value.field == "tasks"
    assert sandbox.counters.get("requests") == 0


def test_close_ends_the_stream_and_the_end_callback_arrives(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context, loop=True)
    handle = submit(ctx, provider, tasks=["transcription"])
    rid = handle.vendor_ids["requestId"]
    receiver.wait_for(lambda r: len(r.for_job(handle.job_id)) >= 2)
    assert not receiver.ended(handle.job_id)
    assert provider.status(ctx, handle).state is JobState.RUNNING

    provider.close(ctx, handle)
    receiver.wait_for(lambda r: r.ended(handle.job_id))
    end = terminal(receiver, handle.job_id)
    assert end.status.state is JobState.SUCCEEDED and end.data["status"] == "end"
    assert sandbox.stream(rid)["status"] == "closed"  # type: ignore[index]
    status = provider.status(ctx, handle)
    assert (status.state, status.vendor_state) == (JobState.SUCCEEDED, "closed")

    # Nothing more arrives once the stream is closed (and what was queued is delivered).
    eventually(lambda: sandbox.counters.get("callbacks.delivered")
                == sandbox.counters.get("callbacks.queued"))
    seen = len(receiver.for_job(handle.job_id))
    time.sleep(0.3)
    assert len(receiver.for_job(handle.job_id)) == seen

    provider.close(ctx, handle)  # closing again is fine
    provider.close(ctx, handle.with_vendor(ids={"requestId": "0" * 24}))  # unknown: fine
    provider.close(ctx, new_handle())  # never submitted: nothing to do
    assert sandbox.counters.get("streams.closed") == 1


def test_callback_rules_all_sends_every_result_but_reports_violations(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context)
    handle = submit(ctx, provider, tasks=ALL_TASKS, callback_rules="all+end")
    job = handle.job_id
    receiver.wait_for(lambda r: r.ended(job) and count(r, job, TASK_TRANSCRIPTION) == 4)
    assert sandbox.submissions[0]["speechStream"][0]["callbackRules"] == 3
    assert count(receiver, job, TASK_SPEECH_MODERATION) == 4
    assert count(receiver, job, TASK_VULGAR_SPEECH) == 4
    report = build_report(job, receiver.payloads(job))
    assert sorted(f.label for f in report.findings) == ["ADs", "vulgar"]


def test_without_end_rule_status_comes_from_search(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context)
    handle = submit(ctx, provider, tasks=ALL_TASKS, callback_rules="violations")
    rid = handle.vendor_ids["requestId"]
    eventually(lambda: sandbox.stream(rid)["status"] != "running")  # type: ignore[index]
    status = provider.status(ctx, handle)
    assert (status.state, status.vendor_state) == (JobState.SUCCEEDED, "end")
    time.sleep(0.2)
    eventually(lambda: sandbox.counters.get("callbacks.delivered")
                == sandbox.counters.get("callbacks.queued"))
    assert not receiver.ended(handle.job_id)  # rule 0 sends no end-of-task callback
    # Violations only (seed 003): no transcript slice, no normal moderation entry.
    assert count(receiver, handle.job_id, TASK_SPEECH_MODERATION) == 1
    assert count(receiver, handle.job_id, TASK_VULGAR_SPEECH) == 1
    assert count(receiver, handle.job_id, TASK_TRANSCRIPTION) == 0


def test_alternate_shapes_end_to_end(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    _, ctx, provider = setup(tupu_sandbox, receiver, make_context, variant="alternate")
    handle = submit(ctx, provider, tasks=ALL_TASKS, callback_rules="all+end")
    job = handle.job_id
    receiver.wait_for(lambda r: r.ended(job) and count(r, job, TASK_TRANSCRIPTION) == 4)
    end = terminal(receiver, job)
    assert end.data["code"] == "0" and end.status.state is JobState.SUCCEEDED
    payloads = receiver.payloads(job)
    assert any("violations" in p.get(TASK_SPEECH_MODERATION, {}) for p in payloads)
    assert any("speechs" in p.get(TASK_VULGAR_SPEECH, {}) for p in payloads)
    assert all(isinstance(p["timestamp"], str) for p in payloads)
    report = build_report(job, payloads)
    ads = next(f for f in report.findings if f.label == "ADs")
    assert ads.score == 0.97 and ads.details["keywords"] == ["加微信"]
    vulgar = next(f for f in report.findings if f.label == "vulgar")
    assert vulgar.review is True and vulgar.details["vendor_label"] == "1"
    assert len(report.transcript) == 4
    # The search answer's result is an object in this variant.
    assert provider.status(ctx, handle).state is JobState.SUCCEEDED


def test_abnormal_end_is_failed_with_the_code(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    _, ctx, provider = setup(tupu_sandbox, receiver, make_context, natural_end_code=400)
    handle = submit(ctx, provider, tasks=["transcription"])
    receiver.wait_for(lambda r: r.ended(handle.job_id))
    status = terminal(receiver, handle.job_id).status
    assert status.state is JobState.FAILED and status.reason == "code 400"
    assert "download failure" in (status.detail or "")
    assert provider.status(ctx, handle).state is JobState.FAILED


def test_failed_deliveries_are_retried(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context)
    receiver.fail_next = 3
    handle = submit(ctx, provider, tasks=ALL_TASKS)
    job = handle.job_id
    receiver.wait_for(lambda r: r.ended(job) and count(r, job, TASK_TRANSCRIPTION) == 4)
    assert receiver.failures == 3
    assert sandbox.counters.get("callbacks.failed") == 3
    eventually(lambda: sandbox.counters.get("callbacks.delivered") == len(receiver.for_job(job)))
    # A delivery repeated after a lost answer counts once in the report.
    payloads = receiver.payloads(job)
    report = build_report(job, payloads + payloads)
    assert len(report.transcript) == 4 and len(report.findings) == 2
    assert len(report.raw) == len(payloads)


# --------------------------------------------------------------------------
# Callbacks that must be refused
# --------------------------------------------------------------------------


def test_forged_tampered_and_unsigned_callbacks_are_refused(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context)
    handle = submit(ctx, provider, tasks=["transcription"])
    job, rid = handle.job_id, handle.vendor_ids["requestId"]
    receiver.wait_for(lambda r: r.ended(job))
    time.sleep(0.1)
    before = list(receiver.for_job(job))
    genuine = json.loads(sandbox.sender.delivered[0][1])

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    end = {"code": 1, "requestId": rid, "status": "end", "nonce": "1", "timestamp": 1}
    tampered = dict(genuine, json=genuine["json"].replace('"code":0', '"code":7'))
    assert tampered["json"] != genuine["json"]
    bodies = [
        json.dumps(sign_payload(end, other)).encode(),  # forged: another key
        json.dumps(tampered).encode(),  # tampered payload, original signature
        json.dumps(end).encode(),  # a bare, unsigned payload
        json.dumps({"json": json.dumps(end)}).encode(),  # no signature
        json.dumps({"error": "gateway"}).encode(),
        b"",
        b"not json",
    ]
    for body in bodies:
        resp = urllib3.request("POST", receiver.url_for(job), body=body,
                               headers={"Content-Type": "application/json"})
        assert resp.status == 401, body
    assert [r[1] for r in receiver.refused] == [401] * len(bodies)
    assert receiver.for_job(job) == before  # nothing changed

    with pytest.raises(CallbackRejected) as info:
        provider.parse_callback(ctx, CallbackRequest(headers={}, body=bodies[0]))
    assert info.value.http_status == 401
    assert genuine["signature"][:20] not in str(info.value)

    # Verified, but naming no stream: refused as a bad request.
    nameless = sandbox.sign({"code": 0, "message": "success"})
    with pytest.raises(CallbackRejected) as info:
        provider.parse_callback(ctx, CallbackRequest(headers={}, body=nameless))
    assert info.value.http_status == 400


def test_parse_callback_reads_string_codes_and_numeric_nonces(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context)
    body = sandbox.sign({"code": "0", "requestId": "abc", "status": "end",
                         "nonce": 0.5, "timestamp": "1629969759333"})
    event = provider.parse_callback(ctx, CallbackRequest(headers={}, body=body))
    assert event.vendor_id == "abc" and event.status is not None
    assert event.status.state is JobState.SUCCEEDED


# --------------------------------------------------------------------------
# Sandbox content from audio
# --------------------------------------------------------------------------


def _wav(path: Path, seconds: float, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x01\x00" * int(seconds * rate))


def test_sandbox_streams_a_local_audio_file(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx, tmp_path: Path
) -> None:
    audio = tmp_path / "speech.wav"
    _wav(audio, 2.5)
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context, audio=str(audio),
                                    audio_slice_seconds=1.0)
    assert [s.duration for s in sandbox.content] == [1.0, 1.0, 0.5]
    handle = submit(ctx, provider, tasks=["transcription"])
    job = handle.job_id
    receiver.wait_for(lambda r: r.ended(job) and count(r, job, TASK_TRANSCRIPTION) == 3)
    report = build_report(job, receiver.payloads(job))
    assert len(report.transcript) == 3
    url = receiver.payloads(job)[0][TASK_TRANSCRIPTION]["texts"][0]["speechUrl"]
    clip = urllib3.request("GET", url)
    with wave.open(io.BytesIO(clip.data), "rb") as got:
        assert got.getframerate() == 8000 and got.getnframes() == 8000  # one second
