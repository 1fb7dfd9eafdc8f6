"""The ``voxhub`` command line: a thin layer over :class:`voxhub.Orchestrator`.

Every command builds one orchestrator from the global options (store, config,
logging), calls it, and prints: human-readable text on a terminal, quiet and
parseable text otherwise (``--json`` where it matters). Errors are one line on
stderr and a non-zero exit status; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import attrs
import click

from . import __version__
from .config import Config, default_config_path
from .errors import InvalidInputError, VoxhubError
from .export import FORMATS, render
from .logging_setup import configure_logging
from .models import JobKind, JobRequest, JobStatus
from .orchestrator import ClosePolicy, Orchestrator, Outcome, media_from
from .plugins import PluginManager
from .redact import redact
from .sandbox import FaultPlan, QuietRequestHandler, RunningSandbox, serve
from .store import JobRecord, default_store_path

__all__ = ["cli", "main"]


@attrs.define
class _State:
    store: str | None
    config: str | None
    debug: bool
    _plugins: PluginManager | None = None
    _orch: Orchestrator | None = None

    @property
    def plugins(self) -> PluginManager:
        if self._plugins is None:
            self._plugins = _loaded_plugins()
        return self._plugins

    def orchestrator(self, callback_url: str | None = None) -> Orchestrator:
        if self._orch is None:
            config = Config.load(self.config)
            self._orch = Orchestrator(
                store=self.store or config.get("store") or default_store_path(),
                config=config,
                plugins=self.plugins,
                callback_url=callback_url,
            )
        return self._orch


def _interactive() -> bool:
    return sys.stderr.isatty()


class _Group(click.Group):
    """Lists commands in the order they were added (most used first)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="voxhub")
@click.option(
    "--store",
    type=click.Path(dir_okay=False),
    envvar="VOXHUB_STORE",
    help="Job store (SQLite file). Default: $XDG_DATA_HOME/voxhub/jobs.db.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="VOXHUB_CONFIG",
    help="Config file. Default: $XDG_CONFIG_HOME/voxhub/config.toml.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    envvar="VOXHUB_LOG_LEVEL",
)
@click.option(
    "--log-format",
    type=click.Choice(["console", "json"]),
    default="console",
    show_default=True,
    envvar="VOXHUB_LOG_FORMAT",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(
    ctx: click.Context,
    store: str | None,
    config_path: str | None,
    log_level: str,
    log_format: str,
    debug: bool,
) -> None:
    """Run speech and media jobs on any provider: one CLI, one job store."""
    configure_logging(log_level, log_format)
    ctx.obj = _State(store=store, config=config_path, debug=debug)
    ctx.call_on_close(lambda: ctx.obj._orch.close_resources() if ctx.obj._orch else None)


def _state() -> _State:
    state = click.get_current_context().find_object(_State)
    if state is None:  # only when a plugin command runs outside the voxhub group
        state = _State(store=None, config=None, debug=False)
    return state


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--option expects KEY=VALUE, got {pair!r}", field="option")
        options[key.strip()] = value
    return options


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(redact(data), ensure_ascii=False, indent=2, default=str))


# --- providers -------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def providers(as_json: bool) -> None:
    """List installed providers, their plugin, version, kinds, and plugins that failed to load."""
    rows = _state().plugins.list_plugins()
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no providers installed (pip install voxhub-local for offline transcription)")
        return
    for row in rows:
        if row["error"]:
            click.echo(f"!  {row['plugin']} ({row['distribution'] or '?'}): {row['error']}")
            continue
        dist = f"{row['distribution']} {row['version']}" if row["distribution"] else "-"
        sandbox = "  [sandbox]" if row["sandbox"] else ""
        click.echo(f"{row['provider']:<18} {','.join(row['kinds']):<24} {dist}{sandbox}")


# --- transcribe / submit / moderate ---------------------------------------------------


def _progress_printer(label: str) -> Any:
    """An upload progress callback drawing a rich bar on a terminal, else nothing."""
    if not _interactive():
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
    click.echo(str(target), err=_interactive())


