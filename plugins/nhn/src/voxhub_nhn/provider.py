"""The NHN Cloud Speech-to-Text provider (API v2.0 and v2.1): the job lifecycle.

* Local files go to the **synchronous** API (``POST .../stt``, multipart
  ``audio`` streamed from disk); the job completes at once and ``submit``
  returns :class:`Submitted` with the transcript.
* URLs go to the **asynchronous** API (``POST .../stt/async`` with
  ``audioUrl``); ``status`` polls ``GET .../status``; a FAILED task can be
  run again with :meth:`NhnProvider.retry` (``GET .../retry``).

Requests, the envelope check and result codes are :class:`voxhub_nhn.api.NhnApi`'s
and :mod:`voxhub_nhn.errors`'; limits and options are checked in ``validate``
(:mod:`voxhub_nhn.options`), which the core runs before ``submit``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import attrs
from voxhub.plugin import (
    ConfigurationError,
    InvalidInputError,
    JobFailedError,
    JobHandle,
    JobRequest,
    JobState,
    JobStatus,
    LocalFile,
    MultipartBody,
    NotFoundError,
    Part,
    Provider,
    ProviderContext,
    ProviderError,
    RemoteUrl,
    Result,
    Segment,
    Submitted,
    Timeouts,
    Transcript,
    path_segment,
    redact,
)

from .api import NhnApi, NhnAuth, resolve_auth
from .audio import probe
from .options import (
    INFO,
    KOREAN,
    NAME,
    SYNC_READ_FACTOR,
    SYNC_READ_SETTING,
    check_request,
    parse_biasing_list,
)
from .schema import AsyncSubmitAnswer, RetryAnswer, StatusAnswer, SttResult, SyncAnswer

__all__ = ["NhnProvider", "to_transcript"]

MODE_SYNC = "sync"
MODE_ASYNC = "async"

_STATES: Mapping[str, JobState] = {
    "PENDING": JobState.QUEUED,
    "IN_PROGRESS": JobState.RUNNING,
    "COMPLETED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
}


class NhnProvider(Provider):
    """NHN Cloud Speech-to-Text v2: sync uploads, async URLs, retry of failed tasks."""

    info = INFO

    #: How many synchronous results are kept in memory for direct ``fetch`` calls.
    SYNC_CACHE_SIZE = 64

    def __init__(self) -> None:
        self._sync_results: OrderedDict[str, Transcript] = OrderedDict()
        self._lock = threading.Lock()

    def authenticate(self, ctx: ProviderContext) -> NhnAuth:
        """Resolve host, API version and credential from the profile (no request)."""
        return resolve_auth(ctx)

    def validate(self, ctx: ProviderContext, request: JobRequest) -> JobRequest:
        """Check media, language and options before any request; normalize ``biasing_list``."""
        api = NhnApi(ctx)
        check_request(request, api.auth.sync_limits)
        options = dict(request.options)
        if "biasing_list" in options:
            options["biasing_list"] = [e.wire for e in parse_biasing_list(options["biasing_list"])]
        return attrs.evolve(request, options=options, language=KOREAN)

    def submit(self, ctx: ProviderContext, request: JobRequest,
               handle: JobHandle) -> JobHandle | Submitted:
        """Local file: sync recognition, finished at once. URL: an async task.

        One creating request; a lost answer surfaces as an in-doubt error for the core.
        """
        api = NhnApi(ctx)
        # validate normalized the list to NHN's wire strings.
        biasing = [str(item) for item in request.options.get("biasing_list") or ()]
        if isinstance(request.media, LocalFile):
            return self._submit_sync(api, request.media, biasing, handle)
        if isinstance(request.media, RemoteUrl):
            return self._submit_async(api, request.media, biasing, handle)
        raise InvalidInputError("NHN transcribes a local file or an http(s) URL", field="media",
                                provider=NAME, operation="submit")

    def status(self, ctx: ProviderContext, handle: JobHandle) -> JobStatus:
        """Sync jobs are SUCCEEDED without a request; async tasks are polled."""
        if _mode(handle) == MODE_SYNC:
            return JobStatus(JobState.SUCCEEDED, vendor_state=None,
                             detail="synchronous recognition (finished at submit)")
        answer, data = self._poll(ctx, handle, "status")
        return _status_of(answer, data)

    def fetch(self, ctx: ProviderContext, handle: JobHandle) -> Result:
        """The transcript: from memory for sync jobs, from the status call for async ones."""
        if _mode(handle) == MODE_SYNC:
            with self._lock:
                cached = self._sync_results.get(handle.job_id)
            if cached is not None:
                return cached
            raise NotFoundError(
                "NHN's synchronous API keeps no copy of results; this job's transcript is "
                "served from voxhub's job store", provider=NAME, operation="fetch",
            )
        answer, data = self._poll(ctx, handle, "fetch")
        state = (answer.task_status or "").upper()
        if state == "COMPLETED" and answer.result is not None:
            return to_transcript(answer.result, handle.job_id, raw=data)
        if state == "FAILED":
            raise JobFailedError(
                f"NHN task {answer.task_id or handle.vendor_id} FAILED "
                f"(run it again with: voxhub nhn retry {handle.job_id})",
                reason="FAILED", provider=NAME, operation="fetch", handle=handle,
            )
        raise ProviderError(
            f"NHN task is not finished yet (taskStatus {state or 'unknown'})",
            provider=NAME, operation="fetch", details={"task_status": state},
        )

    def close(self, ctx: ProviderContext, handle: JobHandle) -> None:
        """NHN has no cancel or delete call: forget the cached sync result, nothing else."""
        with self._lock:
            self._sync_results.pop(handle.job_id, None)

    def retry(self, ctx: ProviderContext, handle: JobHandle) -> JobHandle:
        """Ask NHN to run a FAILED async task again; the handle follows the id NHN returns.

        Whether NHN returns the same task id or a new one is undocumented: either
        way ``vendor_ids["task_id"]`` becomes the returned id and the previous ids
        are kept in ``vendor_state["task_history"]``.
        """
        if _mode(handle) == MODE_SYNC:
            raise InvalidInputError(
                "a synchronous NHN job cannot be retried by NHN; submit the file again",
                field="job", provider=NAME, operation="retry",
            )
        task_id = _task_id(handle, "retry")
        # A GET that starts work: not idempotent, so an ambiguous failure is not resent.
        answer, data = NhnApi(ctx).exchange(
            "GET", f"stt/async/{path_segment(task_id)}/retry", operation="retry",
            into=RetryAnswer, idempotent=False,
        )
        top = data.get("taskId") if isinstance(data, dict) else None
        new_id = (answer.result.task_id if answer.result else None) or top or task_id
        history = [*handle.vendor_state.get("task_history", []), task_id]
        ctx.log.info("nhn.retry", job_id=handle.job_id, task_id=task_id, new_task_id=new_id,
                     same_id=new_id == task_id)
        return handle.with_vendor({"task_id": str(new_id)},
                                  {"task_history": history, "retries": len(history)})

    # --- internals ---------------------------------------------------------------

    def _submit_sync(self, api: NhnApi, media: LocalFile, biasing: list[str],
                     handle: JobHandle) -> Submitted:
        parts = [Part("audio", path=media.path)]
        parts += [Part("biasingList", value=item) for item in biasing]
        body = MultipartBody(parts)
        timeouts = sync_timeouts(api, media)
        api.ctx.log.info("nhn.submit", job_id=handle.job_id, mode=MODE_SYNC,
                         version=api.auth.version, bytes=body.file_size,
                         biasing_items=len(biasing), read_timeout=round(timeouts.read, 1))
        # A POST: the transport resends only provably unsent requests and 429s.
        answer, data = api.exchange("POST", "stt", operation="submit", into=SyncAnswer,
                                    body=body, idempotent=False, timeouts=timeouts)
        if answer.result is None:
            raise ProviderError("NHN answered success without a result", provider=NAME,
                                operation="submit")
        transcript = to_transcript(answer.result, handle.job_id, raw=data)
        with self._lock:
            self._sync_results[handle.job_id] = transcript
            while len(self._sync_results) > self.SYNC_CACHE_SIZE:
                self._sync_results.popitem(last=False)
        done = handle.with_vendor(state={"mode": MODE_SYNC, "api_version": api.auth.version})
        status = JobStatus(JobState.SUCCEEDED, vendor_state=None,
                           detail="synchronous recognition", raw=redact(data))
        return Submitted(done, status, transcript)

    def _submit_async(self, api: NhnApi, media: RemoteUrl, biasing: list[str],
                      handle: JobHandle) -> JobHandle:
        payload: dict[str, Any] = {"audioUrl": media.url}
        if biasing:
            payload["biasingList"] = biasing
        api.ctx.log.info("nhn.submit", job_id=handle.job_id, mode=MODE_ASYNC,
                         version=api.auth.version, media=media.describe(),
                         biasing_items=len(biasing))
        answer = api.call("POST", "stt/async", operation="submit", into=AsyncSubmitAnswer,
                          json=payload, idempotent=False)
        if not answer.task_id:
            raise ProviderError("NHN accepted the task but returned no taskId", provider=NAME,
                                operation="submit")
        return handle.with_vendor({"task_id": answer.task_id},
                                  {"mode": MODE_ASYNC, "api_version": api.auth.version})

    def _poll(self, ctx: ProviderContext, handle: JobHandle,
              operation: str) -> tuple[StatusAnswer, Any]:
        task_id = _task_id(handle, operation)
        return NhnApi(ctx).exchange("GET", f"stt/async/{path_segment(task_id)}/status",
                                    operation=operation, into=StatusAnswer, idempotent=True)


def sync_timeouts(api: NhnApi, media: LocalFile) -> Timeouts:
    """The context's timeouts with ``read`` grown by the audio's duration (sync recognition).

    NHN answers a sync request only when recognition is over, which for an hour of
    audio takes far longer than a generic read timeout. The duration is read locally;
    when it cannot be (WebM, AAC, AC3) the API's maximum duration is assumed.
    Connect and write timeouts are kept.
    """
    base = api.ctx.http.timeouts
    duration = probe(media.path).duration
    if duration is None:
        duration = api.auth.sync_limits.max_seconds
    factor = _read_factor(api.ctx)
    return attrs.evolve(base, read=base.read + duration * factor)


def _read_factor(ctx: ProviderContext) -> float:
    value = ctx.settings.get(SYNC_READ_SETTING)
    if value is None or value == "":
        return SYNC_READ_FACTOR
    try:
        factor = float(str(value))
    except ValueError:
        factor = -1.0
    if not factor >= 0:  # also refuses NaN
        raise ConfigurationError(
            f"setting {SYNC_READ_SETTING!r} must be a number of seconds per second of audio "
            f"(>= 0), got {value!r}", provider=NAME, operation="submit",
            details={"field": SYNC_READ_SETTING},
        )
    return factor


def _task_id(handle: JobHandle, operation: str) -> str:
    task_id = handle.vendor_ids.get("task_id")
    if not task_id:
        raise NotFoundError("this job has no NHN task id", provider=NAME, operation=operation)
    return str(task_id)


def _mode(handle: JobHandle) -> str:
    mode = handle.vendor_state.get("mode")
    if mode in (MODE_SYNC, MODE_ASYNC):
        return str(mode)
    # A handle without bookkeeping: a task id means async, none means a sync job.
    return MODE_ASYNC if handle.vendor_ids.get("task_id") else MODE_SYNC


def _status_of(answer: StatusAnswer, data: Any) -> JobStatus:
    vendor = (answer.task_status or "").upper()
    state = _STATES.get(vendor)
    raw = redact(data)
    if state is None:
        # An unknown word is not an end: keep polling, but say what NHN said.
        return JobStatus(JobState.RUNNING, vendor_state=answer.task_status,
                         detail="unrecognised NHN taskStatus", raw=raw)
    if state is JobState.FAILED:
        return JobStatus(state, vendor_state=vendor, reason="FAILED",
                         detail="NHN reported the task as failed; it can be run again "
                                "(voxhub nhn retry JOB)", raw=raw)
    progress = 1.0 if state is JobState.SUCCEEDED else None
    return JobStatus(state, vendor_state=vendor, progress=progress, raw=raw)


def _seconds(value: Any) -> float | None:
    try:
        return float(value) / 1000.0
    except (TypeError, ValueError):
        return None


def to_transcript(result: SttResult, job_id: str, raw: Any = None) -> Transcript:
    """An NHN result as a voxhub transcript: one segment per ``text[i]``, times in seconds."""
    segments: list[Segment] = []
    for i, text in enumerate(result.text):
        slot = result.timeslot[i] if i < len(result.timeslot) else None
        confidence = result.confidence[i] if i < len(result.confidence) else None
        segments.append(Segment(
            start=_seconds(slot.start_time) if slot else None,
            end=_seconds(slot.end_time) if slot else None,
            text=text.strip(),
            confidence=confidence,
        ))
    return Transcript(
        provider=NAME,
        job_id=job_id,
        text=" ".join(s.text for s in segments if s.text),
        language=KOREAN,
        duration=result.input_length,
        segments=tuple(segments),
        raw=raw,
    )
