"""Listings of stored jobs that stay fast and small at a million jobs.

A listing filters, sorts and pages in SQL, on the indexes that migration 4 adds:
``(shown, created_at)``, ``(provider, created_at)``, ``(batch, created_at)`` and
``(created_at)``; a filtered page reads the rows it shows and no others. It reads only
the small ``jobs`` columns it shows: never the request, the status or the result, and
nothing is decoded with cattrs. The state shown is the generated ``jobs.shown`` column
(``closed`` once closed, ``failed`` for a submit that failed unsent).

:func:`job_lines` goes further for JSON output: SQLite writes each row's JSON text
itself, and Python only checks it for secrets (see :func:`_masked`). Rows come in
chunks of :data:`CHUNK` (the next chunk continues after the last row's key, so memory
stays flat and no read transaction stays open across chunks).

:class:`JobListing` opens a store file for listings alone, without
:class:`voxhub.store.Store` and what it imports (cattrs, the writer): ``voxhub jobs``
starts as fast as the interpreter and click allow, and never takes the write lock
(unless the store's schema must be upgraded first).

Secrets never show: what a listing shows of the vendor ids is written masked by the
store (ids under secret-looking names), the media description is the request's, masked
when stored, and every row passes the registered-value net of :mod:`voxhub.redact`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from ._database import Connection, Database, PostgresUrl, open_database, store_target
from ._sqlite import SCHEMA_VERSION
from .errors import InvalidInputError, StoreError
from .models import JobState
from .redact import redact, redact_text

__all__ = [
    "CHUNK",
    "SHOWN_STATES",
    "JobFilter",
    "JobListing",
    "JobRow",
    "batch_clause",
    "count_jobs",
    "job_lines",
    "job_row",
    "job_rows",
    "shown_state",
]

#: Rows read per query while streaming.
CHUNK = 1000

#: Every state a listing can show: the normalized states, the phases of a job with no
#: status yet (``voxhub.store.Phase``), and ``closed`` (see :func:`shown_state`).
SHOWN_STATES: tuple[str, ...] = (
    *(s.value for s in JobState),
    "recorded",
    "sending",
    "submitted",
    "closed",
)


def shown_state(phase: str, state: str | None, error: str | None) -> str:
    """The state a listing shows: ``closed`` once closed, else the normalized state, else
    ``failed`` for a submit that failed unsent, else the phase.

    The generated ``jobs.shown`` column computes the same in SQL (migration 4).
    """
    if phase == "closed":
        return "closed"
    if state is not None:
        return state
    return "failed" if error and phase != "sending" else str(phase)


# The media description: the column Store.record writes; rows written without it (by an
# older voxhub or another writer) fall back to the request's media, stored already masked.
_MEDIA = (
    "COALESCE(media, CASE json_extract(request, '$.media.type') "
    "WHEN 'file' THEN json_extract(request, '$.media.path') "
    "WHEN 'rtc' THEN 'rtc:' || json_extract(request, '$.media.channel') "
    "ELSE json_extract(request, '$.media.url') END)"
)
# (name, SQL), in the order rows and JSON objects list them.
_FIELDS = (
    ("job_id", "job_id"),
    ("provider", "provider"),
    ("profile", "profile"),
    ("state", "shown"),
    ("phase", "phase"),
    ("vendor_ids", "vendor_ids"),
    ("media", _MEDIA),
    ("batch", "batch"),
    ("has_result", "has_result"),
    ("error", "error"),
    ("created_at", "created_at"),
    ("updated_at", "updated_at"),
)
_AS_JSON = {
    "vendor_ids": "json(vendor_ids)",
    "has_result": "json(CASE WHEN has_result THEN 'true' ELSE 'false' END)",
}
_COLUMNS = ", ".join(sql for _, sql in _FIELDS)
_OBJECT = (
    "json_object("
    + ", ".join(f"'{name}', {_AS_JSON.get(name, sql)}" for name, sql in _FIELDS)
    + ")"
)


def batch_clause(conn: Connection, batch: str) -> tuple[str, list[str]]:
    """The SQL condition (and its values) for the jobs of ``batch``: a batch id, or a name
    (``--batch NAME`` labels a batch, and may label several). One batch is ``batch=?``,
    so a listing still reads the ``(batch, created_at)`` index in order."""
    ids = [
        row[0]
        for row in conn.execute(
            "SELECT batch_id FROM batches WHERE batch_id=? "
            "OR json_extract(settings, '$.name')=? ORDER BY created_at",
            (batch, batch),
        )
    ] or [batch]  # jobs labelled before batches were stored (schema < 3) keep the name
    if len(ids) == 1:
        return "batch=?", ids
    return f"batch IN ({', '.join('?' * len(ids))})", ids


@attrs.frozen
class JobFilter:
    """Which jobs a listing shows; ``None`` is no condition. ``state`` is a shown state
    (one of :data:`SHOWN_STATES`)."""

    state: str | None = None
    provider: str | None = None
    batch: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.state is not None and self.state not in SHOWN_STATES:
            raise InvalidInputError(
                f"state must be one of {', '.join(SHOWN_STATES)}, got {self.state[:40]!r}",
                field="state",
            )

    def where(self, conn: Connection) -> tuple[list[str], list[Any]]:
        """SQL conditions and their bound values (a batch name is looked up on ``conn``)."""
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (("shown", self.state), ("provider", self.provider)):
            if value is not None:
                clauses.append(f"{column}=?")
                args.append(value)
        if self.batch is not None:
            clause, ids = batch_clause(conn, self.batch)
            clauses.append(clause)
            args += ids
        return clauses, args


@attrs.frozen
class JobRow:
    """One job as a listing shows it (secrets masked)."""

    job_id: str
    provider: str
    profile: str
    state: str
    phase: str
    vendor_ids: Mapping[str, Any]
    media: str | None
    batch: str | None
    has_result: bool
    error: str | None
    created_at: float
    updated_at: float

    @property
    def vendor_id(self) -> str | None:
        """The vendor's main id (the first of :attr:`vendor_ids`), if known yet."""
        first = next(iter(self.vendor_ids.values()), None)
        return None if first is None else str(first)

    def as_dict(self) -> dict[str, Any]:
        """The row as :func:`job_lines` writes it (the same keys, in the same order)."""
        return {name: getattr(self, name) for name, _ in _FIELDS}


