"""What a simulated Tupu stream "says": slices of content, from a script or from an audio file.

Part of the Tupu sandbox (:mod:`voxhub_tupu.sandbox`). A stream's content is a
sequence of :class:`ScriptSlice` objects, one per callback round. They come from
a script given to the sandbox, from :data:`DEFAULT_SCRIPT`, or from a local
audio file (:func:`slices_from_audio`), whose words come from the recognizer the
sandbox kit finds (:func:`voxhub.sandbox_kit.media_text`; ``voxhub-local``
declares one) — an explicit, documented dependency, not an import of another
plugin. Evidence clips (``speechUrl``) are cut from that file.
"""

from __future__ import annotations

import io
import math
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
from voxhub.sandbox_kit import media_text, wav_info

from .sandbox_rules import TASK_SPEECH_MODERATION, TASK_TRANSCRIPTION, TASK_VULGAR_SPEECH

__all__ = [
    "DEFAULT_SCRIPT",
    "ScriptSlice",
    "evidence_clip",
    "slice_results",
    "slices_from_audio",
]


@attrs.frozen
class ScriptSlice:
    """One slice of simulated stream content.

    ``moderation`` makes the slice a text-moderation violation (keys ``label``,
    ``action``, ``rate``, ``review``, ``keyword``, ``hint``, ``subLabel``);
    ``vulgar`` a vulgar-speech one (keys ``rate``, ``review``, ``label``).
    ``media_start`` is where the slice starts in the ``audio`` file, for the
    evidence clip.
    """

    text: str = ""
    duration: float = 10.0
    moderation: Mapping[str, Any] | None = None
    vulgar: Mapping[str, Any] | None = None
    media_start: float | None = None

    @classmethod
    def from_value(cls, value: ScriptSlice | str | Mapping[str, Any]) -> ScriptSlice:
        """A slice from a string (its text) or a mapping of the fields above."""
        if isinstance(value, ScriptSlice):
            return value
        if isinstance(value, str):
            return cls(text=value)
        if not isinstance(value, Mapping):
            raise TypeError(f"a script slice is a str or a mapping, not {type(value).__name__}")
        unknown = set(value) - {"text", "duration", "moderation", "vulgar", "media_start"}
        if unknown:
            raise ValueError(f"unknown script slice fields: {', '.join(sorted(unknown))}")
        duration = float(value.get("duration", 10.0))
        if duration <= 0:
            raise ValueError("a script slice's duration must be positive")
        moderation = value.get("moderation")
        vulgar = value.get("vulgar")
        if vulgar is True:
            vulgar = {}
        return cls(
            text=str(value.get("text", "")),
            duration=duration,
            moderation=dict(moderation) if moderation else None,
            vulgar=dict(vulgar) if isinstance(vulgar, Mapping) else None,
            media_start=value.get("media_start"),
        )


#: Content used when neither a script nor an audio file is given.
DEFAULT_SCRIPT: Final = (
    ScriptSlice("大家好 欢迎来到直播间"),
    ScriptSlice(
        "加微信买便宜货",
        moderation={"label": "ADs", "action": "block", "rate": 0.97, "review": False,
                    "keyword": "加微信", "hint": "加微信买便宜货", "subLabel": "contact"},
    ),
    ScriptSlice("", vulgar={"rate": 0.91, "review": True}),
    ScriptSlice("今天就到这里 谢谢大家"),
)


def slices_from_audio(path: str | Path, *, slice_seconds: float = 10.0) -> list[ScriptSlice]:
    """Stream content from a local audio file: ``slice_seconds`` slices of a WAV file.

    The words are what the installed recognizer hears in the whole file
    (:func:`~voxhub.sandbox_kit.media_text`), shared out over the slices in order
    and in proportion — the timing of each word is approximate. Without a
    recognizer the slices have empty text, as Tupu sends for silence. A file that
    is not WAV gives one slice with the recognizer's text, or is refused.

    Raises:
        ValueError: the file does not exist, or it cannot be read as WAV and no
            recognizer gave its text.
    """
    audio = Path(path)
    if not audio.is_file():
        raise ValueError(f"audio file {audio} does not exist")
    if slice_seconds <= 0:
        raise ValueError("audio_slice_seconds must be positive")
    words = (media_text(audio, default=None) or "").split()
    info = wav_info(audio)
    if info is None:
        if words:
            return [ScriptSlice(text=" ".join(words), media_start=0.0)]
        raise ValueError(
            f"cannot read {audio} as WAV; install voxhub-local (a recognizer) to simulate "
            "other audio formats"
        )
    total = info.duration
    count = max(1, math.ceil(total / slice_seconds))
    slices = []
    for i in range(count):
        first, last = round(i * len(words) / count), round((i + 1) * len(words) / count)
        slices.append(ScriptSlice(
            text=" ".join(words[first:last]),
            duration=min(slice_seconds, total - i * slice_seconds) or 0.1,
            media_start=i * slice_seconds,
        ))
    return slices


