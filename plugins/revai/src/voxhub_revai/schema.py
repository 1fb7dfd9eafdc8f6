"""Rev.ai's JSON documents as attrs models, read with a tolerant cattrs converter.

Rev omits null-valued properties, sends numbers where docs say strings (and
vice versa), uses ``parameter`` or ``parameters`` for the same map, and adds
statuses and failure reasons over time. Everything here is therefore optional
and open: unknown keys are ignored (the raw document is kept), unknown enum
strings are kept as strings. Documents are read by :class:`voxhub_revai.api.RevApi`
with :data:`converter` (so one that still cannot be read becomes a ``ProviderError``
naming the operation, not a ``KeyError`` deep in a stack); a :class:`RevJob` keeps
the document it was read from in ``raw``. :func:`to_transcript` turns Rev's
transcript into voxhub's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override
from voxhub.plugin import JobState, JobStatus, Segment, Transcript, Word, redact

__all__ = [
    "TRANSCRIPT_JSON",
    "Account",
    "Element",
    "Monologue",
    "Problem",
    "RevJob",
    "RevTranscript",
    "SpeakerInfo",
    "converter",
    "parse_time",
    "to_transcript",
]

#: The ``Accept`` value of Rev's JSON transcript.
TRANSCRIPT_JSON = "application/vnd.rev.transcript.v1.0+json"

_STATES = {
    "in_progress": JobState.RUNNING,
    "transcribed": JobState.SUCCEEDED,
    # Other Rev job types (topic extraction...) say "completed"; the SDKs carry it too.
    "completed": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
}


def parse_time(value: str | None) -> datetime | None:
    """A Rev timestamp (ISO-8601, UTC, 0-7 fraction digits, ``Z`` optional) or ``None``."""
    if not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, sep, frac = text.partition(".")
    if sep:
        # Python wants 0, 3 or 6 fraction digits before 3.11's wider parser; normalise to 6.
        digits = "".join(c for c in frac if c.isdigit())
        rest = frac[len(digits):]
        text = f"{head}.{(digits + '000000')[:6]}{rest}"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@attrs.frozen
class RevJob:
    """A Rev job (``GET /jobs/{id}``, list items, submit answers, webhook bodies)."""

    id: str
    status: str | None = None
    created_on: str | None = None
    completed_on: str | None = None
    name: str | None = None
    metadata: str | None = None
    type: str | None = None
    language: str | None = None
    transcriber: str | None = None
    duration_seconds: float | None = None
    failure: str | None = None
    failure_detail: str | None = None
    media_url: str | None = None
    callback_url: str | None = None
    delete_after_seconds: int | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def created(self) -> datetime | None:
        """``created_on`` as an aware datetime (``None`` if absent or unreadable)."""
        return parse_time(self.created_on)

    def to_status(self) -> JobStatus:
        """The normalized status; an unknown status string means "still running"."""
        vendor = self.status or "unknown"
        state = _STATES.get(vendor.lower(), JobState.RUNNING)
        failed = state is JobState.FAILED
        return JobStatus(
            state=state,
            vendor_state=vendor,
            reason=self.failure if failed else None,
            detail=self.failure_detail if failed else None,
            raw=dict(self.raw),
        )


@attrs.frozen
class SpeakerInfo:
    """Named speaker of a monologue (human jobs submitted with ``speaker_names``)."""

    id: str | None = None
    display_name: str | None = None


@attrs.frozen
class Element:
    """One transcript element: a word (``text``), punctuation incl. spaces, or ``unknown``."""

    type: str = "text"
    value: str = ""
    ts: float | None = None
    end_ts: float | None = None
    confidence: float | None = None


@attrs.frozen
class Monologue:
    """A stretch by one speaker (or one channel, with ``speaker_channels_count``)."""

    speaker: int | str | None = None
    speaker_info: SpeakerInfo | None = None
    elements: tuple[Element, ...] = ()

    @property
    def text(self) -> str:
        """The monologue's text exactly as Rev builds it: every element value, in order."""
        return "".join(e.value for e in self.elements)


@attrs.frozen
class RevTranscript:
    """Rev's JSON transcript (``application/vnd.rev.transcript.v1.0+json``)."""

    monologues: tuple[Monologue, ...] = ()


@attrs.frozen
class Account:
    """``GET /account``: the account's e-mail and remaining balance in seconds."""

    email: str | None = None
    balance_seconds: float | None = None


