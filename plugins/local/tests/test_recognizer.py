"""voxhub-local is the recognizer the sandbox kit uses for "the words of this audio".

It answers with the default engine, Whisper ``tiny.en``, offline.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from voxhub.sandbox_kit import NO_RECOGNIZER_TEXT, media_text
from voxhub_local import engine

HELLO_WAV = Path(__file__).resolve().parents[3] / "docs" / "samples" / "hello.wav"


def test_the_recognizer_entry_point_names_recognize_text() -> None:
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group="voxhub.recognizers")}
    assert "local" in found, "reinstall voxhub-local: its entry points are not installed"
    assert found["local"].value == "voxhub_local.engine:recognize_text"
    assert found["local"].load() is engine.recognize_text


def test_media_text_is_the_engine_transcript(no_network: None) -> None:
    text = media_text(HELLO_WAV)
    assert text == engine.transcribe(HELLO_WAV).text  # what recognize_text returns
    assert text != NO_RECOGNIZER_TEXT
    assert text is not None and text.startswith("Hello, please call me tomorrow morning")
    assert engine.transcribe(HELLO_WAV).engine == "whisper"


def test_what_the_engine_cannot_read_is_no_text(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF but not really a wave file" * 10)
    with pytest.raises(engine.AudioError):
        engine.recognize_text(garbage)
    # An emulator asking for text never fails for it: it gets the caller's default.
    assert media_text(garbage, default=None) is None
    assert media_text(garbage) == NO_RECOGNIZER_TEXT
