"""What the dashboard shows, read from the store and made safe to show.

Every function here returns plain data (dicts, lists, numbers, strings) that the
templates render and the JSON endpoints send as is. Everything read goes through
:func:`clean`: the store's masks, the registered-value net of :mod:`voxhub.redact`,
and :func:`voxhub.redact.mask_url` on anything that looks like a URL.

Reads go through the orchestrator (:meth:`Orchestrator.batches`, :meth:`Orchestrator.batch`,
:meth:`Orchestrator.batch_items`, :meth:`Orchestrator.record`), the store (``events``,
``result``, ``find``) and the batch store's reads (:class:`voxhub._batch_reads.BatchReads`:
a page of items joined with their jobs, finish times in buckets, jobs per provider),
all in portable SQL: the dashboard works the same on a SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING, Any

from .._batch_model import ItemState
from .._batch_reads import ItemJob
from .._batch_rows import BatchRows
from ..export import FORMATS, result_to_dict
from ..models import LocalFile, RemoteUrl, StreamUrl, Transcript
from ..redact import MASK, mask_url, redact
from ..serialization import dump

if TYPE_CHECKING:
    from ..batches import BatchInfo
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


class Throughput:
    """Each batch's chart, rate and jobs per provider, read in SQL (a ``GROUP BY`` over
    its finished items' times, one over its jobs' providers). A batch that no process
    runs is read again only when its counts change, however often a page polls."""

    def __init__(self, orch: Orchestrator) -> None:
        self._reads = BatchRows(orch.store)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}

    def of(self, info: BatchInfo, now: float) -> dict[str, Any]:
        """``{"series": chart, "rate": per second or None, "providers": {name: {state:
        n}}}`` for the batch, ``now`` being the end of a running batch's chart."""
        c = info.counts
        key = (c.total, c.pending, c.running, c.done, c.failed, info.updated_at)
        with self._lock:
            kept = self._cache.get(info.batch_id)
        if kept is not None and kept[0] == key and not info.owner_alive:
            return kept[1]
        count, first, last = self._reads.finished_span(info.batch_id)
        end = now if info.owner_alive or last is None else max(last, info.updated_at)
        start = info.created_at
        width = max(end - start, 1.0) / BUCKETS
        bars = [0] * BUCKETS
        rate: float | None = None
        if count and first is not None:
            # The rate of the last five minutes of work (or of all of it, if shorter).
            since = max(start, end - 300.0, first if count > 1 else 0.0)
            buckets, recent = self._reads.finished_buckets(info.batch_id, start, width, since)
            for index, n in buckets.items():
                bars[min(BUCKETS - 1, max(0, index))] += n
            rate = recent / max(end - since, 1.0)
        data = {
            "series": {"start": start, "width": width, "bars": bars},
            "rate": rate,
            "providers": self._reads.provider_states(info.batch_id),
        }
        if not info.owner_alive and count:
            with self._lock:  # an idle batch's chart no longer moves with ``now``
                self._cache[info.batch_id] = (key, data)
        return data


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
        "state": info.state,
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
    seen = throughput.of(info, now)
    data["series"] = seen["series"]
    data["providers"] = seen["providers"]
    rate = seen["rate"]
    if rate is not None:
        data["rate"] = round(rate * 60.0, 1)  # per minute
        if data["left"] and info.owner_alive and rate > 0:
            data["eta"] = round(data["left"] / rate)
    return data


def _item(found: ItemJob, now: float) -> dict[str, Any]:
    item = found.item
    duration: float | None = None
    if found.created_at is not None and found.updated_at is not None:
        end = found.updated_at if item.job_state in FINISHED_STATES else now
        duration = round(max(0.0, end - found.created_at), 1)
    return clean_dict(
        {
            "seq": item.seq,
            "input": item.input,
            "job_id": item.job_id,
            "state": item.state.value,
            "job_state": item.job_state,
            "provider": found.provider,
            "stage": None if item.stage is None else item.stage.value,
            "duration": duration,
            "error": item.error,
            "error_text": f"{item.stage.value if item.stage else '?'}: {item.error}"
            if item.error
            else "",
            "output": item.output,
        }
    )


def batch_page(
    orch: Orchestrator,
    info: BatchInfo,
    *,
    state: str | None,
    provider: str | None,
    page: int,
    now: float,
) -> dict[str, Any]:
    """One page of a batch's inputs, filtered by item state and provider (one ``JOIN``
    of the batch's items with their jobs, paged in SQL)."""
    found = BatchRows(orch.store).item_jobs(
        info.batch_id,
        state=None if state is None else ItemState(state),
        provider=provider,
        limit=PAGE + 1,
        offset=(page - 1) * PAGE,
    )
    return {"items": [_item(f, now) for f in found[:PAGE]], "page": page, "more": len(found) > PAGE}


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
