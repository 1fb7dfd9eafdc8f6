"""The provider against the sandbox over real sockets: every lifecycle call and endpoint."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from voxhub.plugin import (
    AuthenticationError,
    Capability,
    InvalidInputError,
    JobFailedError,
    JobState,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    RemoteUrl,
)
from voxhub.sandbox import serve
from voxhub.sandbox_kit import media_text
from voxhub_revai import RevaiProvider, RevaiSandbox
from voxhub_revai.api import RevApi, region
from voxhub_revai.errors import error_from_response
from voxhub_revai.provider import EU_URL, US_URL


def test_info_declares_what_the_issue_asks() -> None:
    info = RevaiProvider.info
    assert info.name == "revai"
    assert {Capability.UPLOAD, Capability.URL, Capability.CALLBACKS, Capability.CAPTIONS,
            Capability.DELETE, Capability.LIST, Capability.RECOVER, Capability.DIARIZATION,
            Capability.WORD_TIMINGS} <= info.capabilities
    assert info.retry.max_attempts == 5
    assert info.retry.retry_statuses == {502, 503, 504}
    assert info.retry.rate_limit_statuses == {429}
    assert info.export_formats == {"srt", "vtt"}
    assert (info.polling.first_poll, info.polling.typical_duration,
            info.polling.max_interval) == (2.0, 30.0, 15.0)
    names = {o.name for o in info.options}
    for name in ("transcriber", "verbatim", "rush", "test_mode", "segments_to_transcribe",
                 "speaker_names", "skip_diarization", "skip_punctuation", "skip_postprocessing",
                 "remove_disfluencies", "remove_atmospherics", "filter_profanity",
                 "speaker_channels_count", "speakers_count", "diarization_type",
                 "custom_vocabularies", "custom_vocabulary_id", "strict_custom_vocabulary",
                 "summarization_config", "translation_config", "forced_alignment",
                 "delete_after_seconds", "metadata", "notification_config", "callback_url",
                 "language"):
        assert name in names, name
    token = next(c for c in info.credentials if c.name == "token")
    assert token.secret


def test_base_url_by_region_and_override(kit) -> None:
    us = kit.make_ctx(base_url=None)
    eu = kit.make_ctx(base_url=None, region="eu")
    custom = kit.make_ctx(base_url="http://127.0.0.1:9/speechtotext/v1/")
    assert RevApi(us).base_url == US_URL + "/speechtotext/v1"
    assert RevApi(eu).base_url == EU_URL + "/speechtotext/v1"
    assert RevApi(custom).base_url == "http://127.0.0.1:9/speechtotext/v1"
    assert RevApi(custom).url("/jobs/a b") == "http://127.0.0.1:9/speechtotext/v1/jobs/a b"
    assert region(kit.make_ctx(base_url=EU_URL)) == "eu"
    # The orchestrator fills in the declared default (the US host): region=eu still wins.
    assert RevApi(kit.make_ctx(base_url=US_URL, region="eu")).base_url == (
        EU_URL + "/speechtotext/v1")


def test_ids_are_one_path_segment(kit, sandbox, ctx, provider) -> None:
    # A vendor id with a slash or a query character must not reach another endpoint.
    _, handle = kit.new_job(RemoteUrl("https://x.example/a.mp3"))
    with pytest.raises(NotFoundError):
        provider.status(ctx, handle.with_vendor({"job": "../account?x=1"}))
    assert sandbox.sandbox.counters.get("GET /speechtotext/v1/account") == 0


def test_upload_lifecycle(kit, sandbox, ctx, provider: RevaiProvider, wav: Path) -> None:
    request, handle = kit.new_job(wav, options={"verbatim": False, "speakers_count": 2})
    handle = provider.submit(ctx, request, handle)
    vendor_id = handle.vendor_ids["job"]
    assert handle.vendor_state == {"upload": True}
    sb = sandbox.sandbox
    # Multipart as documented: base name only, a guessed content type, options as a JSON string.
    assert sb.last_upload["filename"] == "hello.wav"
    assert sb.last_upload["content_type"] == "audio/wav"
    assert sb.last_upload["options"]["verbatim"] is False  # an explicit false is sent
    assert sb.last_upload["options"]["metadata"] == f"voxhub:{handle.idempotency_key}"
    assert sb.last_upload["bytes"] == wav.stat().st_size

    status = provider.status(ctx, handle)
    assert status.state is JobState.SUCCEEDED
    assert status.vendor_state == "transcribed"

    transcript = provider.fetch(ctx, handle)
    assert transcript.text == kit.SPOKEN
    assert transcript.duration == 3.0
    assert transcript.language == "en"
    assert transcript.job_id == handle.job_id
    assert [s.speaker for s in transcript.segments] == ["0", "1", "0"]
    first = transcript.segments[0]
    assert first.text == "Hello there."
    assert [w.text for w in first.words] == ["Hello", "there"]
    assert first.words[0].start == 0.0 and first.words[0].end is not None
    assert all(0 < (w.confidence or 0) <= 1 for s in transcript.segments for w in s.words)
    # Segment text is the exact join of Rev's element values.
    mono = transcript.raw["monologues"][0]
    assert first.text == "".join(e["value"] for e in mono["elements"])

    srt = provider.export(ctx, handle, "srt")
    vtt = provider.export(ctx, handle, "vtt")
    assert srt is not None and srt.startswith("1\n00:00:00,000 --> ")
    assert vtt is not None and vtt.startswith("WEBVTT")
    # Rev's text/plain (speaker and time columns) is not voxhub's txt: never asked for.
    assert provider.export(ctx, handle, "txt") is None
    assert provider.export(ctx, handle, "json") is None

    provider.close(ctx, handle)
    provider.close(ctx, handle)  # already closed: 404 is fine
    with pytest.raises(NotFoundError):
        provider.status(ctx, handle)
    assert sb.counters.get("jobs.deleted") == 1
    assert sb.counters.get("jobs.created") == 1
    assert vendor_id not in sb.job_ids()


def test_url_job_downloads_loopback_media_with_auth(
    kit,
    sandbox, ctx, provider: RevaiProvider, wav: Path, media_server
) -> None:
    media = RemoteUrl(f"{media_server.url}/private/hello.wav",
                      auth_headers={"Authorization": "Bearer media-key"})
    request, handle = kit.new_job(media, language="en")
    handle = provider.submit(ctx, request, handle)
    assert handle.vendor_state == {"upload": False}
    kit.wait_until(lambda: provider.status(ctx, handle).is_terminal)
    transcript = provider.fetch(ctx, handle)
    assert transcript.text == kit.SPOKEN  # the sidecar came from <url>.txt
    paths = [p for p, _, _ in media_server.requests]
    assert "/private/hello.wav" in paths
    assert media_server.requests[0][1]["Authorization"] == "Bearer media-key"
    job = RevApi(ctx).job(handle.vendor_ids["job"])
    assert "source_config" not in job.raw  # never echoed (it may hold secrets)


def test_url_job_download_failure_is_a_failed_job(
    kit, sandbox, ctx, provider, media_server
) -> None:
    request, handle = kit.new_job(RemoteUrl(f"{media_server.url}/missing.mp3"))
    handle = provider.submit(ctx, request, handle)
    status = kit.wait_until(lambda: (s := provider.status(ctx, handle)).is_terminal and s)
    assert status.state is JobState.FAILED
    assert status.reason == "download_failure"
    assert status.detail
    with pytest.raises(JobFailedError) as info:
        provider.fetch(ctx, handle)
    assert info.value.reason == "download_failure"


def test_remote_url_never_fetched_gets_placeholder(kit, sandbox, ctx, provider) -> None:
    request, handle = kit.new_job(RemoteUrl("https://media.example.com/talk.mp3"))
    handle = provider.submit(ctx, request, handle)
    transcript = provider.fetch(ctx, handle)
    assert "placeholder" in transcript.text
    assert sandbox.sandbox.counters.get("downloads") == 0


def test_in_progress_then_transcribed(kit, make_sandbox, provider, wav: Path) -> None:
    run = make_sandbox(processing_seconds=0.3)
    ctx = kit.make_ctx(run)
    request, handle = kit.new_job(wav)
    handle = provider.submit(ctx, request, handle)
    assert provider.status(ctx, handle).state is JobState.RUNNING
    with pytest.raises(ProviderError) as fetch_early:
        provider.fetch(ctx, handle)
    assert fetch_early.value.status == 409
    assert fetch_early.value.details["current_value"] == "in_progress"
    with pytest.raises(ProviderError) as close_early:
        provider.close(ctx, handle)
    err = close_early.value
    assert err.status == 409 and err.code == "invalid-job-state"
    assert "in progress" in err.message or "in_progress" in err.message
    assert err.details["allowed_values"] == ["transcribed", "failed"]
    assert err.details["current_value"] == "in_progress"
    kit.wait_until(lambda: provider.status(ctx, handle).state is JobState.SUCCEEDED)
    provider.close(ctx, handle)


def test_failure_injection(kit, make_sandbox, provider, wav: Path) -> None:
    run = make_sandbox(failure_rate=1.0)
    ctx = kit.make_ctx(run)
    request, handle = kit.new_job(wav)
    handle = provider.submit(ctx, request, handle)
    status = provider.status(ctx, handle)
    assert status.state is JobState.FAILED
    assert status.reason and status.detail
    with pytest.raises(JobFailedError):
        provider.fetch(ctx, handle)
    provider.close(ctx, handle)  # failed jobs can be deleted


def test_list_jobs_paginates_newest_first(kit, sandbox, ctx, provider) -> None:
    ids = []
    for i in range(7):
        request, handle = kit.new_job(RemoteUrl(f"https://media.example.com/{i}.mp3"))
        ids.append(provider.submit(ctx, request, handle).vendor_ids["job"])
    before = sandbox.sandbox.counters.get("GET /speechtotext/v1/jobs")
    listed = [j.id for j in provider.list_jobs(ctx, page_size=3)]
    assert listed == ids[::-1]
    assert sandbox.sandbox.counters.get("GET /speechtotext/v1/jobs") - before == 3
    assert [j.id for j in provider.list_jobs(ctx, limit=5, page_size=2)] == ids[::-1][:5]
    assert [j.id for j in provider.list_jobs(ctx, starting_after=ids[3])] == ids[:3][::-1]
    assert list(provider.list_jobs(ctx, limit=0)) == []


def test_account(sandbox, ctx, provider) -> None:
    account = provider.account(ctx)
    assert account.email and account.balance_seconds is not None


def test_wrong_token_is_authentication_error(kit, sandbox, provider) -> None:
    ctx = kit.make_ctx(sandbox, token="not-the-right-token")
    with pytest.raises(AuthenticationError) as info:
        provider.account(ctx)
    assert info.value.status == 401
    assert info.value.details["title"] == "Authorization has been denied for this request"


def test_other_region_token_is_permission_denied(kit, sandbox, provider) -> None:
    ctx = kit.make_ctx(sandbox, token=sandbox.sandbox.other_region_token)
    with pytest.raises(PermissionDeniedError) as info:
        list(provider.list_jobs(ctx))
    assert info.value.status == 403
    assert "deployment" in str(info.value)


def test_unknown_job_is_not_found(kit, sandbox, ctx, provider) -> None:
    _, handle = kit.new_job(RemoteUrl("https://x.example/a.mp3"))
    handle = handle.with_vendor({"job": "nosuchjob123"})
    with pytest.raises(NotFoundError) as info:
        provider.status(ctx, handle)
    assert info.value.code == "job-not-found"
    assert info.value.details["kind"] == "job-not-found"


def test_upload_over_sandbox_limit_is_413_invalid_media(
    kit, make_sandbox, provider, media_dir
) -> None:
    run = make_sandbox(max_upload_bytes=20_000)
    ctx = kit.make_ctx(run)
    big = kit.write_wav(media_dir / "big.wav", seconds=3.0)  # 48 kB
    request, handle = kit.new_job(big)
    with pytest.raises(InvalidInputError) as info:
        provider.submit(ctx, request, handle)
    assert info.value.field == "media"
    assert info.value.details["status"] == 413
    assert "URL" in str(info.value)
    assert run.sandbox.counters.get("jobs.created") == 0


def test_unknown_custom_vocabulary_id_404(kit, sandbox, ctx, provider, wav) -> None:
    request, handle = kit.new_job(wav, options={"custom_vocabulary_id": "cv_missing"})
    with pytest.raises(InvalidInputError) as info:
        provider.submit(ctx, request, handle)
    assert info.value.field == "custom_vocabulary_id"
    request, handle = kit.new_job(wav, options={"custom_vocabulary_id": "cv_sandbox"})
    assert provider.submit(ctx, request, handle).vendor_id


def test_callback_url_from_context_goes_to_notification_config(kit, make_sandbox, provider, wav):
    run = make_sandbox(processing_seconds=30)
    ctx = kit.make_ctx(run, callback_url_for=lambda job_id: f"http://127.0.0.1:9/cb/{job_id}")
    request, handle = kit.new_job(wav)
    provider.submit(ctx, request, handle)
    sent = run.sandbox.last_upload["options"]
    assert sent["notification_config"] == {"url": f"http://127.0.0.1:9/cb/{handle.job_id}"}
    assert "callback_url" not in sent


def test_speaker_channels_on_mono_media_fails_and_captions_need_channel(
    kit,
    make_sandbox, provider, media_dir
) -> None:
    run = make_sandbox()
    ctx = kit.make_ctx(run)
    mono = kit.write_wav(media_dir / "mono.wav")
    request, handle = kit.new_job(mono, options={"speaker_channels_count": 2})
    handle = provider.submit(ctx, request, handle)
    assert provider.status(ctx, handle).reason == "invalid_media"
    stereo = kit.write_wav(media_dir / "stereo.wav", channels=2)
    request, handle = kit.new_job(stereo, options={"speaker_channels_count": 2})
    handle = provider.submit(ctx, request, handle)
    assert provider.status(ctx, handle).state is JobState.SUCCEEDED
    with pytest.raises(InvalidInputError) as info:
        provider.export(ctx, handle, "srt")  # Rev answers 405 without speaker_channel
    assert info.value.details["kind"] == "invalid-job-properties"


class Recognizing(RevaiSandbox):
    """The emulator with a recognizer of its own, recording what it was asked."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.heard: list[Path] = []

    def recognize(self, path: Path) -> str | None:
        self.heard.append(path)
        return "Words from the recognizer."


