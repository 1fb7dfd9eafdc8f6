"""Tests of the voxhub-local PocketSphinx engine (engine ``pocketsphinx``) against hello.wav."""

from __future__ import annotations

import itertools
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pocketsphinx
import pytest
import soundfile
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st
from voxhub_local import common
from voxhub_local import sphinx as engine
from voxhub_local.common import AudioError, Cancelled, ConfigError, Recognition, audio_info
from voxhub_local.sphinx import SphinxConfig as EngineConfig
from voxhub_local.sphinx import transcribe

SAMPLES = Path(__file__).resolve().parents[3] / "docs" / "samples"
HELLO_WAV = SAMPLES / "hello.wav"
HELLO_TXT = SAMPLES / "hello.txt"


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over words divided by the reference length."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        previous, row = row, [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
    return row[-1] / max(1, len(ref))


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


@pytest.fixture(scope="module")
def hello_pcm() -> npt.NDArray[np.int16]:
    data, rate = soundfile.read(str(HELLO_WAV), dtype="int16")
    assert rate == 16000 and data.ndim == 1
    return np.asarray(data, dtype=np.int16)


@pytest.fixture(scope="module")
def pocketsphinx_hypothesis(hello_pcm: npt.NDArray[np.int16]) -> str:
    """What PocketSphinx itself says for the whole sample, in one call."""
    model = Path(pocketsphinx.get_model_path()) / "en-us"
    decoder = pocketsphinx.Decoder(
        hmm=str(model / "en-us"),
        dict=str(model / "cmudict-en-us.dict"),
        lm=str(model / "en-us.lm.bin"),
        loglevel="ERROR",
    )
    decoder.start_utt()
    decoder.process_raw(hello_pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    assert hyp is not None
    return str(hyp.hypstr)


_PROGRESS: list[float] = []


@pytest.fixture(scope="module")
def hello_result() -> Recognition:
    """The engine's result for the sample (its progress reports go to _PROGRESS)."""
    _PROGRESS.clear()
    return transcribe(HELLO_WAV, progress=_PROGRESS.append)


def test_sample_files_exist() -> None:
    info = audio_info(HELLO_WAV)
    assert info.samplerate == 16000 and info.channels == 1 and info.format == "WAV"
    assert 5.0 <= info.duration <= 10.0
    assert HELLO_WAV.stat().st_size < 400_000
    assert HELLO_TXT.read_text(encoding="utf-8").strip()


def test_transcript_equals_pocketsphinx(
    hello_result: Recognition, pocketsphinx_hypothesis: str
) -> None:
    assert hello_result.text == pocketsphinx_hypothesis
    assert hello_result.text  # the sample is recognised at all


def test_transcript_is_close_to_reference(hello_result: Recognition) -> None:
    reference = normalise(HELLO_TXT.read_text(encoding="utf-8"))
    assert word_error_rate(reference, hello_result.text) <= 0.25


def test_word_timings(hello_result: Recognition) -> None:
    assert hello_result.duration == pytest.approx(audio_info(HELLO_WAV).duration)
    assert hello_result.words
    previous_end = 0.0
    for word in hello_result.words:
        assert 0.0 <= previous_end <= word.start < word.end <= hello_result.duration
        assert 0.0 <= word.confidence <= 1.0
        assert word.text and not re.search(r"[<>\[\]()]", word.text)
        previous_end = word.end
    assert " ".join(w.text for w in hello_result.words) == hello_result.text


def test_segments_split_on_pauses(hello_result: Recognition) -> None:
    segments = hello_result.segments
    # The sample is three sentences separated by 0.8 s breaks.
    assert len(segments) == 3
    assert tuple(w for s in segments for w in s.words) == hello_result.words
    assert " ".join(s.text for s in segments) == hello_result.text
    for before, after in itertools.pairwise(segments):
        assert after.start - before.end > EngineConfig().segment_gap


@pytest.mark.parametrize(
    ("extension", "options"),
    [("flac", {}), ("ogg", {"subtype": "VORBIS"})],
)
def test_other_containers_give_same_text(
    tmp_path: Path,
    hello_pcm: npt.NDArray[np.int16],
    hello_result: Recognition,
    extension: str,
    options: dict[str, Any],
) -> None:
    target = tmp_path / f"hello.{extension}"
    soundfile.write(str(target), hello_pcm, 16000, **options)
    assert audio_info(target).format == extension.upper()
    result = transcribe(target)
    if extension == "flac":  # lossless: bit-identical PCM
        assert result.text == hello_result.text
    else:
        assert word_error_rate(hello_result.text, result.text) <= 0.15


def test_mp3_when_supported(tmp_path: Path, hello_pcm: npt.NDArray[np.int16]) -> None:
    if "MP3" not in common.supported_formats():
        pytest.skip("bundled libsndfile has no MP3 support")
    target = tmp_path / "hello.mp3"
    soundfile.write(str(target), hello_pcm, 16000, format="MP3")
    result = transcribe(target)
    reference = normalise(HELLO_TXT.read_text(encoding="utf-8"))
    assert word_error_rate(reference, result.text) <= 0.35


def test_44k_stereo_is_resampled_in_blocks(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hello_pcm: npt.NDArray[np.int16],
    hello_result: Recognition,
) -> None:
    mono = soxr.resample(hello_pcm.astype(np.float32) / 32768.0, 16000, 44100)
    stereo = np.stack([mono, 0.5 * mono], axis=1).astype(np.float32)
    target = tmp_path / "hello44k.wav"
    soundfile.write(str(target), stereo, 44100, subtype="PCM_16")
    info = audio_info(target)
    assert (info.samplerate, info.channels) == (44100, 2)

    requested: list[int] = []
    original_read = soundfile.SoundFile.read

    def spy(self: Any, frames: int = -1, *args: Any, **kwargs: Any) -> Any:
        requested.append(frames)
        return original_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(soundfile.SoundFile, "read", spy)
    result = transcribe(target)
    assert requested and all(0 < n <= 44100 for n in requested)  # never whole
    assert result.duration == pytest.approx(hello_result.duration, abs=0.01)
    assert word_error_rate(hello_result.text, result.text) <= 0.15
    assert all(w.end <= result.duration for w in result.words)


def test_pcm_stream_is_bounded_and_complete(tmp_path: Path) -> None:
    rate, seconds = 48000, 12.0
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal((int(rate * seconds), 2)) * 0.1).astype(np.float32)
    target = tmp_path / "noise.flac"
    soundfile.write(str(target), noise, rate)
    with soundfile.SoundFile(str(target)) as handle:
        blocks = list(common.iter_pcm(handle, str(target), 16000, None))
    # soxr's delay line flushes a few hundred extra samples with the last block
    assert max(len(b.samples) for b in blocks) <= 16000 * common.BLOCK_SECONDS + 1024
    assert blocks[-1].source_frames == len(noise)
    total = sum(len(b.samples) for b in blocks)
    assert abs(total - 16000 * seconds) <= 2
    assert all(b.samples.dtype == np.float32 for b in blocks)


