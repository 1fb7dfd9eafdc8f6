"""Every result code of the spec, produced by the sandbox and mapped by the provider.

Codes that an input can provoke are provoked (through the provider, or by raw
requests where the provider's own checks would refuse first); the others are
scripted answers (the kit's ``script``, through ``NhnSandbox.answer_code``). Every
one travels over HTTP from the sandbox to the provider. The expected error classes
are written out here, independently of ``voxhub_nhn.errors``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import urllib3
from nhn_helpers import new_handle, write_wav
from voxhub.plugin import (
    AuthenticationError,
    InvalidInputError,
    JobRequest,
    LocalFile,
    MultipartBody,
    NotFoundError,
    Part,
    PermissionDeniedError,
    ProviderContext,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    RemoteUrl,
    Submitted,
    VoxhubError,
)
from voxhub.sandbox import FaultPlan, RunningSandbox
from voxhub_nhn.errors import CODES, lookup, status_of
from voxhub_nhn.provider import NhnProvider
from voxhub_nhn.sandbox import NhnSandbox
from voxhub_nhn.sandbox_rules import SandboxLimits as Limits

# The spec's tables (A.6 STT codes and A.2 API Gateway codes), typed out here.
STT_CODES = [
    0, -1, 400, 401, 403, 404, 405, 415,
    4000001, 4000002, 4000003, 4000004, 4000201, 4000202, 4000203, 4000204,
    4010001, 4010002, 4010003, 4010004, 4010005, 4010006, 4010007, 4010008,
    5000001, 5000002, 5000003, 5000004, 5000005, 5004001, 5004002, 5004003, 5004004,
]
GATEWAY_CODES = [
    4131000, 4291000, 4041007, 5020001, 5030001, *range(4011001, 4011010), 4012001, 4012002,
    4031007, 5021001,
]

EXPECTED: dict[int, tuple[type[VoxhubError], str | None]] = {
    -1: (ProviderError, None),
    400: (InvalidInputError, None),
    401: (AuthenticationError, None),
    403: (PermissionDeniedError, None),
    404: (NotFoundError, None),
    405: (ProviderError, None),
    415: (InvalidInputError, "media"),
    4000001: (InvalidInputError, None),
    **{c: (InvalidInputError, "media") for c in
       (4000002, 4000003, 4000004, 4000201, 4000202, 4000203, 4000204)},
    4010001: (AuthenticationError, None),
    4010002: (NotFoundError, None),
    4010003: (PermissionDeniedError, None),
    4010004: (AuthenticationError, None),
    4010005: (PermissionDeniedError, None),
    4010006: (NotFoundError, None),
    4010007: (AuthenticationError, None),
    4010008: (PermissionDeniedError, None),
    **{c: (ProviderUnavailableError, None) for c in
       (5000001, 5000002, 5000003, 5000004, 5000005, 5004001, 5004002, 5004003, 5004004)},
    4131000: (InvalidInputError, "media"),
    4291000: (RateLimitedError, None),
    4041007: (NotFoundError, None),
    5020001: (ProviderUnavailableError, None),
    5030001: (ProviderUnavailableError, None),
    **{c: (AuthenticationError, None) for c in (*range(4011001, 4011010), 4012001, 4012002)},
    4031007: (PermissionDeniedError, None),
    5021001: (ProviderUnavailableError, None),
}

# How each code is provoked: a natural trigger name, or "scripted".
NATURAL = {
    404: "wrong-prefix",
    4000001: "retry-unfailed",
    4000002: "async-too-big",
    4000003: "async-not-audio",
    4000004: "async-empty",
    4000201: "async-undecodable",
    4000202: "async-too-long",
    4000203: "async-too-short",
    4000204: "async-silent",
    4010001: "wrong-secret",
    4010002: "malformed-task-id",
    4010006: "unknown-task-id",
    4010007: "wrong-token",
    4131000: "gateway-body-cap",
    4291000: "rate-limited",
    4041007: "gateway-wrong-prefix",
}


def test_table_is_the_specs() -> None:
    assert set(CODES) == set(STT_CODES) | set(GATEWAY_CODES)
    assert set(EXPECTED) == set(CODES) - {0}
    for code in GATEWAY_CODES:
        assert CODES[code].gateway and CODES[code].http_status == status_of(code)
    for code in STT_CODES:
        assert CODES[code].http_status == 200  # documented: every STT answer is HTTP 200


def test_unlisted_codes_follow_their_http_status() -> None:
    assert lookup(4220001).category.value == "provider"
    assert lookup(4090001).natural_status == 409
    assert lookup(5990001).category.value == "unavailable"
    assert lookup(4290007).category.value == "rate-limited"


def _media(media_dir: Path, server: RunningSandbox) -> dict[str, str]:
    write_wav(media_dir / "ok.wav", 2.0)
    write_wav(media_dir / "short.wav", 0.2)
    write_wav(media_dir / "silent.wav", 2.0, silent=True)
    (media_dir / "empty.wav").write_bytes(b"")
    (media_dir / "notes.txt").write_text("plain text is not audio")
    (media_dir / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunkjunk" * 4)
    return {name: f"{server.base_url}/{name}" for name in
            ("ok.wav", "short.wav", "silent.wav", "empty.wav", "notes.txt", "broken.wav")}


def _provoke(
    code: int,
    *,
    provider: NhnProvider,
    nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext],
    media_dir: Path,
    media_server: RunningSandbox,
    status_mode: str = "documented",
) -> tuple[VoxhubError, RunningSandbox]:
    trigger = NATURAL.get(code, "scripted")
    urls = _media(media_dir, media_server)
    wav = write_wav(media_dir / "upload.wav", 1.0)
    options: dict[str, Any] = {"status_mode": status_mode}
    if trigger == "async-too-big":
        options["async_limits"] = Limits(max_bytes=1000)
    if trigger == "async-too-long":
        options["async_limits"] = Limits(max_bytes=10**6, max_seconds=1.5)
    if trigger in ("gateway-body-cap", "gateway-wrong-prefix"):
        options.update(gateway=True, gateway_max_bytes=4096)
    if trigger == "rate-limited":
        options["faults"] = FaultPlan(rate_limited=1.0, retry_after=0.01)
    server = nhn_sandbox(**options)
    version = "v2.0" if trigger == "wrong-secret" else "v2.1"
    extra: dict[str, Any] = {}
    if trigger == "wrong-secret":
        extra["secret_key"] = "not-the-secret-key"
    if trigger == "wrong-token":
        extra["uak_token"] = "not-the-uak-token"
    if trigger in ("wrong-prefix", "gateway-wrong-prefix"):
        extra["base_url"] = f"{server.base_url}/wrong/prefix"
    ctx = nhn_ctx(server, version=version, **extra)

    def sync() -> None:
        provider.submit(ctx, JobRequest("nhn", media=LocalFile(wav)), new_handle())

    def async_(url: str) -> None:
        provider.submit(ctx, JobRequest("nhn", media=RemoteUrl(url)), new_handle())

    def status(task_id: str) -> None:
        provider.status(ctx, new_handle().with_vendor({"task_id": task_id}, {"mode": "async"}))

    actions: dict[str, Callable[[], None]] = {
        "wrong-prefix": sync,
        "gateway-wrong-prefix": sync,
        "wrong-secret": sync,
        "wrong-token": sync,
        "gateway-body-cap": sync,
        "rate-limited": sync,
        "async-too-big": lambda: async_(urls["ok.wav"]),
        "async-too-long": lambda: async_(urls["ok.wav"]),
        "async-not-audio": lambda: async_(urls["notes.txt"]),
        "async-empty": lambda: async_(urls["empty.wav"]),
        "async-undecodable": lambda: async_(urls["broken.wav"]),
        "async-too-short": lambda: async_(urls["short.wav"]),
        "async-silent": lambda: async_(urls["silent.wav"]),
        "malformed-task-id": lambda: status("not-a-uuid"),
        "unknown-task-id": lambda: status(str(uuid.uuid4())),
    }
    if trigger == "retry-unfailed":
        handle = provider.submit(ctx, JobRequest("nhn", media=RemoteUrl(urls["ok.wav"])),
                                 new_handle())
        assert not isinstance(handle, tuple)

        def retry() -> None:
            provider.retry(ctx, handle)  # type: ignore[arg-type]

        actions["retry-unfailed"] = retry
    if trigger == "scripted":
        # More than any retry budget, so even retried statuses end in the error.
        assert isinstance(server.sandbox, NhnSandbox)
        server.sandbox.answer_code(code, times=10, endpoint="sync", message=f"scripted {code}")
        actions["scripted"] = sync
    with pytest.raises(VoxhubError) as info:
        actions[trigger]()
    return info.value, server


@pytest.mark.parametrize("code", sorted(EXPECTED), ids=lambda c: f"code{c}")
def test_every_code_maps_to_its_error(
    code: int, provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext], media_dir: Path, media_server: RunningSandbox,
) -> None:
    error, server = _provoke(code, provider=provider, nhn_sandbox=nhn_sandbox,
                             nhn_ctx=nhn_ctx, media_dir=media_dir, media_server=media_server)
    cls, field = EXPECTED[code]
    assert type(error) is cls, f"{code}: {type(error).__name__}: {error}"
    assert error.details["code"] == code
    assert error.provider == "nhn"
    if isinstance(error, ProviderError):
        assert error.code == code
    if field is not None:
        assert isinstance(error, InvalidInputError) and error.field == field
    assert str(code) in str(error)
    # The sandbox really answered with this code (not a local refusal).
    counter = "scripted.answer" if code not in NATURAL else f"codes.{code}"
    assert server.sandbox.counters.get(counter) >= 1
    if code not in NATURAL:
        assert error.details["result_message"] == f"scripted {code}"


@pytest.mark.parametrize("code", [4000003, 4000204, 4010007, 5004001, -1])
def test_envelope_read_whatever_the_http_status(
    code: int, provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext], media_dir: Path, media_server: RunningSandbox,
) -> None:
    """With RFC 9110 statuses (4xx/5xx instead of 200) the envelope still decides."""
    error, _server = _provoke(code, provider=provider, nhn_sandbox=nhn_sandbox,
                              nhn_ctx=nhn_ctx, media_dir=media_dir, media_server=media_server,
                              status_mode="rfc9110")
    assert type(error) is EXPECTED[code][0]
    assert error.details["code"] == code
    assert error.details["http_status"] == status_of(code)


def test_success_envelope_is_code_zero(
    provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext], tmp_path: Path,
) -> None:
    server = nhn_sandbox()
    ctx = nhn_ctx(server)
    out = provider.submit(ctx, JobRequest("nhn", media=LocalFile(write_wav(tmp_path / "a.wav", 1))),
                          new_handle())
    assert isinstance(out, Submitted)
    assert out.result is not None and out.result.raw["header"]["resultCode"] == 0
    assert server.sandbox.counters.get("codes.0") == 0  # successes are not error envelopes


# --- the sandbox's own checks, by raw requests (the provider would refuse these first) ------


def _raw(server: RunningSandbox, method: str, path: str, *, version: str = "v2.1",
         body: bytes | None = None, content_type: str | None = None) -> tuple[int, Any]:
    sandbox = server.sandbox
    headers = {"X-NHN-Authorization": f"Bearer {sandbox.uak_token}"}  # type: ignore[attr-defined]
    if content_type:
        headers["Content-Type"] = content_type
    url = f"{server.base_url}/{version}/appkeys/{sandbox.app_key}/{path}"  # type: ignore[attr-defined]
    resp = urllib3.request(method, url, body=body, headers=headers, retries=False)
    return resp.status, json.loads(resp.data)


def _multipart(parts: list[Part]) -> tuple[bytes, str]:
    body = MultipartBody(parts)
    return b"".join(body.iter_chunks()), body.content_type


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ok", 0), ("empty", 4000004), ("text", 4000003), ("broken", 4000201),
        ("short", 4000203), ("long", 4000202), ("silent", 4000204), ("big", 4000002),
        ("no-audio", 4000001), ("bad-biasing", 4000001), ("json-body", 415),
    ],
)
def test_sandbox_sync_checks(name: str, expected: int, tmp_path: Path,
                             nhn_sandbox: Callable[..., RunningSandbox]) -> None:
    server = nhn_sandbox(sync_limits=Limits(max_bytes=200_000, min_seconds=0.36,
                                            max_seconds=3.0))
    files = {
        "ok": write_wav(tmp_path / "ok.wav", 1.0),
        "short": write_wav(tmp_path / "short.wav", 0.3),
        "long": write_wav(tmp_path / "long.wav", 4.0, rate=8000, width=1),
        "silent": write_wav(tmp_path / "silent.wav", 1.0, silent=True),
        "big": write_wav(tmp_path / "big.wav", 7.0),
    }
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all")
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVE" + b"\x00" * 40)
    files.update(empty=tmp_path / "empty.wav", text=tmp_path / "text.wav",
                 broken=tmp_path / "broken.wav")
    if name == "json-body":
        status, data = _raw(server, "POST", "stt", body=b"{}", content_type="application/json")
    else:
        parts = [] if name == "no-audio" else [Part("audio", path=files.get(name, files["ok"]))]
        parts.append(Part("biasingList", value="no-separator" if name == "bad-biasing"
                          else '"차단기_차단계"'))
        body, ctype = _multipart(parts)
        status, data = _raw(server, "POST", "stt", body=body, content_type=ctype)
    assert status == 200  # documented: HTTP 200, outcome in the envelope
    assert data["header"]["resultCode"] == expected
    assert data["header"]["isSuccessful"] is (expected == 0)
    if expected == 0:
        assert data["header"]["resultMessage"] == "Success"
        assert data["result"]["fileType"] == "pcm_s16le"
        assert data["result"]["inputLength"] == 1.0


def test_sandbox_protocol_errors(nhn_sandbox: Callable[..., RunningSandbox]) -> None:
    server = nhn_sandbox()
    status, data = _raw(server, "POST", "stt/async", body=b"{not json",
                        content_type="application/json")
    assert data["header"]["resultCode"] == 400
    status, data = _raw(server, "POST", "stt/async", body=b"{}", content_type="text/plain")
    assert data["header"]["resultCode"] == 415
    status, data = _raw(server, "POST", "stt/async", body=b'{"biasingList": []}',
                        content_type="application/json")
    assert data["header"]["resultCode"] == 4000001
    status, data = _raw(server, "POST", f"stt/async/{uuid.uuid4()}/status")
    assert data["header"]["resultCode"] == 405
    status, data = _raw(server, "GET", "stt/async/nope/nope")
    assert (status, data["header"]["resultCode"]) == (200, 404)
    assert data["header"]["resultMessage"] == "Please check your API Url, HTTP Method."
    status, data = _raw(server, "POST", "stt", version="v1.0", body=b"")
    assert data["header"]["resultCode"] == 404  # only v2.0 and v2.1 are emulated


def test_sandbox_gateway_statuses(nhn_sandbox: Callable[..., RunningSandbox]) -> None:
    server = nhn_sandbox(gateway=True, faults=FaultPlan(rate_limited=1.0, retry_after=2))
    status, data = _raw(server, "GET", f"stt/async/{uuid.uuid4()}/status")
    assert (status, data["header"]["resultCode"]) == (429, 4291000)
    server.sandbox.set_faults(FaultPlan())
    status, data = _raw(server, "GET", "nothing/here")
    assert (status, data["header"]["resultCode"]) == (404, 4041007)
    server.sandbox.answer_code(5030001)  # type: ignore[attr-defined]
    status, data = _raw(server, "GET", f"stt/async/{uuid.uuid4()}/status")
    assert (status, data["header"]["resultCode"]) == (503, 5030001)


def test_any_code_through_the_script_control_api(
    nhn_sandbox: Callable[..., RunningSandbox],
) -> None:
    """``POST /_sandbox/script`` (the kit's one mechanism) answers with an NHN envelope."""
    server = nhn_sandbox()
    envelope = {"header": {"isSuccessful": False, "resultCode": 4010008,
                           "resultMessage": "Permission denied."}}
    resp = urllib3.request("POST", f"{server.base_url}/_sandbox/script", body=json.dumps(
        {"endpoint": "status", "status": 200, "body": envelope}))
    assert resp.status == 200
    status, data = _raw(server, "GET", f"stt/async/{uuid.uuid4()}/status")
    assert (status, data) == (200, envelope)
    _status, data = _raw(server, "GET", f"stt/async/{uuid.uuid4()}/status")
    assert data["header"]["resultCode"] == 4010006  # scripted once only
    # The old NHN-only control endpoint is gone: answers are scripted one way for all.
    gone = urllib3.request("POST", f"{server.base_url}/_sandbox/nhn/force",
                           body=json.dumps({"code": 4010008}))
    assert gone.status == 404


@pytest.mark.parametrize("mode", ["documented", "rfc9110"])
def test_answer_code_sends_the_status_nhn_would(
    mode: str, nhn_sandbox: Callable[..., RunningSandbox],
) -> None:
    server = nhn_sandbox(status_mode=mode)
    sandbox = server.sandbox
    assert isinstance(sandbox, NhnSandbox)
    sandbox.answer_code(4000003, endpoint="status")
    sandbox.answer_code(5020001, times=2)  # any endpoint
    status, data = _raw(server, "GET", f"stt/async/{uuid.uuid4()}/status")
    assert (status, data["header"]) == (
        200 if mode == "documented" else 400,
        {"isSuccessful": False, "resultCode": 4000003, "resultMessage": "INVALID_FILE_TYPE"})
    for path in ("stt/async", f"stt/async/{uuid.uuid4()}/retry"):  # gateway codes: real status
        method = "POST" if path == "stt/async" else "GET"
        status, data = _raw(server, method, path, body=b"{}", content_type="application/json")
        assert (status, data["header"]["resultCode"]) == (502, 5020001)
    assert sandbox.counters.get("scripted.answer") == 3
    with pytest.raises(ValueError, match="unknown endpoint"):
        sandbox.answer_code(400, endpoint="nope")
