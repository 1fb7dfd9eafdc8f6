"""Issue 15: sync read timeouts that grow with the audio, decimal MB, and a sandbox that
judges raw HTTP on its own (requests built by hand, never by the provider)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import urllib3
from nhn_helpers import new_handle, write_wav
from voxhub.plugin import (
    ConfigurationError,
    InvalidInputError,
    JobRequest,
    LocalFile,
    ProviderContext,
    ProviderError,
)
from voxhub.sandbox import RunningSandbox
from voxhub.sandbox_kit import FaultPlan
from voxhub.transport import Timeouts
from voxhub_nhn.options import CURRENT_LIMITS, LEGACY_SYNC_LIMITS
from voxhub_nhn.provider import NhnProvider, sync_timeouts
from voxhub_nhn.sandbox_rules import SandboxLimits

Start = Callable[..., RunningSandbox]

# --- 5: the sync read timeout grows with the audio ------------------------------------


def _sync_ctx(voxhub_context: Callable[..., ProviderContext], server: RunningSandbox,
              **values: Any) -> ProviderContext:
    # A short generic read timeout (0.4 s) stands in for the real 60 s.
    return voxhub_context("nhn", server, timeouts=Timeouts(connect=2.0, read=0.4, write=3.0),
                          **values)


def test_a_slow_sync_answer_within_the_scaled_timeout_succeeds(
    nhn_sandbox: Start, voxhub_context: Callable[..., ProviderContext], tmp_path: Path,
) -> None:
    # NHN answers after 1.0 s: past the 0.4 s read timeout, within 0.4 + 1.2 s of audio.
    server = nhn_sandbox(faults=FaultPlan(slow=1.0, slow_seconds=1.0))
    ctx = _sync_ctx(voxhub_context, server)
    wav = write_wav(tmp_path / "a.wav", 1.2)
    provider = NhnProvider()
    request = provider.validate(ctx, JobRequest("nhn", media=LocalFile(wav)))
    timeouts = sync_timeouts(provider_api(ctx), LocalFile(wav))
    assert timeouts.read == pytest.approx(0.4 + 1.2)
    assert (timeouts.connect, timeouts.write) == (2.0, 3.0)  # kept
    done = provider.submit(ctx, request, new_handle())
    assert done.status.state.value == "succeeded"  # type: ignore[union-attr]
    assert server.sandbox.counters.get("faults.slow") == 1


def test_without_scaling_the_same_answer_times_out(
    nhn_sandbox: Start, voxhub_context: Callable[..., ProviderContext], tmp_path: Path,
) -> None:
    server = nhn_sandbox(faults=FaultPlan(slow=1.0, slow_seconds=1.0))
    ctx = _sync_ctx(voxhub_context, server, sync_read_factor="0")
    wav = write_wav(tmp_path / "a.wav", 1.2)
    provider = NhnProvider()
    request = provider.validate(ctx, JobRequest("nhn", media=LocalFile(wav)))
    with pytest.raises(ProviderError) as info:
        provider.submit(ctx, request, new_handle())
    assert info.value.in_doubt  # the upload reached NHN: the core resolves it


def test_unreadable_duration_assumes_the_longest_audio(
    voxhub_context: Callable[..., ProviderContext], tmp_path: Path,
) -> None:
    ctx = voxhub_context("nhn", None, base_url="http://127.0.0.1:9", app_key="k",
                         uak_token="t", timeouts=Timeouts(read=60.0))
    webm = tmp_path / "a.webm"
    webm.write_bytes(b"\x1a\x45\xdf\xa3" + b"\0" * 200)  # WebM: no local duration
    assert sync_timeouts(provider_api(ctx), LocalFile(webm)).read == 60.0 + 3600.0


@pytest.mark.parametrize("value", ["-1", "fast", "nan"])
def test_a_bad_read_factor_names_the_setting(
    voxhub_context: Callable[..., ProviderContext], tmp_path: Path, value: str,
) -> None:
    ctx = voxhub_context("nhn", None, base_url="http://127.0.0.1:9", app_key="k",
                         uak_token="t", sync_read_factor=value)
    with pytest.raises(ConfigurationError) as info:
        sync_timeouts(provider_api(ctx), LocalFile(write_wav(tmp_path / "a.wav", 0.5)))
    assert info.value.details["field"] == "sync_read_factor"


def provider_api(ctx: ProviderContext) -> Any:
    from voxhub_nhn.api import NhnApi

    return NhnApi(ctx)


# --- 6: one unit, the safe side --------------------------------------------------------


def test_limits_are_decimal_megabytes_in_bytes() -> None:
    assert CURRENT_LIMITS.max_bytes == 150_000_000  # not 157,286,400 (150 MiB)
    assert LEGACY_SYNC_LIMITS.max_bytes == 10_000_000
    assert "150,000,000 bytes (150 MB)" in CURRENT_LIMITS.describe()


def test_one_byte_over_150_mb_is_refused_with_bytes_named(
    voxhub_context: Callable[..., ProviderContext], tmp_path: Path,
) -> None:
    ctx = voxhub_context("nhn", None, base_url="http://127.0.0.1:9", app_key="k",
                         uak_token="t")
    head = write_wav(tmp_path / "h.wav", 0.5).read_bytes()[:44]
    big = tmp_path / "big.wav"
    with big.open("wb") as fh:
        fh.write(head)
        fh.truncate(150_000_001)  # sparse: no disk used
    with pytest.raises(InvalidInputError) as info:
        NhnProvider().validate(ctx, JobRequest("nhn", media=LocalFile(big)))
    assert info.value.field == "media"
    assert "150,000,001 bytes is over NHN's limit of 150,000,000 bytes (150 MB)" in str(info.value)


# --- 13: raw HTTP the real NHN would refuse ----------------------------------------------


def _call(server: RunningSandbox, method: str, path: str, *, version: str = "v2.1",
          auth: dict[str, str] | None = None, **kw: Any) -> tuple[int, dict[str, Any]]:
    sandbox = server.sandbox
    if auth is None:
        auth = ({"Authorization": sandbox.secret_key} if version == "v2.0"
                else {"X-NHN-Authorization": f"Bearer {sandbox.uak_token}"})
    headers = {**auth, **kw.pop("headers", {})}
    url = f"{server.base_url}/{version}/appkeys/{sandbox.app_key}/stt{path}"
    resp = urllib3.request(method, url, headers=headers, retries=False, **kw)
    body = json.loads(resp.data)
    return resp.status, body["header"]


def _refused(answer: tuple[int, dict[str, Any]], code: int) -> None:
    status, header = answer
    # NHN's docs: every answer is HTTP 200, the verdict is in the header.
    assert status == 200
    assert header["isSuccessful"] is False
    assert header["resultCode"] == code


@pytest.mark.parametrize(("version", "auth", "code"), [
    ("v2.0", {"Authorization": "Bearer nhn-sandbox-secret-key"}, 4010001),  # v2.1's form
    ("v2.0", {}, 4010001),
    ("v2.1", {"X-NHN-Authorization": "nhn-sandbox-uak-token"}, 4010007),  # no "Bearer"
    ("v2.1", {"Authorization": "Bearer nhn-sandbox-uak-token"}, 4010007),  # wrong header
    ("v2.1", {"X-NHN-Authorization": "Basic nhn-sandbox-uak-token"}, 4010007),
])
def test_wrong_auth_format(nhn_sandbox: Start, version: str, auth: dict[str, str],
                           code: int) -> None:
    server = nhn_sandbox()
    _refused(_call(server, "POST", "/async", version=version, auth=auth,
                   json={"audioUrl": "https://media.example.com/a.mp3"}), code)
    assert server.sandbox.counters.get("tasks.created") == 0


def test_missing_required_fields(nhn_sandbox: Start, tmp_path: Path) -> None:
    server = nhn_sandbox()
    _refused(_call(server, "POST", "/async", json={"biasingList": ["a_b"]}), 4000001)
    _refused(_call(server, "POST", "", fields={"biasingList": "a_b"}), 4000001)  # no audio
    _refused(_call(server, "POST", "", fields={"audio": ("a.wav", b"", "audio/wav")}), 4000004)


def test_out_of_range_values(nhn_sandbox: Start, tmp_path: Path) -> None:
    server = nhn_sandbox(sync_limits=SandboxLimits(max_bytes=100_000, max_seconds=2.0))

    def upload(data: bytes, **fields: Any) -> tuple[int, dict[str, Any]]:
        return _call(server, "POST", "", fields={"audio": ("a.wav", data, "audio/wav"),
                                                  **fields})

    short = write_wav(tmp_path / "short.wav", 0.2).read_bytes()
    long = write_wav(tmp_path / "long.wav", 2.5, rate=8000).read_bytes()
    ok = write_wav(tmp_path / "ok.wav", 1.0, rate=8000).read_bytes()
    _refused(upload(short), 4000203)
    _refused(upload(long), 4000202)
    _refused(upload(b"x" * 100_001), 4000002)
    _refused(upload(b"plain text, not audio"), 4000003)
    _refused(upload(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk"), 4000201)
    _refused(upload(ok, biasingList="no separator"), 4000001)
    _refused(_call(server, "GET", "/async/not-a-uuid/status"), 4010002)
    _refused(_call(server, "GET", "/async/6acb2d15-2180-4e79-b92f-45b1e887e920/status"),
             4010006)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", ""), ("PUT", "/async"),
    ("POST", "/async/6acb2d15-2180-4e79-b92f-45b1e887e920/status"),  # the docs: GET
    ("POST", "/async/6acb2d15-2180-4e79-b92f-45b1e887e920/retry"),   # the docs: GET
])
def test_wrong_method(nhn_sandbox: Start, method: str, path: str) -> None:
    _refused(_call(nhn_sandbox(), method, path), 405)


def test_wrong_content_type(nhn_sandbox: Start, tmp_path: Path) -> None:
    server = nhn_sandbox()
    wav = write_wav(tmp_path / "a.wav", 1.0).read_bytes()
    _refused(_call(server, "POST", "", body=wav, headers={"Content-Type": "audio/wav"}), 415)
    _refused(_call(server, "POST", "/async",
                   fields={"audioUrl": "https://media.example.com/a.mp3"}), 415)
    _refused(_call(server, "POST", "/async", body=b'{"audioUrl": "https://m.example/a.mp3"}',
                   headers={"Content-Type": "text/plain"}), 415)
