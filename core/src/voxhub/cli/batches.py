"""``voxhub batches``: list, show, resume and export the manifest of recorded batches.

Every ``voxhub transcribe`` run is a batch, recorded whole (each input with its
absolute path or URL, the options and output names) before anything is sent. These
commands read it back, page by page in SQL, and finish it after a crash or Ctrl-C.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import click

from ..batches import BatchInfo, ItemRow, ItemState
from .driving import Interrupts, drive, open_executor, summarize
from .lazy import OrderedGroup
from .state import current, interactive

__all__ = ["batches", "batches_manifest", "batches_resume", "batches_show"]

#: ``voxhub batches`` lists this many batches unless ``--limit`` says otherwise.
DEFAULT_LIMIT = 50


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _info_row(info: BatchInfo) -> dict[str, Any]:
    counts = info.counts
    settings = info.settings
    return {
        "batch_id": info.batch_id,
        "name": info.name,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "total": counts.total,
        "pending": counts.pending,
        "running": counts.running,
        "done": counts.done,
        "failed": counts.failed,
        "active": info.owner_alive,
        "interrupted_at": info.interrupted_at,
        "format": settings.format,
        "output_dir": settings.output_dir,
    }


def _item_row(row: ItemRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "input": row.input,
        "job_id": row.job_id,
        "state": row.state.value,
        "job_state": row.job_state,
        "stage": row.stage.value if row.stage is not None else None,
        "output": row.output,
        "error": row.error,
    }


def _stream_json_array(rows: Iterable[dict[str, Any]], out: IO[str]) -> None:
    """Write a JSON array one element at a time: memory stays flat however long it is."""
    from ..redact import redact

    out.write("[")
    first = True
    for row in rows:
        out.write("\n  " if first else ",\n  ")
        out.write(json.dumps(redact(row), ensure_ascii=False, default=str))
        first = False
    out.write("\n]\n" if not first else "]\n")
    out.flush()


@click.group(cls=OrderedGroup, invoke_without_command=True)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="Show at most N batches, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON array, written as it is read.")
@click.pass_context
def batches(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List batches with counts per state (subcommands: show, resume, manifest).

    Newest first. A batch is `running` while a live process works on it,
    `interrupted` after Ctrl-C, `unfinished` after a crash; `voxhub batches resume
    ID` finishes those.

    \b
    Examples:
      voxhub batches
      voxhub batches show vb_07cbb6cb95fe46fa --state failed
      voxhub batches resume vb_07cbb6cb95fe46fa
      voxhub batches manifest vb_07cbb6cb95fe46fa --format csv -o manifest.csv
    """
    if ctx.invoked_subcommand is not None:
        return
    orch = current().orchestrator()
    infos = orch.batches(limit=limit)
    total = orch.batch_count()
    if as_json:
        _stream_json_array((_info_row(i) for i in infos), sys.stdout)
    elif not infos:
        click.echo("no batches in the store" + _store_note(orch))
    else:
        click.echo(
            f"{'BATCH':<30} {'CREATED':<19} {'STATE':<11} {'TOTAL':>6} {'DONE':>6} "
            f"{'FAILED':>6} {'LEFT':>6}  NAME"
        )
        for info in infos:
            counts = info.counts
            left = counts.total - counts.done - counts.failed
            click.echo(
                f"{info.batch_id:<30} {_when(info.created_at):<19} {info.state:<11} "
                f"{counts.total:>6} {counts.done:>6} {counts.failed:>6} {left:>6}  "
                f"{info.name or ''}"
            )
    more = total - len(infos)
    if more > 0:
        click.echo(
            f"… {more} older batch{'es' if more > 1 else ''} not shown "
            f"(--limit {min(total, limit * 10)} shows more)",
            err=as_json,
        )


def _store_note(orch: Any) -> str:
    path = getattr(orch.store, "path", None)
    return f" ({path})" if path is not None else ""


def _items(
    orch: Any, batch_id: str, state: ItemState | None, limit: int | None, offset: int
) -> Iterator[ItemRow]:
    rows: Iterator[ItemRow] = orch.batch_items(batch_id, state=state, limit=limit, offset=offset)
    return rows


