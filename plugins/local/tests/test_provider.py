"""The ``local`` provider through the orchestrator, the store and the CLI: real audio, no mocks.

One transcription of docs/samples/hello.wav with the default engine (Whisper
``tiny.en``; module fixture ``hello_run``) is shared by the tests that only read
its result; a ~95 s file made of the four samples gives jobs that are still
running when a test looks at them. Offline throughout (conftest.py).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import soundfile
from voxhub import (
    Config,
    InvalidInputError,
    JobFailedError,
    JobHandle,
    JobRequest,
    JobState,
    JobStatus,
    LocalFile,
    NotFoundError,
    Orchestrator,
    ProviderError,
    RemoteUrl,
    Transcript,
    UnsupportedOptionError,
)
from voxhub.plugins import PluginManager
from voxhub_local import engine, models
from voxhub_local.pool import JobPhase, WorkerPool
from voxhub_local.provider import INTERRUPTED_DETAIL, LocalProvider
from voxhub_local.sphinx import SphinxConfig, default_model_paths
from voxhub_local.whisper import WhisperConfig

ROOT = Path(__file__).resolve().parents[3]
HELLO_WAV = ROOT / "docs" / "samples" / "hello.wav"
VOXHUB = Path(sys.executable).with_name("voxhub")


def load_plugins() -> PluginManager:
    """A plugin manager with only voxhub-local: a fresh ``LocalProvider`` each time."""
    return PluginManager.load(env={"VOXHUB_LOAD_PLUGINS": "voxhub-local"})


def local_provider(plugins: PluginManager) -> LocalProvider:
    provider = plugins.provider("local").provider
    assert isinstance(provider, LocalProvider)
    return provider


def orchestrator(store: Path, plugins: PluginManager) -> Orchestrator:
    return Orchestrator(store=store, config=Config.from_profiles({}), plugins=plugins)


def request(path: Path, **options: Any) -> JobRequest:
    return JobRequest(provider="local", media=LocalFile(path), options=options)


@attrs.frozen
class Run:
    """One finished transcription of the sample, and what was seen on the way."""

    store: Path
    handle: JobHandle
    transcript: Transcript
    statuses: tuple[JobStatus, ...]


@pytest.fixture(scope="module")
def plugins() -> Iterator[PluginManager]:
    manager = load_plugins()
    yield manager
    local_provider(manager).shutdown()


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~95 s of speech: the four samples three times (a job that runs for seconds)."""
    names = ("hello.wav", "meeting.flac", "weather.flac", "office.flac")
    clips = [soundfile.read(str(HELLO_WAV.with_name(n)), dtype="int16")[0] for n in names]
    target = tmp_path_factory.mktemp("audio") / "long.wav"
    soundfile.write(str(target), np.concatenate(clips * 3), 16000)
    return target


@pytest.fixture(scope="module")
def engine_result() -> engine.Recognition:
    return engine.transcribe(HELLO_WAV)


@pytest.fixture(scope="module")
def hello_run(tmp_path_factory: pytest.TempPathFactory, plugins: PluginManager) -> Run:
    store = tmp_path_factory.mktemp("store") / "jobs.db"
    seen: list[JobStatus] = []
    with orchestrator(store, plugins) as orch:
        handle = orch.submit(request(HELLO_WAV))
        orch.wait(handle, on_status=seen.append)
        transcript = orch.fetch(handle)
    assert isinstance(transcript, Transcript)
    return Run(store, handle, transcript, tuple(seen))


