"""The job store on both backends (SQLite, PostgreSQL): phases, leases, migrations, and
several processes at once; and SQLite's single writer."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from voxhub import JobHandle, JobKind, JobRequest, JobState, JobStatus, RemoteUrl, Transcript
from voxhub._sqlite import CHECKPOINT_EVERY
from voxhub._writer import Writer
from voxhub.errors import StoreError
from voxhub.models import new_job_id
from voxhub.store import SCHEMA_VERSION, Phase, Store


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


def test_phases_and_events(store_at: Path | str) -> None:
    store = Store(store_at)
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


def test_phases_are_a_str_enum_stored_as_their_values(store_at: Path | str) -> None:
    store = Store(store_at)
    handle = make(store)
    record = store.get(handle.job_id)
    assert record.phase is Phase.RECORDED and record.phase == "recorded"
    assert record.state == "recorded" and type(record.state) is str
    rows = store._db.reader().execute("SELECT phase FROM jobs").fetchall()
    assert [tuple(row) for row in rows] == [("recorded",)]
    assert store.jobs(phase=Phase.RECORDED) == [record]


def test_writes_return_what_a_read_returns(store_at: Path | str) -> None:
    store = Store(store_at)
    request = JobRequest(
        provider="echo",
        media=RemoteUrl("http://x/a", {"Authorization": "Bearer s3cr3t-value"}),
        kind=JobKind.TRANSCRIPTION,
        profile="echo",
        idempotency_key="k",
    )
    handle = JobHandle(new_job_id(), "echo", JobKind.TRANSCRIPTION, "echo", idempotency_key="k")
    record, created = store.record(request, handle, batch="b1")
    assert created and record == store.get(handle.job_id)
    # What is returned is what was stored: the secret header is sealed in the row (issue 16)
    # and opened with the store's key in both.
    assert record.request.media.auth_headers["Authorization"].reveal() == "Bearer s3cr3t-value"  # type: ignore[union-attr]
    raw = store._db.reader().execute("SELECT request FROM jobs").fetchone()[0]
    assert "s3cr3t-value" not in raw
    again, created = store.record(request, same_input(handle))
    assert not created and again == record
    claimed = store.claim(handle.job_id)
    assert claimed is not None and claimed == store.get(handle.job_id)
    assert claimed.phase is Phase.SENDING and claimed.owner == store.owner


def test_a_job_can_be_recorded_and_claimed_in_one_transaction(store_at: Path | str) -> None:
    store = Store(store_at)
    request = JobRequest(provider="echo", kind=JobKind.TRANSCRIPTION, profile="echo",
                         idempotency_key="k")
    handle = JobHandle(new_job_id(), "echo", JobKind.TRANSCRIPTION, "echo", idempotency_key="k")
    before = store.write_stats().transactions
    record, created = store.record(request, handle, claim=True)
    assert created and store.write_stats().transactions == before + 1
    assert record.phase is Phase.SENDING and record.owner == store.owner
    assert record == store.get(handle.job_id)
    assert [e.type for e in store.events(handle.job_id)] == ["recorded", "sending"]
    assert store.claim(handle.job_id) is None  # already claimed
    # An input already stored is returned as it is, not claimed again.
    again, created = store.record(request, same_input(handle), claim=True)
    assert not created and again == record


def same_input(handle: JobHandle) -> JobHandle:
    """The same input under a new job id (what a second submit of it builds)."""
    return JobHandle(new_job_id(), handle.provider, handle.kind, handle.profile,
                     idempotency_key=handle.idempotency_key)


def test_a_submit_answer_is_stored_in_one_transaction(store_at: Path | str) -> None:
    store = Store(store_at)
    handle = make(store)
    store.claim(handle.job_id)
    before = store.write_stats()
    store.mark_submitted(
        handle.with_vendor({"job": "v1"}),
        JobStatus(JobState.SUCCEEDED, vendor_state="done"),
        Transcript("echo", handle.job_id, "hi"),
    )
    assert store.write_stats().transactions == before.transactions + 1
    record = store.get(handle.job_id)
    assert record.phase is Phase.SUBMITTED and record.handle.vendor_ids == {"job": "v1"}
    assert record.status is not None and record.status.state is JobState.SUCCEEDED
    assert record.has_result and store.result(handle.job_id).text == "hi"  # type: ignore[union-attr]
    types = [e.type for e in store.events(handle.job_id)]
    assert types == ["recorded", "sending", "submitted", "status", "result"]


def test_an_unchanged_status_writes_nothing(store_at: Path | str) -> None:
    store = Store(store_at)
    handle = make(store)
    assert store.set_status(handle.job_id, JobStatus(JobState.RUNNING, progress=0.5))
    before = store.write_stats()
    for _ in range(3):  # a poll that learns nothing new
        assert not store.set_status(handle.job_id, JobStatus(JobState.RUNNING, progress=0.5))
    assert store.write_stats().transactions == before.transactions
    with pytest.raises(KeyError):
        store.set_status("vx_missing", JobStatus(JobState.RUNNING))


def test_a_status_stored_by_another_process_meanwhile_is_respected(store_at: Path | str) -> None:
    store = Store(store_at)
    handle = make(store)
    store.set_status(handle.job_id, JobStatus(JobState.RUNNING))
    # Another process finishes the job between this store's read and its write (the
    # wrapper below lets it in exactly there); the write must see that and leave the
    # final state alone.
    other = Store(store_at)
    read = store._status_seen

    def other_process_writes_after_the_read(job_id: str, status: Any) -> Any:
        seen = read(job_id, status)
        other.set_status(job_id, JobStatus(JobState.SUCCEEDED))
        return seen

    store._status_seen = other_process_writes_after_the_read  # type: ignore[method-assign]
    assert not store.set_status(handle.job_id, JobStatus(JobState.RUNNING, progress=0.9))
    assert store.get(handle.job_id).status.state is JobState.SUCCEEDED  # type: ignore[union-attr]


def test_the_database_file_is_checkpointed(tmp_path: Path) -> None:
    # SQLite's automatic checkpoints are off on the writer; the store runs its own.
    store = Store(tmp_path / "s.db")
    for i in range(CHECKPOINT_EVERY + 5):
        make(store, key=f"k{i}")
    # A copy of the database file without its WAL holds what was checkpointed.
    shutil.copy(tmp_path / "s.db", tmp_path / "copy.db")
    with sqlite3.connect(tmp_path / "copy.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] >= CHECKPOINT_EVERY - 1


def test_same_key_returns_the_stored_job(store_at: Path | str) -> None:
    store = Store(store_at)
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


def test_a_dead_owners_claim_can_be_taken_over(store_at: Path | str) -> None:
    store = Store(store_at)
    handle = make(store)
    store.claim(handle.job_id)
    other = Store(store_at)
    assert other.take_over(handle.job_id) is None  # the owner (this process) is alive
    store.owner = "localhost-other:999999999:x"
    # Same host, pid that does not exist: the claim is dead.
    import socket

    store._db.write(lambda conn: conn.execute(
        "UPDATE jobs SET owner=? WHERE job_id=?",
        (f"{socket.gethostname()}:999999999:x", handle.job_id),
    ))
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


def test_several_processes_write_without_losing_anything(store_at: Path | str) -> None:
    path = str(store_at)
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


def test_only_one_process_wins_a_claim(store_at: Path | str) -> None:
    path = str(store_at)
    handle = make(Store(path))
    procs = [spawn(CLAIMER, path, handle.job_id) for _ in range(4)]
    outcomes = sorted(proc.communicate(timeout=120)[0].strip() for proc in procs)
    assert outcomes == ["lost", "lost", "lost", "won"]


# --- the single writer ---------------------------------------------------------------


def writer_on(path: Path) -> Writer:
    """A writer on a fresh table whose connection never waits for SQLite's lock."""

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=0")  # any lock conflict would fail at once
        return conn

    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    return Writer(connect)


