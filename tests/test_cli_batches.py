"""``voxhub transcribe`` batches and ``voxhub batches``, run as real processes (echo sandbox).

Batches recorded whole, per-input failures with a summary, listing and paging,
the manifest, ``--fail-fast``, and what a terminal shows: the live region never
mixes with the transcripts and leaves nothing behind (checked on a pseudo-terminal
through a small screen model of the control sequences the display writes).
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from voxhub.sandbox import RunningSandbox

VOXHUB = str(Path(sys.executable).with_name("voxhub"))
BATCH_LINE = re.compile(r"^batch (\S+): (\d+) inputs$", re.MULTILINE)


@pytest.fixture
def env(echo: RunningSandbox, tmp_path: Path) -> dict[str, str]:
    settings = echo.settings()
    return {
        **os.environ,
        "VOXHUB_STORE": str(tmp_path / "cli.db"),
        "VOXHUB_LOAD_PLUGINS": "voxhub-echo",
        "VOXHUB_ECHO_BASE_URL": settings["base_url"],
        "VOXHUB_ECHO_API_KEY": settings["api_key"],
        "NO_COLOR": "1",
    }


def voxhub(
    env: dict[str, str], *args: str, code: int = 0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [VOXHUB, *args], capture_output=True, text=True, env=env, timeout=60, cwd=cwd
    )
    assert result.returncode == code, (result.returncode, result.stderr)
    return result


def media(tmp_path: Path, *names: str) -> list[str]:
    paths = []
    for name in names:
        path = tmp_path / name
        path.write_bytes(b"RIFF" + bytes(64))
        paths.append(str(path))
    return paths


def batch_id(stderr: str) -> str:
    found = BATCH_LINE.search(stderr)
    assert found, stderr
    return found.group(1)


def test_batch_is_announced_first_and_failures_are_per_input(
    env: dict[str, str], tmp_path: Path
) -> None:
    inputs = media(tmp_path, "one.wav", "two.wav", "three.wav")
    missing = str(tmp_path / "missing.wav")
    out = tmp_path / "out"
    run = voxhub(
        env, "transcribe", inputs[0], missing, *inputs[1:], "-o", str(out), "-f", "vtt",
        "--concurrency", "2", code=1,
    )
    lines = run.stderr.splitlines()
    assert BATCH_LINE.match(lines[0]), lines  # the id comes before anything else
    bid = batch_id(run.stderr)
    assert lines[0] == f"batch {bid}: 4 inputs"
    # The three others finished; the summary names the one that failed, and where.
    assert sorted(p.name for p in out.iterdir()) == ["one.vtt", "three.vtt", "two.vtt"]
    assert f"batch {bid}: 3 done, 1 failed (of 4)" in run.stderr
    failed = [line for line in lines if line.strip().startswith("failed:") and missing in line]
    assert failed and all(" at check: " in line for line in failed), run.stderr
    # Written files are listed on stdout (nobody is watching a terminal here).
    assert sorted(Path(p).name for p in run.stdout.split()) == ["one.vtt", "three.vtt", "two.vtt"]

    listed = json.loads(voxhub(env, "batches", "--json").stdout)
    assert [(b["batch_id"], b["total"], b["done"], b["failed"]) for b in listed] == [
        (bid, 4, 3, 1)
    ]
    shown = json.loads(voxhub(env, "batches", "show", bid, "--json").stdout)
    assert shown["batch"]["batch_id"] == bid
    by_input = {item["input"]: item for item in shown["items"]}
    assert by_input[missing]["state"] == "failed" and by_input[missing]["stage"] == "check"
    assert by_input[missing]["job_id"] is None
    assert by_input[inputs[1]]["state"] == "done"
    assert Path(by_input[inputs[1]]["output"]).read_text().startswith("WEBVTT")
    assert [i["seq"] for i in shown["items"]] == sorted(i["seq"] for i in shown["items"])
    text = voxhub(env, "batches", "show", bid, "--state", "failed").stdout
    assert missing in text and inputs[0] not in text


def test_manifest_in_json_lines_and_csv(env: dict[str, str], tmp_path: Path) -> None:
    inputs = media(tmp_path, "a.wav", "b.wav")
    out = tmp_path / "out"
    bid = batch_id(voxhub(env, "transcribe", *inputs, "-o", str(out)).stderr)
    listed = voxhub(env, "batches", "manifest", bid).stdout
    rows = [json.loads(line) for line in listed.splitlines()]
    assert [r["input"] for r in rows] == inputs
    for row in rows:
        assert row["state"] == "done" and row["job_state"] == "succeeded"
        assert row["job_id"].startswith("vx_") and Path(row["output"]).is_file()
        assert row["error"] is None
    target = tmp_path / "manifest.csv"
    voxhub(env, "batches", "manifest", bid, "--format", "csv", "-o", str(target))
    table = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["input"] for r in table] == inputs
    assert {"input", "job_id", "state", "job_state", "output", "error", "stage"} <= set(table[0])
    assert [r["job_id"] for r in table] == [r["job_id"] for r in rows]


def test_batches_list_pages_with_a_footer(env: dict[str, str], tmp_path: Path) -> None:
    assert "no batches" in voxhub(env, "batches").stdout
    ids = []
    for n in range(3):
        ids.append(batch_id(voxhub(env, "transcribe", *media(tmp_path, f"x{n}.wav", f"y{n}.wav"),
                                   "--batch", f"night-{n}").stderr))
    table = voxhub(env, "batches", "--limit", "2")
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["BATCH", "CREATED", "STATE"]
    assert [line.split()[0] for line in lines[1:3]] == ids[:0:-1]  # newest first
    assert "night-2" in lines[1] and lines[1].split()[3:6] == ["done", "2", "2"]
    assert "1 older batch not shown" in lines[3]
    page = json.loads(voxhub(env, "batches", "--limit", "2", "--json").stdout)
    assert [b["batch_id"] for b in page] == ids[:0:-1]


def test_fail_fast_starts_nothing_after_the_first_failure(
    env: dict[str, str], tmp_path: Path
) -> None:
    inputs = media(tmp_path, *(f"f{n}.wav" for n in range(6)))
    run = voxhub(env, "transcribe", *inputs, "--option", "fail=true", "--concurrency", "1",
                 "--fail-fast", code=1)
    bid = batch_id(run.stderr)
    info = json.loads(voxhub(env, "batches", "show", bid, "--json").stdout)["batch"]
    assert info["failed"] == 1 and info["done"] == 0 and info["pending"] == 5, info
    assert f"voxhub batches resume {bid}" in run.stderr
    assert "5 not finished" in run.stderr


def test_single_input_keeps_its_own_error_and_exit_status(
    env: dict[str, str], tmp_path: Path
) -> None:
    (one,) = media(tmp_path, "solo.wav")
    failed = voxhub(env, "transcribe", one, "--option", "fail=true", code=6)
    assert failed.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "synthetic failure requested" in failed.stderr
    assert "batch " not in failed.stderr  # no batch chatter for one input
    assert voxhub(env, "transcribe", one, "--new").stdout == "solo.wav\n"


# --- what a terminal shows ----------------------------------------------------------------

_CSI = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")


def screen(data: str) -> list[str]:
    """The lines a terminal shows after ``data``: text, CR/LF and the few CSI sequences
    rich's live display writes (cursor up/down, erase line, cursor show/hide, colours)."""
    lines: list[list[str]] = [[]]
    row = col = 0
    i = 0
    while i < len(data):
        char = data[i]
        if char == "\x1b":
            match = _CSI.match(data, i)
            assert match, f"unexpected escape {data[i:i + 12]!r}"
            arg, command = match.groups()
            i = match.end()
            count = int(arg) if arg.isdigit() else 1
            if command == "A":
                row = max(0, row - count)
            elif command == "B":
                row += count
            elif command == "K":
                lines[row] = [] if arg == "2" else lines[row][:col]
            elif command == "G":
                col = count - 1
            else:
                assert command in "mhl", f"unexpected sequence {match.group()!r}"
            while len(lines) <= row:
                lines.append([])
            continue
        i += 1
        if char == "\r":
            col = 0
        elif char == "\n":
            row += 1
            while len(lines) <= row:
                lines.append([])
        else:
            line = lines[row]
            line.extend(" " * (col - len(line)))
            if col < len(line):
                line[col] = char
            else:
                line.append(char)
            col += 1
    return ["".join(line).rstrip() for line in lines]


