"""What only the PostgreSQL store has: a URL whose password never shows, its own schema
versions, a key file every machine must share, LISTEN/NOTIFY waits, and row locks where
a write decides on what it read. Against a real server (the ``voxhub_postgres`` fixture).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from voxhub import JobHandle, JobKind, JobRequest, RemoteUrl
from voxhub._database import PostgresUrl
from voxhub._pg_schema import MIGRATIONS
from voxhub._postgres import pg_sql
from voxhub.clock import SystemClock
from voxhub.errors import BatchBusyError, StoreError
from voxhub.listing import JobListing
from voxhub.models import new_job_id
from voxhub.pg_server import PostgresServer
from voxhub.sandbox import RunningSandbox
from voxhub.store import SCHEMA_VERSION, Store

VOXHUB = str(Path(sys.executable).with_name("voxhub"))


def record(store: Store, key: str = "k", header: str = "Bearer s3cr3t-header") -> JobHandle:
    media = RemoteUrl("http://x/a", {"Authorization": header})
    request = JobRequest(provider="echo", media=media, kind=JobKind.TRANSCRIPTION,
                         profile="echo", idempotency_key=key)  # fmt: skip
    handle = JobHandle(new_job_id(), "echo", JobKind.TRANSCRIPTION, "echo", idempotency_key=key)
    store.record(request, handle)
    return handle


def test_statements_are_translated_once_for_psycopg() -> None:
    assert pg_sql("SELECT a FROM t WHERE b=? AND c IN (?, ?)") == (
        "SELECT a FROM t WHERE b=%s AND c IN (%s, %s)"
    )
    # A literal % doubles; a ? inside a string literal is text; SQLite's IS ? is null-safe =.
    assert pg_sql("SELECT 1 WHERE k LIKE '%#x?%' AND s IS ?") == (
        "SELECT 1 WHERE k LIKE '%%#x?%%' AND s IS NOT DISTINCT FROM %s"
    )
    assert pg_sql.cache_info().currsize >= 2


def test_the_password_never_shows(voxhub_postgres_url: str) -> None:
    password = voxhub_postgres_url.split(":")[2].split("@")[0]
    store = Store(voxhub_postgres_url)
    shown = [str(store.path), repr(store.path), f"{store.path}", f"{store.path:>10}"]
    assert all(password not in text and ":***@" in text for text in shown), shown
    assert store.path == PostgresUrl(voxhub_postgres_url)  # reopens the same store
    assert Store(store.path).find("vx_none") is None
    wrong = voxhub_postgres_url.replace(password, "not-" + password)
    with pytest.raises(StoreError) as refused:
        Store(wrong)
    message = str(refused.value)
    assert "password authentication failed" in message and password not in message
    assert ":***@" in message


def test_the_cli_takes_a_url_and_never_prints_its_password(
    voxhub_postgres_url: str, tmp_path: Path
) -> None:
    password = voxhub_postgres_url.split(":")[2].split("@")[0]
    store = Store(voxhub_postgres_url)
    job = record(store).job_id
    env_runs = [
        [VOXHUB, "--store", voxhub_postgres_url, "jobs"],
        [VOXHUB, "jobs", "--json"],  # from $VOXHUB_STORE
        [VOXHUB, "config", "path"],
        [VOXHUB, "--store", voxhub_postgres_url, "jobs", "show", "vx_nope"],
    ]
    import os

    env = {**os.environ, "VOXHUB_STORE": voxhub_postgres_url}
    done = [subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
            for argv in env_runs]  # fmt: skip
    assert [d.returncode for d in done] == [0, 0, 0, 4], [d.stderr for d in done]
    assert job in done[0].stdout and job in done[1].stdout
    assert f"store:  {store.path}" in done[2].stdout
    assert f"in the store {store.path}" in done[3].stderr
    assert all(password not in d.stdout + d.stderr for d in done)


def test_a_printed_resume_command_runs_as_printed_with_the_password_from_pgpassword(
    voxhub_postgres_url: str, echo: RunningSandbox, tmp_path: Path
) -> None:
    import os
    import shlex

    password = voxhub_postgres_url.split(":")[2].split("@")[0]
    settings = echo.settings()
    env = {**os.environ, "VOXHUB_LOAD_PLUGINS": "voxhub-echo", "NO_COLOR": "1",
           "VOXHUB_ECHO_BASE_URL": settings["base_url"],
           "VOXHUB_ECHO_API_KEY": settings["api_key"]}  # fmt: skip
    env.pop("VOXHUB_STORE", None)
    env.pop("PGPASSWORD", None)
    inputs = []
    for n in range(3):
        path = tmp_path / f"r{n}.wav"
        path.write_bytes(b"RIFF" + bytes(64))
        inputs.append(str(path))
    first = subprocess.run(
        [VOXHUB, "--store", voxhub_postgres_url, "transcribe", *inputs, "--option",
         "fail=true", "--concurrency", "1", "--fail-fast"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert first.returncode == 1, first.stderr
    assert password not in first.stdout + first.stderr
    (line,) = [x for x in first.stderr.splitlines() if "finish the rest with: " in x]
    printed = line.split("finish the rest with: ", 1)[1]
    assert "***" not in printed and "PGPASSWORD" in printed  # says where the password goes
    argv = shlex.split(printed, comments=True)
    assert argv[0] == "voxhub" and argv[-3:-1] == ["batches", "resume"]
    resumed = subprocess.run(
        [VOXHUB, *argv[1:]], capture_output=True, text=True, timeout=60,
        env={**env, "PGPASSWORD": password},
    )  # fmt: skip
    # It connected and ran the two inputs --fail-fast left (they fail again: fail=true).
    assert "password" not in resumed.stderr, resumed.stderr
    assert resumed.returncode == 1 and "0 done, 3 failed" in resumed.stderr, resumed.stderr
    (again,) = [x for x in first.stderr.splitlines() if "run the failed jobs again" in x]
    assert shlex.split(again.split(": ", 1)[1], comments=True)[-1] == "--retry-failed"


def test_a_version_one_store_is_upgraded_and_a_newer_one_refused(
    voxhub_postgres: PostgresServer,
) -> None:
    import psycopg

    url = voxhub_postgres.new_database(empty=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(MIGRATIONS[0].encode())
        conn.execute(b"CREATE TABLE voxhub_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(b"INSERT INTO voxhub_meta VALUES ('schema_version', '1')")
    store = Store(url)
    assert store.schema_version == SCHEMA_VERSION
    store.set_callback_token_hash(record(store).job_id, "abc")  # a table of version 2
    assert store.callback_token_hash(store.jobs()[0].job_id) == "abc"
    store._db.write(lambda conn: conn.execute(
        "UPDATE voxhub_meta SET value=? WHERE name='schema_version'", (str(SCHEMA_VERSION + 1),)
    ))  # fmt: skip
    store.close()
    with pytest.raises(StoreError, match="newer voxhub"):
        Store(url)
    with pytest.raises(StoreError, match="newer voxhub"):
        JobListing(url)
    voxhub_postgres.drop_database(url)


def test_every_machine_needs_the_stores_key_file(
    voxhub_postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Store(voxhub_postgres_url)
    handle = record(first, header="Bearer only-with-the-key")
    key = first._db.key_path
    assert key.stat().st_mode & 0o777 == 0o600
    # Another machine: its own data folder, no key file yet.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "other-machine"))
    with pytest.raises(StoreError, match="copy its key file"):
        Store(voxhub_postgres_url)
    elsewhere = tmp_path / "elsewhere.key"
    elsewhere.write_text("0" * 64)
    monkeypatch.setenv("VOXHUB_STORE_KEY_FILE", str(elsewhere))
    with pytest.raises(StoreError, match="is not the key of the job store"):
        Store(voxhub_postgres_url)
    shutil.copy(key, elsewhere)  # what an operator does
    second = Store(voxhub_postgres_url)
    media = second.get(handle.job_id).request.media
    assert media.auth_headers["Authorization"].reveal() == "Bearer only-with-the-key"  # type: ignore[union-attr]
    assert second.callback_key() == first.callback_key()


def test_secrets_never_reach_the_database(voxhub_postgres_url: str) -> None:
    store = Store(voxhub_postgres_url)
    handle = record(store)
    store.add_event(handle.job_id, "callback",
                    {"token": "s3cr3t-header", "note": "Bearer s3cr3t-header"})  # fmt: skip
    tables = [r[0] for r in store._db.reader().execute(
        "SELECT tablename FROM pg_tables WHERE schemaname='public'")]  # fmt: skip
    assert {"jobs", "events", "results", "voxhub_meta"} <= set(tables)
    for table in tables:
        sql = f"SELECT t::text FROM {table} t"  # noqa: S608 - the server's own table names
        rows = store._db.reader().execute(sql).fetchall()
        assert not any("s3cr3t-header" in row[0] for row in rows), table


WAIT_EVENT = """
import sys
from voxhub.store import Store
Store(sys.argv[1]).add_event(sys.argv[2], "callback", {"from": "another process"})
"""


def test_a_waiter_is_woken_by_notify_and_reads_nothing_while_idle(
    voxhub_postgres_url: str,
) -> None:
    store = Store(voxhub_postgres_url)
    job = record(store).job_id
    seq = store.last_seq(job)
    statements: list[str] = []
    store.trace_sql(statements.append)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.extend(
        store.wait_for_event(job, seq, 60, clock=SystemClock(), interval=0.05)))  # fmt: skip
    waiter.start()
    waiter.join(1.0)  # idle for a second: twenty intervals
    assert waiter.is_alive() and got == []
    idle_reads = sum("FROM events" in s for s in statements)
    assert idle_reads == 1  # the first look only: no polling
    subprocess.run([sys.executable, "-c", WAIT_EVENT, voxhub_postgres_url, job], check=True,
                   timeout=60)  # fmt: skip
    waiter.join(30)
    assert not waiter.is_alive()
    assert [e.data for e in got] == [{"from": "another process"}]  # type: ignore[attr-defined]
    assert sum("FROM events" in s for s in statements) == 2


# Each claimer opens the store, says so, claims when told (all at once), then stays alive
# until told again (a winner that exited would be a dead owner, whose claim the next one
# rightly takes over).
CLAIM_BATCH = """
import sys
from voxhub.store import Store
from voxhub._batch_rows import BatchRows
from voxhub.errors import BatchBusyError
rows = BatchRows(Store(sys.argv[1]))
rows.count()
print("ready", flush=True)
sys.stdin.readline()
try:
    rows.claim(sys.argv[2])
    print("won", flush=True)
