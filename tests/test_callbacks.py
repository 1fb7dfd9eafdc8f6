"""Callbacks: a receiver process, a waiter in another process, real Rev.ai sandbox webhooks.

Every test runs on both store backends (``store_at``: a SQLite file, a PostgreSQL database).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import urllib3
from voxhub import JobRequest, JobState, LocalFile, Orchestrator
from voxhub.callbacks import CallbackHandler
from voxhub.sandbox import RunningSandbox
from voxhub.store import Store

pytest.importorskip("voxhub_revai", reason="the callback tests use the Rev.ai sandbox's webhooks")

VOXHUB = str(Path(sys.executable).with_name("voxhub"))
SAMPLE = Path(__file__).resolve().parent.parent / "docs" / "samples" / "hello.wav"
http = urllib3.PoolManager(retries=False)


@pytest.fixture
def store_path(store_at: Path | str) -> Path | str:
    """The shared store: a SQLite file or a PostgreSQL URL (password included)."""
    return store_at


def stored_bytes(store_path: Path | str) -> bytes:
    """Everything the store holds, as bytes: its files, or every row of its tables."""
    if isinstance(store_path, Path):
        return b"".join(p.read_bytes() for p in store_path.parent.glob(store_path.name + "*"))
    import psycopg
    from psycopg import sql

    with psycopg.connect(store_path) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return b"".join(
            str(row[0]).encode() for table in tables
            for row in conn.execute(
                sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(table)))
        )


@pytest.fixture
def receiver(store_path: Path | str, revai: RunningSandbox) -> Iterator[str]:
    """`voxhub callbacks serve` in its own process, sharing the store."""
    env = {
        **os.environ,
        "VOXHUB_STORE": str(store_path),
        "VOXHUB_REVAI_BASE_URL": revai.base_url,
        "VOXHUB_REVAI_TOKEN": revai.settings()["token"],
    }
    proc = subprocess.Popen(
        [VOXHUB, "callbacks", "serve", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        yield line["listening"]
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def revai(voxhub_sandbox: Callable[..., RunningSandbox]) -> RunningSandbox:
    return voxhub_sandbox("revai", processing_seconds=0.3)


@pytest.fixture
def waiter(
    store_path: Path | str,
    revai: RunningSandbox,
    receiver: str,
    voxhub_orchestrator: Callable[..., Orchestrator],
) -> Orchestrator:
    return voxhub_orchestrator(
        {"revai": revai.settings()}, store=Store(store_path), callback_url=receiver
    )


def test_webhook_wakes_the_waiter_with_one_confirming_status_call(
    waiter: Orchestrator, revai: RunningSandbox, tmp_path: Path
) -> None:
    media = SAMPLE
    handle = waiter.submit(JobRequest(provider="revai", media=LocalFile(media)))
    assert waiter.wait(handle, timeout=30).state is JobState.SUCCEEDED
    job_path = f"GET /speechtotext/v1/jobs/{handle.vendor_ids[next(iter(handle.vendor_ids))]}"
    # On a busy machine the job may be over before the wait starts: its webhook then
    # lands after the wait returned (acknowledged once stored).
    assert wait_until(lambda: revai.sandbox.counters.get("callbacks.delivered") >= 1, 30)
    counters = revai.sandbox.counters.snapshot()
    # One status call when waiting starts, one to confirm the webhook: no polling loop.
    assert counters.get(job_path, 0) <= 2, counters
    types = [e.type for e in waiter.store.events(handle.job_id)]
    assert "callback-hint" in types
    assert waiter.fetch(handle).text  # the transcript is fetched once, after the confirmation


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Whether ``predicate()`` held within ``timeout`` seconds (checked every 20 ms)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def post(url: str, body: bytes, **headers: str) -> urllib3.BaseHTTPResponse:
    return http.request(
        "POST", url, body=body, headers={"Content-Type": "application/json", **headers}
    )


def test_bad_callbacks_are_refused_and_change_nothing(
    waiter: Orchestrator, receiver: str, store_path: Path | str
) -> None:
    media = SAMPLE
    handle = waiter.submit(JobRequest(provider="revai", media=LocalFile(media)))
    good = waiter.context("revai").callback_url_for(handle.job_id)
    assert good is not None and good.startswith(f"{receiver}/callbacks/revai/{handle.job_id}/")
    token = good.rsplit("/", 1)[1]
    before = waiter.store.last_seq(handle.job_id)
    vendor = handle.vendor_id
    body = json.dumps(
        {"job": {"id": vendor, "status": "transcribed", "created_on": "2026-01-01T00:00:00Z"}}
    ).encode()

    assert post(f"{receiver}/callbacks/revai/{handle.job_id}/forged-token", body).status == 401
    assert post(f"{receiver}/callbacks/revai/vx_never_seen/{token}", body).status == 404
    assert post(f"{receiver}/callbacks/nope/{handle.job_id}/{token}", body).status == 404
    assert post(good, b"x" * (1024 * 1024 + 10)).status == 413
    assert post(good, b"{not json").status == 400
    other = json.dumps({"job": {"id": "someone-elses", "status": "transcribed"}}).encode()
    assert post(good, other).status == 409
    assert waiter.store.last_seq(handle.job_id) == before  # nothing recorded

    assert post(good, body).status == 200
    assert post(good, body).status == 200  # a replay is acknowledged...
    hints = [e for e in waiter.store.events(handle.job_id) if e.type == "callback-hint"]
    assert len(hints) == 1  # ...and recorded once
    assert token.encode() not in stored_bytes(store_path)  # only the token's hash is stored


def test_callback_urls_survive_a_restart(
    waiter: Orchestrator, revai: RunningSandbox, receiver: str, store_path: Path | str,
    voxhub_orchestrator: Callable[..., Orchestrator],
) -> None:
    handle = waiter.submit(JobRequest(provider="revai", media=LocalFile(SAMPLE)))
    url = waiter.context("revai").callback_url_for(handle.job_id)
    # Another process sharing the store (e.g. `voxhub jobs resume`) rebuilds the same URL.
    other = voxhub_orchestrator({"revai": revai.settings()}, store=Store(store_path),
                                callback_url=receiver)
    assert other.context("revai").callback_url_for(handle.job_id) == url
    key_file = (store_path.with_name(store_path.name + ".callback-key")
                if isinstance(store_path, Path) else waiter.store.state_dir / "store.key")
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert url is not None and url.rsplit("/", 1)[1].encode() not in stored_bytes(store_path)


def test_a_delivery_given_to_two_receivers_at_once_is_stored_once(
    store_path: Path | str, revai: RunningSandbox,
    voxhub_orchestrator: Callable[..., Orchestrator],
) -> None:
    """Two receivers on one store (each its own connections, as two processes have) get
    the same deliveries at the same instant: each is acknowledged by both, stored once."""
    orchs = [voxhub_orchestrator({"revai": revai.settings()}, store=Store(store_path),
                                 callback_url="http://127.0.0.1:9") for _ in range(2)]
    handle = orchs[0].submit(JobRequest(provider="revai", media=LocalFile(SAMPLE)))
    url = orchs[0].context("revai").callback_url_for(handle.job_id)
    assert url is not None
    handlers = [CallbackHandler(orch) for orch in orchs for _ in range(2)]  # 2 threads each
    for status in ("in_progress", "transcribed"):
        body = json.dumps({"job": {"id": handle.vendor_id, "status": status,
                                   "created_on": "2026-01-01T00:00:00Z"}}).encode()
        start = threading.Barrier(len(handlers))
        answers: list[int] = []

        def deliver(handler: CallbackHandler, body: bytes = body,
                    start: threading.Barrier = start, answers: list[int] = answers) -> None:
            start.wait(10)
            answers.append(handler.handle("revai", handle.job_id, url.rsplit("/", 1)[1],
                                          {"Content-Type": "application/json"}, body).status)

        threads = [threading.Thread(target=deliver, args=(h,)) for h in handlers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert answers == [200] * len(handlers)
    hints = [e.data["revai_status"] for e in orchs[1].store.events(handle.job_id)
             if e.type == "callback-hint"]
    assert sorted(hints) == ["in_progress", "transcribed"]
