"""Whole jobs and batches: run one job to its end, many at once, or resume a stored batch.

:class:`Batches` works through the orchestrator's own operations (the
:class:`JobOperations` protocol), so a batch does exactly what the same calls
made one by one would do; it adds the thread pool and the outcome records.
One job's failure never stops the others: errors go into its :class:`Outcome`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Protocol

import attrs
import structlog

from .errors import InvalidInputError, JobFailedError, VoxhubError, WaitTimeoutError
from .models import JobHandle, JobRequest, JobState, JobStatus, Result
from .store import Phase

if TYPE_CHECKING:
    from .store import JobRecord, Store

__all__ = ["Batches", "ClosePolicy", "JobOperations", "Outcome", "close_policy"]

log = structlog.get_logger("voxhub.batches")


class ClosePolicy(enum.StrEnum):
    """When ``run`` closes a job at the provider: never, after fetching, or always."""

    NEVER = "never"
    AFTER_FETCH = "after-fetch"
    ALWAYS = "always"


@attrs.frozen
class Outcome:
    """What happened to one job of a batch: its handle, final status, result or error."""

    request: JobRequest
    handle: JobHandle | None
    status: JobStatus | None = None
    result: Result | None = None
    error: VoxhubError | None = None

    @property
    def ok(self) -> bool:
        """Whether the job succeeded and its result is here."""
        return (
            self.error is None
            and self.status is not None
            and (self.status.state is JobState.SUCCEEDED)
        )


class JobOperations(Protocol):
    """The orchestrator operations a batch is made of."""

    @property
    def store(self) -> Store: ...

    def submit(
        self, request: JobRequest, *, batch: str | None = ..., callback: bool | None = ...
    ) -> JobHandle: ...

    def complete(
        self,
        job: JobHandle,
        *,
        timeout: float | None = ...,
        on_status: Callable[[JobStatus], None] | None = ...,
    ) -> tuple[JobStatus, Result]: ...

    def close(self, job: JobHandle) -> None: ...


#: Brings a stored job to ``submitted`` (:meth:`voxhub.submission.Submission.carry`).
Carry = Callable[["JobRecord", bool], JobHandle]


def close_policy(value: str) -> ClosePolicy:
    """``value`` as a :class:`ClosePolicy`; a typed error naming ``close`` otherwise."""
    try:
        return ClosePolicy(value)
    except ValueError:
        choices = ", ".join(p.value for p in ClosePolicy)
        raise InvalidInputError(
            f"close must be one of {choices}, not {value!r}", field="close"
        ) from None


class Batches:
    """Runs jobs to their end, one or many, through an orchestrator's operations.

    ``carry`` is how :meth:`resume` brings a stored job to ``submitted``.
    """

    def __init__(self, jobs: JobOperations, carry: Carry) -> None:
        self._jobs = jobs
        self._carry = carry

    def run(
        self,
        request: JobRequest,
        *,
        timeout: float | None = None,
        close: str = ClosePolicy.NEVER,
        batch: str | None = None,
        callback: bool | None = None,
    ) -> Outcome:
        """Submit, wait and fetch one job; errors are returned in the outcome, not raised."""
        handle: JobHandle | None = None
        try:
            close_policy(close)
            handle = self._jobs.submit(request, batch=batch, callback=callback)
            return self.finish(request, handle, timeout=timeout, close=close)
        except VoxhubError as exc:
            return Outcome(request, handle, error=exc)

    def finish(
        self, request: JobRequest, handle: JobHandle, *, timeout: float | None, close: str
    ) -> Outcome:
        """Wait for a submitted job, fetch its result and close it as ``close`` says."""
        policy = close_policy(close)
        status: JobStatus | None = None
        seen: list[JobStatus] = []
        try:
            # wait + fetch, a success stored together with its result.
            status, result = self._jobs.complete(handle, timeout=timeout, on_status=seen.append)
            if policy in (ClosePolicy.AFTER_FETCH, ClosePolicy.ALWAYS):
                self._jobs.close(handle)
            return Outcome(request, handle, status=status, result=result)
        except VoxhubError as exc:
            if policy is ClosePolicy.ALWAYS and not isinstance(exc, WaitTimeoutError):
                try:
                    self._jobs.close(handle)
                except VoxhubError as close_exc:
                    log.warning("close.failed", job_id=handle.job_id, error=str(close_exc))
            if seen and seen[-1].is_terminal and seen[-1].state is not JobState.FAILED:
                status = seen[-1]  # the wait ended; fetching its result failed
            if status is None and isinstance(exc, JobFailedError):
                status = self._jobs.store.get(handle.job_id).status
            return Outcome(request, handle, status=status, error=exc)

    def run_many(
        self,
        requests: Iterable[JobRequest],
        *,
        concurrency: int = 4,
        timeout: float | None = None,
        close: str = ClosePolicy.NEVER,
        batch: str | None = None,
        callback: bool | None = None,
    ) -> Iterator[Outcome]:
        """Run a batch with at most ``concurrency`` jobs in flight, yielding outcomes as they end.

        Requests are read from ``requests`` only as slots free up, so a long (or
        endless) iterable is never held in memory.
        """
        if concurrency < 1:
            raise InvalidInputError("concurrency must be at least 1", field="concurrency")
        close_policy(close)
        pending: set[Future[Outcome]] = set()
        source = iter(requests)
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="voxhub") as pool:
            while True:
                while len(pending) < concurrency:
                    try:
                        request = next(source)
                    except StopIteration:
                        break
                    pending.add(
                        pool.submit(
                            self.run,
                            request,
                            timeout=timeout,
                            close=close,
                            batch=batch,
                            callback=callback,
                        )
                    )
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()

    def resume(
        self,
        *,
        batch: str | None = None,
        provider: str | None = None,
        timeout: float | None = None,
        concurrency: int = 4,
        resubmit_in_doubt: bool = False,
    ) -> Iterator[Outcome]:
        """Carry every unfinished stored job to its end, in store order."""
        records = [
            r
            for r in self._jobs.store.jobs(batch=batch, provider=provider)
            if r.phase != Phase.CLOSED
            and not (r.has_result and r.status and r.status.is_terminal)
            and not (
                r.status is not None and r.status.state in (JobState.FAILED, JobState.CANCELLED)
            )
        ]

        def carry(record: JobRecord) -> Outcome:
            try:
                handle = self._carry(record, resubmit_in_doubt)
                return self.finish(record.request, handle, timeout=timeout, close=ClosePolicy.NEVER)
            except VoxhubError as exc:
                return Outcome(record.request, record.handle, error=exc)

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = [pool.submit(carry, r) for r in records]
            for future in futures:
                yield future.result()
