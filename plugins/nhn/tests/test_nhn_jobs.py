"""Sync (local file) and async (URL) jobs on both API versions, results, Korean text."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from nhn_helpers import new_handle, wait_terminal, write_wav
from voxhub.errors import InvalidInputError, JobFailedError, NotFoundError
from voxhub.export import FORMATS, render
from voxhub.models import JobHandle, JobRequest, JobState, LocalFile, RemoteUrl, Transcript
from voxhub.provider import ProviderContext, Submitted
from voxhub.sandbox import RunningSandbox
from voxhub.sandbox_kit import media_text
from voxhub.serialization import dump, load
from voxhub_nhn.provider import NhnProvider, to_transcript
from voxhub_nhn.sandbox import PLACEHOLDER_TEXT
from voxhub_nhn.schema import StatusAnswer, SyncAnswer, structure

KOREAN = "안녕하세요. 오늘 회의를 시작하겠습니다. 차단계 점검은 안전 운행 이후에 합니다."
BIASING = ["차단기_차단계", ["안전운행", "안전 운행"]]
CORRECTED = "안녕하세요. 오늘 회의를 시작하겠습니다. 차단기 점검은 안전운행 이후에 합니다."

VERSIONS = ["v2.0", "v2.1"]


@pytest.mark.parametrize("version", VERSIONS)
def test_sync_file_completes_at_once(
    version: str, provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext], tmp_path: Path,
) -> None:
    wav = write_wav(tmp_path / "meeting.wav", 3.0)
    (tmp_path / "meeting.wav.txt").write_text(KOREAN, encoding="utf-8")
    server = nhn_sandbox(media_dirs=[tmp_path])
    ctx = nhn_ctx(server, version=version)
    request = provider.validate(ctx, JobRequest("nhn", media=LocalFile(wav),
                                                options={"biasing_list": BIASING}))
    assert request.options["biasing_list"] == ["차단기_차단계", "안전운행_안전 운행"]
    out = provider.submit(ctx, request, new_handle())
    assert isinstance(out, Submitted)
    assert out.status is not None and out.status.state is JobState.SUCCEEDED
    transcript = out.result
    assert isinstance(transcript, Transcript)
    assert transcript.text == CORRECTED  # biasingList reached the sandbox and was applied
    assert transcript.language == "ko" and transcript.duration == 3.0
    assert [s.text for s in transcript.segments] == [
        "안녕하세요.", "오늘 회의를 시작하겠습니다.", "차단기 점검은 안전운행 이후에 합니다."]
    starts = [s.start or 0.0 for s in transcript.segments]
    assert transcript.segments[0].start == 0.0 and starts == sorted(starts)
    assert transcript.segments[-1].end == pytest.approx(3.0)
    assert all(s.confidence is not None for s in transcript.segments)
    # Only the path for this version was used, with a multipart upload.
    counts = server.sandbox.counters.snapshot()
    assert counts[f"POST /{version}/appkeys/{server.sandbox.app_key}/stt"] == 1  # type: ignore[attr-defined]
    assert counts["requests"] == 1
    # status/fetch on a sync handle: no request.
    handle = out.handle
    assert handle.vendor_state["mode"] == "sync" and handle.vendor_ids == {}
    assert provider.status(ctx, handle).state is JobState.SUCCEEDED
    assert provider.fetch(ctx, handle) == transcript
    assert server.sandbox.counters.get("requests") == 1
    provider.close(ctx, handle)
    with pytest.raises(NotFoundError):
        provider.fetch(ctx, handle)  # served from voxhub's store from now on


@pytest.mark.parametrize("version", VERSIONS)
def test_async_url_goes_through_the_states(
    version: str, provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext], media_dir: Path, media_server: RunningSandbox,
) -> None:
    write_wav(media_dir / "call.wav", 2.0)
    (media_dir / "call.wav.txt").write_text(KOREAN, encoding="utf-8")
    server = nhn_sandbox(processing_seconds=0.4)
    ctx = nhn_ctx(server, version=version)
    url = f"{media_server.base_url}/call.wav"
    handle = provider.submit(ctx, JobRequest("nhn", media=RemoteUrl(url),
                                             options={"biasing_list": ["차단기_차단계"]}),
                             new_handle())
    assert isinstance(handle, JobHandle)
    assert handle.vendor_state == {"mode": "async", "api_version": version}
    task_id = handle.vendor_ids["task_id"]
    states = [s.state for s in wait_terminal(provider, ctx, handle)]
    assert states[0] is JobState.QUEUED and JobState.RUNNING in states
    assert states[-1] is JobState.SUCCEEDED
    transcript = provider.fetch(ctx, handle)
    assert isinstance(transcript, Transcript)
    assert "차단기 점검은" in transcript.text and transcript.duration == 2.0
    counts = server.sandbox.counters.snapshot()
    assert counts[f"POST /{version}/appkeys/{server.sandbox.app_key}/stt/async"] == 1  # type: ignore[attr-defined]
    assert counts[f"GET /{version}/appkeys/{server.sandbox.app_key}/stt/async/{task_id}/status"] >= 3  # type: ignore[attr-defined]  # noqa: E501


def test_both_credentials_with_a_named_version(
    provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext], tmp_path: Path,
) -> None:
    """The sandbox's own profile (both credentials + api_version) works as is."""
    server = nhn_sandbox()
    settings = server.settings()
    assert settings["api_version"] == "v2.1"
    assert {"app_key", "secret_key", "uak_token"} <= set(settings)
    for version in VERSIONS:
        ctx = nhn_ctx(server, version=version)
        out = provider.submit(ctx, JobRequest("nhn", media=LocalFile(
            write_wav(tmp_path / "a.wav", 1.0))), new_handle())
        assert isinstance(out, Submitted) and isinstance(out.result, Transcript)
        assert out.result.text == PLACEHOLDER_TEXT


