"""Facts about media that emulators need: WAV headers, loopback URLs, and spoken text.

Part of the sandbox kit (:mod:`voxhub.sandbox_kit` re-exports every name). Text for
media comes from a *recognizer* that an installed plugin declares in the
``voxhub.recognizers`` entry-point group::

    [project.entry-points."voxhub.recognizers"]
    local = "voxhub_local.engine:recognize_text"

The function takes a file path and returns its text. This is the one, explicit
dependency of transcription emulators on a recognizer: with none installed they
answer :data:`NO_RECOGNIZER_TEXT`, so a sandbox never fails for want of one.
"""

from __future__ import annotations

import importlib.metadata
import io
import ipaddress
import threading
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

__all__ = [
    "NO_RECOGNIZER_TEXT",
    "RECOGNIZER_GROUP",
    "WavInfo",
    "is_loopback_host",
    "is_loopback_url",
    "media_text",
    "wav_info",
]


# --- media facts --------------------------------------------------------------------


@attrs.frozen
class WavInfo:
    """What a WAV header says: seconds of audio, channels and sample rate."""

    duration: float
    channels: int
    rate: int


def wav_info(source: str | Path | bytes) -> WavInfo | None:
    """The WAV facts of a file (a path or its bytes), or ``None`` when it is not a WAV."""
    handle: Any = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        with wave.open(handle, "rb") as wav:
            frames, rate, channels = wav.getnframes(), wav.getframerate(), wav.getnchannels()
    except (wave.Error, EOFError, OSError):
        return None
    return WavInfo(duration=frames / rate if rate else 0.0, channels=channels, rate=rate)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an IP, brackets allowed) is this machine."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine (sandboxes fetch media from nowhere else)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host is not None and is_loopback_host(host)


# --- text for media -------------------------------------------------------------------

#: What transcription emulators answer when no recognizer is installed.
NO_RECOGNIZER_TEXT = "sandbox transcript: install voxhub-local for the words of the audio"

#: The entry-point group where plugins declare recognizers: ``name = "module:function"``,
#: the function taking a file path and returning its text.
RECOGNIZER_GROUP = "voxhub.recognizers"

_recognizer_lock = threading.Lock()
_recognizer: list[Callable[[Path], str] | None] = []


def _find_recognizer() -> Callable[[Path], str] | None:
    with _recognizer_lock:
        if not _recognizer:
            found = None
            for ep in sorted(importlib.metadata.entry_points(group=RECOGNIZER_GROUP),
                             key=lambda e: e.name):
                try:
                    found = ep.load()
                    break
                except Exception:  # noqa: BLE001, S112 - a broken recognizer means "none"
                    continue
            _recognizer.append(found)
        return _recognizer[0]


def media_text(path: Path, *, default: str | None = NO_RECOGNIZER_TEXT) -> str | None:
    """What the speech in ``path`` says, from the installed recognizer.

    Without a recognizer (or when it fails on this file) this is ``default``:
    :data:`NO_RECOGNIZER_TEXT` unless the caller wants ``None``.
    """
    recognize = _find_recognizer()
    if recognize is None:
        return default
    try:
        text = recognize(path)
    except Exception:  # noqa: BLE001 - a recognizer failure must not break the emulator
        return default
    return text.strip() if isinstance(text, str) else default
