"""Durable batches (issue 18) against the echo sandbox and a real store (SQLite, and
PostgreSQL for every test on the ``orch`` fixture's store).

A batch is recorded whole before anything is sent; every input's failure is its
own (check, submit, wait, fetch, export, write, close); resume finishes what is
unfinished and never resubmits what the store shows failed unless asked.
"""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from voxhub import (
    InvalidInputError,
    JobFailedError,
    JobRequest,
    LocalFile,
    Orchestrator,
    RemoteUrl,
)
from voxhub.batches import BatchEvent, BatchRun, BatchSettings, ItemState, Stage
from voxhub.clock import FakeClock
from voxhub.config import Config
from voxhub.errors import BatchBusyError, NotFoundError, ProviderError
from voxhub.plugin import hookimpl
from voxhub.plugins import PluginManager
from voxhub.sandbox import RunningSandbox
from voxhub.store import Phase, Store
from voxhub_echo.provider import EchoProvider


@pytest.fixture
def voxhub_store(store_at: Path | str) -> Iterator[Store]:
    """The orchestrators' store (``orch``), once per backend: SQLite and PostgreSQL."""
    store = Store(store_at)
    yield store
    store.close()


def _urls(count: int, prefix: str = "f", **options: Any) -> list[JobRequest]:
    return [
        JobRequest(provider="echo", media=RemoteUrl(f"http://x/{prefix}{i}.wav"), options=options)
        for i in range(count)
    ]


def _wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + bytes(64))
    return path


def _created(echo: RunningSandbox) -> int:
    return int(echo.sandbox.counters.get("jobs.created"))


# --- recording ------------------------------------------------------------------------------


