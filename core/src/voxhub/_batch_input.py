"""One input of a running batch: its steps, each failure recorded on its own item.

submit -> wait -> fetch -> export -> write (or ``on_text``) -> close. A step's
failure is recorded on the input's item (state ``failed``, the stage, a one-line
error); nothing it does touches another input. See :mod:`voxhub._batch_runner`
for the run around it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import attrs
import structlog

from ._batch_model import (
    BatchEvent,
    BatchSettings,
    ClosePolicy,
    EventKind,
    ItemState,
    Outcome,
    Stage,
)
from ._batch_plan import one_line
from ._batch_reads import PendingItem
from ._batch_rows import mark_done
from ._records import owner_alive
from .errors import VoxhubError, WaitTimeoutError
from .events import failure
from .models import JobHandle, JobRequest, JobState, JobStatus, Result
from .store import Also, JobRecord, Phase

if TYPE_CHECKING:
    from ._batch_plan import Planner
    from ._batch_rows import NewJob
    from ._database import Connection
    from .events import JobEvents
    from .plugins import PluginManager
    from .policies import Backoff
    from .provider import ProviderContext
    from .store import Store
    from .transport import HttpClient

__all__ = [
    "INTERRUPTED_REASON",
    "Carry",
    "InputSteps",
    "Marks",
    "OnEvent",
    "OnText",
    "Runner",
    "Slot",
    "Stopped",
    "failed_job",
    "held_elsewhere",
]

log = structlog.get_logger("voxhub.batches")

#: ``on_event``: called from worker threads; keep it quick and thread-safe.
OnEvent = Callable[[BatchEvent], None]
#: ``on_text(seq, input, text)``: an exported text without an output directory.
OnText = Callable[[int, str, str], None]

INTERRUPTED_REASON = "interrupted"


class Runner(Protocol):
    """The orchestrator operations a batch run is made of."""

    @property
    def store(self) -> Store: ...

    @property
    def plugins(self) -> PluginManager: ...

    @property
    def events(self) -> JobEvents: ...

    @property
    def http(self) -> HttpClient: ...

    def context(self, provider: str, profile: str | None = None) -> ProviderContext: ...

    def complete(
        self,
        job: JobHandle,
        *,
        timeout: float | None = ...,
        on_status: Callable[[JobStatus], None] | None = ...,
        also: Also | None = ...,
    ) -> tuple[JobStatus, Result]: ...

    def export(self, job: str | JobHandle, fmt: str, *, speakers: bool = ...) -> str: ...

    def close(self, job: str | JobHandle) -> None: ...


#: Brings a stored job to ``submitted`` (:meth:`voxhub.submission.Submission.carry`).
Carry = Callable[[JobRecord, bool], JobHandle]


class Marks(Protocol):
    """Where an input's item row is marked: :class:`~voxhub._batch_rows.BatchRows`
    (each mark one write) or :class:`~voxhub._batch_marks.GroupedMarks` (grouped)."""

    def started(self, batch_id: str, seq: int) -> None: ...

    def finished(self, batch_id: str, seq: int, *, state: ItemState, stage: Stage | None,
                 error: str | None) -> None: ...

    def relink(self, batch_id: str, seq: int, old_job: str, new: NewJob) -> str: ...

    def settled(self, batch_id: str, seq: int) -> None:
        """The item was marked done in its job's own write: drop any mark held for it."""


class Stopped(Exception):
    """Raised inside a worker's wait when the run was stopped (never leaves this module)."""


class _WriteError(VoxhubError):
    """Writing an input's output (file or ``on_text``) failed."""


@attrs.define
class Slot:
    """An input being worked on."""

    item: PendingItem
    stage: Stage = Stage.SUBMIT
    job_id: str | None = None
    handle: JobHandle | None = None
    abandoned: bool = False
    interrupted: bool = False
    #: The job's record as the run read it when it chose to start the input (the claim
    #: decides on the stored row, so an older read is never acted on).
    record: JobRecord | None = None


