"""``voxhub nhn ...``: commands only NHN has (``retry`` of a FAILED async task).

:func:`retry_job` is the same operation for Python callers holding an
:class:`voxhub.Orchestrator` (the application API; this module is a small app of it).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click
from voxhub.plugin import InvalidInputError, JobHandle

from .options import NAME

if TYPE_CHECKING:
    from voxhub import Orchestrator

__all__ = ["nhn", "retry_job"]

def retry_job(orchestrator: Orchestrator, job: str | JobHandle) -> JobHandle:
    """Ask NHN to run a FAILED async task of ``job`` again and record it on the same job.

    The new task id (whatever NHN returns, same or new) replaces the job's
    ``task_id``; earlier ids stay in ``vendor_state["task_history"]``. This is
    :meth:`voxhub.Orchestrator.retry` restricted to NHN jobs.
    """
    record = orchestrator.record(job)
    if record.provider != NAME:
        raise InvalidInputError(
            f"job {record.job_id} belongs to provider {record.provider!r}, not {NAME}",
            field="job", provider=record.provider, operation="retry",
        )
    orchestrator.status(record.job_id)  # make sure the stored status is current
    return orchestrator.retry(record.job_id)


def _orchestrator(ctx: click.Context) -> Orchestrator:
    """The CLI's orchestrator (its state object builds it from --store/--config)."""
    from voxhub import Orchestrator  # the app API, loaded only when the command runs

    state = ctx.find_root().obj
    factory = getattr(state, "orchestrator", None)
    if callable(factory):
        orch = factory()
        if isinstance(orch, Orchestrator):
            return orch
    if isinstance(state, Orchestrator):
        return state
    orch = Orchestrator()
    ctx.call_on_close(orch.close_resources)
    return orch


@click.group("nhn")
def nhn() -> None:
    """NHN Cloud Speech-to-Text commands."""


@nhn.command("retry")
@click.argument("job_id")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the retried task to finish.")
@click.option("--timeout", type=float, default=None, help="Give up waiting after SECONDS.")
@click.pass_context
def retry_command(ctx: click.Context, job_id: str, wait_: bool, timeout: float | None) -> None:
    """Run the FAILED NHN task of JOB_ID again; the new task id is recorded on the same job."""
    orch = _orchestrator(ctx)
    # VoxhubErrors propagate: voxhub's main() prints them and exits with their code.
    handle = retry_job(orch, job_id)
    line: dict[str, Any] = {
        "job_id": handle.job_id,
        "task_id": handle.vendor_ids.get("task_id"),
        "previous_task_ids": handle.vendor_state.get("task_history", []),
    }
    if wait_:
        line["state"] = orch.wait(handle, timeout=timeout).state.value
    click.echo(json.dumps(line, ensure_ascii=False))
