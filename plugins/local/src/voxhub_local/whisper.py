"""The Whisper engine of voxhub-local (faster-whisper on CTranslate2), the default.

Bounded memory on long audio: faster-whisper holds the whole decoded file
and its features in memory (about 57 MiB a minute). Here the file is
streamed (:func:`voxhub_local.common.iter_pcm`) and decoded a piece at a
time, so memory holds one piece. How the pieces are cut is
``WhisperConfig.chunking`` (see :mod:`voxhub_local.windows`):

* ``utterances`` (default): one piece per utterance (speech up to a pause
  of at least 0.5 s, once it has lasted 1 s), at most 30 s, each decoded on
  its own like a short clip, its times shifted back; silence of more than a
  second before an utterance is a piece of its own and is not decoded. A
  file that fits in one piece (30 s) is decoded whole. ``tiny.en`` makes as
  few mistakes this way on a long file as on its sentences one by one, at
  about twice the work of ``pauses`` (``bench/RESULTS.md``).
* ``pauses``: pieces of at most 30 s, each ending in the longest pause of
  its last 10 s, found from the signal's energy (:mod:`voxhub_local.pauses`),
  each decoded on its own. Nothing is decoded twice and no text is dropped
  at the joins: every sample belongs to exactly one piece (true of
  ``utterances`` too).
* ``windows``: windows of ``WhisperConfig.window`` seconds, joined in the
  longest pause between decoded words (the earlier method, kept to compare).

Decoding is not conditioned on earlier text (no prompt), within a piece or
across pieces: with it, ``tiny.en`` skips sentences that resemble what it
already wrote on long files.

The model is loaded once per process (a worker keeps it for every job it
runs) and found by :func:`voxhub_local.models.resolve_model`.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
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
from .pauses import Levels
from .windows import (
    GUARD_SECONDS,
    PAUSE_PIECE_SECONDS,
    PAUSE_SEARCH_SECONDS,
    TAIL_LOUD_SECONDS,
    Buffer,
    keep_until_pause,
    utterance_end,
)

__all__ = ["CHUNKINGS", "COMPUTE_TYPES", "DEVICES", "LANGUAGES", "WhisperConfig", "transcribe"]

StrPath = str | os.PathLike[str]
Float32Array = npt.NDArray[np.float32]

SAMPLE_RATE: Final = 16000
#: How long audio is cut (see the module docstring); the first is the default.
CHUNKINGS: Final = ("pauses", "utterances", "windows")
_DEFAULT_WINDOW: Final = {"utterances": PAUSE_PIECE_SECONDS, "pauses": PAUSE_PIECE_SECONDS,
                          "windows": 180.0}
#: A stretch of a piece no segment covers is decoded again when it is this long...
_GAP_SECONDS: Final = 1.0
#: ...and this much of it is louder than the piece's pauses.
_GAP_LOUD_SECONDS: Final = 0.75
#: A segment's edges left out when looking for sound inside it.
_EDGE_SECONDS: Final = 0.1

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
        chunking: How long audio is cut: ``pauses`` (pieces of at most
            ``window`` seconds, cut in pauses, each decoded alone) or
            ``windows`` (windows of ``window`` seconds joined between words).
        window: Longest piece (``pauses``: 10-30 s, default 30) or window
            (``windows``: 10-3600 s, default 180) decoded at a time; ``None``
            means the default of ``chunking``.
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
    chunking: str = "utterances"
    window: float | None = attrs.field(default=None, converter=_optional_float)
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
        if self.chunking not in CHUNKINGS:
            raise ConfigError("chunking", f"{self.chunking!r} is not one of "
                              f"{', '.join(CHUNKINGS)}")
        if self.window is not None:
            longest = 3600.0 if self.chunking == "windows" else PAUSE_PIECE_SECONDS
            if not (math.isfinite(self.window) and 10.0 <= self.window <= longest):
                raise ConfigError("window", f"must be between 10 and {longest:g} seconds "
                                  f"with chunking {self.chunking}")
        if self.segment_gap is not None and not (
            math.isfinite(self.segment_gap) and self.segment_gap > 0
        ):
            raise ConfigError("segment_gap", "must be a positive number of seconds")

    @property
    def window_seconds(self) -> float:
        """``window``, or the default of ``chunking`` when it is ``None``."""
        return self.window if self.window is not None else _DEFAULT_WINDOW[self.chunking]

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
# Results of one piece or window


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


def _converted(found: list[Any], offset: float, end: float) -> list[Segment]:
    """faster-whisper's segments of audio starting at ``offset``, on the file's clock."""
    return [segment for item in found
            if (segment := _segment(item, offset, end)) is not None]


def _heard(segment: Segment, levels: Levels, offset: float) -> bool:
    """Whether the piece measured by ``levels`` (from ``offset``) has sound inside ``segment``.

    Its edges are left out (word times are not exact), but never all of it.
    """
    start, end = segment.start - offset, segment.end - offset
    margin = min(_EDGE_SECONDS, (end - start) / 4)
    return levels.loud_seconds(start + margin, end - margin) > 0.0


def transcribe(
    path: StrPath,
    config: WhisperConfig | None = None,
    *,
    progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> Recognition:
    """Recognise the speech in an audio file with Whisper, piece by piece.

    Args:
        path: WAV, FLAC, OGG/Vorbis or (see ``supported_formats``) MP3 file.
        config: Model and decoding options; ``None`` means ``WhisperConfig()``
            (``tiny.en`` on the CPU).
        progress: Called with the share of the audio decoded so far, in
            ``[0, 1)`` and never decreasing (after every decoded segment of a
            piece or window), then once with ``1.0``. Called in the calling thread.
        cancel: When set (from any thread), decoding stops at the next
            segment (at most 30 s of audio) and :class:`~voxhub_local.common.Cancelled` is raised.

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
        state.run(Buffer(iter_pcm(handle, name, SAMPLE_RATE, cancel)))
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
    """One file's decoding, piece (or window) after piece."""

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

    def run(self, buffer: Buffer) -> None:
        """Decode the whole stream, one piece (or window) after another."""
        seconds = self._config.window_seconds
        window = int(seconds * SAMPLE_RATE)
        chunking = self._config.chunking
        search = min(PAUSE_SEARCH_SECONDS, seconds / 2)
        while True:
            buffer.fill(window + 1)  # one sample more tells a last piece from a full one
            audio = buffer.head(window)
            if len(audio) == 0:
                return
            final = buffer.exhausted and buffer.size <= window
            offset = buffer.base / SAMPLE_RATE
            if chunking != "windows":
                levels = Levels.of(audio, SAMPLE_RATE)
                # A file that fits in one piece is decoded whole, as faster-whisper would.
                if chunking == "utterances" and not (final and offset == 0):
                    end, final = utterance_end(levels, len(audio), seconds, final)
                else:
                    end = len(audio) if final else levels.find_cut(seconds, search)
                audio = audio[:end]
                self.segments += self._piece(audio, offset, levels)
                cut = len(audio) / SAMPLE_RATE
            else:
                length = len(audio) / SAMPLE_RATE
                found = self._decode(audio, offset)
                self.windows += 1
                if final:
                    kept, cut = found, length
                else:
                    kept, stop = keep_until_pause(found, length - GUARD_SECONDS)
                    cut = stop if stop is not None and stop > 0 else length - GUARD_SECONDS
                self.segments += _converted(kept, offset, min(self._duration, offset + length))
            if final:
                return
            buffer.drop(round(cut * SAMPLE_RATE))
            self._report(buffer.base / SAMPLE_RATE / self._duration if self._duration else 0.0)

    def _piece(self, audio: Float32Array, offset: float, levels: Levels) -> list[Segment]:
        """A piece's segments, less any made up over silence, plus any speech left out.

        Whisper sometimes writes a stock phrase over the silence at a piece's
        end, or starts its text a sentence late. A segment without a loud
        frame inside is dropped; a stretch of at least ``_GAP_SECONDS`` that
        no segment covers but that holds ``_GAP_LOUD_SECONDS`` of sound is
        decoded again on its own (once: what that finds is kept as it is).
        """
        length = len(audio) / SAMPLE_RATE
        end = min(self._duration, offset + length)
        self.windows += 1
        if levels.loud_seconds(0.0, length) < TAIL_LOUD_SECONDS:
            return []  # silence (or a click): Whisper would only make text up
        found = [s for s in _converted(self._decode(audio, offset, levels), offset, end)
                 if _heard(s, levels, offset)]
        if not found:
            return found  # nothing at all: decoding the same audio again would not help
        edges = [offset, *(t for s in found for t in (s.start, s.end)), end]
        for start, stop in zip(edges[0::2], edges[1::2], strict=True):
            if (stop - start >= _GAP_SECONDS
                    and levels.loud_seconds(start - offset, stop - offset) >= _GAP_LOUD_SECONDS):
                part = audio[round((start - offset) * SAMPLE_RATE):
                             round((stop - offset) * SAMPLE_RATE)]
                found += [s for s in _converted(self._decode(part, start), start, stop)
                          if _heard(s, levels, offset)]
        return sorted(found, key=lambda s: s.start)

    def _decode(self, audio: Float32Array, offset: float,
                levels: Levels | None = None) -> list[Any]:
        """faster-whisper's segments of ``audio``, which starts at ``offset`` in the file.

        With ``levels`` (those of ``audio``), decoding stops once what is
        left after a segment holds less than ``TAIL_LOUD_SECONDS`` of sound:
        faster-whisper would otherwise decode that rest (often a fraction of
        a second of silence) in a pass of its own, which costs as much as a
        full 30-second one and tends to make text up.
        """
        config = self._config
        length = len(audio) / SAMPLE_RATE
        try:
            found, info = self._model.transcribe(
                audio, language=self.language, beam_size=config.beam_size,
                word_timestamps=config.word_timestamps, vad_filter=config.vad,
                # No conditioning on earlier text, within or across pieces: with it,
                # tiny.en skips sentences that resemble what it already wrote (WER 22 %
                # instead of 5 % on 6 minutes of the samples in turn; bench/RESULTS.md).
                condition_on_previous_text=False,
            )
            if self.language is None:
                # Detected once, on the first piece, and kept for the rest of the file.
                self.language = str(info.language)
                self.language_probability = float(info.language_probability)
            segments: list[Any] = []
            for segment in found:  # a generator: each 30-second step is decoded here
                check_cancel(self._cancel)
                segments.append(segment)
                end = min(float(segment.end), length)
                self._report((offset + end) / self._duration if self._duration else 0.0)
                if levels is not None and levels.loud_seconds(end, length) < TAIL_LOUD_SECONDS:
                    found.close()
                    break
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"faster-whisper failed: {reason(exc)}") from exc
        return segments

    def _report(self, share: float) -> None:
        if self._progress is not None and self._reported < share < 1.0:
            self._reported = share
            self._progress(share)