def test_threads_queue_for_the_writer_one_transaction_at_a_time(tmp_path: Path) -> None:
    writer = writer_on(tmp_path / "w.db")
    inside: list[int] = []
    most = [0]
    errors: list[BaseException] = []

    def insert(value: int) -> Callable[[sqlite3.Connection], int]:
        def write(conn: sqlite3.Connection) -> int:
            inside.append(value)
            most[0] = max(most[0], len(inside))
            conn.execute("INSERT INTO t VALUES (?)", (value,))
            time.sleep(0.0005)  # let other threads try to get in meanwhile
            inside.remove(value)
            return value

        return write

    def worker(w: int) -> None:
        try:
            for i in range(25):
                assert writer.run(insert(w * 100 + i)) == w * 100 + i
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # No "database is locked": the threads queued in Python, never in SQLite; each write
    # ran alone, and those that queued meanwhile were committed together.
    assert errors == [] and most == [1]
    assert writer.stats().transactions <= 200
    with sqlite3.connect(tmp_path / "w.db") as conn:
        assert conn.execute("SELECT COUNT(DISTINCT x) FROM t").fetchone() == (200,)


def test_a_failing_write_is_rolled_back_and_raised(tmp_path: Path) -> None:
    writer = writer_on(tmp_path / "w.db")

    def fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (99)")
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        writer.run(fail)
    writer.run(lambda conn: conn.execute("INSERT INTO t VALUES (1)"))
    with sqlite3.connect(tmp_path / "w.db") as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]


