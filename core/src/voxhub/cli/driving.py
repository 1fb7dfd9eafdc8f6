"""Running a recorded batch from the command line: display, Ctrl-C, summary, exit status.

``voxhub transcribe`` and ``voxhub batches resume`` both hand a recorded batch to
:func:`drive`. It starts the orchestrator's run, shows it (:mod:`voxhub.cli.display`),
prints results as they come (the main thread is the only one printing them, so
two transcripts never mix), and ends with a summary read back from the store.

Ctrl-C is handled here, not by click: for the time the batch runs, SIGINT has its
own handler (:class:`Interrupts`). The first one stops starting new inputs and lets
those in flight land, then the command exits 130 after printing the exact resume
command; a second one exits 130 at once.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import attrs
import click

from .display import Display, open_display

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from ..batches import BatchEvent, BatchRun, Outcome
    from ..orchestrator import Orchestrator

__all__ = [
    "EXIT_INTERRUPTED",
    "Interrupts",
    "Report",
    "drive",
    "open_executor",
    "resume_command",
]

#: The exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


def resume_command(batch_id: str, *extra: str) -> str:
    """The exact command that resumes ``batch_id`` (with the ``extra`` arguments), with
    ``--store``/``--config`` as given.

    A PostgreSQL URL given with its password is printed without it (never masked: a
    ``***`` would not connect), followed by a shell comment saying where libpq reads it.
    """
    parts = ["voxhub"]
    where_note = ""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    if root is not None:
        from click.core import ParameterSource

        from .._database import PostgresUrl, is_postgres_url

        for name, flag in (("store", "--store"), ("config_path", "--config")):
            value = root.params.get(name)
            # From the environment it is there again next time; from the command line not.
            if value and root.get_parameter_source(name) is ParameterSource.COMMANDLINE:
                if name == "store" and is_postgres_url(value):
                    url = PostgresUrl(value)
                    parts += [flag, url.without_password()]
                    if url.has_password:
                        where_note = "  # with the store's password in PGPASSWORD or ~/.pgpass"
                else:
                    parts += [flag, str(Path(value).resolve())]
    parts += ["batches", "resume", batch_id, *extra]
    return shlex.join(parts) + where_note


@contextlib.contextmanager
def open_executor(spec: str | None) -> Iterator[Executor | None]:
    """The executor ``--executor`` names (``dask://HOST:PORT``), connected for the time
    of the block; ``None`` without one (the batch runs on this process's threads)."""
    if spec is None:
        yield None
        return
    from ..distributed import dask_executor

    with dask_executor(spec) as executor:
        yield executor


class Interrupts:
    """SIGINT handling for the time a batch runs (the previous handler comes back after).

    The first signal calls ``on_first`` in a new thread: the handler itself runs on
    the main thread between two bytecodes, where it must not take locks that thread
    may hold (the store's, the display's). A second signal exits at once with 130.
    """

    def __init__(self) -> None:
        self.count = 0
        self._on_first: Callable[[], None] | None = None
        self._old: Any = None
        self._installed = False

    def __enter__(self) -> Interrupts:
        # Signal handlers can only be set from the main thread (tests may drive a CLI
        # in another one: then Ctrl-C simply keeps its old meaning).
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._old)
            self._installed = False

    def requested(self) -> bool:
        """Whether Ctrl-C was pressed."""
        return self.count > 0

    def on_first(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the first Ctrl-C (at once if it was already pressed)."""
        self._on_first = action
        if self.count:
            threading.Thread(target=action, name="voxhub-interrupt", daemon=True).start()

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        if self.count > 1:
            _exit_now()
        action = self._on_first
        if action is not None:
            threading.Thread(target=action, name="voxhub-interrupt", daemon=True).start()


def _exit_now() -> NoReturn:
    # Not sys.exit: that would wait for the worker threads. The store is safe (each
    # write is one SQLite transaction); resuming finishes whatever was in flight.
    message = b"\ninterrupted again: exiting now\n"
    if sys.stderr.isatty():
        message = b"\x1b[?25h" + message  # the live display had hidden the cursor
    os.write(2, message)
    os._exit(EXIT_INTERRUPTED)


@attrs.define
class Report:
    """What a run printed and how it ended (for the caller's exit status)."""

    seen: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    interrupted: bool = False
    #: The first failure's outcome, for a single input (raised with its own exit status).
    first_error: Outcome | None = None


def _progress(detail: str | None) -> float | None:
    try:
        return float(detail) if detail is not None else None
    except ValueError:
        return None


def _label(outcome: Outcome) -> str:
    if outcome.input:
        return outcome.input
    media = outcome.request.media
    return media.describe() if media is not None else "?"


def failure_line(label: str, job_id: str | None, stage: str | None, error: str) -> str:
    """One failed input, on one line: what, which job, at which stage, why."""
    job = f" [{job_id}]" if job_id else ""
    where = f" at {stage}" if stage else ""
    first = error.strip().splitlines()[0] if error.strip() else "unknown error"
    return f"failed: {label}{job}{where}: {first}"


def drive(
    orch: Orchestrator,
    batch_id: str,
    start: Callable[[Callable[[BatchEvent], None]], BatchRun],
    interrupts: Interrupts,
    *,
    interactive: bool,
    single: str | None = None,
    headers: bool = False,
) -> Report:
    """Run a recorded batch to its end (or to Ctrl-C), printing as it goes.

    ``start(on_event)`` starts the orchestrator's run. ``single`` names the one input
    of a one-input batch (a spinner instead of the batch bar; its error is returned
    for the caller to raise). ``headers`` puts ``==> input <==`` before each text
    printed. Texts go to stdout, everything else to stderr.
    """
    report = Report()
    holder: dict[str, BatchRun] = {}

    def counts() -> Any:
        run = holder.get("run")
        if run is not None:
            return run.counts()
        return orch.batch(batch_id).counts

    display = open_display(interactive=interactive, single=single, batch_id=batch_id,
                           counts=counts)
    remove_listener = _listen_for_backoffs(orch, display)

    def on_event(event: BatchEvent) -> None:
        if event.kind == "state" and event.state:
            display.state(event.job_id, event.state, _progress(event.detail))
        elif event.kind == "started":
            display.state(event.job_id, "submitting")

    def first_interrupt() -> None:
        run = holder.get("run")
        if run is not None:
            run.stop()
        display.err(
            "^C: no new input starts; waiting for those in flight to land "
            f"(^C again to quit now). Resume later with: {resume_command(batch_id)}"
        )

    try:
        with display:
            interrupts.on_first(first_interrupt)
            if interrupts.requested():
                report.interrupted = True
                return report
            run = start(on_event)
            holder["run"] = run
            if interrupts.requested():  # pressed while the run was being set up
                run.stop()
            for outcome in run:
                _show(outcome, report, display, interactive=interactive, single=single,
                      headers=headers)
    finally:
        if remove_listener is not None:
            remove_listener()
    report.interrupted = interrupts.requested()
    return report


def _listen_for_backoffs(orch: Orchestrator, display: Display) -> Callable[[], None] | None:
    add = getattr(orch.http, "add_backoff_listener", None)
    if add is None:
        return None
    remove: Callable[[], None] = add(display.backoff)
    return remove


def _show(
    outcome: Outcome,
    report: Report,
    display: Display,
    *,
    interactive: bool,
    single: str | None,
    headers: bool,
) -> None:
    report.seen += 1
    label = _label(outcome)
    job_id = outcome.handle.job_id if outcome.handle is not None else None
    if outcome.skipped is not None:
        report.skipped += 1
        display.err(f"skipped: {label}{f' [{job_id}]' if job_id else ''}: {outcome.skipped}")
        return
    if outcome.error is not None:
        report.failed += 1
        if report.first_error is None:
            report.first_error = outcome
        if single is None:
            stage = outcome.stage.value if outcome.stage is not None else None
            display.err(failure_line(label, job_id, stage, str(outcome.error)))
        return
    report.done += 1
    if outcome.text is not None:
        if headers:
            heading = f"==> {label}{f' ({job_id})' if job_id else ''} <=="
            (display.err if interactive else display.out)(heading)
        display.out(outcome.text)
    if outcome.output is not None:
        # Parseable on stdout when no one watches. On a terminal one input's file is
        # named; a batch's files are not listed one by one (the summary says where).
        if not interactive:
            display.out(outcome.output)
        elif single is not None:
            display.err(outcome.output)


def summarize(orch: Orchestrator, batch_id: str, report: Report, *, limit: int = 50) -> int:
    """Print the batch's summary on stderr (from the store); return the exit status.

    0 when every input is done, 130 after Ctrl-C, 1 when some failed or are unfinished.
    """
    from ..batches import ItemState, Stage

    info = orch.batch(batch_id)
    counts = info.counts
    parts = [f"{counts.done} done", f"{counts.failed} failed"]
    if report.skipped:
        parts.append(f"{report.skipped} skipped")
    unfinished = counts.total - counts.done - counts.failed
    if unfinished:
        parts.append(f"{unfinished} not finished")
    echo = _stderr
    echo(f"batch {batch_id}: {', '.join(parts)} (of {counts.total})")
    if info.settings.output_dir and counts.done:
        echo(f"outputs in {info.settings.output_dir}")
    # What a resume does with each failure: a failed step of a job that is fine (wait,
    # fetch, export, write, close) is redone by any resume; a job that failed at the
    # provider runs again only with --retry-failed; a refused input needs fixing first.
    redo = retry = False
    if counts.failed:
        for shown, row in enumerate(orch.batch_items(batch_id, state=ItemState.FAILED)):
            if shown == limit:
                more = counts.failed - shown
                echo(f"  … and {more} more: voxhub batches show {batch_id} --state failed")
                redo = retry = True  # not known without reading them all: say both
                break
            stage = row.stage.value if row.stage is not None else None
            echo("  " + failure_line(row.input, row.job_id, stage, row.error or ""))
            if row.stage is Stage.CHECK:
                continue
            if row.stage is Stage.SUBMIT or row.job_state in ("failed", "cancelled"):
                retry = True
            else:
                redo = True
    if report.interrupted:
        echo(f"interrupted: resume with: {resume_command(batch_id)}")
        return EXIT_INTERRUPTED
    if unfinished or redo:
        echo(f"finish the rest with: {resume_command(batch_id)}")
    if retry:
        echo(
            "after fixing the cause, run the failed jobs again (a job that failed at the "
            f"provider is submitted again): {resume_command(batch_id, '--retry-failed')}"
        )
    return 1 if counts.failed or unfinished else 0


def _stderr(text: str) -> None:
    click.echo(text, err=True)
