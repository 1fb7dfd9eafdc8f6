"""Working through a recorded batch: :class:`BatchRun`.

The batch is claimed for this process (owner + lease, renewed by a timer); its
unfinished items are read from the store a page at a time and handed to at most
``concurrency`` worker threads. Each input goes submit -> wait -> fetch ->
export -> write -> close, every step isolated: a failure is recorded on the
item (state ``failed``, the stage, a one-line error) and the others go on.

Stopping (the first Ctrl-C) starts nothing new and lets requests in flight
land. Inputs that are only being waited for are left to resume (their jobs
keep running at the vendor), except jobs that run inside this process (the
``local`` provider's), which end with it: they are stopped and stored as
failed with reason ``interrupted``, which resume runs again.

With an ``executor`` (any :class:`concurrent.futures.Executor`; a Dask client's
``get_executor()``), each input is a task instead: see :mod:`voxhub._batch_remote`.
The claim stays here; stopping cancels the tasks not started and releases the
batch, which ends the remote waits at their next check of the claim.
"""

from __future__ import annotations

import collections
import queue
import threading
import weakref
from collections.abc import Iterator, Mapping
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING

import structlog

from ._batch_input import (
    INTERRUPTED_REASON,
    Carry,
    InputSteps,
    OnEvent,
    OnText,
    Runner,
    Slot,
    Stopped,
    failed_job,
    held_elsewhere,
)
from ._batch_marks import GroupedMarks
from ._batch_model import BatchCounts, BatchInfo, ItemState, Outcome, Stage
from ._batch_reads import PendingItem
from ._batch_remote import ItemReport, RemoteInputs
from .errors import InvalidInputError, VoxhubError
from .models import JobHandle, JobRequest

if TYPE_CHECKING:
    from ._batch_plan import Planner
    from ._batch_rows import BatchRows
    from ._records import JobRecord

__all__ = ["BatchRun"]

log = structlog.get_logger("voxhub.batches")


