"""Item marks written in groups (voxhub._batch_marks), on a real store of either kind."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from voxhub import JobRequest, Orchestrator, RemoteUrl
from voxhub._batch_marks import GroupedMarks
from voxhub._batch_model import BatchSettings, ItemState, Stage
from voxhub._batch_rows import BatchRows, Plan, PlannedItem, new_batch_id
from voxhub.errors import StoreError
from voxhub.sandbox import RunningSandbox
from voxhub.store import Store


def _batch(target: Path | str) -> Iterator[tuple[Store, BatchRows, str]]:
    store = Store(target)
    rows = BatchRows(store)
    batch_id = new_batch_id()
    items = [PlannedItem(seq, f"in-{seq}.wav", None) for seq in range(1, 61)]
    rows.record(Plan(batch_id, BatchSettings(), items))
    yield store, rows, batch_id
    store.close()


@pytest.fixture
def batch(store_at: Path | str) -> Iterator[tuple[Store, BatchRows, str]]:
    """A batch of 60 inputs, on SQLite and on PostgreSQL."""
    yield from _batch(store_at)


@pytest.fixture
def sqlite_batch(tmp_path: Path) -> Iterator[tuple[Store, BatchRows, str]]:
    yield from _batch(tmp_path / "jobs.db")


def _item(rows: BatchRows, batch_id: str, seq: int) -> tuple[ItemState, Stage | None, str | None]:
    item = rows.item(batch_id, seq)
    assert item is not None
    return item.state, item.stage, item.error


def test_starts_and_successes_are_written_together_in_one_transaction(
    batch: tuple[Store, BatchRows, str],
) -> None:
    store, rows, batch_id = batch
    marks = GroupedMarks(rows, batch_id, delay=60.0)
    try:
        before = store.write_stats().transactions
        for seq in range(1, 51):
            marks.started(batch_id, seq)
        for seq in range(1, 41):
            marks.finished(batch_id, seq, state=ItemState.DONE, stage=None, error=None)
        # Nothing written yet; a success replaces its own start.
        assert store.write_stats().transactions == before
        assert marks.pending() == 50
        assert _item(rows, batch_id, 1) == (ItemState.PENDING, None, None)
        marks.flush()
        assert store.write_stats().transactions == before + 1
        assert marks.pending() == 0
        assert _item(rows, batch_id, 1) == (ItemState.DONE, None, None)
        assert _item(rows, batch_id, 45) == (ItemState.PENDING, Stage.SUBMIT, None)
        assert _item(rows, batch_id, 55) == (ItemState.PENDING, None, None)
    finally:
        marks.close()


def test_a_failure_is_written_at_once_after_the_marks_held_before_it(
    batch: tuple[Store, BatchRows, str],
) -> None:
    _store, rows, batch_id = batch
    marks = GroupedMarks(rows, batch_id, delay=60.0)
    try:
        marks.started(batch_id, 1)
        marks.started(batch_id, 2)
        marks.finished(batch_id, 2, state=ItemState.FAILED, stage=Stage.WAIT, error="boom")
        assert marks.pending() == 0
        assert _item(rows, batch_id, 1) == (ItemState.PENDING, Stage.SUBMIT, None)
        assert _item(rows, batch_id, 2) == (ItemState.FAILED, Stage.WAIT, "boom")
        marks.finished(batch_id, 1, state=ItemState.DONE, stage=None, error=None)
    finally:
        marks.close()  # writes what is left
    assert _item(rows, batch_id, 1) == (ItemState.DONE, None, None)


def test_the_background_thread_writes_after_the_delay(
    batch: tuple[Store, BatchRows, str],
) -> None:
    _store, rows, batch_id = batch
    marks = GroupedMarks(rows, batch_id, delay=0.05)
    try:
        marks.finished(batch_id, 7, state=ItemState.DONE, stage=None, error=None)
        deadline = time.monotonic() + 30
        while marks.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _item(rows, batch_id, 7) == (ItemState.DONE, None, None)
    finally:
        marks.close()


def test_marks_a_write_refused_are_kept_for_the_next(
    sqlite_batch: tuple[Store, BatchRows, str],
) -> None:
    store, rows, batch_id = sqlite_batch
    marks = GroupedMarks(rows, batch_id, delay=60.0)
    writer = store._db._writer  # type: ignore[attr-defined]
    try:
        marks.finished(batch_id, 3, state=ItemState.DONE, stage=None, error=None)
        marks.started(batch_id, 4)
        writer.connection_do(lambda conn: conn.execute("PRAGMA query_only=1"))
        with pytest.raises(StoreError, match="readonly"):
            marks.flush()
        assert marks.pending() == 2
        marks.started(batch_id, 3)  # newer than the held success: it wins
        writer.connection_do(lambda conn: conn.execute("PRAGMA query_only=0"))
        marks.flush()
    finally:
        marks.close()
    assert _item(rows, batch_id, 3) == (ItemState.PENDING, Stage.SUBMIT, None)
    assert _item(rows, batch_id, 4) == (ItemState.PENDING, Stage.SUBMIT, None)


def test_an_input_is_written_before_its_outcome_is_told(
    batch: tuple[Store, BatchRows, str],
) -> None:
    store, rows, batch_id = batch
    marks = GroupedMarks(rows, batch_id, delay=60.0)
    try:
        marks.finished(batch_id, 8, state=ItemState.DONE, stage=None, error=None)
        marks.started(batch_id, 9)
        before = store.write_stats().transactions
        marks.written(10)  # nothing held for it: nothing written
        assert store.write_stats().transactions == before
        marks.written(8)  # its mark and the others held, in one write
        assert store.write_stats().transactions == before + 1
        assert _item(rows, batch_id, 8) == (ItemState.DONE, None, None)
        assert _item(rows, batch_id, 9) == (ItemState.PENDING, Stage.SUBMIT, None)
    finally:
        marks.close()


def test_an_input_with_nothing_after_its_fetch_is_done_in_its_jobs_own_write(
    tmp_path: Path, echo: RunningSandbox, voxhub_orchestrator: Callable[..., Orchestrator],
) -> None:
    store = Store(tmp_path / "jobs.db")
    try:
        orch = voxhub_orchestrator({"echo": echo.settings()}, store=store)  # the real clock
        plain = [JobRequest("echo", media=RemoteUrl(f"http://x/plain-{i}.wav")) for i in range(4)]
        run = orch.run_many(plain, concurrency=2)
        assert all(outcome.ok for outcome in run)
        # The item's done and its job's result share one transaction (and its time).
        with sqlite3.connect(tmp_path / "jobs.db") as conn:
            rows = conn.execute(
                "SELECT i.state, i.stage, i.updated_at, j.updated_at FROM batch_items i "
                "JOIN jobs j ON j.job_id = i.job_id WHERE i.batch_id=?", (run.batch_id,)
            ).fetchall()
        assert len(rows) == 4
        assert all(state == "done" and stage is None and item_at == job_at
                   for state, stage, item_at, job_at in rows), rows
        # With an export after the fetch, done is its own mark, after the output is made.
        exported = [JobRequest("echo", media=RemoteUrl(f"http://x/txt-{i}.wav")) for i in range(2)]
        run = orch.run_many(exported, concurrency=2, format="txt", output_dir=str(tmp_path))
        assert all(outcome.ok for outcome in run)
        with sqlite3.connect(tmp_path / "jobs.db") as conn:
            rows = conn.execute(
                "SELECT i.state, i.updated_at > j.updated_at FROM batch_items i "
                "JOIN jobs j ON j.job_id = i.job_id WHERE i.batch_id=?", (run.batch_id,)
            ).fetchall()
        assert rows == [("done", 1), ("done", 1)]
    finally:
        store.close()
