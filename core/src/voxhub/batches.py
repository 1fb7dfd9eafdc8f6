"""Whole jobs and durable batches: run one job to its end, record and run many, resume.

A batch is recorded whole before anything is sent: the batch, every input
(absolute paths, normalized URLs, the output file it will get) and a job per
input, in one transaction (:meth:`Batches.record_batch`). Then
:meth:`Batches.run_batch` works through it with bounded concurrency
(:class:`~voxhub._batch_runner.BatchRun`); every input's failure is its own,
recorded with the stage it failed in. Running a batch again resumes it: done
inputs are not repeated, failed ones are left alone unless asked
(``retry_failed``), and a crash at any moment leaves a batch that a resume
finishes.

:class:`Batches` works through the orchestrator's own operations, so a batch
does exactly what the same calls made one by one would do.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Protocol

import structlog

from ._batch_input import (
    INTERRUPTED_REASON,
    Carry,
    OnEvent,
    OnText,
    Runner,
    failed_job,
    held_elsewhere,
)
from ._batch_model import (
    BatchCounts,
    BatchEvent,
    BatchInfo,
    BatchSettings,
    ClosePolicy,
    ItemRow,
    ItemState,
    Outcome,
    Stage,
    close_policy,
)
from ._batch_plan import Planner, absolute, settings_with_defaults
from ._batch_remote import ItemReport, Ticket, work_remote
from ._batch_rows import BatchRows
from ._batch_runner import BatchRun
from .errors import InvalidInputError, JobFailedError, VoxhubError, WaitTimeoutError
from .models import JobHandle, JobRequest, JobState, JobStatus
from .store import Phase

if TYPE_CHECKING:
    from .callback_tokens import CallbackTokens
    from .store import JobRecord

__all__ = [
    "BatchCounts",
    "BatchEvent",
    "BatchInfo",
    "BatchRun",
    "BatchSettings",
    "Batches",
    "ClosePolicy",
    "ItemRow",
    "ItemState",
    "JobOperations",
    "Outcome",
    "Stage",
    "close_policy",
]

log = structlog.get_logger("voxhub.batches")

#: Manifest columns, in order.
MANIFEST_FIELDS = ("seq", "input", "job_id", "state", "job_state", "output", "error", "stage")


class JobOperations(Runner, Protocol):
    """The orchestrator operations whole jobs and batches are made of: a run's
    (:class:`~voxhub._batch_input.Runner`) and those that record and submit."""

    @property
    def callback_tokens(self) -> CallbackTokens: ...

    def prepare(self, request: JobRequest) -> JobRequest: ...

    def submit(
        self, request: JobRequest, *, batch: str | None = ..., callback: bool | None = ...
    ) -> JobHandle: ...


class Batches:
    """Runs jobs to their end, one or many, and keeps batches in the store.

    ``carry`` is how a stored job is brought to ``submitted``.
    """

    def __init__(self, jobs: JobOperations, carry: Carry) -> None:
        self._jobs = jobs
        self._carry = carry
        self.rows = BatchRows(jobs.store)
        self._planner = Planner(jobs)
        # What only this process knows of a batch it recorded (requests with secret URL
        # headers, and the errors of inputs that failed their checks), until it runs it.
        self._memory: dict[
            str, tuple[dict[int, JobRequest], dict[int, tuple[JobRequest, VoxhubError]]]
        ] = {}
        self._memory_lock = threading.Lock()

    # --- one job -----------------------------------------------------------------------

    def run(
        self,
        request: JobRequest,
        *,
        timeout: float | None = None,
        close: str = ClosePolicy.NEVER,
        batch: str | None = None,
        callback: bool | None = None,
    ) -> Outcome:
        """Submit, wait and fetch one job; raises its typed error, returns an ok outcome."""
        close_policy(close)
        handle = self._jobs.submit(request, batch=batch, callback=callback)
        return self.finish(request, handle, timeout=timeout, close=close).raise_for_error()

    def finish(
        self, request: JobRequest, handle: JobHandle, *, timeout: float | None, close: str
    ) -> Outcome:
        """Wait for a submitted job, fetch its result and close it as ``close`` says; an
        error is returned in the outcome (:meth:`Outcome.raise_for_error` raises it)."""
        policy = close_policy(close)
        status: JobStatus | None = None
        seen: list[JobStatus] = []
        try:
            # wait + fetch, a success stored together with its result.
            status, result = self._jobs.complete(handle, timeout=timeout, on_status=seen.append)
            if policy.after_success:
                self._jobs.close(handle)
            return Outcome(request, handle, status=status, result=result)
        except VoxhubError as exc:
            if policy is ClosePolicy.ALWAYS and not isinstance(exc, WaitTimeoutError):
                try:
                    self._jobs.close(handle)
                except VoxhubError as close_exc:
                    log.warning("close.failed", job_id=handle.job_id, error=str(close_exc))
            stage = Stage.WAIT
            if seen and seen[-1].is_terminal and seen[-1].state is not JobState.FAILED:
                status = seen[-1]  # the wait ended; fetching its result failed
                stage = Stage.FETCH
            if status is None and isinstance(exc, JobFailedError):
                status = self._jobs.store.get(handle.job_id).status
            return Outcome(request, handle, status=status, error=exc, stage=stage)

    # --- batches -----------------------------------------------------------------------

    def record_batch(
        self, requests: Iterable[JobRequest], *, settings: BatchSettings | None = None
    ) -> BatchInfo:
        """Check every request and record the batch, its inputs and their jobs in one
        transaction; nothing is sent. Inputs that fail their checks are recorded as
        failed (stage ``check``) with the check's one-line error."""
        settings = settings_with_defaults(settings or BatchSettings())
        planned = self._planner.plan(requests, settings)
        self.rows.record(planned.plan)
        if planned.live or planned.checks:
            with self._memory_lock:
                self._memory[planned.plan.batch_id] = (planned.live, planned.checks)
        log.info("batch.recorded", batch_id=planned.plan.batch_id, inputs=len(planned.plan.items))
        return self.rows.info(planned.plan.batch_id)

    def run_batch(
        self,
        batch_id: str,
        *,
        concurrency: int | None = None,
        fail_fast: bool = False,
        retry_failed: bool = False,
        on_event: OnEvent | None = None,
        on_text: OnText | None = None,
        executor: Executor | None = None,
    ) -> BatchRun:
        """Work through the batch's unfinished inputs (a resume when it ran before).

        Claims the batch for this process at once (:class:`~voxhub.errors.BatchBusyError`
        when another live process holds it); iterate the returned run for outcomes.
        With an ``executor``, each input is a task run by :func:`voxhub.distributed.run_item`.
        """
        info = self.rows.info(batch_id)  # an id, or a name that labels one batch
        batch_id = info.batch_id
        workers = info.settings.concurrency if concurrency is None else concurrency
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InvalidInputError("concurrency must be at least 1", field="concurrency")
        with self._memory_lock:
            live, checks = self._memory.pop(batch_id, ({}, {}))
        return BatchRun(
            self._jobs,
            self.rows,
            info,
            carry=self._carry,
            planner=self._planner,
            concurrency=workers,
            fail_fast=fail_fast,
            retry_failed=retry_failed,
            on_event=on_event,
            on_text=on_text,
            live=live,
            checks=checks,
            executor=executor,
        )

    def run_item(self, ticket: Ticket) -> ItemReport:
        """Run one input of a batch another process runs (an executor's task, here)."""
        return work_remote(self._jobs, self.rows, ticket, carry=self._carry, planner=self._planner)

    def run_many(
        self,
        requests: Iterable[JobRequest],
        *,
        concurrency: int = 4,
        timeout: float | None = None,
        close: str = ClosePolicy.NEVER,
        batch: str | None = None,
        callback: bool | None = None,
        fail_fast: bool = False,
        on_event: OnEvent | None = None,
        on_text: OnText | None = None,
        format: str | None = None,
        output_dir: str | None = None,
        executor: Executor | None = None,
    ) -> BatchRun:
        """Record the batch (now, in this call), then run it; see :meth:`run_batch`."""
        settings = BatchSettings(
            name=batch,
            format=format,
            output_dir=output_dir,
            close=ClosePolicy(close_policy(close)),
            timeout=timeout,
            callback=callback,
            concurrency=concurrency,
        )
        info = self.record_batch(requests, settings=settings)
        return self.run_batch(
            info.batch_id, fail_fast=fail_fast, on_event=on_event, on_text=on_text,
            executor=executor,
        )  # fmt: skip

    def prepare_all(self, requests: Iterable[JobRequest]) -> list[JobRequest]:
        """Every request checked (the first error raised), paths absolute."""
        return [self._jobs.prepare(absolute(r)) for r in requests]

    # --- jobs-level resume ---------------------------------------------------------------

    def resume(
        self,
        *,
        batch: str | None = None,
        provider: str | None = None,
        timeout: float | None = None,
        concurrency: int = 4,
        resubmit_in_doubt: bool = False,
        retry_failed: bool = False,
    ) -> Iterator[Outcome]:
        """Carry every unfinished stored job to its end, at most ``concurrency`` at a time.

        Jobs the store shows failed (refused submissions included) are left alone
        unless ``retry_failed`` (then the input runs as a new job); jobs another live
        process is sending are left to it. Each job left alone yields an outcome with
        :attr:`Outcome.skipped` saying why. ``batch`` is a batch id or name.
        """
        if concurrency < 1:
            raise InvalidInputError("concurrency must be at least 1", field="concurrency")
        labels: list[str | None] = [None]
        if batch is not None:
            labels = [batch, *(b for b in self.rows.ids_named(batch) if b != batch)]
        store = self._jobs.store

        def candidates() -> Iterator[JobRecord]:
            for label in labels:
                for record in store.jobs(batch=label, provider=provider):
                    if record.phase == Phase.CLOSED:
                        continue
                    if record.has_result and record.status and record.status.is_terminal:
                        continue
                    yield record

        def carry(record: JobRecord) -> Outcome:
            handle = record.handle
            try:
                failed = failed_job(record)
                if failed is not None and record.phase != Phase.RECORDED:
                    # A new attempt of the input: its failed job is superseded.
                    handle = self._jobs.submit(record.request, batch=record.batch)
                else:
                    handle = self._carry(record, resubmit_in_doubt)
                return self.finish(record.request, handle, timeout=timeout, close=ClosePolicy.NEVER)
            except VoxhubError as exc:
                return Outcome(record.request, handle, error=exc, stage=Stage.SUBMIT)

        def left_alone(record: JobRecord) -> str | None:
            failed = failed_job(record)
            if failed is not None and self.rows.superseded(record.job_id):
                return f"job {record.job_id} failed and was run again as a newer job"
            if failed is not None and not (retry_failed or failed == INTERRUPTED_REASON):
                return f"job {record.job_id} failed: {failed}; --retry-failed submits it again"
            holder = held_elsewhere(record, store)
            if holder is not None:
                return f"job {record.job_id} is being submitted by {holder}"
            return None

        pending: set[Future[Outcome]] = set()
        source = candidates()
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="voxhub") as pool:
            while True:
                while len(pending) < concurrency:
                    record = next(source, None)
                    if record is None:
                        break
                    why = left_alone(record)
                    if why is not None:
                        yield Outcome(record.request, record.handle, status=record.status,
                                      skipped=why)  # fmt: skip
                        continue
                    pending.add(pool.submit(carry, record))
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()

    # --- reading batches -----------------------------------------------------------------

    def batches(self, limit: int = 50, offset: int = 0) -> list[BatchInfo]:
        """Stored batches, newest first, one page."""
        return self.rows.infos(limit, offset)

    def batch(self, batch_id: str) -> BatchInfo:
        """One stored batch; :class:`~voxhub.errors.NotFoundError` if there is none."""
        return self.rows.info(batch_id)

    def batch_count(self) -> int:
        """How many batches are stored."""
        return self.rows.count()

    def batch_items(
        self,
        batch_id: str,
        *,
        state: ItemState | str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[ItemRow]:
        """The batch's inputs in order (streamed from the store a page at a time)."""
        # A typed error for an unknown batch before iterating; a name becomes its id.
        batch_id = self.rows.info(batch_id).batch_id
        wanted = None if state is None else _item_state(state)
        return self.rows.items(batch_id, state=wanted, limit=limit, offset=offset)

    def manifest(self, batch_id: str, fmt: str = "jsonl") -> Iterator[str]:
        """The batch as lines (without their newline): input → job id → state → output →
        error, as JSON Lines or CSV (a header line first)."""
        if fmt not in ("jsonl", "csv"):
            raise InvalidInputError(
                f"manifest format must be jsonl or csv, not {fmt!r}", field="format"
            )
        items = self.batch_items(batch_id)
        return _jsonl(items) if fmt == "jsonl" else _csv(items)


def _item_state(value: ItemState | str) -> ItemState:
    try:
        return ItemState(value)
    except ValueError:
        choices = ", ".join(s.value for s in ItemState)
        raise InvalidInputError(
            f"state must be one of {choices}, not {value!r}", field="state"
        ) from None


def _fields(item: ItemRow) -> dict[str, object]:
    return {
        "seq": item.seq,
        "input": item.input,
        "job_id": item.job_id,
        "state": item.state.value,
        "job_state": item.job_state,
        "output": item.output,
        "error": item.error,
        "stage": None if item.stage is None else item.stage.value,
    }


def _jsonl(items: Iterator[ItemRow]) -> Iterator[str]:
    for item in items:
        yield json.dumps(_fields(item), ensure_ascii=False, separators=(",", ":"))


def _csv(items: Iterator[ItemRow]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="")

    def line(values: Iterable[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(["" if v is None else v for v in values])
        return buffer.getvalue()

    yield line(MANIFEST_FIELDS)
    for item in items:
        yield line(_fields(item).values())