def count_jobs(conn: Connection, where: JobFilter | None = None) -> int:
    """How many stored jobs match (counted on an index)."""
    clauses, args = (where or JobFilter()).where(conn)
    where_sql = " WHERE " + " AND ".join(clauses) if clauses else ""
    sql = f"SELECT COUNT(*) FROM jobs{where_sql}"  # noqa: S608 - constant parts, bound values
    return int(conn.execute(sql, args).fetchone()[0])


def _pages(
    conn: Connection,
    select: str,
    where: JobFilter | None,
    newest_first: bool,
    limit: int | None,
    offset: int,
) -> Iterator[list[Any]]:
    """``select`` (columns ending in ``created_at, rowid``) over the matching jobs, in
    chunks: the first skips ``offset`` rows, each next one starts after the last key."""
    if limit is not None and limit < 0:
        raise InvalidInputError(f"limit must be 0 or more, got {limit}", field="limit")
    if offset < 0:
        raise InvalidInputError(f"offset must be 0 or more, got {offset}", field="offset")
    clauses, args = (where or JobFilter()).where(conn)
    direction, after = ("DESC", "<") if newest_first else ("ASC", ">")
    order = f" ORDER BY created_at {direction}, rowid {direction} LIMIT ?"
    left = limit
    key: tuple[float, int] | None = None
    while left is None or left > 0:
        size = CHUNK if left is None else min(CHUNK, left)
        conditions = list(clauses)
        values = list(args)
        if key is not None:
            conditions.append(f"(created_at, rowid) {after} (?, ?)")
            values += key
        sql = f"SELECT {select}, created_at, rowid FROM jobs"  # noqa: S608 - constant parts
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += order
        values.append(size)
        if key is None and offset:
            sql += " OFFSET ?"
            values.append(offset)
        rows = conn.execute(sql, values).fetchall()
        if rows:
            yield rows
        if len(rows) < size:
            return
        key = (rows[-1][-2], rows[-1][-1])
        if left is not None:
            left -= len(rows)


def job_rows(
    conn: Connection,
    where: JobFilter | None = None,
    *,
    newest_first: bool = True,
    limit: int | None = None,
    offset: int = 0,
) -> Iterator[JobRow]:
    """The matching jobs as :class:`JobRow`, newest first unless told otherwise, streamed."""
    for rows in _pages(conn, _COLUMNS, where, newest_first, limit, offset):
        for row in rows:
            yield _row(row)


