"""Reading Tupu's (verified) callback payloads: times, request ids, end-of-task, the report.

Tupu documents only part of its stream callbacks (see the README, "Callback
shapes"). Everything here is therefore tolerant and pure:

* a task's result is an object under the task id whose entries sit in an array
  named ``texts`` (the documented transcription shape), ``violations`` (the
  file-API shape), ``speechs``/``speeches`` (the sync-API shape) or
  ``results``; every one of those is read;
* times are wall-clock text ``YYYY-MM-DD HH:mm:ss`` (streams), ISO 8601,
  epoch seconds or milliseconds, or small numbers meaning seconds from the
  start of the media (file shapes), as a number or a string;
* ``label`` may be a number or a string, ``rate`` a number, a string or null,
  ``review`` a bool, 0/1 or ``"true"``/``"false"``, a detail's keyword
  ``keyword`` or ``key``.

:func:`build_report` turns every callback a job received into one
:class:`~voxhub.models.ModerationReport`; it never raises on odd data (odd
entries are skipped, and every payload is kept in ``report.raw``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from voxhub.plugin import ModerationFinding, ModerationReport, TranscriptSlice

from .codes import (
    TASK_NAMES,
    TASK_SPEECH_MODERATION,
    TASK_TRANSCRIPTION,
    TASK_VULGAR_SPEECH,
    as_int,
)

__all__ = [
    "ENTRY_ARRAY_KEYS",
    "TUPU_TZ",
    "build_report",
    "callback_payloads",
    "end_code",
    "is_end_of_task",
    "parse_bool",
    "parse_epoch",
    "parse_rate",
    "parse_time",
    "request_ids",
]

#: The time zone of Tupu's wall-clock texts. Not stated anywhere; Tupu's stream
#: service is in mainland China, so China Standard Time (UTC+8) is assumed.
TUPU_TZ: Final = timezone(timedelta(hours=8), "CST")

#: Names of the arrays a task result keeps its entries in (all are read).
ENTRY_ARRAY_KEYS: Final = ("texts", "violations", "speechs", "speeches", "results")

_WALL_CLOCK_FORMATS: Final = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S")
# Numbers at or above this are epoch seconds; below, seconds into the media.
_EPOCH_SECONDS_MIN: Final = 1e9
_EPOCH_MS_MIN: Final = 1e12

_NORMAL_LABELS: Final = frozenset({"0", "normal", "pass", "none"})
_FLAGGED_ACTIONS: Final = frozenset({"block", "review"})
_VULGAR_LABELS: Final[Mapping[int, str]] = {0: "normal", 1: "vulgar"}


# --------------------------------------------------------------------------
# Scalars
# --------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def parse_epoch(value: Any) -> datetime | None:
    """An epoch time (seconds or milliseconds, number or string) as aware UTC; else ``None``.

    Tupu's ``timestamp`` is milliseconds in answers and callbacks, seconds in
    requests; both are told apart by size.
    """
    number = _number(value)
    if number is None or number < _EPOCH_SECONDS_MIN:
        return None
    if number >= _EPOCH_MS_MIN:
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_time(value: Any) -> datetime | float | None:
    """A slice or violation time: an aware ``datetime`` for wall-clock values, else seconds.

    Wall-clock text without an offset is read in :data:`TUPU_TZ`; epoch numbers
    become UTC; numbers below 10^9 are seconds from the start of the media
    (the file APIs' ``startTime``/``endTime``) and are returned as ``float``.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        for fmt in _WALL_CLOCK_FORMATS:
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=TUPU_TZ)
            except ValueError:
                continue
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=TUPU_TZ)
    number = _number(value)
    if number is None:
        return None
    if number >= _EPOCH_SECONDS_MIN:
        return parse_epoch(number)
    return number


def parse_rate(value: Any) -> float | None:
    """A score (``rate``) given as a number or a numeric string; ``None`` otherwise."""
    return _number(value)


def parse_bool(value: Any) -> bool | None:
    """A flag given as a bool, 0/1 or ``"true"``/``"false"``; ``None`` if absent or odd."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"true", "1", "yes"}:
            return True
        if lowered in {"false", "0", "no"}:
            return False
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


# --------------------------------------------------------------------------
# Payload navigation
# --------------------------------------------------------------------------


def _task_results(payload: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(task_id, result)`` for every object-valued key of a payload."""
    for key, value in payload.items():
        if isinstance(value, Mapping):
            yield key, value