def wait_for(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# --- results -------------------------------------------------------------------------


def test_transcript_is_the_engines(hello_run: Run, engine_result: engine.Recognition) -> None:
    transcript = hello_run.transcript
    assert transcript.provider == "local" and transcript.job_id == hello_run.handle.job_id
    assert transcript.text == engine_result.text and transcript.text
    assert transcript.language == "en"  # what tiny.en recognises
    assert transcript.duration == pytest.approx(engine_result.duration)
    assert len(transcript.segments) == len(engine_result.segments) >= 1
    assert transcript.raw is not None and transcript.raw["engine"] == "whisper"
    assert transcript.raw["model"] == "tiny.en" and transcript.raw["windows"] == 1
    words = [w for s in transcript.segments for w in s.words]
    assert [(w.text, w.start, w.end, w.confidence) for w in words] == [
        (w.text, w.start, w.end, w.confidence) for w in engine_result.words
    ]
    for segment, mine in zip(transcript.segments, engine_result.segments, strict=True):
        assert segment.speaker is None
        assert segment.text == mine.text == " ".join(w.text for w in segment.words)
        assert segment.confidence == mine.confidence and 0.0 < (segment.confidence or 0) <= 1
    assert all(w.confidence is not None and 0.0 <= w.confidence <= 1.0 for w in words)
    assert hello_run.handle.vendor_ids["local_job"].startswith("lj_")
    assert hello_run.statuses[-1].state is JobState.SUCCEEDED
    assert hello_run.statuses[-1].progress == 1.0


def test_srt_times_lie_inside_the_audio(hello_run: Run, plugins: PluginManager) -> None:
    with orchestrator(hello_run.store, plugins) as orch:
        srt = orch.export(hello_run.handle.job_id, "srt")
    duration = engine.audio_info(HELLO_WAV).duration
    cues = parse_srt(srt)
    assert [text for _, _, text in cues] == [s.text for s in hello_run.transcript.segments]
    previous = 0.0
    for start, end, _ in cues:
        assert previous <= start < end <= duration + 0.001
        previous = end


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """Cues of an SRT document; fails the test on any malformed block."""
    stamp = r"(\d{2}):(\d{2}):(\d{2}),(\d{3})"
    cues = []
    blocks = [b for b in text.strip().split("\n\n") if b.strip()]
    assert blocks
    for number, block in enumerate(blocks, 1):
        lines = block.splitlines()
        assert lines[0] == str(number)
        match = re.fullmatch(f"{stamp} --> {stamp}", lines[1])
        assert match, lines[1]
        h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(g) for g in match.groups())
        start = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000
        end = h2 * 3600 + m2 * 60 + s2 + ms2 / 1000
        cues.append((start, end, " ".join(lines[2:])))
    return cues


def test_keyphrase_option_reaches_the_engine(plugins: PluginManager, tmp_path: Path) -> None:
    with orchestrator(tmp_path / "s.db", plugins) as orch:
        outcome = orch.run(request(HELLO_WAV, keyphrase="thank you", kws_threshold="1e-20"))
    assert outcome.ok and isinstance(outcome.result, Transcript)
    assert outcome.result.text == "thank you"
    (segment,) = outcome.result.segments
    (word,) = segment.words
    assert word.start is not None and word.end is not None and outcome.result.duration
    assert 4.0 < word.start < word.end <= outcome.result.duration


# --- progress and cancelling -----------------------------------------------------------


def test_progress_then_close_cancels(plugins: PluginManager, long_wav: Path,
                                     tmp_path: Path) -> None:
    provider = local_provider(plugins)
    with orchestrator(tmp_path / "s.db", plugins) as orch:
        handle = orch.submit(request(long_wav))
        local_id = handle.vendor_ids["local_job"]
        shares: list[float] = []

        def running_with_progress() -> bool:
            status = orch.status(handle)
            assert status.state in (JobState.QUEUED, JobState.RUNNING)
            if status.progress:
                shares.append(status.progress)
            return len(shares) >= 2 and shares[-1] > shares[0]

        wait_for(running_with_progress)
        assert all(0.0 < s < 1.0 for s in shares) and shares == sorted(shares)
        assert orch.status(handle).state is JobState.RUNNING
        workers = provider.pool.worker_pids
        orch.close(handle)
        assert provider.pool.worker_pids == workers  # the worker stopped the job: not killed
        assert orch.status(handle).state is JobState.CANCELLED
        assert provider.pool.view(local_id) is None  # freed
        with pytest.raises(ProviderError, match="cancelled"):  # no result, and no fake one
            orch.fetch(handle)


def test_queue_is_first_come_first_served_and_cancellable(long_wav: Path) -> None:
    pool = WorkerPool(max_workers=1)
    try:
        config = WhisperConfig()
        pool.submit("a", str(long_wav), config)
        pool.submit("b", str(HELLO_WAV), config)
        view = pool.view("b")
        assert view is not None and view.phase is JobPhase.QUEUED and view.progress == 0.0
        assert pool.cancel("b") is True
        view = pool.view("b")
        assert view is not None and view.phase is JobPhase.CANCELLED
        assert pool.cancel("a") is True
        assert pool.cancel("a") is False  # already over
    finally:
        pool.shutdown()


