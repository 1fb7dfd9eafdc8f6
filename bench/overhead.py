"""Orchestrator overhead: N Rev.ai job lifecycles through voxhub vs a hand-written urllib3 loop.

Both sides run the same jobs one after the other against the Rev.ai sandbox (its
own process, ``processing_seconds=0``, URL jobs answered with a placeholder) and
issue the same HTTP requests per job — submit ``POST /jobs``, one status
``GET /jobs/{id}``, then fetch ``GET /jobs/{id}`` + ``GET /jobs/{id}/transcript`` —
as the sandbox's counters confirm. voxhub adds what the bare loop lacks: the
SQLite job store (every job recorded before it is sent, each phase and status
change and the result written), validation, idempotency keys, structured logging,
retries and the transcript model. Median of ``--repeats`` runs.

    python bench/overhead.py [--jobs 200] [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import urllib3
from _common import SandboxProcess, median, table, timed, url


def voxhub_run(sandbox: SandboxProcess, jobs: int, store_dir: Path) -> None:
    from voxhub import Config, JobRequest, Orchestrator, PluginManager, RemoteUrl

    orch = Orchestrator(store=store_dir / "jobs.db", plugins=PluginManager.load(env={}),
                        config=Config.from_profiles({"revai": sandbox.settings}))
    try:
        for i in range(jobs):
            outcome = orch.run(JobRequest(provider="revai", media=RemoteUrl(url(i, "ovh"))))
            assert outcome.ok, outcome.error
    finally:
        orch.close_resources()


def bare_run(sandbox: SandboxProcess, jobs: int) -> None:
    """The same requests, written by hand: no store, no validation, no retries."""
    api = sandbox.base_url + "/speechtotext/v1"
    auth = {"Authorization": f"Bearer {sandbox.settings['token']}"}
    pool = urllib3.PoolManager(maxsize=4)
    try:
        for i in range(jobs):
            body = json.dumps({"source_config": {"url": url(i, "ovh")},
                               "metadata": f"bench:{i}"}).encode()
            job = json.loads(pool.request("POST", f"{api}/jobs", body=body, headers={
                **auth, "Content-Type": "application/json"}).data)
            while json.loads(pool.request("GET", f"{api}/jobs/{job['id']}",
                                          headers=auth).data)["status"] != "transcribed":
                pass
            transcript = json.loads(pool.request(
                "GET", f"{api}/jobs/{job['id']}/transcript",
                headers={**auth, "Accept": "application/vnd.rev.transcript.v1.0+json"}).data)
            assert transcript["monologues"]
    finally:
        pool.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="50 jobs, 3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.repeats = 50, 3

    variants = {"voxhub (store on disk)": Path(tempfile.gettempdir())}
    if Path("/dev/shm").is_dir():  # the tmpfs variant separates the cost of the disk
        variants["voxhub (store on tmpfs)"] = Path("/dev/shm")
    seconds: dict[str, list[float]] = {"hand-written urllib3": [], **{k: [] for k in variants}}
    per_job: dict[str, float] = {}
    with SandboxProcess("revai", options=dict(processing_seconds=0, use_engine=False)) as sandbox:
        bare_run(sandbox, 5)  # warm-up: imports, connections
        for _ in range(args.repeats):
            for name in seconds:
                sandbox.reset()
                if name in variants:
                    with tempfile.TemporaryDirectory(dir=variants[name]) as tmp:
                        seconds[name].append(timed(lambda: voxhub_run(
                            sandbox, args.jobs, Path(tmp))))
                else:
                    seconds[name].append(timed(lambda: bare_run(sandbox, args.jobs)))
                counts = sandbox.counters()
                per_job[name] = (counts.get("requests", 0)) / args.jobs

    bare = median(seconds["hand-written urllib3"])
    rows = []
    for name, values in seconds.items():
        m = median(values)
        rows.append([name, f"{per_job[name]:.1f}", f"{m:.2f}", f"{m / args.jobs * 1000:.2f}",
                     f"{args.jobs / m:.0f}", f"{m / bare:.2f}x"])
    print(f"### Orchestrator overhead ({args.jobs} sequential Rev.ai job lifecycles, "
          f"median of {args.repeats})\n")
    print(table(["client", "requests/job", "seconds", "ms/job", "jobs/s", "vs hand-written"],
                rows))
    disk = median(seconds["voxhub (store on disk)"])
    print(f"\n- voxhub costs {(disk - bare) / args.jobs * 1000:.2f} ms more per job than the "
          f"bare loop ({disk / bare:.2f}x), for the job store, validation, logging and retries.")


if __name__ == "__main__":
    main()
