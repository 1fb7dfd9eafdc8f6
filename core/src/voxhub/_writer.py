"""The job store's single writer: one connection, writes grouped into transactions.

Threads of a process never race for SQLite's write lock, whose busy handler sleeps
and retries (1, 2, 5, 10... ms) and so forms no queue: at 8 threads that left them
waiting 40-80% of their time. Every write of the process runs on one connection, and
SQLite's lock is only ever contended by other processes sharing the file, which wait
for it through ``busy_timeout``.

Writes that arrive while another is being written are written together: the first
thread to arrive leads, writing every queued function in one transaction and waking
their threads; the others wait on an event, holding nothing. A lock taken in turn was
the earlier design: a thread granted the lock still had to win the GIL back before it
could write, and every thread behind it waited for that too (on a quiet 2-core machine
threads waited for the writer 72% of their time at 8 threads, 91% at 32; grouped, with
fewer writes per job, 15-16% and 18-19%: ``bench/RESULTS.md``).

A write that fails having changed no row leaves the others' changes standing; one that
changed rows is undone with the whole transaction, and the others are written again,
each alone (so a write function may run twice: it must act only through its
connection). A savepoint per write did the same with two more statements each.

What is left of the wait is the leader waiting for the GIL: CPython's ``sqlite3``
releases it several times per statement (around each reset and step, and for lookups
as small as the column count), and at 8 threads a transaction holds the writer about
2.5 ms for 0.45 ms of its own CPU. Fewer statements per write is what shortens it.
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
    #: CPU seconds of the writing threads inside those transactions: what ``held_seconds``
    #: would be if the writing thread never waited for the GIL or a core (SQLite only).
    cpu_seconds: float = 0.0
    #: Write functions run (several share a transaction when they queued together).
    writes: int = 0


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
        self._mutex = threading.Lock()  # guards the queue and the lead
        self._queue: list[_Write] = []
        self._leading = False
        self._holder: int | None = None  # the id of the thread holding it
        self._transactions = 0
        self._wait = 0.0
        self._held = 0.0
        self._cpu = 0.0
        self._writes = 0

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in a write transaction; its result once committed.

        ``fn`` must only use the connection it is given (never write to the store
        itself), and may be run twice (when another write of its transaction fails after
        changing rows); an exception undoes its changes (and only its own) and is
        raised here.
        """
        if self._holder == threading.get_ident():
            raise StoreError("a store write cannot start another write")
        asked = time.perf_counter()
        job = _Write(fn)
        with self._mutex:
            self._queue.append(job)
            lead = not self._leading
            self._leading = True
        if not lead:
            try:
                job.ready.wait()  # written by a leader, or handed the lead
            except BaseException:  # Ctrl-C while queued: never written, lead passed on
                self._abandon(job)
                raise
        if not job.done:
            self._lead(job)
        with self._mutex:  # (a write that never started waited until now)
            self._wait += (job.started or time.perf_counter()) - asked
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _abandon(self, job: _Write) -> None:
        """``job``'s caller stopped waiting: drop it if still queued; if it had been
        handed the lead, hand the lead on (a write already under way still commits)."""
        with self._mutex:
            if job in self._queue:
                self._queue.remove(job)
            if job.ready.is_set() and not job.done:  # the lead was ours
                if self._queue:
                    self._queue[0].ready.set()
                else:
                    self._leading = False

    def _lead(self, me: _Write) -> None:
        """Write the queue's groups until ours is written (and a few more, while others
        queue: handing the lead on costs a thread switch), then hand the lead on."""
        groups = 0
        try:
            while not me.done or groups < _LEAD_GROUPS:
                with self._mutex:
                    group, self._queue = self._queue, []
                if not group:
                    break
                try:
                    self._write(group)
                finally:
                    for job in group:
                        if not job.done:  # the leader was interrupted: nothing committed
                            job.error = StoreError("the write was interrupted")
                            job.done = True
                        if job is not me:
                            job.ready.set()
                groups += 1
        finally:
            with self._mutex:
                if self._queue:
                    self._queue[0].ready.set()  # it finds itself not written: it leads
                else:
                    self._leading = False

    def _write(self, group: list[_Write]) -> None:
        """Write ``group`` in one transaction; a failed write's changes undone alone."""
        started = time.perf_counter()
        cpu = time.thread_time()
        with self._lock:
            self._holder = threading.get_ident()
            try:
                self._transaction(group, started)
            finally:
                self._holder = None
                # Updated while the lock is held: no other thread writes these.
                self._transactions += 1
                self._writes += len(group)
                self._held += time.perf_counter() - started
                self._cpu += time.thread_time() - cpu
                transactions = self._transactions
        # The writer is free again: a checkpoint, if due, makes no writer wait.
        self._after_commit(transactions)

    def _transaction(self, group: list[_Write], started: float) -> None:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._connect()
        for job in group:
            job.started = started
        try:
            _begin(conn)
        except StoreError as exc:
            _fail(group, exc)
            return
        for n, job in enumerate(group):
            changes = conn.total_changes
            try:
                job.result = job.fn(conn)
            except BaseException as exc:
                if not isinstance(exc, Exception):  # Ctrl-C on the leader's thread: its own
                    _rollback(conn)
                    _fail(group, StoreError("the write was interrupted"))
                    raise
                job.error = exc  # raised to the function's caller
                if len(group) > 1 and conn.in_transaction and conn.total_changes == changes:
                    continue  # it changed no row: the others' changes stand
                # Its changes can only be undone with the whole transaction's: the others
                # are written again, each alone (a savepoint per write cost more).
                _rollback(conn)
                if len(group) == 1:
                    job.done = True
                    return
                for other in group[:n] + group[n + 1 :]:
                    other.error = other.result = None
                job.done = True
                for other in group[:n] + group[n + 1 :]:
                    self._transactions += 1  # (the lock is held)
                    self._transaction([other], started)
                return
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            for job in group:
                job.error = job.error or StoreError(f"job store error: {exc}")
        for job in group:
            job.done = True

    def stats(self) -> WriteStats:
        with self._lock:
            return WriteStats(self._transactions, self._wait, self._held, self._cpu,
                              self._writes)

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


#: Groups a leader writes (its own included) before it hands the lead on.
_LEAD_GROUPS = 4


class _Write:
    __slots__ = ("done", "error", "fn", "ready", "result", "started")

    def __init__(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        self.fn = fn
        self.ready = threading.Event()
        self.done = False
        self.result: object = None
        self.error: BaseException | None = None
        self.started = 0.0


def _fail(group: list[_Write], error: StoreError) -> None:
    """Nothing of ``group`` was committed: each function that had not failed gets ``error``."""
    for job in group:
        job.error = job.error or error
        job.done = True


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
