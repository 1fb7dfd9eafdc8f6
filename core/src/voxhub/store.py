"""The job store: every job, its handle, its state history and its result.

Two backends behind one interface (:mod:`voxhub._database`). SQLite is the default:
embedded, crash-safe (WAL + synchronous=NORMAL), shared safely by threads and
processes on one machine, and inspectable with any SQLite tool. PostgreSQL, chosen by
a ``postgresql://`` URL, is shared by processes on several machines (the
``voxhub[postgres]`` extra, :mod:`voxhub._postgres`).

A job's *phase* says how far its submission got, which is what makes resuming
after a crash safe:

``recorded``   stored, the submit request has not left. Safe to submit.
``sending``    a process claimed it and its request may have left. Held under a
               lease (owner + expiry); if the owner died, the outcome is *in
               doubt* and must be checked with the provider (``recover``) before
               anything is sent again.
``submitted``  the provider accepted it; the handle carries the vendor ids.
``closed``     closed (deleted / stopped) at the provider.

Normalized states (queued, running, succeeded...) live beside the phase; every
change is appended to the ``events`` table, which is also how waiters in other
processes learn about callbacks.

Each state change is one write transaction (on SQLite run by the process's single
writer, see :mod:`voxhub._writer`); methods return what they wrote instead of reading
the job back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from ._database import Connection, PostgresUrl, Row, open_database, store_target
from ._reads import StoreReads
from ._records import (
    Decoded,
    Event,
    JobRecord,
    Phase,
    StatusChange,
    dumps,
    event_text,
    new_owner_id,
    owner_alive,
    record_from_row,
    status_change,
    vendor_ids_text,
)
from ._sqlite import _MIGRATIONS as _MIGRATIONS  # re-exported: tests build old stores
from ._sqlite import (
    SCHEMA_VERSION,
    WriteStats,
    default_store_path,
    put_result,
    update_job,
)
from ._store_events import EventWrites
from ._store_sql import CLAIM, SELECT, TAKE_OVER, handle_columns
from ._store_sql import status_columns as _set
from ._store_text import handle_text, reads_back_as_itself, result_text
from .clock import Clock, SystemClock
from .errors import StoreError
from .models import JobHandle, JobRequest, JobStatus, Result
from .secrets_at_rest import sealer_for
from .serialization import dump

#: Another change a write makes in its own transaction: ``also(connection, now)``.
Also = Callable[[Connection, float], None]

__all__ = [
    "SCHEMA_VERSION",
    "Also",
    "Event",
    "JobRecord",
    "Phase",
    "Store",
    "WriteStats",
    "default_store_path",
]


class Store(StoreReads, EventWrites):
    """A job store, safe for several threads and processes: a SQLite file (the default)
    or a PostgreSQL database (``postgresql://user:password@host:port/dbname``).

    On SQLite, reads use a connection per thread. Writes of all threads go through one
    writer connection; writes that queue meanwhile share a transaction, so no thread
    sleeps in SQLite's busy handler (:mod:`voxhub._writer`); other processes sharing
    the file wait for it through SQLite's own lock. On PostgreSQL, reads and write transactions use
    a connection pool, and rows a write decides on are locked (``FOR UPDATE``).

    :attr:`path` is the file, or the :class:`~voxhub._database.PostgresUrl` (which
    prints masked).
    """

    #: How long a claim on a submission stays valid without renewal (seconds).
    LEASE_SECONDS = 300.0

    def __init__(
        self, path: str | Path | PostgresUrl | None = None, *, clock: Clock | None = None
    ) -> None:
        self.path: Path | PostgresUrl = (
            store_target(path) if path is not None else default_store_path()
        )
        self.clock = clock or SystemClock()
        self.owner = new_owner_id()
        self._callback_key: bytes | None = None
        self._db = open_database(self.path)
        self._decoded = Decoded()
        try:
            if isinstance(self.path, Path):
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db.migrate()
        except StoreError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the job store at {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the store's connections (a later call opens new ones); a reader another
        thread still uses is closed at that thread's next read or when it ends."""
        self._db.close()

    @property
    def schema_version(self) -> int:
        """The schema version stored in the database."""
        return self._db.schema_version()

    @property
    def state_dir(self) -> Path:
        """This machine's folder for state shared by every process of this store (plugins
        get it as ``ProviderContext.state_dir``): the file's folder, or for PostgreSQL
        ``$XDG_DATA_HOME/voxhub/postgresql/HOST-PORT-DB``."""
        return self._db.state_dir

    def write_stats(self) -> WriteStats:
        """Write transactions so far and how long threads waited for the writer."""
        return self._db.stats()

    def trace_sql(self, callback: Callable[[str], None] | None) -> None:
        """Call ``callback`` with each SQL statement this store runs (diagnosis, benchmarks)."""
        self._db.trace(callback)

    # --- writing ------------------------------------------------------------------

    def record(
        self,
        request: JobRequest,
        handle: JobHandle,
        *,
        batch: str | None = None,
        unique: bool = True,
        claim: bool = False,
    ) -> tuple[JobRecord, bool]:
        """Store a new job before anything is sent; returns ``(record, created)``.

        When a job with the same id, or the same provider, profile and
        idempotency key exists, nothing is written and that job is returned with
        ``created=False``. ``unique=False`` stores the job without claiming its
        key (an adopted handle). ``claim=True`` also claims a job it creates, in
        the same transaction (see :meth:`claim`): it comes back ``sending``.
        """
        now = self.clock.time()
        key = handle.idempotency_key if unique else None
        # Credentials and secret options are stored sealed with this store's key (issue 16).
        request_text = dumps(dump(request, sealer=sealer_for(self.callback_key())))
        handle_json = handle_text(handle)
        phase, owner, lease = Phase.RECORDED, None, None
        events = [("recorded", dumps({"provider": handle.provider}))]
        if claim:
            phase, owner, lease = Phase.SENDING, self.owner, now + self.LEASE_SECONDS
            events.append(("sending", dumps({"owner": self.owner})))
        row = (handle.job_id, handle.provider, handle.profile, handle.kind.value, key, phase.value)
        # What listings show of the media, kept apart so they never decode the request.
        media = request.media.describe() if request.media is not None else None
        ids = vendor_ids_text(handle.vendor_ids)

        def write(conn: Connection) -> Row | None:
            self._db.lock_keys(conn, shared=True)
            inserted = conn.execute(
                """INSERT INTO jobs (job_id, provider, profile, kind, idempotency_key, phase,
                       owner, lease_until, request, handle, batch, created_at, updated_at, media,
                       vendor_ids)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
                (*row, owner, lease, request_text, handle_json, batch, now, now, media, ids),
            ).rowcount
            if inserted == 1:
                self._append(conn, handle.job_id, *events)
                return None
            existing: Row | None = (
                conn.execute(SELECT + " WHERE job_id=?", (handle.job_id,)).fetchone()
                or conn.execute(
                    SELECT + " WHERE provider=? AND profile=? AND idempotency_key=?",
                    (handle.provider, handle.profile, key),
                ).fetchone()
            )
            if existing is None:  # a conflict must name a stored row
                raise StoreError(f"job {handle.job_id} could not be stored")
            return existing

        existing = self._db.write(write)
        if existing is not None:
            return record_from_row(existing, self._decoded), False
        self._decoded.saw_status(handle.job_id, None)
        record = JobRecord(
            job_id=handle.job_id,
            provider=handle.provider,
            profile=handle.profile,
            phase=phase,
            request=self._decoded.load(request_text, JobRequest),
            handle=self._known(handle_json, handle),
            status=None,
            has_result=False,
            created_at=now,
            updated_at=now,
            batch=batch,
            owner=owner,
            lease_until=lease,
        )
        return record, True

    def supersede(self, job_id: str) -> None:
        """Free a finished job's idempotency key so the same input can run as a new job."""

        def write(conn: Connection) -> None:
            conn.execute(
                "UPDATE jobs SET idempotency_key = idempotency_key || '#superseded:' || job_id, "
                "updated_at=? WHERE job_id=?",
                (self.clock.time(), job_id),
            )
            self._append(conn, job_id, ("superseded", "{}"))

        self._db.write(write)

    def claim(self, job_id: str) -> JobRecord | None:
        """Take the right to send this job's submit request (``recorded`` → ``sending``).

        Returns the record when this process now holds the claim, ``None`` when
        someone else holds it or the job is past that point.
        """
        owner = self.owner
        sending = dumps({"owner": owner})

        def write(conn: Connection) -> Row | None:
            now = self.clock.time()
            rows = conn.execute(
                CLAIM,
                (Phase.SENDING.value, owner, now + self.LEASE_SECONDS, now, job_id, "recorded"),
            ).fetchall()
            if not rows:
                return None
            self._append(conn, job_id, ("sending", sending))
            claimed: Row = rows[0]  # RETURNING: the row as updated
            return claimed

        row = self._db.write(write)
        return None if row is None else record_from_row(row, self._decoded)

    def take_over(self, job_id: str) -> JobRecord | None:
        """Claim an in-doubt job (``sending`` whose owner is gone or whose lease ran out)."""
        me = self.owner

        def write(conn: Connection) -> Row | None:
            now = self.clock.time()
            row: Row | None = conn.execute(
                SELECT + " WHERE job_id=?" + self._db.for_update, (job_id,)
            ).fetchone()
            if row is None or row["phase"] != Phase.SENDING:
                return None
            owner = row["owner"] or ""
            if owner == me:
                return row
            if owner_alive(owner) and (row["lease_until"] or 0) > now:
                return None
            taken: Row = conn.execute(  # RETURNING: the row as updated
                TAKE_OVER,
                (me, now + self.LEASE_SECONDS, now, job_id),
            ).fetchall()[0]
            self._append(conn, job_id, ("taken-over", event_text({"previous_owner": owner})))
            return taken

        row = self._db.write(write)
        return None if row is None else record_from_row(row, self._decoded)

    def release(self, job_id: str, *, error: str | None = None, unsent: bool = True) -> None:
        """Give up a claim. ``unsent`` means the request provably never left (safe to retry)."""
        phase = Phase.RECORDED if unsent else Phase.SENDING
        event = event_text({"error": error, "unsent": unsent})

        def write(conn: Connection) -> None:
            conn.execute(
                """UPDATE jobs SET phase=?, owner=NULL, lease_until=?, error=?, updated_at=?
                   WHERE job_id=? AND phase='sending'""",
                (phase.value, None if unsent else 0.0, error, self.clock.time(), job_id),
            )
            self._append(conn, job_id, ("submit-failed", event))

        self._db.write(write)

    def mark_submitted(
        self, handle: JobHandle, status: JobStatus | None = None, result: Result | None = None
    ) -> None:
        """The provider accepted the job: store its handle (with vendor ids), and in the
        same transaction the status and result its answer carried, if any."""
        job_id = handle.job_id
        columns: dict[str, Any] = {
            "phase": Phase.SUBMITTED.value,
            **handle_columns(handle),
            "owner": None,
            "lease_until": None,
            "error": None,
        }
        events = [("submitted", event_text({"vendor_ids": handle.vendor_ids}))]
        stored_result = None if result is None else result_text(result)
        if result is not None:
            columns["has_result"] = 1
            events.append(("result", dumps({"type": type(result).__name__})))
        # Decided against the status as last seen; the write checks that it still holds.
        seen, change = self._status_seen(job_id, status)

        def write(conn: Connection) -> str | None:
            decided, stored, now = change, seen, {"updated_at": self.clock.time()}
            if stored_result is not None:
                put_result(conn, job_id, stored_result)
            if status is None:
                update_job(conn, job_id, {**columns, **now})
            elif not update_job(conn, job_id, {**columns, **now, **_set(decided)}, status_was=seen):
                # The stored status is not the one last seen: decide against the stored one.
                stored, decided = self._status_stored(conn, job_id, status)
                update_job(conn, job_id, {**columns, **now, **_set(decided)})
            status_event = [] if decided is None else [("status", decided.event)]
            self._append(conn, job_id, events[0], *status_event, *events[1:])
            return decided.text if decided is not None else stored

        text = self._db.write(write)
        self._known(columns["handle"], handle)
        if status is not None:
            self._decoded.saw_status(job_id, text)

    def _known(self, text: str, handle: JobHandle) -> JobHandle:
        """The handle ``text`` decodes to (``handle`` itself when it reads back as itself)."""
        if reads_back_as_itself(handle):
            self._decoded.remember(text, JobHandle, handle)
            return handle
        return self._decoded.load(text, JobHandle)

    def update_handle(self, handle: JobHandle) -> None:
        """Store a handle whose vendor ids or vendor state changed (e.g. a retried task)."""
        columns = handle_columns(handle)
        event = event_text({"vendor_ids": handle.vendor_ids})

        def write(conn: Connection) -> None:
            update_job(conn, handle.job_id, {**columns, "updated_at": self.clock.time()})
            self._append(conn, handle.job_id, ("handle", event))

        self._db.write(write)

    def _status_seen(
        self, job_id: str, status: JobStatus | None
    ) -> tuple[str | None, StatusChange | None]:
        """The job's status text as this store last saw it (read if it never did), and
        what ``status`` changes over it."""
        known, seen = self._decoded.last_status(job_id)
        if status is None:
            return seen, None
        if not known:
            row = self._read("SELECT status FROM jobs WHERE job_id=?", job_id)
            if row is None:
                raise KeyError(job_id)
            seen = row["status"]
        return seen, status_change(seen, status, self._decoded)

    def _status_stored(
        self, conn: Connection, job_id: str, status: JobStatus | None
    ) -> tuple[str | None, StatusChange | None]:
        """The stored status text and what ``status`` changes over it, inside a write
        (where nobody else can change it: the row is locked until the write ends)."""
        row = conn.execute(
            "SELECT status FROM jobs WHERE job_id=?" + self._db.for_update,  # noqa: S608
            (job_id,),
        ).fetchone()
        if row is None:
            raise KeyError(job_id)
        stored: str | None = row["status"]
        return stored, None if status is None else status_change(stored, status, self._decoded)

    def set_status(self, job_id: str, status: JobStatus) -> bool:
        """Record a status; returns whether it changed anything (an event was appended).

        The status is compared with the job's status as this store last read or
        wrote it, so a poll that brings nothing new writes (and mostly reads)
        nothing; a change is written only if the stored status is still that one.
        """
        seen, change = self._status_seen(job_id, status)
        if change is None:
            return False
        found: StatusChange = change

        def write(conn: Connection) -> tuple[bool, str | None]:
            now = {"updated_at": self.clock.time()}
            if update_job(conn, job_id, {**now, **_set(found)}, status_was=seen):  # as a rule
                self._append(conn, job_id, ("status", found.event))
                return True, found.text
            # Another process stored a status meanwhile: decide against that one.
            stored, again = self._status_stored(conn, job_id, status)
            if again is None:
                return False, stored
            update_job(conn, job_id, {**now, **_set(again)})
            self._append(conn, job_id, ("status", again.event))
            return True, again.text

        changed, text = self._db.write(write)
        self._decoded.saw_status(job_id, text)
        return changed

    def set_final(self, job_id: str, status: JobStatus, result: Result, *,
                  also: Also | None = None) -> bool:
        """:meth:`set_status` and :meth:`save_result` in one write: a job's final status and
        its result; returns whether the status changed anything. ``also(connection, now)``
        makes another change in the same transaction (a batch input done with its job)."""
        seen, change = self._status_seen(job_id, status)
        stored = result_text(result)
        result_event = ("result", dumps({"type": type(result).__name__}))

        def write(conn: Connection) -> tuple[bool, str | None]:
            put_result(conn, job_id, stored)
            columns = {"has_result": 1, "updated_at": self.clock.time()}
            if also is not None:
                also(conn, columns["updated_at"])
            decided, text = change, seen
            if not update_job(conn, job_id, {**columns, **_set(decided)}, status_was=seen):
                # Another process stored a status meanwhile: decide against that one.
                text, decided = self._status_stored(conn, job_id, status)
                update_job(conn, job_id, {**columns, **_set(decided)})
            status_event = [] if decided is None else [("status", decided.event)]
            self._append(conn, job_id, *status_event, result_event)
            return decided is not None, text if decided is None else decided.text

        changed, text = self._db.write(write)
        self._decoded.saw_status(job_id, text)
        return changed

    def reopen(self, job_id: str, status: JobStatus, handle: JobHandle | None = None) -> None:
        """Put a finished job back in play (a vendor-side retry): the one deliberate exception
        to "a final state never changes". The stored result, if any, is dropped."""
        data = dump(attrs.evolve(status, raw=None))
        columns: dict[str, Any] = {
            "state": status.state.value,
            "status": dumps(data),
            "has_result": 0,
            "error": None,
        }
        if handle is not None:
            columns.update(handle_columns(handle))
        event = event_text({"status": data, "vendor_ids": handle.vendor_ids if handle else None})

        def write(conn: Connection) -> None:
            conn.execute("DELETE FROM results WHERE job_id=?", (job_id,))
            update_job(conn, job_id, {**columns, "updated_at": self.clock.time()})
            self._append(conn, job_id, ("reopened", event))

        self._db.write(write)

    def save_result(self, job_id: str, result: Result) -> None:
        """Store the job's result (secrets masked), replacing any earlier one."""
        text = result_text(result)
        event = dumps({"type": type(result).__name__})

        def write(conn: Connection) -> None:
            put_result(conn, job_id, text)
            update_job(conn, job_id, {"has_result": 1, "updated_at": self.clock.time()})
            self._append(conn, job_id, ("result", event))

        self._db.write(write)

    def mark_closed(self, job_id: str) -> None:
        """The job was closed (deleted / stopped) at its provider."""

        def write(conn: Connection) -> None:
            update_job(conn, job_id, {"phase": Phase.CLOSED.value, "updated_at": self.clock.time()})
            self._append(conn, job_id, ("closed", "{}"))

        self._db.write(write)