class InputSteps:
    """Runs one input's steps at a time, for any number of worker threads."""

    def __init__(
        self,
        ops: Runner,
        rows: Marks,
        batch_id: str,
        settings: BatchSettings,
        *,
        carry: Carry,
        planner: Planner,
        retry_failed: bool,
        on_event: OnEvent | None,
        on_text: OnText | None,
        live: Mapping[int, JobRequest],
        lock: threading.Lock,
        stop: threading.Event,
    ) -> None:
        self.batch_id = batch_id
        self._ops = ops
        self._rows = rows
        self._settings = settings
        self._carry = carry
        self._planner = planner
        self._retry_failed = retry_failed
        self._on_event = on_event
        self._on_text = on_text
        self._live = live
        self._lock = lock
        self._stop = stop
        self._current = threading.local()  # the input this worker thread runs

    def interrupt_once(self, slot: Slot) -> None:
        """Store a job that runs in this process as failed (interrupted) and stop its work
        (the job of an input left while waiting; once, whoever gets here first)."""
        with self._lock:
            handle = slot.handle
            if slot.interrupted or handle is None or not in_this_process(handle):
                return
            slot.interrupted = True
        record = self._ops.store.find(handle.job_id)
        old = None if record is None else record.status
        status = JobStatus(
            JobState.FAILED, vendor_state=INTERRUPTED_REASON, reason=INTERRUPTED_REASON,
            detail=f"stopped before it finished; `voxhub batches resume {self.batch_id}` "
            "runs it again",
        )  # fmt: skip
        try:
            self._ops.events.store_status(handle, old, status)
            ctx = self._ops.context(handle.provider, handle.profile)
            self._ops.plugins.calls(handle.provider).close(ctx, handle)
        except VoxhubError as exc:
            log.warning("batch.interrupt_failed", job_id=handle.job_id, error=str(exc))

    def emit(self, kind: EventKind, slot: Slot, state: str | None, detail: str | None) -> None:
        """Tell ``on_event`` (if any) about the input; a failing callback is only logged."""
        if self._on_event is None:
            return
        try:
            self._on_event(
                BatchEvent(kind, slot.item.seq, slot.item.input, slot.job_id, state, detail)
            )
        except Exception:  # a display's bug must not fail the input
            log.exception("batch.on_event_failed")

    def _stage(self, slot: Slot, stage: Stage) -> None:
        with self._lock:
            if slot.abandoned:
                raise Stopped
            slot.stage = stage

    def on_backoff(self, backoff: Backoff) -> None:
        """A request is about to wait out a back-off: tell the display, naming the input
        whose request it is (requests of other threads are not this run's)."""
        slot: Slot | None = getattr(self._current, "slot", None)
        if slot is not None:
            detail = f"{backoff.provider} {backoff.reason}: retrying in {backoff.seconds:.1f}s"
            self.emit("backoff", slot, None, detail)

    def work(self, slot: Slot) -> Outcome | None:
        """Run the input's steps on this thread; ``None`` when the run left it meanwhile."""
        self._current.slot = slot
        try:
            return self._work(slot)
        finally:
            self._current.slot = None

    def _work(self, slot: Slot) -> Outcome | None:
        item, settings, ops = slot.item, self._settings, self._ops
        self._rows.started(self.batch_id, item.seq)
        self.emit("started", slot, None, None)
        assert item.job_id is not None  # items without a job failed their checks
        record = slot.record or ops.store.get(item.job_id)
        slot.record = None
        status: JobStatus | None = None
        result: Result | None = None
        text: str | None = None
        output: str | None = None
        try:
            record = self._attempt(slot, record)
            slot.handle = self._carry(record, False)
            self._stage(slot, Stage.WAIT)
            seen: list[JobStatus] = []

            def on_status(current: JobStatus) -> None:
                if self._stop.is_set():
                    raise Stopped
                if not seen or (seen[-1].state, seen[-1].progress) != (
                    current.state,
                    current.progress,
                ):
                    progress = None if current.progress is None else f"{current.progress:.0%}"
                    self.emit("state", slot, current.state.value, progress)
                seen.append(current)
                if current.is_terminal and current.state is not JobState.FAILED:
                    self._stage(slot, Stage.FETCH)

            # With nothing to do after the fetch, the input is done in the same write as
            # its job's result: one write for one change.
            merged: list[bool] = []
            also = None
            if settings.format is None and not settings.close.after_success:
                def also(conn: Connection, now: float, seq: int = item.seq) -> None:
                    mark_done(conn, self.batch_id, seq, now)
                    merged.append(True)

            status, result = ops.complete(
                slot.handle, timeout=settings.timeout, on_status=on_status, also=also
            )
            if settings.format is not None:
                self._stage(slot, Stage.EXPORT)
                text = ops.export(slot.handle.job_id, settings.format, speakers=settings.speakers)
                self._stage(slot, Stage.WRITE)
                output = self._deliver(item, text)
            if settings.close.after_success:
                self._stage(slot, Stage.CLOSE)
                ops.close(slot.handle)
        except VoxhubError as exc:
            self._close_after_failure(slot, exc)
            return self.record_failure(slot, exc, status=status, result=result)
        if merged:  # committed with the result (complete() returned)
            self._rows.settled(self.batch_id, item.seq)
        else:
            self._stage(slot, slot.stage)  # abandoned meanwhile: its item stays pending
            self._rows.finished(
                self.batch_id, item.seq, state=ItemState.DONE, stage=None, error=None
            )
        self.emit("finished", slot, ItemState.DONE.value, output)
        return Outcome(
            record.request, slot.handle, status=status, result=result,
            batch_id=self.batch_id, seq=item.seq, input=item.input, output=output,
            text=text if output is None else None,
        )  # fmt: skip

    def _attempt(self, slot: Slot, record: JobRecord) -> JobRecord:
        """The job record to carry: a failed job (retried, or interrupted) is superseded by
        a new one; a request kept in memory (secret URL headers) replaces the stored one."""
        item = slot.item
        failed = failed_job(record)
        if failed is not None and (self._retry_failed or failed == INTERRUPTED_REASON):
            new = self._planner.job(record.request, self._settings.callback)
            job_id = self._rows.relink(self.batch_id, item.seq, record.job_id, new)
            slot.job_id = job_id
            record = self._ops.store.get(job_id)
        live = self._live.get(item.seq)
        if live is not None:
            record = attrs.evolve(record, request=live)
        return record

    def _deliver(self, item: PendingItem, text: str) -> str | None:
        """Write the text to the item's output file (atomically), or hand it to ``on_text``."""
        if item.output is not None:
            try:
                write_atomic(item.output, text)
            except OSError as exc:
                raise _WriteError(
                    f"cannot write {item.output}: {exc.strerror or exc}", operation="write"
                ) from exc
            return item.output
        if self._on_text is not None:
            try:
                self._on_text(item.seq, item.input, text)
            except Exception as exc:
                raise _WriteError(f"on_text failed: {one_line(exc)}", operation="write") from exc
        return None

    def _close_after_failure(self, slot: Slot, exc: VoxhubError) -> None:
        if (
            self._settings.close is not ClosePolicy.ALWAYS
            or slot.handle is None
            or isinstance(exc, WaitTimeoutError)
            or slot.stage is Stage.CLOSE
        ):
            return
        try:
            self._ops.close(slot.handle)
        except VoxhubError as close_exc:
            log.warning("close.failed", job_id=slot.handle.job_id, error=str(close_exc))

    def record_failure(
        self,
        slot: Slot,
        exc: VoxhubError,
        *,
        status: JobStatus | None = None,
        result: Result | None = None,
    ) -> Outcome | None:
        with self._lock:
            if slot.abandoned:
                return None
        item = slot.item
        error = one_line(exc)
        self._rows.finished(
            self.batch_id, item.seq, state=ItemState.FAILED, stage=slot.stage, error=error
        )
        self.emit("finished", slot, ItemState.FAILED.value, error)
        request = JobRequest(provider="")
        if slot.job_id is not None:
            found = self._ops.store.find(slot.job_id)
            if found is not None:
                request = found.request
                status = status or found.status
        return Outcome(
            request, slot.handle, status=status, result=result, error=exc,
            batch_id=self.batch_id, seq=item.seq, input=item.input, stage=slot.stage,
            output=None,
        )  # fmt: skip


