"""Batch throughput: short Rev.ai jobs through voxhub ``run_many`` vs the official SDK.

All clients run against :class:`FakeRevai` (``_common.py``), a Rev.ai-shaped HTTP/1.1
server in its own process that keeps connections alive and answers at once, so
what is measured is the clients. A job is: submit, one status call (already
``transcribed``), fetch the JSON transcript. voxhub runs a batch with
``Orchestrator.run_many`` at concurrency 1, 8 and 32 (every job recorded in its
SQLite store); the rev-ai SDK (one client per thread) and a hand-written urllib3
loop do the same jobs from 1 and 8 threads. Median of ``--repeats`` runs.

For voxhub the store reports how long threads waited for its single writer
(``Store.write_stats``); "store wait" is that time over (threads x wall time). It also
says how many writes an input took, in how many transactions (writes that queue
together share one), and how long a transaction held the writer against the writing
thread's own CPU in it: the difference is time that thread waited for the GIL or a core.

``--latency MS`` makes the fake answer each request after MS milliseconds, as a
vendor's round trip would: the same batch as it runs against a real API, where the
threads mostly wait for the network.

    python bench/throughput.py [--jobs 1000] [--repeats 3] [--quick] [--latency MS]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import urllib3
from _common import FakeRevai, cpu_and_wall, median, table, url

#: Per concurrency, the writer's counters of the last voxhub run (printed after the table).
WRITER: dict[int, Any] = {}


def voxhub_batch(fake: FakeRevai, jobs: int, concurrency: int) -> tuple[float, float, float]:
    """``(CPU s, wall s, store wait share)`` of one ``run_many`` batch."""
    from voxhub import Config, JobRequest, Orchestrator, RemoteUrl
    from voxhub.plugins import PluginManager

    with tempfile.TemporaryDirectory() as tmp:
        orch = Orchestrator(store=Path(tmp) / "jobs.db", plugins=PluginManager.load(env={}),
                            config=Config.from_profiles({"revai": fake.settings}))
        try:
            warm = orch.run(JobRequest(provider="revai", media=RemoteUrl(url(-1, "tp"))))
            assert warm.ok, warm.error
            fake.reset()
            before = orch.store.write_stats()
            requests = (JobRequest(provider="revai", media=RemoteUrl(url(i, "tp")))
                        for i in range(jobs))
            done: list[int] = []
            cpu, wall = cpu_and_wall(lambda: done.append(sum(
                o.ok for o in orch.run_many(requests, concurrency=concurrency))))
            after = orch.store.write_stats()
            waited = after.wait_seconds - before.wait_seconds
            WRITER[concurrency] = (
                (after.writes - before.writes) / jobs,
                (after.transactions - before.transactions) / jobs,
                (after.held_seconds - before.held_seconds)
                / max(1, after.transactions - before.transactions),
                (after.cpu_seconds - before.cpu_seconds)
                / max(1, after.transactions - before.transactions),
            )
        finally:
            orch.close_resources()
    assert done == [jobs], f"{jobs - done[0]} jobs failed"
    return cpu, wall, waited / (concurrency * wall)


def threaded(jobs: int, threads: int, one: Callable[[int], None]) -> None:
    if threads == 1:
        for i in range(jobs):
            one(i)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(one, range(jobs)))


def sdk_batch(fake: FakeRevai, jobs: int, threads: int) -> tuple[float, float, float]:
    from rev_ai.apiclient import RevAiAPIClient
    from rev_ai.models.customer_url_data import CustomerUrlData

    local = threading.local()

    def one(i: int) -> None:
        if not hasattr(local, "client"):
            local.client = RevAiAPIClient(fake.token, url=fake.base_url)
        api = local.client
        job = api.submit_job_url(source_config=CustomerUrlData(url(i, "tp")))
        while api.get_job_details(job.id).status.name.lower() != "transcribed":
            pass  # the fake answers "transcribed" at the first look
        assert api.get_transcript_object(job.id).monologues

    one(-1)  # warm-up: imports
    fake.reset()
    cpu, wall = cpu_and_wall(lambda: threaded(jobs, threads, one))
    return cpu, wall, 0.0


def urllib3_batch(fake: FakeRevai, jobs: int, threads: int) -> tuple[float, float, float]:
    api = fake.base_url + "/speechtotext/v1"
    auth = {"Authorization": f"Bearer {fake.token}"}
    pool = urllib3.PoolManager(maxsize=threads)

    def one(i: int) -> None:
        body = json.dumps({"source_config": {"url": url(i, "tp")}}).encode()
        job = json.loads(pool.request("POST", f"{api}/jobs", body=body, headers={
            **auth, "Content-Type": "application/json"}).data)
        while json.loads(pool.request("GET", f"{api}/jobs/{job['id']}",
                                      headers=auth).data)["status"] != "transcribed":
            pass
        assert json.loads(pool.request("GET", f"{api}/jobs/{job['id']}/transcript",
                                       headers=auth).data)["monologues"]

    try:
        one(-1)
        fake.reset()
        cpu, wall = cpu_and_wall(lambda: threaded(jobs, threads, one))
    finally:
        pool.clear()
    return cpu, wall, 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="300 jobs, 1 repeat")
    parser.add_argument("--latency", type=float, default=0.0, metavar="MS",
                        help="the fake answers each request after MS milliseconds, as a "
                             "vendor's round trip would (default: at once)")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.repeats = 300, 1

    Runner = Callable[[FakeRevai], tuple[float, float, float]]

    def bind(fn: Callable[[FakeRevai, int, int], tuple[float, float, float]], n: int) -> Runner:
        return lambda fake: fn(fake, args.jobs, n)

    variants: dict[str, Runner] = {
        **{f"voxhub run_many, concurrency {c}": bind(voxhub_batch, c) for c in (1, 8, 32)},
        "rev-ai SDK, 1 thread": bind(sdk_batch, 1),
        "rev-ai SDK, 8 threads": bind(sdk_batch, 8),
        "hand-written urllib3, 1 thread": bind(urllib3_batch, 1),
        "hand-written urllib3, 8 threads": bind(urllib3_batch, 8),
    }
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    wall: dict[str, list[float]] = {name: [] for name in variants}
    wait: dict[str, list[float]] = {name: [] for name in variants}
    requests: dict[str, float] = {}
    with FakeRevai(latency=args.latency / 1000) as fake:
        for _ in range(args.repeats):
            for name, run in variants.items():
                c, w, share = run(fake)
                cpu[name].append(c)
                wall[name].append(w)
                wait[name].append(share)
                requests[name] = fake.counters().get("requests", 0) / args.jobs

    rate = {name: args.jobs / median(values) for name, values in wall.items()}
    spread = {n: f"{args.jobs / max(v):.0f}-{args.jobs / min(v):.0f}" for n, v in wall.items()}
    rows = [[name, f"{requests[name]:.1f}", f"{median(wall[name]):.2f}", f"{rate[name]:.0f}",
             spread[name],
             f"{median(cpu[name]) / args.jobs * 1000:.2f}",
             f"{median(wait[name]):.1%}" if name.startswith("voxhub") else "-"]
            for name in variants]
    answers = (f"after {args.latency:g} ms" if args.latency else "at once")
    print(f"### Batch throughput ({args.jobs} short Rev.ai jobs against a keep-alive fake "
          f"that answers {answers}, median of {args.repeats})\n")
    print(table(["client", "requests/job", "seconds", "jobs/s", "range", "CPU ms/job",
                 "store wait"],
                rows))
    one = rate["voxhub run_many, concurrency 1"]
    eight = rate["voxhub run_many, concurrency 8"]
    sdk8 = rate["rev-ai SDK, 8 threads"]
    print(f"\n- voxhub at concurrency 8 / rev-ai SDK with 8 threads: {eight / sdk8:.2f}x "
          "(target: at least 1x)")
    for c in (8, 32):
        print(f"- voxhub at concurrency {c} / concurrency 1: "
              f"{rate[f'voxhub run_many, concurrency {c}'] / one:.2f}x (target: at least 1x)")
    # The baselines' own scaling: on an instant server every client is CPU-bound, and
    # more Python threads only add GIL hand-offs to the same work.
    for client in ("rev-ai SDK", "hand-written urllib3"):
        print(f"- {client} with 8 threads / 1 thread: "
              f"{rate[f'{client}, 8 threads'] / rate[f'{client}, 1 thread']:.2f}x")
    share = median(wait["voxhub run_many, concurrency 8"])
    print(f"- at concurrency 8 threads waited for the store's writer {share:.1%} of their time "
          "(target: at most 5%)")
    for c, (writes, transactions, held, own) in sorted(WRITER.items()):
        print(f"- concurrency {c} (last run): {writes:.2f} writes per input in "
              f"{transactions:.2f} transactions; a transaction held the writer "
              f"{held * 1000:.3f} ms, {own * 1000:.3f} ms of it the writing thread's CPU")


if __name__ == "__main__":
    main()
