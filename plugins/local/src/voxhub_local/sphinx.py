"""The PocketSphinx engine of voxhub-local: keyword spotting, JSGF grammars, dictation.

Imported only when a job asks for engine ``pocketsphinx`` (the
``voxhub-local[pocketsphinx]`` extra). Audio is streamed block by block
(:func:`voxhub_local.common.iter_pcm`), converted to 16-bit PCM and fed to
:class:`pocketsphinx.Decoder`.

Memory does not grow with the length of the file except for the result
itself: audio is held one block at a time (plus the first
``_CMN_PRIME_SECONDS`` of converted PCM, see below), and the decoder's
search is bounded by closing the current utterance at a pause once it is
longer than ``_MIN_UTTERANCE_SECONDS`` (or unconditionally at
``_MAX_UTTERANCE_SECONDS``).

Cepstral mean normalisation: PocketSphinx normalises features with a
running ("live") mean when it is fed in blocks, which starts from the
model's built-in estimate and makes the first seconds of a recording much
worse than decoding the whole file at once. The engine therefore measures
the cepstral mean of the first ``_CMN_PRIME_SECONDS`` of audio first (with
a throw-away feature-only decoder, no search) and starts the real decoder
from it. For a file no longer than that, the result is the one PocketSphinx
gives for the whole file decoded in a single call.

Default models are the US-English acoustic model, dictionary and language
model shipped inside the ``pocketsphinx`` wheel; nothing is downloaded.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Final, NamedTuple

import attrs
import numpy as np
import numpy.typing as npt

# No stubs: the workspace mypy config ignores missing imports for it.
import pocketsphinx

from .common import (
    ConfigError,
    EngineError,
    Recognition,
    Segment,
    WordTiming,
    check_cancel,
    iter_pcm,
    open_audio,
    reason,
)

__all__ = ["ModelPaths", "SphinxConfig", "default_model_paths", "transcribe"]

Int16Array = npt.NDArray[np.int16]
Float32Array = npt.NDArray[np.float32]
StrPath = str | os.PathLike[str]

#: How much audio the cepstral mean is estimated from before decoding.
_CMN_PRIME_SECONDS: Final = 30.0
#: An utterance is closed at the first pause after it reached this length...
_MIN_UTTERANCE_SECONDS: float = 20.0
#: ...and unconditionally when it reaches this one.
_MAX_UTTERANCE_SECONDS: float = 60.0
#: Minimum length of a pause (non-speech for the voice-activity detector)
#: at which a long utterance is closed.
_PAUSE_SECONDS: float = 0.3

_FILLER_RE: Final = re.compile(r"^(<.*>|\[.*\]|\+\+.*\+\+|\+.*\+)$")
_ALTERNATE_RE: Final = re.compile(r"\(\d+\)$")


# --------------------------------------------------------------------------
# Configuration


class ModelPaths(NamedTuple):
    """Paths of the default model shipped inside the pocketsphinx wheel."""

    model_dir: str
    dictionary: str
    language_model: str


def default_model_paths() -> ModelPaths:
    """Return the US-English model bundled with the pocketsphinx wheel."""
    base = Path(str(pocketsphinx.get_model_path())) / "en-us"
    return ModelPaths(
        model_dir=str(base / "en-us"),
        dictionary=str(base / "cmudict-en-us.dict"),
        language_model=str(base / "en-us.lm.bin"),
    )


def _optional_path(value: StrPath | None) -> str | None:
    return None if value is None else os.fspath(value)


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _require_file(field: str, path: str | None) -> None:
    if path is not None and not Path(path).is_file():
        raise ConfigError(field, f"file does not exist: {path!r}")


@attrs.frozen(kw_only=True)
class SphinxConfig:
    """What PocketSphinx recognises with (engine ``pocketsphinx``).

    Invalid values raise :class:`ConfigError`.

    Every path left to ``None`` means the US-English model shipped inside the
    pocketsphinx wheel (see :func:`default_model_paths`).

    Attributes:
        model_dir: Acoustic model directory (must contain ``mdef``).
        dictionary: Pronunciation dictionary file.
        language_model: N-gram language model (ARPA or binary). Mutually
            exclusive with ``keyphrase`` and ``grammar``.
        keyphrase: Spot this phrase (keyword search) instead of free
            dictation; every word must be in the dictionary.
        kws_threshold: Detection threshold of ``keyphrase`` (a probability,
            e.g. ``1e-20``; larger means fewer false alarms). Only with
            ``keyphrase``.
        grammar: JSGF grammar file to recognise with instead of the language
            model.
        segment_gap: A silence longer than this many seconds between two
            words starts a new :class:`Segment`.
    """

    model_dir: str | None = attrs.field(default=None, converter=_optional_path)
    dictionary: str | None = attrs.field(default=None, converter=_optional_path)
    language_model: str | None = attrs.field(default=None, converter=_optional_path)
    keyphrase: str | None = None
    kws_threshold: float | None = attrs.field(default=None, converter=_optional_float)
    grammar: str | None = attrs.field(default=None, converter=_optional_path)
    segment_gap: float = attrs.field(default=0.5, converter=float)

    def __attrs_post_init__(self) -> None:
        if self.model_dir is not None:
            if not Path(self.model_dir).is_dir():
                raise ConfigError("model_dir", f"not a directory: {self.model_dir!r}")
            if not (Path(self.model_dir) / "mdef").is_file():
                raise ConfigError(
                    "model_dir",
                    f"no acoustic model (mdef file) in {self.model_dir!r}",
                )
        _require_file("dictionary", self.dictionary)
        _require_file("language_model", self.language_model)
        _require_file("grammar", self.grammar)
        if self.keyphrase is not None and not self.keyphrase.strip():
            raise ConfigError("keyphrase", "must not be empty")
        if self.keyphrase is not None and self.grammar is not None:
            raise ConfigError("keyphrase", "cannot be combined with grammar")
        if self.keyphrase is not None and self.language_model is not None:
            raise ConfigError("keyphrase", "cannot be combined with language_model")
        if self.grammar is not None and self.language_model is not None:
            raise ConfigError("grammar", "cannot be combined with language_model")
        if self.kws_threshold is not None:
            if self.keyphrase is None:
                raise ConfigError("kws_threshold", "only applies with keyphrase")
            if not (math.isfinite(self.kws_threshold) and self.kws_threshold > 0):
                raise ConfigError("kws_threshold", "must be a positive number")
        if not (math.isfinite(self.segment_gap) and self.segment_gap > 0):
            raise ConfigError("segment_gap", "must be a positive number of seconds")

    def decoder_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`pocketsphinx.Decoder`, defaults filled in."""
        defaults = default_model_paths()
        options: dict[str, Any] = {
            "hmm": self.model_dir or defaults.model_dir,
            "dict": self.dictionary or defaults.dictionary,
            "loglevel": "ERROR",
        }
        if self.keyphrase is not None:
            options["lm"] = None
            options["keyphrase"] = " ".join(self.keyphrase.split())
            if self.kws_threshold is not None:
                options["kws_threshold"] = self.kws_threshold
        elif self.grammar is not None:
            options["lm"] = None
            options["jsgf"] = self.grammar
        else:
            options["lm"] = self.language_model or defaults.language_model
        return options