def test_progress_is_monotonic_and_ends_at_one(hello_result: Recognition) -> None:
    reports = list(_PROGRESS)
    assert len(reports) >= 5
    assert reports == sorted(reports)
    assert all(0.0 <= r < 1.0 for r in reports[:-1])
    assert reports[-1] == 1.0 and reports.count(1.0) == 1


def test_cancel_during_decoding() -> None:
    cancel = threading.Event()
    reports: list[float] = []

    def on_progress(share: float) -> None:
        reports.append(share)
        cancel.set()

    with pytest.raises(Cancelled):
        transcribe(HELLO_WAV, progress=on_progress, cancel=cancel)
    assert reports and reports[-1] < 1.0
    assert len(reports) == 1  # stopped at the next block


def test_cancel_before_start() -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        transcribe(HELLO_WAV, cancel=cancel)


def test_long_utterances_are_split(
    monkeypatch: pytest.MonkeyPatch, hello_result: Recognition
) -> None:
    # Close utterances at the first pause after 1 s, and hard at 2.5 s.
    monkeypatch.setattr(engine, "_MIN_UTTERANCE_SECONDS", 1.0)
    monkeypatch.setattr(engine, "_MAX_UTTERANCE_SECONDS", 2.5)
    split = transcribe(HELLO_WAV)
    assert word_error_rate(hello_result.text, split.text) <= 0.35
    assert len(split.segments) >= 4
    starts = [w.start for w in split.words]
    assert starts == sorted(starts)
    assert all(0 <= w.start <= w.end <= split.duration for w in split.words)
    # Words keep their place in the file across utterances.
    for word in split.words:
        same = [w for w in hello_result.words if w.text == word.text]
        if same:
            assert min(abs(w.start - word.start) for w in same) < 0.5


