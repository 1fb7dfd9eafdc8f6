"""What both engines share: errors, results and streaming audio input.

Self-contained (no voxhub import, no engine import): the worker processes,
the provider and both engines use it.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final, NamedTuple

import attrs
import numpy as np
import numpy.typing as npt

# No stubs: the workspace mypy config ignores missing imports for these.
import soundfile
import soxr

from .errors import AudioError, Cancelled, ConfigError, EngineError

__all__ = [
    "AudioError",
    "AudioInfo",
    "Cancelled",
    "ConfigError",
    "EngineError",
    "PcmBlock",
    "Recognition",
    "Segment",
    "WordTiming",
    "audio_info",
    "check_cancel",
    "check_path",
    "iter_pcm",
    "open_audio",
    "reason",
    "split_at_pauses",
    "supported_formats",
]

Float32Array = npt.NDArray[np.float32]
StrPath = str | os.PathLike[str]

#: Length of each block read from the audio file, in seconds of source audio.
#: Bounds memory, and how long ``cancel`` may take to be noticed by PocketSphinx.
BLOCK_SECONDS: Final = 0.5


# --------------------------------------------------------------------------
# Errors (defined in errors.py, which imports nothing heavy)


def reason(exc: BaseException) -> str:
    """An exception's message, or its type name when it has none."""
    text = str(exc).strip()
    return text or type(exc).__name__


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("transcription cancelled")


# --------------------------------------------------------------------------
# Results


@attrs.frozen
class WordTiming:
    """One recognised word.

    Attributes:
        text: The word (Whisper: with its punctuation; PocketSphinx: lower
            case, without the alternate-pronunciation suffix).
        start: Start time in seconds from the beginning of the audio.
        end: End time in seconds, ``start <= end <= duration``.
        confidence: The engine's probability of the word, in ``[0, 1]``
            (Whisper: the token probabilities of the word; PocketSphinx: the
            posterior probability over its lattice, ``1.0`` for keyword and
            grammar searches, which build none).
    """

    text: str
    start: float
    end: float
    confidence: float


@attrs.frozen
class Segment:
    """A stretch of speech: its words, text, times and (Whisper) confidence.

    Attributes:
        words: The words, in order (empty when word timestamps are off).
        text: The segment's text.
        start: Start in seconds.
        end: End in seconds.
        confidence: ``exp`` of Whisper's average token log-probability for the
            segment, in ``[0, 1]``; ``None`` for PocketSphinx, which gives none.
    """

    words: tuple[WordTiming, ...]
    text: str
    start: float
    end: float
    confidence: float | None = None

    @classmethod
    def of_words(cls, words: Iterable[WordTiming], confidence: float | None = None) -> Segment:
        """A segment made of ``words`` (text joined by spaces, times of the ends)."""
        items = tuple(words)
        return cls(items, " ".join(w.text for w in items),
                   items[0].start if items else 0.0, items[-1].end if items else 0.0,
                   confidence)


@attrs.frozen
class Recognition:
    """The result of ``transcribe``.

    Attributes:
        text: The segments' texts joined with single spaces.
        duration: Length of the audio in seconds.
        words: Every recognised word, in order.
        segments: The segments, in order.
        engine: ``"whisper"`` or ``"pocketsphinx"``.
        model: What recognised it (a Whisper model name or folder; the
            PocketSphinx acoustic model folder).
        language: The language of the text (given, or detected by a
            multilingual Whisper model), ``None`` if unknown.
        language_probability: The detector's probability for ``language``
            (``None`` when the language was given or not detected).
        windows: How many windows the audio was decoded in (Whisper; 1 for
            PocketSphinx).
    """

    text: str
    duration: float
    words: tuple[WordTiming, ...]
    segments: tuple[Segment, ...]
    engine: str = "pocketsphinx"
    model: str = ""
    language: str | None = None
    language_probability: float | None = None
    windows: int = 1


