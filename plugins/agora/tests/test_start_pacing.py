"""Seed 000: no more than one start a second per App ID, across processes sharing a store.

Real child processes start tasks on *different* channels at the same instant (so the
per-channel lock does not order them); the sandbox records when each start arrived.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from voxhub.sandbox import RunningSandbox
from voxhub_agora.locks import StartPacer
from voxhub_agora.stt import AgoraSttProvider

pytestmark = pytest.mark.real_start_interval

_CHILD = r"""
import json, os, sys, time
from pathlib import Path
import structlog
from voxhub.clock import SystemClock
from voxhub.config import Config
from voxhub.models import JobHandle, JobKind, JobRequest, RtcChannel, new_job_id
from voxhub.provider import ProviderContext
from voxhub.transport import HttpClient
from voxhub_agora.stt import AgoraSttProvider

args = json.loads(sys.argv[1])
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
provider = AgoraSttProvider()
info = provider.info
settings = Config.from_profiles({"agora-stt": args["settings"]}).settings(info, "agora-stt")
ctx = ProviderContext(provider=info.name, profile=info.name, settings=settings,
                      http=HttpClient().bind(info.name, retry=info.retry), clock=SystemClock(),
                      log=structlog.get_logger(),
                      state_dir=Path(os.environ["VOXHUB_STORE"]).parent)
ctx.auth = provider.authenticate(ctx)
request = JobRequest(provider="agora-stt", media=RtcChannel(args["channel"]),
                     kind=JobKind.CHANNEL_TRANSCRIPTION,
                     options={"languages": ["en-US"], "api_version": args["version"]},
                     idempotency_key=args["channel"])
handle = JobHandle(job_id=new_job_id(), provider="agora-stt", kind=JobKind.CHANNEL_TRANSCRIPTION,
                   profile="agora-stt", idempotency_key=args["channel"])
time.sleep(max(0.0, args["at"] - time.time()))
print(json.dumps(provider.submit(ctx, request, handle).handle.vendor_ids))
"""


def _start_together(running: RunningSandbox, stores: list[Path], version: str, *,
                    lead: float = 1.5) -> list[float]:
    """One child per store, all starting at once; the arrival times, sorted."""
    start_at = time.time() + lead  # after every child has imported voxhub
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps({
                "settings": running.settings(), "channel": f"room-{i}", "version": version,
                "at": start_at,
            })],
            env={**os.environ, "VOXHUB_STORE": str(store)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i, store in enumerate(stores)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    return sorted(running.sandbox.start_times)  # type: ignore[attr-defined]


def test_processes_sharing_a_store_start_at_most_once_a_second(
        tmp_path: Path, stt_sandbox: RunningSandbox) -> None:
    # v6: acquire and start both happen inside the turn (v7 joins are paced the same way,
    # see test_paced_start_is_logged).
    store = tmp_path / "shared" / "jobs.db"
    times = _start_together(stt_sandbox, [store] * 3, "v6")
    assert len(times) == 3 and stt_sandbox.sandbox.counters.get("tasks.created") == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # The next start is sent a second after the previous one's *answer*: >= 1 s apart at
    # the server (a few ms of tolerance for the clocks of two processes).
    assert min(gaps) >= 0.995, gaps


def test_processes_sharing_nothing_are_not_paced(tmp_path: Path,
                                                 stt_sandbox: RunningSandbox) -> None:
    # What the README says: clients with separate stores cannot coordinate; only Agora's
    # own rules (one agent per name, 409) stand between them.
    stores = [tmp_path / f"own-{i}" / "jobs.db" for i in range(3)]
    # A long lead: a child still importing at start_at would start late and look paced.
    times = _start_together(stt_sandbox, stores, "v7", lead=3.0)
    assert len(times) == 3
    assert times[-1] - times[0] < 1.0


def test_waiting_starts_wait_for_the_previous_answer(tmp_path: Path) -> None:
    pacer = StartPacer(tmp_path, interval=0.3)
    with pacer.turn("app") as first:
        time.sleep(0.2)  # the request in flight
    ended = time.time()
    with pacer.turn("app") as second:
        began = time.time()
    with pacer.turn("other-app") as other:
        pass
    assert first == 0.0 and other == 0.0
    assert second > 0.2 and began - ended >= 0.3 - 0.005


def test_start_interval_is_a_second_by_default() -> None:
    assert AgoraSttProvider.start_interval == 1.0


def test_paced_start_is_logged(make_ctx: Any, stt_sandbox: RunningSandbox, h: Any,
                               lock_dir: Path, debug_logs: list[Any]) -> None:
    stt = AgoraSttProvider(lock_dir=lock_dir)
    stt.start_interval = 0.2
    ctx = make_ctx(stt, stt_sandbox)
    for channel in ("a", "b"):
        request = h.stt_request(channel)
        stt.submit(ctx, request, h.handle_for(request))
    paced = [e for e in debug_logs if e.get("event") == "agora.stt.start_paced"]
    assert len(paced) == 1 and 0 < paced[0]["waited"] <= 0.2
