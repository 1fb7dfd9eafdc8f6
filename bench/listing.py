"""``voxhub jobs`` on stores of 10,000 and 100,000 jobs, against ``sqlite3`` in the same run.

Issue 18, point 9. Each store is made by ``Store()`` (the real schema) and filled with
``executemany``: rows copied from five template jobs that the real store API wrote
(record, claim, submit, statuses, result; 92% succeeded, 5% failed, 1% each running,
recorded and closed), about 6 KB per job with the transcript, as in the issue's
measurement. Then, in fresh processes, one warm-up and ``--repeats`` timed runs each:

* every job as JSON: ``voxhub jobs --json`` (to /dev/null), against the ``sqlite3``
  command-line tool printing the same columns (``sqlite3 -json``, the same SELECT
  without voxhub's masking of secret vendor ids) and against a Python process running
  the listing's own JSON query with the ``sqlite3`` module (the floor for any Python
  CLI: interpreter start-up plus the query);
* the default page, ``--state failed`` and ``--state cancelled`` (no match), on the
  store and on an empty store: the difference is what the store's size costs;
* peak RSS of each ``voxhub`` process (``wait4``), by store size.

Targets: listing every job as JSON at most 2x ``sqlite3``; a page or a filter at most
50 ms more than on an empty store; memory flat as the store grows.

    python bench/listing.py [--sizes 10000 100000] [--repeats 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import median, table
from voxhub import JobHandle, JobKind, JobRequest, JobState, JobStatus, Transcript
from voxhub.listing import _OBJECT, JobFilter
from voxhub.models import LocalFile, Segment, Word, new_job_id
from voxhub.store import Store

VOXHUB = shutil.which("voxhub", path=str(Path(sys.executable).parent)) or "voxhub"
SQLITE3 = shutil.which("sqlite3")
TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None
# What `sqlite3 -json` prints: the listing's columns, straight from the table.
BASELINE_SQL = (
    "SELECT job_id, provider, profile, shown AS state, phase, vendor_ids, media, batch, "
    "has_result, error, created_at, updated_at FROM jobs ORDER BY created_at DESC, rowid DESC"
)
# The listing's own JSON query (voxhub.listing), run by a bare Python process.
PY_QUERY = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
out = sys.stdout
for (line,) in conn.execute(sys.argv[2]):
    out.write(line)
    out.write("\\n")
"""
JSON_SQL = f"SELECT {_OBJECT} FROM jobs ORDER BY created_at DESC, rowid DESC"  # noqa: S608
KINDS = ("succeeded", "failed", "running", "recorded", "closed")


def _kind(i: int) -> str:
    slot = i % 100
    if slot < 5:
        return "failed"
    return {5: "running", 6: "recorded", 7: "closed"}.get(slot, "succeeded")


def _transcript(job_id: str) -> Transcript:
    """About 3.4 KB stored: 6 segments of 6 words, with times and confidences."""
    segments = []
    t = 0.0
    for s in range(6):
        words = tuple(
            Word(round(t + w * 0.41, 2), round(t + w * 0.41 + 0.35, 2), f"word{w}", 0.93)
            for w in range(6)
        )
        text = " ".join(w.text for w in words) + "."
        segments.append(Segment(t, t + 5.0, text, speaker=str(s % 2), confidence=0.91,
                                words=words))  # fmt: skip
        t += 5.0
    return Transcript("revai", job_id, " ".join(s.text for s in segments), "en", t,
                      tuple(segments))  # fmt: skip


def _templates(folder: Path) -> dict[str, dict[str, Any]]:
    """One job of each kind written by the real store API: its rows, to copy."""
    store = Store(folder / "templates.db")
    made: dict[str, str] = {}
    for kind in KINDS:
        job_id = new_job_id()
        key = "key-" + job_id
        request = JobRequest(
            provider="revai",
            media=LocalFile(f"/data/audio/{kind}/input-000000.wav"),
            kind=JobKind.TRANSCRIPTION,
            options={"speaker_channels_count": 1, "skip_punctuation": False,
                     "custom_vocabulary": ["voxhub", "orchestrator"], "remove_disfluencies": True,
                     "filter_profanity": False, "delete_after_seconds": 86400},
            metadata={"input": f"/data/audio/{kind}/input-000000.wav", "team": "operations"},
            idempotency_key=key,
        )  # fmt: skip
        handle = JobHandle(job_id, "revai", JobKind.TRANSCRIPTION, "default",
                           endpoint="https://api.rev.ai/speechtotext/v1", idempotency_key=key)
        store.record(request, handle, batch="vb_template")
        made[kind] = job_id
        if kind == "recorded":
            continue
        store.claim(job_id)
        submitted = handle.with_vendor({"job": "vendor-" + job_id},
                                       state={"created_on": "2026-01-01T00:00:00Z"})
        store.mark_submitted(submitted, JobStatus(JobState.QUEUED, "in_progress"))
        store.set_status(job_id, JobStatus(JobState.RUNNING, "in_progress", progress=0.5))
        if kind == "failed":
            store.set_status(job_id, JobStatus(JobState.FAILED, "failed", reason="media",
                                               detail="the media could not be decoded"))
        elif kind in ("succeeded", "closed"):
            store.set_final(job_id, JobStatus(JobState.SUCCEEDED, "transcribed"),
                            _transcript(job_id))
            if kind == "closed":
                store.mark_closed(job_id)
    store.close()
    conn = sqlite3.connect(folder / "templates.db")
    conn.row_factory = sqlite3.Row
    templates = {}
    for kind, job_id in made.items():
        job = dict(conn.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone())
        del job["shown"]  # generated
        result = conn.execute("SELECT result FROM results WHERE job_id=?", (job_id,)).fetchone()
        events = conn.execute(
            "SELECT at, type, data FROM events WHERE job_id=? ORDER BY seq", (job_id,)
        ).fetchall()
        templates[kind] = {
            "job": job,
            "result": None if result is None else result[0],
            "events": [tuple(e) for e in events],
        }
    conn.close()
    return templates


