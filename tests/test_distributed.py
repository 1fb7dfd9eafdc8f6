"""Batches on a Dask cluster: a real ``LocalCluster`` of worker processes, the Rev.ai
sandbox on 127.0.0.1 in this process, one store shared by all of them: every test runs
once on a SQLite file and once on a PostgreSQL database (the session's server).

The workers get their configuration from their own environment (set on the cluster's
nannies before they start): the store, the sandbox's URL and token, and for PostgreSQL
the store's key file (``VOXHUB_STORE_KEY_FILE``, as every machine sharing a store is
given it; the client's process is given the same). The client sends tickets only.

Proven here, on both stores: a batch completes across several worker processes with
nothing secret in its tasks; a worker SIGKILLed in the middle of submitting loses
nothing and duplicates no vendor job; texts come back to the client; a worker on
another store refuses with a clear error and fail-fast stops the rest; a batch the
CLI starts with ``--executor dask://…`` completes, and one stopped Ctrl-C-like is
finished from another process by ``voxhub batches resume --executor dask://…``; the
CLI says in one line when the scheduler cannot be reached.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import attrs
import pytest
from distributed import Client, LocalCluster
from voxhub import Orchestrator
from voxhub._postgres import close_all
from voxhub.batches import ItemState, Outcome
from voxhub.config import Config
from voxhub.distributed import Ticket
from voxhub.errors import ConfigurationError
from voxhub.media import media_from
from voxhub.models import JobRequest
from voxhub.pg_server import PostgresServer
from voxhub.plugins import PluginManager
from voxhub.sandbox import FaultPlan, RunningSandbox, serve
from voxhub.store import Phase, Store

WORKERS = 3
VOXHUB = str(Path(sys.executable).with_name("voxhub"))


@attrs.frozen
class Cluster:
    """The module's cluster, its client, the shared store and the sandbox the workers use."""

    client: Client
    store: Path | str
    sandbox: RunningSandbox
    home: Path
    key_file: Path | None  # a PostgreSQL store's key file, shared by client and workers

    @property
    def scheduler(self) -> str:
        address: str = self.client.scheduler.address
        return "dask://" + address.removeprefix("tcp://")

    def executor(self) -> Executor:
        """The client's ``concurrent.futures`` face, as users are told to pass it."""
        executor: Executor = self.client.get_executor()  # type: ignore[no-untyped-call]
        return executor

    def worker_pids(self) -> set[int]:
        pids: dict[str, int] = self.client.run(os.getpid)
        return set(pids.values())

    def orchestrator(self, store: Path | str | None = None) -> Orchestrator:
        """The client's orchestrator (configured in code: the environment is not read)."""
        config = Config.from_profiles({"revai": self.sandbox.settings()})
        return Orchestrator(store=store or self.store, config=config)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a ``voxhub`` command of this cluster (as its workers')."""
        return {**_worker_env(self.home, self.store, self.sandbox, self.key_file), **extra}

    def created(self) -> tuple[int, int]:
        counters = self.sandbox.sandbox.counters
        return counters.get("jobs.created"), counters.get("jobs.duplicates")


def _worker_env(
    home: Path, store: Path | str, sandbox: RunningSandbox, key_file: Path | None
) -> dict[str, str]:
    """What a worker needs to run voxhub: its store and credentials, from its environment."""
    settings = sandbox.settings()
    shared_key = {} if key_file is None else {"VOXHUB_STORE_KEY_FILE": str(key_file)}
    return {
        **shared_key,
        "XDG_CONFIG_HOME": str(home / "xdg-config"),
        "XDG_DATA_HOME": str(home / "xdg-data"),
        "VOXHUB_STORE": str(store),
        "VOXHUB_REVAI_BASE_URL": settings["base_url"],
        "VOXHUB_REVAI_TOKEN": settings["token"],
        # A submission in doubt is resolved once its request can no longer be in flight.
        "VOXHUB_CONNECT_TIMEOUT": "2",
        "VOXHUB_READ_TIMEOUT": "5",
    }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cluster(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    voxhub_plugins: PluginManager,
) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("dask")
    server: PostgresServer | None = None
    store: Path | str = home / "shared.db"
    key_file = None
    if request.param == "postgresql":
        server = request.getfixturevalue("voxhub_postgres")
        store = server.new_database()
        key_file = home / "store.key"
    sandbox = serve(
        voxhub_plugins.sandboxes["revai"].create(processing_seconds=0.5, use_engine=False)
    )
    with pytest.MonkeyPatch.context() as patch:
        # Workers see only what their nannies give them (and restarted ones likewise).
        for key in [k for k in os.environ if k.startswith("VOXHUB_")]:
            patch.delenv(key)
        local = LocalCluster(
            n_workers=WORKERS, processes=True, threads_per_worker=2, dashboard_address=None,
            env=_worker_env(home, store, sandbox, key_file),
        )  # fmt: skip
        client = Client(local)
    try:
        yield Cluster(client, store, sandbox, home, key_file)
    finally:
        client.close()
        local.close()
        sandbox.stop()
        if server is not None:
            close_all()
            server.drop_database(str(store))


@pytest.fixture(autouse=True)
def _client_key_file(
    isolated_env: None, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's process has the key file its workers have (after ``isolated_env``
    has cleared every ``VOXHUB_*`` variable)."""
    if cluster.key_file is not None:
        monkeypatch.setenv("VOXHUB_STORE_KEY_FILE", str(cluster.key_file))


def _urls(tag: str, count: int) -> list[str]:
    return [f"https://media.voxhub.invalid/{tag}-{i}.wav" for i in range(count)]


def _requests(urls: list[str]) -> list[JobRequest]:
    return [JobRequest(provider="revai", media=media_from(u)) for u in urls]


class Recording(Executor):
    """A Dask client's executor, keeping every task's pickled arguments (what travels)."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.sent: list[bytes] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.sent.append(pickle.dumps((args, kwargs)))
        return self.inner.submit(fn, *args, **kwargs)


def _sending_owners(store: Store, batch_id: str) -> dict[str, int]:
    """job id -> the pid of the process that claimed its submission (first claim)."""
    owners: dict[str, int] = {}
    for record in store.jobs(batch=batch_id):
        for event in store.events(record.job_id):
            if event.type == "sending" and record.job_id not in owners:
                owners[record.job_id] = int(str(event.data["owner"]).split(":")[1])
    return owners


def test_a_batch_runs_on_several_worker_processes_and_sends_tickets_only(
    cluster: Cluster, tmp_path: Path
) -> None:
    urls = _urls("spread", 12)
    before = cluster.created()
    executor = Recording(cluster.executor())
    with cluster.orchestrator() as orch:
        run = orch.run_many(
            _requests(urls), executor=executor, concurrency=12, format="txt",
            output_dir=str(tmp_path / "out"),
        )  # fmt: skip
        outcomes = list(run)
        assert len(outcomes) == 12 and all(o.ok for o in outcomes), [o.error for o in outcomes]
        assert sorted(o.seq or 0 for o in outcomes) == list(range(1, 13))
        for outcome in outcomes:
            assert outcome.output and Path(outcome.output).read_text().strip()
            assert outcome.result is not None
        assert orch.batch(run.batch_id).counts.done == 12
        claimers = set(_sending_owners(orch.store, run.batch_id).values())
    # Every job was submitted by a worker process, and by more than one of them.
    assert len(claimers) > 1 and claimers <= cluster.worker_pids(), claimers
    assert os.getpid() not in claimers
    created, duplicates = cluster.created()
    assert (created - before[0], duplicates - before[1]) == (12, 0)
    # A task carries a ticket: the batch, the input's number, the claim; never a secret.
    assert len(executor.sent) == 12
    token = cluster.sandbox.settings()["token"]
    for sent in executor.sent:
        args, kwargs = pickle.loads(sent)  # noqa: S301 - our own bytes
        assert kwargs == {} and len(args) == 1 and isinstance(args[0], Ticket)
        assert args[0].batch_id == run.batch_id
        assert token.encode() not in sent and b"media.voxhub.invalid" not in sent


def test_a_worker_killed_while_submitting_loses_nothing_and_duplicates_nothing(
    cluster: Cluster,
) -> None:
    urls = _urls("killed", 9)
    before = cluster.created()
    # Every submit request takes a second at the vendor: a worker dies with some in flight.
    cluster.sandbox.sandbox.set_faults(
        FaultPlan(slow=1.0, slow_seconds=1.0, only_paths=("/speechtotext/v1/jobs",))
    )
    outcomes: list[Outcome] = []
    try:
        with cluster.orchestrator() as orch:
            run = orch.run_many(_requests(urls), executor=cluster.executor(), concurrency=9)
            consumer = threading.Thread(target=lambda: outcomes.extend(run), daemon=True)
            consumer.start()
            workers = cluster.worker_pids()
            victim = None
            deadline = time.monotonic() + 30
            while victim is None and time.monotonic() < deadline:
                for record in orch.store.jobs(batch=run.batch_id):
                    pid = int(record.owner.split(":")[1]) if record.owner else None
                    if record.phase == Phase.SENDING and pid in workers:
                        victim = pid
                        break
                time.sleep(0.02)
            assert victim is not None, "no worker was seen submitting"
            os.kill(victim, signal.SIGKILL)
            cluster.sandbox.sandbox.set_faults(FaultPlan())
            consumer.join(timeout=60)
            assert not consumer.is_alive()
            counts = orch.batch(run.batch_id).counts
            if counts.done < 9:  # Dask gave up on a task: a resume finishes the batch
                outcomes += list(orch.run_batch(run.batch_id, executor=cluster.executor()))
                counts = orch.batch(run.batch_id).counts
            assert counts.done == 9, [o.error for o in outcomes]
            taken_over = [
                e
                for r in orch.store.jobs(batch=run.batch_id)
                for e in orch.store.events(r.job_id)
                if e.type == "taken-over"
            ]
    finally:
        cluster.sandbox.sandbox.set_faults(FaultPlan())
    assert taken_over, "the killed worker's jobs were taken over by another worker"
    assert victim not in cluster.worker_pids()
    created, duplicates = cluster.created()
    assert (created - before[0], duplicates - before[1]) == (9, 0)


def test_texts_come_back_to_the_client(cluster: Cluster) -> None:
    texts: dict[int, str] = {}
    with cluster.orchestrator() as orch:
        run = orch.run_many(
            _requests(_urls("texts", 3)), executor=cluster.executor(),
            format="txt", on_text=lambda seq, _input, text: texts.__setitem__(seq, text),
        )  # fmt: skip
        outcomes = sorted(run, key=lambda o: o.seq or 0)
    assert [o.ok for o in outcomes] == [True] * 3
    assert texts == {o.seq: o.text for o in outcomes}
    assert all(text.strip() for text in texts.values())


def test_a_worker_on_another_store_refuses_and_fail_fast_stops(
    cluster: Cluster, tmp_path: Path
) -> None:
    with cluster.orchestrator(tmp_path / "elsewhere.db") as orch:
        run = orch.run_many(
            _requests(_urls("elsewhere", 3)), executor=cluster.executor(),
            concurrency=1, fail_fast=True,
        )  # fmt: skip
        outcomes = list(run)
        assert len(outcomes) == 1
        error = outcomes[0].error
        assert isinstance(error, ConfigurationError)
        assert f"the worker's job store has no batch {run.batch_id}" in str(error)
        items = list(orch.batch_items(run.batch_id))
    assert [i.state for i in items] == [ItemState.FAILED, ItemState.PENDING, ItemState.PENDING]
    assert items[0].error is not None and "VOXHUB_STORE" in items[0].error


def _voxhub(cluster: Cluster, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VOXHUB_")}
    environ.update(cluster.env(NO_COLOR="1", **env))
    return subprocess.run([VOXHUB, *args], env=environ, capture_output=True, text=True, timeout=120)


def test_cli_transcribes_on_the_cluster_and_resumes_a_stopped_batch(
    cluster: Cluster, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    urls = _urls("cli", 4)
    done = _voxhub(
        cluster, "transcribe", *urls, "-p", "revai", "-o", str(out),
        "--executor", cluster.scheduler,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert ": 4 done, 0 failed (of 4)" in done.stderr
    assert len(list(out.iterdir())) == 4

    # Stopped after its first outcome (as the first Ctrl-C does): tasks not started are
    # cancelled, the batch is released, interrupted, and a resume on the cluster ends it.
    before = cluster.created()
    with cluster.orchestrator() as orch:
        run = orch.run_many(
            _requests(_urls("stopped", 6)), executor=cluster.executor(),
            concurrency=2,
        )  # fmt: skip
        first = next(run)
        run.stop()
        rest = list(run)
        info = orch.batch(run.batch_id)
        assert first.ok and info.interrupted_at is not None and not info.owner_alive
        assert info.counts.done < 6, (rest, info.counts)
    resumed = _voxhub(cluster, "batches", "resume", run.batch_id, "--executor", cluster.scheduler)
    assert resumed.returncode == 0, resumed.stderr
    assert ": 6 done, 0 failed (of 6)" in resumed.stderr
    created, duplicates = cluster.created()
    assert (created - before[0], duplicates - before[1]) == (6, 0)


def test_cli_says_in_one_line_when_the_executor_is_wrong(cluster: Cluster) -> None:
    unreachable = _voxhub(
        cluster, "transcribe", _urls("nowhere", 1)[0], "-p", "revai",
        "--executor", "dask://127.0.0.1:9", DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="1s",
    )  # fmt: skip
    assert unreachable.returncode == 2
    assert unreachable.stderr.startswith("error: cannot reach the Dask scheduler at dask://127")
    assert len(unreachable.stderr.strip().splitlines()) == 1, unreachable.stderr
    wrong = _voxhub(
        cluster, "transcribe", _urls("nowhere", 1)[0], "--executor", "tcp://user:secret@host:1"
    )
    assert wrong.returncode == 2 and "secret" not in wrong.stderr
    assert "executor must be dask://HOST:PORT" in wrong.stderr