def test_a_batch_is_recorded_whole_before_anything_is_sent(
    orch: Orchestrator, echo: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _wav(tmp_path / "a" / "x.wav")
    _wav(tmp_path / "b" / "x.wav")
    requests = [
        JobRequest(provider="echo", media=LocalFile("a/x.wav")),  # relative: stored absolute
        JobRequest(provider="echo", media=LocalFile("b/x.wav")),
        JobRequest(provider="echo", media=RemoteUrl("HTTP://Media.Example:80/y.wav#frag")),
        JobRequest(provider="echo", media=LocalFile("missing.wav")),
        JobRequest(provider="echo", media=RemoteUrl("http://x/z"), options={"speed": 99}),
    ]
    settings = BatchSettings(name="first", format="srt", output_dir="out")
    info = orch.record_batch(requests, settings=settings)

    assert echo.sandbox.counters.get("requests") == 0  # nothing sent yet
    assert info.name == "first" and info.settings.output_dir == str(tmp_path / "out")
    assert (info.counts.total, info.counts.pending, info.counts.failed) == (5, 3, 2)
    items = list(orch.batch_items(info.batch_id))
    assert [i.input for i in items[:3]] == [
        str(tmp_path / "a" / "x.wav"),
        str(tmp_path / "b" / "x.wav"),
        "http://media.example/y.wav",
    ]
    # One file per input, named now and unique in the batch.
    assert [i.output for i in items[:3]] == [
        str(tmp_path / "out" / name) for name in ("x.srt", "x-2.srt", "y.srt")
    ]
    missing, bad_option = items[3], items[4]
    assert missing.state is ItemState.FAILED and missing.stage is Stage.CHECK
    assert missing.job_id is None and "missing.wav" in (missing.error or "")
    assert bad_option.stage is Stage.CHECK and "speed" in (bad_option.error or "")
    for item in items[:3]:
        assert item.job_id is not None and item.job_state == "recorded"
        record = orch.store.get(item.job_id)
        assert record.phase == Phase.RECORDED and record.batch == info.batch_id
    assert [b.batch_id for b in orch.batches()] == [info.batch_id] and orch.batch_count() == 1


def test_an_input_already_stored_links_to_its_job_and_a_failed_one_runs_anew(
    orch: Orchestrator, echo: RunningSandbox
) -> None:
    done = list(orch.run_many(_urls(2)))
    failed = list(orch.run_many(_urls(1, prefix="bad", fail=True)))
    assert all(o.ok for o in done) and isinstance(failed[0].error, JobFailedError)
    assert _created(echo) == 3

    again = list(orch.run_many([*_urls(2), *_urls(1, prefix="bad", fail=True)]))
    by_seq = {o.seq: o for o in again}
    assert by_seq[1].ok and by_seq[2].ok
    jobs = {o.handle.job_id for o in (by_seq[1], by_seq[2]) if o.handle}
    assert jobs == {o.handle.job_id for o in done if o.handle}
    # The done inputs were not sent again; the failed one ran as a new job (and failed again).
    assert _created(echo) == 4
    assert by_seq[3].handle is not None and failed[0].handle is not None
    assert by_seq[3].handle.job_id != failed[0].handle.job_id


def test_a_batch_is_found_by_its_id_or_its_name(orch: Orchestrator, echo: RunningSandbox) -> None:
    from voxhub.listing import JobFilter

    first = orch.run_many(_urls(2), batch="nightly")
    assert all(o.ok for o in first)
    second = orch.run_many(_urls(1, prefix="n2"), batch="nightly")
    assert all(o.ok for o in second)
    list(orch.run_many(_urls(1, prefix="other"), batch="other"))
    records = orch.store.jobs(batch=first.batch_id)
    by_id = {r.job_id for r in records}
    assert len(by_id) == 2 and all(r.batch == first.batch_id for r in records)
    # A name labels both of its batches; listings filter the same way.
    named = {r.job_id for r in orch.store.jobs(batch="nightly")}
    assert len(named) == 3 and by_id < named
    listed = {r.job_id for r in orch.store.listing.rows(JobFilter(batch="nightly"))}
    assert listed == named and orch.store.listing.count(JobFilter(batch="other")) == 1
    assert orch.store.jobs(batch="no-such-batch") == []
    # batches show / resume / manifest take a name that labels one batch...
    (other,) = orch.store.jobs(batch="other")
    assert orch.batch("other").batch_id == other.batch
    assert [i.job_id for i in orch.batch_items("other")] == [other.job_id]
    assert list(orch.run_batch("other")) == []  # nothing left to do, found by its name
    # ...and refuse one that labels several, naming them.
    with pytest.raises(InvalidInputError, match="2 batches are named 'nightly'") as named:
        orch.batch("nightly")
    assert first.batch_id in str(named.value) and second.batch_id in str(named.value)
    with pytest.raises(NotFoundError):
        orch.batch("no-such-batch")


def test_a_hundred_inputs_run_through_the_echo_provider_into_files(
    orch: Orchestrator, echo: RunningSandbox, tmp_path: Path
) -> None:
    events: list[BatchEvent] = []
    out = tmp_path / "out"
    run = orch.run_batch(
        orch.record_batch(
            _urls(100), settings=BatchSettings(format="txt", output_dir=str(out), concurrency=8)
        ).batch_id,
        on_event=events.append,
    )
    outcomes = list(run)
    assert len(outcomes) == 100 and all(o.ok for o in outcomes)
    assert run.counts() == orch.batch(run.batch_id).counts
    assert run.counts().done == 100 and run.counts().finished == 100
    assert sorted(p.name for p in out.iterdir()) == sorted(f"f{i}.txt" for i in range(100))
    assert (out / "f7.txt").read_text(encoding="utf-8").strip() == "f7.wav"
    assert _created(echo) == 100 and echo.sandbox.counters.get("jobs.duplicates") == 0
    kinds = {e.kind for e in events}
    assert {"started", "state", "finished"} <= kinds
    assert sum(e.kind == "finished" for e in events) == 100
    info = orch.batch(run.batch_id)
    assert not info.owner_alive and info.interrupted_at is None


def test_a_back_off_is_an_event_naming_its_input(orch: Orchestrator, echo: RunningSandbox) -> None:
    echo.sandbox.script(
        endpoint="create", status=429, body={"error": "slow down"}, headers={"Retry-After": "1"}
    )
    events: list[BatchEvent] = []
    info = orch.record_batch(_urls(1))
    assert [o.ok for o in orch.run_batch(info.batch_id, on_event=events.append)] == [True]
    (backoff,) = [e for e in events if e.kind == "backoff"]
    assert backoff.seq == 1 and backoff.input == "http://x/f0.wav" and backoff.job_id
    assert "429" in (backoff.detail or "") and "echo" in (backoff.detail or "")


# --- failures are per input -------------------------------------------------------------


class ExportingEcho(EchoProvider):
    """Echo with a native ``srt`` export that its vendor refuses, every time."""

    info = attrs.evolve(EchoProvider.info, name="echo-export", export_formats=frozenset({"srt"}))

    def export(self, ctx, handle, fmt):  # type: ignore[no-untyped-def]
        raise ProviderError(
            "export refused by the vendor", provider=ctx.provider, operation="export"
        )


class ExportingPlugin:
    @hookimpl
    def register_providers(self) -> list[EchoProvider]:
        return [ExportingEcho()]


@pytest.fixture
def two_providers(echo: RunningSandbox, tmp_path: Path) -> Iterator[Orchestrator]:
    """Echo, and echo-export (the same sandbox) whose every export is refused."""
    plugins = PluginManager.load(
        env={"VOXHUB_LOAD_PLUGINS": "voxhub-echo"}, extra=[("exporting", ExportingPlugin())]
    )
    orch = Orchestrator(
        store=tmp_path / "two.db",
        config=Config.from_profiles({"echo": echo.settings(), "echo-export": echo.settings()}),
        plugins=plugins,
        clock=FakeClock(),
    )
    yield orch
    orch.close_resources()


def test_each_stage_fails_on_its_own_input_and_the_others_finish(
    two_providers: Orchestrator, echo: RunningSandbox, tmp_path: Path
) -> None:
    orch = two_providers
    out = tmp_path / "out"
    (out / "write.srt").mkdir(parents=True)  # the file cannot be written: a directory is there
    sandbox = echo.sandbox
    sandbox.script(endpoint="create", status=400, body={"error": "refused", "field": "url"})
    sandbox.script(endpoint="result", status=404, body={"error": "gone"})
    sandbox.script(endpoint="delete", status=400, body={"error": "cannot delete"})
    requests = [
        JobRequest(provider="echo", media=LocalFile(tmp_path / "missing.wav")),  # check
        JobRequest(provider="echo", media=RemoteUrl("http://x/submit.wav")),  # submit
        JobRequest(provider="echo", media=RemoteUrl("http://x/wait.wav"), options={"fail": True}),
        JobRequest(provider="echo", media=RemoteUrl("http://x/fetch.wav")),
        JobRequest(provider="echo-export", media=RemoteUrl("http://x/export.wav")),
        JobRequest(provider="echo", media=RemoteUrl("http://x/write.wav")),
        JobRequest(provider="echo", media=RemoteUrl("http://x/close.wav")),
        JobRequest(provider="echo", media=RemoteUrl("http://x/fine.wav")),
    ]
    settings = BatchSettings(format="srt", output_dir=str(out), close="after-fetch", concurrency=1)
    run = orch.run_batch(orch.record_batch(requests, settings=settings).batch_id)
    outcomes = {o.input.rsplit("/", 1)[-1]: o for o in run if o.input}  # type: ignore[union-attr]

    stages = {name: o.stage for name, o in outcomes.items() if not o.ok}
    assert stages == {
        "missing.wav": Stage.CHECK,
        "submit.wav": Stage.SUBMIT,
        "wait.wav": Stage.WAIT,
        "fetch.wav": Stage.FETCH,
        "export.wav": Stage.EXPORT,
        "write.wav": Stage.WRITE,
        "close.wav": Stage.CLOSE,
    }
    assert isinstance(outcomes["missing.wav"].error, InvalidInputError)
    assert isinstance(outcomes["wait.wav"].error, JobFailedError)
    assert outcomes["fine.wav"].ok and outcomes["fine.wav"].output == str(out / "fine.srt")
    assert (out / "fine.srt").read_text(encoding="utf-8").startswith("1\n")
    counts = orch.batch(run.batch_id).counts
    assert (counts.done, counts.failed, counts.pending) == (1, 7, 0)
    rows = {r.input.rsplit("/", 1)[-1]: r for r in orch.batch_items(run.batch_id)}
    assert "cannot write" in (rows["write.wav"].error or "")
    assert all("\n" not in (r.error or "") for r in rows.values())
    assert [r.seq for r in orch.batch_items(run.batch_id, state="failed", limit=3, offset=1)] == [
        2, 3, 4,
    ]  # fmt: skip
    assert not any(p.name.startswith(".voxhub-") for p in out.iterdir())  # no temporary left


def test_fail_fast_starts_nothing_after_the_first_failure_and_resume_finishes_the_rest(
    orch: Orchestrator, echo: RunningSandbox
) -> None:
    requests = _urls(10)
    requests[1] = JobRequest(provider="echo", media=RemoteUrl("http://x/b"), options={"fail": True})
    info = orch.record_batch(requests, settings=BatchSettings(concurrency=1))
    first = list(orch.run_batch(info.batch_id, fail_fast=True))
    assert [o.ok for o in first] == [True, False]
    assert orch.batch(info.batch_id).counts.pending == 8 and _created(echo) == 2

    rest = list(orch.run_batch(info.batch_id))
    skipped = [o for o in rest if o.skipped]
    assert len(skipped) == 1 and skipped[0].seq == 2 and "--retry-failed" in skipped[0].skipped
    assert not skipped[0].ok and skipped[0].error is None
    assert sum(o.ok for o in rest) == 8 and _created(echo) == 10  # the failed one not resent
    assert orch.batch(info.batch_id).counts.done == 9


def test_retry_failed_resubmits_what_failed_once_the_fault_is_gone(
    orch: Orchestrator, echo: RunningSandbox
) -> None:
    echo.sandbox.script(endpoint="create", status=401, body={"error": "bad token"}, times=1)
    info = orch.record_batch(_urls(3), settings=BatchSettings(concurrency=1))
    first = list(orch.run_batch(info.batch_id))
    assert [o.stage for o in first if not o.ok] == [Stage.SUBMIT] and _created(echo) == 2
    posts = echo.sandbox.counters.get("POST /v1/jobs")

    resumed = list(orch.run_batch(info.batch_id))
    assert [o.skipped is not None for o in resumed] == [True]
    assert echo.sandbox.counters.get("POST /v1/jobs") == posts  # nothing sent
    failed_job = next(orch.batch_items(info.batch_id, state="failed")).job_id
    assert failed_job is not None and orch.store.get(failed_job).state == "failed"

    retried = list(orch.run_batch(info.batch_id, retry_failed=True))
    assert [o.ok for o in retried] == [True] and _created(echo) == 3
    assert orch.batch(info.batch_id).counts.done == 3


# --- stopping and claiming ------------------------------------------------------------


def test_stop_leaves_waiting_inputs_to_resume_and_starts_nothing_new(
    orch: Orchestrator, echo: RunningSandbox
) -> None:
    echo.sandbox.steps = 10**9  # jobs that never end while we watch
    info = orch.record_batch(_urls(6), settings=BatchSettings(concurrency=2))
    runs: list[BatchRun] = []
    waiting: set[int] = set()

    def on_event(event: BatchEvent) -> None:
        if event.kind == "state" and event.seq is not None:
            waiting.add(event.seq)
            if len(waiting) == 2:  # both slots only wait: stop now
                runs[0].stop()

    run = orch.run_batch(info.batch_id, on_event=on_event)
    runs.append(run)
    assert list(run) == [] and run.stopped
    stored = orch.batch(info.batch_id)
    assert stored.interrupted_at is not None and not stored.owner_alive
    assert (stored.counts.pending, stored.counts.running) == (6, 0)
    assert _created(echo) == 2

    echo.sandbox.steps = 2
    resumed = list(orch.run_batch(info.batch_id))
    assert len(resumed) == 6 and all(o.ok for o in resumed)
    assert _created(echo) == 6 and echo.sandbox.counters.get("jobs.duplicates") == 0
    assert orch.batch(info.batch_id).interrupted_at is None


def test_a_batch_held_by_a_live_process_is_refused_and_a_dead_owner_taken_over(
    orch: Orchestrator, echo: RunningSandbox
) -> None:
    info = orch.record_batch(_urls(2))
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        other = Store(orch.store.path)
        other.owner = f"{socket.gethostname()}:{holder.pid}:test"
        from voxhub._batch_rows import BatchRows

        BatchRows(other).claim(info.batch_id)
        assert orch.batch(info.batch_id).owner_alive
        with pytest.raises(BatchBusyError) as busy:
            orch.run_batch(info.batch_id)
        assert f"pid {holder.pid}" in str(busy.value) and busy.value.exit_code == 8
    finally:
        holder.kill()
        holder.wait()
        other.close()
    assert [o.ok for o in orch.run_batch(info.batch_id)] == [True, True]


def test_an_unknown_batch_is_a_typed_error(orch: Orchestrator) -> None:
    with pytest.raises(NotFoundError, match="no batch"):
        orch.run_batch("vb_nope")
    with pytest.raises(NotFoundError):
        orch.manifest("vb_nope")
    with pytest.raises(InvalidInputError) as bad:
        orch.record_batch(_urls(1), settings=BatchSettings(timeout=float("nan")))
    assert bad.value.field == "timeout"


# --- resume from elsewhere, manifests ------------------------------------------------------


def test_a_relative_path_resumes_from_another_working_directory(
    echo: RunningSandbox,
    voxhub_orchestrator: Callable[..., Orchestrator],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    _wav(tmp_path / "rel.wav")
    first = voxhub_orchestrator({"echo": echo.settings()}, clock=FakeClock())
    info = first.record_batch([JobRequest(provider="echo", media=LocalFile("rel.wav"))])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    second = voxhub_orchestrator(
        {"echo": echo.settings()}, clock=FakeClock(), store=Store(first.store.path)
    )
    (outcome,) = list(second.run_batch(info.batch_id))
    assert outcome.ok, outcome.error
    assert outcome.result is not None and outcome.result.text == "rel.wav"  # type: ignore[union-attr]


def test_manifest_maps_each_input_to_its_job_state_output_and_error(
    orch: Orchestrator, tmp_path: Path
) -> None:
    requests = [*_urls(2), JobRequest(provider="echo", media=LocalFile(tmp_path / "no.wav"))]
    run = orch.run_many(requests)
    list(run)
    rows = [json.loads(line) for line in orch.manifest(run.batch_id, "jsonl")]
    assert [r["state"] for r in rows] == ["done", "done", "failed"]
    assert rows[0]["job_state"] == "succeeded" and rows[0]["job_id"].startswith("vx_")
    assert rows[2]["stage"] == "check" and "no.wav" in rows[2]["error"]
    assert rows[2]["job_id"] is None and rows[0]["output"] is None
    table = list(csv.reader(orch.manifest(run.batch_id, "csv")))
    assert table[0] == ["seq", "input", "job_id", "state", "job_state", "output", "error", "stage"]
    assert [r[3] for r in table[1:]] == ["done", "done", "failed"]
    with pytest.raises(InvalidInputError):
        orch.manifest(run.batch_id, "xml")


def test_text_goes_to_on_text_and_the_outcome_without_an_output_dir(orch: Orchestrator) -> None:
    seen: list[tuple[int, str, str]] = []
    info = orch.record_batch(_urls(2), settings=BatchSettings(format="txt"))
    outcomes = sorted(
        orch.run_batch(info.batch_id, on_text=lambda *a: seen.append(a)), key=lambda o: o.seq or 0
    )
    assert [o.text.strip() for o in outcomes if o.text] == ["f0.wav", "f1.wav"]
    assert sorted(s[:2] for s in seen) == [(1, "http://x/f0.wav"), (2, "http://x/f1.wav")]


# --- jobs-level resume ---------------------------------------------------------------------


def test_jobs_resume_leaves_failed_and_live_held_jobs_alone(
    orch: Orchestrator, echo: RunningSandbox
) -> None:
    echo.sandbox.script(endpoint="create", status=401, body={"error": "bad token"}, times=1)
    with pytest.raises(ProviderError):
        orch.submit(_urls(1, prefix="refused")[0])
    with pytest.raises(JobFailedError):
        orch.run(JobRequest(provider="echo", media=RemoteUrl("http://x/f"), options={"fail": True}))
    held = orch.prepare(JobRequest(provider="echo", media=RemoteUrl("http://x/held")))
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        from voxhub.models import JobHandle, new_job_id
        from voxhub.submission import derive_idempotency_key

        key = derive_idempotency_key(held)
        handle = JobHandle(new_job_id(), "echo", held.kind, "echo", idempotency_key=key)  # type: ignore[arg-type]
        live = Store(orch.store.path)
        live.owner = f"{socket.gethostname()}:{holder.pid}:test"
        live.record(held, handle, claim=True)  # being sent by a live process
        posts = echo.sandbox.counters.get("POST /v1/jobs")
        outcomes = list(orch.resume())
        assert echo.sandbox.counters.get("POST /v1/jobs") == posts  # nothing resubmitted
        reasons = sorted(o.skipped or "" for o in outcomes)
        assert len(outcomes) == 3 and all(o.skipped for o in outcomes)
        assert any("being submitted by" in r and str(holder.pid) in r for r in reasons)
        assert sum("--retry-failed" in r for r in reasons) == 2
    finally:
        holder.kill()
        holder.wait()
        live.close()
    retried = list(orch.resume(retry_failed=True, provider="echo"))
    # The refused one is sent, the failed one runs as a new job (and fails again), and the
    # dead sender's job is recovered (echo finds it was never created, so it is sent).
    assert len(retried) == 3 and sum(o.ok for o in retried) == 2
    assert _created(echo) == 1 + 3


# --- local jobs end with their process ----------------------------------------------------

SAMPLES = Path(__file__).resolve().parents[1] / "docs" / "samples"


def test_stopping_marks_running_local_jobs_interrupted_and_resume_runs_them_anew(
    tmp_path: Path,
) -> None:
    import numpy as np  # the local provider's own dependencies
    import soundfile
    clip = soundfile.read(str(SAMPLES / "hello.wav"), dtype="int16")[0]
    media = []
    for n in range(2):  # a minute of speech each: still running when stopped
        path = tmp_path / f"long{n}.wav"
        soundfile.write(str(path), np.concatenate([clip] * 30), 16000)
        media.append(path)
    plugins = PluginManager.load()
    orch = Orchestrator(
        store=tmp_path / "local.db", config=Config.from_profiles({}), plugins=plugins
    )
    try:
        requests = [JobRequest(provider="local", media=LocalFile(p)) for p in media]
        info = orch.record_batch(requests, settings=BatchSettings(concurrency=2))

        def stopping(when: Callable[[BatchEvent], bool]) -> list[str | None]:
            runs: list[BatchRun] = []
            seen: set[int | None] = set()

            def on_event(event: BatchEvent) -> None:
                if when(event):
                    seen.add(event.seq)
                    if len(seen) == 2:
                        runs[0].stop()

            runs.append(orch.run_batch(info.batch_id, on_event=on_event))
            assert list(runs[0]) == []  # nothing ended: both were stopped
            return [i.job_id for i in orch.batch_items(info.batch_id)]

        first = stopping(lambda e: e.kind == "state" and e.state == "running")
        for job_id in first:
            assert job_id is not None
            status = orch.store.get(job_id).status
            assert status is not None and status.state.value == "failed"
            assert status.reason == "interrupted"  # nothing shows running for a dead worker
        assert orch.batch(info.batch_id).counts.pending == 2

        # Resume runs them again as new jobs, without --retry-failed.
        second = stopping(lambda e: e.kind == "state")
        assert set(second).isdisjoint(first) and None not in second
    finally:
        orch.close_resources()
        plugins.provider("local").provider.shutdown()  # its worker processes end here