def fill(path: Path, count: int, templates: dict[str, dict[str, Any]]) -> float:
    """A store of ``count`` jobs at ``path`` (made by Store(), filled directly); seconds."""
    started = time.perf_counter()
    Store(path).close()
    columns = list(templates["succeeded"]["job"])
    insert_job = (
        f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
    )
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    base = time.time() - count * 0.5

    def rows(start: int, stop: int) -> Iterator[tuple[str, Any]]:
        for i in range(start, stop):
            kind = _kind(i)
            template = templates[kind]
            old_id = template["job"]["job_id"]
            new_id = f"vx_{i:020x}"
            old_path = "input-000000.wav"
            new_path = f"input-{i:06d}.wav"

            pairs = ((old_id, new_id), (old_path, new_path))

            def swap(text: Any, pairs: tuple[tuple[str, str], ...] = pairs) -> Any:
                if not isinstance(text, str):
                    return text
                for old, new in pairs:
                    text = text.replace(old, new)
                return text

            created = base + i * 0.5
            job = {k: swap(v) for k, v in template["job"].items()}
            job["batch"] = f"vb_{i // 1000:016x}"
            job["created_at"], job["updated_at"] = created, created + 30.0
            yield "job", tuple(job[c] for c in columns)
            if template["result"] is not None:
                yield "result", (new_id, swap(template["result"]))
            for at, type_, data in template["events"]:
                yield "event", (new_id, created + (at - template["job"]["created_at"]), type_,
                                swap(data))  # fmt: skip

    step = 5000
    for start in range(0, count, step):
        batch: dict[str, list[Any]] = {"job": [], "result": [], "event": []}
        for table_, values in rows(start, min(count, start + step)):
            batch[table_].append(values)
        conn.execute("BEGIN")
        conn.executemany(insert_job, batch["job"])
        conn.executemany("INSERT INTO results (job_id, result) VALUES (?, ?)", batch["result"])
        conn.executemany(
            "INSERT INTO events (job_id, at, type, data) VALUES (?, ?, ?, ?)", batch["event"]
        )
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def sizes(path: Path, count: int) -> dict[str, float]:
    """Bytes per job: the whole file, and by table (indexes counted with their table)."""
    conn = sqlite3.connect(path)
    found = {"file": float(path.stat().st_size)}
    with contextlib.suppress(sqlite3.Error):  # dbstat is optional in SQLite builds
        owners = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master").fetchall())
        for name, size in conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            owner = owners.get(name, name)
            if owner.startswith("sqlite_autoindex_"):
                owner = owner.split("_")[2]
            found[owner] = found.get(owner, 0.0) + size
    conn.close()
    return {k: v / max(count, 1) for k, v in found.items()}


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process, its output thrown away.

    The peak comes from a second run under ``/usr/bin/time``: a child forked from this
    (large) process would report this process's pages in its own peak.
    """
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)  # fmt: skip
    elapsed = time.perf_counter() - started
    if not TIME:
        return elapsed, float("nan")
    with tempfile.NamedTemporaryFile("r") as out:
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run([TIME, "-f", "%M", "-o", out.name, *argv], env=env, check=True, **quiet)
        return elapsed, int(out.read().split()[-1]) / 1024


def measure(commands: dict[str, list[str]], store: Path, repeats: int) -> dict[str, Any]:
    """Median seconds and the largest peak RSS per command, interleaved, after a warm-up."""
    env = {**os.environ, "VOXHUB_STORE": str(store)}
    times: dict[str, list[float]] = {name: [] for name in commands}
    rss: dict[str, float] = dict.fromkeys(commands, 0.0)
    for round_ in range(repeats + 1):
        for name, argv in commands.items():
            elapsed, peak = run(argv, env)
            if round_:
                times[name].append(elapsed)
                rss[name] = max(rss[name], peak)
    return {name: (median(times[name]), rss[name]) for name in commands}


def commands(store: Path) -> dict[str, list[str]]:
    found = {
        "voxhub jobs --json": [VOXHUB, "jobs", "--json"],
        "python sqlite3 module, same JSON query": [
            sys.executable,
            "-c",
            PY_QUERY,
            str(store),
            JSON_SQL,
        ],
        "voxhub jobs (default page)": [VOXHUB, "jobs"],
        "voxhub jobs --state failed": [VOXHUB, "jobs", "--state", "failed"],
        "voxhub jobs --state cancelled (no match)": [VOXHUB, "jobs", "--state", "cancelled"],
        "voxhub jobs --json --limit 50": [VOXHUB, "jobs", "--json", "--limit", "50"],
    }
    if SQLITE3:
        found["sqlite3 -json, same columns"] = [SQLITE3, "-json", str(store), BASELINE_SQL]
    return found


def in_process(path: Path) -> dict[str, float]:
    """The listing API in this process: every job as rows and as JSON lines (seconds)."""
    store = Store(path)
    started = time.perf_counter()
    rows = sum(1 for _ in store.listing.rows())
    as_rows = time.perf_counter() - started
    started = time.perf_counter()
    lines = sum(1 for _ in store.listing.lines())
    as_lines = time.perf_counter() - started
    store.close()
    assert rows == lines
    return {"rows": as_rows, "lines": as_lines}


def plans(path: Path) -> list[tuple[str, str]]:
    """EXPLAIN QUERY PLAN of the first page of each kind of listing."""
    store = Store(path)
    found = []
    for label, where in [("every job", JobFilter()), ("--state failed", JobFilter("failed")),
                         ("--provider revai", JobFilter(provider="revai")),
                         ("--batch", JobFilter(batch="vb_0000000000000001"))]:  # fmt: skip
        statements: list[str] = []
        store.trace_sql(statements.append)
        list(store.listing.lines(where, limit=50))
        store.trace_sql(None)
        (sql,) = [s for s in statements if "FROM jobs" in s]
        plan = store._db.reader().execute("EXPLAIN QUERY PLAN " + sql).fetchall()
        found.append((label, " / ".join(r[3] for r in plan)))
    store.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="Make (or reuse) the stores in this folder.")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="voxhub-listing-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        report(folder, args.sizes, args.repeats)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def report(folder: Path, counts: list[int], repeats: int) -> None:
    templates = _templates(folder)
    empty = folder / "empty.db"
    Store(empty).close()
    stores: dict[int, Path] = {0: empty}
    made = []
    for count in counts:
        path = folder / f"jobs-{count}.db"
        if not path.exists():
            made.append((count, fill(path, count, templates)))
        stores[count] = path
    for count, seconds in made:
        print(f"- made a store of {count} jobs in {seconds:.1f} s ({count / seconds:,.0f} jobs/s)")
    results = {count: measure(commands(path), path, repeats) for count, path in stores.items()}
    print()
    print(f"Median of {repeats} fresh processes each (after one warm-up), output to /dev/null.")
    print()
    names = list(results[0])
    headers = ["command", *(f"{c:,} jobs" for c in stores), *(f"{c:,} RSS MiB" for c in stores)]
    rows = [
        [name, *(f"{results[c][name][0] * 1000:.0f} ms" for c in stores),
         *(f"{results[c][name][1]:.0f}" for c in stores)]
        for name in names
    ]  # fmt: skip
    print(table(headers, rows))
    print()
    for count in counts:
        got = results[count]
        full = got["voxhub jobs --json"][0]
        lines = []
        if "sqlite3 -json, same columns" in got:
            base = got["sqlite3 -json, same columns"][0]
            lines.append(f"every job as JSON: {full / base:.2f}x `sqlite3 -json` (target <= 2x)")
        py = got["python sqlite3 module, same JSON query"][0]
        lines.append(f"{full / py:.2f}x the Python sqlite3 module running the same query")
        for name in ("voxhub jobs (default page)", "voxhub jobs --state failed",
                     "voxhub jobs --state cancelled (no match)"):  # fmt: skip
            extra = (got[name][0] - results[0][name][0]) * 1000
            lines.append(f"`{name.removeprefix('voxhub ')}`: {extra:+.0f} ms vs the empty store "
                         "(target <= +50 ms)")  # fmt: skip
        rss = got["voxhub jobs --json"][1] - results[0]["voxhub jobs --json"][1]
        lines.append(f"peak RSS of `jobs --json`: {rss:+.1f} MiB vs the empty store")
        print(f"- {count:,} jobs: " + "; ".join(lines))
    print()
    rows = []
    for count in counts:
        per_job = sizes(stores[count], count)
        api = in_process(stores[count])
        rows.append([
            f"{count:,}", f"{per_job['file']:,.0f}", f"{per_job.get('jobs', 0):,.0f}",
            f"{per_job.get('results', 0):,.0f}", f"{per_job.get('events', 0):,.0f}",
            f"{api['rows'] * 1e6 / count:.1f}", f"{api['lines'] * 1e6 / count:.1f}",
        ])  # fmt: skip
    print(table(["jobs", "store bytes/job", "jobs table + indexes", "results", "events",
                 "listing.rows() µs/job", "listing.lines() µs/job"], rows))  # fmt: skip
    print()
    print(table(["listing (first page)", f"query plan at {counts[-1]:,} jobs"],
                plans(stores[counts[-1]]), align="ll"))  # fmt: skip


if __name__ == "__main__":
    main()