@cli.command()
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
    type=click.Choice([ClosePolicy.NEVER, ClosePolicy.AFTER_FETCH, ClosePolicy.ALWAYS]),
    default=ClosePolicy.NEVER,
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
    orch = _state().orchestrator()
    provider = provider or orch.default_provider()
    requests = _requests(
        media, provider, JobKind.TRANSCRIPTION, language, _parse_options(opts), profile, new
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
        if len(requests) > 1 and output_dir is None and _interactive():
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
    if not _interactive():
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
    if not _interactive():
        return orch._finish(request, handle, timeout=timeout, close=close_policy)
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
    return orch._finish(request, handle, timeout=timeout, close=close_policy)


@cli.command()
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
    orch = _state().orchestrator()
    options = _parse_options(opts)
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


@cli.command()
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
    orch = _state().orchestrator()
    requests = [
        JobRequest(
            provider=provider,
            media=media_from(stream),
            kind=JobKind.STREAM_MODERATION,
            options=_parse_options(opts),
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


# --- single-job commands -----------------------------------------------------------------


def _status_line(job_id: str, status: JobStatus) -> str:
    parts = [job_id, status.state.value]
    if status.vendor_state:
        parts.append(f"({status.vendor_state})")
    if status.progress is not None:
        parts.append(f"{status.progress:.0%}")
    if status.reason or status.detail:
        parts.append(": ".join(p for p in (status.reason, status.detail) if p))
    return " ".join(parts)


@cli.command()
@click.argument("job")
@click.option("--json", "as_json", is_flag=True)
def status(job: str, as_json: bool) -> None:
    """Show a job's current status (asks the provider unless it is final)."""
    result = _state().orchestrator().status(job)
    if as_json:
        _echo_json({"job_id": job, **attrs.asdict(attrs.evolve(result, raw=None))})
    else:
        click.echo(_status_line(job, result))


@cli.command("wait")
@click.argument("job")
@click.option("--timeout", type=float, help="Give up after S seconds (the job keeps running).")
def wait_cmd(job: str, timeout: float | None) -> None:
    """Wait until a job is final; exits non-zero if it failed or the wait timed out."""
    result = _state().orchestrator().wait(job, timeout=timeout)
    click.echo(_status_line(job, result))


@cli.command()
@click.argument("job")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="txt", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
def fetch(job: str, fmt: str, output: Path | None) -> None:
    """Print a finished job's result (captions come from the provider when it offers them)."""
    text = _state().orchestrator().export(job, fmt)
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text, encoding="utf-8")


@cli.command()
@click.argument("jobs", nargs=-1, required=True)
def close(jobs: tuple[str, ...]) -> None:
    """Close jobs at their provider (delete or stop); the stored record stays."""
    orch = _state().orchestrator()
    for job in jobs:
        orch.close(job)
        click.echo(f"{job} closed")


@cli.command()
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
    orch = _state().orchestrator()
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


@cli.group(cls=_Group, invoke_without_command=True)
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
    store = _state().orchestrator().store
    records = store.jobs(provider=provider, batch=batch)
    if state:
        records = [r for r in records if r.state == state]
    rows = [_job_row(r) for r in records]
    if as_json:
        _echo_json(rows)
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
    orch = _state().orchestrator()
    record = orch.record(job)
    _echo_json(
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
    orch = _state().orchestrator()
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


# --- config ----------------------------------------------------------------------------


@cli.group(cls=_Group)
def config() -> None:
    """Show the configuration (secrets masked) or where it is read from."""


@config.command("show")
def config_show() -> None:
    """Print the effective configuration with every secret masked."""
    infos = {name: entry.info for name, entry in _state().plugins.providers.items()}
    _echo_json(Config.load(_state().config).masked(infos))


@config.command("path")
def config_path() -> None:
    """Print the config file and job store locations."""
    state = _state()
    click.echo(f"config: {state.config or default_config_path()}")
    click.echo(f"store:  {state.store or default_store_path()}")


# --- sandbox ----------------------------------------------------------------------------


@cli.command()
@click.argument("providers_", metavar="[PROVIDER]...", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port of the first sandbox (0 = ephemeral); the next ones use the next ports.",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An emulator setting (JSON value), e.g. processing_seconds=0 for the Rev.ai sandbox.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KEY=VALUE",
    help="Fault injection, e.g. rate_limited=0.1 server_error=0.05 drop=0.02.",
)
def sandbox(
    providers_: tuple[str, ...],
    host: str,
    port: int,
    faults: tuple[str, ...],
    options: tuple[str, ...],
) -> None:
    """Run vendor emulators on loopback; prints one JSON line per sandbox, serves until ^C."""
    plugins = _state().plugins
    names = list(providers_) or sorted(plugins.sandboxes)
    if not names:
        raise click.UsageError("no sandboxes are installed")
    plan = (
        FaultPlan.from_dict({k: json.loads(v) for k, v in (f.partition("=")[::2] for f in faults)})
        if faults
        else None
    )
    knobs = {k: _json_or_text(v) for k, v in (o.partition("=")[::2] for o in options)}
    running: list[RunningSandbox] = []
    stop = threading.Event()
    # Installed before anything is announced, so a SIGTERM right after the JSON line
    # stops the sandboxes cleanly (exit 0) instead of killing the process.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for index, name in enumerate(names):
            spec = plugins.sandboxes.get(name)
            if spec is None:
                raise click.UsageError(
                    f"no sandbox for {name!r} (installed: {', '.join(sorted(plugins.sandboxes))})"
                )
            server = serve(spec.factory(faults=plan, **knobs), host, port + index if port else 0)
            running.append(server)
            click.echo(json.dumps(server.announce()))
        sys.stdout.flush()
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        for server in running:
            server.stop()


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


_PLUGINS: list[PluginManager] = []


def _loaded_plugins() -> PluginManager:
    # Loaded once per process: plugin commands and the orchestrator share it.
    if not _PLUGINS:
        _PLUGINS.append(PluginManager.load())
    return _PLUGINS[0]


@cli.group(cls=_Group)
def callbacks() -> None:
    """Receive provider callbacks (webhooks) into the job store."""


@callbacks.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--public-url",
    help="The URL providers reach this receiver at (e.g. behind a proxy), shown in the "
    "startup line. Processes that submit jobs read it from [voxhub] callback_url or "
    "VOXHUB_CALLBACK_URL: set it there too.",
)
def callbacks_serve(host: str, port: int, public_url: str | None) -> None:
    """Run the callback receiver until interrupted; prints one JSON line when listening."""
    from werkzeug.serving import make_server

    from .callbacks import CallbackHandler, wsgi_app

    orch = _state().orchestrator(callback_url=public_url)
    # The quiet handler keeps per-job callback tokens (in the URL path) out of stderr.
    server = make_server(
        host,
        port,
        wsgi_app(CallbackHandler(orch)),
        threaded=True,
        request_handler=QuietRequestHandler,
    )
    listening = f"http://{host if ':' not in host else f'[{host}]'}:{server.server_port}"
    click.echo(json.dumps({"listening": listening, "public_url": orch.callback_url or listening}))
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# --- plugin authoring ------------------------------------------------------------------


@cli.group(cls=_Group)
def plugin() -> None:
    """Write a provider plugin of your own (see docs/plugins.md)."""


@plugin.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    help="Where to create voxhub-NAME/ (default: the current directory).",
)
@click.option("--force", is_flag=True, help="Overwrite the generated files in voxhub-NAME/.")
def plugin_new(name: str, directory: Path, force: bool) -> None:
    """Generate voxhub-NAME/, a working plugin to turn into yours.

    It holds a provider of a small fictional job API, the sandbox emulating that
    API, tests (voxhub's conformance suite) and packaging. NAME is the provider's
    name: lower-case letters, digits and dashes (e.g. acme).
    """
    from .scaffold import ScaffoldError, new_plugin, next_steps

    try:
        target = new_plugin(name, directory, force=force)
    except ScaffoldError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(next_steps(target, name))


def _add_plugin_commands() -> None:
    try:
        _loaded_plugins().register_commands(cli)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
        click.echo(f"warning: plugin commands unavailable: {exc}", err=True)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the ``voxhub`` script."""
    _add_plugin_commands()
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="voxhub", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except VoxhubError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyError as exc:
        if debug:
            raise
        click.echo(f"error: not found: {exc}", err=True)
        sys.exit(4)
    sys.exit(0)
