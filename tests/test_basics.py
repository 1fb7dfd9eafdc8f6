"""Configuration, redaction, serialization and export; the application API and logging defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from voxhub import Config, JobRequest, RemoteUrl, Segment, Transcript, Word
from voxhub.errors import ConfigurationError, InvalidInputError
from voxhub.export import render, transcript_to_dict
from voxhub.plugins import PluginManager
from voxhub.provider import OptionSpec, ProviderInfo
from voxhub.redact import Secret, mask_url, redact, redact_text
from voxhub.serialization import dump, load


def echo_info():  # type: ignore[no-untyped-def]
    return PluginManager.load(env={"VOXHUB_LOAD_PLUGINS": "voxhub-echo"}).providers["echo"].info


def test_config_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[voxhub]\ndefault_provider = "echo"\n\n[echo]\napi_key = "from-file-123"\n'
        '[echo-b]\nprovider = "echo"\napi_key = "other-key-456"\n'
    )
    config = Config.load(
        path,
        env={"VOXHUB_ECHO_API_KEY": "from-env-789", "VOXHUB_ECHO_BASE_URL": "http://127.0.0.1:1"},
    )
    settings = config.settings(echo_info())
    assert settings.secret("api_key") == "from-env-789"
    assert settings.base_url == "http://127.0.0.1:1"
    assert config.settings(echo_info(), "echo-b").secret("api_key") == "other-key-456"
    assert config.profiles_for("echo") == ["echo", "echo-b"]
    assert config.get("default_provider") == "echo"
    shown = json.dumps(config.masked())
    assert "from-file-123" not in shown and "from-env-789" not in shown and "***" in shown
    assert "from-env-789" not in repr(settings)


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[echo]\napi_kye = 'x'\n")
    with pytest.raises(ConfigurationError, match="unknown setting 'api_kye'"):
        Config.load(path, env={}).settings(echo_info())
    path.write_text("[echo\n")
    with pytest.raises(ConfigurationError, match="cannot read config file"):
        Config.load(path, env={})
    with pytest.raises(ConfigurationError, match="does not exist"):
        Config.load(tmp_path / "missing.toml", env={})


def test_secret_values_are_masked_everywhere() -> None:
    secret = Secret("abcdef-secret-value")
    assert "abcdef" not in repr(secret) and str(secret) == "***"
    assert redact_text("token abcdef-secret-value here") == "token *** here"
    assert redact({"Authorization": "Bearer x", "nested": ["abcdef-secret-value"]}) == {
        "Authorization": "***",
        "nested": ["***"],
    }
    assert (
        mask_url("https://u:p@h/x?X-Amz-Signature=abc&a=1")
        == "https://***@h/x?X-Amz-Signature=***&a=1"
    )
    request = JobRequest(
        provider="p",
        media=RemoteUrl("http://h/a", {"Authorization": "Bearer zz-top-123"}),
        options={"api_token": "tok-zz-99999"},
    )
    assert "zz-top-123" not in repr(request) and "tok-zz-99999" not in repr(request)
    stored = json.dumps(dump(request))
    assert "zz-top-123" not in stored and "tok-zz-99999" not in stored


@given(st.text(min_size=1))
def test_any_text_option_round_trips_through_the_store_format(text: str) -> None:
    request = JobRequest(provider="p", options={"label": text}, metadata={"k": text})
    assert load(json.loads(json.dumps(dump(request))), JobRequest) == request


@given(st.one_of(st.integers(), st.floats(allow_nan=False), st.text(), st.booleans()))
def test_option_specs_refuse_out_of_range_values_naming_the_field(value: object) -> None:
    spec = OptionSpec("speakers", int, min=1, max=8)
    try:
        converted = spec.convert(value, provider="p")
    except InvalidInputError as exc:
        assert exc.field == "speakers" and "speakers" in str(exc)
    else:
        assert isinstance(converted, int) and 1 <= converted <= 8


def transcript() -> Transcript:
    words = (Word(0.0, 0.5, "안녕하세요", 0.9), Word(0.6, 1.2, "world", 0.8))
    long_words = tuple(Word(float(i), i + 0.9, f"w{i}", None) for i in range(2, 14))
    return Transcript(
        "p",
        "vx_1",
        "안녕하세요 world",
        language="ko",
        duration=14.0,
        segments=(
            Segment(0.0, 1.2, "안녕하세요 world", speaker="1", confidence=0.85, words=words),
            Segment(2.0, 13.9, " ".join(w.text for w in long_words), words=long_words),
        ),
    )


def test_json_export_is_the_documented_shape() -> None:
    data = json.loads(render(transcript(), "json"))
    assert list(data) == ["provider", "job_id", "language", "duration", "text", "segments"]
    assert list(data["segments"][0]) == ["start", "end", "text", "speaker", "confidence", "words"]
    assert list(data["segments"][0]["words"][0]) == ["start", "end", "text", "confidence"]
    assert data == transcript_to_dict(transcript())
    assert "안녕하세요" in render(transcript(), "json")  # not \\u-escaped


def test_srt_and_vtt() -> None:
    srt = render(transcript(), "srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,200\n안녕하세요 world\n")
    assert "00:00:02,000 --> " in srt and srt.count(" --> ") >= 3  # the 12 s segment was split
    labelled = render(transcript(), "srt", speakers=True)
    assert labelled.startswith("1\n00:00:00,000 --> 00:00:01,200\n[Speaker 1] 안녕하세요 world\n")
    vtt = render(transcript(), "vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.200\n")
    # txt: one segment per line, no times; speaker labels only when asked for.
    rest = " ".join(f"w{i}" for i in range(2, 14))
    assert render(transcript(), "txt") == f"안녕하세요 world\n{rest}\n"
    assert render(transcript(), "txt", speakers=True) == f"Speaker 1: 안녕하세요 world\n{rest}\n"
    with pytest.raises(InvalidInputError, match="unknown format"):
        render(transcript(), "docx")


# --- the application API and logging defaults ------------------------------------------


def python(code: str) -> str:
    """Run ``code`` in a fresh interpreter; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXHUB_")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_voxhub_is_cheap_and_configures_nothing() -> None:
    out = python(
        "import sys, voxhub\n"
        "print(sorted(m for m in sys.modules if m.startswith('voxhub.')))\n"
        "print('structlog' in sys.modules)\n"
        "voxhub.JobRequest\n"
        "import structlog\n"
        "print(structlog.is_configured())\n"
    )
    assert out.split("\n")[:3] == ["[]", "False", "False"]