@settings(max_examples=25, deadline=None)
@given(
    chunks=st.lists(st.integers(min_value=100, max_value=20000), min_size=1, max_size=20),
    min_s=st.sampled_from([0.2, 0.5, 1.0]),
    max_s=st.sampled_from([0.7, 2.0, 50.0]),
)
def test_splitter_does_not_depend_on_block_size(
    chunks: list[int], min_s: float, max_s: float
) -> None:
    rng = np.random.default_rng(7)
    parts = []
    for _ in range(6):  # bursts of loud noise separated by digital silence
        parts.append((rng.standard_normal(8000) * 8000).astype(np.int16))
        parts.append(np.zeros(8000, dtype=np.int16))
    pcm = np.concatenate(parts)

    def absolute_cuts(sizes: list[int]) -> list[int]:
        splitter = engine._UtteranceSplitter(16000, min_s, max_s, 0.3)
        cuts, offset = [], 0
        while offset < len(pcm):
            for size in sizes:
                block = pcm[offset : offset + size]
                cuts += [offset + c for c in splitter.cut_points(block)]
                offset += len(block)
        return cuts

    reference = absolute_cuts([len(pcm)])
    assert absolute_cuts(chunks) == reference
    frame = 480  # the VAD's 30 ms frame: cuts fall on frame ends
    boundaries = [0, *reference]
    assert all(b - a < max_s * 16000 + frame for a, b in itertools.pairwise(boundaries))


def test_grammar_search(tmp_path: Path, hello_result: Recognition) -> None:
    grammar = tmp_path / "hello.jsgf"
    grammar.write_text(
        "#JSGF V1.0;\ngrammar hello;\n"
        "public <talk> = ( hello | please call me tomorrow morning at nine o'clock"
        " | thank you very much )+ ;\n",
        encoding="utf-8",
    )
    result = transcribe(HELLO_WAV, EngineConfig(grammar=str(grammar)))
    reference = normalise(HELLO_TXT.read_text(encoding="utf-8"))
    assert word_error_rate(reference, result.text) <= 0.25
    assert all(0.0 <= w.confidence <= 1.0 for w in result.words)


def test_keyphrase_search() -> None:
    found = transcribe(HELLO_WAV, EngineConfig(keyphrase="thank  you", kws_threshold=1e-20))
    assert found.text == "thank you"
    (word,) = found.words
    assert 4.0 < word.start < word.end <= found.duration
    assert 0.0 <= word.confidence <= 1.0
    absent = transcribe(HELLO_WAV, EngineConfig(keyphrase="good evening", kws_threshold=1e-5))
    assert absent.text == "" and absent.words == () and absent.segments == ()


def test_bad_file_raises_audio_error(tmp_path: Path) -> None:
    bad = tmp_path / "not-audio.wav"
    bad.write_bytes(b"this is not a RIFF file at all" * 10)
    for call in (lambda: transcribe(bad), lambda: audio_info(bad)):
        with pytest.raises(AudioError) as caught:
            call()
        assert str(bad) in str(caught.value)
        assert isinstance(caught.value, ValueError)
    missing = tmp_path / "missing.flac"
    with pytest.raises(AudioError, match=re.escape(str(missing))):
        transcribe(missing)
    with pytest.raises(AudioError, match="directory"):
        audio_info(tmp_path)


def test_default_config_uses_bundled_model() -> None:
    options = EngineConfig().decoder_options()
    model = Path(pocketsphinx.get_model_path())
    for key in ("hmm", "dict", "lm"):
        assert Path(options[key]).is_relative_to(model)
        assert Path(options[key]).exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model_dir": "/nonexistent/model"}, "model_dir"),
        ({"dictionary": "/nonexistent.dict"}, "dictionary"),
        ({"language_model": "/nonexistent.lm"}, "language_model"),
        ({"grammar": "/nonexistent.jsgf"}, "grammar"),
        ({"keyphrase": "   "}, "keyphrase"),
        ({"kws_threshold": 1e-20}, "kws_threshold"),
        ({"keyphrase": "hello", "kws_threshold": -1.0}, "kws_threshold"),
        ({"segment_gap": 0.0}, "segment_gap"),
    ],
)
def test_config_validation_names_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        EngineConfig(**kwargs)
    assert caught.value.field == field
    assert field in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_config_exclusive_searches(tmp_path: Path) -> None:
    lm = Path(pocketsphinx.get_model_path()) / "en-us" / "en-us.lm.bin"
    grammar = tmp_path / "g.jsgf"
    grammar.write_text("#JSGF V1.0;\ngrammar g;\npublic <a> = hello;\n", encoding="utf-8")
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"keyphrase": "hello", "grammar": grammar}, {"keyphrase", "grammar"}),
        ({"keyphrase": "hello", "language_model": lm}, {"keyphrase", "language_model"}),
        ({"grammar": grammar, "language_model": lm}, {"grammar", "language_model"}),
    ]
    for kwargs, fields in cases:
        with pytest.raises(ConfigError) as caught:
            EngineConfig(**kwargs)
        assert caught.value.field in fields
        assert all(name in str(caught.value) for name in fields)
    assert EngineConfig(keyphrase="hello", kws_threshold=1e-20).decoder_options()["lm"] is None