except BatchBusyError:
    print("busy", flush=True)
sys.stdin.read()
"""


def test_only_one_process_claims_a_batch(voxhub_postgres_url: str) -> None:
    # The claim reads the owner, then writes itself: the row is locked between the two,
    # so processes racing for it cannot both read "free".
    from voxhub._batch_model import BatchSettings
    from voxhub._batch_rows import BatchRows, Plan, PlannedItem, new_batch_id

    rows = BatchRows(Store(voxhub_postgres_url))
    batch = new_batch_id()
    rows.record(Plan(batch, BatchSettings(), [PlannedItem(0, "in", None, error="x")]))
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM_BATCH, voxhub_postgres_url, batch],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(6)]  # fmt: skip
    try:
        assert [proc.stdout.readline() for proc in procs] == ["ready\n"] * 6  # type: ignore[union-attr]
        for proc in procs:
            proc.stdin.write("go\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
        outcomes = sorted(proc.stdout.readline().strip() for proc in procs)  # type: ignore[union-attr]
        assert outcomes == ["busy"] * 5 + ["won"]
        with pytest.raises(BatchBusyError):
            rows.claim(batch)  # the winner is alive
    finally:
        for proc in procs:
            proc.communicate(timeout=60)


def test_a_server_whose_starter_is_killed_stops_by_itself() -> None:
    # pg_ctl leaves the server running on its own: killed without its clean-up, the
    # process that started it must still not leave a server (or its data) behind.
    starter = subprocess.Popen(
        [sys.executable, "-c",
         "from voxhub.pg_server import PostgresServer; import time\n"
         "s = PostgresServer.start(); print(s.port, s.root, flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert starter.stdout is not None
    port_text, root_text = starter.stdout.readline().split()
    root = Path(root_text)
    assert (root / "data").is_dir()
    with socket.create_connection(("127.0.0.1", int(port_text)), timeout=5):
        pass  # it serves
    starter.kill()
    starter.wait()
    deadline = time.monotonic() + 60
    while root.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not root.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(port_text)), timeout=5).close()