# --------------------------------------------------------------------------
# Decoding


class _UtteranceSplitter:
    """Chooses where to close long utterances, with PocketSphinx's VAD.

    Utterances shorter than ``min_s`` seconds are never split; past that,
    the utterance is closed at the end of the first run of ``pause_s`` of
    non-speech; at ``max_s`` it is closed wherever it is (rounded up to the
    VAD's 30 ms frame). Cut points depend only on the audio, not on how it
    is divided into blocks.
    """

    def __init__(self, rate: int, min_s: float, max_s: float, pause_s: float) -> None:
        self._vad: Any = None
        self._frame = 0
        try:
            self._vad = pocketsphinx.Vad(pocketsphinx.Vad.MEDIUM_LOOSE, rate)
            self._frame = int(self._vad.frame_bytes) // 2
        except (ValueError, RuntimeError):  # odd rate: only hard cuts
            self._vad = None
        frame_s = self._frame / rate if self._frame else 0.03
        self._pause_frames = max(1, math.ceil(pause_s / frame_s))
        self._min = int(min_s * rate)
        self._max = max(1, int(max_s * rate))
        self._tail: Int16Array = np.zeros(0, dtype=np.int16)
        self._run = 0
        self._utt_len = 0  # samples of the current utterance fed so far

    def cut_points(self, pcm: Int16Array) -> list[int]:
        """Offsets in ``pcm`` at which to close the current utterance."""
        cuts: list[int] = []
        start = -self._utt_len  # start of the current utterance, pcm coords
        if self._vad is None:
            position = self._max + start
            while position <= len(pcm):
                cuts.append(position)
                start = position
                position += self._max
            self._utt_len = len(pcm) - start
            return cuts
        buffer = np.concatenate((self._tail, pcm)) if len(self._tail) else pcm
        carried = len(self._tail)
        frame = self._frame
        count = len(buffer) // frame
        for index in range(count):
            chunk = buffer[index * frame : (index + 1) * frame]
            self._run = 0 if self._vad.is_speech(chunk.tobytes()) else self._run + 1
            end = (index + 1) * frame - carried
            length = end - start
            if (length >= self._min and self._run >= self._pause_frames) or (length >= self._max):
                cuts.append(end)
                start = end
        self._tail = buffer[count * frame :].copy()
        self._utt_len = len(pcm) - start
        return cuts