def slice_results(
    piece: ScriptSlice,
    base: Mapping[str, Any],
    *,
    tasks: tuple[str, ...],
    sends_all: bool,
    alternate: bool,
    speech_url: str,
    evidence_url: str,
    moderation: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The task results one slice sends, keyed by task id (empty: no callback this time).

    ``sends_all`` is ``callbackRules`` 1 or 3. Under 0 and 2 Tupu "calls back
    violation results only, nothing else" (seed 003), so a transcript slice, which
    is never a violation, is sent only when every result is asked for.

    ``base`` holds the fields every entry shares (requestId, tags, slice times);
    ``alternate`` gives every inferred field its other plausible shape (see the README).
    """
    results: dict[str, Any] = {}
    if TASK_TRANSCRIPTION in tasks and sends_all:
        results[TASK_TRANSCRIPTION] = {
            "texts": [{**base, "content": piece.text, "speechUrl": speech_url}]
        }
    if TASK_SPEECH_MODERATION in tasks and (moderation or sends_all):
        entry = {**base, "content": piece.text,
                 "speechUrl": evidence_url if moderation else speech_url,
                 **_moderation_entry(moderation, alternate)}
        results[TASK_SPEECH_MODERATION] = {"violations" if alternate else "texts": [entry]}
    vulgar = piece.vulgar
    if TASK_VULGAR_SPEECH in tasks and (vulgar is not None or sends_all):
        label = vulgar.get("label", 1) if vulgar is not None else 0
        rate = (vulgar or {}).get("rate", 0.9 if vulgar is not None else 0.02)
        review = (vulgar or {}).get("review", False)
        entry = {**base, "speechUrl": evidence_url if vulgar is not None else speech_url,
                 "label": str(label) if alternate else label,
                 "rate": str(rate) if alternate else rate,
                 "review": ("true" if review else "false") if alternate else review}
        results[TASK_VULGAR_SPEECH] = {"speechs" if alternate else "texts": [entry]}
    return results


def _moderation_entry(moderation: Mapping[str, Any] | None, alternate: bool) -> dict[str, Any]:
    if not moderation:
        return {"action": "pass", "label": "Normal", "review": False,
                "rate": "0.99" if alternate else 0.99, "details": []}
    keyword_key = "key" if alternate else "keyword"
    detail = {keyword_key: moderation.get("keyword", ""), "hint": moderation.get("hint", ""),
              "mainLabel": moderation.get("label", "UserDefine"),
              "subLabel": moderation.get("subLabel", "")}
    rate = moderation.get("rate", 0.9)
    return {
        "action": moderation.get("action", "block"),
        "label": moderation.get("label", "UserDefine"),
        "review": bool(moderation.get("review", False)),
        "rate": str(rate) if alternate else rate,
        "details": [detail],
    }



def evidence_clip(audio: Path | None, start: float | None, duration: float) -> bytes:
    """A WAV clip of ``audio`` from ``start`` (or half a second of silence without one)."""
    if audio is not None and start is not None:
        try:
            with wave.open(str(audio), "rb") as src:
                rate = src.getframerate()
                src.setpos(min(int(start * rate), src.getnframes()))
                frames = src.readframes(int(duration * rate))
                return _wav_bytes(frames, rate, src.getnchannels(), src.getsampwidth())
        except (wave.Error, EOFError, OSError):
            pass
    return _wav_bytes(b"\x00\x00" * 4000, 8000, 1, 2)


def _wav_bytes(frames: bytes, rate: int, channels: int, width: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return out.getvalue()
