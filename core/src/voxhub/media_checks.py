"""Checking a local media file before it is recorded or sent: what it is, by its bytes.

A provider that takes local files gets one that exists, is a regular file, is not
empty, can be read, and whose first bytes are a container of a media type it
declares in :attr:`voxhub.provider.ProviderInfo.media_types` (by default any audio
or video). Formats are told by their magic bytes, never by the file's extension:
``notes.wav`` holding text is text. Each problem is its own one-line
:class:`~voxhub.errors.InvalidInputError` (field ``media``) naming the file.

Only the first :data:`HEAD_BYTES` of a file are read; nothing is decoded, so a file
whose header is right but whose body is broken still reaches the provider (whose
own ``validate`` may look closer).
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterable
from pathlib import Path

import attrs

from .errors import InvalidInputError

__all__ = [
    "ANY_FILE",
    "AUDIO_VIDEO",
    "HEAD_BYTES",
    "FileKind",
    "accepts",
    "check_local_media",
    "sniff",
]

#: The media types a provider accepts unless it declares others.
AUDIO_VIDEO: frozenset[str] = frozenset({"audio/*", "video/*"})
#: Declared by a provider that takes any file (e.g. a test provider fed text files).
ANY_FILE: frozenset[str] = frozenset({"*/*"})
#: How much of a file is read to tell its format.
HEAD_BYTES = 512


@attrs.frozen
class FileKind:
    """What a file's first bytes say it is: a name for people and its media types."""

    name: str
    types: tuple[str, ...]

    @property
    def is_media(self) -> bool:
        return any(t.startswith(("audio/", "video/")) for t in self.types)


def _kind(name: str, *types: str) -> FileKind:
    return FileKind(name, types)


_WAV = _kind("WAV audio", "audio/wav")
_AVI = _kind("AVI video", "video/x-msvideo")
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_W64_GUID = bytes.fromhex("726966662e91cf11a5d628db04c10000")  # "riff" + Sony Wave64 GUID
# ISO base media brands that are still images, not audio or video.
_IMAGE_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"})
# QuickTime files without ``ftyp`` start with one of these atoms.
_QT_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


def _riff(head: bytes) -> FileKind | None:
    form = head[8:12]
    if form == b"WAVE":
        return _WAV
    if form == b"AVI ":
        return _AVI
    if form == b"WEBP":
        return _kind("WebP image", "image/webp")
    return None


def _iso_media(head: bytes) -> FileKind:
    brand = head[8:12]
    if brand in _IMAGE_BRANDS:
        return _kind(f"{brand.decode('ascii')} image", "image/heif")
    if brand.startswith((b"M4A", b"M4B", b"M4P")):
        return _kind("M4A audio", "audio/mp4")
    if brand.startswith(b"3g"):
        return _kind("3GP media", "audio/3gpp", "video/3gpp")
    if brand == b"qt  ":
        return _kind("QuickTime video", "video/quicktime", "audio/mp4")
    return _kind("MP4 media", "video/mp4", "audio/mp4")


def _mpeg_audio(head: bytes) -> FileKind | None:
    """An MPEG audio frame or an ADTS header at the start (no ID3 tag before it)."""
    if len(head) < 2 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    layer = (head[1] >> 1) & 0x03
    if layer == 0:  # layer bits 00: ADTS (AAC) when the version bits say MPEG-2/4
        return _kind("AAC audio", "audio/aac") if head[1] & 0xF6 == 0xF0 else None
    if (head[1] >> 3) & 0x03 == 0x01:  # reserved MPEG version
        return None
    if len(head) >= 3 and (head[2] >> 4 == 0x0F or (head[2] >> 2) & 0x03 == 0x03):
        return None  # bad bitrate or reserved sample rate: not a frame header
    return _kind("MP3 audio", "audio/mpeg")


def _mpeg_ts(head: bytes) -> bool:
    """Transport stream packets of 188 bytes, each starting with the 0x47 sync byte."""
    return len(head) >= 377 and head[0] == head[188] == head[376] == 0x47


