"""The SQLite job store: phases, leases, migrations, and several processes at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from voxhub import JobHandle, JobKind, JobRequest, JobState, JobStatus, RemoteUrl, Store, Transcript
from voxhub.errors import StoreError
from voxhub.models import new_job_id
from voxhub.store import SCHEMA_VERSION, Phase


def make(store: Store, key: str = "k1") -> JobHandle:
    request = JobRequest(
        provider="echo",
        media=RemoteUrl("http://x/a", {"Authorization": "Bearer s3cr3t-value"}),
        kind=JobKind.TRANSCRIPTION,
        profile="echo",
        idempotency_key=key,
    )
    handle = JobHandle(new_job_id(), "echo", JobKind.TRANSCRIPTION, "echo", idempotency_key=key)
    store.record(request, handle)
    return handle


def test_phases_and_events(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    handle = make(store)
    assert store.get(handle.job_id).phase == Phase.RECORDED
    assert store.claim(handle.job_id) is not None
    assert store.claim(handle.job_id) is None  # a claim is exclusive
    store.mark_submitted(handle.with_vendor({"job": "v1"}), JobStatus(JobState.QUEUED))
    assert store.find_by_vendor_id("echo", "v1").job_id == handle.job_id  # type: ignore[union-attr]
    assert store.set_status(handle.job_id, JobStatus(JobState.RUNNING, progress=0.5))
    assert not store.set_status(
        handle.job_id, JobStatus(JobState.RUNNING, progress=0.5)
    )  # no change
    store.set_status(handle.job_id, JobStatus(JobState.SUCCEEDED))
    # A stale answer never reopens a finished job.
    assert not store.set_status(handle.job_id, JobStatus(JobState.RUNNING))
    store.save_result(handle.job_id, Transcript("echo", handle.job_id, "hi"))
    assert store.result(handle.job_id).text == "hi"  # type: ignore[union-attr]
    types = [e.type for e in store.events(handle.job_id)]
    assert types == ["recorded", "sending", "submitted", "status", "status", "status", "result"]


def test_same_key_returns_the_stored_job(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    first = make(store, "same")
    request = JobRequest(
        provider="echo", kind=JobKind.TRANSCRIPTION, profile="echo", idempotency_key="same"
    )
    record, created = store.record(
        request,
        JobHandle(new_job_id(), "echo", JobKind.TRANSCRIPTION, "echo", idempotency_key="same"),
    )
    assert not created and record.job_id == first.job_id


def test_secrets_never_reach_the_database_file(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    handle = make(store)
    store.add_event(
        handle.job_id, "callback", {"token": "s3cr3t-value", "note": "Bearer s3cr3t-value"}
    )
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"s3cr3t-value" not in raw


def test_a_dead_owners_claim_can_be_taken_over(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    handle = make(store)
    store.claim(handle.job_id)
    other = Store(tmp_path / "s.db")
    assert other.take_over(handle.job_id) is None  # the owner (this process) is alive
    store.owner = "localhost-other:999999999:x"
    # Same host, pid that does not exist: the claim is dead.
    import socket

    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute(
            "UPDATE jobs SET owner=? WHERE job_id=?",
            (f"{socket.gethostname()}:999999999:x", handle.job_id),
        )
    assert other.take_over(handle.job_id) is not None


def test_migrations_and_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    assert Store(path).schema_version == SCHEMA_VERSION
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer voxhub"):
        Store(path)


def test_upgrades_a_version_one_store(tmp_path: Path) -> None:
    from voxhub.store import _MIGRATIONS

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(_MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    store.set_callback_token_hash(make(store).job_id, "abc")


# Worker programs run as separate Python processes (not forks of the test runner), exactly
# like several voxhub processes sharing one store file.
WRITER = """
import sys
from voxhub import JobHandle, JobKind, JobRequest, JobState, JobStatus, Store
from voxhub.models import new_job_id
path, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = Store(path)
for i in range(count):
    key = f"w{worker}-{i}"
    request = JobRequest(provider="echo", kind=JobKind.TRANSCRIPTION, profile="echo",
                         idempotency_key=key)
    handle = JobHandle(new_job_id(), "echo", JobKind.TRANSCRIPTION, "echo", idempotency_key=key)
    store.record(request, handle)
    store.claim(handle.job_id)
    store.mark_submitted(handle.with_vendor({"job": key}))
    store.set_status(handle.job_id, JobStatus(JobState.SUCCEEDED))
    store.add_event(handle.job_id, "note", {"i": i})
"""

CLAIMER = """
import sys
from voxhub import Store
print("won" if Store(sys.argv[1]).claim(sys.argv[2]) is not None else "lost")
"""


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_several_processes_write_without_losing_anything(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    Store(path)
    procs = [spawn(WRITER, path, str(w), "25") for w in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err  # no "database is locked" reaches anyone
    store = Store(path)
    jobs = store.jobs()
    assert len(jobs) == 100
    assert all(j.status and j.status.state is JobState.SUCCEEDED for j in jobs)
    # recorded, sending, submitted, status, note: no event lost under contention
    assert all(len(store.events(j.job_id)) == 5 for j in jobs)


def test_only_one_process_wins_a_claim(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    handle = make(Store(path))
    procs = [spawn(CLAIMER, path, handle.job_id) for _ in range(4)]
    outcomes = sorted(proc.communicate(timeout=120)[0].strip() for proc in procs)
    assert outcomes == ["lost", "lost", "lost", "won"]
