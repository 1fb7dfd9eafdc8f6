"""Rendering results as txt, json, srt and vtt.

The JSON shape of a transcript is a documented, stable interface::

    {"provider", "job_id", "language", "duration", "text",
     "segments": [{"start", "end", "text", "speaker", "confidence",
                   "words": [{"start", "end", "text", "confidence"}]}]}

Times are seconds. Text is written as UTF-8 without escaping (Korean stays Korean).

``txt`` has one shape for every provider: plain text, one segment (a speaker turn,
an utterance) per line, no times. Speaker labels are left out of ``txt``, ``srt``
and ``vtt`` unless ``speakers=True`` (``Speaker 1: ...`` lines, ``[Speaker 1] ...``
cues); the JSON always has them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .errors import InvalidInputError
from .models import ModerationReport, Result, Segment, TaskInfo, Transcript

__all__ = ["FORMATS", "render", "transcript_to_dict"]

FORMATS = ("txt", "json", "srt", "vtt")

# Captions longer than this are split at word boundaries so they stay readable.
_MAX_CAPTION_SECONDS = 7.0


def transcript_to_dict(t: Transcript) -> dict[str, Any]:
    """The stable JSON shape of a transcript (see the module docstring)."""
    return {
        "provider": t.provider,
        "job_id": t.job_id,
        "language": t.language,
        "duration": t.duration,
        "text": t.text,
        "segments": [
            {
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "speaker": s.speaker,
                "confidence": s.confidence,
                "words": [
                    {"start": w.start, "end": w.end, "text": w.text, "confidence": w.confidence}
                    for w in s.words
                ],
            }
            for s in t.segments
        ],
    }


def _time_json(value: datetime | float | None) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def result_to_dict(result: Result) -> dict[str, Any]:
    """A JSON-able dict for any result kind (transcripts use the stable shape)."""
    if isinstance(result, Transcript):
        return transcript_to_dict(result)
    if isinstance(result, ModerationReport):
        return {
            "provider": result.provider,
            "job_id": result.job_id,
            "ended": result.ended,
            "findings": [
                {
                    "label": f.label,
                    "score": f.score,
                    "start": _time_json(f.start),
                    "end": _time_json(f.end),
                    "text": f.text,
                    "evidence_url": f.evidence_url,
                    "review": f.review,
                    "action": f.action,
                    "details": f.details,
                }
                for f in result.findings
            ],
            "transcript": [
                {
                    "text": s.text,
                    "start": _time_json(s.start),
                    "end": _time_json(s.end),
                    "speaker": s.speaker,
                }
                for s in result.transcript
            ],
        }
    return {
        "provider": result.provider,
        "job_id": result.job_id,
        "task_id": result.task_id,
        "state": result.state.value,
        "vendor_state": result.vendor_state,
        "details": result.details,
    }


def render(result: Result, fmt: str, *, speakers: bool = False) -> str:
    """``result`` as text in ``fmt`` (one of :data:`FORMATS`); ``speakers`` labels the
    lines of ``txt`` and the cues of ``srt``/``vtt`` with their speaker, where known."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise InvalidInputError(
            f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})", field="format"
        )
    if fmt == "json":
        return json.dumps(result_to_dict(result), ensure_ascii=False, indent=2) + "\n"
    if isinstance(result, Transcript):
        if fmt == "txt":
            return _plain_text(result, speakers=speakers)
        return _captions(result.segments, vtt=fmt == "vtt", speakers=speakers)
    if isinstance(result, ModerationReport) and fmt == "txt":
        return _moderation_text(result)
    if isinstance(result, TaskInfo) and fmt == "txt":
        return f"{result.task_id or '-'}\t{result.state.value}\t{result.vendor_state or ''}\n"
    raise InvalidInputError(
        f"{type(result).__name__} results cannot be rendered as {fmt}", field="format"
    )


def _speaker_label(speaker: str) -> str:
    """How a speaker is named in text: ``Speaker 1`` for a vendor's number, else the name."""
    return f"Speaker {speaker}" if speaker.isdigit() else speaker


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _plain_text(t: Transcript, *, speakers: bool) -> str:
    """One segment per line, whitespace collapsed; the transcript's own text (line by
    line) when no segment has any."""
    lines: list[str] = []
    for seg in t.segments:
        text = _one_line(seg.text)
        if text:
            label = f"{_speaker_label(seg.speaker)}: " if speakers and seg.speaker else ""
            lines.append(label + text)
    if not lines:
        lines = [line for line in map(_one_line, t.text.splitlines()) if line]
    return "\n".join(lines) + "\n"


def _moderation_text(report: ModerationReport) -> str:
    lines = [f"{len(report.findings)} finding(s){' (stream ended)' if report.ended else ''}"]
    for f in report.findings:
        score = "" if f.score is None else f" {f.score:.2f}"
        when = "" if f.start is None else f" at {_time_json(f.start)}"
        text = f": {f.text}" if f.text else ""
        lines.append(f"- {f.label}{score}{when}{text}")
    for s in report.transcript:
        lines.append(f"[{_time_json(s.start)}] {s.text}")
    return "\n".join(lines) + "\n"


def _cues(segments: Iterable[Segment], *, speakers: bool) -> list[tuple[float, float, str]]:
    cues: list[tuple[float, float, str]] = []
    for seg in segments:
        if seg.start is None or seg.end is None or not seg.text.strip():
            continue
        speaker = f"[{_speaker_label(seg.speaker)}] " if speakers and seg.speaker else ""
        timed = [w for w in seg.words if w.start is not None and w.end is not None]
        if seg.end - seg.start <= _MAX_CAPTION_SECONDS or not timed:
            cues.append((seg.start, seg.end, speaker + _one_line(seg.text)))
            continue
        # Long segment: cut it into readable cues at word boundaries.
        chunk: list[str] = []
        chunk_start = timed[0].start or seg.start
        last_end = chunk_start
        for word in timed:
            assert word.start is not None and word.end is not None
            if chunk and word.end - chunk_start > _MAX_CAPTION_SECONDS:
                cues.append((chunk_start, last_end, speaker + " ".join(chunk)))
                chunk, chunk_start = [], word.start
            chunk.append(word.text)
            last_end = word.end
        if chunk:
            cues.append((chunk_start, last_end, speaker + " ".join(chunk)))
    return cues


def _stamp(seconds: float, sep: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{millis:03d}"


def _captions(segments: Iterable[Segment], *, vtt: bool, speakers: bool) -> str:
    out: list[str] = ["WEBVTT", ""] if vtt else []
    sep = "." if vtt else ","
    for index, (start, end, text) in enumerate(_cues(segments, speakers=speakers), 1):
        if not vtt:
            out.append(str(index))
        out.append(f"{_stamp(start, sep)} --> {_stamp(max(end, start), sep)}")
        out.append(text)
        out.append("")
    return "\n".join(out) + ("\n" if out and out[-1] != "" else "")