def test_remote_host_is_a_placeholder_and_url_is_masked_in_logs(
    provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext],
) -> None:
    server = nhn_sandbox(processing_seconds=0.0, remote_duration=9.0)
    ctx = nhn_ctx(server)
    handle = provider.submit(ctx, JobRequest("nhn", media=RemoteUrl(
        "https://bucket.example.com/a.mp3?X-Amz-Signature=abcdef123456")), new_handle())
    assert isinstance(handle, JobHandle)
    assert wait_terminal(provider, ctx, handle)[-1].state is JobState.SUCCEEDED
    transcript = provider.fetch(ctx, handle)
    assert isinstance(transcript, Transcript)
    assert transcript.text == PLACEHOLDER_TEXT and transcript.duration == 9.0


def test_korean_round_trips_through_every_export_format(
    provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext], tmp_path: Path,
) -> None:
    wav = write_wav(tmp_path / "ko.wav", 3.0)
    (tmp_path / "ko.txt").write_text(KOREAN, encoding="utf-8")  # <stem>.txt also works
    server = nhn_sandbox(media_dirs=[tmp_path])
    out = provider.submit(nhn_ctx(server), JobRequest("nhn", media=LocalFile(wav)), new_handle())
    assert isinstance(out, Submitted) and isinstance(out.result, Transcript)
    transcript = out.result
    assert transcript.text == KOREAN
    for fmt in FORMATS:
        text = render(transcript, fmt)
        for segment in transcript.segments:
            assert segment.text in text, fmt
    data = json.loads(render(transcript, "json"))
    assert data["text"] == KOREAN and "\\u" not in render(transcript, "json")
    assert load(dump(transcript), Transcript).text == KOREAN  # the job store's serialization


