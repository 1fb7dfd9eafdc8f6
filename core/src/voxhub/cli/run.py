"""``voxhub transcribe``, ``submit`` and ``moderate``: sending work to providers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..batches import BatchSettings, ClosePolicy, ItemState
from ..errors import InvalidInputError, VoxhubError
from ..export import FORMATS
from ..media import media_from
from ..models import JobKind, JobRequest
from ..orchestrator import Orchestrator
from .driving import Interrupts, Report, drive, open_executor, summarize
from .state import SECONDS, current, interactive, parse_options

#: From this many inputs on, ``transcribe`` says it is checking and recording them: the
#: batch's id is printed only once all are recorded (on a 2-core machine 1,000 local files
#: took 0.06 s, 20,000 took 1.2 s).
ANNOUNCE_FROM = 1000

__all__ = ["moderate", "submit", "transcribe"]


def _progress_printer(label: str) -> Any:
    """An upload progress callback drawing a rich bar on a terminal, else nothing."""
    if not interactive():
        return None
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
    )
    task = None

    def update(sent: int, total: int) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task(f"upload {label}", total=total)
        progress.update(task, completed=sent)
        if sent >= total:
            progress.stop()

    return update


def _requests(
    media: tuple[str, ...],
    provider: str | None,
    kind: JobKind | None,
    language: str | None,
    options: dict[str, Any],
    profile: str | None,
    new: bool,
) -> list[JobRequest]:
    import uuid

    return [
        JobRequest(
            provider=provider or "",
            media=media_from(m),
            kind=kind,
            language=language,
            options=options,
            profile=profile,
            idempotency_key=f"new-{uuid.uuid4().hex}" if new else None,
        )
        for m in media
    ]


@click.command()
@click.argument("media", nargs=-1, required=True)
@click.option("-p", "--provider", help="Provider (default: configured default, else local).")
@click.option("--profile", help="Credential profile (default: the provider's name).")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="txt", show_default=True)
@click.option(
    "--speakers",
    is_flag=True,
    help="Label txt lines and srt/vtt cues with their speaker, where the provider tells.",
)
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per input here instead of printing (names are fixed when the "
    "batch is recorded: the input's name, numbered when two inputs share one).",
)
@click.option("--language", help="Language code, e.g. en.")
@click.option("--option", "opts", multiple=True, metavar="KEY=VALUE", help="Provider option.")
@click.option(
    "--concurrency",
    default=4,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Inputs worked on at once.",
)
@click.option(
    "--timeout", type=SECONDS, help="Give up waiting after S seconds (jobs keep running)."
)
@click.option("--no-wait", is_flag=True, help="Submit and print job ids only.")
@click.option(
    "--callback/--no-callback",
    default=None,
    help="Ask the provider to call the callback receiver when done.",
)
@click.option(
    "--close",
    "close_policy",
    # The policies' values (never, after-fetch, always): click shows an enum's names.
    type=click.Choice([policy.value for policy in ClosePolicy]),
    default=ClosePolicy.NEVER.value,
    show_default=True,
    help="Delete the job at the provider after fetching its result.",
)
@click.option("--new", is_flag=True, help="Submit again even if this input was already run.")
@click.option("--batch", help="Name the batch (a label for `voxhub batches`; the id is made up).")
@click.option(
    "--fail-fast",
    is_flag=True,
    help="Start no new input after the first failure (those in flight still land).",
)
@click.option(
    "--executor",
    metavar="dask://HOST:PORT",
    help="Run the inputs on a Dask cluster (its scheduler's address); its workers use "
    "their own configuration and this store. Needs voxhub[dask].",
)
def transcribe(
    media: tuple[str, ...],
    provider: str | None,
    profile: str | None,
    fmt: str,
    speakers: bool,
    output_dir: Path | None,
    language: str | None,
    opts: tuple[str, ...],
    concurrency: int,
    timeout: float | None,
    no_wait: bool,
    callback: bool | None,
    close_policy: str,
    new: bool,
    batch: str | None,
    fail_fast: bool,
    executor: str | None,
) -> None:
    """Transcribe files or URLs and print (or write) the transcripts.

    All inputs are first recorded as one batch (its id is printed at once on
    stderr), then worked through with --concurrency. One input failing never stops
    the others; the command ends with a summary and exits 1 when some failed. After
    a crash or Ctrl-C, `voxhub batches resume ID` finishes the batch.

    The same input is not submitted twice: running the command again picks up the
    stored job (use --new to force a new one).

    \b
    Examples:
      voxhub transcribe talk.wav                     # prints the transcript
      voxhub transcribe -p revai -f srt -o subs/ *.wav --concurrency 16
      voxhub batches resume vb_07cbb6cb95fe46fa   # after Ctrl-C or a crash
      voxhub transcribe -p revai -o out/ *.wav --executor dask://sched:8786 --concurrency 64
    """
    if executor is not None and no_wait:
        raise click.UsageError("--executor runs whole inputs: it cannot go with --no-wait")
    orch = current().orchestrator()
    provider = provider or orch.default_provider()
    if len(media) >= ANNOUNCE_FROM and not no_wait:
        # Checking and recording 100,000 inputs takes seconds before the batch id can be
        # printed: say what is happening meanwhile.
        click.echo(f"checking and recording {len(media)} inputs...", err=True)
    requests = _requests(
        media, provider, JobKind.TRANSCRIPTION, language, parse_options(opts), profile, new
    )
    if no_wait:
        _submit_only(orch, requests, batch, callback)
        return
    settings = BatchSettings(
        name=batch,
        format=fmt,
        output_dir=str(output_dir.resolve()) if output_dir is not None else None,
        close=ClosePolicy(close_policy),
        timeout=timeout,
        callback=callback,
        concurrency=concurrency,
        speakers=speakers,
    )
    single = len(requests) == 1
    with open_executor(executor) as pool, Interrupts() as interrupts:
        info = orch.record_batch(requests, settings=settings)
        batch_id = info.batch_id
        if not single:
            click.echo(f"batch {batch_id}: {info.counts.total} inputs", err=True)
        label = requests[0].media.describe() if single and requests[0].media else None
        report = drive(
            orch,
            batch_id,
            lambda on_event: orch.run_batch(
                batch_id,
                concurrency=concurrency,
                fail_fast=fail_fast,
                on_event=on_event,
                executor=pool,
            ),
            interrupts,
            interactive=interactive(),
            single=Path(label).name if label else None,
            headers=not single and output_dir is None,
        )
    if single and not report.interrupted:
        _single_outcome(orch, batch_id, report)
        return
    status = summarize(orch, batch_id, report)
    if status:
        sys.exit(status)


def _single_outcome(orch: Orchestrator, batch_id: str, report: Report) -> None:
    """One input keeps its own error message and exit status."""
    if report.first_error is not None and report.first_error.error is not None:
        raise report.first_error.error
    if report.done:
        return
    # Refused before anything was sent (the checks): the stored item says why.
    for row in orch.batch_items(batch_id, state=ItemState.FAILED):
        raise InvalidInputError(row.error or "the input was refused", field="media")
    sys.exit(summarize(orch, batch_id, report) or 1)


def _submit_only(
    orch: Orchestrator, requests: list[JobRequest], batch: str | None, callback: bool | None
) -> None:
    """Submit without waiting; one job id per line. Several inputs are recorded as one
    batch first (``voxhub batches resume`` finishes it); one keeps its upload bar."""
    if len(requests) == 1:
        request = requests[0]
        handle = orch.submit(
            request,
            batch=batch,
            callback=callback,
            progress=_progress_printer(request.media.describe() if request.media else ""),
        )
        click.echo(handle.job_id)
        return
    for handle in orch.submit_many(requests, batch=batch, callback=callback):
        click.echo(handle.job_id)


@click.command()
@click.argument("media", nargs=-1)
@click.option("-p", "--provider", help="Provider (default: configured default, else local).")
@click.option("--profile", help="Credential profile (default: the provider's name).")
@click.option(
    "--kind",
    type=click.Choice([k.value for k in JobKind]),
    help="Job kind, when the provider runs several.",
)
@click.option("--language")
@click.option("--option", "opts", multiple=True, metavar="KEY=VALUE")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A job configuration file (JSON or TOML), e.g. a transcoder layout.",
)
@click.option("--callback/--no-callback", default=None)
@click.option("--new", is_flag=True, help="Submit again even if this input was already run.")
@click.option("--batch")
def submit(
    media: tuple[str, ...],
    provider: str | None,
    profile: str | None,
    kind: str | None,
    language: str | None,
    opts: tuple[str, ...],
    config_file: str | None,
    callback: bool | None,
    new: bool,
    batch: str | None,
) -> None:
    """Submit jobs without waiting; prints one job id per line."""
    orch = current().orchestrator()
    options = parse_options(opts)
    if config_file:
        options["config_file"] = str(Path(config_file).resolve())
    job_kind = JobKind(kind) if kind else None
    requests = _requests(
        media, provider or orch.default_provider(), job_kind, language, options, profile, new
    )
    if not requests:  # task-like jobs (e.g. transcoding) may have no media argument
        requests = [
            JobRequest(
                provider=provider or orch.default_provider(),
                kind=job_kind,
                language=language,
                options=options,
                profile=profile,
            )
        ]
    _submit_only(orch, requests, batch, callback)


@click.command()
@click.argument("streams", nargs=-1, required=True)
@click.option("-p", "--provider", required=True, help="A stream-moderation provider, e.g. tupu.")
@click.option("--profile")
@click.option("--option", "opts", multiple=True, metavar="KEY=VALUE")
@click.option(
    "--callback/--no-callback",
    default=True,
    show_default=True,
    help="Results arrive by callback; needs the callback receiver.",
)
@click.option(
    "--wait",
    "wait_s",
    type=SECONDS,
    default=None,
    help="Wait up to S seconds for the streams to end, then print the reports.",
)
@click.option("-f", "--format", "fmt", type=click.Choice(["txt", "json"]), default="txt")
def moderate(
    streams: tuple[str, ...],
    provider: str,
    profile: str | None,
    opts: tuple[str, ...],
    callback: bool,
    wait_s: float | None,
    fmt: str,
) -> None:
    """Submit live streams for moderation; prints job ids (or the reports with --wait)."""
    orch = current().orchestrator()
    requests = [
        JobRequest(
            provider=provider,
            media=media_from(stream),
            kind=JobKind.STREAM_MODERATION,
            options=parse_options(opts),
            profile=profile,
        )
        for stream in streams
    ]
    # One vendor request for all streams when the provider takes several at once.
    handles = orch.submit_many(requests, callback=callback)
    for handle in handles:
        if wait_s is None:
            click.echo(handle.job_id)
            continue
        try:
            orch.wait(handle, timeout=wait_s)
        except VoxhubError as exc:
            click.echo(f"{handle.job_id}: {exc}", err=True)
        click.echo(orch.export(handle, fmt))
