"""Agora's task, agent and service statuses mapped onto voxhub's :class:`JobState`.

One table per vocabulary (STT v5/v6 spec 1.8, STT v7 spec 1.10, Cloud Transcoder
spec 2.6). An unknown status is reported as running, keeping Agora's word in
``vendor_state``: a new intermediate state must not end a live task early.
"""

from __future__ import annotations

from typing import Any

from voxhub.plugin import JobState, JobStatus

__all__ = ["ended_status", "normalize_stt_status", "normalize_transcoder_status"]

_V6_STATES: dict[str, JobState] = {
    "IDLE": JobState.QUEUED,
    "PREPARING": JobState.QUEUED,
    "PREPARED": JobState.QUEUED,
    "STARTING": JobState.QUEUED,
    "CREATED": JobState.QUEUED,
    "STARTED": JobState.RUNNING,
    "IN_PROGRESS": JobState.RUNNING,
    "STOPPING": JobState.RUNNING,  # not over until STOPPED
    "STOPPED": JobState.SUCCEEDED,
    "FAILURE_STOP": JobState.FAILED,
}
_V7_STATES: dict[str, JobState] = {
    "IDLE": JobState.QUEUED,
    "STARTING": JobState.QUEUED,
    "RUNNING": JobState.RUNNING,
    "RECOVERING": JobState.RUNNING,
    "STOPPING": JobState.RUNNING,
    "STOPPED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
}
_TRANSCODER_STATES: dict[str, JobState] = {
    "IDLE": JobState.QUEUED,
    "PREPARED": JobState.QUEUED,
    "STARTING": JobState.QUEUED,
    "CREATED": JobState.QUEUED,
    "STARTED": JobState.RUNNING,
    "IN_PROGRESS": JobState.RUNNING,
    "STOPPING": JobState.RUNNING,
    "STOPPED": JobState.SUCCEEDED,
    "EXIT": JobState.SUCCEEDED,
    "FAILURE_STOP": JobState.FAILED,
}
_SERVICE_STATES: dict[str, JobState] = {
    "serviceIdle": JobState.QUEUED,
    "serviceReady": JobState.QUEUED,
    "serviceStarted": JobState.RUNNING,
    "serviceInProgress": JobState.RUNNING,
    "serviceCompleted": JobState.SUCCEEDED,
    "servicePartialCompleted": JobState.SUCCEEDED,
    "serviceValidationFailed": JobState.FAILED,
    "serviceAbnormal": JobState.FAILED,
}


def normalize_stt_status(version: str, vendor: str | None, raw: Any = None) -> JobStatus:
    """The normalized status for an STT task/agent status string of ``version``."""
    table = _V7_STATES if version == "v7" else _V6_STATES
    text = (vendor or "").strip()
    state = table.get(text.upper(), JobState.RUNNING)
    reason = None
    if state is JobState.FAILED:
        # FAILURE_STOP is documented as "stopping failed", yet a task nobody stopped can
        # report it (e.g. one whose bots could not join): say only that the task failed.
        reason = ("the task ended abnormally (FAILURE_STOP); check the bots' RTC tokens and "
                  "the channel" if text.upper() == "FAILURE_STOP" else "agent failed")
    return JobStatus(state, vendor_state=text or None, reason=reason, raw=raw)


def normalize_transcoder_status(task_status: str | None, service_status: str | None,
                                raw: Any = None) -> JobStatus:
    """Combine the transcoder's task status and its (informational) service status.

    The task status decides, except that a failed service (``serviceValidationFailed``,
    ``serviceAbnormal``) fails the job, and a partial completion is kept as the reason.
    An unknown task status falls back to the service status, then to running.
    """
    task = (task_status or "").strip()
    service = (service_status or "").strip()
    service_state = _SERVICE_STATES.get(service)
    state = _TRANSCODER_STATES.get(task.upper(), service_state or JobState.RUNNING)
    reason = None
    if service_state is JobState.FAILED:
        state, reason = JobState.FAILED, f"service status {service}"
    elif task.upper() == "FAILURE_STOP":
        reason = "the task exited abnormally"
    elif service == "servicePartialCompleted":
        reason = "partially completed"
    vendor = "/".join(p for p in (task, service) if p) or None
    return JobStatus(state, vendor_state=vendor, reason=reason, raw=raw)


def ended_status(message: str) -> JobStatus:
    """A task Agora no longer lists: it has ended (closed, or ended itself)."""
    return JobStatus(JobState.SUCCEEDED, vendor_state="ENDED",
                     reason="the task has ended (Agora no longer lists it)", detail=message)
