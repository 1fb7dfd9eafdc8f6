"""Concurrency: several ``voxhub`` processes share one job store at the same time.

Six ``voxhub transcribe`` processes start together, each with eight threads; every
process has its own inputs plus a set of inputs all of them share, and a seventh
process keeps listing the store meanwhile. Once on a SQLite file, once on a PostgreSQL
database (the processes share this machine's key file through ``XDG_DATA_HOME``).
Proven: every process exits 0 with nothing on stderr (no "database is locked" reaches
the user), each input became
exactly one vendor job and one stored job whatever process got there first (no
duplicates across processes), and no update was lost (every job's history has its
submit recorded once and ends succeeded with its result).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_support import cli_env, voxhub_cli
from voxhub import JobState
from voxhub.media import media_from
from voxhub.sandbox import RunningSandbox
from voxhub.store import Store

PROCESSES = 6
SHARED = [f"https://media.voxhub.invalid/shared-{i}.wav" for i in range(8)]


def _own(process: int) -> list[str]:
    return [f"https://media.voxhub.invalid/p{process}-{i}.wav" for i in range(4)]


@pytest.mark.slow
def test_processes_sharing_a_store_never_duplicate_or_lose_work(
    tmp_path: Path, voxhub_sandbox: Callable[..., RunningSandbox], store_at: Path | str
) -> None:
    server = voxhub_sandbox("revai", processing_seconds=0.2, use_engine=False)
    store_path = store_at
    env = cli_env(tmp_path, VOXHUB_STORE=str(store_path), VOXHUB_REVAI_BASE_URL=server.base_url,
                  VOXHUB_REVAI_TOKEN=server.settings()["token"])
    base = [*voxhub_cli(), "--log-level", "warning"]
    procs = []
    for n in range(PROCESSES):
        # Shared inputs in a different order in each process, so they collide mid-flight.
        shared = SHARED[n % len(SHARED):] + SHARED[: n % len(SHARED)]
        argv = [*base, "transcribe", *shared, *_own(n), "-p", "revai", "--concurrency", "8",
                "-o", str(tmp_path / f"out-{n}")]
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    # A reader meanwhile: listing must never fail while writers hold the database.
    listings = 0
    while any(p.poll() is None for p in procs):
        listed = subprocess.run([*base, "jobs", "--json"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert listed.returncode == 0 and listed.stderr == "", listed.stderr
        json.loads(listed.stdout)
        listings += 1
        time.sleep(0.1)
    for n, proc in enumerate(procs):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"process {n}: {err}"
        # Only the batch's id and its summary: no error, warning or skipped input.
        total = len(SHARED) + len(_own(n))
        lines = err.splitlines()
        assert lines[0].startswith("batch ") and lines[0].endswith(f": {total} inputs"), err
        assert f": {total} done, 0 failed (of {total})" in err, err
        assert not any(w in err for w in ("error", "warning", "skipped")), err
        written = sorted(p.name for p in (tmp_path / f"out-{n}").iterdir())
        assert len(written) == len(SHARED) + len(_own(n)), written
    assert listings >= 1

    inputs = SHARED + [m for n in range(PROCESSES) for m in _own(n)]
    counters = server.sandbox.counters.snapshot()
    assert counters["jobs.created"] == len(inputs), counters
    assert "jobs.duplicates" not in counters

    store = Store(store_path)
    try:
        records = store.jobs()
        assert sorted(r.request.media.describe() for r in records if r.request.media) == sorted(
            media_from(m).describe() for m in inputs
        )
        for record in records:
            assert record.status is not None and record.status.state is JobState.SUCCEEDED
            assert record.has_result and store.result(record.job_id) is not None
            kinds = Counter(e.type for e in store.events(record.job_id))
            # Recorded once, claimed once, accepted once: nobody overwrote anybody.
            assert kinds["recorded"] == kinds["sending"] == kinds["submitted"] == 1, kinds
            assert kinds["result"] >= 1
    finally:
        store.close()
