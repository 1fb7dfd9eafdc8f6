"""Signing, Tupu's codes, configuration, validation, logs and faults, over real sockets."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
import structlog
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tupu_helpers import (
    ALL_TASKS,
    MakeCtx,
    Start,
    new_handle,
    request,
    setup,
    submit,
)
from voxhub.clock import FakeClock
from voxhub.plugin import (
    AuthenticationError,
    CallbackRejected,
    CallbackRequest,
    ConfigurationError,
    InvalidInputError,
    JobHandle,
    JobRequest,
    LocalFile,
    PermissionDeniedError,
    PluginError,
    ProviderError,
    ProviderUnavailableError,
    RemoteUrl,
    StreamUrl,
    UnsupportedOptionError,
)
from voxhub.sandbox import FaultPlan
from voxhub_tupu.codes import TASK_SPEECH_MODERATION, TASK_TRANSCRIPTION, TASK_VULGAR_SPEECH
from voxhub_tupu.provider import TupuAuth, TupuProvider
from voxhub_tupu.sandbox import TupuSandbox
from voxhub_tupu.signing import (
    load_private_key,
    load_public_key,
    sign_request,
    verify_response,
    write_key_pair,
)

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
        provider.submit(ctx, request(), new_handle())
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
        TupuProvider().submit(ctx, request(), new_handle())
    assert info.value.code == 12
    assert "clock" in str(info.value)
    assert server.sandbox.counters.get("requests.stale") == 1


def test_unknown_secret_id_is_code_6(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    server = tupu_sandbox()
    ctx = make_context({**server.settings(), "secret_id": "nobody-here"}, receiver=receiver)
    with pytest.raises(AuthenticationError) as info:
        TupuProvider().submit(ctx, request(), new_handle())
    assert info.value.code == 6


def test_task_not_allowed_is_code_7(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    _, ctx, provider = setup(tupu_sandbox, receiver, make_context,
                              configured_tasks=(TASK_TRANSCRIPTION,))
    with pytest.raises(PermissionDeniedError) as info:
        submit(ctx, provider, tasks=["vulgar"])
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
    resp = urllib3.request("POST", url, body=body.encode(),
                           headers={"Content-Type": "application/json"})
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

    def context(**overrides: Any) -> Any:
        return make_context(server, authenticate=False, **overrides)

    with pytest.raises(ConfigurationError, match="VOXHUB_TUPU_PUBLIC_KEY"):
        provider.authenticate(context(public_key=None))
    with pytest.raises(ConfigurationError, match=r"nope\.pem"):
        provider.authenticate(context(public_key=str(tmp_path / "nope.pem")))
    with pytest.raises(ConfigurationError, match="private key where a public"):
        provider.authenticate(context(public_key=settings["private_key"]))
    with pytest.raises(ConfigurationError, match="VOXHUB_TUPU_PRIVATE_KEY"):
        provider.authenticate(context(private_key=None))


def test_wrong_public_key_fails_answer_verification(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx, tmp_path: Path
) -> None:
    server = tupu_sandbox()
    _, own_public = write_key_pair(tmp_path)
    ctx = make_context({**server.settings(), "public_key": str(own_public)}, receiver=receiver)
    with pytest.raises(ProviderError, match="failed signature verification") as info:
        TupuProvider().submit(ctx, request(), new_handle())
    assert "streams may have been created" in str(info.value)


def test_no_callback_url_is_refused_before_sending(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    server = tupu_sandbox()
    ctx = make_context(server.settings(), receiver=receiver, callback=False)
    with pytest.raises(InvalidInputError) as info:
        TupuProvider().submit(ctx, request(), new_handle())
    assert info.value.field == "callback_url"
    assert "callback_url" in str(info.value) and "receiver" in str(info.value)
    assert server.sandbox.counters.get("requests") == 0

    # An explicit callback URL on the request is enough.
    explicit = JobRequest(provider="tupu", media=StreamUrl("rtmp://x/y"),
                          callback_url=receiver.url_for("vx_explicit"))
    handle = TupuProvider().submit(ctx, explicit, new_handle())
    assert isinstance(handle, JobHandle) and handle.vendor_ids["requestId"]


def test_validate(make_context: MakeCtx) -> None:
    ctx = make_context({"secret_id": "x", "private_key": "/nope", "public_key": "/nope"},
                       authenticate=False)  # validate needs no keys
    provider = TupuProvider()
    checked = provider.validate(ctx, request(tasks=["Vulgar", "transcription+moderation",
                                                     "5ca1bd6b3872ecc9afb99132"]))
    assert checked.options["tasks"] == [TASK_VULGAR_SPEECH, TASK_SPEECH_MODERATION,
                                        TASK_TRANSCRIPTION]
    for bad, field in [
        (JobRequest(provider="tupu", media=LocalFile("/tmp/a.wav")), "media"),
        (JobRequest(provider="tupu", media=RemoteUrl("https://x/y.flv", {"A": "b"})), "media"),
        (JobRequest(provider="tupu", media=StreamUrl("ftp://x/y")), "media"),
        (request(tasks=["sing"]), "tasks"),
        (request(callback_rules="sometimes"), "callback_rules"),
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
    handle = TupuProvider().submit(ctx, request(), new_handle())
    assert isinstance(handle, JobHandle)
    with pytest.raises(ConfigurationError, match="passphrase"):
        TupuProvider().authenticate(
            make_context(values, private_key_passphrase="wrong", authenticate=False))


def test_fetch_needs_the_stored_callbacks(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    _, ctx, provider = setup(tupu_sandbox, receiver, make_context)
    handle = submit(ctx, provider, tasks=ALL_TASKS)
    receiver.wait_for(lambda r: r.ended(handle.job_id))
    with pytest.raises(PluginError, match="callback_events"):
        provider.fetch(ctx, handle)
    ctx.callback_events = lambda job_id: receiver.payloads(job_id)
    report = provider.fetch(ctx, handle)
    assert report.ended and report.findings and report.job_id == handle.job_id


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
        ctx = make_context(settings, receiver=receiver)  # authenticates: logs key paths
        provider = TupuProvider()
        handle = submit(ctx, provider, tasks=ALL_TASKS)
        receiver.wait_for(lambda r: r.ended(handle.job_id))
        provider.status(ctx, handle)
        provider.close(ctx, handle)
        with pytest.raises(CallbackRejected):
            provider.parse_callback(ctx, CallbackRequest(headers={}, body=b'{"json":"{}"}'))
        other, _ = write_key_pair(tmp_path)
        bad = make_context(settings, private_key=str(other), receiver=receiver)
        with pytest.raises(AuthenticationError):
            provider.submit(bad, request(), new_handle())
    finally:
        structlog.configure(**saved)
    text = stream.getvalue()
    assert "tupu.stream_submitted" in text and "tupu.keys_loaded" in text
    assert "http.response" in text
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
        provider.submit(ctx, request(), new_handle())
    assert info.value.status == 503 and "without a signed body" in str(info.value)
    assert server.sandbox.counters.get("faults.503") == 1
    # Status is idempotent: retried with back-off (on the fake clock), then reported.
    handle = new_handle().with_vendor(ids={"requestId": "abc"})
    with pytest.raises(ProviderUnavailableError):
        provider.status(ctx, handle)
    assert server.sandbox.counters.get("faults.503") == 1 + TupuProvider.info.retry.max_attempts
    assert clock.slept
