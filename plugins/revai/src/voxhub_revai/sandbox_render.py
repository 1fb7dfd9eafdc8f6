"""What the Rev.ai emulator answers: problem details, transcripts and captions, shaped as Rev's.

Part of ``voxhub sandbox revai`` (:mod:`voxhub_revai.sandbox`): Rev's RFC 7807
error bodies (:func:`problem`, :func:`invalid`, :func:`too_large`), the Rev JSON
transcript built from plain text (:func:`monologues`), and its renderings as Rev's
plain text (:func:`plain_text`) and SRT/VTT captions (:func:`captions`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from voxhub.sandbox_kit import Response, json_answer

__all__ = [
    "ERRORS",
    "ERRORS_NO_WWW",
    "captions",
    "invalid",
    "invalid_state",
    "monologues",
    "pick",
    "plain_text",
    "problem",
    "too_large",
    "unsupported_format",
]

ERRORS = "https://www.rev.ai/api/v1/errors/"
# Rev's own bodies use both hosts for the same error kinds; so does the emulator.
ERRORS_NO_WWW = "https://rev.ai/api/v1/errors/"
PROBLEM_JSON = "application/problem+json"
DISFLUENCIES = frozenset({"um", "uh", "umm", "uhh", "er", "erm", "hmm"})
PROFANITIES = frozenset({"damn", "hell", "shit", "fuck", "crap", "bastard"})
_PUNCT = ".,?!;:"


# --- problem details ------------------------------------------------------------------


def problem(
    status: int,
    title: str,
    *,
    kind: str | None = None,
    host: str = ERRORS,
    detail: str | None = None,
    **extra: Any,
) -> Response:
    """A problem-details answer with Rev's members (``type`` only when Rev sends one)."""
    body: dict[str, Any] = {}
    if kind is not None:
        body["type"] = host + kind
    body["title"] = title
    if detail is not None:
        body["detail"] = detail
    body["status"] = status
    body.update({k: v for k, v in extra.items() if v is not None})
    return json_answer(body, status, content_type=PROBLEM_JSON)


def invalid(parameters: Mapping[str, list[str]]) -> Response:
    """Rev's 400: a list of reasons per offending parameter.

    The map is named ``parameter``, as in Rev's "Bad Submit Job Request" example
    (the reference's prose says ``parameters``; clients must read both).
    """
    return problem(400, "Your request parameters didn't validate", kind="invalid-parameters",
                   parameter=dict(parameters))


def too_large(limit: int) -> Response:
    """Rev's 413 for a multipart upload over the limit (it has no ``type`` member)."""
    return problem(413, "Request entity too large",
                   detail=f"Multipart uploads are limited to {limit} bytes; submit a media url "
                          "for larger files")


def invalid_state(action: str, current: str, allowed: list[str]) -> Response:
    """Rev's 409: the job's state does not allow ``action`` (e.g. "be deleted")."""
    return problem(409, "Job is in invalid state", kind="invalid-job-state", host=ERRORS_NO_WWW,
                   detail=f"Job is in invalid state to {action}", allowed_values=allowed,
                   current_value=current)


def unsupported_format(offered: Sequence[str], accept: str | None) -> Response:
    """Rev's 406: none of the ``Accept`` types is one this endpoint offers."""
    return problem(406, "Unsupported output format", kind="unsupported-output-format",
                   allowed_values=list(offered), current_value=accept)


def pick(accept: str, offered: Sequence[str]) -> str | None:
    """The first media type of ``accept`` that is exactly one we offer (Rev ignores wildcards)."""
    for item in accept.split(","):
        media = item.split(";", 1)[0].strip().lower()
        if media in offered:
            return media
    return None


# --- transcripts ----------------------------------------------------------------------


