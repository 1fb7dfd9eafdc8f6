"""Seed 000: no more than one start a second per App ID, across processes sharing a store.

Real child processes start tasks on *different* channels at the same instant (so the
per-channel lock does not order them); the sandbox records when each start arrived.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from voxhub.sandbox import RunningSandbox
from voxhub.shared_limits import SharedLimits
from voxhub_agora.stt import AgoraSttProvider

pytestmark = pytest.mark.real_start_interval



def test_processes_sharing_a_store_start_at_most_once_a_second(
        tmp_path: Path, stt_sandbox: RunningSandbox, h: Any) -> None:
    # v6: acquire and start both happen inside the turn (v7 joins are paced the same way,
    # see test_paced_start_is_logged).
    store = tmp_path / "shared" / "jobs.db"
    h.submit_in_processes(stt_sandbox, [(store, f"room-{i}", f"room-{i}") for i in range(3)], "v6")
    times = sorted(stt_sandbox.sandbox.start_times)  # type: ignore[attr-defined]
    assert len(times) == 3 and stt_sandbox.sandbox.counters.get("tasks.created") == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # The next start is sent a second after the previous one's *answer*: >= 1 s apart at
    # the server (a few ms of tolerance for the clocks of two processes).
    assert min(gaps) >= 0.995, gaps


def test_processes_sharing_nothing_are_not_paced(tmp_path: Path,
                                                 stt_sandbox: RunningSandbox, h: Any) -> None:
    # What the README says: clients with separate stores cannot coordinate; only Agora's
    # own rules (one agent per name, 409) stand between them.
    stores = [tmp_path / f"own-{i}" / "jobs.db" for i in range(3)]
    # A long lead: a child still importing at start_at would start late and look paced.
    h.submit_in_processes(
        stt_sandbox, [(store, f"room-{i}", f"room-{i}") for i, store in enumerate(stores)], "v7",
        lead=3.0)
    times = sorted(stt_sandbox.sandbox.start_times)  # type: ignore[attr-defined]
    assert len(times) == 3
    assert times[-1] - times[0] < 1.0


def test_waiting_starts_wait_for_the_previous_answer(tmp_path: Path) -> None:
    # The start turn is the store's (here the store-less fallback beside a state_dir).
    limits = SharedLimits.beside(tmp_path)
    with limits.turn("agora-stt:app:start", 0.3) as first:
        time.sleep(0.2)  # the request in flight
    ended = time.time()
    with limits.turn("agora-stt:app:start", 0.3) as second:
        began = time.time()
    with limits.turn("agora-stt:other-app:start", 0.3) as other:
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
