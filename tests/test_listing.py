"""Job listings (issue 18, point 9): results out of the jobs rows, the shown state in SQL,
filters, order and pages on the indexes, streamed JSON with secrets masked, and
``voxhub jobs`` run as a real process."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from voxhub import (
    JobHandle,
    JobKind,
    JobRequest,
    JobState,
    JobStatus,
    RemoteUrl,
    Transcript,
    listing,
)
from voxhub._records import dumps, status_data
from voxhub._store_text import handle_text, result_text
from voxhub.clock import FakeClock
from voxhub.errors import InvalidInputError, StoreError
from voxhub.listing import SHOWN_STATES, JobFilter, JobListing, shown_state
from voxhub.models import LocalFile, new_job_id
from voxhub.redact import MASK, Secret
from voxhub.serialization import dump
from voxhub.store import _MIGRATIONS, SCHEMA_VERSION, Phase, Store

VOXHUB = str(Path(sys.executable).with_name("voxhub"))
VENDOR_SECRET = "bt-" + new_job_id()  # a builder token, stored among the vendor ids


def request(i: int = 0, provider: str = "echo", *, signed: bool = True) -> JobRequest:
    url = f"https://media.example/a{i}.wav" + (f"?sig=s3cr3t-sig-{i}&take=2" if signed else "")
    return JobRequest(
        provider=provider,
        media=RemoteUrl(url),
        kind=JobKind.TRANSCRIPTION,
        profile="default",
        idempotency_key=f"key-{i}",
    )


def add(
    store: Store,
    i: int = 0,
    *,
    provider: str = "echo",
    batch: str | None = None,
    signed: bool = True,
) -> str:
    """Record one job; its id."""
    handle = JobHandle(new_job_id(), provider, JobKind.TRANSCRIPTION, "default",
                       idempotency_key=f"key-{i}")  # fmt: skip
    store.record(request(i, provider, signed=signed), handle, batch=batch)
    return handle.job_id


def submit(store: Store, job_id: str, *, ids: dict[str, str] | None = None) -> JobHandle:
    record = store.get(job_id)
    store.claim(job_id)
    handle = record.handle.with_vendor(ids or {"job": "v-" + job_id})
    store.mark_submitted(handle, JobStatus(JobState.QUEUED))
    return handle


# --- results out of the jobs rows -----------------------------------------------------------


def columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[1] for r in conn.execute(f"PRAGMA table_xinfo({table})")]


def store_columns(store: Store, table: str) -> list[str]:
    """The table's columns, on either backend."""
    if isinstance(store.path, Path):
        return columns(store.path, table)
    rows = store._db.reader().execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name=?", (table,)
    )
    return [r[0] for r in rows]


def test_results_live_in_their_own_table(store_at: Path | str) -> None:
    store = Store(store_at)
    job = add(store)
    submit(store, job)
    assert "result" not in store_columns(store, "jobs") and "has_result" in store_columns(
        store, "jobs"
    )
    text = Transcript("echo", job, "first")
    store.set_final(job, JobStatus(JobState.SUCCEEDED), text)
    assert store.get(job).has_result and store.result(job) == text
    store.save_result(job, Transcript("echo", job, "second"))  # replaces it
    assert store.result(job).text == "second"  # type: ignore[union-attr]
    store.reopen(job, JobStatus(JobState.RUNNING))  # a vendor-side retry drops it
    assert not store.get(job).has_result and store.result(job) is None
    other = add(store, 1)
    store.claim(other)
    # A provider whose submit answer carries the result (a synchronous one).
    answer = Transcript("echo", other, "at once")
    handle = store.get(other).handle.with_vendor({"job": "v2"})
    store.mark_submitted(handle, JobStatus(JobState.SUCCEEDED), answer)
    assert store.get(other).has_result and store.result(other).text == "at once"  # type: ignore[union-attr]
    conn = store._db.reader()
    assert [tuple(r) for r in conn.execute("SELECT job_id FROM results ORDER BY job_id")] == [
        (other,)
    ]
    flags = dict(tuple(r) for r in conn.execute("SELECT job_id, has_result FROM jobs"))
    assert flags == {job: 0, other: 1}


