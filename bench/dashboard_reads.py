"""The dashboard's reads of one batch of 100,000 inputs, before and after they moved to SQL.

Issue 17 (the dashboard on both stores). The batch is recorded by ``record_batch`` (the
real schema and job rows), then 90% of its items are marked finished over an hour and
its jobs succeeded, by two ``UPDATE`` statements; every 100th input runs on ``revai``,
the others on ``echo``. Timed, median of ``--repeats`` runs each, in one process:

* **provider filter**: page 10 and the last page of the ``revai`` inputs. Before: each
  item streamed in order and its job row read, until the page is full (the dashboard's
  first version). After: :meth:`BatchReads.item_jobs`, one ``JOIN`` paged in SQL.
* **a page without filter**: page 1,000. Before: the items' page, then each of its 50
  job rows read one by one. After: the same ``JOIN``.
* **chart and provider table** of a running batch, read on every poll. Before: every job
  of the batch from the listing, counted in Python. After: ``COUNT``/``MIN``/``MAX``,
  one ``GROUP BY`` of finish times in buckets, one ``GROUP BY`` of jobs per provider.

Both versions' answers are compared before timing. ``--postgres`` runs the same on a
throwaway PostgreSQL server (``voxhub.pg_server``) as well.

    python bench/dashboard_reads.py [--items 100000] [--repeats 5] [--postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _common import median, table
from voxhub import JobRequest, Orchestrator, RemoteUrl
from voxhub.batches import BatchInfo
from voxhub.clock import FakeClock
from voxhub.config import Config
from voxhub.dashboard import views
from voxhub.listing import JobFilter

PROFILES = {
    "echo": {"api_key": "echo-key-0123456789", "base_url": "http://127.0.0.1:9"},
    "revai": {"token": "revai-token", "base_url": "http://127.0.0.1:9"},
}


def build(store: str | Path, items: int) -> tuple[Orchestrator, str]:
    """A recorded batch of ``items`` inputs, 90% finished over an hour."""
    start = time.time() - 3600.0
    orch = Orchestrator(store=store, config=Config.from_profiles(PROFILES),
                        clock=FakeClock(start=start))  # fmt: skip
    requests = [
        JobRequest(provider="revai" if i % 100 == 99 else "echo",
                   media=RemoteUrl(f"http://media.example/in-{i}.wav"))
        for i in range(items)
    ]  # fmt: skip
    batch_id = orch.record_batch(requests).batch_id
    finished = int(items * 0.9)
    step = 3600.0 / finished

    def write(conn: Any) -> None:
        conn.execute(
            "UPDATE batch_items SET state='done', updated_at=? + seq * ? "
            "WHERE batch_id=? AND seq<=?",
            (start, step, batch_id, finished),
        )
        conn.execute(
            "UPDATE jobs SET phase='submitted', state='succeeded', updated_at=created_at + 5 "
            "WHERE job_id IN (SELECT job_id FROM batch_items WHERE batch_id=? AND seq<=?)",
            (batch_id, finished),
        )

    orch.store._db.write(write)  # a bench fills its store directly
    return orch, batch_id


# --- the dashboard's first version (the baseline) ----------------------------------------


def old_provider_page(orch: Orchestrator, batch_id: str, provider: str, page: int) -> list[int]:
    offset, shown = (page - 1) * views.PAGE, []
    matched = 0
    for item in orch.batch_items(batch_id):
        if item.job_id is None:
            continue
        row = orch.store.listing.row(item.job_id)
        if row is None or row.provider != provider:
            continue
        matched += 1
        if matched > offset:
            shown.append(item.seq)
            if len(shown) == views.PAGE:
                break
    return shown


def old_plain_page(orch: Orchestrator, batch_id: str, page: int) -> list[int]:
    items = list(orch.batch_items(batch_id, limit=views.PAGE, offset=(page - 1) * views.PAGE))
    for item in items:
        if item.job_id is not None:
            orch.store.listing.row(item.job_id)
    return [i.seq for i in items]


def old_chart(orch: Orchestrator, info: BatchInfo) -> tuple[int, dict[str, dict[str, int]]]:
    finished: list[float] = []
    providers: dict[str, dict[str, int]] = {}
    for row in orch.store.listing.rows(JobFilter(batch=info.batch_id)):
        tally = providers.setdefault(row.provider, {})
        tally[row.state] = tally.get(row.state, 0) + 1
        if row.state in views.FINISHED_STATES:
            finished.append(row.updated_at)
    finished.sort()
    return len(finished), providers


# --- after ------------------------------------------------------------------------------


def new_page(orch: Orchestrator, info: BatchInfo, provider: str | None, page: int) -> list[int]:
    data = views.batch_page(orch, info, state=None, provider=provider, page=page, now=time.time())
    return [row["seq"] for row in data["items"]]


def new_chart(orch: Orchestrator, info: BatchInfo) -> tuple[int, dict[str, dict[str, int]]]:
    data = views.Throughput(orch).of(info, time.time())  # a new one: nothing kept
    return sum(data["series"]["bars"]), data["providers"]


def timed(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return median(times) * 1000.0


def measure(name: str, store: str | Path, items: int, repeats: int) -> list[list[Any]]:
    t0 = time.perf_counter()
    orch, batch_id = build(store, items)
    print(f"{name}: {items:,} inputs recorded and finished in {time.perf_counter() - t0:.0f} s")
    try:
        info = orch.batch(batch_id)
        revai = items // 100
        last = (revai + views.PAGE - 1) // views.PAGE
        cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
            ("provider filter, page 10", lambda: old_provider_page(orch, batch_id, "revai", 10),
             lambda: new_page(orch, info, "revai", 10)),
            (f"provider filter, last page ({last})",
             lambda: old_provider_page(orch, batch_id, "revai", last),
             lambda: new_page(orch, info, "revai", last)),
            ("no filter, page 1,000", lambda: old_plain_page(orch, batch_id, 1000),
             lambda: new_page(orch, info, None, 1000)),
        ]  # fmt: skip
        # The chart compares what both count: finished jobs and finished items agree here.
        before, after = old_chart(orch, info), new_chart(orch, info)
        assert before == after, (before, after)
        cases.append(("chart + jobs per provider", lambda: old_chart(orch, info),
                      lambda: new_chart(orch, info)))  # fmt: skip
        rows = []
        for label, old, new in cases[:3]:
            assert old() == new(), label
        for label, old, new in cases:
            before_ms, after_ms = timed(old, repeats), timed(new, repeats)
            rows.append([name, label, f"{before_ms:,.1f}", f"{after_ms:,.1f}",
                         f"{before_ms / after_ms:,.0f}x"])  # fmt: skip
        return rows
    finally:
        orch.close_resources()


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    from voxhub.pg_server import PostgresServer

    server = PostgresServer.start()
    try:
        yield server.new_database()
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        rows += measure("SQLite", Path(folder) / "jobs.db", args.items, args.repeats)
        if args.postgres:
            import os

            os.environ["VOXHUB_STORE_KEY_FILE"] = str(Path(folder) / "store.key")
            with postgres_url() as url:
                rows += measure("PostgreSQL", url, args.items, args.repeats)
    print()
    headers = ["store", f"read ({args.items:,} inputs)", "before (ms)", "after (ms)", "speed-up"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