def test_timeslots_as_numbers_or_strings() -> None:
    doc = {
        "header": {"isSuccessful": True, "resultCode": 0, "resultMessage": "success"},
        "taskId": "d3dc604c-ebef-411a-959e-16f99770f2cf",
        "taskStatus": "COMPLETED",
        "result": {
            "inputLength": 220.0, "fileType": "mp3float",
            "text": ["첫 번째", "두 번째", "세 번째"],
            "timeslot": [{"startTime": "390", "endTime": "12090"},
                         {"startTime": 12090, "endTime": 20000.5}],
            "confidence": [0, 0.5],
        },
    }
    answer = structure(doc, StatusAnswer)
    assert answer.result is not None
    t = to_transcript(answer.result, "vx_1")
    assert [(s.start, s.end) for s in t.segments] == [(0.39, 12.09), (12.09, 20.0005),
                                                       (None, None)]
    assert [s.confidence for s in t.segments] == [0.0, 0.5, None]
    assert t.duration == 220.0 and t.text == "첫 번째 두 번째 세 번째"
    v1 = structure({"header": {"isSuccessful": True, "resultCode": 0},
                    "result": {"text": "하나", "confidence": 0.94}}, SyncAnswer)
    assert v1.result is not None and to_transcript(v1.result, "vx_2").text == "하나"


def test_sandbox_can_send_numeric_timeslots(
    provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext], tmp_path: Path,
) -> None:
    server = nhn_sandbox(timeslot_strings=False)
    out = provider.submit(nhn_ctx(server), JobRequest("nhn", media=LocalFile(
        write_wav(tmp_path / "a.wav", 2.0))), new_handle())
    assert isinstance(out, Submitted) and isinstance(out.result, Transcript)
    assert isinstance(out.result.raw["result"]["timeslot"][0]["endTime"], int)
    assert out.result.segments[-1].end == 2.0


def test_fetch_of_unfinished_or_failed_async_task(
    provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext],
) -> None:
    server = nhn_sandbox(processing_seconds=0.3, failure_rate=1.0)
    ctx = nhn_ctx(server)
    handle = provider.submit(ctx, JobRequest("nhn", media=RemoteUrl("https://example.com/a.wav")),
                             new_handle())
    assert isinstance(handle, JobHandle)
    with pytest.raises(Exception, match="not finished"):
        provider.fetch(ctx, handle)
    final = wait_terminal(provider, ctx, handle)[-1]
    assert (final.state, final.vendor_state, final.reason) == (JobState.FAILED, "FAILED", "FAILED")
    with pytest.raises(JobFailedError, match="voxhub nhn retry"):
        provider.fetch(ctx, handle)


@pytest.mark.parametrize(
    ("media", "field"),
    [
        (RemoteUrl("ftp://example.com/a.wav"), "media"),
        (RemoteUrl("https://example.com/a.wav", auth_headers={"Authorization": "Bearer x"}),
         "media"),
        (None, "media"),
    ],
)
def test_unusable_media_refused(
    media: RemoteUrl | None, field: str, provider: NhnProvider,
    nhn_sandbox: Callable[..., RunningSandbox], nhn_ctx: Callable[..., ProviderContext],
) -> None:
    server = nhn_sandbox()
    with pytest.raises(InvalidInputError) as info:
        provider.validate(nhn_ctx(server), JobRequest("nhn", media=media))
    assert info.value.field == field
    assert server.sandbox.counters.get("requests") == 0


def test_sandbox_text_comes_from_the_declared_recognizer(
    provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext], tmp_path: Path,
) -> None:
    """``use_engine``: the kit's ``media_text`` (the ``voxhub.recognizers`` entry point).

    Without a recognizer installed, or when it hears nothing, the Korean placeholder.
    """
    wav = write_wav(tmp_path / "tone.wav", 2.0)
    heard = media_text(wav, default=None)
    server = nhn_sandbox(use_engine=True)
    out = provider.submit(nhn_ctx(server), JobRequest("nhn", media=LocalFile(wav)), new_handle())
    assert isinstance(out, Submitted) and isinstance(out.result, Transcript)
    assert out.result.text == (" ".join(heard.split()) if heard else PLACEHOLDER_TEXT)
