"""Scale: sandbox jobs with real vendor processing time, one machine's threads vs Dask workers.

Every job is a job on a vendor's sandbox (its own process, loopback) that takes
``--processing`` seconds (2 s by default) at the "vendor": NHN by default, whose vendor
publishes no rate limit, or Rev.ai (``--provider revai``), whose declared limit of
10,000 submissions per 10 minutes (``ProviderInfo.limits``, kept in the shared store)
caps every worker together at ~16.7 submissions/s after a burst of 100: there the
batch measures the limit, not the cluster. The same batch runs:

* on a SQLite store, ``run_many`` with ``--threads`` threads in this process (the
  baseline: what one machine does today);
* on a PostgreSQL store (a throwaway server from :mod:`voxhub.pg_server`), the same
  threads in this process (the backend alone, no cluster);
* on the same PostgreSQL server with a Dask ``LocalCluster`` of 1, 2 and 4 worker
  processes (``--workers``), ``--threads`` threads each, ``run_many(executor=...)``
  with as many tasks out as the cluster has threads. The workers get the store's URL,
  its key file and the sandbox's credentials through their environment; the client
  sends tickets.

Reported per run: wall time, jobs/s, what share of the ideal rate that is (threads /
processing seconds: every thread always waiting on a vendor job), store statements
per job (the store's ``trace_sql`` hook, installed in the client and in every worker;
transaction control not counted), write transactions per job, store write time per
job (``Store.write_stats``: time inside write transactions plus time waiting for the
writer or a pooled connection, summed over every process), on PostgreSQL the server's
own statement time per job (``pg_stat_database.active_time``), and the store's size
per 1,000 jobs. The scaling ratio is jobs/s with 2 and 4 workers over 1 worker. Every
run checks that each input became exactly one vendor job and that every input
succeeded.

    python bench/scale.py [--jobs 2000] [--processing 2] [--threads 48] [--workers 1 2 4]
                          [--provider nhn|revai] [--pool-size N] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
from _common import SandboxProcess, table, url


@attrs.define
class Counts:
    """Store activity of one process (or the sum over several)."""

    statements: int = 0
    transactions: int = 0
    held: float = 0.0  # seconds inside write transactions, summed over threads
    waited: float = 0.0  # seconds waiting for the writer (SQLite) or a pooled connection

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.statements + other.statements,
            self.transactions + other.transactions,
            self.held + other.held,
            self.waited + other.waited,
        )


@attrs.frozen
class Result:
    name: str
    backend: str
    workers: int  # 0: threads in this process
    threads: int
    wall: float
    counts: Counts
    server_ms: float | None  # PostgreSQL's statement time in the database
    size: int  # bytes the store grew by
    created: int
    duplicates: int


_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


class Probe:
    """Counts a store's statements (through its trace hook) and reads its write stats."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._all = itertools.count()  # next() on a count is atomic under the GIL
        self._control = itertools.count()
        self._start = store.write_stats()
        store.trace_sql(self._seen)

    def _seen(self, sql: str) -> None:
        next(self._all)
        if sql.lstrip().upper().startswith(_CONTROL):
            next(self._control)

    def read(self) -> Counts:
        self._store.trace_sql(None)
        stats = self._store.write_stats()
        # count() objects say their next value in their repr: "count(N)".
        seen = int(repr(self._all)[6:-1]) - int(repr(self._control)[6:-1])
        return Counts(
            seen,
            stats.transactions - self._start.transactions,
            stats.held_seconds - self._start.held_seconds,
            stats.wait_seconds - self._start.wait_seconds,
        )


# --- the workers' side (functions run by ``Client.run``, pickled by value) -------------


def _worker_start(dask_worker: Any) -> str:
    """Build this worker's orchestrator (from its environment) and start counting."""
    from voxhub.distributed import worker_orchestrator

    orch = worker_orchestrator()
    dask_worker._voxhub_probe = Probe(orch.store)
    return str(orch.store.path)


def _worker_read(dask_worker: Any) -> tuple[int, int, float, float]:
    counts: Counts = dask_worker._voxhub_probe.read()
    return counts.statements, counts.transactions, counts.held, counts.waited


# --- runs --------------------------------------------------------------------------------

#: What each sandbox counts as a job created (and, where it tells, as a duplicate).
_CREATED = {"revai": "jobs.created", "nhn": "tasks.created"}


def _requests(provider: str, jobs: int, tag: str) -> Iterator[Any]:
    from voxhub import JobRequest, RemoteUrl

    return (JobRequest(provider=provider, media=RemoteUrl(url(i, tag))) for i in range(jobs))


def _client(store: Path | str, vendor: SandboxProcess) -> Any:
    from voxhub import Config, Orchestrator
    from voxhub.plugins import PluginManager

    return Orchestrator(store=store, plugins=PluginManager.load(env={}),
                        config=Config.from_profiles({vendor.provider: vendor.settings}))


