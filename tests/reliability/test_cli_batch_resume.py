"""Durable batches through the real ``voxhub`` command against the Rev.ai sandbox (issue 18).

* 200 inputs, one export refused: the other 199 finish, the summary names the one,
  ``voxhub batches resume`` redoes its export (no new vendor job), and
  the vendor saw exactly 200 jobs;
* a SIGKILL right after the batch was recorded: resuming from another working
  directory (the inputs were given as relative paths) finishes every input;
* Ctrl-C: the first stops starting inputs and prints the resume command (exit 130),
  a second one exits at once;
* inputs whose job failed are not submitted again unless ``--retry-failed``;
* resuming beside a live run leaves its inputs to it; local jobs are never left ``running``.

The sandbox runs in this test process (its counters and scripted answers are read
and set directly); every ``voxhub`` is a real child process.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reliability_support import cli_env, voxhub_cli, wait_until
from voxhub.config import env_name
from voxhub.sandbox import FaultPlan, RunningSandbox

BATCH_LINE = re.compile(r"^batch (\S+): (\d+) inputs$", re.MULTILINE)
JOBS = "/speechtotext/v1/jobs"
SUBMITS = f"POST {JOBS}"


def wavs(folder: Path, count: int, prefix: str = "clip") -> list[Path]:
    """``count`` tiny mono WAVs (50 ms of silence: real audio headers, little to upload)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"{prefix}{n:03d}.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(b"\0\0" * 400)
        paths.append(path)
    return paths


@pytest.fixture
def revai(voxhub_sandbox: Callable[..., RunningSandbox]) -> RunningSandbox:
    """Rev.ai's sandbox: jobs are transcribed as soon as they are created."""
    return voxhub_sandbox("revai", processing_seconds=0.0, use_engine=False, seed=18)


def env_for(home: Path, sandbox: RunningSandbox, **extra: str) -> dict[str, str]:
    settings = {env_name("revai", key): value for key, value in sandbox.settings().items()}
    return cli_env(home, VOXHUB_STORE=str(home / "jobs.db"), **settings, **extra)


