"""``voxhub transcribe``, ``submit`` and ``moderate``: sending work to providers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..errors import VoxhubError
from ..export import FORMATS, render
from ..media import media_from
from ..models import JobKind, JobRequest, JobStatus
from ..orchestrator import ClosePolicy, Orchestrator, Outcome
from .state import current, interactive, parse_options

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


_WRITTEN: set[Path] = set()


def _write_or_print(text: str, out_dir: Path | None, name: str, fmt: str) -> None:
    if out_dir is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{Path(name).stem or 'result'}.{fmt}"
    if target in _WRITTEN:  # two inputs with one stem (a/x.wav, b/x.wav): keep both
        target = out_dir / f"{Path(name).stem}-{len(_WRITTEN)}.{fmt}"
    _WRITTEN.add(target)
    target.write_text(text, encoding="utf-8")
    click.echo(str(target), err=interactive())


@click.command()
@click.argument("media", nargs=-1, required=True)
@click.option("-p", "--provider", help="Provider (default: configured default, else local).")
@click.option("--profile", help="Credential profile (default: the provider's name).")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="txt", show_default=True)
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per input here instead of printing.",
)
@click.option("--language", help="Language code, e.g. en.")
@click.option("--option", "opts", multiple=True, metavar="KEY=VALUE", help="Provider option.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 256))
@click.option("--timeout", type=float, help="Give up waiting after S seconds (jobs keep running).")
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
@click.option("--batch", help="Name the batch (for `voxhub jobs --batch` and resume).")
def transcribe(
    media: tuple[str, ...],
    provider: str | None,
    profile: str | None,
    fmt: str,
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
) -> None:
    """Transcribe files or URLs and print (or write) the transcripts.

    The same input is not submitted twice: running the command again picks up
    the stored job (use --new to force a new one).
    """
    orch = current().orchestrator()
    provider = provider or orch.default_provider()
    requests = _requests(
        media, provider, JobKind.TRANSCRIPTION, language, parse_options(opts), profile, new
    )
    if no_wait:
        for request in requests:
            handle = orch.submit(
                request,
                batch=batch,
                callback=callback,
                progress=_progress_printer(request.media.describe() if request.media else ""),
            )
            click.echo(handle.job_id)
        return
    failures = 0
    for outcome in _run_batch(orch, requests, concurrency, timeout, close_policy, batch, callback):
        name = outcome.request.media.describe() if outcome.request.media else "?"
        if outcome.error is not None and len(requests) == 1:
            raise outcome.error  # one input: its own message and exit status
        if outcome.error is not None or outcome.handle is None:
            failures += 1
            job = f" [{outcome.handle.job_id}]" if outcome.handle else ""
            click.echo(f"error: {name}{job}: {outcome.error}", err=True)
            continue
        text = _export_outcome(orch, outcome, fmt)
        if len(requests) > 1 and output_dir is None and interactive():
            click.echo(f"==> {name} ({outcome.handle.job_id}) <==", err=True)
        _write_or_print(text, output_dir, Path(name).name, fmt)
    if failures:
        sys.exit(1)


def _export_outcome(orch: Orchestrator, outcome: Outcome, fmt: str) -> str:
    assert outcome.handle is not None
    if fmt == "json" or outcome.result is None:
        return orch.export(outcome.handle, fmt)
    entry = orch.provider_entry(outcome.handle.provider)
    if fmt in entry.info.export_formats:
        return orch.export(outcome.handle, fmt)
    return render(outcome.result, fmt)


def _run_batch(
    orch: Orchestrator,
    requests: list[JobRequest],
    concurrency: int,
    timeout: float | None,
    close_policy: str,
    batch: str | None,
    callback: bool | None,
) -> Iterator[Outcome]:
    if len(requests) == 1:
        request = requests[0]
        label = request.media.describe() if request.media else ""
        handle = None
        try:
            handle = orch.submit(
                request, batch=batch, callback=callback, progress=_progress_printer(label)
            )
        except VoxhubError as exc:
            yield Outcome(request, handle, error=exc)
            return
        yield _wait_with_spinner(orch, request, handle, timeout, close_policy)
        return
    outcomes = orch.run_many(
        requests,
        concurrency=concurrency,
        timeout=timeout,
        close=close_policy,
        batch=batch,
        callback=callback,
    )
    if not interactive():
        yield from outcomes
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "jobs", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    ) as bar:
        task = bar.add_task("jobs", total=len(requests))
        for outcome in outcomes:
            bar.advance(task)
            yield outcome


def _wait_with_spinner(
    orch: Orchestrator, request: JobRequest, handle: Any, timeout: float | None, close_policy: str
) -> Outcome:
    if not interactive():
        return orch.finish(request, handle, timeout=timeout, close=close_policy)
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(f"{handle.job_id}: waiting for {handle.provider}") as status:

        def show(s: JobStatus) -> None:
            share = f" {s.progress:.0%}" if s.progress is not None else ""
            status.update(f"{handle.job_id}: {s.state.value}{share}")

        try:
            final = orch.wait(handle, timeout=timeout, on_status=show)
        except VoxhubError as exc:
            return Outcome(request, handle, error=exc)
    del final
    return orch.finish(request, handle, timeout=timeout, close=close_policy)


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
    for request in requests:
        handle = orch.submit(
            request,
            batch=batch,
            callback=callback,
            progress=_progress_printer(request.media.describe() if request.media else ""),
        )
        click.echo(handle.job_id)


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
    type=float,
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
