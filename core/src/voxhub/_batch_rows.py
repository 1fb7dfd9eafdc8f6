"""The batch store's writes: recording a batch whole, claiming it, finishing its items.

Every write goes through the store's ``Database.write``, each one transaction; the
reads are in :mod:`voxhub._batch_reads`. A write that decides on what it read locks it
first (``Database.for_update``, ``Database.lock_keys``): on PostgreSQL another machine
may be writing the same batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ._batch_model import BatchSettings, ItemState, Stage
from ._batch_reads import CHUNK, BatchReads
from ._records import Phase, dumps, owner_alive
from .errors import BatchBusyError, NotFoundError

if TYPE_CHECKING:
    from ._database import Connection
    from .store import Store

__all__ = ["BatchRows", "NewJob", "Plan", "PlannedItem", "mark_done", "new_batch_id"]


def new_batch_id() -> str:
    """A new batch id: ``vb_`` + 16 hex characters."""
    return "vb_" + uuid.uuid4().hex[:16]


@attrs.frozen
class NewJob:
    """A job row to insert, unless its input (key) is already stored."""

    job_id: str
    provider: str
    profile: str
    kind: str
    key: str
    request_text: str
    handle_text: str
    #: What listings show of the media (``Media.describe``: masked, never decoded again).
    media: str | None = None
    #: The callback token hash to store with it, when it takes callbacks.
    token_hash: str | None = None


@attrs.frozen
class PlannedItem:
    """One input of a batch to record: its job, or the check's error."""

    seq: int
    input: str
    job: NewJob | None
    output: str | None = None
    error: str | None = None


@attrs.frozen
class Plan:
    """A whole batch to record in one transaction."""

    batch_id: str
    settings: BatchSettings
    items: Sequence[PlannedItem]