class BatchRun(Iterator[Outcome]):
    """A batch being worked through; iterate it for an :class:`Outcome` per input as it ends.

    Inputs a resume leaves alone come as outcomes with :attr:`Outcome.skipped`
    set (done inputs are not repeated). The batch is held by this process until
    the iteration ends or :meth:`close` is called (also on ``with`` exit).
    """

    def __init__(
        self,
        ops: Runner,
        rows: BatchRows,
        info: BatchInfo,
        *,
        carry: Carry,
        planner: Planner,
        concurrency: int,
        fail_fast: bool = False,
        retry_failed: bool = False,
        on_event: OnEvent | None = None,
        on_text: OnText | None = None,
        live: Mapping[int, JobRequest] | None = None,
        checks: Mapping[int, tuple[JobRequest, VoxhubError]] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.batch_id = info.batch_id
        self.total = info.counts.total
        self._ops = ops
        self._rows = rows
        self._concurrency = concurrency
        self._fail_fast = fail_fast
        self._retry_failed = retry_failed
        self._checks = dict(checks or {})
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._halt = False  # fail-fast: start nothing new, but not an interruption
        # Local inputs mark their rows in groups (see voxhub._batch_marks).
        self._marks = GroupedMarks(rows, info.batch_id)
        self._steps = InputSteps(
            ops, self._marks, info.batch_id, info.settings, carry=carry, planner=planner,
            retry_failed=retry_failed, on_event=on_event, on_text=on_text,
            live=dict(live or {}), lock=self._lock, stop=self._stop,
        )  # fmt: skip
        self._done = info.counts.done
        self._failed = info.counts.failed
        self._running = 0
        self._slots: dict[int, Slot] = {}
        self._tasks: queue.SimpleQueue[Slot | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[Slot, Outcome | Future[ItemReport] | None]] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._ready: collections.deque[Outcome] = collections.deque()
        self._after = 0  # the last sequence read from the store
        self._page: collections.deque[PendingItem] = collections.deque()
        self._exhausted = False
        self._closed = False
        # Inputs that failed their checks come out as failures on the batch's first run
        # only; a resume reports them as left alone.
        self._first_run = rows.claim(self.batch_id) == 1
        self._renewer = _Renewer(rows, self.batch_id)
        # Back-offs of this run's requests, for the display (removed when the run ends).
        self._unlisten = (
            ops.http.add_backoff_listener(self._steps.on_backoff) if on_event else lambda: None
        )
        self._finalizer = weakref.finalize(self, _forgotten, self._renewer, self._marks)
        # Inputs whose requests only this process knows (secret URL headers) never go to
        # an executor: they run on this process's threads.
        self._local_only = frozenset(live or {})
        self._remote = None if executor is None else RemoteInputs(
            executor, ops, rows, info.batch_id, info.settings, retry_failed=retry_failed,
            on_text=on_text, emit=self._steps.emit,
        )  # fmt: skip

    # --- the public face -----------------------------------------------------------------

    def counts(self) -> BatchCounts:
        """Counts per state, as this run knows them (cheap, from any thread)."""
        with self._lock:
            return BatchCounts(
                total=self.total,
                pending=self.total - self._done - self._failed,
                running=self._running,
                done=self._done,
                failed=self._failed,
            )

    def stop(self) -> None:
        """Start nothing new; requests in flight land; inputs only waited for are left
        for resume (jobs running inside this process are stopped, marked interrupted).
        Thread-safe, and safe to call from a signal handler."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def close(self) -> None:
        """End the run now (as :meth:`stop`, then give the batch up)."""
        if self._closed:
            return
        self.stop()
        self._finish()

    def __enter__(self) -> BatchRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> BatchRun:
        return self

    def __next__(self) -> Outcome:
        while True:
            if self._ready:
                return self._ready.popleft()
            if self._closed:
                raise StopIteration
            try:
                self._feed()
                if self._ready:
                    continue
                outcome = self._next_result()
            except BaseException:
                self._finish()
                raise
            if outcome is not None:
                if outcome.seq is not None:
                    self._written(outcome.seq)
                return outcome

    def _written(self, seq: int) -> None:
        """Input ``seq``'s marks are in the store before its outcome is yielded."""
        try:
            self._marks.written(seq)
        except BaseException:
            self._finish()
            raise

    # --- feeding the workers -------------------------------------------------------------

    def _starting(self) -> bool:
        return not (self._stop.is_set() or self._halt)

    def _feed(self) -> None:
        """Start inputs while slots are free; queue the outcomes of inputs left alone."""
        while self._starting() and len(self._slots) < self._concurrency and not self._ready:
            item = self._next_item()
            if item is None:
                return
            record = None if item.job_id is None else self._ops.store.find(item.job_id)
            skipped = self._skip(item, record)
            if skipped is not None:
                self._ready.append(skipped)
                continue
            remote = self._remote is not None and item.seq not in self._local_only
            # A worker here starts from this record; one elsewhere reads its own.
            slot = Slot(item, job_id=item.job_id, record=None if remote else record)
            with self._lock:
                self._slots[item.seq] = slot
                self._running += 1
                if item.state is ItemState.FAILED:
                    self._failed -= 1  # tried again: pending until it ends
            if remote:
                assert self._remote is not None
                self._remote.submit(slot, self._landed)
                continue
            self._start_thread()
            self._tasks.put(slot)

    def _landed(self, slot: Slot, future: Future[ItemReport]) -> None:
        self._results.put((slot, future))

    def _next_item(self) -> PendingItem | None:
        if self._exhausted:
            return None
        if not self._page:
            self._page = collections.deque(self._rows.pending_page(self.batch_id, self._after))
            if not self._page:
                self._exhausted = True
                return None
        item: PendingItem = self._page.popleft()
        self._after = item.seq
        return item

    def _start_thread(self) -> None:
        if len(self._threads) >= min(self._concurrency, len(self._slots)):
            return
        # Daemon threads: an input that is only being waited for must not keep a
        # stopped process alive (its job keeps running; resume picks it up).
        thread = threading.Thread(
            target=self._worker, name=f"voxhub-batch-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _skip(self, item: PendingItem, record: JobRecord | None) -> Outcome | None:
        """The outcome of an input this run leaves alone, or ``None`` to run it
        (``record``: its job's, as just read)."""
        request = JobRequest(provider="")
        if item.job_id is None:
            if item.state is not ItemState.FAILED:
                return None
            if self._first_run:
                request, error = self._checks.get(item.seq, (request, None))
                return Outcome(
                    request, None, error=error or InvalidInputError(item.error or "invalid"),
                    batch_id=self.batch_id, seq=item.seq, input=item.input, stage=Stage.CHECK,
                )  # fmt: skip
            return self._skipped(item, request, None, f"failed its checks: {item.error}")
        if record is None:
            return None
        request = record.request
        if item.state is ItemState.FAILED and not self._retry_failed:
            failed = failed_job(record)
            if failed is not None and failed != INTERRUPTED_REASON:
                # Its job failed at the vendor (or was refused): running it again is a new,
                # maybe paid, job, so only on request. A failed wait, fetch, export, write
                # or close is finished by any resume: its job is fine.
                where = f" at {item.stage.value}" if item.stage else ""
                return self._skipped(
                    item, request, record.handle,
                    f"failed before{where}: {item.error}; --retry-failed runs it again",
                )  # fmt: skip
        if item.state is ItemState.PENDING and not self._retry_failed:
            failed = failed_job(record)
            if failed is not None and failed != INTERRUPTED_REASON:
                # Its job failed (e.g. refused) before the item was written: that is final.
                self._rows.finished(
                    self.batch_id, item.seq, state=ItemState.FAILED, stage=Stage.WAIT,
                    error=failed,
                )  # fmt: skip
                with self._lock:
                    self._failed += 1
                return self._skipped(
                    item, request, record.handle,
                    f"its job failed: {failed}; --retry-failed submits it again",
                )  # fmt: skip
        # A fresh batch follows another process sending the same input (it takes that
        # job's outcome); a resume leaves held jobs to their holder and says so.
        holder = None if self._first_run else held_elsewhere(record, self._ops.store)
        if holder is not None:
            return self._skipped(
                item, request, record.handle, f"job {record.job_id} is held by {holder}"
            )
        return None

    def _skipped(
        self, item: PendingItem, request: JobRequest, handle: JobHandle | None, why: str
    ) -> Outcome:
        return Outcome(
            request, handle, batch_id=self.batch_id, seq=item.seq, input=item.input,
            stage=item.stage, output=item.output, skipped=why,
        )  # fmt: skip

    def _next_result(self) -> Outcome | None:
        """The next ended input's outcome; ``None`` when there is nothing left to wait for
        (then the run is finished)."""
        while True:
            if not self._slots:
                if self._starting() and not self._exhausted:
                    return None  # room to start more: back to feeding
                self._finish()
                return None
            if self._stop.is_set() and self._remote is not None and self._remote.out():
                self._abandon_remote()
                continue
            if self._stop.is_set() and self._only_waiting():
                self._abandon()
                self._finish()
                return None
            try:
                slot, landed = self._results.get(timeout=0.1)
            except queue.Empty:
                continue
            if slot.abandoned:
                continue
            if isinstance(landed, Future):
                assert self._remote is not None
                outcome = self._remote.outcome(slot, landed)
            else:
                outcome = landed
            with self._lock:
                self._slots.pop(slot.item.seq, None)
                self._running -= 1
                if outcome is None:
                    continue
                if outcome.error is None:
                    self._done += 1
                else:
                    self._failed += 1
                    if self._fail_fast:
                        self._halt = True
            return outcome

    def _only_waiting(self) -> bool:
        with self._lock:
            return all(slot.stage is Stage.WAIT for slot in self._slots.values())

    def _abandon(self) -> None:
        """Leave inputs that are only waited for; stop the jobs that end with this process."""
        with self._lock:
            slots = list(self._slots.values())
            for slot in slots:
                slot.abandoned = True
            self._slots.clear()
            self._running = 0
        for slot in slots:
            self._steps.interrupt_once(slot)

    def _abandon_remote(self) -> None:
        """Stopped: cancel the tasks out; the batch's release ends those already running."""
        assert self._remote is not None
        slots = self._remote.cancel_all()
        with self._lock:
            for slot in slots:
                slot.abandoned = True
                if self._slots.pop(slot.item.seq, None) is not None:
                    self._running -= 1

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._remote is not None:
            self._remote.cancel_all()
        for _ in self._threads:
            self._tasks.put(None)
        self._renewer.cancel()
        self._unlisten()
        with self._lock:
            unfinished = self._done + self._failed < self.total
        interrupted = self._stop.is_set() and unfinished
        try:
            self._marks.close()  # before the release, which resets started rows
        except VoxhubError as exc:  # those inputs are pending: a resume finishes them
            log.warning("batch.marks_failed", batch_id=self.batch_id, error=str(exc))
        try:
            self._rows.release(self.batch_id, interrupted=interrupted)
        except VoxhubError as exc:  # the claim then simply runs out
            log.warning("batch.release_failed", batch_id=self.batch_id, error=str(exc))

    # --- one input -------------------------------------------------------------------

    def _worker(self) -> None:
        while True:
            slot = self._tasks.get()
            if slot is None:
                return
            try:
                outcome = self._steps.work(slot)
            except Stopped:
                outcome = None
                self._steps.interrupt_once(slot)
            except BaseException as exc:  # a bug: say so on the item instead of hanging
                log.exception("batch.worker_failed", batch_id=self.batch_id)
                outcome = self._steps.record_failure(slot, VoxhubError(f"internal error: {exc!r}"))
            if slot.abandoned:
                continue  # the run ended without it; its item stays pending for resume
            self._results.put((slot, outcome))


def _forgotten(renewer: _Renewer, marks: GroupedMarks) -> None:
    """A run dropped without being closed: let its claim run out, write its marks."""
    renewer.cancel()
    try:
        marks.close()
    except VoxhubError as exc:
        log.warning("batch.marks_failed", error=str(exc))


class _Renewer:
    """Renews a batch claim in the background until cancelled."""

    def __init__(self, rows: BatchRows, batch_id: str) -> None:
        self._rows = rows
        self._batch_id = batch_id
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name="voxhub-batch-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = self._rows.LEASE_SECONDS / 3
        while not self._cancelled.wait(interval):
            try:
                self._rows.renew(self._batch_id)
            except VoxhubError as exc:
                log.warning("batch.renew_failed", batch_id=self._batch_id, error=str(exc))

    def cancel(self) -> None:
        self._cancelled.set()
