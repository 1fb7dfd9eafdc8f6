"""Callbacks: a receiver process, a waiter in another process, real Rev.ai sandbox webhooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import urllib3
from voxhub import JobRequest, JobState, LocalFile, Orchestrator
from voxhub.sandbox import RunningSandbox
from voxhub.store import Store

pytest.importorskip("voxhub_revai", reason="the callback tests use the Rev.ai sandbox's webhooks")

VOXHUB = str(Path(sys.executable).with_name("voxhub"))
SAMPLE = Path(__file__).resolve().parent.parent / "docs" / "samples" / "hello.wav"
http = urllib3.PoolManager(retries=False)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "shared-jobs.db"


@pytest.fixture
def receiver(store_path: Path, revai: RunningSandbox) -> Iterator[str]:
    """`voxhub callbacks serve` in its own process, sharing the store file."""
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
    store_path: Path,
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
    counters = revai.sandbox.counters.snapshot()
    assert counters.get("callbacks.delivered", 0) >= 1
    # One status call when waiting starts, one to confirm the webhook: no polling loop.
    assert counters.get(job_path, 0) <= 2, counters
    types = [e.type for e in waiter.store.events(handle.job_id)]
    assert "callback-hint" in types
    assert waiter.fetch(handle).text  # the transcript is fetched once, after the confirmation


def post(url: str, body: bytes, **headers: str) -> urllib3.BaseHTTPResponse:
    return http.request(
        "POST", url, body=body, headers={"Content-Type": "application/json", **headers}
    )


def test_bad_callbacks_are_refused_and_change_nothing(
    waiter: Orchestrator, receiver: str, tmp_path: Path
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
    store_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("shared-jobs.db*"))
    assert token.encode() not in store_bytes  # only the token's hash is stored


def test_callback_urls_survive_a_restart(
    waiter: Orchestrator, revai: RunningSandbox, receiver: str, store_path: Path,
    voxhub_orchestrator: Callable[..., Orchestrator],
) -> None:
    handle = waiter.submit(JobRequest(provider="revai", media=LocalFile(SAMPLE)))
    url = waiter.context("revai").callback_url_for(handle.job_id)
    # Another process sharing the store (e.g. `voxhub jobs resume`) rebuilds the same URL.
    other = voxhub_orchestrator({"revai": revai.settings()}, store=Store(store_path),
                                callback_url=receiver)
    assert other.context("revai").callback_url_for(handle.job_id) == url
    key_file = store_path.with_name(store_path.name + ".callback-key")
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert url is not None and url.rsplit("/", 1)[1].encode() not in store_path.read_bytes()
