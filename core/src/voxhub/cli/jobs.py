"""Commands about stored jobs: ``status``, ``wait``, ``fetch``, ``close``, ``retry``, ``jobs``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import attrs
import click

from ..export import FORMATS
from ..models import JobStatus
from ..store import JobRecord
from .lazy import OrderedGroup
from .state import current, echo_json

__all__ = ["close", "fetch", "jobs", "retry", "status", "wait_cmd"]


def _status_line(job_id: str, status: JobStatus) -> str:
    parts = [job_id, status.state.value]
    if status.vendor_state:
        parts.append(f"({status.vendor_state})")
    if status.progress is not None:
        parts.append(f"{status.progress:.0%}")
    if status.reason or status.detail:
        parts.append(": ".join(p for p in (status.reason, status.detail) if p))
    return " ".join(parts)


@click.command()
@click.argument("job")
@click.option("--json", "as_json", is_flag=True)
def status(job: str, as_json: bool) -> None:
    """Show a job's current status (asks the provider unless it is final)."""
    result = current().orchestrator().status(job)
    if as_json:
        echo_json({"job_id": job, **attrs.asdict(attrs.evolve(result, raw=None))})
    else:
        click.echo(_status_line(job, result))


@click.command("wait")
@click.argument("job")
@click.option("--timeout", type=float, help="Give up after S seconds (the job keeps running).")
def wait_cmd(job: str, timeout: float | None) -> None:
    """Wait until a job is final; exits non-zero if it failed or the wait timed out."""
    result = current().orchestrator().wait(job, timeout=timeout)
    click.echo(_status_line(job, result))


@click.command()
@click.argument("job")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="txt", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
def fetch(job: str, fmt: str, output: Path | None) -> None:
    """Print a finished job's result (captions come from the provider when it offers them)."""
    text = current().orchestrator().export(job, fmt)
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text, encoding="utf-8")


@click.command()
@click.argument("jobs", nargs=-1, required=True)
def close(jobs: tuple[str, ...]) -> None:
    """Close jobs at their provider (delete or stop); the stored record stays."""
    orch = current().orchestrator()
    for job in jobs:
        orch.close(job)
        click.echo(f"{job} closed")


@click.command()
@click.argument("job")
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=None,
    help="Then wait up to S seconds for the retried job.",
)
def retry(job: str, wait_s: float | None) -> None:
    """Ask the provider to run a failed job again (same voxhub job, new vendor task)."""
    orch = current().orchestrator()
    handle = orch.retry(job)
    click.echo(
        f"{handle.job_id} retried: {', '.join(f'{k}={v}' for k, v in handle.vendor_ids.items())}"
    )
    if wait_s is not None:
        click.echo(_status_line(handle.job_id, orch.wait(handle, timeout=wait_s)))


# --- jobs ----------------------------------------------------------------------------


def _job_row(record: JobRecord) -> dict[str, Any]:
    return {
        "job_id": record.job_id,
        "provider": record.provider,
        "profile": record.profile,
        "state": record.state,
        "phase": record.phase,
        "vendor_ids": record.handle.vendor_ids,
        "media": record.request.media.describe() if record.request.media else None,
        "batch": record.batch,
        "has_result": record.has_result,
        "error": record.error,
        "created_at": record.created_at,
    }


@click.group(cls=OrderedGroup, invoke_without_command=True)
@click.option(
    "--state",
    help="Only jobs in this state (queued, running, succeeded, failed, "
    "cancelled) or phase (recorded, sending).",
)
@click.option("-p", "--provider")
@click.option("--batch")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def jobs(
    ctx: click.Context, state: str | None, provider: str | None, batch: str | None, as_json: bool
) -> None:
    """List stored jobs (subcommands: show, resume)."""
    if ctx.invoked_subcommand is not None:
        return
    store = current().orchestrator().store
    records = store.jobs(provider=provider, batch=batch)
    if state:
        records = [r for r in records if r.state == state]
    rows = [_job_row(r) for r in records]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        vendor = next(iter(row["vendor_ids"].values()), "-")
        click.echo(
            f"{row['job_id']}  {row['provider']:<16} {row['state']:<10} {vendor:<24} "
            f"{row['media'] or ''}"
        )


@jobs.command("show")
@click.argument("job")
def jobs_show(job: str) -> None:
    """Show one job's record and its event history."""
    orch = current().orchestrator()
    record = orch.record(job)
    echo_json(
        {**_job_row(record), "events": [attrs.asdict(e) for e in orch.store.events(record.job_id)]}
    )


@jobs.command("resume")
@click.option("--batch", help="Only this batch.")
@click.option("-p", "--provider")
@click.option("--timeout", type=float)
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--resubmit-in-doubt",
    is_flag=True,
    help="Submit again jobs whose earlier submit may have reached a provider that "
    "cannot look jobs up (check the vendor's console first).",
)
def jobs_resume(
    batch: str | None,
    provider: str | None,
    timeout: float | None,
    concurrency: int,
    resubmit_in_doubt: bool,
) -> None:
    """Carry every unfinished job to its end, after a crash or an interrupted batch."""
    orch = current().orchestrator()
    failures = done = 0
    for outcome in orch.resume(
        batch=batch,
        provider=provider,
        timeout=timeout,
        concurrency=concurrency,
        resubmit_in_doubt=resubmit_in_doubt,
    ):
        job = outcome.handle.job_id if outcome.handle else "?"
        if outcome.error is not None:
            failures += 1
            click.echo(f"{job} error: {outcome.error}", err=True)
        else:
            done += 1
            click.echo(f"{job} {outcome.status.state.value if outcome.status else 'done'}")
    click.echo(f"resumed: {done} done, {failures} failed", err=True)
    if failures:
        sys.exit(1)
