"""The Whisper engine of voxhub-local (faster-whisper on CTranslate2), the default.

Bounded memory on long audio: faster-whisper holds the whole decoded file
and its features in memory (about 57 MiB a minute). Here the file is
streamed (:func:`voxhub_local.common.iter_pcm`) and decoded in windows of
``WhisperConfig.window`` seconds, so memory holds one window at a time.

Joins: the text of a window's last seconds may be cut mid-word, so only the
segments that end at least ``_GUARD_SECONDS`` before the window's end are
kept, and the next window starts exactly where the last kept segment ended
(Whisper's own way of moving from one 30-second chunk to the next). Nothing
between two windows is skipped and nothing is decoded twice into the result.
Decoding is not conditioned on earlier text (no prompt), within a window or
across windows: with it, ``tiny.en`` skips sentences that resemble what it
already wrote on long files.

The model is loaded once per process (a worker keeps it for every job it
runs) and found by :func:`voxhub_local.models.resolve_model`.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from .common import (
    ConfigError,
    EngineError,
    Recognition,
    Segment,
    WordTiming,
    check_cancel,
    clamp,
    iter_pcm,
    open_audio,
    reason,
    split_at_pauses,
)
from .models import ResolvedModel, resolve_model

__all__ = ["COMPUTE_TYPES", "DEVICES", "LANGUAGES", "WhisperConfig", "transcribe"]

StrPath = str | os.PathLike[str]
Float32Array = npt.NDArray[np.float32]

SAMPLE_RATE: Final = 16000
#: Text ending less than this before a window's end is decoded again in the next one.
_GUARD_SECONDS: Final = 3.0
#: The cut between two windows is looked for in this many seconds before the guard
#: (or the window's second half, if shorter): late enough that little is decoded twice.
_CUT_SEARCH_SECONDS: Final = 15.0

DEVICES: Final = ("cpu", "cuda", "auto")
COMPUTE_TYPES: Final = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                        "float16", "bfloat16", "float32", "default", "auto")
_GPU_ONLY_TYPES: Final = frozenset({"int8_float16", "int8_bfloat16", "float16", "bfloat16"})
#: Whisper's language codes (``faster_whisper.tokenizer._LANGUAGE_CODES``), kept here so
#: that validating a request imports nothing heavy.
LANGUAGES: Final = frozenset({
    "af", "am", "ar", "as", "az", "ba", "be", "bg", "bn", "bo", "br", "bs", "ca", "cs",
    "cy", "da", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fo", "fr", "gl", "gu",
    "ha", "haw", "he", "hi", "hr", "ht", "hu", "hy", "id", "is", "it", "ja", "jw", "ka",
    "kk", "km", "kn", "ko", "la", "lb", "ln", "lo", "lt", "lv", "mg", "mi", "mk", "ml",
    "mn", "mr", "ms", "mt", "my", "ne", "nl", "nn", "no", "oc", "pa", "pl", "ps", "pt",
    "ro", "ru", "sa", "sd", "si", "sk", "sl", "sn", "so", "sq", "sr", "su", "sv", "sw",
    "ta", "te", "tg", "th", "tk", "tl", "tr", "tt", "uk", "ur", "uz", "vi", "yi", "yo",
    "zh", "yue",
})


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


@attrs.frozen(kw_only=True)
class WhisperConfig:
    """What Whisper recognises with (engine ``whisper``). Bad values raise :class:`ConfigError`.

    Attributes:
        model: A model name (``tiny.en``, ``base``, ``small``...) or a folder
            holding a CTranslate2 conversion; see :mod:`voxhub_local.models`.
        device: ``cpu``, ``cuda`` or ``auto`` (CUDA when CTranslate2 sees a GPU).
        compute_type: CTranslate2 quantization; ``None`` means ``int8`` on
            the CPU, ``float16`` on CUDA and ``auto`` for device ``auto``.
        threads: CPU threads of one decoding; 0 means the CPUs this process may use.
        beam_size: Beam search width (1 is greedy).
        language: Whisper language code; ``None`` detects it (multilingual
            models) or means English (``.en`` models).
        word_timestamps: Word times and probabilities (for SRT/VTT and
            word-level confidences); turning them off is ~10 % faster.
        vad: Skip non-speech with faster-whisper's Silero VAD first.
        window: Seconds of audio decoded at a time (bounds memory).
        segment_gap: Also start a new segment where two words are more
            than this many seconds apart (``None``: Whisper's segments as they are).
    """

    model: str = "tiny.en"
    device: str = "cpu"
    compute_type: str | None = None
    threads: int = attrs.field(default=0, converter=int)
    beam_size: int = attrs.field(default=5, converter=int)
    language: str | None = None
    word_timestamps: bool = True
    vad: bool = False
    window: float = attrs.field(default=180.0, converter=float)
    segment_gap: float | None = attrs.field(default=None, converter=_optional_float)

    def __attrs_post_init__(self) -> None:
        if not self.model.strip():
            raise ConfigError("model", "must not be empty")
        if self.device not in DEVICES:
            raise ConfigError("device", f"{self.device!r} is not one of {', '.join(DEVICES)}")
        if self.compute_type is not None:
            if self.compute_type not in COMPUTE_TYPES:
                raise ConfigError("compute_type", f"{self.compute_type!r} is not one of "
                                  f"{', '.join(COMPUTE_TYPES)}")
            if self.device == "cpu" and self.compute_type in _GPU_ONLY_TYPES:
                raise ConfigError("compute_type", f"{self.compute_type} needs device cuda; "
                                  "on the CPU use int8, int8_float32, int16 or float32")
        if not 0 <= self.threads <= 256:
            raise ConfigError("threads", "must be between 0 (all usable CPUs) and 256")
        if not 1 <= self.beam_size <= 20:
            raise ConfigError("beam_size", "must be between 1 and 20")
        if self.language is not None and self.language not in LANGUAGES:
            raise ConfigError("language", f"{self.language!r} is not a Whisper language code")
        if not (math.isfinite(self.window) and 10.0 <= self.window <= 3600.0):
            raise ConfigError("window", "must be between 10 and 3600 seconds")
        if self.segment_gap is not None and not (
            math.isfinite(self.segment_gap) and self.segment_gap > 0
        ):
            raise ConfigError("segment_gap", "must be a positive number of seconds")

    def resolve(self) -> ResolvedModel:
        """The model this configuration runs, checked against ``language`` and ``device``.

        Nothing is downloaded; raises :class:`ConfigError` (see
        :func:`~voxhub_local.models.resolve_model`).
        """
        resolved = resolve_model(self.model)
        if resolved.english_only and self.language not in (None, "en"):
            raise ConfigError("language", f"model {self.model!r} recognises English only; "
                              "for other languages use a multilingual model such as base")
        if self.device == "cuda" and _cuda_devices() == 0:
            raise ConfigError("device", "cuda asked for, but CTranslate2 sees no CUDA device "
                              "(use device cpu or auto)")
        return resolved


def _cuda_devices() -> int:
    import ctranslate2  # only when a GPU is asked for

    try:
        return int(ctranslate2.get_cuda_device_count())
    except RuntimeError:  # no CUDA driver at all
        return 0


def _threads(requested: int) -> int:
    if requested:
        return requested
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------
# The model, once per process

_MODEL_LOCK = threading.Lock()
_LOADED: dict[tuple[str, str, str, int], Any] = {}


def _placement(config: WhisperConfig) -> tuple[str, str]:
    device = config.device
    if device == "auto":
        device = "cuda" if _cuda_devices() > 0 else "cpu"
    compute = config.compute_type or {"cpu": "int8", "cuda": "float16"}[device]
    return device, compute


def load_model(resolved: ResolvedModel, config: WhisperConfig) -> Any:
    """The ``faster_whisper.WhisperModel`` for this configuration, loaded once per process.

    Only the most recently used model is kept, so a worker switching models
    does not pile them up in memory. A model that is not on this machine is
    downloaded into faster-whisper's cache here (never while offline:
    :meth:`WhisperConfig.resolve` refused it already).
    """
    device, compute = _placement(config)
    threads = _threads(config.threads)
    source = resolved.path or resolved.name
    key = (source, device, compute, threads)
    with _MODEL_LOCK:
        model = _LOADED.get(key)
        if model is None:
            from faster_whisper import WhisperModel

            _LOADED.clear()
            try:
                model = WhisperModel(source, device=device, compute_type=compute,
                                     cpu_threads=threads, num_workers=1,
                                     local_files_only=resolved.source != "download")
            except (RuntimeError, ValueError, OSError) as exc:
                raise EngineError(f"faster-whisper could not load model {source!r} "
                                  f"(device {device}, compute type {compute}): "
                                  f"{reason(exc)}") from exc
            _LOADED[key] = model
        return model


def _seed() -> None:
    # Whisper falls back to sampling on hard audio: a fixed seed makes the same
    # file give the same text every time (the sandboxes compare texts).
    import ctranslate2

    ctranslate2.set_random_seed(0)


# --------------------------------------------------------------------------
# Windows


class _Buffer:
    """Streamed 16 kHz samples, of which the first ``window`` are looked at."""

    def __init__(self, blocks: Any) -> None:
        self._blocks = blocks
        self._parts: deque[Float32Array] = deque()
        self.size = 0
        self.base = 0  # absolute sample offset of the first buffered sample
        self.exhausted = False

    def fill(self, wanted: int) -> None:
        while self.size < wanted and not self.exhausted:
            block = next(self._blocks, None)
            if block is None:
                self.exhausted = True
            elif len(block.samples):
                self._parts.append(block.samples)
                self.size += len(block.samples)

    def head(self, count: int) -> Float32Array:
        joined = np.concatenate(list(self._parts)) if self._parts else np.zeros(0, np.float32)
        self._parts = deque([joined]) if len(joined) else deque()
        return joined[:count]

    def drop(self, count: int) -> None:
        count = min(count, self.size)
        joined = self.head(self.size)
        rest = joined[count:]
        self._parts = deque([rest]) if len(rest) else deque()
        self.size -= count
        self.base += count


def _words(segment: Any, offset: float, limit: float) -> list[WordTiming]:
    """The segment's words; a piece without a leading space (``'clock``) joins the one before."""
    merged: list[list[Any]] = []  # [text, start, end, probability]
    for w in segment.words or ():
        raw = str(w.word)
        if merged and raw.strip() and not raw.startswith(" "):
            last = merged[-1]
            last[0], last[2], last[3] = last[0] + raw, w.end, min(last[3], w.probability)
        elif raw.strip():
            merged.append([raw.strip(), w.start, w.end, w.probability])
    result: list[WordTiming] = []
    for text, start, end, probability in merged:
        begin = clamp(offset + start, 0.0, limit)
        result.append(WordTiming(text=text, start=begin, end=clamp(offset + end, begin, limit),
                                 confidence=clamp(probability, 0.0, 1.0)))
    return result


def _segment(segment: Any, offset: float, limit: float) -> Segment | None:
    text = str(segment.text).strip()
    if not text:
        return None
    start = clamp(offset + segment.start, 0.0, limit)
    end = clamp(offset + segment.end, start, limit)
    confidence = clamp(math.exp(float(segment.avg_logprob)), 0.0, 1.0)
    return Segment(tuple(_words(segment, offset, limit)), text, start, end, confidence)


def _keep(found: Sequence[Any], limit: float) -> tuple[list[Any], float | None]:
    """Segments of a non-final window to keep, and where the next window starts.

    ``limit`` is the window's length less the guard. The cut goes in the
    longest pause between two words in the last ``_CUT_SEARCH_SECONDS`` before
    ``limit`` (the next window then starts in silence, not mid-word, and what
    follows the cut, decoded again by the next window, is short), taking the
    kept words' segments whole and the segment it falls in partly. Without
    word times, whole segments ending by ``limit`` are kept. ``None``: nothing
    was kept, start again at ``limit``.
    """
    timed = [(index, word) for index, segment in enumerate(found)
             for word in (segment.words or ())]
    if timed:
        best: tuple[float, int] | None = None  # (pause, position in timed)
        earliest = limit - min(_CUT_SEARCH_SECONDS, limit / 2)
        for position in range(len(timed) - 1):
            word, following = timed[position][1], timed[position + 1][1]
            if earliest <= word.end <= limit:
                pause = float(following.start) - float(word.end)
                if best is None or pause > best[0]:
                    best = (pause, position)
        if best is None:  # no word ends in the search span: the last one ending by the limit
            ending = [p for p, (_, w) in enumerate(timed) if w.end <= limit]
            best = (0.0, ending[-1]) if ending else None
        if best is not None:
            pause, position = best
            index, last = timed[position]
            words = [w for i, w in timed[: position + 1] if i == index]
            kept = list(found[:index])
            if words:
                kept.append(_Part.of(found[index], words))
            return kept, float(last.end) + max(0.0, pause) / 2
    kept = [s for s in found if s.end <= limit]
    if kept:
        return kept, float(kept[-1].end)
    return [], None


@attrs.frozen
class _Part:
    """The parts of a faster-whisper segment this module reads (to keep part of one)."""

    start: float
    end: float
    text: str
    avg_logprob: float
    words: Sequence[Any]

    @classmethod
    def of(cls, segment: Any, words: Sequence[Any]) -> _Part:
        """``segment`` up to the last of ``words`` (a prefix of its words)."""
        if len(words) == len(segment.words or ()):
            return cls(segment.start, segment.end, segment.text, segment.avg_logprob, words)
        return cls(segment.start, words[-1].end, "".join(w.word for w in words),
                   segment.avg_logprob, words)


def transcribe(
    path: StrPath,
    config: WhisperConfig | None = None,
    *,
    progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> Recognition:
    """Recognise the speech in an audio file with Whisper, window by window.

    Args:
        path: WAV, FLAC, OGG/Vorbis or (see ``supported_formats``) MP3 file.
        config: Model and decoding options; ``None`` means ``WhisperConfig()``
            (``tiny.en`` on the CPU).
        progress: Called with the share of the audio decoded so far, in
            ``[0, 1)`` and never decreasing (after every decoded chunk of a
            window), then once with ``1.0``. Called in the calling thread.
        cancel: When set (from any thread), decoding stops at the next chunk
            (30 s of audio) and :class:`~voxhub_local.common.Cancelled` is raised.

    Raises:
        AudioError: The file is missing, unreadable or not a supported format.
        ConfigError: The model cannot be found (offline) or does not fit ``language``.
        EngineError: faster-whisper cannot load the model or fails.
        Cancelled: ``cancel`` was set.
    """
    config = config if config is not None else WhisperConfig()
    check_cancel(cancel)
    name = os.fspath(path)
    handle = open_audio(name)
    with handle:
        duration = int(handle.frames) / int(handle.samplerate)
        resolved = config.resolve()
        model = load_model(resolved, config)
        _seed()
        state = _Decoding(model, config, duration, progress, cancel)
        state.run(_Buffer(iter_pcm(handle, name, SAMPLE_RATE, cancel)))
    segments = tuple(state.segments)
    if config.segment_gap is not None:
        segments = tuple(p for s in segments for p in split_at_pauses(s, config.segment_gap))
    result = Recognition(
        text=" ".join(s.text for s in segments),
        duration=duration,
        words=tuple(w for s in segments for w in s.words),
        segments=segments,
        engine="whisper",
        model=resolved.name,
        language=state.language,
        language_probability=state.language_probability,
        windows=state.windows,
    )
    if progress is not None:
        progress(1.0)
    return result


class _Decoding:
    """One file's decoding, window after window."""

    def __init__(self, model: Any, config: WhisperConfig, duration: float,
                 progress: Callable[[float], None] | None,
                 cancel: threading.Event | None) -> None:
        self._model = model
        self._config = config
        self._duration = duration
        self._progress = progress
        self._cancel = cancel
        self._reported = -1.0
        self.language = config.language
        self.language_probability: float | None = None
        self.segments: list[Segment] = []
        self.windows = 0

    def run(self, buffer: _Buffer) -> None:
        window = int(self._config.window * SAMPLE_RATE)
        while True:
            buffer.fill(window)
            audio = buffer.head(window)
            if len(audio) == 0:
                return
            final = buffer.exhausted and buffer.size <= window
            offset = buffer.base / SAMPLE_RATE
            length = len(audio) / SAMPLE_RATE
            found = self._decode(audio, offset)
            if final:
                kept, cut = list(found), length
            else:
                kept, stop = _keep(found, length - _GUARD_SECONDS)
                cut = stop if stop is not None and stop > 0 else length - _GUARD_SECONDS
            for item in kept:
                segment = _segment(item, offset, self._duration)
                if segment is not None:
                    self.segments.append(segment)
            if final:
                return
            buffer.drop(round(cut * SAMPLE_RATE))

    def _decode(self, audio: Float32Array, offset: float) -> list[Any]:
        config = self._config
        self.windows += 1
        try:
            found, info = self._model.transcribe(
                audio, language=self.language, beam_size=config.beam_size,
                word_timestamps=config.word_timestamps, vad_filter=config.vad,
                # No conditioning on earlier text, within or across windows: with it,
                # tiny.en skips sentences that resemble what it already wrote (WER 22 %
                # instead of 5 % on 6 minutes of the samples in turn; bench/RESULTS.md).
                condition_on_previous_text=False,
            )
            if self.language is None:
                # Detected once, on the first window, and kept for the rest of the file.
                self.language = str(info.language)
                self.language_probability = float(info.language_probability)
            segments: list[Any] = []
            for segment in found:  # a generator: each 30-second chunk is decoded here
                check_cancel(self._cancel)
                segments.append(segment)
                self._report((offset + min(float(segment.end), len(audio) / SAMPLE_RATE))
                             / self._duration if self._duration else 0.0)
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"faster-whisper failed: {reason(exc)}") from exc
        return segments

    def _report(self, share: float) -> None:
        if self._progress is not None and self._reported < share < 1.0:
            self._reported = share
            self._progress(share)