# (offset, magic, kind) checked in order; the longer and more specific first.
_MAGIC: tuple[tuple[int, bytes, FileKind], ...] = (
    (0, b"fLaC", _kind("FLAC audio", "audio/flac")),
    (0, b"OggS\x00", _kind("Ogg media", "audio/ogg", "video/ogg")),
    # An ID3v2 tag (before MP3, sometimes AAC): "ID3", major version 2-4, revision 0.
    (0, b"ID3\x02\x00", _kind("MP3 audio", "audio/mpeg")),
    (0, b"ID3\x03\x00", _kind("MP3 audio", "audio/mpeg")),
    (0, b"ID3\x04\x00", _kind("MP3 audio", "audio/mpeg")),
    (0, b"\x1a\x45\xdf\xa3", _kind("WebM/Matroska media", "video/webm", "audio/webm")),
    (0, b"#!AMR-WB\n", _kind("AMR-WB audio", "audio/amr-wb")),
    (0, b"#!AMR\n", _kind("AMR audio", "audio/amr")),
    (0, _ASF_GUID, _kind("ASF/WMA media", "audio/x-ms-wma", "video/x-ms-asf")),
    (0, _W64_GUID, _kind("Wave64 audio", "audio/wav")),
    (0, b"caff\x00\x01", _kind("CAF audio", "audio/x-caf")),
    (0, b"ADIF", _kind("AAC audio", "audio/aac")),
    (0, b"\x0b\x77", _kind("AC-3 audio", "audio/ac3")),
    (0, b".snd\x00\x00", _kind("AU audio", "audio/basic")),
    (0, b"FLV\x01", _kind("FLV video", "video/x-flv")),
    (0, b"wvpk", _kind("WavPack audio", "audio/x-wavpack")),
    (0, b"NIST_1A\n", _kind("NIST SPHERE audio", "audio/x-nist")),
    (0, b"Creative Voice File\x1a", _kind("VOC audio", "audio/x-voc")),
    (0, b"\x00\x00\x01\xba", _kind("MPEG program stream", "video/mpeg", "audio/mpeg")),
    (0, b"\x00\x00\x01\xb3", _kind("MPEG video", "video/mpeg")),
    # Not media: named so that the error says what the file looks like.
    (0, b"%PDF", _kind("PDF document", "application/pdf")),
    (0, b"\x89PNG", _kind("PNG image", "image/png")),
    (0, b"\xff\xd8\xff", _kind("JPEG image", "image/jpeg")),
    (0, b"GIF8", _kind("GIF image", "image/gif")),
    (0, b"PK\x03\x04", _kind("ZIP archive", "application/zip")),
    (0, b"\x1f\x8b", _kind("gzip archive", "application/gzip")),
    (0, b"\x7fELF", _kind("program", "application/x-executable")),
    (0, b"SQLite format 3\x00", _kind("SQLite database", "application/vnd.sqlite3")),
    # UTF-16 byte order marks: text (FF FE would otherwise read as an MPEG frame).
    (0, b"\xff\xfe", _kind("text", "text/plain")),
    (0, b"\xfe\xff", _kind("text", "text/plain")),
)

_TEXT = _kind("text", "text/plain")
_UNKNOWN = _kind("unknown data", "application/octet-stream")
# Control characters that plain text does not hold (tab, newlines and form feed are fine).
_BINARY_BYTES = frozenset(range(32)) - {9, 10, 12, 13}


def _text(head: bytes) -> bool:
    if any(b in _BINARY_BYTES for b in head):
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Only a character cut at the end of the head is forgiven.
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True


def sniff(head: bytes) -> FileKind:
    """What the first bytes of a file say it is (``unknown data`` when nothing matches)."""
    if head[:4] in (b"RIFF", b"RF64", b"BW64"):
        found = _riff(head)
        if found is not None:
            return found
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return _kind("AIFF audio", "audio/aiff")
    if head[4:8] == b"ftyp":
        return _iso_media(head)
    for offset, magic, kind in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return kind
    frame = _mpeg_audio(head)
    if frame is not None:
        return frame
    if _mpeg_ts(head):
        return _kind("MPEG transport stream", "video/mp2t", "audio/mp2t")
    if head.startswith(b"\xef\xbb\xbf") or _text(head):
        return _TEXT
    # Old QuickTime files open with a bare atom: its size (a small number, so a zero
    # first byte) then its type. Checked after text, which can hold "free" at byte 4.
    if head[:1] == b"\x00" and head[4:8] in _QT_ATOMS:
        return _kind("QuickTime video", "video/quicktime", "audio/mp4")
    return _UNKNOWN


def accepts(accepted: Iterable[str], kind: FileKind) -> bool:
    """Whether any of ``kind``'s types matches a pattern in ``accepted`` (``audio/*``...)."""
    patterns = [a.lower() for a in accepted]
    return any(fnmatch.fnmatchcase(t, p) for t in kind.types for p in patterns)


def _shown(path: Path) -> str:
    """The path for a one-line message: control characters in a name are escaped."""
    text = str(path)
    return text if text.isprintable() else repr(text)[1:-1]


def check_local_media(path: Path, accepted: Iterable[str], *, provider: str) -> FileKind:
    """Check that ``path`` is a readable, non-empty file of an ``accepted`` media type.

    Returns what the file is; raises :class:`~voxhub.errors.InvalidInputError`
    (field ``media``), one message per problem, each naming the file.
    """
    accepted = frozenset(accepted)

    def bad(message: str) -> InvalidInputError:
        return InvalidInputError(message, field="media", provider=provider, operation="validate")

    shown = _shown(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise bad(f"no such file: {shown}") from None
    except OSError as exc:
        raise bad(f"cannot read {shown}: {_reason(exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise bad(f"{shown} is a directory, not a media file")
    if not stat.S_ISREG(info.st_mode):
        # A FIFO or a device: reading it could block or never end.
        raise bad(f"{shown} is not a regular file")
    if info.st_size == 0:
        raise bad(f"{shown} is empty (0 bytes)")
    try:
        with path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        raise bad(f"cannot read {shown}: {_reason(exc)}") from None
    kind = sniff(head)
    if not accepts(accepted, kind):
        looks = "" if kind is _UNKNOWN else f" (it looks like {kind.name})"
        if accepted == AUDIO_VIDEO:
            raise bad(f"{shown} is not an audio or video file{looks}")
        wanted = ", ".join(sorted(accepted))
        raise bad(f"{shown} is not a media type {provider!r} accepts ({wanted}){looks}")
    return kind


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or os.strerror(exc.errno or 0) or type(exc).__name__
