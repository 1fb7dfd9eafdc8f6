"""Input and option checks before anything is recorded or sent (issue 18, point 6).

Local media: a directory, an empty file, an unreadable file, something that is not a
regular file and a file that is not audio or video (by its bytes) each get their own
one-line error naming the file, before a job is recorded and before any request. Time
limits are finite and positive everywhere; a named store's folder must exist; ``--debug``
adds a traceback and keeps the exit status. Run through the real ``voxhub`` command
against the Rev.ai sandbox where the issue saw the problem.
"""

from __future__ import annotations

import ctypes
import io
import math
import os
import sqlite3
import subprocess
import sys
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from voxhub import Orchestrator
from voxhub.errors import InvalidInputError
from voxhub.media_checks import ANY_FILE, AUDIO_VIDEO, accepts, check_local_media, sniff
from voxhub.models import JobRequest, LocalFile
from voxhub.sandbox import RunningSandbox
from voxhub.validation import check_timeout

VOXHUB = str(Path(sys.executable).with_name("voxhub"))
SAMPLES = Path(__file__).resolve().parent.parent / "docs" / "samples"


def wav_bytes(seconds: float = 0.2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * int(8000 * seconds))
    return out.getvalue()


def _ts_packets() -> bytes:
    return b"".join(b"\x47\x40\x00\x10" + bytes(184) for _ in range(3))


