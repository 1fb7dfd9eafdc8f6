"""The job store on PostgreSQL: a connection pool, the SQLite-shaped adapter, LISTEN.

Chosen by a ``postgresql://user:password@host:port/dbname`` store URL; needs the
``voxhub[postgres]`` extra (psycopg 3 and psycopg_pool).

* The store's SQL is written once, with ``?`` placeholders. :func:`pg_sql` turns each
  statement into psycopg's form once (cached): ``?`` becomes ``%s``, a literal ``%``
  doubles, and ``IS ?`` (SQLite's null-safe equality) becomes ``IS NOT DISTINCT FROM``.
  Rows read by column name and by position, as :class:`sqlite3.Row` does.
* Reads borrow a pooled connection per statement (autocommit: each sees every commit);
  results are fetched whole, so no connection stays borrowed between statements.
* Each write runs ``fn`` in one transaction on a pooled connection. Writes that decide
  on a read lock the rows read (``SELECT ... FOR UPDATE``, see ``Database.for_update``);
  inserts of idempotency keys are ordered by an advisory lock (``lock_keys``). A write
  chosen as a deadlock victim rolls back and runs again.
* Waiters on a job's events ``LISTEN`` on one connection per process; an event insert
  notifies (a trigger, see :mod:`voxhub._pg_schema`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool

from ._database import Connection, Database, PostgresUrl
from ._pg_schema import BOOTSTRAP, EVENTS_CHANNEL, MIGRATIONS
from ._sqlite import SCHEMA_VERSION, key_file
from ._writer import WriteStats
from .errors import StoreError
from .redact import redact_text

if TYPE_CHECKING:
    from ._records import Event
    from .clock import Clock

__all__ = ["PostgresDatabase", "close_all", "pg_sql"]

T = TypeVar("T")

if len(MIGRATIONS) != SCHEMA_VERSION:  # pragma: no cover - a release-time mistake
    raise RuntimeError("the PostgreSQL schema has not the SQLite schema's versions")

#: Connections the pool keeps at most (``$VOXHUB_STORE_POOL_SIZE``).
POOL_SIZE = 10
#: Advisory lock ids: migrations, and inserts of idempotency keys.
_MIGRATION_LOCK = 0x766F7868  # "voxh"
_KEYS_LOCK = 0x766F786B
#: How often an idle waiter reads its events anyway (a notification lost with a
#: silently dead listener connection is found then).
RECHECK_SECONDS = 10.0
#: A write chosen as a deadlock victim (rolled back by the server) runs again this often.
_RETRIES = 5
_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
#: Databases with open connections (their pools' threads keep them open until closed).
_OPEN: set[PostgresDatabase] = set()
_OPEN_LOCK = threading.Lock()


def close_all() -> None:
    """Close every database of this process (tests: before their database is dropped)."""
    with _OPEN_LOCK:
        databases = list(_OPEN)
    for db in databases:
        db.close()


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """The store's SQL (``?`` placeholders, SQLite's ``IS ?``) as psycopg runs it."""
    sql = sql.replace(" IS ?", " IS NOT DISTINCT FROM ?")
    out: list[str] = []
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        if ch == "%":
            out.append("%%")
        elif ch == "?" and not quoted:
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


class _Row(tuple[Any, ...]):
    """A row read by position (a tuple) or by column name."""

    _index: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[_Row]:
    return type("Row", (_Row,), {"_index": {name: i for i, name in enumerate(names)}})


def _rows(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    """psycopg row factory: :class:`_Row` s of the cursor's columns."""
    if cursor.description is None:
        return tuple
    return _row_class(tuple(column.name for column in cursor.description))


class _Result:
    """A statement's rows, fetched whole, read like a :class:`sqlite3.Cursor`."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Any]:
        rest = self._rows[self._next :]
        self._next = len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class _Adapter:
    """One psycopg connection as the store's code uses a :class:`sqlite3.Connection`."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any], trace: Callable[[str], None] | None) -> None:
        self._conn = conn
        self._trace = trace

    def execute(self, sql: str, parameters: Any = (), /) -> _Result:
        if self._trace is not None:
            self._trace(sql)
        cur = self._conn.execute(pg_sql(sql), parameters)
        rows = cur.fetchall() if cur.description is not None else []
        return _Result(rows, cur.rowcount)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> _Result:
        if self._trace is not None:
            self._trace(sql)
        with self._conn.cursor() as cur:
            cur.executemany(pg_sql(sql), list(parameters))
            return _Result([], cur.rowcount)

    def run_script(self, script: str) -> None:
        """Several statements in one call (no parameters: psycopg sends them as one
        simple query, so ``?``, ``%`` and ``$$`` bodies stay as written)."""
        if self._trace is not None:
            self._trace(script)
        self._conn.execute(script.encode())