@pytest.mark.parametrize(("use_engine", "expected"), [
    (None, "Words from the recognizer."), (True, "Words from the recognizer."), (False, None)])
def test_recognizer_is_used_unless_turned_off(kit, provider, wav, use_engine, expected) -> None:
    with serve(Recognizing(processing_seconds=0, use_engine=use_engine)) as run:
        ctx = kit.make_ctx(run)
        handle = provider.submit(ctx, *kit.new_job(wav))
        # Without the recognizer, the sidecar next to the uploaded file is gone: the
        # placeholder (the sidecar dirs are not given here).
        text = provider.fetch(ctx, handle).text
        if expected is None:
            assert "placeholder" in text
        else:
            assert text == expected
        assert len(run.sandbox.heard) == (0 if use_engine is False else 1)
        assert all(p.suffix == ".wav" for p in run.sandbox.heard)


def test_default_recognizer_is_the_kits(wav) -> None:
    sandbox = RevaiSandbox()
    try:
        # Whatever recognizer is installed (or none): the sandbox asks the kit, nothing else.
        assert sandbox.recognize(wav) == media_text(wav, default=None)
    finally:
        sandbox.close()


def test_processing_timer_finishes_without_polling(kit, make_sandbox, provider, wav) -> None:
    run = make_sandbox(processing_seconds=0.1)
    ctx = kit.make_ctx(run)
    request, handle = kit.new_job(wav)
    provider.submit(ctx, request, handle)
    kit.wait_until(lambda: run.sandbox.counters.get("jobs.transcribed") == 1, timeout=3)