def _batch(orch: Any, provider: str, jobs: int, tag: str, concurrency: int,
           executor: Executor | None) -> float:
    """Wall seconds of one batch; every input must succeed."""
    started = time.perf_counter()
    failed = [o for o in orch.run_many(_requests(provider, jobs, tag), concurrency=concurrency,
                                       executor=executor) if not o.ok]
    wall = time.perf_counter() - started
    if failed:
        raise SystemExit(f"{len(failed)} of {jobs} jobs failed, e.g. {failed[0].error}")
    return wall


def _vendor_delta(vendor: SandboxProcess, before: dict[str, int], jobs: int) -> tuple[int, int]:
    """``(vendor jobs created, duplicates)`` since ``before``: every input succeeded, so
    each made at least one vendor job, and any beyond ``jobs`` is a duplicate."""
    after = vendor.counters()
    name = _CREATED[vendor.provider]
    created = after.get(name, 0) - before.get(name, 0)
    told = after.get("jobs.duplicates", 0) - before.get("jobs.duplicates", 0)
    return created, max(told, created - jobs)


def _file_size(path: Path) -> int:
    """A SQLite store's size as its readers see it (pages written to the WAL included)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        return int(pages) * int(conn.execute("PRAGMA page_size").fetchone()[0])


def run_threads(name: str, store: Path | str, vendor: SandboxProcess, jobs: int,
                threads: int, server: PgStats | None) -> Result:
    orch = _client(store, vendor)
    try:
        # Warm-up: imports, plugins, connections.
        list(orch.run_many(_requests(vendor.provider, 2, f"warm-{name}"), concurrency=2))
        before = vendor.counters()
        mark = server.mark() if server else (0.0, 0)
        size = mark[1] if server else _file_size(Path(store))
        probe = Probe(orch.store)
        wall = _batch(orch, vendor.provider, jobs, name, threads, None)
        counts = probe.read()
    finally:
        orch.close_resources()
        orch.store.close()
    created, duplicates = _vendor_delta(vendor, before, jobs)
    if server:
        server_ms, grown = server.since(mark)
        backend = "postgresql"
    else:
        server_ms, grown = None, _file_size(Path(store)) - size
        backend = "sqlite"
    return Result(name, backend, 0, threads, wall, counts, server_ms, grown, created, duplicates)


def run_dask(name: str, url_: str, vendor: SandboxProcess, jobs: int, workers: int,
             threads: int, env: dict[str, str], server: PgStats) -> Result:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                           dashboard_address=":0", env=env)
    client = Client(cluster)
    orch = _client(url_, vendor)
    try:
        stores = set(client.run(_worker_start).values())
        assert len(stores) == 1, stores
        executor = client.get_executor(pure=False)
        # Warm-up: every worker's plugins and connections, then count from here.
        list(orch.run_many(_requests(vendor.provider, workers * 2, f"warm-{name}"),
                           executor=executor, concurrency=workers * 2))
        client.run(_worker_read)
        client.run(_worker_start)
        before = vendor.counters()
        mark = server.mark()
        probe = Probe(orch.store)
        wall = _batch(orch, vendor.provider, jobs, name, workers * threads, executor)
        counts = probe.read()
        for statements, transactions, held, waited in client.run(_worker_read).values():
            counts = counts + Counts(statements, transactions, held, waited)
    finally:
        orch.close_resources()
        orch.store.close()
        client.close()
        cluster.close()
    created, duplicates = _vendor_delta(vendor, before, jobs)
    server_ms, grown = server.since(mark)
    return Result(name, "postgresql", workers, threads, wall, counts, server_ms, grown,
                  created, duplicates)


class PgStats:
    """The PostgreSQL server's statement time in one database (``active_time``, ms) and
    the database's size.

    Backends report their time as they go and when they exit; :meth:`since` waits until
    the figure has not moved for a second (the workers' connections have closed by then).
    """

    def __init__(self, url_: str) -> None:
        self._url = url_

    def mark(self) -> tuple[float, int]:
        import psycopg

        with psycopg.connect(self._url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT active_time, pg_database_size(datname) FROM pg_stat_database "
                "WHERE datname = current_database()").fetchone()
        assert row is not None
        return float(row[0] or 0.0), int(row[1])

    def since(self, mark: tuple[float, int]) -> tuple[float, int]:
        """``(server ms, bytes grown)`` since ``mark``."""
        last, now = (-1.0, 0), self.mark()
        for _ in range(20):
            if now[0] == last[0]:
                break
            time.sleep(1.0)
            last, now = now, self.mark()
        return now[0] - mark[0], now[1] - mark[1]


@contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--processing", type=float, default=2.0,
                        help="seconds each job takes at the vendor")
    parser.add_argument("--threads", type=int, default=48,
                        help="threads of this process, and of each Dask worker")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--provider", choices=sorted(_CREATED), default="nhn")
    parser.add_argument("--pool-size", type=int, default=None,
                        help="VOXHUB_STORE_POOL_SIZE (default: voxhub's, 10)")
    parser.add_argument("--quick", action="store_true", help="300 jobs")
    args = parser.parse_args()
    if args.quick:
        args.jobs = 300
    if 1 not in args.workers:
        parser.error("--workers must include 1 (the scaling ratio's base)")
    for key in [k for k in os.environ if k.startswith("VOXHUB_")]:
        del os.environ[key]  # the developer's store or config must not reach the workers

    from voxhub._postgres import close_all
    from voxhub.pg_server import PostgresServer

    options: dict[str, Any] = {"processing_seconds": args.processing}
    if args.provider == "revai":
        options["use_engine"] = False  # the placeholder text: no speech engine in the way
    load_before = os.getloadavg()
    results: list[Result] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="voxhub-scale-") as tmp_, SandboxProcess(
        args.provider, options=options
    ) as vendor:
        tmp = Path(tmp_)
        pool = {} if args.pool_size is None else {"VOXHUB_STORE_POOL_SIZE": str(args.pool_size)}
        common = {"XDG_CONFIG_HOME": str(tmp / "config"), "XDG_DATA_HOME": str(tmp / "data"),
                  "VOXHUB_STORE_KEY_FILE": str(tmp / "store.key"), **pool}
        with _env(**common):
            say(f"sqlite, {args.threads} threads")
            results.append(run_threads("sqlite-threads", tmp / "jobs.db", vendor, args.jobs,
                                       args.threads, None))
            server = PostgresServer.start()
            try:
                db = server.new_database()
                say(f"postgresql, {args.threads} threads")
                results.append(run_threads("pg-threads", db, vendor, args.jobs, args.threads,
                                           PgStats(db)))
                close_all()
                for n in sorted(args.workers):
                    db = server.new_database()
                    env = {**common, "VOXHUB_STORE": db, **vendor.env()}
                    say(f"postgresql, {n} Dask worker processes")
                    results.append(run_dask(f"pg-dask-{n}", db, vendor, args.jobs, n,
                                            args.threads, env, PgStats(db)))
                    close_all()
            finally:
                close_all()
                server.stop()
    report(args, results, load_before, time.monotonic() - started)


def say(text: str) -> None:
    print(f"[scale] {text}", file=sys.stderr, flush=True)


def report(args: argparse.Namespace, results: list[Result],
           load_before: tuple[float, float, float], seconds: float) -> None:
    base = next(r for r in results if r.workers == 1)
    rows = []
    for r in results:
        rate = args.jobs / r.wall
        ideal = (r.threads * max(r.workers, 1)) / args.processing
        how = f"{r.threads} threads" if r.workers == 0 else (
            f"Dask, {r.workers} worker{'s' if r.workers > 1 else ''} x {r.threads} threads")
        per_job = 1000 / args.jobs  # seconds summed over the batch -> ms per job
        rows.append([
            r.backend, how, f"{r.wall:.1f}", f"{rate:.1f}", f"{rate / ideal:.0%}",
            f"{r.counts.statements / args.jobs:.1f}", f"{r.counts.transactions / args.jobs:.1f}",
            f"{(r.counts.held + r.counts.waited) * per_job:.1f}",
            f"{r.counts.waited * per_job:.1f}",
            "-" if r.server_ms is None else f"{r.server_ms / args.jobs:.2f}",
            f"{r.size / args.jobs / 1024:.1f}",
            f"{r.created}/{r.duplicates}",
            f"{rate / (args.jobs / base.wall):.2f}x" if r.workers else "-",
        ])
    pool = args.pool_size or "default (10)"
    vendor = {"nhn": "NHN", "revai": "Rev.ai"}[args.provider]
    print(f"### {args.jobs} {vendor} sandbox jobs of {args.processing:g} s each "
          f"({os.cpu_count()} cores, store pool size {pool})\n")
    print(table(["store", "executor", "seconds", "jobs/s", "of ideal", "statements/job",
                 "write tx/job", "store write ms/job", "of which waiting", "server ms/job",
                 "store KB/job", "created/duplicates", "vs 1 worker"], rows, "ll" + "r" * 11))
    threads = next(r for r in results if r.backend == "sqlite")
    pg = next(r for r in results if r.backend == "postgresql" and r.workers == 0)
    print(f"\n- PostgreSQL / SQLite, {args.threads} threads in one process: "
          f"{threads.wall / pg.wall:.2f}x jobs/s")
    for r in results:
        if r.workers > 1:
            print(f"- {r.workers} workers / 1 worker: {base.wall / r.wall:.2f}x jobs/s "
                  f"(ideal {r.workers}x)")
    after = os.getloadavg()
    print(f"- load average before / after: {load_before[0]:.1f} / {after[0]:.1f}; "
          f"{seconds / 60:.1f} min in all")


if __name__ == "__main__":
    main()