def run_on_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``argv`` with stdout and stderr on one pseudo-terminal; its exit status and output."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=child, stderr=child,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "50"},
    )
    os.close(child)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(main, 1 << 16)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif proc.poll() is not None:
            break
    os.close(main)
    return proc.wait(timeout=10), b"".join(chunks).decode("utf-8", "replace")


def test_results_print_above_the_live_region_which_leaves_nothing_behind(
    env: dict[str, str], tmp_path: Path
) -> None:
    names = [f"clip{n:02d}.wav" for n in range(12)]
    inputs = media(tmp_path, *names)
    code, raw = run_on_terminal([VOXHUB, "transcribe", *inputs, "--concurrency", "4"],
                                {k: v for k, v in env.items() if k != "NO_COLOR"})
    assert code == 0, raw
    assert "━" in raw  # the live region was drawn (a bar), on the same terminal
    shown = [line for line in screen(raw) if line]
    bid = batch_id("\n".join(shown))
    # Each transcript sits on its own line right under its header: never inside a bar.
    for name, path in zip(names, inputs, strict=True):
        header = next(i for i, line in enumerate(shown) if line.startswith(f"==> {path} ("))
        assert shown[header + 1] == name, shown[header: header + 2]
    # No bar, spinner or counter stays on the screen once the command ended.
    leftovers = [line for line in shown if "━" in line or "ETA" in line or "waiting" in line]
    assert not leftovers, leftovers
    assert shown[0] == f"batch {bid}: 12 inputs"
    assert shown[-1] == f"batch {bid}: 12 done, 0 failed (of 12)"


