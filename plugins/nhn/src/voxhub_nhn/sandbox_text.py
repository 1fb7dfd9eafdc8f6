"""What the NHN emulator "hears": transcript text for a recording, cut into NHN's result shape.

Text comes, in this order, from the recognizer an installed plugin declares
(:func:`voxhub.sandbox_kit.media_text`, when the sandbox's ``use_engine`` is on),
from a sidecar ``<media>.txt``, or from :data:`PLACEHOLDER_TEXT`. ``biasingList``
replacements are applied, and the text is split into sentences spread over the
audio's duration as NHN's ``text``/``timeslot``/``confidence`` lists.
"""

from __future__ import annotations

import functools
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from voxhub.sandbox_kit import media_text

from .audio import AudioInfo
from .schema import SttResult, Timeslot

__all__ = ["PLACEHOLDER_TEXT", "Sidecar", "decode", "dir_sidecars", "file_sidecars", "recognise"]

#: Said by the sandbox when neither a recognizer nor a sidecar gives text (NHN is Korean-only).
PLACEHOLDER_TEXT = "안녕하세요. 음성 인식 샌드박스의 예시 결과입니다. 오늘도 좋은 하루 보내세요."

#: A lazily read source of text (a sidecar file or URL); ``None`` when it has none.
Sidecar = Callable[[], str | None]

_SENTENCE = re.compile(r"(?<=[.!?\u3002\uff1f\uff01])\s+|\n+")
_MAX_WORDS = 12


def recognise(
    info: AudioInfo,
    data: bytes,
    sidecars: Iterable[Sidecar],
    biasing: Sequence[tuple[str, str]],
    *,
    suffix: str,
    use_engine: bool,
    timeslot_strings: bool,
) -> SttResult:
    """The result NHN would give for ``data`` (already checked against the limits)."""
    text = _engine_text(data, suffix) if use_engine and data else None
    if not text:
        text = next((t for t in (s() for s in sidecars) if t), None)
    text = (text or PLACEHOLDER_TEXT).strip()
    for correct, recognised in biasing:  # what biasingList does on the real service
        text = text.replace(recognised, correct)
    duration = round(float(info.duration or 0.0), 2)
    chunks = _split(text)
    slots = _timeslots(chunks, duration)
    # The docs type the times as Long but write them as strings: both forms are served.
    as_wire: Callable[[int], int | str] = str if timeslot_strings else int
    return SttResult(
        input_length=duration,
        file_type=info.file_type,
        text=chunks,
        timeslot=[Timeslot(as_wire(a), as_wire(b)) for a, b in slots],
        confidence=[round(0.86 + 0.01 * ((i * 7) % 10), 2) for i in range(len(chunks))],
    )


def _engine_text(data: bytes, suffix: str) -> str | None:
    """Text from the installed recognizer (the kit's documented dependency), else ``None``."""
    with tempfile.TemporaryDirectory(prefix="nhn-sandbox-") as tmp:
        path = Path(tmp) / f"audio{suffix or '.wav'}"
        path.write_bytes(data)
        text = media_text(path, default=None)
    return text or None


def decode(data: bytes | None) -> str | None:
    """A sidecar's bytes as text (``None`` when empty)."""
    if not data:
        return None
    text = data.decode("utf-8-sig", "replace").strip()
    return text or None


def _read_text(path: Path) -> str | None:
    try:
        return decode(path.read_bytes()) if path.is_file() else None
    except OSError:
        return None


def file_sidecars(path: Path) -> list[Sidecar]:
    """``<name>.txt`` then ``<stem>.txt`` next to a ``file://`` recording."""
    return [lambda: _read_text(path.with_name(path.name + ".txt")),
            lambda: _read_text(path.with_suffix(".txt"))]


def dir_sidecars(filename: str, directories: Iterable[Path]) -> list[Sidecar]:
    """Sidecars of an upload (which carries only a file name) in the sandbox's media folders."""
    stem = Path(filename).stem
    found: list[Sidecar] = []
    for directory in directories:
        for candidate in (directory / f"{filename}.txt", directory / f"{stem}.txt"):
            found.append(functools.partial(_read_text, candidate))
    return found


def _split(text: str) -> list[str]:
    """Sentences, and long sentences cut every dozen words: NHN's segment granularity."""
    chunks: list[str] = []
    for sentence in _SENTENCE.split(text):
        words = sentence.split()
        for i in range(0, len(words), _MAX_WORDS):
            chunks.append(" ".join(words[i:i + _MAX_WORDS]))
    return chunks or [text]


def _timeslots(chunks: Sequence[str], duration: float) -> list[tuple[int, int]]:
    """Spread the chunks over the audio in proportion to their length (milliseconds)."""
    total_ms = max(1, int(duration * 1000))
    weights = [max(1, len(c)) for c in chunks]
    scale = total_ms / sum(weights)
    slots: list[tuple[int, int]] = []
    start = 0.0
    for weight in weights:
        end = start + weight * scale
        slots.append((round(start), round(end)))
        start = end
    return slots
