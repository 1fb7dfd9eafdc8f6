"""Limits that hold across processes and machines: kept in the job store, not in memory.

Several workers sharing one store (threads, processes, machines of a Dask cluster) must
together respect a vendor's limit, which is per account, not per process. Each limit is
one row of the store's ``limits`` table, read and changed in one write transaction:
SQLite's write transactions exclude each other; on PostgreSQL an advisory lock on a
hash of the key (``pg_advisory_xact_lock``) orders the transactions of one key, and the
time is the server's, so machines whose clocks differ still agree. Nothing is held
while a caller waits: a waiter has either reserved its turn (and sleeps until it) or
reads the row again later.

Three kinds of limit, each under its own key:

* :meth:`SharedLimits.take` — a rate: at most ``count`` in any ``per`` seconds, up to
  ``burst`` of them at once (a token bucket kept as one "next allowed time", GCRA).
* :meth:`SharedLimits.turn` — one holder at a time, each turn starting ``interval``
  seconds after the previous one *ended* (Agora's "no more often than once a second").
* :meth:`SharedLimits.slot` — at most ``count`` holders at once (concurrent uploads).
* :meth:`SharedLimits.locked` — one holder at a time, with a small JSON record kept in
  the same row (Agora: which task already serves a channel, so that a second start on
  any machine finds it instead of creating another).

Turns, slots and locks are leases renewed while held: a holder that dies frees its place when
its lease runs out. Keys are shown to operators as they are; a key that contains a
registered secret is refused (credentials are named by a hash, see
:mod:`voxhub._provider_limits`). Waits are logged at info level (``shared_limit``) and
respect the deadline in scope (:func:`~voxhub.policies.deadline_scope`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from .clock import Clock, SystemClock
from .errors import InvalidInputError, ProviderUnavailableError, RateLimitedError
from .policies import current_deadline
from .redact import redact_text

if TYPE_CHECKING:
    from ._database import Connection, Database

__all__ = ["Limit", "LockedRecord", "SharedLimits"]

T = TypeVar("T")


def _log() -> Any:
    import structlog  # here: declaring a Limit (listing providers) stays cheap

    return structlog.get_logger("voxhub.limits")


#: A limit's name: what it applies to (an operation such as ``submit``, or a plugin's own).
_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
#: A key: printable, no spaces, bounded (it is a primary key and shown to operators).
_KEY = re.compile(r"[\x21-\x7e]{1,300}")
#: The limits table of a store-less fallback database (the columns of migrations 6 and 7).
_FALLBACK_TABLE = """
CREATE TABLE IF NOT EXISTS limits (
    key         TEXT PRIMARY KEY,
    next_at     REAL NOT NULL,
    holders     TEXT NOT NULL,
    updated_at  REAL NOT NULL,
    record      TEXT
) WITHOUT ROWID
"""
#: Longest a turn or slot waits for a holder before giving up (no deadline in scope).
WAIT_TIMEOUT = 600.0
#: A held turn or slot's lease; renewed every third of it while held.
HOLD_SECONDS = 30.0


def _positive(_instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise InvalidInputError(f"Limit.{attribute.name} must be positive, got {value!r}",
                                field=attribute.name)


@attrs.frozen
class Limit:
    """A vendor limit a provider declares in :attr:`ProviderInfo.limits`.

    With ``per``: a rate, at most ``count`` in any ``per`` seconds, up to ``burst`` at
    once. Without: a concurrency, at most ``count`` at once. ``name`` says what it
    applies to: the core applies a limit named after a lifecycle operation (``submit``)
    before each call of that hook; a provider applies its other limits itself, with
    ``ctx.limits.take(limit)`` or ``with ctx.limits.hold(limit):``. Either way the limit
    is shared by every worker of the store using the same credentials.
    """

    name: str
    count: int = attrs.field(validator=_positive)
    per: float | None = attrs.field(default=None, validator=_positive)
    burst: int = attrs.field(default=1, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise InvalidInputError(
                f"Limit.name: lower-case letters, digits and ._- (got {self.name!r})",
                field="name")
        if self.burst > self.count:
            raise InvalidInputError(
                f"Limit.burst ({self.burst}) must not exceed Limit.count ({self.count})",
                field="burst")

    @property
    def is_rate(self) -> bool:
        """Whether this is a rate (``per`` set) rather than a concurrency."""
        return self.per is not None


@attrs.define
class _State:
    next_at: float = 0.0
    holders: dict[str, float] = attrs.field(factory=dict)
    record: str | None = None  # a lock's record, JSON (see SharedLimits.locked)

    def live(self, now: float) -> dict[str, float]:
        """The holders whose lease has not run out."""
        return {k: v for k, v in self.holders.items() if v > now}


def check_key(key: str) -> str:
    """``key`` if it may be stored and shown: printable, bounded, and no secret in it."""
    if not _KEY.fullmatch(key):
        raise InvalidInputError(
            "limit key: 1 to 300 printable characters without spaces", field="key")
    if redact_text(key) != key:
        raise InvalidInputError(
            "limit key: contains a secret; name credentials by a hash", field="key")
    return key


def _lock_id(key: str) -> int:
    """The PostgreSQL advisory lock of ``key`` (a collision only orders two keys)."""
    digest = hashlib.sha256(b"voxhub limit\0" + key.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class SharedLimits:
    """The limits kept in one store (or in a store-less fallback database, see
    :meth:`beside`). Thread-safe; every process and machine of the store shares them.

    ``clock`` is the orchestrator's: the deadline in scope is read on it. Waits sleep
    in real time whatever the clock: the other workers wait in real time too.
    """

    def __init__(self, database: Database | Callable[[], Database], *,
                 clock: Clock | None = None) -> None:
        self._database = database
        self.clock = clock or SystemClock()

    @classmethod
    def beside(cls, state_dir: Path | None) -> SharedLimits:
        """Limits without a store: in ``limits.db`` in ``state_dir`` (shared by the
        processes of this machine that use that folder), or this process's alone."""
        target = Path(":memory:") if state_dir is None else Path(state_dir) / "limits.db"
        with _FALLBACKS_LOCK:
            found = _FALLBACKS.get(target)
            if found is None:
                found = _FALLBACKS[target] = cls(lambda: _fallback_database(target))
            return found

    def _db(self) -> Database:
        db = self._database
        return db if not callable(db) else db()

    # --- one transaction on one key ---------------------------------------------------

    def _change(self, key: str, decide: Callable[[_State, float], tuple[bool, T]]) -> T:
        """Run ``decide(state, now)`` on the row of ``key`` in one write transaction;
        it returns whether to store the (changed) state, and the answer."""
        db = self._db()
        postgres = db.dialect == "postgresql"

        def write(conn: Connection) -> T:
            if postgres:
                conn.execute("SELECT pg_advisory_xact_lock(?)", (_lock_id(key),))
                now = float(conn.execute(
                    "SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0])
            else:
                now = time.time()  # one machine: its clock is everyone's
            row = conn.execute(
                "SELECT next_at, holders, record FROM limits WHERE key=?", (key,)).fetchone()
            state = (_State() if row is None
                     else _State(float(row[0]), json.loads(row[1]), row[2]))
            store, answer = decide(state, now)
            if store:
                conn.execute(
                    "INSERT INTO limits (key, next_at, holders, updated_at, record) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                    "next_at=excluded.next_at, holders=excluded.holders, "
                    "updated_at=excluded.updated_at, record=excluded.record",
                    (key, state.next_at, json.dumps(state.holders, sort_keys=True), now,
                     state.record),
                )
            return answer

        return db.write(write)

    def _left(self) -> float | None:
        deadline = current_deadline()
        return None if deadline is None else deadline - self.clock.monotonic()

    # --- rates ------------------------------------------------------------------------

    def take(self, key: str, *, count: int, per: float, burst: int = 1,
             provider: str | None = None, operation: str | None = None) -> float:
        """Wait until one more event of ``key`` is allowed: at most ``count`` in any
        ``per`` seconds, up to ``burst`` at once. Returns the seconds waited.

        The event's time is reserved in the store before the wait (:meth:`reserve`), so
        waiters of every process queue in order and nobody polls. A wait that would pass
        the deadline in scope reserves nothing and raises
        :class:`~voxhub.errors.RateLimitedError`.
        """
        left = self._left()
        _at, wait = self._reserve(key, count, per, burst, left)
        self._wait(key, wait, left, provider, operation)
        return wait

    def reserve(self, key: str, *, count: int, per: float, burst: int = 1) -> float:
        """Reserve the next event of ``key`` without waiting; returns when it is allowed,
        in the store's time (seconds since the epoch: PostgreSQL's clock, or this
        machine's for SQLite). For callers that schedule work themselves."""
        return self._reserve(key, count, per, burst, None)[0]

    def _reserve(self, key: str, count: int, per: float, burst: int,
                 left: float | None) -> tuple[float, float]:
        limit = Limit("rate", count, per, burst)  # checks the numbers
        check_key(key)
        # GCRA: events ``spacing`` apart, ``burst`` of them early; at most ``count`` in
        # any window of ``per`` seconds (burst + per / spacing - 1 == count).
        spacing = per / (limit.count - limit.burst + 1)
        tolerance = (limit.burst - 1) * spacing

        def decide(state: _State, now: float) -> tuple[bool, tuple[float, float]]:
            due = max(state.next_at, now)
            at = max(now, due - tolerance)
            if at > now and left is not None and at - now > left:
                return False, (at, at - now)
            state.next_at = due + spacing
            return True, (at, at - now)

        return self._change(key, decide)

    # --- turns and slots -------------------------------------------------------------

    @contextlib.contextmanager
    def turn(self, key: str, interval: float, *, provider: str | None = None,
             operation: str | None = None, timeout: float = WAIT_TIMEOUT) -> Iterator[float]:
        """Hold the turn of ``key``: one holder at a time, each turn starting at least
        ``interval`` seconds after the previous one ended (normally or by an exception:
        a failed request may still have reached the vendor). Yields the seconds waited."""
        Limit("turn", 1, interval)
        check_key(key)

        def spacing(state: _State, now: float) -> float:
            # Capped at one interval: a clock stepped back must not stall turns.
            return min(max(0.0, state.next_at - now), interval)

        def leave(state: _State, now: float) -> None:
            state.next_at = max(state.next_at, now + interval)

        with self._hold(key, 1, spacing, leave, provider, operation, timeout) as waited:
            yield waited

    @contextlib.contextmanager
    def slot(self, key: str, count: int, *, provider: str | None = None,
             operation: str | None = None, timeout: float = WAIT_TIMEOUT) -> Iterator[float]:
        """Hold one of the ``count`` places of ``key`` (at most ``count`` holders at
        once, in every process). Yields the seconds waited."""
        Limit("slot", count)
        check_key(key)
        with self._hold(key, count, lambda _s, _n: 0.0, lambda _s, _n: None,
                        provider, operation, timeout) as waited:
            yield waited

    @contextlib.contextmanager
    def locked(self, key: str, *, provider: str | None = None, operation: str | None = None,
               timeout: float = WAIT_TIMEOUT) -> Iterator[LockedRecord]:
        """Hold ``key`` alone (one holder in every process and machine of the store) and
        yield its record: JSON data kept with the lock, read when the lock is taken.

        Set :attr:`LockedRecord.data` to change the record (``None`` deletes it); it is
        saved when the block ends without an exception, or at once by
        :meth:`LockedRecord.save`. A holder that dies frees the lock when its lease runs
        out (:data:`HOLD_SECONDS`), leaving the record as last saved. Waiting longer than
        ``timeout`` seconds raises :class:`~voxhub.errors.ProviderUnavailableError`.
        """
        check_key(key)
        token = _token()
        found: list[str | None] = []  # the record, read in the transaction taking the lock
        with self._hold(key, 1, lambda _s, _n: 0.0, lambda _s, _n: None, provider,
                        operation, timeout, token=token, taken=lambda s: found.append(s.record)):
            held = LockedRecord(self, key, token, found[-1], provider, operation)
            yield held
            if held.changed:
                held.save()

    def record(self, key: str) -> dict[str, Any] | None:
        """The record of lock ``key`` without taking it (a snapshot, stale at once)."""
        check_key(key)
        # Read in a write transaction like every other look at a limit: a store-less
        # fallback may be in memory, where only the writer's connection sees the table.
        return _loads_record(self._change(key, lambda state, _now: (False, state.record)))

    def _save_record(self, key: str, token: str, text: str | None) -> bool:
        """Store ``text`` as the record of ``key`` if ``token`` still holds it."""

        def save(state: _State, now: float) -> tuple[bool, bool]:
            if token not in state.live(now):
                return False, False
            state.record = text
            return True, True

        return self._change(key, save)

    @contextlib.contextmanager
    def _hold(self, key: str, count: int, delay: Callable[[_State, float], float],
              leave: Callable[[_State, float], None], provider: str | None,
              operation: str | None, timeout: float, *, token: str | None = None,
              taken: Callable[[_State], None] | None = None) -> Iterator[float]:
        """Wait for a place under ``key``, hold it (renewing its lease), then leave it.

        ``delay(state, now)``: how long after ``now`` a free place may be taken (a
        turn's spacing). A place is reserved as soon as one is free, its holder then
        sleeping out ``delay``: waiters of every process see it taken. ``taken(state)``
        is told the row as the transaction that took the place found it.
        """
        token = token or _token()
        started = time.monotonic()
        waited = 0.0
        poll = 0.02
        logged = False
        while True:
            left = self._left()

            def enter(state: _State, now: float, left: float | None = left) -> tuple[bool, float]:
                live = state.live(now)
                if len(live) >= count:
                    # Polled again after the earliest lease ends, or sooner; leases that
                    # ran out (their holder died) are dropped on the way.
                    expired = live != state.holders
                    state.holders = live
                    return expired, -min(min(live.values()) - now, 0.5)
                wait = delay(state, now)
                if wait > 0 and left is not None and wait > left:
                    return False, wait  # reserves nothing; _wait raises for the deadline
                state.holders = {**live, token: now + wait + HOLD_SECONDS}
                if taken is not None:
                    taken(state)
                return True, wait

            answer = self._change(key, enter)
            if answer >= 0:  # a place is ours, after ``answer`` seconds
                self._wait(key, answer, left, provider, operation)
                waited += answer
                break
            pause = min(-answer, poll)
            poll = min(poll * 2, 0.25)
            if time.monotonic() - started + pause > timeout:
                raise ProviderUnavailableError(
                    f"another worker held the shared limit {key} for over {timeout:g} s",
                    provider=provider, operation=operation, in_doubt=False)
            if left is not None and pause > left:
                self._wait(key, pause, left, provider, operation)  # raises: past the deadline
            if not logged:
                _log().info("shared_limit", provider=provider, reason="shared limit", key=key,
                         operation=operation, seconds=round(pause, 3), busy=True)
                logged = True
            time.sleep(pause)
            waited += pause
        renewal = _Renewal(self, key, token)
        try:
            yield waited
        finally:
            renewal.stop()

            def release(state: _State, now: float) -> tuple[bool, None]:
                state.holders = {k: v for k, v in state.live(now).items() if k != token}
                leave(state, now)
                return True, None

            try:
                self._change(key, release)
            except Exception:  # noqa: BLE001 - the lease ends by itself within HOLD_SECONDS
                # Never raised over the held call's own outcome: a request that was sent
                # must not look unsent because the store could not be written just now.
                _log().warning("shared_limit.release_failed", provider=provider, key=key,
                               exc_info=True)

    def _renew(self, key: str, token: str) -> None:
        def extend(state: _State, now: float) -> tuple[bool, None]:
            if token not in state.holders:
                return False, None
            state.holders[token] = max(state.holders[token], now + HOLD_SECONDS)
            return True, None

        self._change(key, extend)

    # --- waiting -----------------------------------------------------------------------

    def _wait(self, key: str, seconds: float, left: float | None, provider: str | None,
              operation: str | None) -> None:
        if seconds <= 0:
            return
        if left is not None and seconds > left:
            _log().info("shared_limit.gave_up", provider=provider, reason="shared limit", key=key,
                     operation=operation, seconds=round(seconds, 3),
                     left=round(max(0.0, left), 3))
            raise RateLimitedError(
                f"waiting {seconds:.1f} s for the shared limit {key} would pass the "
                f"deadline, {max(0.0, left):.1f} s away",
                provider=provider, operation=operation, in_doubt=False, retry_after=seconds)
        _log().info("shared_limit", provider=provider, reason="shared limit", key=key,
                 operation=operation, seconds=round(seconds, 3))
        time.sleep(seconds)


def _token() -> str:
    """A holder's name: its process and a random part (shown in the limits table)."""
    return f"{os.getpid()}-{secrets.token_hex(6)}"


def _loads_record(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None  # written by something else: treated as no record
    return data if isinstance(data, dict) else None


class LockedRecord:
    """The record of a lock held with :meth:`SharedLimits.locked`.

    :attr:`data` is what the record held when the lock was taken (a fresh copy: change
    it freely, or set ``None`` to delete the record). It is written when the ``with``
    block ends normally, or at once by :meth:`save`, for a fact that must outlive a
    failure later in the block (Agora: a builder token about to be used).
    """

    def __init__(self, limits: SharedLimits, key: str, token: str, text: str | None,
                 provider: str | None, operation: str | None) -> None:
        self.key = key
        self._limits = limits
        self._token = token
        self._provider = provider
        self._operation = operation
        self.data: dict[str, Any] | None = _loads_record(text)
        self._saved = self._text()  # as stored, in the form it is written

    def _text(self) -> str | None:
        if self.data is None:
            return None
        try:
            return json.dumps(self.data, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"a lock's record must be JSON data: {exc}",
                                    field="data", provider=self._provider) from None

    @property
    def changed(self) -> bool:
        """Whether :attr:`data` differs from the stored record."""
        try:
            return self._text() != self._saved
        except InvalidInputError:
            return True  # save() says why

    def save(self) -> None:
        """Write :attr:`data` now (the lock is still held).

        Raises :class:`~voxhub.errors.ProviderUnavailableError` when this holder's lease
        ran out and the lock may have passed on (the store was unreachable for longer
        than :data:`HOLD_SECONDS`): the record is then not written.
        """
        text = self._text()
        if not self._limits._save_record(self.key, self._token, text):
            raise ProviderUnavailableError(
                f"the lock {self.key} was lost before its record was saved (its lease "
                f"ran out)", provider=self._provider, operation=self._operation,
                in_doubt=False)
        self._saved = text


class _Renewal:
    """Renews a held lease every third of :data:`HOLD_SECONDS` until stopped."""

    def __init__(self, limits: SharedLimits, key: str, token: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(limits, key, token), name="voxhub-limit-lease", daemon=True)
        self._thread.start()

    def _run(self, limits: SharedLimits, key: str, token: str) -> None:
        while not self._stop.wait(HOLD_SECONDS / 3):
            with contextlib.suppress(Exception):  # the next renewal tries again
                limits._renew(key, token)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)


_FALLBACKS: dict[Path, SharedLimits] = {}
_FALLBACKS_LOCK = threading.Lock()
_FALLBACK_DBS: dict[Path, Database] = {}


def _fallback_database(target: Path) -> Database:
    """A SQLite database holding only the limits table (opened once per process)."""
    with _FALLBACKS_LOCK:
        db = _FALLBACK_DBS.get(target)
        if db is None:
            from ._sqlite import SqliteDatabase

            if str(target) != ":memory:":
                target.parent.mkdir(parents=True, exist_ok=True)
            db = SqliteDatabase(target)
            db.write(_create_fallback_table)
            _FALLBACK_DBS[target] = db
        return db


def _create_fallback_table(conn: Connection) -> None:
    conn.execute(_FALLBACK_TABLE)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(limits)").fetchall()}
    if "record" not in columns:  # a file an older voxhub made (before locks had records)
        conn.execute("ALTER TABLE limits ADD COLUMN record TEXT")