@pytest.mark.parametrize("fails", ["before its change", "after its change"])
def test_writes_queued_meanwhile_are_one_transaction_and_fail_alone(
    tmp_path: Path, fails: str
) -> None:
    writer = writer_on(tmp_path / "w.db")
    entered, go = threading.Event(), threading.Event()
    results: dict[int, object] = {}
    runs: dict[int, int] = {}

    def first(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (0)")
        entered.set()
        assert go.wait(10)

    def insert(value: int) -> Callable[[sqlite3.Connection], int]:
        def write(conn: sqlite3.Connection) -> int:
            runs[value] = runs.get(value, 0) + 1
            if value == 3 and fails == "before its change":
                raise ValueError("refused 3")
            conn.execute("INSERT INTO t VALUES (?)", (value,))
            if value == 3:
                raise ValueError("refused 3")
            return value

        return write

    def call(value: int) -> None:
        try:
            results[value] = writer.run(insert(value))
        except ValueError as exc:
            results[value] = exc

    holder = threading.Thread(target=writer.run, args=(first,))
    holder.start()
    assert entered.wait(10)
    threads = [threading.Thread(target=call, args=(v,)) for v in range(1, 6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(writer._queue) < 5 and time.monotonic() < deadline:  # all five queued
        time.sleep(0.001)
    go.set()
    for thread in [holder, *threads]:
        thread.join(10)
    if fails == "before its change":  # the others' changes stand
        assert writer.stats().transactions == 2  # the first alone, then the five together
        assert runs == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
    else:  # undone with the whole transaction: the other four written again, each alone
        assert writer.stats().transactions == 2 + 4
        assert runs[3] == 1 and set(runs.values()) <= {1, 2}  # twice if before 3
    assert {v: r for v, r in results.items() if v != 3} == {1: 1, 2: 2, 4: 4, 5: 5}
    assert isinstance(results[3], ValueError)
    with sqlite3.connect(tmp_path / "w.db") as conn:  # 3's insert alone was undone
        assert conn.execute("SELECT x FROM t ORDER BY x").fetchall() == [
            (0,), (1,), (2,), (4,), (5,)]


def test_a_write_whose_caller_is_interrupted_while_queued_is_never_made(
    tmp_path: Path,
) -> None:
    writer = writer_on(tmp_path / "w.db")
    entered, go = threading.Event(), threading.Event()

    def first(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (1)")
        entered.set()
        assert go.wait(10)

    holder = threading.Thread(target=writer.run, args=(first,))
    holder.start()
    assert entered.wait(10)
    # Ctrl-C reaches this (main) thread while its write waits behind the first one.
    timer = threading.Timer(0.1, os.kill, args=(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        writer.run(lambda conn: conn.execute("INSERT INTO t VALUES (2)"))
    go.set()
    holder.join(10)
    # The writer goes on (no lead lost), and the interrupted write was never made.
    after = threading.Thread(target=writer.run,
                             args=(lambda conn: conn.execute("INSERT INTO t VALUES (3)"),))
    after.start()
    after.join(10)
    assert not after.is_alive()
    with sqlite3.connect(tmp_path / "w.db") as conn:
        assert conn.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (3,)]


def test_a_write_cannot_write_again(tmp_path: Path) -> None:
    writer = writer_on(tmp_path / "w.db")
    with pytest.raises(StoreError, match="cannot start another write"):
        writer.run(lambda conn: writer.run(lambda inner: None))
    assert writer.run(lambda conn: conn.execute("SELECT 1").fetchone()[0]) == 1  # still usable


def test_closing_the_store_while_other_threads_read_crashes_nothing(tmp_path: Path) -> None:
    # CPython's sqlite3 crashed the process when close() pulled a connection from under
    # a statement another thread was running (a stopped batch's worker polling).
    store = Store(tmp_path / "c.db")
    handle = make(store)
    stop = threading.Event()
    reads = [0] * 4

    def read(n: int) -> None:
        while not stop.is_set():
            assert store.get(handle.job_id).job_id == handle.job_id
            reads[n] += 1

    readers = [threading.Thread(target=read, args=(n,)) for n in range(4)]
    for thread in readers:
        thread.start()
    closes = 0
    # A reader that failed stops counting: the bounds make that a failure, not a hang.
    start = time.monotonic()
    while time.monotonic() - start < 0.5 or (min(reads) < 20 and time.monotonic() - start < 20):
        store.close()
        closes += 1
        time.sleep(0.001)
    # Two more reads each: the second surely started after the last close, on a new reader.
    after = list(reads)
    while any(reads[n] < after[n] + 2 for n in range(4)) and time.monotonic() - start < 30:
        time.sleep(0.001)
    stop.set()
    assert min(r - a for r, a in zip(reads, after, strict=True)) >= 2, "a reader stopped"
    for thread in readers:
        thread.join(10)
    assert closes > 100
    db = store._db
    assert len(db._readers) == 4  # type: ignore[attr-defined]  # each reading thread's own
    store.close()  # the threads have ended: their readers are closed now
    assert not db._readers  # type: ignore[attr-defined]
    assert store.get(handle.job_id).job_id == handle.job_id  # a later read reopens


def test_waiting_for_the_writer_is_counted(tmp_path: Path) -> None:
    writer = writer_on(tmp_path / "w.db")
    entered, go = threading.Event(), threading.Event()

    def slow(conn: sqlite3.Connection) -> None:
        entered.set()
        assert go.wait(10)

    holder = threading.Thread(target=writer.run, args=(slow,))
    holder.start()
    assert entered.wait(10)
    waiter = threading.Thread(target=writer.run, args=(lambda conn: None,))
    waiter.start()
    time.sleep(0.05)  # the waiter is blocked on the writer for at least this long
    go.set()
    holder.join(10)
    waiter.join(10)
    stats = writer.stats()
    assert stats.transactions == 2
    assert stats.wait_seconds >= 0.04 and stats.held_seconds >= 0.04


def test_threads_sharing_a_store_lose_nothing(store_at: Path | str) -> None:
    store = Store(store_at)
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for i in range(20):
                handle = make(store, key=f"t{w}-{i}")
                store.claim(handle.job_id)
                store.mark_submitted(handle.with_vendor({"job": f"t{w}-{i}"}),
                                     JobStatus(JobState.QUEUED))
                store.set_status(handle.job_id, JobStatus(JobState.SUCCEEDED))
                store.save_result(handle.job_id, Transcript("echo", handle.job_id, f"{w}-{i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    jobs = store.jobs()
    assert len(jobs) == 160 and all(j.status.state is JobState.SUCCEEDED for j in jobs)  # type: ignore[union-attr]
    assert all(
        [e.type for e in store.events(j.job_id)]
        == ["recorded", "sending", "submitted", "status", "status", "result"]
        for j in jobs
    )
    # The migration, then 5 a job, fewer where threads' writes were committed together.
    assert store.write_stats().transactions <= 1 + 160 * 5


def test_a_final_status_and_its_result_are_one_write(store_at: Path | str) -> None:
    store = Store(store_at)
    handle = make(store)
    store.claim(handle.job_id)
    store.mark_submitted(handle.with_vendor({"job": "v1"}), JobStatus(JobState.RUNNING))
    before = store.write_stats().transactions
    done = Transcript("echo", handle.job_id, "final words")
    assert store.set_final(handle.job_id, JobStatus(JobState.SUCCEEDED), done)
    assert store.write_stats().transactions == before + 1
    record = store.get(handle.job_id)
    assert record.status is not None and record.status.state is JobState.SUCCEEDED
    assert record.has_result and store.result(handle.job_id) == done
    assert [e.type for e in store.events(handle.job_id)][-2:] == ["status", "result"]
    # A final state never changes; the result is still replaced (as save_result does).
    again = Transcript("echo", handle.job_id, "again")
    assert not store.set_final(handle.job_id, JobStatus(JobState.FAILED), again)
    assert store.get(handle.job_id).status.state is JobState.SUCCEEDED  # type: ignore[union-attr]
    assert store.result(handle.job_id) == again


def test_set_final_decides_against_a_status_another_process_stored(store_at: Path | str) -> None:
    mine, other = Store(store_at), Store(store_at)
    handle = make(mine)
    mine.claim(handle.job_id)
    mine.mark_submitted(handle.with_vendor({"job": "v1"}), JobStatus(JobState.RUNNING))
    other.set_status(handle.job_id, JobStatus(JobState.FAILED, reason="vendor"))
    result = Transcript("echo", handle.job_id, "late")
    assert not mine.set_final(handle.job_id, JobStatus(JobState.SUCCEEDED), result)
    assert mine.get(handle.job_id).status.state is JobState.FAILED  # type: ignore[union-attr]


def test_a_new_store_opens_while_another_connection_holds_the_file(tmp_path: Path) -> None:
    # Processes opening a new store at the same instant: switching the file to WAL needs
    # it alone, and when another connection is mid-write SQLite answers "locked" at once
    # (its busy handler would deadlock), whatever the busy timeout.
    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")  # held, as a process mid-switch holds it
    probe = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        probe.execute("PRAGMA journal_mode=WAL")  # what a plain open meets, at once
    probe.close()
    timer = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    timer.start()
    try:
        store = Store(path)  # waits for the other connection instead of failing
        assert store.schema_version == SCHEMA_VERSION
        store.close()
    finally:
        timer.join()
        other.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