def test_problem_body_kept_in_details_for_server_400(sandbox, ctx) -> None:
    # Bypass client validation to see how a real 400 from the API is mapped.
    url = f"{sandbox.base_url}/speechtotext/v1/jobs"
    resp = ctx.http.request(
        "POST", url, operation="submit", idempotent=False,
        headers={"Authorization": f"Bearer {sandbox.sandbox.token}"},
        json={"source_config": {"url": "https://x.example/a.mp3"}, "speaker_channels_count": 9},
    )
    assert resp.status == 400
    err = error_from_response(resp, "submit")
    assert isinstance(err, InvalidInputError)
    assert err.field == "speaker_channels_count"
    assert err.details["parameters"] == {
        "speaker_channels_count": ["The field speaker_channels_count must be between 1 and 8."]}
    assert err.details["kind"] == "invalid-parameters"
    assert err.details["title"] == "Your request parameters didn't validate"
    body = json.loads(resp.data)
    assert body["status"] == 400 and body["type"].endswith("/invalid-parameters")


def test_submit_response_is_fast_for_processing_zero(kit, sandbox, ctx, provider, wav) -> None:
    started = time.monotonic()
    request, handle = kit.new_job(wav)
    handle = provider.submit(ctx, request, handle)
    assert provider.status(ctx, handle).state is JobState.SUCCEEDED
    assert time.monotonic() - started < 2
