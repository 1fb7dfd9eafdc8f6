"""The job store's single writer: one connection, one write transaction at a time.

Threads of a process never race for SQLite's write lock, whose busy handler sleeps
and retries (1, 2, 5, 10... ms) and so forms no queue: at 8 threads that left them
waiting 40-80% of their time. Instead every write of the process runs on one
connection behind a Python lock, so threads queue in the lock (blocked in the
kernel, woken when it is free) and SQLite's lock is only ever contended by other
processes sharing the file, which wait for it through ``busy_timeout``.

Grouping the writes of several threads into one commit was tried too: it cut the
commits but woke threads twice as often, which under the GIL cost more CPU than
the commits saved (see ``bench/RESULTS.md``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import attrs

from .errors import StoreError

__all__ = ["WriteStats", "Writer"]

T = TypeVar("T")


@attrs.frozen
class WriteStats:
    """Counters of one store's writer since it was opened (for benchmarks and diagnosis)."""

    #: Write transactions run (committed or rolled back).
    transactions: int
    #: Seconds threads spent waiting for the writer (summed over threads).
    wait_seconds: float
    #: Seconds the writer was held, i.e. spent inside write transactions.
    held_seconds: float


class Writer:
    """Runs write functions in transactions on one connection, one at a time."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        after_commit: Callable[[int], None] = lambda _transactions: None,
    ) -> None:
        self._connect = connect
        self._after_commit = after_commit
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # held for a whole transaction
        self._holder: int | None = None  # the id of the thread holding it
        self._transactions = 0
        self._wait = 0.0
        self._held = 0.0

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in a write transaction; its result once committed.

        ``fn`` must only use the connection it is given (never write to the store
        itself); an exception rolls the transaction back and is raised here.
        """
        if self._holder == threading.get_ident():
            raise StoreError("a store write cannot start another write")
        asked = time.perf_counter()
        with self._lock:
            started = time.perf_counter()
            self._holder = threading.get_ident()
            try:
                result = self._transaction(fn)
            finally:
                self._holder = None
                # Updated while the lock is held: no other thread writes these.
                self._transactions += 1
                self._wait += started - asked
                self._held += time.perf_counter() - started
                transactions = self._transactions
        # The writer is free again: a checkpoint, if due, makes no writer wait.
        self._after_commit(transactions)
        return result

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._connect()
        _begin(conn)
        try:
            result = fn(conn)
        except BaseException:
            _rollback(conn)
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            raise StoreError(f"job store error: {exc}") from exc
        return result

    def stats(self) -> WriteStats:
        with self._lock:
            return WriteStats(self._transactions, self._wait, self._held)

    def connection_do(self, action: Callable[[sqlite3.Connection], None]) -> None:
        """Run ``action`` on the writer's connection (if open) while no transaction runs."""
        with self._lock:
            if self._conn is not None:
                action(self._conn)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None


def _begin(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``: take SQLite's write lock now, waiting for other processes."""
    for attempt in range(50):
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            # busy_timeout covers contention with other processes; this covers the rest
            # (e.g. a WAL recovery in progress when the file was opened).
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise StoreError(f"job store error: {exc}") from exc
            time.sleep(min(0.05 * (attempt + 1), 1.0))
    raise StoreError("the job store stayed locked for too long")


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")
