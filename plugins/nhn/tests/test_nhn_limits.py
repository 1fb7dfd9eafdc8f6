"""Limits and options refused locally: the sandbox never sees a request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nhn_helpers import write_wav
from voxhub.orchestrator import Orchestrator
from voxhub.plugin import (
    InvalidInputError,
    JobKind,
    JobRequest,
    LocalFile,
    ProviderContext,
    UnsupportedOptionError,
)
from voxhub.sandbox import RunningSandbox
from voxhub_nhn.audio import sniff_format
from voxhub_nhn.options import LEGACY_HOST, BiasingEntry, parse_biasing_list
from voxhub_nhn.provider import NhnProvider

MB = 1024 * 1024


def _sparse(path: Path, size: int, head: bytes = b"") -> Path:
    with path.open("wb") as fh:
        fh.write(head)
        fh.truncate(size)  # sparse: no disk space, same size
    return path


def _files(tmp: Path) -> dict[str, tuple[Path, str]]:
    wav_head = (tmp / "h.wav")
    write_wav(wav_head, 0.5)
    return {
        "missing": (tmp / "nope.wav", "no such file"),
        "empty": (_sparse(tmp / "empty.wav", 0), "empty"),
        "too-big": (_sparse(tmp / "big.wav", 150 * MB + 1, wav_head.read_bytes()[:44]),
                    "150 MB"),
        "not-audio": (tmp / "notes.wav", "not a format NHN accepts"),
        "mp4": (tmp / "clip.mp4", "not a format NHN accepts"),
        "too-short": (write_wav(tmp / "short.wav", 0.2), "shorter than NHN's minimum"),
        "too-long": (write_wav(tmp / "long.wav", 3601, rate=100, width=1),
                     "longer than NHN's maximum"),
    }


@pytest.mark.parametrize("name", ["missing", "empty", "too-big", "not-audio", "mp4",
                                  "too-short", "too-long"])
def test_limits_refused_before_sending(
    name: str, provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext], voxhub_orchestrator: Callable[..., Orchestrator],
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.wav").write_text("this is text, whatever the extension says")
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    path, message = _files(tmp_path)[name]
    server = nhn_sandbox()
    orch = voxhub_orchestrator({"nhn": server.settings()})
    request = JobRequest("nhn", media=LocalFile(path))
    # The provider's validate hook, and the core's submit path that runs it before sending
    # (where the core's own media check refuses text first, in its words).
    core_message = "is not an audio or video file" if name == "not-audio" else message
    for call, expected in ((lambda: provider.validate(nhn_ctx(server), request), message),
                           (lambda: orch.submit(request), core_message)):
        with pytest.raises(InvalidInputError) as info:
            call()
        assert info.value.field == "media"
        assert expected in str(info.value)
    assert server.sandbox.counters.get("requests") == 0


def test_legacy_host_keeps_the_10_mb_sync_cap(
    provider: NhnProvider, nhn_ctx: Callable[..., ProviderContext], tmp_path: Path,
) -> None:
    head = write_wav(tmp_path / "h.wav", 0.5).read_bytes()[:44]
    big = _sparse(tmp_path / "eleven.wav", 11 * MB, head)
    ctx = nhn_ctx(None, app_key="appkey-1", uak_token="tok-123456",
                   host=LEGACY_HOST)
    with pytest.raises(InvalidInputError, match="10 MB"):
        provider.validate(ctx, JobRequest("nhn", media=LocalFile(big)))
    current = nhn_ctx(None, app_key="appkey-1", uak_token="tok-123456")
    # Same file on the current host: size is fine (the sparse WAV has no readable duration).
    provider.validate(current, JobRequest("nhn", media=LocalFile(big)))


@pytest.mark.parametrize(
    ("request_kw", "field", "cls"),
    [
        ({"language": "en-US"}, "language", InvalidInputError),
        ({"callback_url": "https://hooks.example.com/x"}, "callback_url",
         UnsupportedOptionError),
        ({"kind": JobKind.TRANSCODING}, "kind", InvalidInputError),  # the core's check
        ({"options": {"diarization": True}}, "diarization", UnsupportedOptionError),
        ({"options": {"biasing_list": ["no separator"]}}, "biasing_list", InvalidInputError),
        ({"options": {"biasing_list": ["a_b_c"]}}, "biasing_list", InvalidInputError),
        ({"options": {"biasing_list": ["_recognised"]}}, "biasing_list", InvalidInputError),
        ({"options": {"biasing_list": [["correct", ""]]}}, "biasing_list", InvalidInputError),
        ({"options": {"biasing_list": [{"correct": "x"}]}}, "biasing_list", InvalidInputError),
        ({"options": {"biasing_list": "not a list"}}, "biasing_list", InvalidInputError),
    ],
)
def test_request_checks(
    request_kw: dict[str, Any], field: str, cls: type[Exception],
    nhn_sandbox: Callable[..., RunningSandbox], voxhub_orchestrator: Callable[..., Orchestrator],
    tmp_path: Path,
) -> None:
    """Through the core's submit: its checks (kind, option names) and the provider's."""
    server = nhn_sandbox()
    orch = voxhub_orchestrator({"nhn": server.settings()})
    request = JobRequest("nhn", media=LocalFile(write_wav(tmp_path / "a.wav", 1.0)), **request_kw)
    with pytest.raises(cls) as info:
        orch.submit(request)
    assert type(info.value) is cls
    assert getattr(info.value, "field", None) == field
    assert server.sandbox.counters.get("requests") == 0


def test_korean_language_tags_accepted(
    provider: NhnProvider, nhn_ctx: Callable[..., ProviderContext], tmp_path: Path,
) -> None:
    ctx = nhn_ctx(None, app_key="appkey-1", uak_token="tok-123456")
    wav = LocalFile(write_wav(tmp_path / "a.wav", 1.0))
    for tag in ("ko", "ko-KR", "KO_kr", None):
        assert provider.validate(ctx, JobRequest("nhn", media=wav, language=tag)).language == "ko"


def test_biasing_list_forms() -> None:
    entries = parse_biasing_list([
        "차단기_차단계", '"안전운행_안전 운행"', ["A", "a b"], {"correct": "X", "recognised": "y"},
        BiasingEntry("M", "n"),
    ])
    assert [e.wire for e in entries] == [
        "차단기_차단계", "안전운행_안전 운행", "A_a b", "X_y", "M_n"]
    assert parse_biasing_list("하나_둘") == (BiasingEntry("하나", "둘"),)
    assert parse_biasing_list(None) == ()


_side = st.text(alphabet=st.characters(blacklist_characters="_\r\n\"",
                                       blacklist_categories=("Cs", "Cc")),
                min_size=1, max_size=20).filter(lambda s: s.strip() == s and s != "")


@given(correct=_side, recognised=_side)
def test_biasing_round_trip(correct: str, recognised: str) -> None:
    (entry,) = parse_biasing_list([f"{correct}_{recognised}"])
    assert (entry.correct, entry.recognised) == (correct, recognised)
    assert parse_biasing_list([entry.wire]) == (entry,)
    assert parse_biasing_list([[correct, recognised]]) == (entry,)


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav"), (b"\x1a\x45\xdf\xa3\x01", "webm"),
        (b"ID3\x04", "mp3"), (b"\xff\xfb\x90\x00", "mp3"), (b"OggS\x00", "ogg"),
        (b"fLaC\x00", "flac"), (b"\xff\xf1\x50\x80", "aac"), (b"ADIF", "aac"),
        (b"\x0b\x77\x00\x00", "ac3"), (b"\x00\x00\x00\x18ftypmp42", None), (b"hello", None),
        (b"", None),
    ],
)
def test_format_sniffing(head: bytes, fmt: str | None) -> None:
    assert sniff_format(head) == fmt