def old_store(path: Path) -> dict[str, Any]:
    """A store at schema 3 (before results moved), written as that version wrote rows."""
    with sqlite3.connect(path) as conn:
        for script in _MIGRATIONS[:3]:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute("PRAGMA user_version = 3")
        made: dict[str, Any] = {}
        for i, (phase, state, error, ids, result) in enumerate([
            ("submitted", "succeeded", None,
             {"job": "v0", "builder_token": VENDOR_SECRET, "builder_token_name": "bn"},
             Transcript("revai", "x", "hello old store")),
            ("closed", "succeeded", None, {"job": "v1"}, Transcript("revai", "y", "closed one")),
            ("recorded", None, "refused: bad option", {}, None),
            ("sending", None, None, {}, None),
        ]):  # fmt: skip
            job_id = new_job_id()
            req = request(i, "revai") if i != 1 else attrs_evolve_media(request(i, "revai"))
            handle = JobHandle(job_id, "revai", JobKind.TRANSCRIPTION, "default", vendor_ids=ids)
            status = None if state is None else dumps(status_data(JobStatus(JobState(state))))
            conn.execute(
                """INSERT INTO jobs (job_id, provider, profile, kind, idempotency_key, phase,
                       state, status, request, handle, vendor_id, result, error, created_at,
                       updated_at) VALUES (?, 'revai', 'default', 'transcription', ?, ?, ?, ?,
                       ?, ?, ?, ?, ?, ?, ?)""",
                (job_id, f"k{i}", phase, state, status, dumps(dump(req)), handle_text(handle),
                 handle.vendor_id, None if result is None else result_text(result), error,
                 1000.0 + i, 1000.0 + i),
            )  # fmt: skip
            made[job_id] = {"request": req, "result": result, "phase": phase}
    return made


def attrs_evolve_media(req: JobRequest) -> JobRequest:
    import attrs

    return attrs.evolve(req, media=LocalFile("/data/in put/one.wav"))


@pytest.mark.parametrize("opener", ["store", "listing"])
def test_a_schema_3_store_is_migrated_with_its_results(tmp_path: Path, opener: str) -> None:
    path = tmp_path / "old.db"
    made = old_store(path)
    if opener == "listing":  # `voxhub jobs` on an old store upgrades it first
        rows = {r.job_id: r for r in JobListing(path).rows()}
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    assert "result" not in columns(path, "jobs")
    if opener == "store":
        rows = {r.job_id: r for r in store.listing.rows()}
    states = {job: rows[job].state for job in made}
    assert sorted(states.values()) == ["closed", "failed", "sending", "succeeded"]
    for job, facts in made.items():
        record = store.get(job)
        assert store.result(job) == facts["result"]
        assert record.has_result == (facts["result"] is not None) == rows[job].has_result
        assert rows[job].media == facts["request"].media.describe()
        assert rows[job].state == record.shown
    (first,) = [rows[j] for j in made if rows[j].vendor_ids.get("job") == "v0"]
    assert first.vendor_ids == {"job": "v0", "builder_token": MASK, "builder_token_name": "bn"}
    assert first.media == "https://media.example/a0.wav?sig=***&take=2"
    lines = "\n".join(JobListing(path).lines())
    assert VENDOR_SECRET not in lines and "s3cr3t-sig" not in lines


