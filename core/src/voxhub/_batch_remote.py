"""A batch's inputs run by a :class:`concurrent.futures.Executor` (a Dask cluster).

The client (:class:`~voxhub._batch_runner.BatchRun` given an ``executor``) records and
claims the batch as always, then submits one task per unfinished input. A task carries
a :class:`Ticket` only: the batch id, the item's sequence, the claim it runs under and
a nonce of the run; never a request, a credential or a setting. The worker
(:func:`voxhub.distributed.run_item`) runs the input's steps on its own orchestrator
(its own environment and configuration, the client's store), records the outcome on
the item as the threaded path does, and returns an :class:`ItemReport` (plain data,
so it pickles); the client rebuilds the :class:`~voxhub._batch_model.Outcome` from the
store.

The ticket's claim is the client store's owner id, which the batch row holds while the
client runs it: a worker whose store has no such batch is on another store (the input
fails with an error saying so); a batch no longer held by that owner was stopped or
taken over, and the task leaves the input alone. A task that is already waiting checks
the claim every few seconds, so stopping the client stops its remote waits too.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Executor, Future
from typing import TYPE_CHECKING, Any, Literal

import attrs
import structlog

from ._batch_input import Carry, InputSteps, OnText, Runner, Slot, Stopped
from ._batch_model import ItemState, Outcome, Stage
from ._batch_plan import one_line
from .errors import ConfigurationError, VoxhubError
from .models import JobRequest
from .store import Phase

if TYPE_CHECKING:
    from ._batch_model import BatchSettings, EventKind
    from ._batch_plan import Planner
    from ._batch_rows import BatchRows

__all__ = ["ItemReport", "RemoteInputs", "RemoteItemError", "Ticket", "work_remote"]

log = structlog.get_logger("voxhub.batches")

#: How often a remote wait checks that the client still holds the batch (seconds).
CLAIM_CHECK_SECONDS = 2.0


@attrs.frozen
class Ticket:
    """What a task carries to a worker: which input of which batch, under whose claim.

    ``claim`` is the owner id of the client's store (``host:pid:random``), held in the
    batch row while the client runs it; ``run`` is random per run, so that two runs
    never share a task key on an executor that deduplicates tasks by their arguments.
    """

    batch_id: str
    seq: int
    claim: str
    run: str
    retry_failed: bool = False


ReportState = Literal["done", "failed", "left", "refused"]


@attrs.frozen
class ItemReport:
    """What a worker says of a task: ``done`` / ``failed`` (recorded on the item),
    ``left`` (the client no longer holds the batch: the item is untouched, pending), or
    ``refused`` (the worker could not run it at all, e.g. another store: nothing was
    recorded; the client records the failure). ``worker`` is ``host:pid``."""

    batch_id: str
    seq: int
    state: ReportState
    worker: str
    error: str | None = None
    error_kind: str | None = None
    exit_code: int = 1


class RemoteItemError(VoxhubError):
    """An input failed on a worker; the message is the one line its item records.

    ``kind`` names the error class it was there; the exit status is that class's.
    """

    def __init__(self, message: str, *, kind: str | None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.kind = kind
        self.exit_code = exit_code


def this_worker() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


# --- the worker's side ------------------------------------------------------------------


class _ClaimWatch(threading.Event):
    """A stop flag that is also set once the client no longer holds the batch (read from
    the store at most every :data:`CLAIM_CHECK_SECONDS`)."""

    def __init__(self, rows: BatchRows, batch_id: str, claim: str) -> None:
        super().__init__()
        self._rows = rows
        self._batch_id = batch_id
        self._claim = claim
        self._checked = time.monotonic()

    def is_set(self) -> bool:
        if super().is_set():
            return True
        now = time.monotonic()
        if now - self._checked >= CLAIM_CHECK_SECONDS:
            self._checked = now
            held = self._rows.holding(self._batch_id)
            if held is None or held[0] != self._claim:
                self.set()
        return super().is_set()


def work_remote(
    ops: Runner, rows: BatchRows, ticket: Ticket, *, carry: Carry, planner: Planner
) -> ItemReport:
    """Run one input's steps in this (worker) process; see :func:`voxhub.distributed.run_item`."""
    worker = this_worker()

    def report(state: ReportState, error: VoxhubError | str | None = None) -> ItemReport:
        text = one_line(error) if isinstance(error, VoxhubError) else error
        kind = type(error).__name__ if isinstance(error, VoxhubError) else None
        code = error.exit_code if isinstance(error, VoxhubError) else 1
        return ItemReport(ticket.batch_id, ticket.seq, state, worker, text, kind, code)

    held = rows.holding(ticket.batch_id)
    if held is None:
        return report(
            "refused",
            f"the worker's job store has no batch {ticket.batch_id} (worker {worker}): every "
            "worker must use the client's store (VOXHUB_STORE or the config's store)",
        )
    owner, settings = held
    if owner != ticket.claim:
        return report("left")  # stopped or taken over: the input stays pending
    item = rows.item(ticket.batch_id, ticket.seq)
    if item is None or item.job_id is None:
        return report("refused", f"batch {ticket.batch_id} has no input {ticket.seq} to run")
    if item.state is ItemState.DONE:
        return report("done")  # an executor's re-run of a task that had finished it
    steps = InputSteps(
        ops, rows, ticket.batch_id, settings, carry=carry, planner=planner,
        retry_failed=ticket.retry_failed, on_event=None, on_text=None, live={},
        lock=threading.Lock(), stop=_ClaimWatch(rows, ticket.batch_id, ticket.claim),
    )  # fmt: skip
    slot = Slot(item, job_id=item.job_id)
    try:
        outcome = steps.work(slot)
    except Stopped:
        steps.interrupt_once(slot)
        return report("left")
    except Exception as exc:  # a bug: say so on the item instead of losing it
        log.exception("batch.worker_failed", batch_id=ticket.batch_id)
        outcome = steps.record_failure(slot, VoxhubError(f"internal error: {exc!r}"))
    if outcome is None:
        return report("left")
    if outcome.error is None:
        return report("done")
    return report("failed", outcome.error)