def cli(
    env: dict[str, str], *args: str, code: int = 0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*voxhub_cli(), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    return result


def batch_id(stderr: str) -> str:
    found = BATCH_LINE.search(stderr)
    assert found, stderr
    return found.group(1)


def items(env: dict[str, str], bid: str) -> list[dict[str, Any]]:
    shown = json.loads(cli(env, "batches", "show", bid, "--json").stdout)
    rows: list[dict[str, Any]] = shown["items"]
    return rows


def start(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*voxhub_cli(), *args], env=env, cwd=cwd, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_one_refused_export_in_200_inputs_then_resume_finishes_it(
    tmp_path: Path, revai: RunningSandbox
) -> None:
    inputs = [str(p) for p in wavs(tmp_path / "media", 200)]
    out = tmp_path / "subs"
    env = env_for(tmp_path, revai)
    # The first captions request is refused the way Rev refuses them (405, final: not
    # retried); the batch must carry on with the 199 others.
    revai.sandbox.script(
        endpoint="captions", status=405, times=1,
        body={"title": "Invalid job properties", "detail": "captions are not available"},
    )  # fmt: skip
    run = cli(env, "transcribe", *inputs, "-p", "revai", "-f", "srt", "-o", str(out),
              "--concurrency", "16", code=1)
    bid = batch_id(run.stderr)
    assert run.stderr.splitlines()[0] == f"batch {bid}: 200 inputs"
    assert f"batch {bid}: 199 done, 1 failed (of 200)" in run.stderr
    failures = [line.strip() for line in run.stderr.splitlines()
                if line.strip().startswith("failed:")]
    (refused,) = {line.split()[1] for line in failures}  # as it happened, and in the summary
    assert refused in inputs
    assert all(" at export: " in line and "Invalid job properties" in line for line in failures)
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 199 and f"{Path(refused).stem}.srt" not in written
    assert revai.sandbox.counters.get("scripted.answer") == 1  # the fault is spent: lifted

    # Its job succeeded, so a plain resume does the export again (no --retry-failed:
    # that flag is only for inputs whose job itself failed).
    resumed = cli(env, "batches", "resume", bid)
    assert f"batch {bid}: 200 done, 0 failed (of 200)" in resumed.stderr
    assert (out / f"{Path(refused).stem}.srt").read_text().startswith("1\n00:00:00,000 --> ")
    assert len(list(out.iterdir())) == 200
    # Exactly one vendor job per input: nothing was submitted twice.
    counters = revai.sandbox.counters.snapshot()
    assert counters["jobs.created"] == 200 and "jobs.duplicates" not in counters
    listed = cli(env, "batches", "manifest", bid).stdout
    manifest = [json.loads(line) for line in listed.splitlines()]
    assert [row["input"] for row in manifest] == inputs
    assert {row["state"] for row in manifest} == {"done"}
    assert len({row["job_id"] for row in manifest}) == 200


def test_killed_right_after_recording_resume_elsewhere_finishes_every_input(
    tmp_path: Path, revai: RunningSandbox
) -> None:
    work = tmp_path / "work"
    inputs = [str(p.relative_to(work)) for p in wavs(work / "media", 40)]
    # Short timeouts: an input whose submit the kill left in flight is looked up once
    # that request can no longer be on its way (connect + read timeout).
    env = env_for(tmp_path, revai, VOXHUB_CONNECT_TIMEOUT="1", VOXHUB_READ_TIMEOUT="2")
    proc = start(env, "transcribe", *inputs, "-p", "revai", "-o", "out", "--concurrency", "2",
                 cwd=work)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # printed once the batch is recorded, before any input
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    bid = batch_id(line)
    sent = revai.sandbox.counters.get(SUBMITS)
    assert sent < len(inputs), "the kill came too late to leave inputs never started"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = json.loads(cli(env, "batches", "--json", cwd=elsewhere).stdout)
    assert [(b["batch_id"], b["total"], b["active"]) for b in listed] == [(bid, 40, False)]
    resumed = cli(env, "batches", "resume", bid, cwd=elsewhere)
    assert f"batch {bid}: 40 done, 0 failed (of 40)" in resumed.stderr
    # Recorded as absolute paths: the files were found, the outputs went where asked.
    assert sorted(p.name for p in (work / "out").iterdir()) == sorted(
        f"{Path(i).stem}.txt" for i in inputs
    )
    rows = items(env, bid)
    assert {row["state"] for row in rows} == {"done"}
    assert all(Path(row["input"]).is_absolute() for row in rows)
    counters = revai.sandbox.counters.snapshot()
    assert counters["jobs.created"] == len(inputs) and "jobs.duplicates" not in counters


def test_ctrl_c_stops_new_inputs_prints_the_resume_command_and_resume_finishes(
    tmp_path: Path, revai: RunningSandbox
) -> None:
    inputs = [str(p) for p in wavs(tmp_path / "media", 30)]
    env = env_for(tmp_path, revai)
    # Each submit is answered after 0.3 s: the batch is mid-way when Ctrl-C comes.
    revai.sandbox.set_faults(FaultPlan(slow=1.0, slow_seconds=0.3, only_paths=(JOBS,)))
    proc = start(env, "transcribe", *inputs, "-p", "revai", "--concurrency", "3")
    assert wait_until(lambda: revai.sandbox.counters.get(SUBMITS) >= 4, timeout=30)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    bid = batch_id(stderr)
    assert f"voxhub batches resume {bid}" in stderr
    assert "aborted" not in stderr and "Traceback" not in stderr
    started = revai.sandbox.counters.get(SUBMITS)
    assert started < len(inputs)  # no new input started after the ^C
    printed = stdout.count("==> ")
    assert 0 < printed < len(inputs)  # what had landed was printed, nothing more
    # The submits in flight landed: no job is left in doubt (``sending``) by the dead process.
    jobs = json.loads(cli(env, "jobs", "--json").stdout)
    assert jobs and "sending" not in {job["phase"] for job in jobs}, jobs
    (listed,) = json.loads(cli(env, "batches", "--json").stdout)
    assert listed["interrupted_at"] is not None and not listed["active"]

    revai.sandbox.set_faults(FaultPlan())
    resumed = cli(env, "batches", "resume", bid)
    assert f"batch {bid}: 30 done, 0 failed (of 30)" in resumed.stderr
    counters = revai.sandbox.counters.snapshot()
    assert counters["jobs.created"] == 30 and "jobs.duplicates" not in counters


def test_ctrl_c_leaves_no_local_job_running_for_the_dead_process(tmp_path: Path) -> None:
    """Local jobs run in this process's workers: Ctrl-C stores the unfinished ones as
    failed (interrupted) instead of leaving them ``running``; resume runs them again."""
    sample = Path(__file__).resolve().parents[2] / "docs" / "samples" / "hello.wav"
    with wave.open(str(sample)) as source:
        params, frames = source.getparams(), source.readframes(source.getframerate())
    inputs = []
    # A second of speech each: quick to decode, not instant. Eight, so that some are still
    # unstarted when ^C lands (two at a time; the first outcome waits for its marks' write).
    for n in range(8):
        path = tmp_path / f"hello{n}.wav"
        with wave.open(str(path), "wb") as out:
            out.setparams(params)
            out.writeframes(frames)
        inputs.append(str(path))
    env = cli_env(tmp_path, VOXHUB_STORE=str(tmp_path / "jobs.db"), HF_HUB_OFFLINE="1")
    proc = start(env, "transcribe", *inputs, "-p", "local", "--option", "engine=pocketsphinx",
                 "--concurrency", "2")
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the first transcript's header: the batch is under way
    assert first.startswith("==> "), first
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    bid = batch_id(stderr)
    assert f"voxhub batches resume {bid}" in stderr
    jobs = json.loads(cli(env, "jobs", "--json").stdout)
    assert "running" not in {job["state"] for job in jobs}, jobs
    # Every input was recorded up front; those never started are still only that.
    assert 0 < sum(job["phase"] != "recorded" for job in jobs) < len(inputs), jobs

    resumed = cli(env, "batches", "resume", bid)
    assert f"batch {bid}: 8 done, 0 failed (of 8)" in resumed.stderr
    assert {row["job_state"] for row in items(env, bid)} == {"succeeded"}


def test_a_second_ctrl_c_exits_at_once(tmp_path: Path, revai: RunningSandbox) -> None:
    inputs = [str(p) for p in wavs(tmp_path / "media", 6)]
    env = env_for(tmp_path, revai)
    # Submits answered only after 30 s: the first ^C would wait for them to land.
    revai.sandbox.set_faults(FaultPlan(slow=1.0, slow_seconds=30.0, only_paths=(JOBS,)))
    proc = start(env, "transcribe", *inputs, "-p", "revai", "--concurrency", "2")
    assert wait_until(lambda: revai.sandbox.counters.get(SUBMITS) >= 2, timeout=30)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None  # still waiting for the two submits in flight
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=10)  # far less than the 30 s the submits take
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert f"voxhub batches resume {batch_id(stderr)}" in stderr and "interrupted again" in stderr
    revai.sandbox.set_faults(FaultPlan())


