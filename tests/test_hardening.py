"""Issue 16: callbacks by meaning, secrets at rest, file modes, hostile input (a test a point)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog
from voxhub import JobRequest, LocalFile, Orchestrator
from voxhub.callbacks import CallbackHandler
from voxhub.cli import main
from voxhub.config import Config
from voxhub.errors import ConfigurationError, InvalidInputError, ProviderError
from voxhub.models import JobHandle, JobKind, RemoteUrl, new_job_id
from voxhub.provider import OptionSpec
from voxhub.redact import MASK
from voxhub.sandbox import RunningSandbox
from voxhub.serialization import dump, has_masked_secrets
from voxhub.store import Store

pytest.importorskip("voxhub_revai", reason="the callback tests use the Rev.ai sandbox")
from voxhub_revai.options import INFO as REVAI

SAMPLE = Path(__file__).resolve().parent.parent / "docs" / "samples" / "hello.wav"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def armed(
    tmp_path: Path,
    voxhub_sandbox: Callable[..., RunningSandbox],
    voxhub_orchestrator: Callable[..., Orchestrator],
) -> tuple[Orchestrator, JobHandle, str]:
    revai = voxhub_sandbox("revai", processing_seconds=30)
    orch = voxhub_orchestrator(
        {"revai": revai.settings()}, store=Store(tmp_path / "j.db"),
        callback_url="http://127.0.0.1:9/hooks",
    )
    handle = orch.submit(JobRequest(provider="revai", media=LocalFile(SAMPLE)))
    url = orch.context("revai").callback_url_for(handle.job_id)
    assert url is not None
    return orch, handle, url.rsplit("/", 1)[1]


def _hints(orch: Orchestrator, job_id: str) -> int:
    return sum(e.type == "callback-hint" for e in orch.store.events(job_id))


# --- 1 and 2: callbacks ----------------------------------------------------------------


def test_a_reindented_revai_webhook_is_the_same_delivery(
    armed: tuple[Orchestrator, JobHandle, str],
) -> None:
    orch, handle, token = armed
    doc = {"job": {"id": handle.vendor_id, "status": "transcribed",
                   "created_on": "2026-01-01T00:00:00Z"}}
    handler = CallbackHandler(orch)
    for body in (json.dumps(doc), json.dumps(doc, indent=4), json.dumps(doc, indent=1)):
        answer = handler.handle("revai", handle.job_id, token, JSON, body.encode())
        assert answer.status == 200
    assert _hints(orch, handle.job_id) == 1
    failed = {"job": {**doc["job"], "status": "failed"}}  # another status: a new delivery
    assert handler.handle("revai", handle.job_id, token, JSON,
                          json.dumps(failed).encode()).status == 200
    assert _hints(orch, handle.job_id) == 2


def test_a_body_that_is_not_json_is_refused_with_415_before_parsing(
    armed: tuple[Orchestrator, JobHandle, str],
) -> None:
    orch, handle, token = armed
    forged = json.dumps({"job": {"id": handle.vendor_id, "status": "failed"}}).encode()
    handler = CallbackHandler(orch)
    before = orch.store.last_seq(handle.job_id)
    form = {"content-type": "application/x-www-form-urlencoded"}
    for headers in ({"Content-Type": "text/plain"}, {}, form):
        assert handler.handle("revai", handle.job_id, token, headers, forged).status == 415
    assert orch.store.last_seq(handle.job_id) == before
    charset = {"Content-Type": "application/json; charset=utf-8"}
    assert handler.handle("revai", handle.job_id, token, charset, forged).status == 200


# --- 3 and 4: secrets at rest, file modes ----------------------------------------------


def test_url_credentials_and_secret_options_are_sealed_and_resume(tmp_path: Path) -> None:
    url = "https://alice:pa55word-xyz@media.example.com/a.wav?token=tok-123456&x=1"
    request = JobRequest(provider="echo", media=RemoteUrl(url), kind=JobKind.TRANSCRIPTION,
                         profile="echo", options={"api_token": "opt-secret-998877", "n": 1})
    handle = JobHandle(new_job_id(), "echo", JobKind.TRANSCRIPTION, "echo")
    store = Store(tmp_path / "s.db")
    store.record(request, handle)
    raw = store._db.reader().execute("SELECT request FROM jobs").fetchone()[0]
    for secret in ("pa55word-xyz", "tok-123456", "opt-secret-998877"):
        assert secret not in raw
    store.close()
    again = Store(tmp_path / "s.db").get(handle.job_id)  # another store object: resume
    assert again is not None
    assert isinstance(again.request.media, RemoteUrl) and again.request.media.url == url
    assert again.request.options["api_token"] == "opt-secret-998877"
    assert not has_masked_secrets(again.request)
    shown = json.dumps(dump(again.request))  # what `jobs --json` and exports print
    assert "pa55word" not in shown and "tok-123456" not in shown and "opt-secret" not in shown
    assert MASK in shown


def test_store_wal_shm_and_key_files_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = Store(tmp_path / "jobs.db")
        store.callback_key()
        store.record(JobRequest(provider="echo", kind=JobKind.TRANSCRIPTION, profile="echo"),
                     JobHandle(new_job_id(), "echo", JobKind.TRANSCRIPTION, "echo"))
    finally:
        os.umask(old)
    files = sorted(tmp_path.glob("jobs.db*"))
    assert {p.name for p in files} >= {"jobs.db", "jobs.db-wal", "jobs.db-shm",
                                       "jobs.db.callback-key"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


# --- 5: config show ------------------------------------------------------------------------


def test_config_show_masks_exactly_the_declared_secrets() -> None:
    config = Config(
        profiles={"token-lab": {"provider": "revai", "region": "eu", "token": "tok-abcdef"}},
        env={"VOXHUB_TOKEN_LAB_REGION": "us", "VOXHUB_TOKEN_LAB_TOKEN": "tok-zzzzzz",
             "VOXHUB_TOKEN_LAB_WEBHOOK_AUTHORIZATION": "Bearer q"},
    )
    shown = config.masked({"revai": REVAI})
    assert shown["token-lab"] == {"provider": "revai", "region": "eu", "token": MASK}
    assert shown["environment"] == {"VOXHUB_TOKEN_LAB_REGION": "us",
                                    "VOXHUB_TOKEN_LAB_TOKEN": MASK,
                                    "VOXHUB_TOKEN_LAB_WEBHOOK_AUTHORIZATION": MASK}


# --- 6: no tracebacks --------------------------------------------------------------------


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    # The CLI points structlog at this test's (captured) stderr: put the old setup back,
    # or later tests would log to a closed file.
    configured, saved = structlog.is_configured(), structlog.get_config()
    try:
        with pytest.raises(SystemExit) as info:
            main(argv)
    finally:
        if configured:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()
    err = capsys.readouterr().err.strip()
    return int(info.value.code or 0), err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 2000 + "]" * 2000, "cannot read config file"),
        ("a = " + "{b = " * 2000 + "1" + "}" * 2000, "cannot read config file"),
        ("a = " + "[" * 5000 + "]" * 5000, "cannot read config file"),
        ("[voxhub]\nstore = 5\n", "must be a string"),
        ("voxhub = 5\n", "must be a table"),
        ("[voxhub]\nread_timeout = \"x\"\n", "number of seconds"),
        ("[revai]\ntoken = {a = 1}\n", "must be a string or a number"),
    ],
)
def test_malformed_config_files_are_one_line_errors(
    tmp_path: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    code, err = _cli(["--config", str(path), "config", "show"], capsys)
    assert code == 2 and err.startswith("error:") and message in err and "\n" not in err


@pytest.mark.parametrize(
    "args",
    [["--fault", "rate_limited=abc"], ["--fault", "seed=x"], ["--fault", "nosuch=1"],
     ["--fault", "server_error_statuses=5"], ["--fault", "noequals"],
     ["--option", "region=mars"], ["--option", "nosuch=1"], ["--option", "processing_seconds=x"]],
)
def test_malformed_sandbox_settings_are_usage_errors(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _cli(["sandbox", "revai", *args], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("Error:")


def test_a_deeply_nested_json_option_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = "[" * 2000 + "]" * 2000
    os.environ.setdefault("VOXHUB_REVAI_TOKEN", "t")
    code, err = _cli(["--store", str(tmp_path / "s.db"), "submit", str(SAMPLE), "-p", "revai",
                      "--option", f"custom_vocabularies={deep}"], capsys)
    assert code == 2 and err.startswith("error:") and "nested too deeply" in err
    assert "\n" not in err


# --- 7: values that must be refused ------------------------------------------------------


def test_invalid_json_in_a_json_option_is_refused() -> None:
    spec = OptionSpec("custom_vocabularies", list)
    with pytest.raises(InvalidInputError, match="expected a JSON list"):
        spec.convert('["a",', provider="revai")
    assert spec.convert("a, b", provider="revai") == ["a", "b"]  # a plain comma list still works
    with pytest.raises(InvalidInputError, match="JSON object"):
        OptionSpec("translate", dict).convert("{oops", provider="agora-stt")


@pytest.mark.parametrize("bad", ["x" * 20_000_000, 123, float("nan"), "", "a b", "a\nb"])
def test_bad_vendor_ids_are_refused_before_they_are_stored(bad: object) -> None:
    handle = JobHandle(new_job_id(), "echo", JobKind.TRANSCRIPTION, "echo")
    with pytest.raises(ProviderError, match="id") as info:
        handle.with_vendor({"job": bad})  # type: ignore[dict-item]
    assert info.value.in_doubt and len(str(info.value)) < 200


def test_a_non_string_token_in_the_config_is_refused() -> None:
    for value in (5, 1.5, True, ["t"]):
        with pytest.raises(ConfigurationError, match=r"'token'.*must be a string"):
            Config.from_profiles({"revai": {"token": value}}).settings(REVAI)