def test_no_wait_records_the_inputs_as_one_batch(
    env: dict[str, str], tmp_path: Path, echo: RunningSandbox
) -> None:
    inputs = media(tmp_path, "p.wav", "q.wav")
    jobs = voxhub(env, "transcribe", *inputs, "--no-wait", "--batch", "later").stdout.split()
    assert len(jobs) == 2 and all(j.startswith("vx_") for j in jobs)
    (listed,) = json.loads(voxhub(env, "batches", "--json").stdout)
    assert listed["name"] == "later" and listed["total"] == 2
    # Finishing it later waits for the submitted jobs; nothing is submitted again.
    finished = voxhub(env, "batches", "resume", listed["batch_id"])
    assert f"batch {listed['batch_id']}: 2 done, 0 failed (of 2)" in finished.stderr
    rows = json.loads(voxhub(env, "batches", "show", listed["batch_id"], "--json").stdout)
    assert sorted(r["job_id"] for r in rows["items"]) == sorted(jobs)
    assert echo.sandbox.counters.get("jobs.created") == 2


def test_a_large_batch_says_what_it_is_doing_before_its_id(
    env: dict[str, str], tmp_path: Path
) -> None:
    # 1,000 inputs (the announcement's threshold), each refused by its check: quick to run.
    missing = [str(tmp_path / f"gone-{i}.wav") for i in range(1000)]
    result = voxhub(env, "transcribe", *missing, "-o", str(tmp_path / "out"), code=1)
    lines = result.stderr.splitlines()
    assert lines[0] == "checking and recording 1000 inputs..."
    match = BATCH_LINE.fullmatch(lines[1])
    assert match is not None and match.group(2) == "1000"