def test_inputs_whose_job_failed_are_not_submitted_again_without_retry_failed(
    tmp_path: Path, voxhub_sandbox: Callable[..., RunningSandbox]
) -> None:
    failing = voxhub_sandbox("revai", processing_seconds=0.0, use_engine=False, failure_rate=1.0)
    inputs = [str(p) for p in wavs(tmp_path / "media", 3)]
    env = env_for(tmp_path, failing)
    run = cli(env, "transcribe", *inputs, "-p", "revai", code=1)
    bid = batch_id(run.stderr)
    assert f"batch {bid}: 0 done, 3 failed (of 3)" in run.stderr
    assert failing.sandbox.counters.get("jobs.created") == 3

    # Resuming leaves them alone and says why (a paid vendor would bill each new job).
    resumed = cli(env, "batches", "resume", bid, code=1)
    skipped = [line for line in resumed.stderr.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 3 and all("--retry-failed" in line for line in skipped)
    jobs_resumed = cli(env, "jobs", "resume", code=0)
    assert jobs_resumed.stderr.count(" skipped: ") == 3, jobs_resumed.stderr
    assert "0 done, 0 failed, 3 skipped" in jobs_resumed.stderr
    assert failing.sandbox.counters.get("jobs.created") == 3

    # Asked for, they run again: one new vendor job each.
    again = cli(env, "batches", "resume", bid, "--retry-failed", code=1)
    assert "skipped:" not in again.stderr
    assert failing.sandbox.counters.get("jobs.created") == 6


def test_resume_beside_a_live_run_leaves_its_work_to_it(
    tmp_path: Path, revai: RunningSandbox
) -> None:
    inputs = [str(p) for p in wavs(tmp_path / "media", 2)]
    env = env_for(tmp_path, revai)
    # Both submits are held at the vendor for 5 s while other commands look at the batch.
    revai.sandbox.set_faults(FaultPlan(slow=1.0, slow_seconds=5.0, only_paths=(JOBS,)))
    proc = start(env, "transcribe", *inputs, "-p", "revai", "--concurrency", "2")
    assert wait_until(lambda: revai.sandbox.counters.get(SUBMITS) >= 2, timeout=30)
    beside = cli(env, "jobs", "resume")
    # Not reported failed, not sent again: left to the process that is sending them.
    assert beside.stderr.count(" skipped: ") == 2, beside.stderr
    assert "0 done, 0 failed, 2 skipped" in beside.stderr
    bid = json.loads(cli(env, "batches", "--json").stdout)[0]["batch_id"]
    busy = cli(env, "batches", "resume", bid, code=8)
    assert "error: " in busy.stderr and str(proc.pid) in busy.stderr
    revai.sandbox.set_faults(FaultPlan())
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert f"batch {bid}: 2 done, 0 failed (of 2)" in stderr
    assert revai.sandbox.counters.get("jobs.created") == 2