@batches.command("show")
@click.argument("batch_id")
@click.option(
    "--state",
    type=click.Choice([s.value for s in ItemState]),
    help="Only inputs in this state.",
)
@click.option("--limit", type=click.IntRange(1), help="Show at most N inputs.")
@click.option("--offset", type=click.IntRange(0), default=0, help="Skip the first N inputs.")
@click.option("--json", "as_json", is_flag=True, help="JSON: the batch, then its inputs.")
def batches_show(
    batch_id: str, state: str | None, limit: int | None, offset: int, as_json: bool
) -> None:
    """Show a batch and each input's outcome: job, state, stage, output file or error.

    Inputs are read from the store page by page, so a batch of any size shows at
    once and in constant memory.
    """
    orch = current().orchestrator()
    info = orch.batch(batch_id)
    wanted = ItemState(state) if state else None
    rows = _items(orch, info.batch_id, wanted, limit, offset)
    if as_json:
        out = sys.stdout
        out.write('{"batch": ' + json.dumps(_info_row(info), ensure_ascii=False) + ', "items": ')
        _stream_json_array((_item_row(r) for r in rows), out)
        out.write("}\n")
        return
    counts = info.counts
    left = counts.total - counts.done - counts.failed
    name = f" ({info.name})" if info.name else ""
    click.echo(
        f"batch {info.batch_id}{name}: {info.state}, created {_when(info.created_at)}; "
        f"{counts.total} inputs: {counts.done} done, {counts.failed} failed, {left} left"
    )
    for row in rows:
        job = row.job_id or "-"
        shown = row.job_state or "-"
        where = f" at {row.stage.value}" if row.stage is not None and row.error else ""
        tail = f"error{where}: {row.error}" if row.error else (row.output or "")
        click.echo(f"{row.seq:>6} {row.state.value:<8} {job:<24} {shown:<10} {row.input}  {tail}")


@batches.command("resume")
@click.argument("batch_id")
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Also run again the inputs whose job failed at the provider (a new vendor job: "
    "it may cost money). Without it they are skipped and listed.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    help="Inputs worked on at once (default: as the batch was started).",
)
@click.option("--fail-fast", is_flag=True, help="Start no new input after the first failure.")
@click.option(
    "--executor",
    metavar="dask://HOST:PORT",
    help="Run the inputs on a Dask cluster (its scheduler's address); needs voxhub[dask].",
)
def batches_resume(
    batch_id: str,
    retry_failed: bool,
    concurrency: int | None,
    fail_fast: bool,
    executor: str | None,
) -> None:
    """Finish every unfinished input of a batch, after a crash, Ctrl-C or failures.

    Inputs already done are left alone; jobs still being sent by another live
    process are left to it; jobs that failed at the provider are skipped unless
    --retry-failed is given. Each skipped input is printed with the reason. Outputs
    go where the batch was started to put them. Exits 1 when failures remain.
    """
    orch = current().orchestrator()
    info = orch.batch(batch_id)
    with open_executor(executor) as pool, Interrupts() as interrupts:
        report = drive(
            orch,
            info.batch_id,
            lambda on_event: orch.run_batch(
                info.batch_id,
                concurrency=concurrency,
                fail_fast=fail_fast,
                retry_failed=retry_failed,
                on_event=on_event,
                executor=pool,
            ),
            interrupts,
            interactive=interactive(),
            headers=info.settings.output_dir is None,
        )
    status = summarize(orch, info.batch_id, report)
    if status:
        sys.exit(status)


@batches.command("manifest")
@click.argument("batch_id")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="JSON Lines (one object per input) or CSV with a header row.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE instead of stdout.",
)
def batches_manifest(batch_id: str, fmt: str, output: Path | None) -> None:
    """Export what became of each input: input, job id, state, job state, output, error, stage.

    One line per input, in input order, written as it is read from the store.
    """
    orch = current().orchestrator()
    lines = orch.manifest(batch_id, fmt)
    if output is None:
        for line in lines:
            sys.stdout.write(line if line.endswith("\n") else line + "\n")
        sys.stdout.flush()
        return
    with output.open("w", encoding="utf-8", newline="") as out:
        for line in lines:
            out.write(line if line.endswith("\n") else line + "\n")
    click.echo(str(output), err=interactive())