def failed_job(record: JobRecord) -> str | None:
    """Why the job is failed in the store (one line), or ``None`` if it is not."""
    status = record.status
    if status is not None and status.state in (JobState.FAILED, JobState.CANCELLED):
        if status.reason == INTERRUPTED_REASON:
            return INTERRUPTED_REASON
        return one_line(failure(record.handle, status))
    if record.phase == Phase.RECORDED and record.error:
        return f"its submission was refused: {record.error}"
    return None


def held_elsewhere(record: JobRecord, store: Store) -> str | None:
    """Who holds the job's submission, when another live process does."""
    owner = record.owner
    if record.phase != Phase.SENDING or not owner or owner == store.owner:
        return None
    if owner_alive(owner) and (record.lease_until or 0.0) > store.clock.time():
        return owner
    return None


def in_this_process(handle: JobHandle) -> bool:
    """Whether the job's work runs inside this process, so it ends with it.

    Providers that run jobs in the submitting process (the ``local`` provider) name
    that process in ``vendor_state["owner"]`` (``host`` and ``pid``).
    """
    owner = handle.vendor_state.get("owner")
    if not isinstance(owner, Mapping):
        return False
    return owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname()


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a reader (or a
    crash) never sees half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".voxhub-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        Path(tmp).replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