# --- the client's side ------------------------------------------------------------------

Landed = Callable[[Slot, "Future[ItemReport]"], None]
Emit = Callable[["EventKind", Slot, "str | None", "str | None"], None]


class RemoteInputs:
    """The client's half: a task per input submitted to the executor, and the outcome of
    each ended task read back from the store."""

    def __init__(
        self,
        executor: Executor,
        ops: Runner,
        rows: BatchRows,
        batch_id: str,
        settings: BatchSettings,
        *,
        retry_failed: bool,
        on_text: OnText | None,
        emit: Emit,
    ) -> None:
        from .distributed import run_item  # the task: a module-level function, by reference

        self._task: Callable[[Ticket], ItemReport] = run_item
        self._executor = executor
        self._ops = ops
        self._rows = rows
        self._batch_id = batch_id
        self._settings = settings
        self._retry_failed = retry_failed
        self._on_text = on_text
        self._emit = emit
        self._run = secrets.token_hex(8)
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[Slot, Future[ItemReport]]] = {}
        self.workers: set[str] = set()  # ``host:pid`` of the workers that reported

    def submit(self, slot: Slot, landed: Landed) -> None:
        """Send the input's task; ``landed(slot, future)`` is called when it ends (from
        whatever thread the executor completes it on: keep it quick)."""
        ticket = Ticket(
            self._batch_id, slot.item.seq, self._ops.store.owner, self._run, self._retry_failed
        )
        future: Future[ItemReport] = self._executor.submit(self._task, ticket)
        with self._lock:
            self._pending[slot.item.seq] = (slot, future)
        self._emit("started", slot, None, None)
        future.add_done_callback(lambda f: landed(slot, f))

    def out(self) -> bool:
        """Whether some task is still out."""
        with self._lock:
            return bool(self._pending)

    def cancel_all(self) -> list[Slot]:
        """Cancel every task still out (those already running stop at their next check of
        the claim, once the batch is released); the slots they were for."""
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for _, future in pending:
            future.cancel()
        return [slot for slot, _ in pending]

    def outcome(self, slot: Slot, future: Future[ItemReport]) -> Outcome | None:
        """The ended task's outcome, read back from the store; ``None`` when the input was
        left alone (it stays pending for a resume)."""
        with self._lock:
            self._pending.pop(slot.item.seq, None)
        try:
            report = future.result()
        except CancelledError:
            return None
        except Exception as exc:  # noqa: BLE001 - the executor lost the task (KilledWorker...)
            return self._fail(
                slot,
                VoxhubError(
                    f"the executor gave up on this input ({type(exc).__name__}: "
                    f"{one_line(exc)}); `voxhub batches resume {self._batch_id}` runs it again",
                    operation="executor",
                ),
            )
        self.workers.add(report.worker)
        if report.state == "left":
            return None
        if report.state == "refused":
            return self._fail(slot, ConfigurationError(report.error or "the worker refused it"))
        return self._read(slot, report)

    def _read(self, slot: Slot, report: ItemReport) -> Outcome:
        item = self._rows.item(self._batch_id, slot.item.seq) or slot.item
        record = self._ops.store.find(item.job_id) if item.job_id else None
        request = record.request if record is not None else JobRequest(provider="")
        handle = record.handle if record is not None else None
        status = record.status if record is not None else None
        common: dict[str, Any] = {
            "batch_id": self._batch_id, "seq": item.seq, "input": item.input,
        }  # fmt: skip
        if item.state is not ItemState.DONE or record is None:
            error = RemoteItemError(
                item.error or report.error or "failed on a worker",
                kind=report.error_kind,
                exit_code=report.exit_code,
            )
            self._emit("finished", slot, ItemState.FAILED.value, str(error))
            return Outcome(request, handle, status=status, error=error, stage=item.stage,
                           **common)  # fmt: skip
        text = None
        if self._settings.format is not None and item.output is None:
            # Texts without an output directory are the client's to hand out: rendered
            # from the stored result (a vendor's own format was kept there by the worker).
            try:
                text = self._ops.export(
                    record.job_id, self._settings.format, speakers=self._settings.speakers
                )
                if self._on_text is not None:
                    self._on_text(item.seq, item.input, text)
            except Exception as exc:  # noqa: BLE001 - the caller's on_text: the input's failure
                slot.stage = Stage.WRITE
                return self._fail(slot, VoxhubError(f"on_text failed: {one_line(exc)}"))
        self._emit("finished", slot, ItemState.DONE.value, item.output)
        return Outcome(
            request, handle, status=status, result=self._ops.store.result(record.job_id),
            output=item.output, text=text, **common,
        )  # fmt: skip

    def _fail(self, slot: Slot, error: VoxhubError) -> Outcome:
        """Record the input failed here, on the client (the worker could not)."""
        item = slot.item
        record = self._ops.store.find(item.job_id) if item.job_id else None
        stage = slot.stage
        if stage is Stage.SUBMIT and record is not None and record.phase != Phase.RECORDED:
            stage = Stage.WAIT if record.phase != Phase.SENDING else Stage.SUBMIT
        text = one_line(error)
        self._rows.finished(self._batch_id, item.seq, state=ItemState.FAILED, stage=stage,
                            error=text)  # fmt: skip
        self._emit("finished", slot, ItemState.FAILED.value, text)
        return Outcome(
            record.request if record is not None else JobRequest(provider=""),
            record.handle if record is not None else None,
            status=record.status if record is not None else None,
            error=error, batch_id=self._batch_id, seq=item.seq, input=item.input, stage=stage,
        )  # fmt: skip
