"""The orchestrator's whole-job and batch steps (a part of
:class:`voxhub.orchestrator.Orchestrator`, kept apart to keep each module small).

See :mod:`voxhub.batches` for what a durable batch is and how it runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from ._batch_input import OnEvent, OnText
from ._batch_model import BatchInfo, BatchSettings, ClosePolicy, ItemRow, ItemState, Outcome
from ._batch_runner import BatchRun

if TYPE_CHECKING:
    from ._batch_remote import ItemReport, Ticket
    from .batches import Batches
    from .models import JobHandle, JobRequest

__all__ = ["BatchSteps"]


class BatchSteps:
    """``run``, ``run_many``, the batch and resume steps of
    :class:`~voxhub.orchestrator.Orchestrator`."""

    _batches: Batches

    def run(
        self,
        request: JobRequest,
        *,
        timeout: float | None = None,
        close: str = ClosePolicy.NEVER,
        batch: str | None = None,
        callback: bool | None = None,
    ) -> Outcome:
        """Submit, wait and fetch one job; returns its (ok) outcome.

        Raises the typed error when anything fails: an invalid request
        (:class:`~voxhub.errors.InvalidInputError`), a refused submission, a failed job
        (:class:`~voxhub.errors.JobFailedError`), a wait timeout...
        """
        return self._batches.run(
            request, timeout=timeout, close=close, batch=batch, callback=callback
        )

    def finish(
        self,
        request: JobRequest,
        handle: JobHandle,
        *,
        timeout: float | None = None,
        close: str = ClosePolicy.NEVER,
    ) -> Outcome:
        """Wait for a submitted job, fetch its result and close it as ``close`` says.

        An error comes back in the outcome (``outcome.raise_for_error()`` raises it).
        """
        return self._batches.finish(request, handle, timeout=timeout, close=close)

    def record_batch(
        self, requests: Iterable[JobRequest], *, settings: BatchSettings | None = None
    ) -> BatchInfo:
        """Check every request and record the batch, each input and its job in one
        transaction, before anything is sent (see :mod:`voxhub.batches`).

        Local paths are stored absolute and URLs normalized; output file names
        (with ``settings.output_dir``) are decided here. An input that fails its
        checks is recorded as failed at stage ``check`` and the others go on.
        """
        return self._batches.record_batch(requests, settings=settings)

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
        """Work through a recorded batch's unfinished inputs; running it again resumes it.

        Each input goes submit, wait, fetch, export and write (or ``on_text(seq, input,
        text)``), close; a step's failure is recorded on that input only. Inputs
        that failed before are left alone unless ``retry_failed``; a job the store
        shows failed is never submitted again without it. ``fail_fast`` starts
        nothing new after the first failure. Raises
        :class:`~voxhub.errors.BatchBusyError` when another live process runs it.
        ``on_event`` is called from worker threads (keep it quick).

        ``executor`` (any :class:`concurrent.futures.Executor`, e.g. a Dask client's
        ``get_executor()``) runs each input as a task instead of on this process's
        threads, at most ``concurrency`` at a time: the task carries the batch id and
        the input's number only, and the worker runs it with its own configuration on
        the same store (see :mod:`voxhub.distributed`). The batch stays claimed here.
        """
        return self._batches.run_batch(
            batch_id,
            concurrency=concurrency,
            fail_fast=fail_fast,
            retry_failed=retry_failed,
            on_event=on_event,
            on_text=on_text,
            executor=executor,
        )

    def run_item(self, ticket: Ticket) -> ItemReport:
        """Run one input of a batch that another process runs with an executor, here,
        and record its outcome on the item (:func:`voxhub.distributed.run_item` calls
        this on a worker's orchestrator)."""
        return self._batches.run_item(ticket)

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
        """Record a batch of ``requests`` (in this call), then run it with at most
        ``concurrency`` jobs in flight; iterate the run for an outcome per input.

        ``batch`` names the batch (its id is generated: ``run.batch_id``). One
        input's failure never stops the others: it is in its outcome. With
        ``format``, each result is exported: into a file per input in
        ``output_dir``, else to ``on_text`` and the outcome's ``text``. ``executor``:
        as for :meth:`run_batch`.
        """
        return self._batches.run_many(
            requests,
            concurrency=concurrency,
            timeout=timeout,
            close=close,
            batch=batch,
            callback=callback,
            fail_fast=fail_fast,
            on_event=on_event,
            on_text=on_text,
            format=format,
            output_dir=output_dir,
            executor=executor,
        )

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
        """Carry every unfinished stored job to its end: submit what never left, recover
        what is in doubt, wait for what runs, fetch what is done but not stored.

        Failed jobs are left alone unless ``retry_failed``, and jobs another live
        process is submitting are left to it: each yields an outcome whose
        ``skipped`` says why.
        """
        return self._batches.resume(
            batch=batch,
            provider=provider,
            timeout=timeout,
            concurrency=concurrency,
            resubmit_in_doubt=resubmit_in_doubt,
            retry_failed=retry_failed,
        )

    def batches(self, limit: int = 50, offset: int = 0) -> list[BatchInfo]:
        """Stored batches, newest first, with their counts per state (one page)."""
        return self._batches.batches(limit, offset)

    def batch(self, batch_id: str) -> BatchInfo:
        """One stored batch; :class:`~voxhub.errors.NotFoundError` if there is none."""
        return self._batches.batch(batch_id)

    def batch_count(self) -> int:
        """How many batches are stored."""
        return self._batches.batch_count()

    def batch_items(
        self,
        batch_id: str,
        *,
        state: ItemState | str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[ItemRow]:
        """A batch's inputs in order, with their jobs' states (streamed, paged in SQL)."""
        return self._batches.batch_items(batch_id, state=state, limit=limit, offset=offset)

    def manifest(self, batch_id: str, fmt: str = "jsonl") -> Iterator[str]:
        """The batch as JSON Lines or CSV lines (without newlines): input, job id, state,
        job state, output file, error, stage."""
        return self._batches.manifest(batch_id, fmt)
