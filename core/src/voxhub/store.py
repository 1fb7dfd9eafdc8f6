"""The job store: every job, its handle, its state history and its result, in SQLite.

Why SQLite: embedded, crash-safe (WAL + synchronous=NORMAL), shared safely by
threads and processes on one machine, and inspectable with any SQLite tool.

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
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from .clock import Clock, SystemClock
from .errors import StoreError
from .models import JobHandle, JobRequest, JobState, JobStatus, Result
from .redact import redact
from .serialization import dump, load

__all__ = ["Event", "JobRecord", "Phase", "Store", "default_store_path"]


class Phase:
    """Submission phases (plain strings in the database)."""

    RECORDED = "recorded"
    SENDING = "sending"
    SUBMITTED = "submitted"
    CLOSED = "closed"


def default_store_path() -> Path:
    """``$VOXHUB_STORE``, else ``$XDG_DATA_HOME/voxhub/jobs.db`` (``~/.local/share``)."""
    env = os.environ.get("VOXHUB_STORE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "voxhub" / "jobs.db"


@attrs.frozen
class Event:
    """One entry of a job's append-only history."""

    seq: int
    job_id: str
    at: float
    type: str
    data: dict[str, Any]


@attrs.frozen
class JobRecord:
    """A job as stored: what was asked, how to find it, where it stands."""

    job_id: str
    provider: str
    profile: str
    phase: str
    request: JobRequest
    handle: JobHandle
    status: JobStatus | None
    has_result: bool
    created_at: float
    updated_at: float
    batch: str | None = None
    owner: str | None = None
    lease_until: float | None = None
    error: str | None = None

    @property
    def state(self) -> str:
        """The normalized state, or the phase while the job is not submitted yet."""
        if self.status is not None:
            return self.status.state.value
        return "failed" if self.error and self.phase != Phase.SENDING else self.phase


