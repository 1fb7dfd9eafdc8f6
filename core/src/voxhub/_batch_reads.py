"""The batch store's reading side: counts, listings and pages of items, in SQL.

Listings and counts are paged and filtered in SQL on the database's reader (counts by
``GROUP BY`` on the ``(batch_id, state, stage)`` index), so a batch of 100,000
inputs is never loaded whole. The dashboard's reads (items with their jobs' providers,
finish times in buckets, jobs per provider) are single portable statements too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs

from ._batch_model import BatchCounts, BatchInfo, BatchSettings, ItemRow, ItemState, Stage
from ._records import owner_alive
from .errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from ._database import Database, Row
    from .store import Store

__all__ = ["CHUNK", "BatchReads", "ItemJob", "PendingItem"]

#: Rows per ``executemany`` call and per page read.
CHUNK = 500

_ITEM_COLUMNS = "seq, input, job_id, state, stage, output, error"
# The state a job shows in listings (as ``JobRecord.state``, with closed jobs shown closed).
_JOB_STATE = (
    "CASE WHEN j.phase='closed' THEN 'closed' WHEN j.state IS NOT NULL THEN j.state "
    "WHEN j.error IS NOT NULL AND j.phase!='sending' THEN 'failed' ELSE j.phase END"
)
_INFO_COLUMNS = (
    "batch_id, created_at, updated_at, settings, total, owner, lease_until, interrupted_at"
)


@attrs.frozen
class PendingItem:
    """An unfinished (or failed) item as the runner reads it."""

    seq: int
    input: str
    job_id: str | None
    state: ItemState
    stage: Stage | None
    output: str | None
    error: str | None


@attrs.frozen
class ItemJob:
    """An item with its job's provider and times (``None`` when it has no job)."""

    item: ItemRow
    provider: str | None
    created_at: float | None
    updated_at: float | None


