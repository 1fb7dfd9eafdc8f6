"""Audio facts read locally: container format (by magic bytes), duration, silence.

Shared by the provider (limits checked before any upload) and the sandbox
(the same checks answered with NHN's result codes). Only headers and, for the
silence test, decoded samples are read; nothing here needs ffmpeg.
"""

from __future__ import annotations

import contextlib
import io
import struct
import wave
from pathlib import Path
from typing import IO, Any

import attrs

__all__ = [
    "FORMATS",
    "AudioInfo",
    "describe_formats",
    "probe",
    "sniff_format",
]

#: NHN's supported formats (docs: WAV, WebM, MP3, OGG, FLAC, AAC, AC3).
FORMATS: tuple[str, ...] = ("wav", "webm", "mp3", "ogg", "flac", "aac", "ac3")

#: What NHN reports as ``fileType`` for each (ffmpeg decoder names, as in ``mp3float``).
DECODER_NAMES: dict[str, str] = {
    "wav": "pcm_s16le",
    "webm": "opus",
    "mp3": "mp3float",
    "ogg": "vorbis",
    "flac": "flac",
    "aac": "aac",
    "ac3": "ac3",
}

#: Bytes read from the start of a file to recognise its format.
SNIFF_BYTES = 64


def describe_formats() -> str:
    return ", ".join(f.upper() if f != "webm" else "WebM" for f in FORMATS)


def sniff_format(head: bytes) -> str | None:
    """The container format of a file from its first bytes, or ``None`` when unsupported.

    Magic bytes rather than extensions: NHN detects the type from content, and a
    mislabelled file should be judged as NHN would judge it.
    """
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"  # EBML header (WebM / Matroska)
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:3] == b"ID3":
        return "mp3"
    if head[:4] == b"ADIF":
        return "aac"
    if head[:2] == b"\x0b\x77":
        return "ac3"
    if len(head) >= 2 and head[0] == 0xFF:
        second = head[1]
        if second & 0xF6 == 0xF0:  # ADTS sync word, layer bits 00
            return "aac"
        if second & 0xE0 == 0xE0 and second & 0x06 != 0:  # MPEG audio frame sync, layer I-III
            return "mp3"
    return None


@attrs.frozen
class AudioInfo:
    """What could be learnt locally; ``duration``/``silent`` are ``None`` when unreadable."""

    format: str | None
    size: int
    duration: float | None = None
    silent: bool | None = None
    decodable: bool | None = None

    @property
    def file_type(self) -> str:
        """NHN's ``fileType`` for this audio (decoder name)."""
        return DECODER_NAMES.get(self.format or "", self.format or "unknown")


def probe(source: Path | bytes, *, check_silence: bool = False) -> AudioInfo:
    """Format, size and (where readable) duration of a file or an in-memory upload.

    Duration comes from ``soundfile`` (WAV, FLAC, OGG, MP3) or the ``wave``
    module; WebM, AAC and AC3 are not readable locally and give ``None``.
    ``decodable`` is ``False`` when a readable format failed to decode.
    """
    if isinstance(source, Path):
        size = source.stat().st_size
        with source.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
    else:
        size = len(source)
        head = source[:SNIFF_BYTES]
    fmt = sniff_format(head)
    if fmt is None or fmt in ("webm", "aac", "ac3") or size == 0:
        return AudioInfo(fmt, size)
    duration, silent = _read(source, check_silence)
    return AudioInfo(fmt, size, duration, silent, decodable=duration is not None)


def _open(source: Path | bytes) -> Any:
    return source if isinstance(source, Path) else io.BytesIO(source)


def _read(source: Path | bytes, check_silence: bool) -> tuple[float | None, bool | None]:
    try:
        import soundfile
    except (ImportError, OSError):  # libsndfile missing: fall back to the wave module
        return _read_wave(source, check_silence)
    try:
        info = soundfile.info(_open(source))
        duration = float(info.frames) / float(info.samplerate) if info.samplerate else None
        silent: bool | None = None
        if check_silence and duration:
            data, _rate = soundfile.read(_open(source), frames=min(info.frames, 48_000 * 60),
                                         dtype="float32", always_2d=True)
            silent = bool(data.size == 0 or float(abs(data).max()) < 1e-3)
        return duration, silent
    except (RuntimeError, ValueError, TypeError, OSError, EOFError):
        # soundfile.LibsndfileError is a RuntimeError; try wave for odd WAV headers.
        return _read_wave(source, check_silence)


def _read_wave(source: Path | bytes, check_silence: bool) -> tuple[float | None, bool | None]:
    fh: IO[bytes]
    try:
        fh = source.open("rb") if isinstance(source, Path) else io.BytesIO(source)
    except OSError:
        return None, None
    with contextlib.closing(fh):
        try:
            with wave.open(fh, "rb") as wav:
                rate = wav.getframerate()
                frames = wav.getnframes()
                duration = frames / rate if rate else None
                silent: bool | None = None
                if check_silence:
                    sample = wav.readframes(min(frames, rate * 60))
                    silent = not any(sample) or len(set(sample)) <= 1
                return duration, silent
        except (wave.Error, EOFError, OSError, RuntimeError, ValueError, struct.error):
            # wave raises RuntimeError on some truncated chunk headers: all mean "undecodable".
            return None, None