def test_a_crashed_worker_fails_its_job_only(long_wav: Path) -> None:
    pool = WorkerPool(max_workers=1)
    try:
        pool.submit("doomed", str(long_wav), WhisperConfig())
        wait_for(lambda: (v := pool.view("doomed")) is not None and v.progress > 0)
        (pid,) = pool.worker_pids
        os.kill(pid, signal.SIGKILL)
        assert pool.wait("doomed", timeout=10)
        view = pool.view("doomed")
        assert view is not None and view.phase is JobPhase.FAILED
        assert view.reason == "worker-crashed" and "signal 9" in (view.detail or "")
        pool.submit("next", str(HELLO_WAV), SphinxConfig(keyphrase="hello"))
        assert pool.wait("next", timeout=20)  # a new worker took over
        view = pool.view("next")
        assert view is not None and view.phase is JobPhase.SUCCEEDED
    finally:
        pool.shutdown()


# --- restarts ----------------------------------------------------------------------------


def test_unfinished_job_after_restart_is_failed_interrupted(long_wav: Path,
                                                           tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    first = load_plugins()
    with orchestrator(store, first) as orch:
        handle = orch.submit(request(long_wav))
        assert orch.status(handle).state in (JobState.QUEUED, JobState.RUNNING)
    second = load_plugins()
    try:
        with orchestrator(store, second) as orch:
            # The first instance is alive in this process: it answers, honestly.
            assert orch.status(handle.job_id).state in (JobState.QUEUED, JobState.RUNNING)
            local_provider(first).shutdown()  # what the end of its process does
            status = orch.status(handle.job_id)
            assert status.state is JobState.FAILED
            assert status.reason == "interrupted" and status.detail == INTERRUPTED_DETAIL
            with pytest.raises(JobFailedError) as failed:
                orch.wait(handle.job_id)
            assert failed.value.reason == "interrupted"
            assert "--new" in str(failed.value)
            orch.close(handle.job_id)  # nothing left to stop: not an error
    finally:
        local_provider(second).shutdown()


def test_finished_job_after_restart_is_fetched_from_the_store(hello_run: Run) -> None:
    fresh = load_plugins()
    try:
        with orchestrator(hello_run.store, fresh) as orch:
            assert orch.status(hello_run.handle.job_id).state is JobState.SUCCEEDED
            assert orch.fetch(hello_run.handle.job_id) == hello_run.transcript
            assert "please call me" in orch.export(hello_run.handle.job_id, "txt")
    finally:
        local_provider(fresh).shutdown()


def test_an_id_this_provider_never_gave_is_not_found(hello_run: Run, plugins: PluginManager,
                                                     tmp_path: Path) -> None:
    # Same owner (this process, this provider instance), unknown local id: nothing to
    # interrupt, it simply does not exist.
    ghost = attrs.evolve(hello_run.handle, job_id="vx_ghost",
                         vendor_ids={"local_job": "lj_nonexistent"})
    with orchestrator(tmp_path / "s.db", plugins) as orch:
        with pytest.raises(NotFoundError):
            orch.status(ghost)
        orch.close(ghost)  # closing something that is not there is not an error


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"model_dir": "/nonexistent/model"}, "model_dir"),
        ({"dictionary": "/nonexistent.dict"}, "dictionary"),
        ({"language_model": "/nonexistent.lm"}, "language_model"),
        ({"grammar": "/nonexistent.jsgf"}, "grammar"),
        ({"keyphrase": "  "}, "keyphrase"),
        ({"kws_threshold": 1e-20}, "kws_threshold"),
        ({"keyphrase": "hello", "kws_threshold": "-1"}, "kws_threshold"),
        ({"segment_gap": "soon"}, "segment_gap"),
        ({"segment_gap": 0}, "segment_gap"),
        ({"engine": "kaldi"}, "engine"),
        ({"model": "/nonexistent/whisper"}, "model"),
        ({"model": "base"}, "model"),  # not on this machine, and offline
        ({"model": "huge"}, "model"),
        ({"device": "tpu"}, "device"),
        ({"device": "cuda"}, "device"),  # no GPU here: refused before anything runs
        ({"compute_type": "float16"}, "compute_type"),
        ({"threads": -2}, "threads"),
        ({"beam_size": 0}, "beam_size"),
        ({"window": 1}, "window"),
        ({"word_timestamps": "maybe"}, "word_timestamps"),
        ({"engine": "whisper", "grammar": "/nonexistent.jsgf"}, "grammar"),
        ({"engine": "pocketsphinx", "beam_size": 2}, "beam_size"),
    ],
)
def test_invalid_options_name_their_field(plugins: PluginManager, tmp_path: Path,
                                          options: dict[str, Any], field: str) -> None:
    with orchestrator(tmp_path / "s.db", plugins) as orch, pytest.raises(
        InvalidInputError
    ) as caught:
        orch.submit(request(HELLO_WAV, **options))
    assert caught.value.field == field and field in str(caught.value)
    assert caught.value.provider == "local"