def test_the_top_level_api_is_for_applications() -> None:
    import voxhub

    for name in (
        "Orchestrator",
        "JobRequest",
        "LocalFile",
        "Transcript",
        "Config",
        "Outcome",
        "WaitPolicy",
        "ClosePolicy",
        "BatchSettings",
        "BatchRun",
        "BatchBusyError",
        "ItemState",
        "render",
        "VoxhubError",
        "__version__",
    ):
        assert name in voxhub.__all__ and getattr(voxhub, name) is not None
    author_only = {
        "Provider",
        "ProviderInfo",
        "OptionSpec",
        "hookimpl",
        "PluginManager",
        "Store",
        "FakeClock",
        "RetryPolicy",
        "Timeouts",
        "ensure_default_logging",
    }
    assert not author_only & set(voxhub.__all__) and not author_only & set(dir(voxhub))
    with pytest.warns(DeprecationWarning, match="import it from voxhub.plugin"):
        assert voxhub.ProviderInfo is ProviderInfo  # old spelling still works, for now
    with pytest.raises(AttributeError, match="no attribute 'Orchestartor'"):
        voxhub.Orchestartor  # noqa: B018


def test_a_library_user_gets_quiet_logs_unless_the_app_configured_structlog(
    tmp_path: Path,
) -> None:
    build = (
        "from voxhub import Config, Orchestrator\n"
        "from voxhub.plugins import PluginManager\n"
        "import structlog\n"
        "SETUP\n"
        f"Orchestrator(store={str(tmp_path / 'jobs.db')!r}, config=Config.from_profiles({{}}),\n"
        "             plugins=PluginManager.load(env={'VOXHUB_LOAD_PLUGINS': ''}))\n"
        "log = structlog.get_logger('voxhub.test')\n"
        "log.info('info.event'); log.warning('warning.event', token='tok-zz-secret-99')\n"
    )
    quiet = subprocess.run(
        [sys.executable, "-c", build.replace("SETUP", "")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "" and "info.event" not in quiet.stderr
    assert "warning.event" in quiet.stderr and "tok-zz-secret-99" not in quiet.stderr
    app = "structlog.configure(processors=[structlog.processors.JSONRenderer()])"
    kept = subprocess.run(
        [sys.executable, "-c", build.replace("SETUP", app)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert kept.returncode == 0, kept.stderr
    assert '"event": "info.event"' in kept.stdout  # the app's own configuration is kept
