"""Issue 13, point 4: callbacks at scale, on one PostgreSQL store.

Two real ``voxhub callbacks serve`` processes share a PostgreSQL store; no load balancer:
the URL the vendor calls is a dispatcher in this test (a real HTTP server on loopback)
that hands each delivery to one receiver at random, or, for the replay case, the same
delivery to both receivers at the same instant. The vendor is the Tupu sandbox, whose
callbacks are signed (RSA) and retried. Waiters run in other processes: a small program
on the public API that reports each SQL statement it runs, and ``voxhub wait``.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import urllib3
from reliability_support import background_server, cli_env, voxhub_cli, wait_until
from voxhub import JobRequest, JobState, Orchestrator, StreamUrl
from voxhub._database import PostgresUrl
from voxhub.sandbox import RunningSandbox
from voxhub.store import Store
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

pytest.importorskip("voxhub_tupu", reason="these tests use the Tupu sandbox's signed callbacks")

#: A waiter in its own process, as ``voxhub wait`` builds it (config and store from the
#: environment), printing every SQL statement its store runs as it runs it.
WAITER = """
import json, sys
from voxhub import Orchestrator
orch = Orchestrator()
orch.store.trace_sql(lambda sql: print("sql", " ".join(sql.split())[:70], flush=True))
print("ready", flush=True)
status = orch.wait(sys.stdin.readline().strip(), timeout=60)
print("done", json.dumps({"state": status.state.value}), flush=True)
"""
#: What the store's event wait reads (``StoreReads.events``).
EVENTS_READ = "sql SELECT * FROM events WHERE job_id=?"
#: How long deliveries are held while the waiter waits on a quiet job. A waiter polling
#: the table would read it ~10 times a second; one woken by NOTIFY does not read it.
QUIET_SECONDS = 1.0

http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(10), maxsize=8)


class Dispatcher:
    """The vendor-facing URL: forwards each delivery to a receiver (no balancer: the test
    picks), and answers the vendor with what that receiver answered."""

    def __init__(self, seed: int) -> None:
        self.receivers: list[str] = []
        self.both = False
        self.gate = threading.Event()  # deliveries wait here until it is set
        self.records: list[tuple[str, bytes, list[int], list[int]]] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        request = Request(environ)
        body = request.get_data()
        self.gate.wait(30)
        with self._lock:
            targets = ([*range(len(self.receivers))] if self.both
                       else [self._rng.randrange(len(self.receivers))])
        answers = self.send(request.path, body, targets)
        with self._lock:
            self.records.append((request.path, body, targets, [a[0] for a in answers]))
        status, data, content_type = answers[0]
        return Response(data, status=status, content_type=content_type)(environ, start_response)

    def send(self, path: str, body: bytes, targets: list[int]) -> list[tuple[int, bytes, str]]:
        """POST one delivery to each target receiver, all at the same instant."""
        start = threading.Barrier(len(targets))
        answers: dict[int, tuple[int, bytes, str]] = {}

        def post(target: int) -> None:
            start.wait(10)
            resp = http.request("POST", self.receivers[target] + path, body=body,
                                headers={"Content-Type": "application/json"})
            answers[target] = (resp.status, resp.data, resp.headers.get("Content-Type", ""))

        threads = [threading.Thread(target=post, args=(t,)) for t in targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        return [answers[t] for t in targets]

    def for_job(self, job_id: str) -> list[tuple[str, bytes, list[int], list[int]]]:
        with self._lock:
            return [r for r in self.records if f"/callbacks/tupu/{job_id}/" in r[0]]


class Lines:
    """A child process's stdout lines, read as they come (by a thread)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        stdout = proc.stdout
        self._thread = threading.Thread(target=lambda: self.lines.extend(stdout), daemon=True)
        self._thread.start()

    def seen(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for line in list(self.lines))


@pytest.fixture
def tupu(voxhub_sandbox: Callable[..., RunningSandbox]) -> RunningSandbox:
    return voxhub_sandbox("tupu", slice_interval=0.05, end_callback_delay=0.05,
                          callback_schedule=(0.05, 0.1, 0.2, 0.4))


@pytest.fixture
def env(tmp_path: Path, voxhub_postgres_url: str, tupu: RunningSandbox) -> dict[str, str]:
    """The processes' environment: the shared store, Tupu's profile, this test's key."""
    Store(voxhub_postgres_url).close()  # the store's key is made once, by this process
    profile = {f"VOXHUB_TUPU_{k.upper()}": v for k, v in tupu.settings().items()}
    return cli_env(tmp_path, VOXHUB_STORE=voxhub_postgres_url, **profile)


@pytest.fixture
def dispatcher() -> Iterator[tuple[Dispatcher, str]]:
    front = Dispatcher(seed=13)
    with background_server(front) as url:
        yield front, url