class _Pcm(NamedTuple):
    pcm: Int16Array  # mono, at the target rate
    source_frames: int  # source frames consumed so far, this block included


def _to_int16(samples: Float32Array) -> Int16Array:
    scaled = np.rint(samples * np.float32(32768.0))
    pcm: Int16Array = np.clip(scaled, -32768, 32767).astype(np.int16)
    return pcm


def _prime_dictionary() -> str:
    return str(resources.files("voxhub_local").joinpath("cmn_prime.dict"))


def _measure_cmn(options: dict[str, Any], pcm: Int16Array) -> str | None:
    """Cepstral mean of ``pcm`` as PocketSphinx computes it for a whole utterance.

    Uses a feature-only decoder (a one-word silence "dictionary", no search
    is ever run). Returns ``None`` if that is impossible with this model.
    """
    if len(pcm) == 0:
        return None
    try:
        primer: Any = pocketsphinx.Decoder(
            hmm=options["hmm"],
            lm=None,
            dict=_prime_dictionary(),
            keyphrase="sil",
            loglevel="ERROR",
        )
        primer.start_utt()
        primer.process_raw(pcm.tobytes(), no_search=True, full_utt=True)
        return str(primer.get_cmn())
    except (RuntimeError, ValueError, OSError):
        return None


def _is_filler(word: str) -> bool:
    return bool(_FILLER_RE.match(word))


class _Session:
    """One decoder, fed PCM, closing utterances where the splitter says."""

    def __init__(self, decoder: Any, rate: int, frame_rate: float) -> None:
        self._decoder = decoder
        self._rate = rate
        self._frame_rate = frame_rate
        self._splitter = _UtteranceSplitter(
            rate, _MIN_UTTERANCE_SECONDS, _MAX_UTTERANCE_SECONDS, _PAUSE_SECONDS
        )
        self._utt_start = 0  # sample offset of the current utterance
        self._fed = 0
        self.utterances: list[list[WordTiming]] = []
        self._call(decoder.start_utt)

    @staticmethod
    def _call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"PocketSphinx failed: {reason(exc)}") from exc

    def feed(self, pcm: Int16Array) -> None:
        start = 0
        for cut in self._splitter.cut_points(pcm):
            self._process(pcm[start:cut])
            self._close_utterance()
            self._call(self._decoder.start_utt)
            start = cut
        self._process(pcm[start:])

    def finish(self) -> None:
        self._close_utterance()

    def _process(self, pcm: Int16Array) -> None:
        if len(pcm):
            self._call(self._decoder.process_raw, pcm.tobytes())
            self._fed += len(pcm)

    def _close_utterance(self) -> None:
        self._call(self._decoder.end_utt)
        offset = self._utt_start / self._rate
        words: list[WordTiming] = []
        for seg in self._call(self._decoder.seg) or ():  # None: nothing recognised
            word = str(seg.word)
            if _is_filler(word):
                continue
            probability = float(seg.prob)
            if not math.isfinite(probability):
                probability = 0.0
            words.append(
                WordTiming(
                    text=_ALTERNATE_RE.sub("", word),
                    start=offset + int(seg.start_frame) / self._frame_rate,
                    end=offset + (int(seg.end_frame) + 1) / self._frame_rate,
                    confidence=min(1.0, max(0.0, probability)),
                )
            )
        self.utterances.append(words)
        self._utt_start = self._fed


