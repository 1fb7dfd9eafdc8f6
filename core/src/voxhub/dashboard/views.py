"""What the dashboard shows, read from the store and made safe to show.

Every function here returns plain data (dicts, lists, numbers, strings) that the
templates render and the JSON endpoints send as is. Everything read goes through
:func:`clean`: the store's masks, the registered-value net of :mod:`voxhub.redact`,
and :func:`voxhub.redact.mask_url` on anything that looks like a URL.

Reads use only public APIs (:meth:`Orchestrator.batches`, :meth:`Orchestrator.batch`,
:meth:`Orchestrator.batch_items`, :meth:`Orchestrator.record`, ``store.events``,
``store.result`` and ``store.listing``), so any store backend that provides them serves
the dashboard too.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..export import FORMATS, result_to_dict
from ..listing import JobFilter, JobRow
from ..models import LocalFile, RemoteUrl, StreamUrl, Transcript
from ..redact import MASK, mask_url, redact
from ..serialization import dump

if TYPE_CHECKING:
    from ..batches import BatchInfo, ItemRow
    from ..orchestrator import Orchestrator

__all__ = [
    "PAGE",
    "Throughput",
    "batch_page",
    "batch_summary",
    "clean",
    "failure_groups",
    "job_page",
    "local_audio",
    "transcript_page",
]

#: Rows per page of a batch's inputs.
PAGE = 50

#: Bars in a throughput chart.
BUCKETS = 40

#: Job states after which a job does no more work.
FINISHED_STATES = frozenset({"succeeded", "failed", "cancelled", "closed"})

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_IDS = re.compile(r"\b(?:vx|vb)_[0-9a-zA-Z]+\b")


def clean_dict(value: dict[str, Any]) -> dict[str, Any]:
    """:func:`clean` for a dict (typed)."""
    cleaned: dict[str, Any] = clean(value)
    return cleaned


def clean(value: Any) -> Any:
    """``value`` with secrets masked: by key name, by registered value, and the
    credentials of every URL-looking string."""
    value = redact(value)
    if isinstance(value, str):
        return mask_url(value) if _URL.match(value) else value
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


# --- batches -------------------------------------------------------------------------


def state_text(info: BatchInfo) -> str:
    """One word for where a batch stands (the words of ``voxhub batches``)."""
    counts = info.counts
    if info.owner_alive:
        return "running"
    if counts.done == counts.total:
        return "done"
    if counts.done + counts.failed == counts.total:
        return "failed"
    return "interrupted" if info.interrupted_at is not None else "unfinished"


class Throughput:
    """Finish times and per-provider tallies of each batch's jobs, read from the
    listing (SQL-paged) and kept until the batch's counts change, so an idle batch
    costs one read however often a page polls."""

    def __init__(self, orch: Orchestrator) -> None:
        self._orch = orch
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}

    def of(self, info: BatchInfo) -> dict[str, Any]:
        """``{"finished": [times...], "providers": {name: {state: n}}}`` for the batch."""
        c = info.counts
        key = (c.total, c.pending, c.running, c.done, c.failed, info.updated_at)
        with self._lock:
            kept = self._cache.get(info.batch_id)
        if kept is not None and kept[0] == key and not info.owner_alive:
            return kept[1]
        finished: list[float] = []
        providers: dict[str, dict[str, int]] = {}
        for row in self._orch.store.listing.rows(JobFilter(batch=info.batch_id)):
            tally = providers.setdefault(row.provider, {})
            tally[row.state] = tally.get(row.state, 0) + 1
            if row.state in FINISHED_STATES:
                finished.append(row.updated_at)
        finished.sort()
        data = {"finished": finished, "providers": providers}
        with self._lock:
            self._cache[info.batch_id] = (key, data)
        return data


def _series(start: float, end: float, times: list[float]) -> dict[str, Any]:
    """``times`` counted in :data:`BUCKETS` equal bars from ``start`` to ``end``."""
    span = max(end - start, 1.0)
    width = span / BUCKETS
    bars = [0] * BUCKETS
    for t in times:
        index = min(BUCKETS - 1, max(0, int((t - start) / width)))
        bars[index] += 1
    return {"start": start, "width": width, "bars": bars}


def batch_summary(info: BatchInfo, throughput: Throughput | None, now: float) -> dict[str, Any]:
    """A batch's figures: counts, progress, state, and (with ``throughput``) the
    chart series, the rate over the last few minutes and the ETA."""
    c = info.counts
    finished = c.done + c.failed
    data: dict[str, Any] = {
        "batch_id": info.batch_id,
        "name": clean(info.name),
        "label": clean(info.name) or info.batch_id,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "state": state_text(info),
        "total": c.total,
        "pending": c.pending,
        "running": c.running,
        "done": c.done,
        "failed": c.failed,
        "left": c.total - finished,
        "percent": round(100.0 * finished / c.total, 1) if c.total else 100.0,
        "rate": None,
        "eta": None,
        "series": None,
        "providers": {},
    }
    if throughput is None:
        return data
    seen = throughput.of(info)
    times: list[float] = seen["finished"]
    end = now if info.owner_alive or not times else max(times[-1], info.updated_at)
    data["series"] = _series(info.created_at, end, times)
    data["providers"] = seen["providers"]
    if times:
        # The rate of the last five minutes of work (or of all of it, if shorter).
        window_start = max(info.created_at, end - 300.0, times[0] if len(times) > 1 else 0.0)
        recent = sum(1 for t in times if t >= window_start)
        elapsed = max(end - window_start, 1.0)
        rate = recent / elapsed
        data["rate"] = round(rate * 60.0, 1)  # per minute
        if data["left"] and info.owner_alive and rate > 0:
            data["eta"] = round(data["left"] / rate)
    return data


def _job_rows(orch: Orchestrator, items: list[ItemRow]) -> dict[str, JobRow]:
    rows: dict[str, JobRow] = {}
    for item in items:
        if item.job_id is not None and item.job_id not in rows:
            row = orch.store.listing.row(item.job_id)
            if row is not None:
                rows[item.job_id] = row
    return rows


def _item(item: ItemRow, row: JobRow | None, now: float) -> dict[str, Any]:
    duration: float | None = None
    if row is not None:
        end = row.updated_at if row.state in FINISHED_STATES else now
        duration = round(max(0.0, end - row.created_at), 1)
    return clean_dict(
        {
            "seq": item.seq,
            "input": item.input,
            "job_id": item.job_id,
            "state": item.state.value,
            "job_state": item.job_state,
            "provider": None if row is None else row.provider,
            "stage": None if item.stage is None else item.stage.value,
            "duration": duration,
            "error": item.error,
            "error_text": f"{item.stage.value if item.stage else '?'}: {item.error}"
            if item.error
            else "",
            "output": item.output,
        }
    )


def _matching(
    orch: Orchestrator, batch_id: str, state: str | None, provider: str
) -> Iterator[tuple[ItemRow, JobRow | None]]:
    """Every item of the batch whose job runs on ``provider`` (a provider filter is not
    in the item rows, so it reads each item's job row: O(items scanned))."""
    for item in orch.batch_items(batch_id, state=state):
        if item.job_id is None:
            continue
        row = orch.store.listing.row(item.job_id)
        if row is not None and row.provider == provider:
            yield item, row


def batch_page(
    orch: Orchestrator,
    info: BatchInfo,
    *,
    state: str | None,
    provider: str | None,
    page: int,
    now: float,
) -> dict[str, Any]:
    """One page of a batch's inputs, filtered by item state and provider."""
    offset = (page - 1) * PAGE
    if provider is None:
        items = list(orch.batch_items(info.batch_id, state=state, limit=PAGE + 1, offset=offset))
        rows = _job_rows(orch, items[:PAGE])
        shown = [_item(i, rows.get(i.job_id or ""), now) for i in items[:PAGE]]
        more = len(items) > PAGE
    else:
        shown = []
        more = False
        for index, (item, row) in enumerate(_matching(orch, info.batch_id, state, provider)):
            if index < offset:
                continue
            if len(shown) == PAGE:
                more = True
                break
            shown.append(_item(item, row, now))
    return {"items": shown, "page": page, "more": more}


def failure_groups(orch: Orchestrator, batch_id: str, limit: int = 10) -> list[dict[str, Any]]:
    """The batch's failed inputs grouped by stage and reason (job ids and the input
    itself left out of the reason), largest group first."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for item in orch.batch_items(batch_id, state="failed"):
        error = clean(item.error or "no error recorded")
        reason = _IDS.sub("…", error.replace(clean(item.input), "…"))
        stage = item.stage.value if item.stage is not None else "?"
        group = groups.setdefault(
            (stage, reason), {"stage": stage, "reason": reason, "count": 0, "example": None}
        )
        group["count"] += 1
        if group["example"] is None:
            group["example"] = {"seq": item.seq, "input": clean(item.input), "job_id": item.job_id}
    ordered = sorted(groups.values(), key=lambda g: (-g["count"], g["stage"], g["reason"]))
    return ordered[:limit]


# --- jobs ----------------------------------------------------------------------------


def _media(request_media: Any) -> dict[str, Any] | None:
    if request_media is None:
        return None
    kind = type(request_media).__name__
    shown: dict[str, Any] = {"type": kind, "text": clean(request_media.describe())}
    if isinstance(request_media, RemoteUrl | StreamUrl):
        shown["text"] = mask_url(request_media.url)
    return shown


def job_page(orch: Orchestrator, job_id: str) -> dict[str, Any]:
    """A job's handle, request (secrets masked), status, events and result summary;
    :class:`~voxhub.errors.NotFoundError` for an unknown job."""
    record = orch.record(job_id)
    handle = record.handle
    request = dump(record.request)  # secret options and URL credentials masked
    events = [
        {"seq": e.seq, "at": e.at, "type": e.type, "data": e.data}
        for e in orch.store.events(job_id)
    ]
    status = record.status
    result = orch.store.result(job_id) if record.has_result else None
    result_data: dict[str, Any] | None = None
    if result is not None:
        result_data = result_to_dict(result)
        if isinstance(result, Transcript):
            result_data = {
                "text": result.text,
                "language": result.language,
                "duration": result.duration,
                "segments": len(result.segments),
                "words": sum(len(s.words) for s in result.segments),
            }
    return clean_dict(
        {
            "job_id": record.job_id,
            "provider": record.provider,
            "profile": record.profile,
            "phase": str(record.phase),
            "state": record.shown,
            "batch": record.batch,
            "error": record.error,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "media": _media(record.request.media),
            "kind": None if handle.kind is None else handle.kind.value,
            "handle": {
                "endpoint": handle.endpoint,
                "vendor_ids": dict(handle.vendor_ids),
                "vendor_state": dict(handle.vendor_state),
                "idempotency_key": handle.idempotency_key,
            },
            "options": request.get("options") or {},
            "language": record.request.language,
            "metadata": dict(record.request.metadata),
            "callback_url": record.request.callback_url,
            "status": None
            if status is None
            else {
                "state": status.state.value,
                "vendor_state": status.vendor_state,
                "reason": status.reason,
                "detail": status.detail,
                "progress": status.progress,
            },
            "events": events,
            "last_seq": events[-1]["seq"] if events else 0,
            "has_result": record.has_result,
            "is_transcript": isinstance(result, Transcript),
            "result": result_data,
            "formats": list(FORMATS) if record.has_result else [],
            "audio": audio_source(orch, job_id) is not None,
        }
    )


def local_audio(orch: Orchestrator, job_id: str) -> str | None:
    """The path of the job's local media file when it is stored with the job and still
    exists; the only files the dashboard ever serves."""
    from pathlib import Path

    record = orch.store.find(job_id)
    if record is None or not isinstance(record.request.media, LocalFile):
        return None
    path = Path(record.request.media.path)
    return str(path) if path.is_absolute() and path.is_file() else None


def audio_source(orch: Orchestrator, job_id: str) -> str | None:
    """Where the page's audio player loads the job's media from: the dashboard's own
    audio route for a stored local file, the URL itself for a remote URL that carries no
    credentials (a masked URL would not play, and a signed one must not be shown), else
    ``None``."""
    record = orch.store.find(job_id)
    if record is None:
        return None
    media = record.request.media
    if isinstance(media, LocalFile):
        return f"/jobs/{job_id}/audio" if local_audio(orch, job_id) else None
    if isinstance(media, RemoteUrl) and not media.auth_headers:
        shown = mask_url(media.url)
        if shown == media.url and MASK not in shown and shown.startswith(("http://", "https://")):
            return shown
    return None


def transcript_page(orch: Orchestrator, job_id: str) -> dict[str, Any] | None:
    """The job's transcript as segments of words with times, speakers and confidence,
    or ``None`` when the job has no stored transcript."""
    result = orch.store.result(job_id)
    if not isinstance(result, Transcript):
        return None
    segments = []
    index = 0
    speakers: dict[str, int] = {}  # each speaker's colour, in order of appearance
    for segment in result.segments:
        words = []
        for word in segment.words:
            words.append(
                {
                    "i": index,
                    "text": word.text,
                    "start": word.start,
                    "end": word.end,
                    "confidence": word.confidence,
                }
            )
            index += 1
        segments.append(
            {
                "speaker": segment.speaker,
                "speaker_index": None
                if segment.speaker is None
                else speakers.setdefault(str(segment.speaker), len(speakers) % 4),
                "start": segment.start,
                "end": segment.end,
                "text": segment.text,
                "confidence": segment.confidence,
                "words": words,
            }
        )
    return clean_dict(
        {
            "job_id": job_id,
            "provider": result.provider,
            "language": result.language,
            "duration": result.duration,
            "text": result.text,
            "segments": segments,
            "audio": audio_source(orch, job_id),
            "generated_at": time.time(),
        }
    )
