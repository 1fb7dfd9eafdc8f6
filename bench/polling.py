"""Polling cost: status requests per completed Rev.ai job, default waiting vs callbacks.

Rev.ai jobs that take ``D`` seconds (the sandbox's ``processing_seconds``, in its own
process) are run ``--jobs`` at a time with ``Orchestrator.run_many``:

* **polling**: the default :class:`~voxhub.WaitPolicy` (Rev.ai's hints: first poll
  after 2 s, x1.5 each time, at most 15 s apart);
* **callbacks**: the orchestrator gets ``callback_url=`` of voxhub's own receiver
  (``voxhub.callbacks.CallbackHandler`` + ``wsgi_app`` under werkzeug on loopback);
  Rev.ai's unsigned webhook is a hint, confirmed by one status call.

Status requests are counted by the sandbox per job: every ``GET /jobs/{id}`` is a status
call, because ``fetch`` reads the transcript only (the Rev.ai provider reuses the job
details its final status call read; the script checks that each job's transcript was
read once). "Noticed after" is how long after the job finished the client had its
result (wall time per job minus ``D``). Medians over the jobs.

    python bench/polling.py [--durations 3 10 30] [--jobs 8] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
import time
from pathlib import Path

from _common import SandboxProcess, median, table, url


def run_mode(duration: float, jobs: int, callbacks: bool) -> tuple[list[float], list[float]]:
    """Status requests and "noticed after" seconds, per job."""
    from voxhub import Config, JobRequest, Orchestrator, PluginManager, RemoteUrl
    from voxhub.callbacks import CallbackHandler, wsgi_app
    from werkzeug.serving import make_server

    with SandboxProcess("revai", options=dict(processing_seconds=duration, use_engine=False,
                        callback_schedule=(0.2, 0.5, 1.0, 2.0))) as sandbox, \
            tempfile.TemporaryDirectory() as tmp:
        holder: dict[str, Orchestrator] = {}
        server = make_server("127.0.0.1", 0, lambda e, s: wsgi_app(
            CallbackHandler(holder["orch"]))(e, s), threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        thread.start()
        orch = Orchestrator(store=Path(tmp) / "jobs.db", plugins=PluginManager.load(env={}),
                            config=Config.from_profiles({"revai": sandbox.settings}),
                            callback_url=f"http://127.0.0.1:{server.server_port}")
        holder["orch"] = orch
        started = time.monotonic()
        noticed: list[float] = []
        try:
            requests = [JobRequest(provider="revai", media=RemoteUrl(url(i, "poll")))
                        for i in range(jobs)]
            for outcome in orch.run_many(requests, concurrency=jobs, callback=callbacks):
                assert outcome.ok, outcome.error
                noticed.append(time.monotonic() - started - duration)
            counters = sandbox.counters()
            paths = [f"GET /speechtotext/v1/jobs/{r.handle.vendor_ids['job']}"
                     for r in orch.store.jobs()]
            # Each job's transcript read once, by fetch; its other GETs are status calls.
            assert all(counters.get(f"{path}/transcript", 0) == 1 for path in paths), counters
            statuses = [counters.get(path, 0) for path in paths]
        finally:
            orch.close_resources()
            server.shutdown()
            server.server_close()
    return [float(s) for s in statuses], noticed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[3.0, 10.0, 30.0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="jobs of 3 and 10 s only")
    args = parser.parse_args()
    if args.quick:
        args.durations = [3.0, 10.0]
    # werkzeug's access log would print every callback URL (each carries a job's token).
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    rows = []
    for duration in args.durations:
        results: dict[str, tuple[list[float], list[float]]] = {}
        # Both modes at once: they use separate sandboxes and stores, and mostly sleep.
        threads = [threading.Thread(
            target=lambda mode=mode, out=results, d=duration: out.__setitem__(
                mode, run_mode(d, args.jobs, mode == "callbacks")))
            for mode in ("polling", "callbacks")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for mode in ("polling", "callbacks"):
            statuses, noticed = results[mode]
            rows.append([f"{duration:g} s", mode, f"{median(statuses):g}",
                         f"{max(statuses):g}", f"{median(noticed):.2f}"])
    print(f"### Polling cost ({args.jobs} concurrent Rev.ai jobs per row, medians per job)\n")
    print(table(["job length", "waiting by", "status requests/job", "max", "noticed after (s)"],
                rows, align="llrrr"))


if __name__ == "__main__":
    main()
