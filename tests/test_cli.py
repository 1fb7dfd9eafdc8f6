"""The `voxhub` command line, run as a real process against the echo sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from voxhub.sandbox import RunningSandbox

VOXHUB = str(Path(sys.executable).with_name("voxhub"))


@pytest.fixture
def env(echo: RunningSandbox, tmp_path: Path) -> dict[str, str]:
    settings = echo.settings()
    return {
        **os.environ,
        "VOXHUB_STORE": str(tmp_path / "cli.db"),
        "VOXHUB_LOAD_PLUGINS": "voxhub-echo",
        "VOXHUB_ECHO_BASE_URL": settings["base_url"],
        "VOXHUB_ECHO_API_KEY": settings["api_key"],
    }


def voxhub(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([VOXHUB, *args], capture_output=True, text=True, env=env, timeout=60)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def test_transcribe_jobs_fetch_close(
    env: dict[str, str], media: Path, echo: RunningSandbox
) -> None:
    out = voxhub(env, "transcribe", str(media), "-f", "json").stdout
    data = json.loads(out)
    assert data["provider"] == "echo" and data["text"] == "hello world.wav"
    rows = json.loads(voxhub(env, "jobs", "--json").stdout)
    assert len(rows) == 1 and rows[0]["state"] == "succeeded"
    job = rows[0]["job_id"]
    srt = voxhub(env, "fetch", job, "-f", "srt").stdout
    assert srt.startswith("1\n00:00:00,000 --> ")
    assert voxhub(env, "status", job).stdout.startswith(f"{job} succeeded")
    assert voxhub(env, "close", job).stdout.strip() == f"{job} closed"
    assert echo.sandbox.counters.get("jobs.created") == 1
    # Running the same input again reuses the stored job.
    voxhub(env, "transcribe", str(media))
    assert echo.sandbox.counters.get("jobs.created") == 1
    show = json.loads(voxhub(env, "jobs", "show", job).stdout)
    assert [e["type"] for e in show["events"]][-1] == "closed"


def test_batch_writes_one_file_per_input(env: dict[str, str], tmp_path: Path) -> None:
    inputs = []
    for name in ("one", "two", "three"):
        path = tmp_path / f"{name}.wav"
        path.write_bytes(b"RIFF" + bytes(100))
        inputs.append(str(path))
    voxhub(
        env, "transcribe", *inputs, "-o", str(tmp_path / "out"), "-f", "vtt", "--concurrency", "2"
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "one.vtt",
        "three.vtt",
        "two.vtt",
    ]
    assert (tmp_path / "out" / "two.vtt").read_text().startswith("WEBVTT")


def test_no_wait_then_wait(env: dict[str, str], media: Path) -> None:
    job = voxhub(env, "transcribe", str(media), "--no-wait").stdout.strip()
    assert job.startswith("vx_")
    assert "succeeded" in voxhub(env, "wait", job, "--timeout", "30").stdout
    assert voxhub(env, "fetch", job).stdout == "hello world.wav\n"


def test_errors_are_one_line_with_exit_codes(env: dict[str, str], media: Path) -> None:
    bad = voxhub(env, "transcribe", str(media), "--option", "speed=99", ok=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: echo:validate: option 'speed'")
    assert "Traceback" not in bad.stderr
    failed = voxhub(env, "transcribe", "http://x/a", "--option", "fail=true", ok=False)
    assert (
        failed.returncode == 6 and "synthetic failure requested" in failed.stderr
    )  # JobFailedError
    missing = voxhub(env, "status", "vx_nope", ok=False)
    assert missing.returncode == 4 and "no job 'vx_nope'" in missing.stderr
    debug = voxhub(env, "--debug", "status", "vx_nope", ok=False)
    assert "Traceback" in debug.stderr


def test_config_show_masks_secrets(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[echo]\napi_key = "file-secret-123456"\n')
    env = {**env, "VOXHUB_CONFIG": str(config)}
    shown = voxhub(env, "config", "show").stdout
    assert "file-secret-123456" not in shown and env["VOXHUB_ECHO_API_KEY"] not in shown
    assert '"api_key": "***"' in shown
    assert str(config) in voxhub(env, "config", "path").stdout


def test_sandbox_command_prints_json_lines(env: dict[str, str]) -> None:
    proc = subprocess.Popen([VOXHUB, "sandbox", "echo"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert line["provider"] == "echo" and line["base_url"].startswith("http://127.0.0.1:")
        assert set(line["credentials"]) == {"api_key"}
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_no_secret_in_any_output_with_debug_logs(env: dict[str, str], media: Path) -> None:
    for fmt in ("json", "console"):
        result = voxhub(
            env, "--log-level", "debug", "--log-format", fmt, "transcribe", str(media), "--new"
        )
        assert "http.response" in result.stderr  # debug logging really ran
        assert env["VOXHUB_ECHO_API_KEY"] not in result.stdout + result.stderr


# --- start-up: commands declared lazily ---------------------------------------------------


def test_declared_help_is_the_commands_own() -> None:
    from voxhub.cli import cli
    from voxhub.cli.lazy import LazyCommand

    lazy = [c for c in cli.commands.values() if isinstance(c, LazyCommand)]
    assert len(lazy) >= 14
    for command in lazy:
        real = command.load()
        for limit in (45, 200):
            assert command.get_short_help_str(limit) == real.get_short_help_str(limit), command.name


def test_plugin_commands_are_listed_and_loaded_when_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXHUB_")}
    env["VOXHUB_STORE"] = str(tmp_path / "cli.db")
    listing = voxhub(env, "--help").stdout
    for name in ("tupu", "agora", "nhn"):
        assert f"\n  {name} " in listing
    assert "keygen" in voxhub(env, "tupu", "--help").stdout
    missing = voxhub(env, "no-such-command", ok=False)
    assert missing.returncode == 2 and "No such command 'no-such-command'" in missing.stderr


def test_quiet_commands_still_log_in_the_requested_format(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "voxhub_gone-1.0.dist-info").mkdir()
    (site / "voxhub_gone-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: voxhub-gone\nVersion: 1.0\n"
    )
    (site / "voxhub_gone-1.0.dist-info" / "entry_points.txt").write_text(
        "[voxhub]\ngone = voxhub_gone_missing_module\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "VOXHUB_LOAD_PLUGINS": "voxhub-gone"}
    result = voxhub(env, "--log-format", "json", "providers", "--json")
    warning = json.loads(result.stderr.strip().splitlines()[-1])
    assert warning["event"] == "plugin.failed" and warning["plugin"] == "gone"
    assert json.loads(result.stdout)[0]["plugin"] == "gone"  # stdout stays parseable