class BatchReads:
    """Every read of :class:`voxhub._batch_rows.BatchRows` (which adds the writes)."""

    _store: Store
    _db: Database

    def pending_page(self, batch_id: str, after: int, limit: int = CHUNK) -> list[PendingItem]:
        """Items not done, in order, after sequence ``after``."""
        rows = (
            self._db.reader()
            .execute(
                f"SELECT {_ITEM_COLUMNS} FROM batch_items "  # noqa: S608 (constant columns)
                "WHERE batch_id=? AND seq>? AND state!='done' ORDER BY seq LIMIT ?",
                (batch_id, after, limit),
            )
            .fetchall()
        )
        return [_pending(r) for r in rows]

    def item(self, batch_id: str, seq: int) -> PendingItem | None:
        """One item, whatever its state; ``None`` if the batch has no such item."""
        row = (
            self._db.reader()
            .execute(
                f"SELECT {_ITEM_COLUMNS} FROM batch_items "  # noqa: S608 (constant columns)
                "WHERE batch_id=? AND seq=?",
                (batch_id, seq),
            )
            .fetchone()
        )
        return None if row is None else _pending(row)

    def holding(self, batch_id: str) -> tuple[str | None, BatchSettings] | None:
        """Who holds the batch's claim (``None``: nobody) and its settings, in one cheap
        read (no counts); ``None`` when the store has no such batch."""
        row = (
            self._db.reader()
            .execute("SELECT owner, settings FROM batches WHERE batch_id=?", (batch_id,))
            .fetchone()
        )
        if row is None:
            return None
        return row["owner"], BatchSettings.from_json(row["settings"])

    def counts(self, batch_id: str, total: int, alive: bool) -> BatchCounts:
        """Counts per state, by ``GROUP BY`` on the ``(batch_id, state, stage)`` index."""
        rows = (
            self._db.reader()
            .execute(
                "SELECT state, stage IS NOT NULL AS started, COUNT(*) FROM batch_items "
                "WHERE batch_id=? GROUP BY state, started",
                (batch_id,),
            )
            .fetchall()
        )
        by: dict[str, int] = {}
        running = 0
        for state, started, count in rows:
            by[state] = by.get(state, 0) + count
            if state == ItemState.PENDING and started and alive:
                running += count
        return BatchCounts(
            total=total,
            pending=by.get(ItemState.PENDING, 0),
            running=running,
            done=by.get(ItemState.DONE, 0),
            failed=by.get(ItemState.FAILED, 0),
        )

    def info(self, batch_id: str) -> BatchInfo:
        """The stored batch, by its id or by a name (``--batch NAME``) that labels exactly one
        batch; :class:`NotFoundError` if there is none, :class:`InvalidInputError` naming the
        ids when the name labels several."""
        query = f"SELECT {_INFO_COLUMNS} FROM batches WHERE batch_id=?"  # noqa: S608
        row = self._db.reader().execute(query, (batch_id,)).fetchone()
        if row is None:
            named = self.ids_named(batch_id)
            if len(named) > 1:
                shown = ", ".join(named[:5]) + (" ..." if len(named) > 5 else "")
                raise InvalidInputError(
                    f"{len(named)} batches are named {batch_id!r} ({shown}): give its id",
                    field="batch",
                )
            if named:
                row = self._db.reader().execute(query, (named[0],)).fetchone()
        if row is None:
            raise NotFoundError(
                f"no batch {batch_id!r} in the store {self._store.path}", operation="lookup"
            )
        return self._info(row)

    def infos(self, limit: int, offset: int) -> list[BatchInfo]:
        """Batches, newest first, one page."""
        rows = (
            self._db.reader()
            .execute(
                f"SELECT {_INFO_COLUMNS} FROM batches "  # noqa: S608
                "ORDER BY created_at DESC, batch_id LIMIT ? OFFSET ?",
                (max(0, int(limit)), max(0, int(offset))),
            )
            .fetchall()
        )
        return [self._info(r) for r in rows]

    def count(self) -> int:
        """How many batches are stored."""
        return int(self._db.reader().execute("SELECT COUNT(*) FROM batches").fetchone()[0])

    def superseded(self, job_id: str) -> bool:
        """Whether the job is an earlier attempt whose input now has a newer job."""
        row = (
            self._db.reader()
            .execute(
                "SELECT 1 FROM jobs WHERE job_id=? AND idempotency_key LIKE '%#superseded:%'",
                (job_id,),
            )
            .fetchone()
        )
        return row is not None

    def ids_named(self, name: str) -> list[str]:
        """The ids of batches labelled ``name``, oldest first."""
        rows = (
            self._db.reader()
            .execute(
                "SELECT batch_id FROM batches WHERE json_extract(settings, '$.name')=? "
                "ORDER BY created_at",
                (name,),
            )
            .fetchall()
        )
        return [r[0] for r in rows]

    def _info(self, row: Row) -> BatchInfo:
        settings = BatchSettings.from_json(row["settings"])
        owner = row["owner"]
        now = self._store.clock.time()
        alive = bool(owner) and owner_alive(owner) and (row["lease_until"] or 0) > now
        return BatchInfo(
            batch_id=row["batch_id"],
            name=settings.name,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            settings=settings,
            counts=self.counts(row["batch_id"], row["total"], alive),
            owner_alive=alive,
            interrupted_at=row["interrupted_at"],
        )

    def items(
        self,
        batch_id: str,
        *,
        state: ItemState | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[ItemRow]:
        """The batch's items in order, with their jobs' shown states; read a page at a
        time (so a 100,000-input batch streams)."""
        remaining = None if limit is None else max(0, int(limit))
        after = -1
        skip = max(0, int(offset))
        where = "i.batch_id=? AND i.seq>?" + (" AND i.state=?" if state is not None else "")
        sql = (
            f"SELECT i.seq, i.input, i.job_id, i.state, i.stage, i.output, i.error, "  # noqa: S608
            f"{_JOB_STATE} AS job_state FROM batch_items i LEFT JOIN jobs j "
            f"ON j.job_id=i.job_id WHERE {where} ORDER BY i.seq LIMIT ? OFFSET ?"
        )
        while remaining is None or remaining > 0:
            page = CHUNK if remaining is None else min(CHUNK, remaining)
            args: list[Any] = [batch_id, after]
            if state is not None:
                args.append(ItemState(state).value)
            rows = self._db.reader().execute(sql, (*args, page, skip)).fetchall()
            skip = 0  # the offset applies to the first page only
            for r in rows:
                yield _item_row(batch_id, r)
            if len(rows) < page:
                return
            after = rows[-1]["seq"]
            if remaining is not None:
                remaining -= len(rows)

    def item_jobs(
        self,
        batch_id: str,
        *,
        state: ItemState | None,
        provider: str | None,
        limit: int,
        offset: int,
    ) -> list[ItemJob]:
        """One page of the batch's items with their jobs' providers and times, filtered
        by item state and job provider: one ``JOIN``, however deep the page."""
        where = "i.batch_id=?"
        args: list[Any] = [batch_id]
        if state is not None:
            where += " AND i.state=?"
            args.append(ItemState(state).value)
        if provider is not None:
            where += " AND j.provider=?"  # items without a job have no provider: left out
            args.append(provider)
        sql = (
            f"SELECT i.seq, i.input, i.job_id, i.state, i.stage, i.output, i.error, "  # noqa: S608
            f"{_JOB_STATE} AS job_state, j.provider, j.created_at AS job_created, "
            f"j.updated_at AS job_updated FROM batch_items i LEFT JOIN jobs j "
            f"ON j.job_id=i.job_id WHERE {where} ORDER BY i.seq LIMIT ? OFFSET ?"
        )
        args += [max(0, int(limit)), max(0, int(offset))]
        rows = self._db.reader().execute(sql, args).fetchall()
        return [
            ItemJob(_item_row(batch_id, r), r["provider"], r["job_created"], r["job_updated"])
            for r in rows
        ]

    def finished_span(self, batch_id: str) -> tuple[int, float | None, float | None]:
        """How many items are finished (done or failed), and the first and last time one
        finished."""
        row = (
            self._db.reader()
            .execute(
                "SELECT COUNT(*), MIN(updated_at), MAX(updated_at) FROM batch_items "
                "WHERE batch_id=? AND state IN ('done', 'failed')",
                (batch_id,),
            )
            .fetchone()
        )
        return int(row[0]), row[1], row[2]

    def finished_buckets(
        self, batch_id: str, start: float, width: float, since: float
    ) -> tuple[dict[int, int], int]:
        """Finished items counted by interval (bucket ``floor((t - start) / width)``,
        unclamped), and how many finished at ``since`` or later: one ``GROUP BY``."""
        # floor() in portable SQL: CAST truncates on SQLite and rounds on PostgreSQL, so
        # step back one where the cast landed above the value.
        sql = (
            "SELECT b - CASE WHEN b > x THEN 1 ELSE 0 END, COUNT(*), "
            "SUM(CASE WHEN t >= ? THEN 1 ELSE 0 END) FROM (SELECT t, x, CAST(x AS BIGINT) AS b "
            "FROM (SELECT updated_at AS t, (updated_at - ?) / ? AS x FROM batch_items "
            "WHERE batch_id=? AND state IN ('done', 'failed')) AS f) AS g GROUP BY 1"
        )
        args = (float(since), float(start), float(width), batch_id)
        rows = self._db.reader().execute(sql, args).fetchall()
        return {int(r[0]): int(r[1]) for r in rows}, sum(int(r[2]) for r in rows)

    def provider_states(self, batch_id: str) -> dict[str, dict[str, int]]:
        """The batch's jobs (earlier attempts too) counted by provider and shown state:
        one ``GROUP BY`` on the ``jobs (batch, …)`` index."""
        rows = (
            self._db.reader()
            .execute(
                "SELECT provider, shown, COUNT(*) FROM jobs WHERE batch=? GROUP BY 1, 2",
                (batch_id,),
            )
            .fetchall()
        )
        tally: dict[str, dict[str, int]] = {}
        for provider, state, count in rows:
            tally.setdefault(provider, {})[state] = int(count)
        return tally


def _item_row(batch_id: str, r: Row) -> ItemRow:
    return ItemRow(
        batch_id=batch_id,
        seq=r["seq"],
        input=r["input"],
        job_id=r["job_id"],
        state=ItemState(r["state"]),
        stage=Stage(r["stage"]) if r["stage"] else None,
        output=r["output"],
        error=r["error"],
        job_state=r["job_state"],
    )


def _pending(row: Row) -> PendingItem:
    return PendingItem(
        seq=row["seq"],
        input=row["input"],
        job_id=row["job_id"],
        state=ItemState(row["state"]),
        stage=Stage(row["stage"]) if row["stage"] else None,
        output=row["output"],
        error=row["error"],
    )