def _spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture
def receivers(
    env: dict[str, str], dispatcher: tuple[Dispatcher, str]
) -> Iterator[list[subprocess.Popen[str]]]:
    """Two ``voxhub callbacks serve`` processes on the store, known to the dispatcher."""
    front, url = dispatcher
    procs = [_spawn([*voxhub_cli(), "callbacks", "serve", "--port", "0", "--public-url", url],
                    env) for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "no startup line"
            started = json.loads(line)
            # Every receiver names the shared store, its password masked.
            assert started["store"] == str(PostgresUrl(env["VOXHUB_STORE"])), started
            assert "***" in started["store"] and ":***@" not in env["VOXHUB_STORE"]
            front.receivers.append(started["listening"])
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.communicate(timeout=20)


def _streams(orch: Orchestrator, count: int) -> list[str]:
    requests = [JobRequest(provider="tupu", media=StreamUrl(f"rtmp://live.voxhub.invalid/app/{i}"),
                           options={"callback_rules": "all+end"}) for i in range(count)]
    return [handle.job_id for handle in orch.submit_many(requests)]


def _callbacks(store: Store, job_id: str) -> list[str]:
    """The digests of the job's stored callback events, in order."""
    return [e.data["_digest"] for e in store.events(job_id) if e.type == "callback"]


def _submitter(
    voxhub_orchestrator: Callable[..., Orchestrator], url: str, tupu: RunningSandbox, front: str
) -> Orchestrator:
    return voxhub_orchestrator({"tupu": tupu.settings()}, store=Store(url), callback_url=front)


def test_deliveries_spread_over_two_receivers_wake_waiters_in_other_processes(
    env: dict[str, str],
    dispatcher: tuple[Dispatcher, str],
    receivers: list[subprocess.Popen[str]],
    tupu: RunningSandbox,
    voxhub_postgres_url: str,
    voxhub_orchestrator: Callable[..., Orchestrator],
) -> None:
    front, front_url = dispatcher
    waiter = _spawn([sys.executable, "-c", WAITER], env)
    lines = Lines(waiter)
    try:
        assert wait_until(lambda: lines.seen("ready"), 60), lines.lines
        orch = _submitter(voxhub_orchestrator, voxhub_postgres_url, tupu, front_url)
        watched, other = _streams(orch, 2)
        cli = _spawn([*voxhub_cli(), "wait", other, "--timeout", "60"], env)
        assert waiter.stdin is not None
        waiter.stdin.write(watched + "\n")
        waiter.stdin.flush()
        # The waiter is waiting once it first reads the job's events; no delivery has
        # passed the dispatcher yet, so the job stays quiet for a while.
        assert wait_until(lambda: lines.seen(EVENTS_READ), 60), lines.lines
        before = len(lines.lines)
        time.sleep(QUIET_SECONDS)
        quiet = [line for line in lines.lines[before:] if line.startswith("sql")]
        front.gate.set()
        waiter.wait(60)
        out, err = cli.communicate(timeout=60)
    finally:
        front.gate.set()
        if waiter.poll() is None:
            waiter.kill()
        waiter.communicate(timeout=20)
    assert waiter.returncode == 0, lines.lines[-5:]
    assert lines.lines[-1].startswith("done") and '"succeeded"' in lines.lines[-1]
    assert cli.returncode == 0 and "succeeded" in out, err[-2000:]
    # Woken by NOTIFY: the idle wait read nothing (at most the listener's start-up look).
    assert len(quiet) <= 1, quiet
    reads = sum(line.startswith(EVENTS_READ) for line in lines.lines)
    assert reads <= 2 * len(orch.store.events(watched)) + 2, reads
    # Both receivers took deliveries; every delivery was acknowledged and stored once.
    assert {r[2][0] for r in front.records} == {0, 1}
    for job_id in (watched, other):
        delivered = front.for_job(job_id)
        assert delivered and all(r[3] == [200] for r in delivered)
        stored = _callbacks(orch.store, job_id)
        assert len(stored) == len(set(stored)) == len(delivered)
        status = orch.store.get(job_id).status
        assert status is not None and status.state is JobState.SUCCEEDED


def test_one_delivery_at_both_receivers_at_once_is_stored_once(
    dispatcher: tuple[Dispatcher, str],
    receivers: list[subprocess.Popen[str]],
    tupu: RunningSandbox,
    voxhub_postgres_url: str,
    voxhub_orchestrator: Callable[..., Orchestrator],
) -> None:
    front, front_url = dispatcher
    front.both = True
    front.gate.set()
    orch = _submitter(voxhub_orchestrator, voxhub_postgres_url, tupu, front_url)
    jobs = _streams(orch, 2)
    for job_id in jobs:
        assert orch.wait(job_id, timeout=60).state is JobState.SUCCEEDED
    assert wait_until(lambda: tupu.sandbox.counters.get("callbacks.delivered")
                      == tupu.sandbox.counters.get("callbacks.queued"), 30)
    for job_id in jobs:
        delivered = front.for_job(job_id)
        assert delivered and all(r[3] == [200, 200] for r in delivered)
        stored = _callbacks(orch.store, job_id)
        assert len(stored) == len(set(stored)) == len(delivered)
    # The vendor retries (and replays): every delivery again, to both at once, changes nothing.
    last = orch.store.last_seq()
    for path, body, _, _ in list(front.records):
        assert [a[0] for a in front.send(path, body, [0, 1])] == [200, 200]
    assert orch.store.last_seq() == last