# The first bytes of each container as its specification (or a real file) has them.
MEDIA: dict[str, tuple[bytes, str]] = {
    "wav": (wav_bytes(), "WAV audio"),
    "wav sample": ((SAMPLES / "hello.wav").read_bytes()[:512], "WAV audio"),
    "rf64": (b"RF64\xff\xff\xff\xffWAVEds64" + bytes(28), "WAV audio"),
    "wave64": (bytes.fromhex("726966662e91cf11a5d628db04c10000") + bytes(24), "Wave64 audio"),
    "aiff": (b"FORM\x00\x00\x10\x00AIFFCOMM\x00\x00\x00\x12" + bytes(18), "AIFF audio"),
    "aifc": (b"FORM\x00\x00\x10\x00AIFCFVER\x00\x00\x00\x04" + bytes(4), "AIFF audio"),
    "flac sample": ((SAMPLES / "office.flac").read_bytes()[:512], "FLAC audio"),
    "ogg vorbis": (b"OggS\x00\x02" + bytes(20) + b"\x01\x1e\x01vorbis", "Ogg media"),
    "ogg opus": (b"OggS\x00\x02" + bytes(20) + b"\x01\x13OpusHead", "Ogg media"),
    "mp3 id3": (b"ID3\x04\x00\x00\x00\x00\x00\x21" + b"\xff\xfb\x90\x64", "MP3 audio"),
    "mp3 frame": (b"\xff\xfb\x90\x64" + bytes(60), "MP3 audio"),
    "mpeg-2 layer 3": (b"\xff\xf3\x48\xc4" + bytes(60), "MP3 audio"),
    "aac adts": (b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(40), "AAC audio"),
    "aac adif": (b"ADIF\x00" + bytes(40), "AAC audio"),
    "m4a": (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom" + bytes(8), "M4A audio"),
    "mp4": (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "MP4 media"),
    "mov": (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ", "QuickTime video"),
    "old mov": (b"\x00\x00\x00\x08wide\x00\x10\x00\x00mdat", "QuickTime video"),
    "3gp": (b"\x00\x00\x00\x14ftyp3gp4\x00\x00\x02\x003gp4", "3GP media"),
    "webm": (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "WebM/Matroska media"),
    "amr": (b"#!AMR\n\x3c" + bytes(31), "AMR audio"),
    "amr-wb": (b"#!AMR-WB\n\x04" + bytes(32), "AMR-WB audio"),
    "asf/wma": (bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c") + bytes(14), "ASF/WMA media"),
    "caf": (b"caff\x00\x01\x00\x00desc\x00\x00\x00\x00\x00\x00\x00\x20", "CAF audio"),
    "avi": (b"RIFF\x00\x10\x00\x00AVI LIST\x00\x00\x01\x00hdrl", "AVI video"),
    "ac3": (b"\x0b\x77\x3d\x43\x14\x40" + bytes(20), "AC-3 audio"),
    "au": (b".snd\x00\x00\x00\x18\xff\xff\xff\xff\x00\x00\x00\x03", "AU audio"),
    "flv": (b"FLV\x01\x05\x00\x00\x00\x09", "FLV video"),
    "mpeg-ps": (b"\x00\x00\x01\xba\x44\x00\x04\x00\x04\x01", "MPEG program stream"),
    "mpeg-ts": (_ts_packets(), "MPEG transport stream"),
}

# Files that are not audio or video, with what the error says they look like.
NOT_MEDIA: dict[str, tuple[bytes, str | None]] = {
    "text": (b"Meeting notes: call Bob.\n", "text"),
    "korean text": ("회의록입니다\n".encode(), "text"),
    "utf-16 text": ("notes".encode("utf-16"), "text"),
    "text with free at byte 4": (b"Get free audio here\n", "text"),
    "text starting caff": (b"caffeine notes\n", "text"),
    "text starting ID3": (b"ID3 tags explained\n", "text"),
    "pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF document"),
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG image"),
    "jpeg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "JPEG image"),
    "zip": (b"PK\x03\x04\x14\x00\x00\x00", "ZIP archive"),
    "heic": (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "heic image"),
    "webp": (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "WebP image"),
    "riff of nothing": (b"RIFF" + bytes(60), None),
    "zeros": (bytes(64), None),
}


@pytest.mark.parametrize("name", sorted(MEDIA))
def test_media_containers_are_told_by_their_bytes(name: str, tmp_path: Path) -> None:
    head, kind_name = MEDIA[name]
    kind = sniff(head)
    assert kind.name == kind_name and kind.is_media
    # Whatever the file is called: the bytes decide.
    path = tmp_path / "recording.txt"
    path.write_bytes(head)
    assert check_local_media(path, AUDIO_VIDEO, provider="p") == kind


@pytest.mark.parametrize("name", sorted(NOT_MEDIA))
def test_other_files_are_refused_saying_what_they_look_like(name: str, tmp_path: Path) -> None:
    head, looks = NOT_MEDIA[name]
    path = tmp_path / "talk.wav"
    path.write_bytes(head)
    assert not sniff(head).is_media
    with pytest.raises(InvalidInputError) as caught:
        check_local_media(path, AUDIO_VIDEO, provider="revai")
    error = caught.value
    assert error.field == "media" and error.provider == "revai"
    expected = f"{path} is not an audio or video file"
    if looks is not None:
        expected += f" (it looks like {looks})"
    assert error.message == expected
    # A provider that takes any file takes it.
    check_local_media(path, ANY_FILE, provider="echo")


def test_declared_media_types_narrow_what_is_accepted(tmp_path: Path) -> None:
    mp4 = tmp_path / "clip.mp4"
    mp4.write_bytes(MEDIA["mp4"][0])
    assert accepts({"audio/*"}, sniff(MEDIA["mp4"][0]))  # an MP4 may hold only sound
    assert not accepts({"audio/wav"}, sniff(MEDIA["mp4"][0]))
    with pytest.raises(InvalidInputError, match=r"is not a media type 'p' accepts \(audio/wav\)"):
        check_local_media(mp4, {"audio/wav"}, provider="p")


def test_each_local_file_problem_has_its_own_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    cases = {
        tmp_path / "missing.wav": f"no such file: {tmp_path / 'missing.wav'}",
        folder: f"{folder} is a directory, not a media file",
        empty: f"{empty} is empty (0 bytes)",
        fifo: f"{fifo} is not a regular file",  # never opened: that would block
    }
    for path, message in cases.items():
        with pytest.raises(InvalidInputError) as caught:
            check_local_media(path, ANY_FILE, provider="echo")
        assert caught.value.message == message and caught.value.field == "media"
    odd = tmp_path / "two\nlines.wav"
    odd.mkdir()
    with pytest.raises(InvalidInputError) as caught:
        check_local_media(odd, ANY_FILE, provider="echo")
    assert "\n" not in str(caught.value) and "two\\nlines.wav" in str(caught.value)


# --- timeouts ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-5, 0, 0.0, math.nan, math.inf, -math.inf, True, "soon"])
def test_python_api_timeouts_are_finite_and_positive(
    bad: Any, orch: Orchestrator, media: Path
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_timeout(bad)
    assert caught.value.field == "timeout"
    handle = orch.submit(JobRequest(provider="echo", media=LocalFile(media)))
    for call in (
        lambda: orch.wait(handle, timeout=bad),
        lambda: orch.complete(handle, timeout=bad),
    ):
        with pytest.raises(InvalidInputError) as caught:
            call()
        assert caught.value.field == "timeout" and "timeout" in caught.value.message
    assert check_timeout(None) is None and check_timeout(2) == 2.0
    assert orch.wait(handle, timeout=30).state.value == "succeeded"


# --- through the voxhub command --------------------------------------------------------------


def voxhub(
    env: dict[str, str], *args: str, code: int = 0, preexec: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [VOXHUB, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        preexec_fn=preexec,  # only drops capabilities before exec
    )
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    return result


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error line a command ended with (the last on stderr), with no traceback."""
    lines = result.stderr.strip().splitlines()
    assert lines and "Traceback" not in result.stderr, result.stderr
    assert lines[-1].startswith("error: "), result.stderr
    return lines[-1]


@pytest.fixture
def revai(voxhub_sandbox: Callable[..., RunningSandbox]) -> RunningSandbox:
    return voxhub_sandbox("revai", processing_seconds=0.0, use_engine=False)


@pytest.fixture
def revai_env(revai: RunningSandbox, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "VOXHUB_STORE": str(tmp_path / "jobs.db"),
        "VOXHUB_REVAI_BASE_URL": revai.base_url,
        "VOXHUB_REVAI_TOKEN": revai.settings()["token"],
        "NO_COLOR": "1",
    }


def _without_file_access_override() -> None:
    """In the child, before exec: root loses the capabilities that bypass file modes.

    As root, ``chmod 000`` stops nobody: CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH let
    every read through. Dropped from the bounding set, the ``voxhub`` process that
    follows runs as root without them, and the mode applies to it as to anyone.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for cap in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _jobs_recorded(store: Path) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store) as conn:
        return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])


def test_bad_local_inputs_fail_before_recording_or_sending(
    revai_env: dict[str, str], revai: RunningSandbox, tmp_path: Path
) -> None:
    folder = tmp_path / "recordings"
    folder.mkdir()
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    notes = tmp_path / "notes.wav"
    notes.write_text("Action items: ship it.\n", encoding="utf-8")
    locked = tmp_path / "locked.wav"
    locked.write_bytes(wav_bytes())
    locked.chmod(0)
    root = os.geteuid() == 0
    cases = [
        (folder, f"{folder} is a directory, not a media file", None),
        (empty, f"{empty} is empty (0 bytes)", None),
        (notes, f"{notes} is not an audio or video file (it looks like text)", None),
        (
            locked,
            f"cannot read {locked}: permission denied",
            _without_file_access_override if root else None,
        ),
    ]
    for path, message, preexec in cases:
        result = voxhub(
            revai_env, "transcribe", "-p", "revai", str(path), code=2, preexec=preexec
        )
        assert one_line_error(result) == f"error: revai:validate: {message}"
    assert revai.sandbox.counters.get("requests") == 0
    assert _jobs_recorded(Path(revai_env["VOXHUB_STORE"])) == 0


def test_non_audio_file_in_a_batch_fails_alone(
    revai_env: dict[str, str], revai: RunningSandbox, tmp_path: Path
) -> None:
    good = tmp_path / "good.wav"
    good.write_bytes(wav_bytes())
    notes = tmp_path / "notes.mp3"
    notes.write_text("not sound\n", encoding="utf-8")
    result = voxhub(revai_env, "transcribe", "-p", "revai", str(good), str(notes), code=1)
    assert f"{notes} is not an audio or video file (it looks like text)" in result.stderr
    # Only the good input went out.
    assert revai.sandbox.counters.get("jobs.created") == 1


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf", "-inf", "soon"])
def test_every_timeout_option_refuses_what_is_no_time_limit(
    revai_env: dict[str, str], value: str
) -> None:
    for args in (
        ("wait", "vx_any", "--timeout", value),
        ("retry", "vx_any", "--wait", value),
        ("transcribe", "x.wav", "--timeout", value),
        ("jobs", "resume", "--timeout", value),
        ("moderate", "rtmp://example.com/live", "--wait", value),
    ):
        result = voxhub(revai_env, *args, code=2)
        assert "Invalid value for" in result.stderr and "Traceback" not in result.stderr
        assert "seconds" in result.stderr


# --- the store and --debug ----------------------------------------------------------------


def test_a_named_store_needs_its_folder(
    revai_env: dict[str, str], tmp_path: Path
) -> None:
    typo = tmp_path / "typo" / "x.db"
    no_env = {k: v for k, v in revai_env.items() if k != "VOXHUB_STORE"}
    result = voxhub(no_env, "--store", str(typo), "status", "vx_a", code=2)
    assert result.stderr.count("\n") == 1
    assert one_line_error(result) == (
        f"error: --store {typo}: the folder {typo.parent} does not exist (create it first)"
    )
    from_env = voxhub({**revai_env, "VOXHUB_STORE": str(typo)}, "status", "vx_a", code=2)
    assert one_line_error(from_env).startswith(f"error: $VOXHUB_STORE {typo}: the folder")
    config = tmp_path / "config.toml"
    config.write_text(f'[voxhub]\nstore = "{typo}"\n', encoding="utf-8")
    from_config = voxhub({**no_env, "VOXHUB_CONFIG": str(config)}, "status", "vx_a", code=2)
    assert one_line_error(from_config).startswith(f"error: the config's store {typo}: the folder")
    assert not typo.parent.exists()
    # The default location is created on first use.
    data = tmp_path / "fresh-xdg"
    voxhub({**no_env, "XDG_DATA_HOME": str(data)}, "status", "vx_a", code=4)
    assert (data / "voxhub" / "jobs.db").is_file()


def test_debug_adds_a_traceback_and_keeps_the_exit_status(
    revai_env: dict[str, str], tmp_path: Path
) -> None:
    missing = voxhub(revai_env, "--debug", "status", "vx_nope", code=4)
    assert "Traceback" in missing.stderr
    assert missing.stderr.strip().splitlines()[-1].startswith("error: lookup: no job 'vx_nope'")
    store = tmp_path / "typo" / "x.db"
    bad_store = voxhub(revai_env, "--debug", "--store", str(store), "status", "vx_a", code=2)
    assert "Traceback" in bad_store.stderr and "InvalidInputError" in bad_store.stderr
    folder = tmp_path / "folder"
    folder.mkdir()
    bad_media = voxhub(revai_env, "--debug", "transcribe", "-p", "revai", str(folder), code=2)
    assert "Traceback" in bad_media.stderr
    assert bad_media.stderr.strip().splitlines()[-1].endswith("is a directory, not a media file")
