"""Commands about stored jobs: ``status``, ``wait``, ``fetch``, ``close``, ``retry``, ``jobs``."""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
import click

from ..errors import InvalidInputError, NotFoundError
from ..export import FORMATS
from ..listing import SHOWN_STATES, JobFilter, JobListing
from ..models import JobStatus
from .job_list import DEFAULT_LIMIT, list_jobs, store_path
from .lazy import OrderedGroup
from .state import SECONDS, current, echo_json

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
@click.option("--timeout", type=SECONDS, help="Give up after S seconds (the job keeps running).")
def wait_cmd(job: str, timeout: float | None) -> None:
    """Wait until a job is final; exits non-zero if it failed or the wait timed out."""
    result = current().orchestrator().wait(job, timeout=timeout)
    click.echo(_status_line(job, result))


@click.command()
@click.argument("job")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="txt", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--speakers",
    is_flag=True,
    help="Label txt lines and srt/vtt cues with their speaker, where the provider tells.",
)
def fetch(job: str, fmt: str, output: Path | None, speakers: bool) -> None:
    """Print a finished job's result (captions come from the provider when it offers them).

    The same text every time, also after ``voxhub close``: a provider's own captions are
    kept in the store the first time they are fetched.
    """
    text = current().orchestrator().export(job, fmt, speakers=speakers)
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(
            f"cannot write {output}: {exc.strerror or exc}", field="output"
        ) from None


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
    type=SECONDS,
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


@click.group(cls=OrderedGroup, invoke_without_command=True)
@click.option(
    "--state",
    type=click.Choice(SHOWN_STATES),
    help="Only jobs showing this state (closed: closed at the provider; recorded, sending, "
    "submitted: not yet known to the provider, or no status yet).",
)
@click.option("-p", "--provider", help="Only this provider's jobs.")
@click.option("--batch", help="Only the jobs of this batch (its id or its name).")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    help=f"Show at most N jobs (0: all). Default: {DEFAULT_LIMIT}, all with --json/--jsonl.",
)
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip the first N jobs.")
@click.option("--oldest-first", is_flag=True, help="Oldest first (default: newest first).")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, streamed.")
@click.option("--jsonl", "as_jsonl", is_flag=True, help="JSON Lines: one job per line.")
@click.pass_context
def jobs(
    ctx: click.Context,
    state: str | None,
    provider: str | None,
    batch: str | None,
    limit: int | None,
    offset: int,
    oldest_first: bool,
    as_json: bool,
    as_jsonl: bool,
) -> None:
    """List stored jobs, newest first, a page at a time (subcommands: show, resume).

    Filters, order and pages are worked out by SQLite on the store's indexes, so a
    page comes as fast from a store of a million jobs as from an empty one. The table
    shows 50 jobs; a footer on stderr says how many more there are and how to see
    them. A job closed at its provider shows as closed; a submit refused before it
    left shows as failed. An empty store, or no match, is said on stderr.

    --json writes every job (unless --limit is given) as one JSON array with an
    object per line, streamed as it is read; --jsonl writes JSON Lines. Each object
    has job_id, provider, profile, state (as the table shows it), phase, vendor_ids,
    media, batch, has_result, error, created_at and updated_at (epoch seconds).
    Secrets are masked.
    """
    if ctx.invoked_subcommand is not None:
        return
    if as_json and as_jsonl:
        raise click.UsageError("--json and --jsonl exclude each other")
    output = "json" if as_json else "jsonl" if as_jsonl else "table"
    where = JobFilter(state=state, provider=provider, batch=batch)
    list_jobs(where, limit=limit, offset=offset, oldest_first=oldest_first, output=output)


@jobs.command("show")
@click.argument("job")
def jobs_show(job: str) -> None:
    """Show one job as listed, with its last status and its event history (JSON)."""
    from ..store import Store  # here: the listing itself never imports the store

    path = store_path()
    row = JobListing(path).row(job)  # a missing store is not created just to say so
    if row is None:
        raise NotFoundError(f"no job {job!r} in the store {path}", operation="lookup")
    store = Store(path)
    record = store.get(job)
    status = None if record.status is None else attrs.asdict(attrs.evolve(record.status, raw=None))
    echo_json(
        {
            **row.as_dict(),
            "status": status,
            "events": [attrs.asdict(e) for e in store.events(job)],
        }
    )


@jobs.command("resume")
@click.option("--batch", help="Only this batch (its id or its name).")
@click.option("-p", "--provider")
@click.option("--timeout", type=SECONDS)
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--resubmit-in-doubt",
    is_flag=True,
    help="Submit again jobs whose earlier submit may have reached a provider that "
    "cannot look jobs up (check the vendor's console first).",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Also run again jobs that failed at the provider (a new vendor job: it may cost "
    "money). Without it they are skipped and listed.",
)
def jobs_resume(
    batch: str | None,
    provider: str | None,
    timeout: float | None,
    concurrency: int,
    resubmit_in_doubt: bool,
    retry_failed: bool,
) -> None:
    """Carry every unfinished job to its end, after a crash or an interrupted batch.

    Jobs that failed are skipped unless --retry-failed is given, and jobs another
    live process is still sending are left to it; each skipped job is printed with
    the reason. Inputs of a batch that never got a job are finished by `voxhub
    batches resume ID`. Exits 1 when some job failed.
    """
    orch = current().orchestrator()
    failures = done = skipped = 0
    for outcome in orch.resume(
        batch=batch,
        provider=provider,
        timeout=timeout,
        concurrency=concurrency,
        resubmit_in_doubt=resubmit_in_doubt,
        retry_failed=retry_failed,
    ):
        job = outcome.handle.job_id if outcome.handle else "?"
        media = outcome.request.media.describe() if outcome.request.media else ""
        if outcome.skipped is not None:
            skipped += 1
            click.echo(f"{job} skipped: {outcome.skipped}{f' ({media})' if media else ''}",
                       err=True)
        elif outcome.error is not None:
            failures += 1
            click.echo(f"{job} error: {outcome.error}", err=True)
        else:
            done += 1
            state = outcome.status.state.value if outcome.status else "done"
            click.echo(f"{job} {state}")
    click.echo(f"resumed: {done} done, {failures} failed, {skipped} skipped", err=True)
    if failures:
        sys.exit(1)
