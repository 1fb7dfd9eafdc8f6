"""``voxhub jobs``: a page of the job store, filtered, sorted and counted in SQL.

The listing opens the store file alone (:class:`voxhub.listing.JobListing`): no
plugins, providers, HTTP client or store writer, so it starts as fast as the
interpreter allows and a missing store is listed as empty, not created. Rows come
with only the columns shown, secrets masked; JSON is streamed as SQLite writes it.

Where the text goes: rows on stdout; "no jobs" and the footer saying how many more
there are on stderr, so that stdout holds only rows. ``--json`` writes one JSON array
(an object per line, written as it is read) and ``--jsonl`` one object per line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TextIO

import click

from ..listing import JobFilter, JobListing, JobRow
from .state import _named_store, current

if TYPE_CHECKING:
    from pathlib import Path

    from .._database import PostgresUrl

__all__ = ["DEFAULT_LIMIT", "list_jobs", "store_path"]

#: Rows of the table when ``--limit`` is not given (JSON output lists every job).
DEFAULT_LIMIT = 50


def store_path() -> Path | PostgresUrl:
    """The run's job store (a file or a URL): ``--store`` (or ``$VOXHUB_STORE``), the
    config's ``store``, or the XDG default, as the orchestrator would open it."""
    from .._sqlite import default_store_path

    state = current()
    if state.store:
        return _named_store(state.store, state.store_from)
    from ..config import Config

    configured = Config.load(state.config).get("store")
    if configured:
        return _named_store(str(configured), "the config's store")
    return default_store_path()


def list_jobs(
    where: JobFilter,
    *,
    limit: int | None,
    offset: int,
    oldest_first: bool,
    output: str,
) -> None:
    """Print a page of jobs as ``output`` (``table``, ``json`` or ``jsonl``)."""
    store = JobListing(store_path())
    if output == "table":
        page = DEFAULT_LIMIT if limit is None else limit
    else:
        page = 0 if limit is None else limit  # JSON lists everything unless told
    newest_first = not oldest_first
    try:
        if output == "table":
            rows = store.rows(where, newest_first=newest_first, limit=page or None,
                              offset=offset)  # fmt: skip
            shown = _table(rows, sys.stdout)
        else:
            lines = store.lines(where, newest_first=newest_first, limit=page or None,
                                offset=offset)  # fmt: skip
            shown = _json(lines, sys.stdout, array=output == "json")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (``| head``): stop quietly, and let nothing flush at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    quiet = output != "table" and limit is None  # a complete JSON listing says nothing else
    if quiet:
        return
    if shown == 0:
        click.echo(_nothing(store, where, offset), err=True)
    elif page and shown == page:
        total = store.count(where)
        more = total - offset - shown
        if more > 0:
            order = "oldest" if oldest_first else "newest"
            click.echo(
                f"{offset + 1}-{offset + shown} of {total} jobs{_described(where)}, {order} "
                f"first; {more} more: --offset {offset + shown} for the next page, "
                "--limit 0 for all",
                err=True,
            )


def _described(where: JobFilter) -> str:
    parts = [
        f"{flag} {value}"
        for flag, value in (
            ("--state", where.state),
            ("--provider", where.provider),
            ("--batch", where.batch),
        )
        if value is not None
    ]
    return f" matching {' '.join(parts)}" if parts else ""


def _nothing(store: JobListing, where: JobFilter, offset: int) -> str:
    if offset:
        total = store.count(where)
        return f"no jobs past --offset {offset} ({total} jobs{_described(where)})"
    if _described(where):
        return f"no jobs match{_described(where).removeprefix(' matching')} (store {store.path})"
    return f"no jobs in the store {store.path}"


def _table(rows: Iterable[JobRow], out: TextIO) -> int:
    shown = 0
    for row in rows:
        if shown == 0:
            out.write(f"{'JOB':<24}  {'PROVIDER':<12} {'STATE':<10} {'VENDOR ID':<24} "
                      f"{'CREATED':<19}  MEDIA\n")  # fmt: skip
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.created_at))
        out.write(
            f"{row.job_id:<24}  {row.provider:<12} {row.state:<10} {row.vendor_id or '-':<24} "
            f"{created:<19}  {row.media or ''}\n"
        )
        shown += 1
    return shown


def _json(lines: Iterable[str], out: TextIO, *, array: bool) -> int:
    """Write ``lines`` as they come, a thousand at a time: one JSON array (an object a
    line), or JSON Lines."""
    shown = 0
    between = ",\n" if array else "\n"
    out.write("[" if array else "")
    for chunk in _batched(lines, 1000):
        out.write(("\n" if array else "") if shown == 0 else between)
        out.write(between.join(chunk))
        shown += len(chunk)
    if array:
        out.write("\n]\n" if shown else "]\n")
    elif shown:
        out.write("\n")
    return shown


def _batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
