"""Crash and resume: ``voxhub transcribe --batch`` killed with SIGKILL, again and again,
on each store backend (a SQLite file, a PostgreSQL database).

The Rev.ai sandbox runs in its own process (``voxhub sandbox revai``), so it outlives
every client killed here. Kills land at seeded random moments — before anything is
stored, while submits are answered slowly (the request is at the sandbox, its answer
pending), while waiting, fetching and writing the store — and the batch is carried on
alternately by re-running ``transcribe`` and by ``voxhub jobs resume --batch``.

In the end every input has exactly one vendor job (sandbox counters, per idempotency
key) and exactly one stored, succeeded job with its result.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from reliability_support import (
    SAMPLE_WAV,
    cli_env,
    voxhub_cli,
    wait_until,
)
from voxhub import JobRequest, JobState, Orchestrator
from voxhub.config import Config
from voxhub.media import media_from
from voxhub.sandbox import SandboxProcess
from voxhub.store import Phase, Store
from voxhub.submission import derive_idempotency_key
from voxhub_revai.options import key_token

BATCH = "crash"
URLS = 9
#: How long the sandbox holds an answer in the "slow" rounds (the client keeps waiting:
#: its read timeout is the CLI's 60 s).
SLOW = 1.0


def _inputs(tmp_path: Path) -> list[str]:
    media = tmp_path / "media"
    media.mkdir()
    wav = media / "hello.wav"
    shutil.copyfile(SAMPLE_WAV, wav)  # one real upload, transcribed by the sandbox's engine
    return [str(wav)] + [f"https://media.voxhub.invalid/crash-{i}.wav" for i in range(URLS)]


def _keys(inputs: list[str], store_path: Path | str) -> list[str]:
    """The idempotency key the CLI derives for each input (what the sandbox counts)."""
    orch = Orchestrator(store=store_path, config=Config.from_profiles({"revai": {"token": "x"}}))
    try:
        return [
            derive_idempotency_key(orch.prepare(JobRequest(provider="revai", media=media_from(m))))
            for m in inputs
        ]
    finally:
        orch.close_resources()


def _phases(store_path: Path | str) -> dict[str, int]:
    """How far each stored job got: recorded / sending / submitted / done."""
    store = Store(store_path)
    try:
        counts: dict[str, int] = {}
        for record in store.jobs(batch=BATCH):
            phase = "done" if record.has_result else record.phase
            counts[phase] = counts.get(phase, 0) + 1
        return counts
    finally:
        store.close()


@pytest.mark.slow
def test_batch_killed_repeatedly_then_resumed_has_one_job_and_one_result_per_input(
    tmp_path: Path, store_at: Path | str
) -> None:
    rng = random.Random(20240610)  # seeded: the same kill schedule on every run
    inputs = _inputs(tmp_path)
    store_path = store_at  # a SQLite file, or a PostgreSQL database shared the same way
    out_dir = tmp_path / "out"
    with SandboxProcess("revai", env=cli_env(tmp_path)) as sandbox:
        env = cli_env(tmp_path, VOXHUB_STORE=str(store_path), **sandbox.env("revai"))
        base = [*voxhub_cli(), "--log-level", "error"]
        transcribe = [*base, "transcribe", *inputs, "-p", "revai", "--batch", BATCH,
                      "--concurrency", "5", "-o", str(out_dir)]
        resume = [*base, "jobs", "resume", "--batch", BATCH, "--concurrency", "5"]

        # (command, slow answers?, when to kill). "after N" = once N more requests reached
        # the sandbox ("post N": N more submits), anchored to what the client does whatever
        # its start-up time, plus a seeded random fraction of a second; "at S" = S seconds
        # after the start.
        schedule: list[tuple[list[str], bool, str, float]] = [
            (transcribe, True, "post", 1),  # submits at the sandbox, their answers pending
            (transcribe, False, "after", rng.randint(2, 5)),  # submitting, first polls
            (resume, False, "after", rng.randint(1, 6)),  # waiting, fetching
            (transcribe, False, "at", rng.uniform(0.1, 0.6)),  # before anything is sent
            (resume, True, "after", 1),  # status/transcript answers pending
            (transcribe, False, "after", rng.randint(4, 12)),
            (resume, False, "at", rng.uniform(1.0, 3.0)),
        ]
        seen_phases: list[dict[str, int]] = []
        for argv, slow, trigger, when in schedule:
            if slow:
                sandbox.set_faults(slow=1.0, slow_seconds=SLOW)
            counter = "POST /speechtotext/v1/jobs" if trigger == "post" else "requests"
            before = sandbox.counters().get(counter, 0)
            started = time.monotonic()
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            if trigger in ("after", "post"):
                target = before + when
                wait_until(lambda c=counter, t=target: sandbox.counters().get(c, 0) >= t,
                           timeout=30)
                time.sleep(rng.uniform(0.0, SLOW / 2 if slow else 0.3))
            else:
                time.sleep(when)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            seen_phases.append(_phases(store_path))
            if slow:
                sandbox.set_faults()
                # Let the requests the dead client left in flight land, so the next run's
                # recover finds them at once (test_resume_waits_for_a_submission_still_in_flight
                # covers looking while they are still on their way).
                time.sleep(max(0.0, SLOW + 0.3 - (time.monotonic() - started)))

        # Kills really hit the middle of submits (in doubt) and of waiting/fetching.
        assert any(p.get(Phase.SENDING) for p in seen_phases), seen_phases
        assert any(p.get(Phase.SUBMITTED) for p in seen_phases), seen_phases

        done = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        # Inputs the first kill stopped before they were even stored are run now; the rest
        # come back from the store.
        again = subprocess.run(transcribe, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert "error" not in again.stderr.lower()

        counters = sandbox.counters()
        listed = subprocess.run([*base, "jobs", "--json", "--batch", BATCH], env=env,
                                capture_output=True, text=True, timeout=60, check=True)

    keys = _keys(inputs, store_path)
    # Exactly one vendor job per input.
    assert counters["jobs.created"] == len(inputs), counters
    assert "jobs.duplicates" not in counters
    for key in keys:
        assert counters.get(f"jobs.key.{key_token(key)}") == 1, key

    # Exactly one stored job per input, succeeded, with its result.
    rows = json.loads(listed.stdout)
    assert sorted(r["media"] for r in rows) == sorted(
        media_from(m).describe() for m in inputs
    )
    assert all(r["state"] == "succeeded" and r["has_result"] for r in rows), rows
    store = Store(store_path)
    try:
        records = store.jobs(batch=BATCH)
        assert sorted(r.handle.idempotency_key or "" for r in records) == sorted(keys)
        assert len({r.handle.vendor_ids["job"] for r in records}) == len(inputs)
        for record in records:
            assert record.status is not None and record.status.state is JobState.SUCCEEDED
            result = store.result(record.job_id)
            assert result is not None and result.text  # type: ignore[union-attr]
    finally:
        store.close()
    written = sorted(p.name for p in out_dir.iterdir())
    assert len(written) == len(inputs) and all(p.endswith(".txt") for p in written)


def test_resume_waits_for_a_submission_still_in_flight(
    tmp_path: Path, store_at: Path | str
) -> None:
    """A client killed after its submit reached the vendor, whose answer was still pending.

    The vendor creates the job a moment later. Resuming must not send the input again
    before that request had a chance to land: a request is in flight for at most the
    client's read timeout, so recovery within that window cannot yet prove "never created".
    """
    from voxhub.plugins import PluginManager
    from voxhub.policies import Timeouts
    from voxhub.transport import HttpClient

    url = "https://media.voxhub.invalid/in-flight.wav"
    store_path = store_at
    slow_submits = {"slow": 1.0, "slow_seconds": 2.0}
    with SandboxProcess("revai", env=cli_env(tmp_path), faults=slow_submits) as sandbox:
        env = cli_env(tmp_path, VOXHUB_STORE=str(store_path), **sandbox.env("revai"))
        proc = subprocess.Popen(
            [*voxhub_cli(), "transcribe", url, "-p", "revai", "--batch", "b", "--no-wait"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        assert wait_until(
            lambda: sandbox.counters().get("POST /speechtotext/v1/jobs", 0) == 1, timeout=20
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sandbox.set_faults()
        # Resume at once, as `voxhub jobs resume` after a crash would; a client whose read
        # timeout (3 s) is longer than the vendor's delay (2 s) would have got the answer.
        orch = Orchestrator(
            store=store_path,
            config=Config.from_profiles({"revai": {"base_url": sandbox.base_url,
                                                   **sandbox.credentials}}),
            plugins=PluginManager.load(),
            http=HttpClient(timeouts=Timeouts(connect=2, read=3)),
        )
        try:
            outcomes = list(orch.resume(batch="b"))
        finally:
            orch.close_resources()
        assert [o.ok for o in outcomes] == [True]
        time.sleep(2.5)  # the first request has landed by now, whatever happened
        counters = sandbox.counters()
    assert counters["jobs.created"] == 1, "the input was submitted twice"
