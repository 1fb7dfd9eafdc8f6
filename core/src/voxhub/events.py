"""Job events: stored state changes and the broadcast event hooks, as typed calls.

The event hooks (``job_submitted``, ``job_state_changed``, ``job_completed``,
``job_failed``, see :mod:`voxhub.hookspecs`) reach every plugin. They are
notifications: an observer's exception is logged by the plugin manager, never
raised into the job. :class:`JobEvents` has one method per hook so no call site
names a hook by string.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import JobFailedError
from .models import JobHandle, JobRequest, JobState, JobStatus, Result

if TYPE_CHECKING:
    from .plugins import PluginManager
    from .store import Store

__all__ = ["JobEvents", "failure"]


def failure(handle: JobHandle, status: JobStatus) -> JobFailedError:
    """The error that says a job failed at its vendor, with the vendor's reason."""
    reason = status.reason or status.vendor_state or "failed"
    detail = f": {status.detail}" if status.detail else ""
    return JobFailedError(
        f"job {handle.job_id} failed ({reason}){detail}",
        provider=handle.provider,
        operation="wait",
        reason=status.reason,
        detail=status.detail,
        handle=handle,
    )


class JobEvents:
    """Broadcasts job events to every plugin, and stores status changes before telling them."""

    def __init__(self, plugins: PluginManager, store: Store) -> None:
        self._plugins = plugins
        self._store = store

    def submitted(self, handle: JobHandle, request: JobRequest) -> None:
        """``job_submitted``: the provider accepted the job."""
        self._plugins.notify("job_submitted", handle=handle, request=request)

    def state_changed(self, handle: JobHandle, old: JobStatus | None, new: JobStatus) -> None:
        """``job_state_changed``, then ``job_failed`` when the new state is a failure."""
        self._plugins.notify("job_state_changed", handle=handle, old=old, new=new)
        if new.state is JobState.FAILED:
            self.failed(handle, failure(handle, new))

    def completed(self, handle: JobHandle, result: Result) -> None:
        """``job_completed``: the job succeeded and its result is stored."""
        self._plugins.notify("job_completed", handle=handle, result=result)

    def failed(self, handle: JobHandle, error: Exception) -> None:
        """``job_failed``: the job ended in failure (at the vendor, or refused for good)."""
        self._plugins.notify("job_failed", handle=handle, error=error)

    def store_status(self, handle: JobHandle, old: JobStatus | None, new: JobStatus) -> bool:
        """Store ``new``; when that changed anything, announce it. Returns whether it did."""
        if not self._store.set_status(handle.job_id, new):
            return False
        self.state_changed(handle, old, new)
        return True
