"""A durable batch survives SIGKILL: before any worker started, and in the middle of its run.

The client runs in a child process that records a batch (and maybe starts it), then
kills itself with SIGKILL; the echo sandbox runs in this process and outlives it.
Resuming the batch from here finishes every input with exactly one vendor job each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_support import cli_env
from voxhub import Orchestrator
from voxhub.batches import ItemState
from voxhub.clock import FakeClock
from voxhub.sandbox import RunningSandbox
from voxhub.store import Store

INPUTS = 24

# Records the batch, prints its id, and dies: at once ("record"), or once a few inputs
# ended while others are being submitted and waited for ("run").
_CHILD = """
import json, os, signal, sys
from voxhub import JobRequest, Orchestrator, RemoteUrl
from voxhub.batches import BatchSettings
from voxhub.config import Config

store, profile, mode, count = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
orch = Orchestrator(store=store, config=Config.from_profiles({"echo": profile}))
requests = [JobRequest("echo", media=RemoteUrl(f"http://x/crash-{i}.wav")) for i in range(count)]
info = orch.record_batch(requests, settings=BatchSettings(name="crash", concurrency=6))
print(info.batch_id, flush=True)
if mode == "run":
    for n, outcome in enumerate(orch.run_batch(info.batch_id), start=1):
        if n == 5:
            break
os.kill(os.getpid(), signal.SIGKILL)
"""


def _crash(store: Path, echo: RunningSandbox, mode: str, tmp_path: Path) -> str:
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(store), json.dumps(echo.settings()), mode,
         str(INPUTS)],
        env=cli_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert child.returncode == -9, child.stderr
    return child.stdout.strip()


@pytest.mark.parametrize("mode", ["record", "run"])
def test_a_batch_killed_by_sigkill_is_finished_by_resume_with_one_vendor_job_each(
    mode: str,
    echo: RunningSandbox,
    voxhub_orchestrator: Callable[..., Orchestrator],
    tmp_path: Path,
) -> None:
    store_path = tmp_path / "crash.db"
    batch_id = _crash(store_path, echo, mode, tmp_path)
    created_before = echo.sandbox.counters.get("jobs.created")
    if mode == "record":
        assert created_before == 0  # recorded whole, nothing sent
    else:
        assert 5 <= created_before < INPUTS

    orch = voxhub_orchestrator(
        {"echo": echo.settings()}, clock=FakeClock(), store=Store(store_path)
    )
    info = orch.batch(batch_id)
    assert info.counts.total == INPUTS and not info.owner_alive  # its owner is dead
    done_before = info.counts.done
    assert done_before == 0 if mode == "record" else 5 <= done_before < INPUTS
    outcomes = list(orch.run_batch(batch_id))
    assert all(o.ok for o in outcomes), [str(o.error) for o in outcomes if not o.ok]
    assert len(outcomes) == INPUTS - done_before  # the done ones are not repeated

    counts = orch.batch(batch_id).counts
    assert (counts.done, counts.failed, counts.pending) == (INPUTS, 0, 0)
    assert echo.sandbox.counters.get("jobs.created") == INPUTS
    assert echo.sandbox.counters.get("jobs.duplicates") == 0
    jobs = {item.job_id for item in orch.batch_items(batch_id, state=ItemState.DONE)}
    assert len(jobs) == INPUTS
    assert all(orch.store.get(j).has_result for j in jobs if j)