@attrs.frozen
class Problem:
    """An RFC 7807 problem-details body as Rev sends it (every member optional).

    ``kind`` is the last path segment of ``type`` (Rev uses two hosts for the
    same kinds); ``parameters`` merges Rev's ``parameter``/``parameters`` maps;
    ``extra`` keeps any other member.
    """

    type: str | None = None
    title: str | None = None
    detail: str | None = None
    status: int | None = None
    parameters: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    allowed_values: tuple[str, ...] | None = None
    current_value: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def kind(self) -> str | None:
        if not self.type:
            return None
        return self.type.rstrip("/").rsplit("/", 1)[-1] or None

    @classmethod
    def from_json(cls, data: Any) -> Problem:
        """Read a problem body defensively (``None`` members for anything missing or odd)."""
        if not isinstance(data, Mapping):
            return cls()
        known = {"type", "title", "detail", "details", "status", "parameter", "parameters",
                 "allowed_values", "current_value", "error"}
        params: dict[str, tuple[str, ...]] = {}
        for key in ("parameter", "parameters"):
            value = data.get(key)
            if isinstance(value, Mapping):
                for name, reasons in value.items():
                    if isinstance(reasons, list | tuple):
                        params[str(name)] = tuple(str(r) for r in reasons)
                    else:
                        params[str(name)] = (str(reasons),)
            elif isinstance(value, str) and value:
                params.setdefault(value, ())
        allowed = data.get("allowed_values")
        status = data.get("status")
        current = data.get("current_value")
        return cls(
            type=_opt_str(data.get("type")),
            # Rev's SDK fixtures put the summary under "error" in some 403 bodies.
            title=_opt_str(data.get("title") or data.get("error")),
            detail=_opt_str(data.get("detail") or data.get("details")),
            status=status if isinstance(status, int) and not isinstance(status, bool) else None,
            parameters=params,
            allowed_values=tuple(str(v) for v in allowed) if isinstance(allowed, list) else None,
            current_value=None if current is None else str(current),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_details(self) -> dict[str, Any]:
        """Every member, for an error's ``details`` (redacted)."""
        details: dict[str, Any] = {}
        for key, value in (
            ("type", self.type), ("kind", self.kind), ("title", self.title),
            ("detail", self.detail), ("vendor_status", self.status),
            ("current_value", self.current_value),
        ):
            if value is not None:
                details[key] = value
        if self.parameters:
            details["parameters"] = {k: list(v) for k, v in self.parameters.items()}
        if self.allowed_values is not None:
            details["allowed_values"] = list(self.allowed_values)
        if self.extra:
            details["extra"] = dict(self.extra)
        return dict(redact(details))


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


converter = cattrs.Converter(forbid_extra_keys=False)
"""The converter for Rev documents: unknown keys ignored, loose scalar types accepted
(except a job's ``id``, which must be a JSON string)."""


def _speaker(value: Any, _: Any) -> int | str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return str(value)


def _opt_float(value: Any, _: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _opt_int(value: Any, _: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _opt_text(value: Any, _: Any) -> str | None:
    return None if value is None else str(value)


converter.register_structure_hook(int | str | None, _speaker)
converter.register_structure_hook(float | None, _opt_float)
converter.register_structure_hook(int | None, _opt_int)
converter.register_structure_hook(str | None, _opt_text)

def _strict_id(value: Any, _: Any) -> str:
    # Unlike the tolerant fields, an id must be a JSON string: ``123`` or ``NaN`` would
    # otherwise become the id "123"/"nan" of a job Rev never named (issue 16).
    if not isinstance(value, str):
        raise TypeError(f"job id must be a JSON string, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return "an array" if isinstance(value, list | tuple) else "an object"


# Made after the hooks above, which it uses for the fields; ``raw`` is never read from
# the document, it *is* the document.
_job_fields = make_dict_structure_fn(RevJob, converter, raw=override(omit=True),
                                     id=override(struct_hook=_strict_id))


def _structure_job(data: Any, _: Any) -> RevJob:
    if not isinstance(data, Mapping):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    return attrs.evolve(_job_fields(data, RevJob), raw=dict(data))


converter.register_structure_hook(RevJob, _structure_job)


def to_transcript(data: RevTranscript, job: RevJob, job_id: str, *, raw: Any = None) -> Transcript:
    """Rev's transcript as voxhub's: one segment per monologue, words from ``text`` elements.

    A segment's text is the monologue's element values joined exactly as Rev
    joins them (spaces are elements too); the transcript's text is the
    segments' texts, trimmed, joined by one space.
    """
    segments: list[Segment] = []
    for mono in data.monologues:
        words = tuple(
            Word(start=e.ts, end=e.end_ts, text=e.value, confidence=e.confidence)
            for e in mono.elements if e.type == "text"
        )
        times = [e.ts for e in mono.elements if e.ts is not None]
        ends = [e.end_ts for e in mono.elements if e.end_ts is not None]
        confidences = [w.confidence for w in words if w.confidence is not None]
        segments.append(Segment(
            start=min(times) if times else None,
            end=max(ends) if ends else None,
            text=mono.text,
            speaker=None if mono.speaker is None else str(mono.speaker),
            confidence=sum(confidences) / len(confidences) if confidences else None,
            words=words,
        ))
    text = " ".join(t for t in (s.text.strip() for s in segments) if t)
    return Transcript(
        provider="revai", job_id=job_id, text=text, language=job.language,
        duration=job.duration_seconds, segments=tuple(segments), raw=raw,
    )