def monologues(text: str, duration: float, options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rev-shaped monologues for ``text``, word times spread evenly over ``duration``."""
    tokens = text.split()
    if options.get("remove_disfluencies"):
        tokens = [t for t in tokens if t.strip(_PUNCT).lower() not in DISFLUENCIES]
    if not tokens:
        return []
    slot = duration / len(tokens)
    # Sentences alternate between speakers when more than one is expected.
    speakers = 1
    if options.get("speaker_channels_count"):
        speakers = int(options["speaker_channels_count"])
    elif options.get("speakers_count") and not options.get("skip_diarization"):
        speakers = int(options["speakers_count"])
    names = [n.get("display_name") for n in options.get("speaker_names") or []
             if isinstance(n, dict)]
    skip_punct = bool(options.get("skip_punctuation"))
    profanity = bool(options.get("filter_profanity"))
    result: list[dict[str, Any]] = []
    sentence = 0
    current: dict[str, Any] | None = None
    for i, token in enumerate(tokens):
        speaker = sentence % speakers
        if current is None or current["speaker"] != speaker:
            current = {"speaker": speaker, "elements": []}
            if speaker < len(names):
                current["speaker_info"] = {"id": f"spk{speaker}", "display_name": names[speaker]}
            result.append(current)
        elements: list[dict[str, Any]] = current["elements"]
        if elements and not skip_punct:
            elements.append({"type": "punct", "value": " "})
        core = token.rstrip(_PUNCT) or token
        trail = token[len(core):]
        if profanity and core.lower() in PROFANITIES and len(core) > 2:
            core = core[0] + "*" * (len(core) - 2) + core[-1]
        start = i * slot
        if core.startswith("<") and core.endswith(">"):
            elements.append({"type": "unknown", "value": core})
        else:
            elements.append({
                "type": "text", "value": core, "ts": round(start, 3),
                "end_ts": round(start + slot * 0.9, 3),
                "confidence": round(0.85 + (sum(map(ord, core)) % 15) / 100, 2),
            })
        if trail and not skip_punct:
            elements.append({"type": "punct", "value": trail})
        if trail and trail[-1] in ".?!":
            sentence += 1
    return result


def _hms(seconds: float) -> str:
    total = int(seconds)
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def plain_text(monos: Sequence[Mapping[str, Any]]) -> str:
    """Rev's ``text/plain`` transcript: one paragraph per monologue, speaker and start time."""
    paragraphs = []
    for mono in monos:
        elements = mono["elements"]
        start = next((e["ts"] for e in elements if "ts" in e), 0.0)
        info = mono.get("speaker_info") or {}
        who = info.get("display_name") or f"Speaker {mono['speaker']}"
        if any(e["type"] == "punct" for e in elements):
            text = "".join(e["value"] for e in elements)
        else:  # skip_punctuation: the plain text is still space separated
            text = " ".join(e["value"] for e in elements)
        paragraphs.append(f"{who}    {_hms(start)}    {text}")
    return "\n\n".join(paragraphs) + "\n"


def _stamp(seconds: float, sep: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{millis:03d}"


def captions(monos: Sequence[Mapping[str, Any]], fmt: str) -> str:
    """SRT or VTT cues of at most 10 words / 5 seconds, never across monologues or sentences."""
    cues: list[tuple[float, float, str]] = []
    for mono in monos:
        words: list[list[Any]] = []  # [start, end, text with its punctuation]
        for element in mono["elements"]:
            if element["type"] == "punct":
                if words and element["value"].strip():
                    words[-1][2] += element["value"]
            else:
                start = element.get("ts", words[-1][1] if words else 0.0)
                words.append([start, element.get("end_ts", start), element["value"]])
        group: list[list[Any]] = []
        for word in words:
            group.append(word)
            if (len(group) >= 10 or group[-1][1] - group[0][0] >= 5.0
                    or word[2][-1:] in (".", "?", "!") or word is words[-1]):
                cues.append((group[0][0], group[-1][1], " ".join(w[2] for w in group)))
                group = []
    sep = "," if fmt == "srt" else "."
    lines: list[str] = [] if fmt == "srt" else ["WEBVTT", ""]
    for n, (start, end, text) in enumerate(cues, 1):
        lines += [str(n), f"{_stamp(start, sep)} --> {_stamp(max(end, start), sep)}", text, ""]
    return "\n".join(lines) + ("\n" if lines else "")
