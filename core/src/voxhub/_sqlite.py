"""The job store's SQLite plumbing: schema migrations, connections, small SQL helpers.

Reads run on a connection per thread: in WAL mode readers never wait for the
writer. Writes go through the process's single writer (:mod:`voxhub._writer`).
Other processes sharing the file meet SQLite's own lock; for them WAL mode and a
long ``busy_timeout`` stay, so they wait for each other safely.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._database import INSERT_EVENTS, Connection, Database, StoreTarget, store_target
from ._writer import Writer, WriteStats
from .errors import StoreError

if TYPE_CHECKING:
    from ._records import Event
    from .clock import Clock

T = TypeVar("T")

__all__ = [
    "SCHEMA_VERSION",
    "SqliteDatabase",
    "Unchecked",
    "WriteStats",
    "create_private",
    "default_store_path",
    "key_file",
    "key_path",
    "put_result",
    "update_job",
]

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
    # 3: durable batches (issue 18). A batch and every one of its inputs are written in
    # one transaction before anything is sent.
    """
    CREATE TABLE batches (
        batch_id        TEXT PRIMARY KEY,
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL,
        settings        TEXT NOT NULL,
        total           INTEGER NOT NULL,
        owner           TEXT,
        lease_until     REAL,
        interrupted_at  REAL,
        runs            INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX batches_created ON batches (created_at);
    CREATE TABLE batch_items (
        batch_id    TEXT NOT NULL REFERENCES batches (batch_id),
        seq         INTEGER NOT NULL,
        input       TEXT NOT NULL,
        job_id      TEXT REFERENCES jobs (job_id),
        state       TEXT NOT NULL,
        stage       TEXT,
        output      TEXT,
        error       TEXT,
        updated_at  REAL NOT NULL,
        PRIMARY KEY (batch_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX batch_items_state ON batch_items (batch_id, state, stage);
    CREATE INDEX batch_items_job ON batch_items (job_id);
    """,
    # 4: (issue 18, listings) results out of the jobs rows, indexes for paged listings.
    # A listing reads only the small jobs rows: results (most of a job's bytes) move to
    # their own table. What it shows of the media and of the vendor ids gets columns of
    # their own, written masked (the request stores URLs masked already, the backfill masks
    # ids under secret-looking names as voxhub.redact did when this was written), so that
    # a listing parses no JSON. The state it shows is a generated column, always in step
    # with phase, state and error whoever writes them, and indexed. Listings sort on
    # created_at, so each filter's index ends in it.
    """
    CREATE TABLE results (
        job_id  TEXT PRIMARY KEY REFERENCES jobs (job_id),
        result  TEXT NOT NULL
    );
    INSERT INTO results (job_id, result) SELECT job_id, result FROM jobs WHERE result IS NOT NULL;
    ALTER TABLE jobs ADD COLUMN has_result INTEGER NOT NULL DEFAULT 0;
    UPDATE jobs SET has_result = 1 WHERE result IS NOT NULL;
    ALTER TABLE jobs DROP COLUMN result;
    ALTER TABLE jobs ADD COLUMN media TEXT;
    UPDATE jobs SET media = CASE json_extract(request, '$.media.type')
            WHEN 'file' THEN json_extract(request, '$.media.path')
            WHEN 'rtc' THEN 'rtc:' || json_extract(request, '$.media.channel')
            ELSE json_extract(request, '$.media.url') END
        WHERE json_extract(request, '$.media') IS NOT NULL;
    ALTER TABLE jobs ADD COLUMN vendor_ids TEXT NOT NULL DEFAULT '{}';
    UPDATE jobs SET vendor_ids = (
            SELECT json_group_object(key, CASE
                WHEN value IS NULL OR value = '' THEN value
                WHEN lower(key) IN ('maxtokens', 'tokenname', 'builder_token_name', 'tokentype')
                    THEN value
                WHEN replace(replace(lower(key), '-', ''), '_', '') IN
                    ('maxtokens', 'tokenname', 'buildertokenname', 'tokentype') THEN value
                WHEN replace(replace(lower(key), '-', ''), '_', '') GLOB '*authorization*'
                    OR replace(replace(lower(key), '-', ''), '_', '') GLOB '*token*'
                    OR replace(replace(lower(key), '-', ''), '_', '') GLOB '*secret*'
                    OR replace(replace(lower(key), '-', ''), '_', '') GLOB '*password*'
                    OR replace(replace(lower(key), '-', ''), '_', '') GLOB '*passphrase*'
                    OR replace(replace(lower(key), '-', ''), '_', '') GLOB '*signature*'
                    OR replace(replace(lower(key), '-', ''), '_', '') GLOB '*privatekey*'
                    OR replace(replace(lower(key), '-', ''), '_', '') GLOB '*certificate*'
                    OR replace(replace(lower(key), '-', ''), '_', '') GLOB '*apikey*'
                    OR replace(replace(lower(key), '-', ''), '_', '') GLOB '*accesskey*'
                    OR replace(replace(lower(key), '-', ''), '_', '') GLOB '*cookie*'
                    OR replace(replace(lower(key), '-', ''), '_', '') GLOB '*credential*'
                    THEN '***'
                ELSE value END)
            FROM json_each(handle, '$.vendor_ids'))
        WHERE json_extract(handle, '$.vendor_ids') <> '{}';
    ALTER TABLE jobs ADD COLUMN shown TEXT GENERATED ALWAYS AS (CASE
            WHEN phase = 'closed' THEN 'closed'
            WHEN state IS NOT NULL THEN state
            WHEN error IS NOT NULL AND error <> '' AND phase <> 'sending' THEN 'failed'
            ELSE phase END) VIRTUAL;
    DROP INDEX jobs_batch;
    CREATE INDEX jobs_batch ON jobs (batch, created_at);
    CREATE INDEX jobs_created ON jobs (created_at);
    CREATE INDEX jobs_shown ON jobs (shown, created_at);
    CREATE INDEX jobs_provider ON jobs (provider, created_at);
    """,
    # 5: (issue 18, outputs) a vendor's own rendering of a result (Rev.ai's SRT/VTT), kept
    # the first time it is exported so that it is served the same after the job is closed
    # at the vendor. It belongs to the stored result: a retry that drops the result drops it.
    """
    CREATE TABLE exports (
        job_id      TEXT NOT NULL REFERENCES results (job_id) ON DELETE CASCADE,
        format      TEXT NOT NULL,
        text        TEXT NOT NULL,
        created_at  REAL NOT NULL,
        PRIMARY KEY (job_id, format)
    ) WITHOUT ROWID;
    """,
    # 6: (issue 13, limits across machines) one row per shared limit (voxhub.shared_limits):
    # a rate's next allowed time, or a turn's earliest next start and the leases of its
    # holders (JSON: holder -> lease end), read and changed in one write transaction.
    """
    CREATE TABLE limits (
        key         TEXT PRIMARY KEY,
        next_at     REAL NOT NULL,
        holders     TEXT NOT NULL,
        updated_at  REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 7: a held lock's record (SharedLimits.locked): what a plugin keeps under a lock that
    # every machine of the store shares (Agora: which task serves a channel), changed in
    # the same transactions as the lock's holders.
    """
    ALTER TABLE limits ADD COLUMN record TEXT;
    """,
)

SCHEMA_VERSION = len(_MIGRATIONS)

#: How long a connection waits for another *process* holding the write lock (ms).
BUSY_TIMEOUT_MS = 60_000
#: Commits between two checkpoints of the WAL into the database file.
CHECKPOINT_EVERY = 200


def _enter_wal(conn: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode=WAL``, waiting up to the busy timeout for other connections.

    Switching a new file to WAL needs it alone, and SQLite answers "database is locked"
    at once instead of waiting through its busy handler: processes opening a new store
    (or limits file) at the same instant would fail.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def default_store_path() -> StoreTarget:
    """``$VOXHUB_STORE`` (a file or a ``postgresql://`` URL), else
    ``$XDG_DATA_HOME/voxhub/jobs.db`` (``~/.local/share``)."""
    env = os.environ.get("VOXHUB_STORE")
    if env:
        return store_target(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "voxhub" / "jobs.db"


class SqliteDatabase(Database):
    """Connections to one SQLite file: a reader per thread and the process's one writer."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        # Every open reader and its thread; close() bumps the generation.
        self._readers: dict[sqlite3.Connection, threading.Thread] = {}
        self._readers_lock = threading.Lock()
        self._generation = 0
        self._trace: Callable[[str], None] | None = None
        self._writer = Writer(self._connect_writer, after_commit=self._maybe_checkpoint)
        self._checkpointed = 0  # the writer's transaction count at the last checkpoint
        self._checkpointing = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        create_private(self.path)
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.row_factory = sqlite3.Row
        # One call for the settings every connection needs.
        conn.executescript(
            "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
            f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS};"
        )
        _enter_wal(conn)
        if self._trace is not None:
            conn.set_trace_callback(self._trace)
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        # Checkpoints run after a transaction, outside the writer (_maybe_checkpoint):
        # SQLite's automatic ones would copy and fsync the WAL while every writer waits.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    @property
    def location(self) -> Path:
        return self.path

    @property
    def state_dir(self) -> Path:
        """The database file's folder."""
        return self.path.parent

    @property
    def key_path(self) -> Path:
        return key_path(self.path)

    def reader(self) -> sqlite3.Connection:
        """This thread's connection for reads (autocommit: each statement sees the latest).

        No other thread closes it while its thread lives (:meth:`close` leaves it to this
        thread's next read): CPython's sqlite3 crashes when a connection is closed under
        a statement another thread is running.
        """
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and local.generation == self._generation:
            if local.trace is not self._trace:  # set by trace() since this thread's last read
                conn.set_trace_callback(self._trace)
                local.trace = self._trace
            return conn
        if conn is not None:  # opened before a close(): this thread's own, closed here
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        conn = self._connect()
        local.conn, local.generation, local.trace = conn, self._generation, self._trace
        with self._readers_lock:
            # Readers of threads that ended are closed here, not left to accumulate.
            for old, thread in list(self._readers.items()):
                if not thread.is_alive():
                    del self._readers[old]
                    with contextlib.suppress(sqlite3.Error):
                        old.close()
            self._readers[conn] = threading.current_thread()
        return conn

    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(connection)`` in a write transaction; its result once committed."""
        return self._writer.run(fn)

    def insert_events(self, conn: Connection, values: list[Any]) -> int:
        """Without ``RETURNING``: each row it returns is one more step of SQLite, and
        each step one more wait for the GIL inside the write (``lastrowid`` is the
        last row's ``seq``, the rowid)."""
        cursor = cast("sqlite3.Cursor", conn.execute(INSERT_EVENTS[len(values) // 4], values))
        return int(cursor.lastrowid or 0)

    def schema_version(self) -> int:
        """``PRAGMA user_version``."""
        return int(self.reader().execute("PRAGMA user_version").fetchone()[0])

    def wait_for_events(
        self,
        job_id: str,
        fetch: Callable[[], list[Event]],
        timeout: float,
        *,
        clock: Clock,
        interval: float,
    ) -> list[Event]:
        """Polls SQLite's cheap ``data_version`` (it changes when another connection
        commits), so idle waiting does not scan tables; sleeps on ``clock`` in
        ``interval`` steps: a test clock makes the wait instant, a real one wakes shortly
        after another process's write."""
        conn = self.reader()
        deadline = clock.monotonic() + timeout
        seen_version = -1
        while True:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version != seen_version:
                seen_version = version
                found = fetch()
                if found:
                    return found
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                return []
            clock.sleep(min(interval, remaining))

    def _maybe_checkpoint(self, transactions: int) -> None:
        """Copy the WAL into the database file every ``CHECKPOINT_EVERY`` transactions.

        PASSIVE, on this thread's reader: it never waits for readers or the writer, and
        what it cannot copy now the next one copies. One thread at a time.
        """
        if transactions - self._checkpointed < CHECKPOINT_EVERY:
            return
        if not self._checkpointing.acquire(blocking=False):
            return
        try:
            self._checkpointed = transactions
            with contextlib.suppress(sqlite3.Error):
                self.reader().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            self._checkpointing.release()

    def stats(self) -> WriteStats:
        """How many write transactions ran and how long threads waited for the writer."""
        return self._writer.stats()

    def trace(self, callback: Callable[[str], None] | None) -> None:
        """Call ``callback`` with every SQL statement any connection runs (``None``: stop).

        The writer's connection changes at once; each reader at its thread's next read.
        """
        self._trace = callback
        self._writer.connection_do(lambda conn: conn.set_trace_callback(callback))

    def close(self) -> None:
        """Close the writer, this thread's reader and those of threads that ended; the
        next use opens new ones.

        A reader another thread still has is closed by that thread at its next read
        (or dropped when it ends): closing it here could pull it from under a running
        statement, which crashes CPython's sqlite3.
        """
        self._writer.close()
        me = threading.current_thread()
        with self._readers_lock:
            self._generation += 1
            readers, self._readers = self._readers, {}
        for conn, thread in readers.items():
            if thread is me or not thread.is_alive():
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        if getattr(self._local, "conn", None) is not None:
            self._local.conn = None

    def migrate(self) -> None:
        """Bring the schema up to :data:`SCHEMA_VERSION` (``user_version``), in one transaction."""

        def upgrade(conn: Connection) -> None:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the job store {self.path} was written by a newer voxhub "
                    f"(schema {version}, this one knows {SCHEMA_VERSION})"
                )
            # Its own savepoint: the writer keeps the other writes of a failed one's
            # transaction when it changed no row, and schema changes are no rows.
            conn.execute("SAVEPOINT migrate")
            try:
                for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                    for statement in script.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number}")
            except BaseException:
                conn.execute("ROLLBACK TO migrate")
                raise
            finally:
                conn.execute("RELEASE migrate")

        self.write(upgrade)
        from .secrets_at_rest import sealer_for  # here: cryptography costs a listing ~10 ms

        # The store's key (created 0600 if missing) opens the secrets sealed in its rows:
        # known from the start, a resumed job's request is readable in any process.
        sealer_for(key_file(key_path(self.path)))


def key_path(path: Path) -> Path:
    """The store's key file: beside the database, ``<name>.callback-key``."""
    return path.with_name(path.name + ".callback-key")


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists.

    SQLite creates a missing database with the umask's mode (often 0644) and gives
    its ``-wal`` and ``-shm`` files the database file's mode: creating the file
    first, owner-only, makes all three owner-only. An existing file is left as is.
    """
    if str(path) == ":memory:" or path.exists():
        return
    with contextlib.suppress(FileExistsError):  # another process created it first
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def key_file(path: Path) -> bytes:
    """The secret in ``path``, created (mode 0600, 32 random bytes as hex) if missing."""
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
        return key
    key = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


class Unchecked(enum.Enum):
    """No condition on the stored value (see :func:`update_job`)."""

    ANY = "any"


def update_job(
    conn: Connection,
    job_id: str,
    columns: dict[str, Any],
    *,
    status_was: str | Unchecked | None = Unchecked.ANY,
) -> bool:
    """``UPDATE jobs SET column=?, ... WHERE job_id=?`` in one statement; whether a row changed.

    ``status_was`` updates only while the stored status text is still that one (a
    compare-and-set: what was decided from a read still holds).
    """
    values = [*columns.values(), job_id]
    if status_was is not Unchecked.ANY:
        values.append(status_was)
    sql = _update_sql(tuple(columns), status_was is not Unchecked.ANY)
    return conn.execute(sql, values).rowcount > 0


@functools.lru_cache(maxsize=64)
def _update_sql(columns: tuple[str, ...], check_status: bool) -> str:
    sets = ", ".join(f"{name}=?" for name in columns)
    check = " AND status IS ?" if check_status else ""
    # Column names come from the store's code, never from input; every value is bound.
    return f"UPDATE jobs SET {sets} WHERE job_id=?{check}"  # noqa: S608


def put_result(conn: Connection, job_id: str, text: str) -> None:
    """Store (or replace) the job's result text; the caller sets ``jobs.has_result``."""
    conn.execute(
        "INSERT INTO results (job_id, result) VALUES (?, ?) "
        "ON CONFLICT (job_id) DO UPDATE SET result=excluded.result",
        (job_id, text),
    )