def _entries(result: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(array_name, entry)`` for every entry of a task result."""
    for name in ENTRY_ARRAY_KEYS:
        items = result.get(name)
        if isinstance(items, list):
            for item in items:
                if isinstance(item, Mapping):
                    yield name, item


def request_ids(payload: Mapping[str, Any]) -> list[str]:
    """Every distinct ``requestId`` a payload names: top level first, then its entries."""
    found: list[str] = []
    top = payload.get("requestId")
    if isinstance(top, str | int) and not isinstance(top, bool) and str(top):
        found.append(str(top))
    for _task, result in _task_results(payload):
        for _name, entry in _entries(result):
            rid = entry.get("requestId")
            valid = isinstance(rid, str | int) and not isinstance(rid, bool) and str(rid)
            if valid and str(rid) not in found:
                found.append(str(rid))
    return found


def is_end_of_task(payload: Mapping[str, Any]) -> bool:
    """Whether a payload is the end-of-task callback: it has a ``status`` (``end``)."""
    return payload.get("status") not in (None, "")


def end_code(payload: Mapping[str, Any]) -> int | str | None:
    """The ``code`` of an end-of-task payload (``0`` = normal end), number or string on input."""
    code = payload.get("code", 0)
    number = as_int(code)
    if number is not None:
        return number
    return None if code is None else str(code)


def callback_payloads(events: Iterable[Any]) -> list[dict[str, Any]]:
    """The callback payloads among ``events``, duplicates removed, in order.

    ``events`` may hold the payloads themselves, store events (objects with
    ``type`` and ``data``) or their dict form (``{"type": ..., "data": ...}``);
    events of another type than ``callback`` are skipped. Identical payloads
    (a callback Tupu retried after our answer was lost) count once.
    """
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for event in events:
        data: Any = event
        kind: Any = "callback"
        if hasattr(event, "data") and hasattr(event, "type"):
            data, kind = event.data, event.type
        elif isinstance(event, Mapping) and set(event) >= {"type", "data"} and isinstance(
            event.get("data"), Mapping
        ):
            data, kind = event["data"], event["type"]
        if kind != "callback" or not isinstance(data, Mapping):
            continue
        try:
            key = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            continue
        if key in seen:
            continue
        seen.add(key)
        out.append(dict(data))
    return out


# --------------------------------------------------------------------------
# Entries -> slices and findings
# --------------------------------------------------------------------------


def _is_normal(label: Any) -> bool:
    text = _text(label)
    return text is not None and text.strip().lower() in _NORMAL_LABELS


def _times(entry: Mapping[str, Any]) -> tuple[datetime | float | None, datetime | float | None]:
    start = parse_time(entry.get("sliceStartTime", entry.get("startTime")))
    end = parse_time(entry.get("sliceEndTime", entry.get("endTime")))
    if start is None and end is None:
        # File-shaped violations keep their times in details[].
        details = [d for d in entry.get("details") or () if isinstance(d, Mapping)]
        starts = [t for d in details if isinstance(t := parse_time(d.get("startTime")), float)]
        ends = [t for d in details if isinstance(t := parse_time(d.get("endTime")), float)]
        start = min(starts) if starts else None
        end = max(ends) if ends else None
    return start, end


def _tags(entry: Mapping[str, Any]) -> dict[str, Any]:
    tags = {k: entry[k] for k in ("requestId", "roomId", "userId", "forumId") if k in entry}
    if "SEIs" in entry:
        tags["SEIs"] = entry["SEIs"]
    return tags


def _moderation_details(entry: Mapping[str, Any]) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for raw in entry.get("details") or ():
        if not isinstance(raw, Mapping):
            continue
        item = {
            "keyword": _text(raw.get("keyword", raw.get("key"))),
            "hint": _text(raw.get("hint")),
            "main_label": _text(raw.get("mainLabel")),
            "sub_label": _text(raw.get("subLabel")),
        }
        for extra in ("startTime", "endTime", "label", "rate"):
            if extra in raw:
                item[extra] = raw[extra]
        items.append({k: v for k, v in item.items() if v not in (None, "")})
    return {
        "matches": items,
        "keywords": [i["keyword"] for i in items if i.get("keyword")],
        "hints": [i["hint"] for i in items if i.get("hint")],
    }


def _vulgar_label(label: Any) -> str:
    number = as_int(label)
    if number is not None:
        return _VULGAR_LABELS.get(number, f"vulgar-{number}")
    return _text(label) or "vulgar"


def _finding(task: str, array: str, entry: Mapping[str, Any]) -> ModerationFinding | None:
    """A finding for a flagged entry of the vulgar or moderation task; ``None`` if normal."""
    label = entry.get("label")
    action = _text(entry.get("action"))
    action_key = action.strip().lower() if action else None
    if action_key is not None:
        flagged = action_key in _FLAGGED_ACTIONS
    elif label is not None:
        flagged = not _is_normal(label)
    else:
        # Entries listed under "violations" are violations even without a label.
        flagged = array == "violations"
    if not flagged:
        return None
    start, end = _times(entry)
    details: dict[str, Any] = {"task": TASK_NAMES.get(task, task), "task_id": task}
    if label is not None:
        details["vendor_label"] = label
    details.update(_tags(entry))
    if task == TASK_VULGAR_SPEECH:
        name = _vulgar_label(label)
        if entry.get("details"):
            details["matches"] = [dict(d) for d in entry["details"] if isinstance(d, Mapping)]
    else:
        name = _text(label) or (action or "violation")
        details.update(_moderation_details(entry))
    return ModerationFinding(
        label=name,
        score=parse_rate(entry.get("rate")),
        start=start,
        end=end,
        text=_text(entry.get("content")),
        evidence_url=_text(entry.get("speechUrl")) or None,
        review=parse_bool(entry.get("review")),
        action=action,
        details=details,
    )


def _sort_key(value: datetime | float | None) -> tuple[int, float]:
    if value is None:
        return (2, 0.0)
    if isinstance(value, datetime):
        return (0, value.timestamp())
    return (1, float(value))


def build_report(
    job_id: str,
    events: Iterable[Any],
    *,
    request_id: str | None = None,
    provider: str = "tupu",
) -> ModerationReport:
    """Everything the callbacks of one stream said so far, as a ModerationReport.

    ``events`` are the job's verified callback payloads (or store events
    holding them, see :func:`callback_payloads`). With ``request_id``, entries
    naming another stream are ignored (a defence for shared callback URLs).

    * ``transcript``: one slice per transcription entry (and per moderation
      entry with text not already transcribed), wall-clock times, in time order;
    * ``findings``: flagged entries of the vulgar-speech and moderation tasks
      (action ``block``/``review``, or a label other than normal), with label,
      score (``rate``), review flag, action, keyword/hint details and the
      evidence audio URL (``speechUrl``);
    * ``ended``: an end-of-task callback arrived; ``raw`` holds every distinct
      payload (the end callback's ``code`` says whether the end was normal).
    """
    payloads = callback_payloads(events)
    slices: dict[tuple[Any, ...], TranscriptSlice] = {}
    findings: list[ModerationFinding] = []
    seen_findings: set[tuple[Any, ...]] = set()
    ended = False
    for payload in payloads:
        if is_end_of_task(payload):
            ended = True
        for task, result in _task_results(payload):
            if task not in (TASK_TRANSCRIPTION, TASK_SPEECH_MODERATION, TASK_VULGAR_SPEECH):
                continue  # other tasks stay in raw
            for array, entry in _entries(result):
                rid = entry.get("requestId")
                if request_id is not None and rid is not None and str(rid) != request_id:
                    continue
                content = _text(entry.get("content"))
                if task != TASK_VULGAR_SPEECH and content is not None:
                    start, end = _times(entry)
                    key = (str(rid), _sort_key(start), _sort_key(end), content)
                    if task == TASK_TRANSCRIPTION or key not in slices:
                        slices[key] = TranscriptSlice(text=content, start=start, end=end)
                if task == TASK_TRANSCRIPTION:
                    continue
                finding = _finding(task, array, entry)
                if finding is None:
                    continue
                identity = (task, str(rid), finding.label, _sort_key(finding.start),
                            finding.text, finding.evidence_url)
                if identity not in seen_findings:
                    seen_findings.add(identity)
                    findings.append(finding)
    transcript = sorted(slices.values(), key=lambda s: (_sort_key(s.start), _sort_key(s.end)))
    findings.sort(key=lambda f: _sort_key(f.start))
    return ModerationReport(
        provider=provider,
        job_id=job_id,
        findings=tuple(findings),
        transcript=tuple(transcript),
        ended=ended,
        raw=payloads,
    )
