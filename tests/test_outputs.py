"""Consistent outputs (issue 18, point 7): one ``txt`` shape for every provider, speaker
labels only on request, and a stored result served the same before and after ``close``.

Run through the real ``voxhub`` command against the Rev.ai sandbox (whose own
``text/plain`` has speaker and time columns, and whose captions vanish with the job).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from voxhub import Orchestrator
from voxhub._stored_exports import keep_export, stored_export
from voxhub.export import FORMATS, render
from voxhub.models import JobRequest, JobState, JobStatus, LocalFile, Segment, Transcript
from voxhub.sandbox import RunningSandbox

VOXHUB = str(Path(sys.executable).with_name("voxhub"))
SPOKEN = "Hello there. How are you today? I am fine, thanks."


def voxhub(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([VOXHUB, *args], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == code, (result.returncode, result.stderr)
    return result


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    return folder


@pytest.fixture
def talk(media_dir: Path) -> Path:
    """A 2 s WAV; the sandbox reads what it says from the sidecar text beside it."""
    path = media_dir / "talk.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 16000)
    Path(f"{path}.txt").write_text(SPOKEN, encoding="utf-8")
    return path


@pytest.fixture
def revai(voxhub_sandbox: Callable[..., RunningSandbox], media_dir: Path) -> RunningSandbox:
    return voxhub_sandbox(
        "revai", processing_seconds=0.0, use_engine=False, sidecar_dirs=[media_dir], seed=7
    )


@pytest.fixture
def env(revai: RunningSandbox, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "VOXHUB_STORE": str(tmp_path / "jobs.db"),
        "VOXHUB_REVAI_BASE_URL": revai.base_url,
        "VOXHUB_REVAI_TOKEN": revai.settings()["token"],
        "NO_COLOR": "1",
    }


def captions_asked(revai: RunningSandbox) -> int:
    counts = revai.sandbox.counters.snapshot()
    return sum(n for key, n in counts.items() if key.startswith("GET ") and "/captions" in key)


def transcribe(env: dict[str, str], talk: Path, *args: str) -> dict[str, object]:
    out = voxhub(env, "transcribe", "-p", "revai", str(talk), "-f", "json", *args).stdout
    data: dict[str, object] = json.loads(out)
    return data


def test_txt_is_plain_text_one_segment_per_line(env: dict[str, str], talk: Path) -> None:
    # Two speakers: the sandbox gives the sentences to them in turn, a monologue each.
    data = transcribe(env, talk, "--option", "speakers_count=2")
    job = str(data["job_id"])
    segments = data["segments"]
    assert isinstance(segments, list) and len(segments) == 3
    txt = voxhub(env, "fetch", job).stdout
    # Not Rev's text/plain ("Speaker 0    00:00:00    Hello there."): voxhub's one shape.
    assert txt == "".join(s["text"].strip() + "\n" for s in segments)
    assert txt.startswith("Hello there.\n") and "Speaker" not in txt and "00:00" not in txt
    labelled = voxhub(env, "fetch", job, "-f", "txt", "--speakers").stdout
    assert labelled.splitlines() == [
        f"Speaker {s['speaker']}: {s['text'].strip()}" for s in segments
    ]


def test_txt_has_the_same_shape_for_every_provider() -> None:
    # As the plugins build them: Rev (monologues with speakers), NHN (time slots, no
    # speaker), the local engines (utterances), echo (one segment, speaker "0").
    revai = Transcript("revai", "vx_1", "Hi there. Fine.", segments=(
        Segment(0.0, 1.0, "Hi  there.", speaker="0"), Segment(1.2, 2.0, "Fine.", speaker="1")))
    nhn = Transcript("nhn", "vx_2", "안녕하세요 반갑습니다", segments=(
        Segment(0.0, 1.0, "안녕하세요"), Segment(1.0, 2.0, "반갑습니다")))
    local = Transcript("local", "vx_3", "hello world", segments=(
        Segment(0.0, 1.0, " hello\nworld "),))
    bare = Transcript("x", "vx_4", "no segments here\nsecond paragraph\n")
    assert render(revai, "txt") == "Hi there.\nFine.\n"
    assert render(revai, "txt", speakers=True) == "Speaker 0: Hi there.\nSpeaker 1: Fine.\n"
    assert render(nhn, "txt") == render(nhn, "txt", speakers=True) == "안녕하세요\n반갑습니다\n"
    assert render(local, "txt") == "hello world\n"
    assert render(bare, "txt") == "no segments here\nsecond paragraph\n"
    named = Transcript("p", "vx_5", "x", segments=(Segment(0.0, 1.0, "x", speaker="Alice"),))
    assert render(named, "txt", speakers=True) == "Alice: x\n"
    assert "[Speaker 0] Hi there." in render(revai, "vtt", speakers=True)
    assert "[Speaker" not in render(revai, "vtt")


def test_fetch_is_the_same_before_and_after_close(
    env: dict[str, str], talk: Path, revai: RunningSandbox
) -> None:
    job = str(transcribe(env, talk)["job_id"])
    assert captions_asked(revai) == 0

    def every_rendering() -> dict[tuple[str, bool], str]:
        shown = {}
        for fmt in FORMATS:
            for speakers in (False, True):
                flag = ("--speakers",) if speakers else ()
                shown[fmt, speakers] = voxhub(env, "fetch", job, "-f", fmt, *flag).stdout
        return shown

    before = every_rendering()
    # Rev's own captions, asked for once per format and kept; everything else is voxhub's.
    assert captions_asked(revai) == 2
    assert before["srt", False].startswith("1\n00:00:00,000 --> ")
    assert before["vtt", False].startswith("WEBVTT")
    assert every_rendering() == before and captions_asked(revai) == 2

    assert voxhub(env, "close", job).stdout.strip() == f"{job} closed"
    assert revai.sandbox.counters.get("jobs.deleted") == 1
    requests = revai.sandbox.counters.get("requests")
    assert every_rendering() == before
    assert revai.sandbox.counters.get("requests") == requests  # all from the store


def test_a_format_first_asked_after_close_is_rendered_from_the_stored_result(
    env: dict[str, str], talk: Path, revai: RunningSandbox, tmp_path: Path
) -> None:
    data = transcribe(env, talk)
    job = str(data["job_id"])
    voxhub(env, "close", job)
    requests = revai.sandbox.counters.get("requests")
    srt = voxhub(env, "fetch", job, "-f", "srt").stdout
    assert srt.startswith("1\n00:00:00,000 --> ") and "Hello there." in srt
    assert voxhub(env, "fetch", job, "-f", "srt").stdout == srt
    assert revai.sandbox.counters.get("requests") == requests
    # Writing to a folder that is not there: one line, naming the file.
    target = tmp_path / "nowhere" / "out.srt"
    failed = voxhub(env, "fetch", job, "-f", "srt", "-o", str(target), code=2)
    assert failed.stderr.strip() == f"error: cannot write {target}: No such file or directory"


def test_a_kept_export_belongs_to_the_stored_result(orch: Orchestrator, media: Path) -> None:
    outcome = orch.run(JobRequest(provider="echo", media=LocalFile(media)))
    assert outcome.handle is not None
    job = outcome.handle.job_id
    assert stored_export(orch.store, job, "srt") is None
    assert keep_export(orch.store, job, "srt", "first\n") == "first\n"
    assert keep_export(orch.store, job, "srt", "second\n") == "first\n"  # the first one wins
    assert stored_export(orch.store, job, "srt") == "first\n"
    # A job that runs again (a retry) loses its result, and the renderings of it with it.
    orch.store.reopen(job, JobStatus(JobState.QUEUED), outcome.handle)
    assert stored_export(orch.store, job, "srt") is None
    # Without a stored result nothing is kept (a live job's snapshot is not final).
    assert keep_export(orch.store, job, "srt", "snapshot\n") == "snapshot\n"
    assert stored_export(orch.store, job, "srt") is None