# Each entry moves the schema one version up. Never edit a released entry: add one.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        job_id          TEXT PRIMARY KEY,
        provider        TEXT NOT NULL,
        profile         TEXT NOT NULL,
        kind            TEXT NOT NULL,
        idempotency_key TEXT,
        phase           TEXT NOT NULL,
        state           TEXT,
        status          TEXT,
        request         TEXT NOT NULL,
        handle          TEXT NOT NULL,
        vendor_id       TEXT,
        result          TEXT,
        batch           TEXT,
        owner           TEXT,
        lease_until     REAL,
        error           TEXT,
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL
    );
    CREATE UNIQUE INDEX jobs_key ON jobs (provider, profile, idempotency_key);
    CREATE INDEX jobs_vendor ON jobs (provider, vendor_id);
    CREATE INDEX jobs_state ON jobs (state, provider);
    CREATE INDEX jobs_batch ON jobs (batch);
    CREATE TABLE events (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id  TEXT NOT NULL REFERENCES jobs (job_id),
        at      REAL NOT NULL,
        type    TEXT NOT NULL,
        data    TEXT NOT NULL
    );
    CREATE INDEX events_job ON events (job_id, seq);
    """,
    """
    CREATE TABLE callback_tokens (
        job_id      TEXT PRIMARY KEY REFERENCES jobs (job_id),
        token_hash  TEXT NOT NULL
    );
    """,
)

SCHEMA_VERSION = len(_MIGRATIONS)


def _owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_alive(owner: str) -> bool:
    """Whether the process named by an owner id still runs (only knowable on this host)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine: trust the lease expiry instead
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """A SQLite job store, safe for several threads and processes.

    Each thread gets its own connection; writes run in ``BEGIN IMMEDIATE``
    transactions with a generous busy timeout, so concurrent writers queue
    instead of failing with "database is locked".
    """

    #: How long a claim on a submission stays valid without renewal (seconds).
    LEASE_SECONDS = 300.0

    def __init__(self, path: str | Path | None = None, *, clock: Clock | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.clock = clock or SystemClock()
        self.owner = _owner_id()
        self._callback_key: bytes | None = None
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the job store at {self.path}: {exc}") from exc

    # --- connections --------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=60.0, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        for attempt in range(50):
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                # busy_timeout covers most contention; this covers the rest (e.g. WAL recovery).
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise StoreError(f"job store error: {exc}") from exc
                time.sleep(min(0.05 * (attempt + 1), 1.0))
        else:
            raise StoreError("the job store stayed locked for too long")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()

    def _migrate(self) -> None:
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the job store {self.path} was written by a newer voxhub "
                    f"(schema {version}, this one knows {SCHEMA_VERSION})"
                )
            for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        return int(self._conn().execute("PRAGMA user_version").fetchone()[0])

    # --- writing ------------------------------------------------------------------

    def _event(self, conn: sqlite3.Connection, job_id: str, type_: str, data: Any) -> int:
        cur = conn.execute(
            "INSERT INTO events (job_id, at, type, data) VALUES (?, ?, ?, ?)",
            (job_id, self.clock.time(), type_, json.dumps(redact(data), ensure_ascii=False)),
        )
        return int(cur.lastrowid or 0)

    def record(
        self,
        request: JobRequest,
        handle: JobHandle,
        *,
        batch: str | None = None,
        unique: bool = True,
    ) -> tuple[JobRecord, bool]:
        """Store a new job before anything is sent; returns ``(record, created)``.

        When a job with the same provider, profile and idempotency key exists,
        nothing is written and that job is returned with ``created=False``.
        ``unique=False`` stores the job without claiming its key (an adopted handle).
        """
        now = self.clock.time()
        key = handle.idempotency_key if unique else None
        with self._write() as conn:
            existing = conn.execute(
                "SELECT * FROM jobs WHERE job_id=?", (handle.job_id,)
            ).fetchone()
            if existing is not None:
                return self._record(existing), False
            if key is not None:
                row = conn.execute(
                    "SELECT * FROM jobs WHERE provider=? AND profile=? AND idempotency_key=?",
                    (handle.provider, handle.profile, handle.idempotency_key),
                ).fetchone()
                if row is not None:
                    return self._record(row), False
            conn.execute(
                """INSERT INTO jobs (job_id, provider, profile, kind, idempotency_key, phase,
                       request, handle, batch, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    handle.job_id,
                    handle.provider,
                    handle.profile,
                    handle.kind.value,
                    key,
                    Phase.RECORDED,
                    _json(dump(request)),
                    _json(dump(handle)),
                    batch,
                    now,
                    now,
                ),
            )
            self._event(conn, handle.job_id, "recorded", {"provider": handle.provider})
        return self.get(handle.job_id), True

    def supersede(self, job_id: str) -> None:
        """Free a finished job's idempotency key so the same input can run as a new job."""
        with self._write() as conn:
            conn.execute(
                "UPDATE jobs SET idempotency_key = idempotency_key || '#superseded:' || job_id, "
                "updated_at=? WHERE job_id=?",
                (self.clock.time(), job_id),
            )
            self._event(conn, job_id, "superseded", {})

    def claim(self, job_id: str) -> JobRecord | None:
        """Take the right to send this job's submit request (``recorded`` → ``sending``).

        Returns the record when this process now holds the claim, ``None`` when
        someone else holds it or the job is past that point.
        """
        now = self.clock.time()
        with self._write() as conn:
            cur = conn.execute(
                """UPDATE jobs SET phase=?, owner=?, lease_until=?, updated_at=?, error=NULL
                   WHERE job_id=? AND phase=?""",
                (Phase.SENDING, self.owner, now + self.LEASE_SECONDS, now, job_id, Phase.RECORDED),
            )
            if cur.rowcount != 1:
                return None
            self._event(conn, job_id, "sending", {"owner": self.owner})
        return self.get(job_id)

    def take_over(self, job_id: str) -> JobRecord | None:
        """Claim an in-doubt job (``sending`` whose owner is gone or whose lease ran out)."""
        now = self.clock.time()
        with self._write() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
            if row is None or row["phase"] != Phase.SENDING:
                return None
            owner = row["owner"] or ""
            if owner == self.owner:
                return self._record(row)
            if _owner_alive(owner) and (row["lease_until"] or 0) > now:
                return None
            conn.execute(
                "UPDATE jobs SET owner=?, lease_until=?, updated_at=? WHERE job_id=?",
                (self.owner, now + self.LEASE_SECONDS, now, job_id),
            )
            self._event(conn, job_id, "taken-over", {"previous_owner": owner})
        return self.get(job_id)

    def release(self, job_id: str, *, error: str | None = None, unsent: bool = True) -> None:
        """Give up a claim. ``unsent`` means the request provably never left (safe to retry)."""
        now = self.clock.time()
        with self._write() as conn:
            conn.execute(
                """UPDATE jobs SET phase=?, owner=NULL, lease_until=?, error=?, updated_at=?
                   WHERE job_id=? AND phase=?""",
                (
                    Phase.RECORDED if unsent else Phase.SENDING,
                    None if unsent else 0.0,
                    error,
                    now,
                    job_id,
                    Phase.SENDING,
                ),
            )
            self._event(conn, job_id, "submit-failed", {"error": error, "unsent": unsent})

    def mark_submitted(self, handle: JobHandle, status: JobStatus | None = None) -> None:
        """The provider accepted the job: store its handle (with vendor ids)."""
        now = self.clock.time()
        with self._write() as conn:
            conn.execute(
                """UPDATE jobs SET phase=?, handle=?, vendor_id=?, owner=NULL, lease_until=NULL,
                       error=NULL, updated_at=? WHERE job_id=?""",
                (Phase.SUBMITTED, _json(dump(handle)), handle.vendor_id, now, handle.job_id),
            )
            self._event(conn, handle.job_id, "submitted", {"vendor_ids": handle.vendor_ids})
            if status is not None:
                self._set_status(conn, handle.job_id, status)

    def update_handle(self, handle: JobHandle) -> None:
        """Store a handle whose vendor ids or vendor state changed (e.g. a retried task)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE jobs SET handle=?, vendor_id=?, updated_at=? WHERE job_id=?",
                (_json(dump(handle)), handle.vendor_id, self.clock.time(), handle.job_id),
            )
            self._event(conn, handle.job_id, "handle", {"vendor_ids": handle.vendor_ids})

    def _set_status(self, conn: sqlite3.Connection, job_id: str, status: JobStatus) -> bool:
        row = conn.execute("SELECT status FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        old = load(json.loads(row["status"]), JobStatus) if row and row["status"] else None
        if old is not None and (old.state, old.vendor_state, old.reason, old.progress) == (
            status.state,
            status.vendor_state,
            status.reason,
            status.progress,
        ):
            return False
        if old is not None and old.state.is_terminal:
            # A final state is final: a late or out-of-order answer (a delayed callback, a
            # stale poll) never changes it. Vendor-side retries go through reopen().
            return False
        data = dump(attrs.evolve(status, raw=None))
        conn.execute(
            "UPDATE jobs SET state=?, status=?, updated_at=? WHERE job_id=?",
            (status.state.value, _json(data), self.clock.time(), job_id),
        )
        self._event(conn, job_id, "status", data)
        return True

    def set_status(self, job_id: str, status: JobStatus) -> bool:
        """Record a status; returns whether it changed anything (an event was appended)."""
        with self._write() as conn:
            return self._set_status(conn, job_id, status)

    def reopen(self, job_id: str, status: JobStatus, handle: JobHandle | None = None) -> None:
        """Put a finished job back in play (a vendor-side retry): the one deliberate exception
        to "a final state never changes". The stored result, if any, is dropped."""
        data = dump(attrs.evolve(status, raw=None))
        with self._write() as conn:
            conn.execute(
                "UPDATE jobs SET state=?, status=?, result=NULL, error=NULL, updated_at=? "
                "WHERE job_id=?",
                (status.state.value, _json(data), self.clock.time(), job_id),
            )
            if handle is not None:
                conn.execute(
                    "UPDATE jobs SET handle=?, vendor_id=? WHERE job_id=?",
                    (_json(dump(handle)), handle.vendor_id, job_id),
                )
            self._event(
                conn,
                job_id,
                "reopened",
                {
                    "status": data,
                    "vendor_ids": handle.vendor_ids if handle else None,
                },
            )

    def save_result(self, job_id: str, result: Result) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE jobs SET result=?, updated_at=? WHERE job_id=?",
                (_json(redact(dump(result))), self.clock.time(), job_id),
            )
            self._event(conn, job_id, "result", {"type": type(result).__name__})

    def mark_closed(self, job_id: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE jobs SET phase=?, updated_at=? WHERE job_id=?",
                (Phase.CLOSED, self.clock.time(), job_id),
            )
            self._event(conn, job_id, "closed", {})

    def add_event(self, job_id: str, type_: str, data: Any) -> int:
        """Append a provider event (e.g. a verified callback's payload); returns its sequence."""
        with self._write() as conn:
            seq = self._event(conn, job_id, type_, data)
            conn.execute("UPDATE jobs SET updated_at=? WHERE job_id=?", (self.clock.time(), job_id))
            return seq

    def callback_key(self) -> bytes:
        """The secret that callback tokens are derived from, shared by every process of this
        store: a file beside it (mode 0600), never inside the database."""
        if self._callback_key is not None:
            return self._callback_key
        path = self.path.with_name(self.path.name + ".callback-key")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_bytes().strip()
            for _ in range(100):  # another process may be between creating and writing it
                if key:
                    break
                time.sleep(0.01)
                key = path.read_bytes().strip()
            if not key:
                raise StoreError(f"the callback key file {path} is empty") from None
        else:
            key = secrets.token_hex(32).encode()
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
        self._callback_key = key  # read once per store: it never changes
        return key

    def set_callback_token_hash(self, job_id: str, token_hash: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO callback_tokens (job_id, token_hash) VALUES (?, ?)",
                (job_id, token_hash),
            )

    def callback_token_hash(self, job_id: str) -> str | None:
        row = (
            self._conn()
            .execute("SELECT token_hash FROM callback_tokens WHERE job_id=?", (job_id,))
            .fetchone()
        )
        return None if row is None else str(row["token_hash"])

    # --- reading ------------------------------------------------------------------

    def _record(self, row: sqlite3.Row) -> JobRecord:
        return JobRecord(
            job_id=row["job_id"],
            provider=row["provider"],
            profile=row["profile"],
            phase=row["phase"],
            request=load(json.loads(row["request"]), JobRequest),
            handle=load(json.loads(row["handle"]), JobHandle),
            status=load(json.loads(row["status"]), JobStatus) if row["status"] else None,
            has_result=row["result"] is not None,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            batch=row["batch"],
            owner=row["owner"],
            lease_until=row["lease_until"],
            error=row["error"],
        )

    def get(self, job_id: str) -> JobRecord:
        """The stored job; :class:`KeyError` if there is none with that id."""
        row = self._conn().execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        return self._record(row)

    def find(self, job_id: str) -> JobRecord | None:
        try:
            return self.get(job_id)
        except KeyError:
            return None

    def find_by_vendor_id(self, provider: str, vendor_id: str) -> JobRecord | None:
        row = (
            self._conn()
            .execute(
                "SELECT * FROM jobs WHERE provider=? AND vendor_id=? ORDER BY created_at DESC",
                (provider, vendor_id),
            )
            .fetchone()
        )
        return None if row is None else self._record(row)

    def result(self, job_id: str) -> Result | None:
        row = self._conn().execute("SELECT result FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        if row is None or row["result"] is None:
            return None
        return load(json.loads(row["result"]), Result)  # type: ignore[arg-type]

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
            if state in {s.value for s in JobState}:
                clauses.append("state=?")
            else:
                clauses.append("phase=? AND state IS NULL")
            args.append(state)
        for column, value in (("provider", provider), ("batch", batch), ("phase", phase)):
            if value is not None:
                clauses.append(f"{column}=?")
                args.append(value)
        sql = "SELECT * FROM jobs"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at, rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._record(r) for r in self._conn().execute(sql, args).fetchall()]

    def events(self, job_id: str, after: int = 0) -> list[Event]:
        rows = (
            self._conn()
            .execute("SELECT * FROM events WHERE job_id=? AND seq>? ORDER BY seq", (job_id, after))
            .fetchall()
        )
        return [
            Event(r["seq"], r["job_id"], r["at"], r["type"], json.loads(r["data"])) for r in rows
        ]

    def claimed_at(self, job_id: str) -> float | None:
        """When the job's submit request was last claimed for sending (epoch seconds)."""
        row = (
            self._conn()
            .execute("SELECT MAX(at) FROM events WHERE job_id=? AND type='sending'", (job_id,))
            .fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    def last_seq(self, job_id: str | None = None) -> int:
        if job_id is None:
            row = self._conn().execute("SELECT MAX(seq) FROM events").fetchone()
        else:
            row = (
                self._conn()
                .execute("SELECT MAX(seq) FROM events WHERE job_id=?", (job_id,))
                .fetchone()
            )
        return int(row[0] or 0)

    def wait_for_event(
        self, job_id: str, after: int, timeout: float, *, interval: float = 0.1
    ) -> list[Event]:
        """Block until the job has events after ``after`` (from any process) or ``timeout``.

        Polls SQLite's cheap ``data_version`` so idle waiting does not scan tables.
        """
        conn = self._conn()
        deadline = time.monotonic() + timeout
        seen_version = -1
        while True:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version != seen_version:
                seen_version = version
                found = self.events(job_id, after)
                if found:
                    return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            time.sleep(min(interval, remaining))


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