def _make_decoder(options: dict[str, Any]) -> Any:
    try:
        return pocketsphinx.Decoder(**options)
    except (RuntimeError, ValueError) as exc:
        raise EngineError(
            "PocketSphinx could not load the model "
            f"(hmm={options.get('hmm')!r}, dict={options.get('dict')!r}, "
            f"lm={options.get('lm')!r}, jsgf={options.get('jsgf')!r}, "
            f"keyphrase={options.get('keyphrase')!r}): {reason(exc)}"
        ) from exc


def _clamp_word(word: WordTiming, duration: float) -> WordTiming:
    start = min(max(word.start, 0.0), duration)
    end = min(max(word.end, start), duration)
    return attrs.evolve(word, start=start, end=end)


def _segments(utterances: list[list[WordTiming]], gap: float) -> tuple[Segment, ...]:
    segments: list[Segment] = []
    for words in utterances:
        current: list[WordTiming] = []
        for word in words:
            if current and word.start - current[-1].end > gap:
                segments.append(Segment.of_words(current))
                current = []
            current.append(word)
        if current:
            segments.append(Segment.of_words(current))
    return tuple(segments)


def transcribe(
    path: StrPath,
    config: SphinxConfig | None = None,
    *,
    progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> Recognition:
    """Recognise the speech in an audio file.

    The file is streamed: read in blocks of ``common.BLOCK_SECONDS``, downmixed,
    resampled to the model's rate and decoded block by block, so memory does
    not depend on the length of the file. A new decoder is made for every
    call, so calls are independent and may run in parallel threads.

    Args:
        path: WAV, FLAC, OGG/Vorbis or (see :func:`supported_formats`) MP3 file.
        config: Models and search to use; ``None`` means ``SphinxConfig()``,
            the US-English model shipped with pocketsphinx.
        progress: Called with the share of the audio decoded so far, in
            ``[0, 1)`` and never decreasing, then once with ``1.0`` when the
            result is ready. Called in the calling thread.
        cancel: When set (from any thread), decoding stops at the next block
            and :class:`Cancelled` is raised.

    Raises:
        AudioError: The file is missing, unreadable or not a supported format.
        EngineError: PocketSphinx cannot load the models or fails.
        Cancelled: ``cancel`` was set.
    """
    config = config if config is not None else SphinxConfig()
    check_cancel(cancel)
    name = os.fspath(path)
    handle = open_audio(name)
    with handle:
        rate = int(handle.samplerate)
        total = int(handle.frames)
        options = config.decoder_options()
        decoder = _make_decoder(options)
        target_rate = int(float(decoder.config["samprate"]))
        frame_rate = float(decoder.config["frate"])
        blocks = (_Pcm(_to_int16(b.samples), b.source_frames)
                  for b in iter_pcm(handle, name, target_rate, cancel))

        # Collect the first seconds to measure the cepstral mean from.
        primed: list[_Pcm] = []
        primed_samples = 0
        prime_limit = int(_CMN_PRIME_SECONDS * target_rate)
        for block in blocks:
            primed.append(block)
            primed_samples += len(block.pcm)
            if primed_samples >= prime_limit:
                break
        if primed:
            cmn = _measure_cmn(options, np.concatenate([b.pcm for b in primed]))
            if cmn is not None:
                _Session._call(decoder.set_cmn, cmn)

        session = _Session(decoder, target_rate, frame_rate)
        reported = -1.0
        consumed = 0

        def feed(block: _Pcm) -> None:
            nonlocal reported, consumed
            check_cancel(cancel)
            session.feed(block.pcm)
            consumed = block.source_frames
            if progress is not None and total > 0:
                share = block.source_frames / total
                if reported < share < 1.0:
                    reported = share
                    progress(share)

        for block in primed:
            feed(block)
        del primed
        for block in blocks:
            feed(block)
        check_cancel(cancel)
        session.finish()

    duration = consumed / rate
    utterances = [[_clamp_word(word, duration) for word in words] for words in session.utterances]
    words = tuple(word for utterance in utterances for word in utterance)
    result = Recognition(
        text=" ".join(word.text for word in words),
        duration=duration,
        words=words,
        segments=_segments(utterances, config.segment_gap),
        engine="pocketsphinx",
        model=config.decoder_options()["hmm"],
        language=None,
    )
    if progress is not None:
        progress(1.0)
    return result