def job_row(conn: Connection, job_id: str) -> JobRow | None:
    """One job as a listing shows it, or ``None``."""
    found = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE job_id=?", (job_id,))  # noqa: S608
    row = found.fetchone()
    return None if row is None else _row(row)


def _row(row: Any) -> JobRow:
    (job_id, provider, profile, state, phase, ids, media, batch, has_result, error,
     created_at, updated_at) = row[: len(_FIELDS)]  # fmt: skip
    # Masked by the store already; the registered-value net too, as echo_json would.
    return JobRow(
        job_id=job_id,
        provider=provider,
        profile=profile,
        state=state,
        phase=phase,
        vendor_ids={} if ids == "{}" else redact(json.loads(ids)),
        media=None if media is None else redact_text(media),
        batch=batch,
        has_result=bool(has_result),
        error=None if error is None else redact_text(error),
        created_at=created_at,
        updated_at=updated_at,
    )


def job_lines(
    conn: Connection,
    where: JobFilter | None = None,
    *,
    newest_first: bool = True,
    limit: int | None = None,
    offset: int = 0,
) -> Iterator[str]:
    """Each matching job as one line of compact JSON (the keys of :meth:`JobRow.as_dict`),
    written by SQLite, secrets masked; streamed in chunks.

    On PostgreSQL the lines are written from the rows in Python: its JSON functions
    space and order keys their own way.
    """
    if getattr(conn, "dialect", "sqlite") != "sqlite":
        for rows in _pages(conn, _COLUMNS, where, newest_first, limit, offset):
            for row in rows:
                text = json.dumps(_row(row).as_dict(), ensure_ascii=False, separators=(",", ":"))
                yield text
        return
    for rows in _pages(conn, _OBJECT, where, newest_first, limit, offset):
        yield from _masked([row[0] for row in rows])


def _masked(lines: list[str]) -> list[str]:
    """``lines`` with every registered secret value masked, as ``redact`` would mask the
    decoded rows.

    One pass over the whole chunk finds nothing in the common case. A line holding a JSON
    escape is decoded and redacted as data (a secret can hide behind an escape from a
    match on the text); other lines are masked on their text, which is then exact.
    """
    text = "\n".join(lines)
    if redact_text(text) == text and "\\" not in text:
        return lines
    out: list[str] = []
    for line in lines:
        if "\\" in line:
            data = redact(json.loads(line))
            out.append(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
        else:
            out.append(redact_text(line))
    return out


class JobListing:
    """The listings of one job store (a file or a PostgreSQL URL), opened for reading alone.

    A missing file lists no jobs (and is not created); a store of an older schema is
    upgraded first, as :class:`voxhub.store.Store` would. Rows are read on this
    thread's connection.
    """

    def __init__(
        self, path: str | Path | PostgresUrl, *, database: Database | None = None
    ) -> None:
        self.path = store_target(path)
        self._db: Database | None = database  # a store's own (``Store.listing``)
        if database is not None or (isinstance(self.path, Path) and not self.path.exists()):
            return
        try:
            db = open_database(self.path)
            version = db.schema_version()
            if version != SCHEMA_VERSION:
                db.migrate()  # refuses a newer schema with a StoreError
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the job store at {self.path}: {exc}") from exc
        self._db = db

    def close(self) -> None:
        """Close the connections (a later listing opens new ones)."""
        if self._db is not None:
            self._db.close()

    def rows(
        self,
        where: JobFilter | None = None,
        *,
        newest_first: bool = True,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[JobRow]:
        """:func:`job_rows` of this store."""
        if self._db is None:
            return iter(())
        return job_rows(
            self._db.reader(), where, newest_first=newest_first, limit=limit, offset=offset
        )

    def lines(
        self,
        where: JobFilter | None = None,
        *,
        newest_first: bool = True,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[str]:
        """:func:`job_lines` of this store."""
        if self._db is None:
            return iter(())
        return job_lines(
            self._db.reader(), where, newest_first=newest_first, limit=limit, offset=offset
        )

    def count(self, where: JobFilter | None = None) -> int:
        """:func:`count_jobs` of this store."""
        return 0 if self._db is None else count_jobs(self._db.reader(), where)

    def row(self, job_id: str) -> JobRow | None:
        """:func:`job_row` of this store."""
        return None if self._db is None else job_row(self._db.reader(), job_id)