def test_a_newer_schema_is_refused_by_listings(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer voxhub"):
        JobListing(path)


# --- the shown state ---------------------------------------------------------------------------


def test_the_shown_column_and_shown_state_agree_on_every_combination(
    store_at: Path | str,
) -> None:
    store = Store(store_at)
    job = add(store)
    combos = list(itertools.product([p.value for p in Phase],
                                    [None, *(s.value for s in JobState)],
                                    [None, "", "boom"]))  # fmt: skip
    for phase, state, error in combos:
        store._db.write(lambda conn, values=(phase, state, error, job): conn.execute(
            "UPDATE jobs SET phase=?, state=?, error=? WHERE job_id=?", values))  # fmt: skip
        (shown,) = store._db.reader().execute("SELECT shown FROM jobs").fetchone()
        assert shown == shown_state(phase, state, error), (phase, state, error)
        assert shown in SHOWN_STATES
    assert set(SHOWN_STATES) == {*(s.value for s in JobState), *(p.value for p in Phase)}


def test_a_job_shows_each_state_of_its_life(store_at: Path | str) -> None:
    store = Store(store_at)
    job = add(store)
    seen = []

    def shown() -> str:
        (row,) = store.listing.rows()
        assert row.state == store.get(job).shown
        assert store.listing.count(JobFilter(state=row.state)) == 1
        seen.append(row.state)
        return row.state

    shown()
    store.claim(job)
    shown()
    store.release(job, error="connection refused", unsent=True)  # failed before it was sent
    shown()
    submit(store, job)
    shown()
    store.set_status(job, JobStatus(JobState.RUNNING, progress=0.5))
    shown()
    store.set_final(job, JobStatus(JobState.SUCCEEDED), Transcript("echo", job, "hi"))
    shown()
    store.mark_closed(job)
    assert shown() == "closed" and store.get(job).state == "succeeded"
    assert seen == ["recorded", "sending", "failed", "queued", "running", "succeeded", "closed"]


# --- filters, order, pages -----------------------------------------------------------------


@pytest.fixture
def many(store_at: Path | str) -> Store:
    """30 jobs a second apart (three share one timestamp), over two providers and batches."""
    return fill(Store(store_at, clock=FakeClock(start=1_000_000.0)))


@pytest.fixture
def many_sqlite(tmp_path: Path) -> Store:
    """:func:`many` on SQLite alone (for its query plans)."""
    return fill(Store(tmp_path / "many.db", clock=FakeClock(start=1_000_000.0)))


def fill(store: Store) -> Store:
    clock: Any = store.clock
    for i in range(30):
        job = add(store, i, provider="echo" if i % 3 else "other", batch=f"b{i % 2}")
        if i % 5 == 0:
            store.claim(job)
            store.release(job, error="refused")  # shows failed
        if i not in (10, 11):  # 10, 11 and 12 were recorded at the same time
            clock.advance(1.0)
    return store


def expected(store: Store, newest_first: bool = True, **where: str) -> list[str]:
    rows = store.jobs()  # every record, decoded: the slow way, to compare with
    rows = [r for r in rows if all(
        (r.shown if k == "state" else getattr(r, k)) == v for k, v in where.items())]  # fmt: skip
    order = sorted(rows, key=lambda r: r.created_at)  # stable: recording order for ties
    return [r.job_id for r in (reversed(order) if newest_first else order)]


WHERE = [
    {},
    {"state": "failed"},
    {"state": "recorded"},
    {"provider": "other"},
    {"batch": "b1"},
    {"state": "recorded", "provider": "echo", "batch": "b0"},
]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("newest_first", [True, False])
def test_filters_order_and_pages_match_the_slow_way(
    many: Store, monkeypatch: pytest.MonkeyPatch, where: dict[str, str], newest_first: bool
) -> None:
    monkeypatch.setattr(listing, "CHUNK", 4)  # several chunks, one boundary inside the tie
    want = expected(many, newest_first, **where)
    assert want and many.listing.count(JobFilter(**where)) == len(want)
    got = [r.job_id for r in many.listing.rows(JobFilter(**where), newest_first=newest_first)]
    assert got == want
    lines = [
        json.loads(line)["job_id"]
        for line in many.listing.lines(JobFilter(**where), newest_first=newest_first)
    ]
    assert lines == want
    for limit, offset in [(1, 0), (5, 0), (5, 3), (7, 9), (100, 2), (3, len(want))]:
        page = many.listing.rows(JobFilter(**where), newest_first=newest_first, limit=limit,
                              offset=offset)  # fmt: skip
        assert [r.job_id for r in page] == want[offset : offset + limit]


def test_json_lines_are_the_rows(many: Store) -> None:
    rows = [r.as_dict() for r in many.listing.rows()]
    lines = [json.loads(line) for line in many.listing.lines()]
    assert [list(line) for line in lines] == [list(row) for row in rows]  # keys, in order
    for line, row in zip(lines, rows, strict=True):
        for key in ("created_at", "updated_at"):
            assert line.pop(key) == pytest.approx(row.pop(key), abs=1e-3)
        assert line == row


def test_bad_filters_and_pages_are_refused_naming_the_field(many: Store) -> None:
    with pytest.raises(InvalidInputError, match="state must be one of") as caught:
        JobFilter(state="bogus")
    assert caught.value.field == "state"
    with pytest.raises(InvalidInputError) as caught:
        list(many.listing.rows(limit=-1))
    assert caught.value.field == "limit"
    with pytest.raises(InvalidInputError) as caught:
        list(many.listing.lines(offset=-1))
    assert caught.value.field == "offset"


def plans(store: Store, run: Any) -> list[str]:
    """EXPLAIN QUERY PLAN of every listing statement ``run()`` makes."""
    statements: list[str] = []
    store.trace_sql(statements.append)
    run()
    store.trace_sql(None)
    conn = sqlite3.connect(store.path)
    found = []
    for sql in statements:
        if sql.lstrip().upper().startswith("SELECT") and "FROM jobs" in sql:
            found.append(" / ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql)))
    conn.close()
    return found


@pytest.mark.parametrize(("where", "index"), [
    ({}, "jobs_created"), ({"state": "failed"}, "jobs_shown"),
    ({"provider": "other"}, "jobs_provider"), ({"batch": "b1"}, "jobs_batch"),
])  # fmt: skip
def test_listings_read_an_index_in_order(
    many_sqlite: Store, monkeypatch: pytest.MonkeyPatch, where: dict[str, str], index: str
) -> None:
    many = many_sqlite
    monkeypatch.setattr(listing, "CHUNK", 2)  # the keyset continuation is planned too
    found = plans(many, lambda: (list(many.listing.lines(JobFilter(**where))),
                                 many.listing.count(JobFilter(**where))))  # fmt: skip
    assert len(found) >= 3
    for plan in found:
        assert index in plan or "COVERING INDEX" in plan, plan
        assert "TEMP B-TREE" not in plan, plan  # sorted by the index, not afterwards
        assert not plan.startswith("SCAN jobs /") and plan != "SCAN jobs", plan


# --- secrets -----------------------------------------------------------------------------------


def test_listings_never_show_secrets(store_at: Path | str) -> None:
    store = Store(store_at)
    job = add(store)
    submit(store, job, ids={"task": "t-1", "builder_token": VENDOR_SECRET, "api-key": "k-9876543"})
    registered = "reg1stered-" + new_job_id()
    Secret(registered)
    other = add(store, 1)
    store.claim(other)
    store.release(other, error=f'vendor said "no" to {registered}\\n', unsent=True)
    plain = add(store, 2)
    store.claim(plain)
    store.release(plain, error=f"token {registered} refused", unsent=True)
    text = "\n".join(store.listing.lines())
    rows = [r.as_dict() for r in store.listing.rows()]
    for shown in (text, json.dumps(rows)):
        assert VENDOR_SECRET not in shown and "k-9876543" not in shown
        assert registered not in shown and "s3cr3t-sig" not in shown
    by_id = {json.loads(line)["job_id"]: json.loads(line) for line in text.splitlines()}
    assert by_id[job]["vendor_ids"] == {"task": "t-1", "builder_token": MASK, "api-key": MASK}
    assert by_id[other]["error"] == f'vendor said "no" to {MASK}\\n'
    assert by_id[plain]["error"] == f"token {MASK} refused"


# --- voxhub jobs, the real command ---------------------------------------------------------


def voxhub(store: Path | str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([VOXHUB, "--store", str(store), "jobs", *args], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def test_an_empty_store_says_so(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    done = voxhub(path)
    assert done.stdout == "" and done.stderr.strip() == f"no jobs in the store {path}"
    assert not path.exists()  # listing a store that is not there creates nothing
    Store(path).close()
    done = voxhub(path, "--state", "failed", "-p", "echo")
    assert done.stdout == ""
    assert done.stderr.startswith("no jobs match --state failed --provider echo")
    assert voxhub(path, "--json").stdout == "[]\n" and voxhub(path, "--jsonl").stdout == ""
    assert voxhub(path, "--json").stderr == ""  # a complete JSON listing says nothing else


def test_state_accepts_only_real_states(tmp_path: Path) -> None:
    done = voxhub(tmp_path / "s.db", "--state", "bogus", ok=False)
    assert done.returncode == 2 and "'bogus' is not one of" in done.stderr
    assert "'closed'" in done.stderr and "'recorded'" in done.stderr
    both = voxhub(tmp_path / "s.db", "--json", "--jsonl", ok=False)
    assert both.returncode == 2 and "exclude each other" in both.stderr


def test_pages_with_a_footer_and_closed_jobs_shown_closed(store_at: Path | str) -> None:
    store = Store(store_at, clock=FakeClock(start=2_000_000.0))
    jobs = []
    for i in range(60):
        jobs.append(add(store, i))
        store.clock.advance(1.0)  # type: ignore[attr-defined]
    closed = jobs[-1]
    submit(store, closed, ids={"job": "v-closed", "builder_token": VENDOR_SECRET})
    store.set_final(closed, JobStatus(JobState.SUCCEEDED), Transcript("echo", closed, "hi"))
    store.mark_closed(closed)
    store.close()
    done = voxhub(store_at)
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["JOB", "PROVIDER", "STATE", "VENDOR", "ID", "CREATED", "MEDIA"]
    assert len(lines) == 51 and lines[1].split()[:4] == [closed, "echo", "closed", "v-closed"]
    assert [line.split()[0] for line in lines[1:]] == jobs[::-1][:50]  # newest first
    assert done.stderr.strip() == (
        "1-50 of 60 jobs, newest first; 10 more: --offset 50 for the next page, --limit 0 for all"
    )
    rest = voxhub(store_at, "--offset", "50")
    assert [line.split()[0] for line in rest.stdout.splitlines()[1:]] == jobs[::-1][50:]
    assert rest.stderr == ""
    assert len(voxhub(store_at, "--limit", "0").stdout.splitlines()) == 61
    everything = json.loads(voxhub(store_at, "--json").stdout)
    assert [r["job_id"] for r in everything] == jobs[::-1]  # every job unless --limit
    assert everything[0]["state"] == "closed" and everything[0]["phase"] == "closed"
    assert everything[0]["has_result"] is True and everything[0]["vendor_ids"]["job"] == "v-closed"
    first = voxhub(store_at, "--jsonl", "--limit", "5", "--oldest-first", "--state", "recorded")
    assert [json.loads(line)["job_id"] for line in first.stdout.splitlines()] == jobs[:5]
    assert "5 of 59 jobs matching --state recorded, oldest first; 54 more" in first.stderr
    only = json.loads(voxhub(store_at, "--json", "--state", "closed").stdout)
    assert [r["job_id"] for r in only] == [closed]
    outputs = "".join(voxhub(store_at, *a).stdout for a in ([], ["--json"], ["--jsonl"]))
    assert VENDOR_SECRET not in outputs and "s3cr3t-sig" not in outputs
    show = voxhub(store_at, "show", closed)
    shown = json.loads(show.stdout)
    assert shown["state"] == "closed" and shown["status"]["state"] == "succeeded"
    assert [e["type"] for e in shown["events"]][-1] == "closed"
    assert VENDOR_SECRET not in show.stdout
    missing = voxhub(store_at, "show", "vx_nope", ok=False)
    assert missing.returncode == 4 and "no job 'vx_nope'" in missing.stderr


def test_json_streams_to_a_reader_that_leaves_early(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    for i in range(2500):
        # Unsigned URLs: each signed one becomes a registered secret when read back.
        add(store, i, signed=False)
    store.close()
    proc = subprocess.Popen([VOXHUB, "--store", str(store.path), "jobs", "--jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    first = json.loads(proc.stdout.readline())
    assert first["state"] == "recorded"
    proc.stdout.close()  # like `| head -1`
    assert proc.wait(30) == 0
    assert proc.stderr.read() == b""  # no BrokenPipeError traceback
