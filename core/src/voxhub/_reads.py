"""The job store's reading side: records, results and events, on the database's reader.

A reader never waits for a writer (SQLite in WAL mode, PostgreSQL's MVCC) and sees
every committed write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._database import Database, Row
from ._records import RECORD_COLUMNS, Decoded, Event, JobRecord, record_from_row
from .listing import JobListing, batch_clause
from .models import JobState, Result

if TYPE_CHECKING:

    from .clock import Clock

__all__ = ["StoreReads"]

_STATES = frozenset(s.value for s in JobState)

# Built from a constant column list only; every value is bound.
_ALL = f"SELECT {RECORD_COLUMNS} FROM jobs"  # noqa: S608
_BY_ID = _ALL + " WHERE job_id=?"
_BY_VENDOR_ID = _ALL + " WHERE provider=? AND vendor_id=? ORDER BY created_at DESC LIMIT 1"


class StoreReads:
    """Every read of :class:`voxhub.store.Store` (which adds the writes)."""

    _db: Database
    _decoded: Decoded

    def callback_token_hash(self, job_id: str) -> str | None:
        """The stored callback token hash of the job, ``None`` if it takes no callbacks."""
        row = self._read("SELECT token_hash FROM callback_tokens WHERE job_id=?", job_id)
        return None if row is None else str(row["token_hash"])

    def _read(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = self._db.reader().execute(sql, args).fetchone()
        return row

    def get(self, job_id: str) -> JobRecord:
        """The stored job; :class:`KeyError` if there is none with that id."""
        row = self._read(_BY_ID, job_id)
        if row is None:
            raise KeyError(job_id)
        return record_from_row(row, self._decoded)

    def find(self, job_id: str) -> JobRecord | None:
        """The stored job, or ``None``."""
        row = self._read(_BY_ID, job_id)
        return None if row is None else record_from_row(row, self._decoded)

    def find_by_vendor_id(self, provider: str, vendor_id: str) -> JobRecord | None:
        """The newest job of ``provider`` with that vendor id, or ``None``."""
        row = self._read(
            _BY_VENDOR_ID,
            provider,
            vendor_id,
        )
        return None if row is None else record_from_row(row, self._decoded)

    def result(self, job_id: str) -> Result | None:
        """The stored result of the job, or ``None``."""
        row = self._read("SELECT result FROM results WHERE job_id=?", job_id)
        if row is None or row["result"] is None:
            return None
        # Not remembered like the small parts: results can be large and are read rarely.
        return self._decoded.load_once(row["result"], Result)  # type: ignore[arg-type]

    def jobs(
        self,
        *,
        state: str | None = None,
        provider: str | None = None,
        batch: str | None = None,
        phase: str | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        """Stored jobs, oldest first, filtered by normalized state/phase, provider or batch."""
        clauses: list[str] = []
        args: list[Any] = []
        if state is not None:
            clauses.append("state=?" if state in _STATES else "phase=? AND state IS NULL")
            args.append(str(state))
        for column, value in (("provider", provider), ("phase", phase)):
            if value is not None:
                clauses.append(f"{column}=?")
                args.append(str(value))
        if batch is not None:  # a batch id or name
            clause, ids = batch_clause(self._db.reader(), str(batch))
            clauses.append(clause)
            args += ids
        sql = _ALL
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at, rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._db.reader().execute(sql, args).fetchall()
        return [record_from_row(r, self._decoded) for r in rows]

    @property
    def listing(self) -> JobListing:
        """This store's listings (:mod:`voxhub.listing`: filtered, sorted and paged in
        SQL, only the shown columns read, nothing decoded), on this store's connections."""
        return JobListing(self._db.location, database=self._db)

    def events(self, job_id: str, after: int = 0) -> list[Event]:
        """The job's events after sequence ``after``, oldest first."""
        rows = (
            self._db.reader()
            .execute("SELECT * FROM events WHERE job_id=? AND seq>? ORDER BY seq", (job_id, after))
            .fetchall()
        )
        return [Event.from_row(r) for r in rows]

    def claimed_at(self, job_id: str) -> float | None:
        """When the job's submit request was last claimed for sending (epoch seconds)."""
        row = self._read("SELECT MAX(at) FROM events WHERE job_id=? AND type='sending'", job_id)
        return None if row is None or row[0] is None else float(row[0])

    def last_seq(self, job_id: str | None = None) -> int:
        """The newest event sequence (of the job, or of the whole store)."""
        if job_id is None:
            row = self._read("SELECT MAX(seq) FROM events")
        else:
            row = self._read("SELECT MAX(seq) FROM events WHERE job_id=?", job_id)
        return int(row[0] or 0) if row is not None else 0

    def wait_for_event(
        self, job_id: str, after: int, timeout: float, *, clock: Clock, interval: float = 0.1
    ) -> list[Event]:
        """Block until the job has events after ``after`` (from any process) or ``timeout``.

        Sleeps on ``clock`` (a test clock makes the wait instant) and reads the events
        only once something may have changed: SQLite's ``data_version`` is polled every
        ``interval``; PostgreSQL wakes the waiter by ``LISTEN``/``NOTIFY``.
        """
        return self._db.wait_for_events(
            job_id, lambda: self.events(job_id, after), timeout, clock=clock, interval=interval
        )
