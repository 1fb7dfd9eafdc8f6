"""Batch throughput: short Rev.ai jobs through voxhub ``run_many`` vs the official ``rev-ai`` SDK.

The Rev.ai sandbox runs in its own process with ``processing_seconds=0``; each job
is a URL the sandbox never downloads (a placeholder transcript), so what is measured
is the clients. A job is: submit, wait until ``transcribed``, fetch the JSON
transcript. voxhub runs a batch with ``Orchestrator.run_many`` at concurrency 1, 8
and 32 (every job recorded in its SQLite store); the SDK does the same job with its
own methods (``submit_job_url`` with a ``source_config``, ``get_job_details`` until
transcribed, ``get_transcript_object``), one after another and from a thread pool
(one client per thread). Median of ``--repeats`` runs; the sandbox is reset between.

    python bench/throughput.py [--jobs 1000] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import SandboxProcess, median, table, timed, url


def voxhub_batch(sandbox: SandboxProcess, jobs: int, concurrency: int) -> None:
    from voxhub import Config, JobRequest, Orchestrator, PluginManager, RemoteUrl

    with tempfile.TemporaryDirectory() as tmp:
        orch = Orchestrator(store=Path(tmp) / "jobs.db", plugins=PluginManager.load(env={}),
                            config=Config.from_profiles({"revai": sandbox.settings}))
        try:
            requests = (JobRequest(provider="revai", media=RemoteUrl(url(i, "tp")))
                        for i in range(jobs))
            done = sum(o.ok for o in orch.run_many(requests, concurrency=concurrency))
        finally:
            orch.close_resources()
    assert done == jobs, f"{jobs - done} jobs failed"


def sdk_batch(sandbox: SandboxProcess, jobs: int, threads: int) -> None:
    from rev_ai.apiclient import RevAiAPIClient
    from rev_ai.models.customer_url_data import CustomerUrlData

    local = threading.local()

    def client() -> RevAiAPIClient:
        if not hasattr(local, "client"):
            local.client = RevAiAPIClient(sandbox.settings["token"], url=sandbox.base_url)
        return local.client

    def one(i: int) -> None:
        api = client()
        job = api.submit_job_url(source_config=CustomerUrlData(url(i, "tp")))
        while api.get_job_details(job.id).status.name.lower() != "transcribed":
            pass  # processing_seconds=0: done at the first look
        assert api.get_transcript_object(job.id).monologues

    if threads == 1:
        for i in range(jobs):
            one(i)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(one, range(jobs)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200 jobs, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.repeats = 200, 1

    def vox(c: int) -> Callable[[SandboxProcess], None]:
        return lambda s: voxhub_batch(s, args.jobs, c)

    def sdk(c: int) -> Callable[[SandboxProcess], None]:
        return lambda s: sdk_batch(s, args.jobs, c)

    variants: dict[str, Callable[[SandboxProcess], None]] = {
        **{f"voxhub run_many, concurrency {c}": vox(c) for c in (1, 8, 32)},
        "rev-ai SDK, sequential": sdk(1),
        **{f"rev-ai SDK, {c} threads": sdk(c) for c in (8, 32)},
    }

    seconds: dict[str, list[float]] = {name: [] for name in variants}
    requests: dict[str, float] = {}
    with SandboxProcess("revai", options=dict(processing_seconds=0, use_engine=False)) as sandbox:
        sdk_batch(sandbox, 5, 1)  # warm-up
        for _ in range(args.repeats):
            for name, run in variants.items():
                sandbox.reset()
                seconds[name].append(timed(lambda: run(sandbox)))  # noqa: B023
                requests[name] = sandbox.counters().get("requests", 0) / args.jobs

    rate = {name: args.jobs / median(values) for name, values in seconds.items()}
    sdk_seq = rate["rev-ai SDK, sequential"]
    rows = [[name, f"{requests[name]:.1f}", f"{median(seconds[name]):.2f}", f"{rate[name]:.0f}",
             f"{rate[name] / sdk_seq:.2f}x"] for name in variants]
    print(f"### Batch throughput ({args.jobs} short Rev.ai jobs, median of {args.repeats})\n")
    print(table(["client", "requests/job", "seconds", "jobs/s", "vs SDK sequential"], rows))
    print()
    for c_vox, c_sdk in ((1, "sequential"), (8, "8 threads"), (32, "32 threads")):
        a = rate[f"voxhub run_many, concurrency {c_vox}"]
        b = rate[f"rev-ai SDK, {c_sdk}"]
        print(f"- voxhub at concurrency {c_vox} / SDK {c_sdk}: {a / b:.2f}x")


if __name__ == "__main__":
    main()