class BatchRows(BatchReads):
    """Batch reads and writes on one store."""

    #: How long a batch claim stays valid without renewal (seconds).
    LEASE_SECONDS = 60.0

    def __init__(self, store: Store) -> None:
        self._store = store
        self._db = store._db

    # --- recording -------------------------------------------------------------------

    def record(self, plan: Plan) -> int:
        """Write the batch, its items and their new jobs in one transaction; the number of
        jobs created (the others were already stored and are linked)."""
        store = self._store
        now = store.clock.time()

        def write(conn: Connection) -> int:
            conn.execute(
                "INSERT INTO batches (batch_id, created_at, updated_at, settings, total) "
                "VALUES (?, ?, ?, ?, ?)",
                (plan.batch_id, now, now, plan.settings.to_json(), len(plan.items)),
            )
            created = 0
            self._db.lock_keys(conn)
            for start in range(0, len(plan.items), CHUNK):
                chunk = plan.items[start : start + CHUNK]
                created += self._record_chunk(conn, plan.batch_id, chunk, now)
            return created

        return self._db.write(write)

    def _record_chunk(
        self, conn: Connection, batch_id: str, chunk: Sequence[PlannedItem], now: float
    ) -> int:
        jobs = [item.job for item in chunk if item.job is not None]
        existing = _stored_jobs(conn, jobs)
        chosen: dict[tuple[str, str, str], str] = {}  # key -> job id, inside this batch
        inserts: list[NewJob] = []
        superseded: list[str] = []
        rows: list[tuple[Any, ...]] = []
        for item in chunk:
            job = item.job
            job_id: str | None = None
            if job is not None:
                ident = (job.provider, job.profile, job.key)
                job_id = chosen.get(ident)
                if job_id is None:
                    stored = existing.get(ident)
                    if stored is not None and stored[1] not in ("failed", "cancelled"):
                        job_id = stored[0]  # the input is already a job: this item follows it
                    else:
                        if stored is not None:  # a failed input: a new attempt is a new job
                            superseded.append(stored[0])
                        inserts.append(job)
                        job_id = job.job_id
                    chosen[ident] = job_id
            state = ItemState.PENDING if item.error is None else ItemState.FAILED
            stage = None if item.error is None else Stage.CHECK.value
            rows.append(
                (batch_id, item.seq, item.input, job_id, state.value, stage, item.output,
                 item.error, now)
            )  # fmt: skip
        _supersede(conn, superseded, now)
        _insert_jobs(conn, batch_id, inserts, now)
        conn.executemany(
            "INSERT INTO batch_items (batch_id, seq, input, job_id, state, stage, output, "
            "error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return len(inserts)

    # --- claiming ----------------------------------------------------------------------

    def claim(self, batch_id: str) -> int:
        """Take the batch for this process (a dead or expired owner is taken over); returns
        how many runs it has had, this one included.

        Raises :class:`BatchBusyError` when another live process holds it. Items left
        marked as started by an earlier run go back to plain pending.
        """
        me = self._store.owner
        clock = self._store.clock

        def write(conn: Connection) -> str | int:
            now = clock.time()
            row = conn.execute(
                "SELECT owner, lease_until, runs FROM batches WHERE batch_id=?"  # noqa: S608
                + self._db.for_update,
                (batch_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no batch {batch_id!r} in the store", operation="lookup")
            owner = row["owner"]
            if owner and owner != me and owner_alive(owner) and (row["lease_until"] or 0) > now:
                return str(owner)
            conn.execute(
                "UPDATE batches SET owner=?, lease_until=?, updated_at=?, interrupted_at=NULL, "
                "runs=runs+1 WHERE batch_id=?",
                (me, now + self.LEASE_SECONDS, now, batch_id),
            )
            conn.execute(
                "UPDATE batch_items SET stage=NULL WHERE batch_id=? AND state='pending' "
                "AND stage IS NOT NULL",
                (batch_id,),
            )
            return int(row["runs"]) + 1

        holder = self._db.write(write)
        if isinstance(holder, str):
            pid = holder.split(":")[1] if holder.count(":") >= 2 else holder
            raise BatchBusyError(
                f"batch {batch_id} is being run by another process (pid {pid}, {holder}); "
                "wait for it to end or stop it, then resume",
                owner=holder,
                operation="resume",
            )
        return holder

    def renew(self, batch_id: str) -> None:
        """Extend this process's claim on the batch."""
        me, clock = self._store.owner, self._store.clock
        self._db.write(
            lambda conn: conn.execute(
                "UPDATE batches SET lease_until=? WHERE batch_id=? AND owner=?",
                (clock.time() + self.LEASE_SECONDS, batch_id, me),
            )
        )

    def release(self, batch_id: str, *, interrupted: bool) -> None:
        """Give the batch up (``interrupted``: stopped before it was finished)."""
        me, clock = self._store.owner, self._store.clock

        def write(conn: Connection) -> None:
            now = clock.time()
            conn.execute(
                "UPDATE batches SET owner=NULL, lease_until=NULL, updated_at=?, "
                "interrupted_at=CASE WHEN ? THEN ? ELSE interrupted_at END "
                "WHERE batch_id=? AND owner=?",
                (now, interrupted, now, batch_id, me),
            )
            # Items started but not finished are plain pending again.
            conn.execute(
                "UPDATE batch_items SET stage=NULL WHERE batch_id=? AND state='pending' "
                "AND stage IS NOT NULL",
                (batch_id,),
            )

        self._db.write(write)

    # --- items while running -----------------------------------------------------------

    def started(self, batch_id: str, seq: int) -> None:
        """The item's work began (it counts as running until it ends)."""
        now = self._store.clock.time()
        self._db.write(
            lambda conn: conn.execute(_STARTED, (Stage.SUBMIT.value, now, batch_id, seq))
        )

    def finished(
        self,
        batch_id: str,
        seq: int,
        *,
        state: ItemState,
        stage: Stage | None,
        error: str | None,
    ) -> None:
        """The item ended: done, failed (with the stage and the one-line error), or
        pending again (stopped)."""
        now = self._store.clock.time()

        def write(conn: Connection) -> None:
            conn.execute(
                "UPDATE batch_items SET state=?, stage=?, error=?, updated_at=? "
                "WHERE batch_id=? AND seq=?",
                (state.value, None if stage is None else stage.value, error, now, batch_id, seq),
            )
            conn.execute("UPDATE batches SET updated_at=? WHERE batch_id=?", (now, batch_id))

        self._db.write(write)

    def settled(self, batch_id: str, seq: int) -> None:
        """Nothing to do: this writes each mark at once (see :class:`InputSteps`)."""

    def mark_many(
        self,
        batch_id: str,
        started: Sequence[int],
        ended: Sequence[tuple[int, ItemState, Stage | None, str | None]],
    ) -> None:
        """:meth:`started` and :meth:`finished` of many items in one write (what
        :class:`~voxhub._batch_marks.GroupedMarks` collected)."""
        now = self._store.clock.time()

        def write(conn: Connection) -> None:
            if started:
                conn.executemany(
                    _STARTED, [(Stage.SUBMIT.value, now, batch_id, seq) for seq in started]
                )
            if ended:
                conn.executemany(
                    "UPDATE batch_items SET state=?, stage=?, error=?, updated_at=? "
                    "WHERE batch_id=? AND seq=?",
                    [(state.value, None if stage is None else stage.value, error, now,
                      batch_id, seq) for seq, state, stage, error in ended],
                )
                conn.execute("UPDATE batches SET updated_at=? WHERE batch_id=?", (now, batch_id))

        self._db.write(write)

    def relink(self, batch_id: str, seq: int, old_job: str, new: NewJob) -> str:
        """Supersede the item's failed job and record a new one for it, in one write;
        returns the new job's id (another item of the input may have made it first)."""
        store = self._store

        def write(conn: Connection) -> str:
            now = store.clock.time()
            self._db.lock_keys(conn)
            stored = _stored_jobs(conn, [new]).get((new.provider, new.profile, new.key))
            if stored is not None and stored[0] != old_job:
                job_id = stored[0]  # someone already made the new attempt
            else:
                _supersede(conn, [old_job], now)
                _insert_jobs(conn, batch_id, [new], now)
                job_id = new.job_id
            conn.execute(
                "UPDATE batch_items SET job_id=?, updated_at=? WHERE batch_id=? AND seq=?",
                (job_id, now, batch_id, seq),
            )
            return job_id

        return self._db.write(write)


#: An item's work began: never written over an item already done (a start written late).
_STARTED = (
    "UPDATE batch_items SET stage=?, error=NULL, updated_at=? "
    "WHERE batch_id=? AND seq=? AND state!='done'"
)


def mark_done(conn: Connection, batch_id: str, seq: int, now: float) -> None:
    """Item ``seq`` of ``batch_id`` is done (in the caller's transaction: the batch runner
    marks an input done in the same write as its job's result, see
    :meth:`voxhub.store.Store.set_final`)."""
    conn.execute(
        "UPDATE batch_items SET state='done', stage=NULL, error=NULL, updated_at=? "
        "WHERE batch_id=? AND seq=?",
        (now, batch_id, seq),
    )
    conn.execute("UPDATE batches SET updated_at=? WHERE batch_id=?", (now, batch_id))


def _stored_jobs(
    conn: Connection, jobs: Sequence[NewJob]
) -> dict[tuple[str, str, str], tuple[str, str | None]]:
    """``(provider, profile, key) -> (job id, shown state)`` of the jobs already stored
    for these inputs (read inside the write, so the answer holds until it commits)."""
    found: dict[tuple[str, str, str], tuple[str, str | None]] = {}
    by_profile: dict[tuple[str, str], list[str]] = {}
    for job in jobs:
        by_profile.setdefault((job.provider, job.profile), []).append(job.key)
    for (provider, profile), keys in by_profile.items():
        marks = ", ".join("?" * len(keys))
        rows = conn.execute(
            "SELECT job_id, idempotency_key, state, phase, error FROM jobs "  # noqa: S608
            f"WHERE provider=? AND profile=? AND idempotency_key IN ({marks})",
            (provider, profile, *keys),
        ).fetchall()
        for row in rows:
            state = row["state"]
            if state is None and row["error"] and row["phase"] == Phase.RECORDED:
                state = "failed"  # refused before it was sent: a new command tries afresh
            found[(provider, profile, row["idempotency_key"])] = (row["job_id"], state)
    return found


def _supersede(conn: Connection, job_ids: Sequence[str], now: float) -> None:
    """Free failed jobs' idempotency keys: their inputs run again as new jobs (as
    ``Store.supersede`` does, many at once)."""
    if not job_ids:
        return
    conn.executemany(
        "UPDATE jobs SET idempotency_key = idempotency_key || '#superseded:' || job_id, "
        "updated_at=? WHERE job_id=? AND idempotency_key NOT LIKE '%#superseded:%'",
        [(now, job_id) for job_id in job_ids],
    )
    conn.executemany(
        "INSERT INTO events (job_id, at, type, data) VALUES (?, ?, 'superseded', '{}')",
        [(job_id, now) for job_id in job_ids],
    )


def _insert_jobs(
    conn: Connection, batch_id: str, jobs: Sequence[NewJob], now: float
) -> None:
    """New jobs (phase ``recorded``) of the batch, their first event and callback tokens."""
    if not jobs:
        return
    conn.executemany(
        """INSERT INTO jobs (job_id, provider, profile, kind, idempotency_key, phase,
               request, handle, batch, created_at, updated_at, media)
           VALUES (?, ?, ?, ?, ?, 'recorded', ?, ?, ?, ?, ?, ?)""",
        [
            (j.job_id, j.provider, j.profile, j.kind, j.key, j.request_text, j.handle_text,
             batch_id, now, now, j.media)
            for j in jobs
        ],
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO events (job_id, at, type, data) VALUES (?, ?, 'recorded', ?)",
        [(j.job_id, now, dumps({"provider": j.provider, "batch": batch_id})) for j in jobs],
    )
    conn.executemany(
        "INSERT INTO callback_tokens (job_id, token_hash) VALUES (?, ?) "
        "ON CONFLICT (job_id) DO UPDATE SET token_hash=excluded.token_hash",
        [(j.job_id, j.token_hash) for j in jobs if j.token_hash is not None],
    )
