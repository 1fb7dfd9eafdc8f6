"""The provider against TupuSandbox over real sockets; callbacks through a real receiver."""

from __future__ import annotations

import io
import json
import time
import wave
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from voxhub.clock import FakeClock
from voxhub.errors import (
    AuthenticationError,
    CallbackRejected,
    ConfigurationError,
    InvalidInputError,
    PermissionDeniedError,
    PluginError,
    ProviderError,
    ProviderUnavailableError,
    UnsupportedOptionError,
)
from voxhub.models import (
    JobHandle,
    JobKind,
    JobRequest,
    JobState,
    LocalFile,
    RemoteUrl,
    StreamUrl,
    new_job_id,
)
from voxhub.provider import CallbackRequest, ProviderContext
from voxhub.sandbox import FaultPlan, RunningSandbox
from voxhub_tupu.codes import TASK_SPEECH_MODERATION, TASK_TRANSCRIPTION, TASK_VULGAR_SPEECH
from voxhub_tupu.provider import TupuAuth, TupuProvider
from voxhub_tupu.report import build_report
from voxhub_tupu.sandbox import DEFAULT_SCRIPT, TupuSandbox
from voxhub_tupu.signing import (
    load_private_key,
    load_public_key,
    sign_payload,
    sign_request,
    verify_response,
    write_key_pair,
)

ALL_TASKS = ["transcription", "moderation", "vulgar"]
Start = Callable[..., RunningSandbox]
MakeCtx = Callable[..., ProviderContext]


def _request(url: str = "rtmp://live.example.com/app/room1", **options: Any) -> JobRequest:
    return JobRequest(provider="tupu", media=StreamUrl(url), kind=JobKind.STREAM_MODERATION,
                      options=options)


def _handle() -> JobHandle:
    return JobHandle(job_id=new_job_id(), provider="tupu", kind=JobKind.STREAM_MODERATION,
                     profile="tupu")


def _setup(
    start: Start, receiver: Any, make_context: MakeCtx, **options: Any
) -> tuple[TupuSandbox, ProviderContext, TupuProvider]:
    server = start(**options)
    ctx = make_context(server.settings(), receiver=receiver)
    provider = TupuProvider()
    ctx.auth = provider.authenticate(ctx)
    return server.sandbox, ctx, provider  # type: ignore[return-value]


def _submit(ctx: ProviderContext, provider: TupuProvider, **options: Any) -> JobHandle:
    request = provider.validate(ctx, _request(**options))
    handle = provider.submit(ctx, request, _handle())
    assert isinstance(handle, JobHandle)
    return handle


def _count(receiver: Any, job_id: str, task: str) -> int:
    return sum(task in p for p in receiver.payloads(job_id))


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


def _terminal(receiver: Any, job_id: str) -> Any:
    ends = [e for e in receiver.for_job(job_id) if e.status is not None and e.status.is_terminal]
    assert len(ends) == 1
    return ends[0]


# --------------------------------------------------------------------------
# Submitting, callbacks, report
# --------------------------------------------------------------------------


