"""The orchestrator's status, waiting and completion steps (a part of
:class:`voxhub.orchestrator.Orchestrator`, kept apart to keep each module small).

Each step works from the record it was given or just read: a job is read once per
step, never again to re-confirm what this process just wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import PluginError, ProviderError, VoxhubError
from .models import JobHandle, JobState, JobStatus, Result
from .provider import Capability
from .store import Also, JobRecord, Phase
from .validation import check_timeout

if TYPE_CHECKING:
    from .callback_tokens import CallbackTokens
    from .events import JobEvents
    from .plugins import PluginManager
    from .provider import ProviderContext
    from .store import Store
    from .waiting import Waiter, WaitPolicy

__all__ = ["JobRef", "StatusSteps", "accepted"]

JobRef = str | JobHandle

#: A success a poll saw but did not store, with the status it replaces.
Kept = list[tuple[JobStatus | None, JobStatus]]


class StatusSteps:
    """``status``, ``wait`` and ``complete`` of :class:`~voxhub.orchestrator.Orchestrator`."""

    store: Store
    plugins: PluginManager
    events: JobEvents
    callback_tokens: CallbackTokens
    _waiter: Waiter

    if TYPE_CHECKING:

        def context(self, provider: str, profile: str | None = None) -> ProviderContext: ...

        def record(self, job: JobRef) -> JobRecord: ...

        def fetch(self, job: JobRef, *, refresh: bool = False) -> Result: ...

    def status(self, job: JobRef) -> JobStatus:
        """The job's status: stored if final, else asked from the provider (and stored)."""
        return self._status_of(self.record(job))

    def _status_of(self, record: JobRecord, keep: Kept | None = None) -> JobStatus:
        """:meth:`status` of a record just read. With ``keep``, a success the provider reports
        is not stored but added there with the status it replaces (the caller stores it
        together with the result)."""
        if record.status is not None and record.status.is_terminal:
            return record.status
        handle = accepted(record)
        entry = self.plugins.provider(handle.provider)
        if Capability.CALLBACK_ONLY in entry.info.capabilities:
            return record.status or JobStatus(JobState.RUNNING)
        ctx = self.context(handle.provider, handle.profile)
        new = self.plugins.calls(handle.provider).status(ctx, handle)
        if keep is not None and new.state is JobState.SUCCEEDED:
            keep.append((record.status, new))
        else:
            self.events.store_status(handle, record.status, new)
        return new

    def record_status(self, job_id: str, status: JobStatus) -> None:
        """Store a status learnt from a verified callback and notify observers."""
        record = self.store.get(job_id)
        self.events.store_status(record.handle, record.status, status)

    def wait(
        self,
        job: JobRef,
        *,
        timeout: float | None = None,
        policy: WaitPolicy | None = None,
        on_status: Callable[[JobStatus], None] | None = None,
    ) -> JobStatus:
        """Block until the job is final or ``timeout`` seconds pass.

        ``timeout`` is ``None`` or a finite number of seconds above 0 (else an
        :class:`~voxhub.errors.InvalidInputError` naming ``timeout``). Raises
        :class:`~voxhub.errors.WaitTimeoutError` (carrying the handle; the
        job keeps running) on timeout, and :class:`~voxhub.errors.JobFailedError`
        when the job failed. Jobs with callbacks wake on store events and confirm
        with one status call; others poll with back-off from the provider's hints.
        """
        timeout = check_timeout(timeout)
        return self._wait(self.record(job), timeout=timeout, policy=policy, on_status=on_status)

    def _wait(
        self,
        record: JobRecord,
        *,
        timeout: float | None,
        policy: WaitPolicy | None = None,
        on_status: Callable[[JobStatus], None] | None = None,
        keep: Kept | None = None,
    ) -> JobStatus:
        """:meth:`wait` from a record just read: its first look uses that record."""
        handle = accepted(record)
        info = self.plugins.provider(handle.provider).info
        callbacks = Capability.CALLBACK_ONLY in info.capabilities or self.callback_tokens.armed(
            handle.job_id
        )
        first = [record]

        def status(of: JobHandle) -> JobStatus:
            fresh = first.pop() if first else self.record(of.job_id)
            return self._status_of(fresh, keep)

        return self._waiter.wait(
            handle,
            info.polling,
            callbacks=callbacks,
            timeout=timeout,
            policy=policy,
            on_status=on_status,
            status=status,
        )

    def complete(
        self,
        job: JobHandle,
        *,
        timeout: float | None = None,
        on_status: Callable[[JobStatus], None] | None = None,
        also: Also | None = None,
    ) -> tuple[JobStatus, Result]:
        """:meth:`wait`, then :meth:`fetch`. A success this wait sees is stored with its
        result in one write (until then the job reads as running; a crash in between
        loses nothing: the provider still has both).

        ``also(connection, now)`` is called inside that write, to make another change in
        the same transaction (the batch runner marks its input done with it); it is not
        called when the result was stored otherwise (by a callback, or earlier)."""
        timeout = check_timeout(timeout)
        record = self.record(job)
        kept: Kept = []
        status = self._wait(record, timeout=timeout, on_status=on_status, keep=kept)
        if not kept or kept[-1][1] is not status:
            return status, self.fetch(record.job_id)
        old, handle = kept[-1][0], record.handle
        try:
            ctx = self.context(handle.provider, handle.profile)
            result = self.plugins.calls(handle.provider).fetch(ctx, handle)
            if result is None:
                raise PluginError(
                    "fetch returned nothing", provider=handle.provider, operation="fetch"
                )
        except VoxhubError:
            self.events.store_status(handle, old, status)  # the success stays known
            raise
        if self.store.set_final(handle.job_id, status, result, also=also):
            self.events.state_changed(handle, old, status)
        self.events.completed(handle, result)
        return status, result


def accepted(record: JobRecord) -> JobHandle:
    """The record's handle; an error while the provider has not accepted the job yet."""
    if record.phase in (Phase.RECORDED, Phase.SENDING):
        raise ProviderError(
            f"job {record.job_id} has not been accepted by {record.provider} yet "
            f"({record.phase}{': ' + record.error if record.error else ''}); "
            "`voxhub jobs resume` submits it",
            provider=record.provider,
            operation="lookup",
        )
    return record.handle