class _Reader:
    """Reads: each statement on a connection borrowed from the pool for it alone."""

    dialect = "postgresql"

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def execute(self, sql: str, parameters: Any = (), /) -> _Result:
        with self._db._errors(), self._db._pool().connection() as conn:
            return _Adapter(conn, self._db._trace).execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> _Result:
        raise StoreError("the store's reader does not write")


class _Listener:
    """One ``LISTEN`` connection per database: wakes the waiters of a job when its events
    are committed (by any process), and every waiter when it (re)connects."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._listening = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self, job_id: str) -> threading.Event:
        """A new event set when ``job_id`` gets events; returns once the listener listens
        (so nothing committed from then on goes unnoticed) or after 5 s."""
        wake = threading.Event()
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(wake)
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="voxhub-store-listen", daemon=True
                )
                self._thread.start()
        self._listening.wait(5.0)
        return wake

    def forget(self, job_id: str, wake: threading.Event) -> None:
        with self._lock:
            waiting = self._waiters.get(job_id)
            if waiting is not None:
                waiting.discard(wake)
                if not waiting:
                    del self._waiters[job_id]

    def _wake(self, job_id: str | None) -> None:
        with self._lock:
            if job_id is None:
                events = [e for waiting in self._waiters.values() for e in waiting]
            else:
                events = list(self._waiters.get(job_id, ()))
        for event in events:
            event.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    self._listening.set()
                    self._wake(None)  # what was committed before listening: look again
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._wake(note.payload)
            except psycopg.Error:
                self._listening.clear()
                self._wake(None)
                self._stop.wait(1.0)
        self._listening.clear()

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(2.0)


class PostgresDatabase(Database):
    """A job store in a PostgreSQL database, shared by processes on any machine."""

    dialect = "postgresql"
    for_update = " FOR UPDATE"

    def __init__(self, url: PostgresUrl) -> None:
        self.url = url
        self._pool_: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pool_lock = threading.Lock()
        self._trace: Callable[[str], None] | None = None
        self._local = threading.local()
        self._listener = _Listener(lambda: self._connect(autocommit=True))
        self._stats_lock = threading.Lock()
        self._transactions = 0
        self._wait = 0.0
        self._held = 0.0

    @property
    def location(self) -> PostgresUrl:
        return self.url

    @property
    def state_dir(self) -> Path:
        return self.url.state_dir

    @property
    def key_path(self) -> Path:
        """``$VOXHUB_STORE_KEY_FILE``, else ``store.key`` in :attr:`state_dir`. Every
        machine sharing the store needs the same key: copy the file (the store refuses
        a different one, see :meth:`migrate`)."""
        named = os.environ.get("VOXHUB_STORE_KEY_FILE")
        return Path(named).expanduser() if named else self.state_dir / "store.key"

    # --- connections -----------------------------------------------------------------

    def _errors(self) -> _ErrorsAsStoreErrors:
        return _ErrorsAsStoreErrors(self.url)

    def _connect(self, *, autocommit: bool) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.url.conninfo(), autocommit=autocommit, row_factory=_rows, connect_timeout=15
        )

    def _pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        pool = self._pool_
        if pool is not None:
            return pool
        with self._pool_lock:
            if self._pool_ is None:
                self._connect(autocommit=True).close()  # a bad URL fails here, clearly
                size = int(os.environ.get("VOXHUB_STORE_POOL_SIZE") or POOL_SIZE)
                self._pool_ = ConnectionPool(
                    self.url.conninfo(),
                    min_size=1,
                    max_size=max(1, size),
                    kwargs={"autocommit": True, "row_factory": _rows},
                    name="voxhub-store",
                    open=True,
                )
                with _OPEN_LOCK:
                    _OPEN.add(self)
            return self._pool_

    def reader(self) -> Connection:
        return _Reader(self)

    def write(self, fn: Callable[[Connection], T]) -> T:
        if getattr(self._local, "writing", False):
            raise StoreError("a store write cannot start another write")
        asked = time.perf_counter()
        started = asked
        self._local.writing = True
        try:
            with self._errors():
                pool = self._pool()
                for attempt in range(_RETRIES):
                    with pool.connection() as conn:
                        started = time.perf_counter()
                        try:
                            with conn.transaction():
                                return fn(_Adapter(conn, self._trace))
                        except _RETRYABLE:
                            if attempt == _RETRIES - 1:
                                raise
                    time.sleep(0.01 * (attempt + 1))
                raise StoreError("unreachable")  # pragma: no cover
        finally:
            self._local.writing = False
            with self._stats_lock:
                self._transactions += 1
                self._wait += started - asked
                self._held += time.perf_counter() - started

    def stats(self) -> WriteStats:
        with self._stats_lock:
            return WriteStats(self._transactions, self._wait, self._held,
                              writes=self._transactions)

    def trace(self, callback: Callable[[str], None] | None) -> None:
        self._trace = callback

    def close(self) -> None:
        self._listener.close()
        with self._pool_lock:
            pool, self._pool_ = self._pool_, None
        with _OPEN_LOCK:
            _OPEN.discard(self)
        if pool is not None:
            pool.close()

    def lock_keys(self, conn: Connection, *, shared: bool = False) -> None:
        """An advisory lock until the transaction ends: exclusive for a writer that reads
        keys before inserting them, shared for ``INSERT ... ON CONFLICT`` writers."""
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        conn.execute(f"SELECT {function}(?)", (_KEYS_LOCK,))

    # --- schema ----------------------------------------------------------------------

    def schema_version(self) -> int:
        conn = self.reader()
        if not conn.execute("SELECT to_regclass('voxhub_meta') IS NOT NULL").fetchone()[0]:
            return 0
        row = conn.execute("SELECT value FROM voxhub_meta WHERE name='schema_version'").fetchone()
        return 0 if row is None else int(row[0])

    def migrate(self) -> None:
        """Bring the schema up to :data:`SCHEMA_VERSION` in one transaction (one process
        at a time: an advisory lock), and check this machine's key file against the
        store's (a check value in ``voxhub_meta``, never the key)."""
        from .secrets_at_rest import sealer_for  # here: cryptography costs ~10 ms

        def upgrade(conn: Connection) -> bytes:
            assert isinstance(conn, _Adapter)
            conn.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            conn.run_script(BOOTSTRAP)
            row = conn.execute(
                "SELECT value FROM voxhub_meta WHERE name='schema_version'"
            ).fetchone()
            version = 0 if row is None else int(row[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the job store {self.url} was written by a newer voxhub "
                    f"(schema {version}, this one knows {SCHEMA_VERSION})"
                )
            for script in MIGRATIONS[version:]:
                conn.run_script(script)
            conn.execute(
                "INSERT INTO voxhub_meta (name, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (name) DO UPDATE SET value=excluded.value",
                (str(SCHEMA_VERSION),),
            )
            return self._checked_key(conn)

        sealer_for(self.write(upgrade))

    def _checked_key(self, conn: Connection) -> bytes:
        """This machine's key, created with the store; refused if it is not the store's."""
        path = self.key_path
        row = conn.execute("SELECT value FROM voxhub_meta WHERE name='key_check'").fetchone()
        if row is None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = key_file(path)
            conn.execute(
                "INSERT INTO voxhub_meta (name, value) VALUES ('key_check', ?)", (_check(key),)
            )
            return key
        if not path.exists():
            raise StoreError(
                f"the job store {self.url} seals secrets with a key this machine does not "
                f"have: copy its key file from a machine that uses the store to {path}, "
                "or set VOXHUB_STORE_KEY_FILE to it"
            )
        key = key_file(path)
        if not hmac.compare_digest(_check(key), str(row[0])):
            raise StoreError(
                f"the key file {path} is not the key of the job store {self.url}: every "
                "machine sharing a store needs the same key file"
            )
        return key

    # --- waiting ---------------------------------------------------------------------

    def wait_for_events(
        self,
        job_id: str,
        fetch: Callable[[], list[Event]],
        timeout: float,
        *,
        clock: Clock,
        interval: float,
    ) -> list[Event]:
        """Woken by ``NOTIFY``: the events are read when the job got some (and every
        :data:`RECHECK_SECONDS` while idle), never polled. Sleeps on ``clock`` in
        ``interval`` steps, as the SQLite wait does, so a test clock stays instant."""
        with self._errors():
            wake = self._listener.register(job_id)
        try:
            deadline = clock.monotonic() + timeout
            checked: float | None = None
            while True:
                now = clock.monotonic()
                if checked is None or wake.is_set() or now - checked >= RECHECK_SECONDS:
                    wake.clear()  # before reading: a notification from now on wakes again
                    checked = now
                    found = fetch()
                    if found:
                        return found
                remaining = deadline - clock.monotonic()
                if remaining <= 0:
                    return []
                clock.sleep(min(interval, remaining), wake)
        finally:
            self._listener.forget(job_id, wake)


def _check(key: bytes) -> str:
    """The check value of a store key kept in the database (tells keys apart, reveals none)."""
    return hmac.new(key, b"voxhub store key check", hashlib.sha256).hexdigest()


class _ErrorsAsStoreErrors:
    """Turns driver errors into :class:`StoreError`, secrets masked (a password the
    server quotes back is registered, see :class:`PostgresUrl`)."""

    def __init__(self, url: PostgresUrl) -> None:
        self._url = url

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, psycopg.Error):
            message = redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            raise StoreError(f"job store error ({self._url}): {message}") from None
