"""The dashboard's SQL reads, on both store backends: a page of items joined with their
jobs, finish times counted in buckets, jobs per provider; each checked against the same
figures worked out in Python from the store's plain reads."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from voxhub import JobRequest, Orchestrator, RemoteUrl
from voxhub._batch_rows import BatchRows
from voxhub.batches import ItemState, Stage
from voxhub.clock import FakeClock
from voxhub.config import Config
from voxhub.listing import JobFilter

START = 1000.0
WIDTH = 0.5
# Finish times as (seconds - START) / WIDTH: whole numbers, exact halves (where a cast
# to an integer rounds on PostgreSQL and truncates on SQLite), and below the start.
FINISHED = {1: 0.0, 2: 1.0, 3: 2.5, 4: 3.5, 5: 3.48, 6: -0.5, 7: -1.5, 8: 7.0}


@pytest.fixture
def batch(store_at: Path | str) -> Iterator[tuple[Orchestrator, str]]:
    """A batch of 12 inputs on two providers (recorded, never sent), 8 of them finished
    at the times of :data:`FINISHED`, the store's clock set for each."""
    clock = FakeClock(start=START)
    profiles = {
        "echo": {"api_key": "echo-key-0123456789", "base_url": "http://127.0.0.1:9"},
        "revai": {"token": "revai-token", "base_url": "http://127.0.0.1:9"},
    }
    orch = Orchestrator(store=store_at, config=Config.from_profiles(profiles), clock=clock)
    requests = [
        JobRequest(provider="revai" if i % 3 == 0 else "echo",
                   media=RemoteUrl(f"http://media.example/{i}.wav"))
        for i in range(12)
    ]  # fmt: skip
    batch_id = orch.record_batch(requests).batch_id
    rows = BatchRows(orch.store)
    for seq, x in FINISHED.items():
        clock.advance(START + x * WIDTH - clock.time())
        state = ItemState.FAILED if seq == 8 else ItemState.DONE
        error = "boom" if seq == 8 else None
        rows.finished(batch_id, seq, state=state, stage=Stage.WAIT if error else None, error=error)
    try:
        yield orch, batch_id
    finally:
        orch.close_resources()


def test_finish_times_are_counted_in_buckets_as_python_floors_them(
    batch: tuple[Orchestrator, str],
) -> None:
    orch, batch_id = batch
    reads = BatchRows(orch.store)
    assert reads.finished_span(batch_id) == (8, START - 1.5 * WIDTH, START + 7.0 * WIDTH)
    since = START + 1.0 * WIDTH
    buckets, recent = reads.finished_buckets(batch_id, START, WIDTH, since)
    expected: dict[int, int] = {}
    for x in FINISHED.values():
        index = math.floor((START + x * WIDTH - START) / WIDTH)
        expected[index] = expected.get(index, 0) + 1
    assert buckets == expected == {0: 1, 1: 1, 2: 1, 3: 2, -1: 1, -2: 1, 7: 1}
    assert recent == sum(1 for x in FINISHED.values() if x >= 1.0) == 5
    # No item finished: no buckets, nothing recent.
    assert reads.finished_buckets("vb_none", START, WIDTH, since) == ({}, 0)
    assert reads.finished_span("vb_none") == (0, None, None)


def test_a_page_of_items_joins_their_jobs_filtered_by_state_and_provider(
    batch: tuple[Orchestrator, str],
) -> None:
    orch, batch_id = batch
    reads = BatchRows(orch.store)
    items = list(orch.batch_items(batch_id))
    jobs = {i.job_id: orch.store.listing.row(i.job_id) for i in items if i.job_id}
    for state in (None, ItemState.DONE, ItemState.PENDING):
        for provider in (None, "echo", "revai", "nobody"):
            wanted = [
                i for i in items
                if (state is None or i.state == state)
                and (provider is None or (i.job_id and jobs[i.job_id].provider == provider))
            ]  # fmt: skip
            for offset, limit in ((0, 50), (1, 2), (3, 50)):
                page = reads.item_jobs(
                    batch_id, state=state, provider=provider, limit=limit, offset=offset
                )
                assert [p.item for p in page] == wanted[offset : offset + limit]
                for found in page:
                    row = jobs[found.item.job_id]
                    assert (found.provider, found.created_at, found.updated_at) == (
                        row.provider, row.created_at, row.updated_at)  # fmt: skip
    tally: dict[str, dict[str, int]] = {}
    for row in orch.store.listing.rows(JobFilter(batch=batch_id)):
        by = tally.setdefault(row.provider, {})
        by[row.state] = by.get(row.state, 0) + 1
    assert reads.provider_states(batch_id) == tally == {"echo": {"recorded": 8},
                                                         "revai": {"recorded": 4}}  # fmt: skip