def split_at_pauses(segment: Segment, gap: float) -> list[Segment]:
    """``segment`` cut where two consecutive words are more than ``gap`` seconds apart."""
    if len(segment.words) < 2:
        return [segment]
    parts: list[list[WordTiming]] = [[segment.words[0]]]
    for word in segment.words[1:]:
        if word.start - parts[-1][-1].end > gap:
            parts.append([])
        parts[-1].append(word)
    if len(parts) == 1:
        return [segment]
    return [Segment.of_words(part, segment.confidence) for part in parts]


def clamp(value: float, low: float, high: float) -> float:
    """``value`` limited to ``[low, high]`` (NaN becomes ``low``)."""
    value = float(value)  # numpy scalars from the engines become plain floats
    if not math.isfinite(value):
        return float(low)
    return float(min(high, max(low, value)))


# --------------------------------------------------------------------------
# Audio


class AudioInfo(NamedTuple):
    """What :func:`audio_info` reports about an audio file."""

    duration: float
    samplerate: int
    channels: int
    format: str


def supported_formats() -> frozenset[str]:
    """Major formats the bundled libsndfile reads (``"WAV"``, ``"FLAC"``, ``"MP3"``...)."""
    formats: dict[str, str] = soundfile.available_formats()
    return frozenset(formats)


def check_path(path: StrPath) -> str:
    """``path`` as a string, or :class:`AudioError` if it is missing or a directory."""
    name = os.fspath(path)
    if not Path(name).exists():
        raise AudioError(name, "file does not exist")
    if Path(name).is_dir():
        raise AudioError(name, "is a directory")
    return name


def audio_info(path: StrPath) -> AudioInfo:
    """Return duration (s), sampling rate, channels and major format of a file.

    Only the header is read (``soundfile.info``). Raises :class:`AudioError`
    if the file cannot be read or is not a supported audio format.
    """
    name = check_path(path)
    try:
        info = soundfile.info(name)
    except (RuntimeError, OSError, TypeError, ValueError) as exc:
        raise AudioError(name, reason(exc)) from exc
    samplerate = int(info.samplerate)
    frames = int(info.frames)
    duration = frames / samplerate if samplerate > 0 else 0.0
    return AudioInfo(duration, samplerate, int(info.channels), str(info.format))


def open_audio(path: StrPath) -> Any:
    """An open ``soundfile.SoundFile`` (a context manager), or :class:`AudioError`."""
    name = check_path(path)
    try:
        handle: Any = soundfile.SoundFile(name)
    except (RuntimeError, OSError, TypeError, ValueError) as exc:
        raise AudioError(name, reason(exc)) from exc
    if int(handle.samplerate) <= 0 or int(handle.channels) <= 0:
        handle.close()
        raise AudioError(name, "no audio channels or invalid sampling rate")
    return handle


class PcmBlock(NamedTuple):
    """A block of mono float32 samples at the target rate, and how far the source was read."""

    samples: Float32Array
    source_frames: int  # source frames consumed so far, this block included


def iter_pcm(
    handle: Any,
    name: str,
    target_rate: int,
    cancel: threading.Event | None,
) -> Iterator[PcmBlock]:
    """Stream an open ``soundfile.SoundFile`` as mono float32 at ``target_rate``.

    Blocks of :data:`BLOCK_SECONDS` of source audio are downmixed and
    resampled with a streaming ``soxr`` resampler, so memory does not depend
    on the length of the file.
    """
    rate = int(handle.samplerate)
    channels = int(handle.channels)
    block_frames = max(1, int(rate * BLOCK_SECONDS))
    resampler: Any = None
    if rate != target_rate:
        resampler = soxr.ResampleStream(rate, target_rate, 1, dtype="float32", quality="HQ")
    consumed = 0
    while True:
        check_cancel(cancel)
        try:
            block: Float32Array = handle.read(block_frames, dtype="float32", always_2d=True)
        except (RuntimeError, OSError, ValueError) as exc:
            raise AudioError(name, reason(exc)) from exc
        frames = int(block.shape[0])
        last = frames < block_frames
        if channels == 1:
            mono: Float32Array = np.ascontiguousarray(block[:, 0])
        else:
            mono = block.mean(axis=1, dtype=np.float32)
        if resampler is not None:
            mono = resampler.resample_chunk(mono, last=last)
        consumed += frames
        yield PcmBlock(mono, consumed)
        if last:
            return