def test_submit_one_stream_callbacks_and_report(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = _setup(tupu_sandbox, receiver, make_context)
    handle = _submit(ctx, provider, tasks=ALL_TASKS, room_id="r1", user_id="u1", forum_id="f1")
    rid = handle.vendor_ids["requestId"]
    job = handle.job_id

    receiver.wait_for(lambda r: r.ended(job) and _count(r, job, TASK_TRANSCRIPTION) == 4)
    events = receiver.for_job(job)
    assert {e.vendor_id for e in events} == {rid}
    assert all(e.response_status == 200 and b'"code":0' in e.response_body for e in events)
    end = _terminal(receiver, job)
    assert end.status.state is JobState.SUCCEEDED and end.status.vendor_state == "end"
    running = [e for e in events if e is not end]
    assert all(e.status.state is JobState.RUNNING for e in running)

    body = sandbox.submissions[0]
    item = body["speechStream"][0]
    assert item["callback"] == receiver.url_for(job)
    assert item["callbackRules"] == 2  # voxhub's default: violations + end of task
    assert (item["roomId"], item["userId"], item["forumId"]) == ("r1", "u1", "f1")
    assert item["returnPreSpeech"] is False
    assert body["tasks"] == [TASK_TRANSCRIPTION, TASK_SPEECH_MODERATION, TASK_VULGAR_SPEECH]
    assert isinstance(body["timestamp"], int) and isinstance(body["nonce"], str)
    assert handle.vendor_state["callback_rules"] == 2

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
    sandbox, ctx, provider = _setup(tupu_sandbox, receiver, make_context)
    items = [(provider.validate(ctx, _request(f"rtmp://live.example.com/app/{i}",
                                              tasks=["transcription"], user_id=f"u{i}")),
              _handle()) for i in range(3)]
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
    sandbox, ctx, provider = _setup(tupu_sandbox, receiver, make_context)
    items = [(_request(tasks=["vulgar"]), _handle()),
             (_request(tasks=["transcription"]), _handle())]
    with pytest.raises(InvalidInputError) as info:
        provider.submit_batch(ctx, items)
    assert info.value.field == "tasks"
    assert sandbox.counters.get("requests") == 0


def test_close_ends_the_stream_and_the_end_callback_arrives(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = _setup(tupu_sandbox, receiver, make_context, loop=True)
    handle = _submit(ctx, provider, tasks=["transcription"])
    rid = handle.vendor_ids["requestId"]
    receiver.wait_for(lambda r: len(r.for_job(handle.job_id)) >= 2)
    assert not receiver.ended(handle.job_id)
    assert provider.status(ctx, handle).state is JobState.RUNNING

    provider.close(ctx, handle)
    receiver.wait_for(lambda r: r.ended(handle.job_id))
    end = _terminal(receiver, handle.job_id)
    assert end.status.state is JobState.SUCCEEDED and end.data["status"] == "end"
    assert sandbox.stream(rid)["status"] == "closed"  # type: ignore[index]
    status = provider.status(ctx, handle)
    assert (status.state, status.vendor_state) == (JobState.SUCCEEDED, "closed")

    # Nothing more arrives once the stream is closed (and what was queued is delivered).
    _eventually(lambda: sandbox.counters.get("callbacks.delivered")
                == sandbox.counters.get("callbacks.queued"))
    seen = len(receiver.for_job(handle.job_id))
    time.sleep(0.3)
    assert len(receiver.for_job(handle.job_id)) == seen

    provider.close(ctx, handle)  # closing again is fine
    provider.close(ctx, handle.with_vendor(ids={"requestId": "0" * 24}))  # unknown: fine
    provider.close(ctx, _handle())  # never submitted: nothing to do
    assert sandbox.counters.get("streams.closed") == 1


def test_callback_rules_all_sends_every_result_but_reports_violations(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = _setup(tupu_sandbox, receiver, make_context)
    handle = _submit(ctx, provider, tasks=ALL_TASKS, callback_rules="all+end")
    job = handle.job_id
    receiver.wait_for(lambda r: r.ended(job) and _count(r, job, TASK_TRANSCRIPTION) == 4)
    assert sandbox.submissions[0]["speechStream"][0]["callbackRules"] == 3
    assert _count(receiver, job, TASK_SPEECH_MODERATION) == 4
    assert _count(receiver, job, TASK_VULGAR_SPEECH) == 4
    report = build_report(job, receiver.payloads(job))
    assert sorted(f.label for f in report.findings) == ["ADs", "vulgar"]


def test_without_end_rule_status_comes_from_search(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = _setup(tupu_sandbox, receiver, make_context)
    handle = _submit(ctx, provider, tasks=ALL_TASKS, callback_rules="violations")
    rid = handle.vendor_ids["requestId"]
    _eventually(lambda: sandbox.stream(rid)["status"] != "running")  # type: ignore[index]
    status = provider.status(ctx, handle)
    assert (status.state, status.vendor_state) == (JobState.SUCCEEDED, "end")
    time.sleep(0.2)
    _eventually(lambda: sandbox.counters.get("callbacks.delivered")
                == sandbox.counters.get("callbacks.queued"))
    assert not receiver.ended(handle.job_id)  # rule 0 sends no end-of-task callback
    # Violations only: the transcription task still sends every slice; no normal moderation.
    assert _count(receiver, handle.job_id, TASK_SPEECH_MODERATION) == 1


def test_alternate_shapes_end_to_end(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    _, ctx, provider = _setup(tupu_sandbox, receiver, make_context, variant="alternate")
    handle = _submit(ctx, provider, tasks=ALL_TASKS, callback_rules="all+end")
    job = handle.job_id
    receiver.wait_for(lambda r: r.ended(job) and _count(r, job, TASK_TRANSCRIPTION) == 4)
    end = _terminal(receiver, job)
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
    _, ctx, provider = _setup(tupu_sandbox, receiver, make_context, natural_end_code=400)
    handle = _submit(ctx, provider, tasks=["transcription"])
    receiver.wait_for(lambda r: r.ended(handle.job_id))
    status = _terminal(receiver, handle.job_id).status
    assert status.state is JobState.FAILED and status.reason == "code 400"
    assert "download failure" in (status.detail or "")
    assert provider.status(ctx, handle).state is JobState.FAILED


def test_failed_deliveries_are_retried(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = _setup(tupu_sandbox, receiver, make_context)
    receiver.fail_next = 3
    handle = _submit(ctx, provider, tasks=ALL_TASKS)
    job = handle.job_id
    receiver.wait_for(lambda r: r.ended(job) and _count(r, job, TASK_TRANSCRIPTION) == 4)
    assert receiver.failures == 3
    assert sandbox.counters.get("callbacks.failed") == 3
    _eventually(lambda: sandbox.counters.get("callbacks.delivered") == len(receiver.for_job(job)))
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
    sandbox, ctx, provider = _setup(tupu_sandbox, receiver, make_context)
    handle = _submit(ctx, provider, tasks=["transcription"])
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


def test_parse_callback_without_authenticate_uses_the_public_key_setting(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    server = tupu_sandbox()
    ctx = make_context(server.settings())
    sandbox: TupuSandbox = server.sandbox  # type: ignore[assignment]
    body = sandbox.sign({"code": "0", "requestId": "abc", "status": "end",
                         "nonce": 0.5, "timestamp": "1629969759333"})
    event = TupuProvider().parse_callback(ctx, CallbackRequest(headers={}, body=body))
    assert event.vendor_id == "abc" and event.status is not None
    assert event.status.state is JobState.SUCCEEDED


# --------------------------------------------------------------------------
# Request signing and Tupu's codes
# --------------------------------------------------------------------------


def test_wrong_request_signature_is_code_1_authentication_error(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx, tmp_path: Path
) -> None:
    server = tupu_sandbox()
    other_private, _ = write_key_pair(tmp_path)
    ctx = make_context({**server.settings(), "private_key": str(other_private)},
                       receiver=receiver)
    provider = TupuProvider()
    with pytest.raises(AuthenticationError) as info:
        provider.submit(ctx, _request(), _handle())
    assert info.value.code == 1
    assert "private_key" in str(info.value)
    sandbox: TupuSandbox = server.sandbox  # type: ignore[assignment]
    assert sandbox.counters.get("requests.bad_signature") == 1
    assert sandbox.submissions == []


@pytest.mark.parametrize("skew", [-3600.0, 3600.0])
def test_stale_timestamp_is_code_12(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx, skew: float
) -> None:
    server = tupu_sandbox()
    ctx = make_context(server.settings(), receiver=receiver,
                       clock=FakeClock(start=time.time() + skew))
    with pytest.raises(AuthenticationError) as info:
        TupuProvider().submit(ctx, _request(), _handle())
    assert info.value.code == 12
    assert "clock" in str(info.value)
    assert server.sandbox.counters.get("requests.stale") == 1


def test_unknown_secret_id_is_code_6(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    server = tupu_sandbox()
    ctx = make_context({**server.settings(), "secret_id": "nobody-here"}, receiver=receiver)
    with pytest.raises(AuthenticationError) as info:
        TupuProvider().submit(ctx, _request(), _handle())
    assert info.value.code == 6


def test_task_not_allowed_is_code_7(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    _, ctx, provider = _setup(tupu_sandbox, receiver, make_context,
                              configured_tasks=(TASK_TRANSCRIPTION,))
    with pytest.raises(PermissionDeniedError) as info:
        _submit(ctx, provider, tasks=["vulgar"])
    assert info.value.code == 7 and info.value.details["code"] == 7


def test_requests_accept_numbers_and_strings_for_timestamp_and_nonce(
    tupu_sandbox: Start,
) -> None:
    server = tupu_sandbox(configured_tasks=(TASK_TRANSCRIPTION,))
    settings = server.settings()
    key = load_private_key(settings["private_key"])
    tupu_public = load_public_key(settings["public_key"])
    sid = settings["secret_id"]
    now = int(time.time())
    url = f"{server.base_url}/v3/recognition/speech/stream/search/{sid}"
    # (timestamp JSON, nonce JSON, their text as signed): numbers or strings, as the SDKs send.
    cases = [
        (str(now), "0.8469537531104208", str(now), "0.8469537531104208"),  # numbers (docs)
        (f'"{now}"', '"0.25"', str(now), "0.25"),  # strings (Go, Java)
        (f"{now}.123", '"42"', f"{now}.123", "42"),  # float timestamp (Python SDK)
    ]
    for ts_json, nonce_json, ts_text, nonce_text in cases:
        signature = sign_request(sid, ts_text, nonce_text, key)
        body = (f'{{"requestId": "unknown", "timestamp": {ts_json}, '
                f'"nonce": {nonce_json}, "signature": "{signature}"}}')
        resp = urllib3.request("POST", url, body=body.encode(),
                               headers={"Content-Type": "application/json"})
        payload = verify_response(resp.data, tupu_public)
        assert payload["code"] == 16, payload  # authenticated; the stream is unknown
    # The same request with the nonce re-rendered differently no longer verifies.
    signature = sign_request(sid, now, "0.25", key)
    body = f'{{"requestId": "x", "timestamp": {now}, "nonce": 0.250, "signature": "{signature}"}}'
    resp = urllib3.request("POST", url, body=body.encode())
    assert verify_response(resp.data, tupu_public)["code"] == 1


# --------------------------------------------------------------------------
# Configuration and validation
# --------------------------------------------------------------------------


def test_missing_public_key_is_a_configuration_error(
    tupu_sandbox: Start, make_context: MakeCtx, tmp_path: Path
) -> None:
    server = tupu_sandbox()
    settings = server.settings()
    provider = TupuProvider()
    without = {k: v for k, v in settings.items() if k != "public_key"}
    with pytest.raises(ConfigurationError, match="VOXHUB_TUPU_PUBLIC_KEY"):
        provider.authenticate(make_context(without))
    with pytest.raises(ConfigurationError, match="VOXHUB_TUPU_PUBLIC_KEY"):
        provider.parse_callback(make_context(without), CallbackRequest(headers={}, body=b"{}"))
    with pytest.raises(ConfigurationError, match=r"nope\.pem"):
        provider.authenticate(make_context({**settings, "public_key": str(tmp_path / "nope.pem")}))
    with pytest.raises(ConfigurationError, match="private key where a public"):
        provider.authenticate(make_context({**settings, "public_key": settings["private_key"]}))
    without_private = {k: v for k, v in settings.items() if k != "private_key"}
    with pytest.raises(ConfigurationError, match="VOXHUB_TUPU_PRIVATE_KEY"):
        provider.authenticate(make_context(without_private))


def test_wrong_public_key_fails_answer_verification(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx, tmp_path: Path
) -> None:
    server = tupu_sandbox()
    _, own_public = write_key_pair(tmp_path)
    ctx = make_context({**server.settings(), "public_key": str(own_public)}, receiver=receiver)
    with pytest.raises(ProviderError, match="failed signature verification") as info:
        TupuProvider().submit(ctx, _request(), _handle())
    assert "streams may have been created" in str(info.value)


def test_no_callback_url_is_refused_before_sending(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    server = tupu_sandbox()
    ctx = make_context(server.settings(), receiver=receiver, callback=False)
    with pytest.raises(InvalidInputError) as info:
        TupuProvider().submit(ctx, _request(), _handle())
    assert info.value.field == "callback_url"
    assert "callback_url" in str(info.value) and "receiver" in str(info.value)
    assert server.sandbox.counters.get("requests") == 0

    # An explicit callback URL on the request is enough.
    request = JobRequest(provider="tupu", media=StreamUrl("rtmp://x/y"),
                         callback_url=receiver.url_for("vx_explicit"))
    handle = TupuProvider().submit(ctx, request, _handle())
    assert isinstance(handle, JobHandle) and handle.vendor_ids["requestId"]


def test_validate(make_context: MakeCtx) -> None:
    ctx = make_context({"secret_id": "x", "private_key": "/nope", "public_key": "/nope"})
    provider = TupuProvider()
    checked = provider.validate(ctx, _request(tasks=["Vulgar", "transcription+moderation",
                                                     "5ca1bd6b3872ecc9afb99132"]))
    assert checked.options["tasks"] == [TASK_VULGAR_SPEECH, TASK_SPEECH_MODERATION,
                                        TASK_TRANSCRIPTION]
    for bad, field in [
        (JobRequest(provider="tupu", media=LocalFile("/tmp/a.wav")), "media"),
        (JobRequest(provider="tupu", media=RemoteUrl("https://x/y.flv", {"A": "b"})), "media"),
        (JobRequest(provider="tupu", media=StreamUrl("ftp://x/y")), "media"),
        (_request(tasks=["sing"]), "tasks"),
        (_request(callback_rules="sometimes"), "callback_rules"),
    ]:
        with pytest.raises(InvalidInputError) as info:
            provider.validate(ctx, bad)
        assert info.value.field == field
    assert provider.validate(ctx, JobRequest(provider="tupu", media=RemoteUrl("https://x/y.flv")))
    with pytest.raises(InvalidInputError):
        TupuProvider.info.validate_options({"callback_rules": "sometimes"})
    with pytest.raises(UnsupportedOptionError):
        TupuProvider.info.validate_options({"language": "zh"})
    assert TupuProvider.info.validate_options({"return_pre_speech": "true"}) == {
        "return_pre_speech": True}


def test_encrypted_private_key_with_passphrase(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx, tmp_path: Path
) -> None:
    server = tupu_sandbox()
    sandbox: TupuSandbox = server.sandbox  # type: ignore[assignment]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "enc.pem"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"open sesame 42")))
    sandbox.register_client("encrypted-client", key.public_key())
    values = {**server.settings(), "secret_id": "encrypted-client", "private_key": str(path),
              "private_key_passphrase": "open sesame 42"}
    ctx = make_context(values, receiver=receiver)
    auth = TupuProvider().authenticate(ctx)
    assert isinstance(auth, TupuAuth)
    assert "open sesame" not in repr(auth) and "BEGIN" not in repr(auth)
    handle = TupuProvider().submit(ctx, _request(), _handle())
    assert isinstance(handle, JobHandle)
    with pytest.raises(ConfigurationError, match="passphrase"):
        TupuProvider().authenticate(make_context({**values, "private_key_passphrase": "wrong"}))


def test_fetch_needs_the_stored_callbacks(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    _, ctx, provider = _setup(tupu_sandbox, receiver, make_context)
    handle = _submit(ctx, provider, tasks=ALL_TASKS)
    receiver.wait_for(lambda r: r.ended(handle.job_id))
    with pytest.raises(PluginError, match="callback_events"):
        provider.fetch(ctx, handle)
    ctx.callback_events = lambda job_id: receiver.payloads(job_id)
    report = provider.fetch(ctx, handle)
    assert report.ended and report.findings and report.job_id == handle.job_id


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
    sandbox, ctx, provider = _setup(tupu_sandbox, receiver, make_context, audio=str(audio),
                                    audio_slice_seconds=1.0)
    assert [s.duration for s in sandbox.script] == [1.0, 1.0, 0.5]
    handle = _submit(ctx, provider, tasks=["transcription"])
    job = handle.job_id
    receiver.wait_for(lambda r: r.ended(job) and _count(r, job, TASK_TRANSCRIPTION) == 3)
    report = build_report(job, receiver.payloads(job))
    assert len(report.transcript) == 3
    url = receiver.payloads(job)[0][TASK_TRANSCRIPTION]["texts"][0]["speechUrl"]
    clip = urllib3.request("GET", url)
    with wave.open(io.BytesIO(clip.data), "rb") as got:
        assert got.getframerate() == 8000 and got.getnframes() == 8000  # one second


# --------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------


def test_no_secrets_or_keys_in_logs(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx, tmp_path: Path
) -> None:
    from voxhub.logging_setup import configure_logging

    stream = io.StringIO()
    saved = structlog.get_config()
    configure_logging("debug", "json", stream=stream)
    try:
        server = tupu_sandbox()
        sandbox: TupuSandbox = server.sandbox  # type: ignore[assignment]
        settings = server.settings()
        ctx = make_context(settings, receiver=receiver, log=structlog.get_logger("test"))
        provider = TupuProvider()
        ctx.auth = provider.authenticate(ctx)
        handle = _submit(ctx, provider, tasks=ALL_TASKS)
        receiver.wait_for(lambda r: r.ended(handle.job_id))
        provider.status(ctx, handle)
        provider.close(ctx, handle)
        with pytest.raises(CallbackRejected):
            provider.parse_callback(ctx, CallbackRequest(headers={}, body=b'{"json":"{}"}'))
        other, _ = write_key_pair(tmp_path)
        bad = make_context({**settings, "private_key": str(other)}, receiver=receiver,
                           log=structlog.get_logger("test"))
        with pytest.raises(AuthenticationError):
            provider.submit(bad, _request(), _handle())
    finally:
        structlog.configure(**saved)
    text = stream.getvalue()
    assert "tupu.stream_submitted" in text and "http.response" in text
    pem = Path(settings["private_key"]).read_text()
    for line in pem.splitlines():
        if line and not line.startswith("-----"):
            assert line not in text
    assert "PRIVATE KEY" not in text
    assert settings["secret_id"] not in text
    for body in sandbox.submissions:
        assert body["signature"] not in text


def test_vendor_faults(tupu_sandbox: Start, receiver: Any, make_context: MakeCtx) -> None:
    server = tupu_sandbox(faults=FaultPlan(server_error=1.0, server_error_statuses=(503,)))
    clock = FakeClock(start=time.time())
    ctx = make_context(server.settings(), receiver=receiver, clock=clock)
    provider = TupuProvider()
    # A submit is not retried on 503 (it may have been processed); the error says so.
    with pytest.raises(ProviderUnavailableError) as info:
        provider.submit(ctx, _request(), _handle())
    assert info.value.status == 503 and "without a signed body" in str(info.value)
    assert server.sandbox.counters.get("faults.503") == 1
    # Status is idempotent: retried with back-off (on the fake clock), then reported.
    handle = _handle().with_vendor(ids={"requestId": "abc"})
    with pytest.raises(ProviderUnavailableError):
        provider.status(ctx, handle)
    assert server.sandbox.counters.get("faults.503") == 1 + TupuProvider.info.retry.max_attempts
    assert clock.slept
