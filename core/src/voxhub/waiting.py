"""Waiting for a job to end: polling with back-off, or waking on callback events.

Without callbacks, :class:`Waiter` polls the provider's ``status`` starting at
the provider's ``PollingHints.first_poll`` and growing by ``WaitPolicy.factor``
up to ``max_interval``. With callbacks it watches the job's events in the store
(any process may have recorded them) and polls only as a safety net every
``WaitPolicy.callback_safety_poll`` seconds; an unsigned callback (a *hint*) is
confirmed with one status call before it is trusted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from .errors import WaitTimeoutError
from .events import failure
from .models import JobHandle, JobState, JobStatus
from .policies import deadline_scope

if TYPE_CHECKING:
    from .clock import Clock
    from .provider import PollingHints
    from .store import Event, Store

__all__ = ["WaitPolicy", "Waiter"]


@attrs.frozen
class WaitPolicy:
    """How waiting polls: the provider's hints unless overridden, growing by ``factor``.

    With callbacks, polling is only a safety net every ``callback_safety_poll`` seconds.
    """

    first_poll: float | None = None
    max_interval: float | None = None
    factor: float = 1.5
    callback_safety_poll: float = 60.0


class Waiter:
    """Blocks until jobs are final, on the orchestrator's clock.

    ``status`` is how a status is asked for (and stored); ``event_poll`` is how
    often, in seconds, the store is checked for callback events.
    """

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        status: Callable[[JobHandle], JobStatus],
        event_poll: float = 0.1,
    ) -> None:
        self._store = store
        self._clock = clock
        self._status = status
        self._event_poll = event_poll

    def wait(
        self,
        handle: JobHandle,
        hints: PollingHints,
        *,
        callbacks: bool,
        timeout: float | None = None,
        policy: WaitPolicy | None = None,
        on_status: Callable[[JobStatus], None] | None = None,
        status: Callable[[JobHandle], JobStatus] | None = None,
    ) -> JobStatus:
        """The job's final status, after at most ``timeout`` seconds.

        ``callbacks`` says whether the job's updates arrive as store events;
        ``status`` asks for (and stores) a status in place of the waiter's own.
        Raises :class:`~voxhub.errors.WaitTimeoutError` on timeout (the job keeps
        running) and :class:`~voxhub.errors.JobFailedError` when the job failed.
        With a ``timeout``, the status calls' retry waits end by the same deadline
        (:func:`~voxhub.policies.deadline_scope`): a call that would have to wait
        past it fails at once with its own error.
        """
        deadline = None if timeout is None else self._clock.monotonic() + timeout
        with deadline_scope(deadline):
            return self._wait(handle, hints, callbacks, timeout, deadline, policy, on_status,
                              status)

    def _wait(
        self,
        handle: JobHandle,
        hints: PollingHints,
        callbacks: bool,
        timeout: float | None,
        deadline: float | None,
        policy: WaitPolicy | None,
        on_status: Callable[[JobStatus], None] | None,
        status: Callable[[JobHandle], JobStatus] | None,
    ) -> JobStatus:
        policy = policy or WaitPolicy()
        clock = self._clock
        interval = policy.first_poll if policy.first_poll is not None else hints.first_poll
        cap = policy.max_interval if policy.max_interval is not None else hints.max_interval
        ask = status or self._status
        # Events are only watched with callbacks: without, the sequence is never needed.
        seen = self._store.last_seq(handle.job_id) if callbacks else 0
        current = ask(handle)
        while True:
            if on_status is not None:
                on_status(current)
            if current.is_terminal:
                if current.state is JobState.FAILED:
                    raise failure(handle, current)
                return current
            remaining = None if deadline is None else deadline - clock.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(
                    f"job {handle.job_id} is still {current.state.value} after {timeout:g}s; "
                    f"it keeps running: `voxhub wait {handle.job_id}` resumes waiting",
                    handle=handle,
                    provider=handle.provider,
                    operation="wait",
                )
            if callbacks:
                slice_ = policy.callback_safety_poll
                if remaining is not None:
                    slice_ = min(slice_, remaining)
                events = self._events(handle.job_id, seen, slice_)
                if events:
                    seen = events[-1].seq
                    current = self._from_events(handle, events, ask)
                else:
                    current = ask(handle)  # the safety net
                continue
            clock.sleep(interval if remaining is None else min(interval, remaining))
            interval = min(cap, interval * policy.factor)
            current = ask(handle)

    def _events(self, job_id: str, after: int, timeout: float) -> list[Event]:
        """The job's events after ``after``, waiting up to ``timeout`` for the first."""
        return self._store.wait_for_event(
            job_id, after, timeout, clock=self._clock, interval=self._event_poll
        )

    def _from_events(
        self, handle: JobHandle, events: list[Event], ask: Callable[[JobHandle], JobStatus]
    ) -> JobStatus:
        record = self._store.get(handle.job_id)
        hinted = any(e.type == "callback-hint" for e in events)
        if hinted and not (record.status and record.status.is_terminal):
            # Unsigned webhooks are hints: one status call confirms before we trust them.
            return ask(handle)
        return record.status or JobStatus(JobState.RUNNING)