def test_other_invalid_requests(plugins: PluginManager, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio", encoding="utf-8")
    # A WAV header with nothing decodable behind it: past the core's check, the engine's.
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" * 8)
    grammar = tmp_path / "g.jsgf"
    grammar.write_text("#JSGF V1.0;\ngrammar g;\npublic <a> = hello;\n", encoding="utf-8")
    cases: list[tuple[JobRequest, str, str]] = [
        (attrs.evolve(request(HELLO_WAV), language="fr"), "language", "English only"),
        (attrs.evolve(request(HELLO_WAV, keyphrase="hi"), language="fr"), "language", "en-us"),
        (attrs.evolve(request(HELLO_WAV), language="klingon"), "language", "Whisper"),
        (request(not_audio), "media", "not an audio or video file (it looks like text)"),
        (request(broken), "media", "cannot decode"),
        (JobRequest(provider="local", media=RemoteUrl("https://example.com/a.wav")), "media",
         "URL"),
        (request(HELLO_WAV, keyphrase="hello", grammar=str(grammar)), "keyphrase", "grammar"),
    ]
    with orchestrator(tmp_path / "s.db", plugins) as orch:
        for bad, field, words in cases:
            with pytest.raises(InvalidInputError) as caught:
                orch.submit(bad)
            assert caught.value.field == field and words in str(caught.value)
        with pytest.raises(UnsupportedOptionError) as unknown:
            orch.submit(request(HELLO_WAV, beam=3))
        assert unknown.value.field == "beam"
        prepared = orch.prepare(attrs.evolve(request(HELLO_WAV, grammar="g.jsgf"),
                                             language="EN_us"))
        assert prepared.language == "en-us"
        assert prepared.options["grammar"] == str(grammar.resolve())  # absolute
        # With another model, the language is the user's to say: it only labels the result.
        model = default_model_paths().model_dir
        other = orch.prepare(attrs.evolve(request(HELLO_WAV, model_dir=model), language="xx"))
        assert other.language == "xx"
        # Whisper: the request's label is kept; the model folder is made absolute.
        packaged = models.packaged_model("tiny.en")
        assert packaged is not None
        (tmp_path / "mine").symlink_to(packaged, target_is_directory=True)
        english = orch.prepare(attrs.evolve(request(HELLO_WAV, model="mine"), language="EN_us"))
        assert english.language == "en-us"
        assert english.options["model"] == str(packaged.resolve())
        assert orch.store.jobs() == []  # nothing was recorded for invalid requests


# --- the command line ------------------------------------------------------------------------


def test_cli_transcribe_txt_then_srt(tmp_path: Path, engine_result: engine.Recognition,
                                     long_wav: Path) -> None:
    env = {
        **os.environ,
        "VOXHUB_STORE": str(tmp_path / "cli.db"),
        "VOXHUB_LOAD_PLUGINS": "voxhub-local",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),  # no user config file
    }

    def voxhub(*args: str) -> str:
        done = subprocess.run([str(VOXHUB), *args], env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert voxhub("transcribe", str(HELLO_WAV)).strip() == engine_result.text
    srt = voxhub("transcribe", str(HELLO_WAV), "-f", "srt")  # answered from the store
    cues = parse_srt(srt)
    assert " ".join(text for _, _, text in cues) == engine_result.text
    assert all(end <= engine_result.duration + 0.001 for _, end, _ in cues)

    # A real restart: `submit` returns at once and its process ends, taking the job with it.
    job_id = voxhub("submit", str(long_wav)).strip()
    status = voxhub("status", job_id)
    assert f"{job_id} failed" in status and "interrupted" in status
    assert "submit it again with --new" in status
