"""Option validation: every refusal names its field and happens before any request.

Requests are validated as the core does it (``Orchestrator.prepare``: the option
specs, the media checks, then the provider's ``validate`` with Rev's cross-field rules).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from voxhub.plugin import (
    InvalidInputError,
    JobRequest,
    RemoteUrl,
    RtcChannel,
    UnsupportedOptionError,
)
from voxhub_revai import options as opt

URL = RemoteUrl("https://media.example.com/a.mp3")

REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"no_such_option": 1}, "no_such_option"),
    ({"speaker_channels_count": 9}, "speaker_channels_count"),
    ({"speaker_channels_count": 0}, "speaker_channels_count"),
    ({"speakers_count": True}, "speakers_count"),
    ({"delete_after_seconds": -1}, "delete_after_seconds"),
    ({"delete_after_seconds": 2_592_001}, "delete_after_seconds"),
    ({"transcriber": "robot"}, "transcriber"),
    ({"diarization_type": "deluxe"}, "diarization_type"),
    ({"verbatim": "maybe"}, "verbatim"),
    ({"rush": True}, "rush"),
    ({"test_mode": True, "transcriber": "machine"}, "test_mode"),
    ({"speaker_names": ["Ann"]}, "speaker_names"),
    ({"transcriber": "human", "remove_disfluencies": True}, "remove_disfluencies"),
    ({"transcriber": "human", "translation_config": {"target_languages": ["fr"]}},
     "translation_config"),
    ({"transcriber": "low_cost", "diarization_type": "premium"}, "diarization_type"),
    ({"custom_vocabularies": [{"phrases": ["voxhub"]}], "custom_vocabulary_id": "cv1"},
     "custom_vocabulary_id"),
    ({"custom_vocabularies": ["route 66"]}, "custom_vocabularies"),
    ({"custom_vocabularies": ["!!!"]}, "custom_vocabularies"),
    ({"custom_vocabularies": [" ".join(["word"] * 13)]}, "custom_vocabularies"),
    ({"custom_vocabularies": [{"phrases": []}]}, "custom_vocabularies"),
    ({"custom_vocabularies": [{"phrases": ["a"]}] * 51}, "custom_vocabularies"),
    ({"notification_config": {"url": "https://h.example/cb"},
      "callback_url": "https://h.example/cb"}, "callback_url"),
    ({"notification_config": {"url": "https://h.example/cb",
                              "auth_headers": {"X-Key": "k"}}}, "notification_config"),
    ({"callback_url": "ftp://h.example/cb"}, "callback_url"),
    ({"callback_style": "carrier-pigeon"}, "callback_style"),
    ({"notification_config": {"url": "https://h.example/cb",
                              "auth_headers": {"Authorization": "Bearer x"}}},
     "notification_config"),
    ({"summarization_config": {"type": "bullets", "prompt": "short"}}, "summarization_config"),
    ({"summarization_config": {"model": "huge"}}, "summarization_config"),
    ({"translation_config": {"target_languages": ["xx"]}}, "translation_config"),
    ({"translation_config": {"target_languages": []}}, "translation_config"),
    ({"metadata": "m" * (opt.MAX_USER_METADATA + 1)}, "metadata"),
    ({"language": "es", "speakers_count": 2, "transcriber": "machine"}, None),  # allowed
    ({"language": "de", "speakers_count": 2}, "speakers_count"),
    ({"language": "fr", "skip_postprocessing": True}, "skip_postprocessing"),
    ({"language": "ja", "forced_alignment": True}, "forced_alignment"),
    ({"language": "not a language"}, "language"),
]

@pytest.fixture
def validate(make_orch):
    """Validate a request as the core does, against a profile (no sandbox: nothing is sent)."""

    def check(request: JobRequest, **settings: Any) -> JobRequest:
        return make_orch(base_url="http://127.0.0.1:9", **settings).prepare(request)

    return check


HUMAN_SEGMENTS: list[tuple[list[dict[str, Any]], bool]] = [
    ([{"start": 0, "end": 60}, {"start": 60, "end": 130}], True),
    ([{"start": 0, "end": 30}], False),
    ([{"start": 0, "end": 90}, {"start": 80, "end": 200}], False),
    ([{"start": -1, "end": 90}], False),
    ([{"from": 0, "to": 90}], False),
]


@pytest.mark.parametrize(("options", "field"), REFUSED)
def test_refused_before_any_request(kit, sandbox, make_orch, options, field) -> None:
    orch = make_orch(sandbox)
    request, _ = kit.new_job(URL, options=options)
    if field is None:
        orch.prepare(request)
        return
    with pytest.raises(InvalidInputError) as info:
        orch.submit(request)
    assert info.value.field == field
    assert field in str(info.value) or info.value.details["field"] == field
    assert sandbox.sandbox.counters.get("requests") == 0


@pytest.mark.parametrize(("segments", "ok"), HUMAN_SEGMENTS)
def test_segments_to_transcribe(kit, validate, segments, ok) -> None:
    request, _ = kit.new_job(URL, options={"transcriber": "human",
                                           "segments_to_transcribe": segments})
    if ok:
        validate(request)
    else:
        with pytest.raises(InvalidInputError) as info:
            validate(request)
        assert info.value.field == "segments_to_transcribe"


def test_speaker_names_limits(kit, validate) -> None:
    ok, _ = kit.new_job(URL, options={"transcriber": "human",
                                      "speaker_names": ["Ann", {"display_name": "Bob"}]})
    validate(ok)
    for names in (["x" * 51], ["n"] * 101, [42]):
        request, _ = kit.new_job(URL, options={"transcriber": "human", "speaker_names": names})
        with pytest.raises(InvalidInputError) as info:
            validate(request)
        assert info.value.field == "speaker_names"


def test_eu_restrictions(kit, validate) -> None:
    for options, field in (({"transcriber": "human"}, "transcriber"),
                           ({"custom_vocabulary_id": "cv1"}, "custom_vocabulary_id")):
        request, _ = kit.new_job(URL, options=options)
        with pytest.raises(UnsupportedOptionError) as info:
            validate(request, region="eu")
        assert info.value.field == field
    request, _ = kit.new_job(URL, options={"custom_vocabularies": ["voxhub"]})
    validate(request, region="eu")


def test_media_checks(kit, validate, tmp_path: Path) -> None:
    cases: list[Any] = [
        None,
        tmp_path / "missing.wav",
        RemoteUrl("ftp://media.example.com/a.mp3"),
        RemoteUrl("https://media.example.com/a.mp3", auth_headers={"Cookie": "c=1"}),
        RtcChannel("room"),
    ]
    for media in cases:
        request, _ = kit.new_job(media)
        with pytest.raises(InvalidInputError) as info:
            validate(request)
        assert info.value.field == "media"


def test_file_over_two_gb_refused_before_upload(kit, sandbox, make_orch, tmp_path: Path) -> None:
    huge = tmp_path / "huge.wav"
    header = kit.write_wav(tmp_path / "head.wav", 0.1).read_bytes()[:44]
    with huge.open("wb") as fh:  # a WAV header, then sparse: takes no disk space
        fh.write(header)
        fh.truncate(opt.MAX_UPLOAD_BYTES + 1)
    request, _ = kit.new_job(huge)
    with pytest.raises(InvalidInputError) as info:
        make_orch(sandbox).submit(request)
    assert info.value.field == "media"
    assert "URL" in info.value.message
    assert sandbox.sandbox.counters.get("requests") == 0
    os.remove(huge)


def test_language_request_and_option_must_agree(kit, validate) -> None:
    request, _ = kit.new_job(URL, language="es", options={"language": "fr"})
    with pytest.raises(InvalidInputError) as info:
        validate(request)
    assert info.value.field == "language"


def test_request_callback_and_callback_options_conflict(kit, validate) -> None:
    request, _ = kit.new_job(URL, callback_url="https://h.example/cb",
                             options={"callback_url": "https://h.example/other"})
    with pytest.raises(InvalidInputError) as info:
        validate(request)
    assert info.value.field == "callback_url"


def test_webhook_authorization_cannot_use_legacy_form(kit, validate) -> None:
    request, _ = kit.new_job(URL, callback_url="https://h.example/cb",
                             options={"callback_style": "callback_url"})
    with pytest.raises(InvalidInputError) as info:
        validate(request, webhook_authorization="Bearer w")
    assert info.value.field == "callback_style"
    fine, _ = kit.new_job(URL, options={"callback_style": "callback_url"})  # no callback yet
    validate(fine, webhook_authorization="Bearer w")


def test_string_values_from_the_cli_are_converted(kit, sandbox, make_orch, wav) -> None:
    request, _ = kit.new_job(wav, options={
        "verbatim": "false", "speakers_count": "2", "custom_vocabularies": "voxhub,Rev AI",
    })
    make_orch(sandbox).submit(request)
    sent = sandbox.sandbox.last_upload["options"]
    assert sent["verbatim"] is False
    assert sent["speakers_count"] == 2
    assert sent["custom_vocabularies"] == [{"phrases": ["voxhub", "Rev AI"]}]


def test_build_options_payload() -> None:
    request = JobRequest(
        provider="revai", media=URL, language="en", callback_url="https://h.example/cb",
        options={"verbatim": False, "skip_diarization": False, "metadata": "mine",
                 "speaker_names": ["Ann"],
                 "transcriber": "human",
                 "translation_config": {"target_languages": ["fr", {"language": "de"}]}},
    )
    body = opt.build_options(request, idempotency_key="abc", webhook_authorization="Bearer hook")
    assert body["verbatim"] is False and body["skip_diarization"] is False
    assert body["metadata"] == "voxhub:abc mine"
    assert body["notification_config"] == {
        "url": "https://h.example/cb", "auth_headers": {"Authorization": "Bearer hook"}}
    assert "callback_url" not in body
    assert body["speaker_names"] == [{"display_name": "Ann"}]
    assert body["translation_config"]["target_languages"] == [
        {"language": "fr"}, {"language": "de"}]
    assert "callback_style" not in body
    legacy = JobRequest(provider="revai", media=URL, callback_url="https://h.example/cb",
                        options={"callback_style": "callback_url"})
    body = opt.build_options(legacy, idempotency_key=None)
    assert body["callback_url"] == "https://h.example/cb"
    assert "notification_config" not in body and "metadata" not in body


def test_metadata_marker_format() -> None:
    assert opt.metadata_for("auto-0123", None) == "voxhub:auto-0123"
    assert opt.token_of("voxhub:auto-0123 user text") == "auto-0123"
    assert opt.user_metadata("voxhub:auto-0123 user text") == "user text"
    assert opt.token_of("someone else's metadata") is None
    long_key = "k" * 300
    token = opt.key_token(long_key)
    assert len(token) == 64 and token == opt.key_token(long_key)
    assert opt.key_token("has space") != "has space"
    full = opt.metadata_for(long_key, "u" * opt.MAX_USER_METADATA)
    assert full is not None and len(full) == opt.MAX_METADATA
