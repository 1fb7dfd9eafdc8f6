"""The secret key and the UAK token never appear in logs, errors, reprs or the job store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from nhn_helpers import new_handle, wait_terminal, write_wav
from structlog.testing import capture_logs
from voxhub.errors import VoxhubError
from voxhub.models import JobHandle, JobRequest, LocalFile, RemoteUrl
from voxhub.orchestrator import Orchestrator, WaitPolicy
from voxhub.provider import ProviderContext
from voxhub.sandbox import FaultPlan, RunningSandbox
from voxhub_nhn.provider import NhnProvider

SECRET = "sk-very-secret-0123456789"
TOKEN = "uak-token-abcdefghijklmnop"
APP_KEY = "appkey-zyxwvu987654"


@pytest.fixture(autouse=True)
def _debug_logging() -> Iterator[None]:
    """Let every level through (capture_logs swaps processors, not the level filter)."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    yield
    structlog.configure(**saved)


def _everything(obj: Any) -> str:
    return f"{obj!r} {obj}"


@pytest.mark.parametrize("version", ["v2.0", "v2.1"])
def test_no_secret_anywhere(
    version: str, provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext], tmp_path: Path,
) -> None:
    server = nhn_sandbox(app_key=APP_KEY, secret_key=SECRET, uak_token=TOKEN,
                         processing_seconds=0.1, failure_rate=1.0)
    ctx = nhn_ctx(server, version=version)
    wav = write_wav(tmp_path / "a.wav", 1.0)
    seen = [_everything(ctx), _everything(ctx.settings), _everything(provider.authenticate(ctx))]
    with capture_logs() as logs:
        out = provider.submit(ctx, JobRequest("nhn", media=LocalFile(wav)), new_handle())
        seen.append(_everything(out))
        handle = provider.submit(ctx, JobRequest("nhn", media=RemoteUrl("https://e.com/a.mp3")),
                                 new_handle())
        assert isinstance(handle, JobHandle)
        seen += [_everything(s) for s in wait_terminal(provider, ctx, handle)]
        seen.append(_everything(provider.retry(ctx, handle)))
        # Refusals and faults: wrong credentials, then a dropped connection.
        wrong = nhn_ctx(server, version=version, secret_key=SECRET + "x", uak_token=TOKEN + "x")
        with pytest.raises(VoxhubError) as refused:
            provider.submit(wrong, JobRequest("nhn", media=LocalFile(wav)), new_handle())
        server.sandbox.set_faults(FaultPlan(drop=1.0))
        with pytest.raises(VoxhubError) as dropped:
            provider.status(ctx, handle)
        for error in (refused.value, dropped.value):
            seen += [_everything(error), repr(error.details)]
    # The sandbox's own access log shows request paths (the app key is in the path).
    seen += [repr(e) for e in logs if not str(e.get("event", "")).startswith("sandbox.")]
    sandbox_side = "\n".join(repr(e) for e in logs)
    # The logs were captured, before any redacting processor: they are clean at the source.
    assert any("nhn.submit" in s for s in seen) and any("http.response" in s for s in seen)
    text = "\n".join(seen)
    for secret in (SECRET, TOKEN, SECRET + "x", TOKEN + "x", APP_KEY):
        assert secret not in text
    for secret in (SECRET, TOKEN):
        assert secret not in sandbox_side


def test_no_secret_in_store_or_errors_through_orchestrator(
    voxhub_orchestrator: Callable[..., Orchestrator],
    nhn_sandbox: Callable[..., RunningSandbox], tmp_path: Path,
) -> None:
    server = nhn_sandbox(app_key=APP_KEY, secret_key=SECRET, uak_token=TOKEN,
                         processing_seconds=0.1, faults=FaultPlan(rate_limited=0.3, seed=4,
                                                                  retry_after=0.01))
    orch = voxhub_orchestrator({"nhn": server.settings()})
    with capture_logs() as logs:
        outcome = orch.run(JobRequest("nhn", media=LocalFile(write_wav(tmp_path / "a.wav", 1))))
        assert outcome.ok, outcome.error
        handle = orch.submit(JobRequest("nhn", media=RemoteUrl("https://e.com/x.mp3")))
        orch.wait(handle, policy=WaitPolicy(first_poll=0.05, max_interval=0.1), timeout=10)
        bad = voxhub_orchestrator({"nhn": {**server.settings(), "uak_token": TOKEN + "y"}})
        with pytest.raises(VoxhubError) as failed:
            bad.run(JobRequest("nhn", media=LocalFile(write_wav(tmp_path / "b.wav", 1))))
        assert failed.value.details["code"] == 4010007
    assert any(e["event"] == "http.response" for e in logs)
    text = "\n".join([repr(e) for e in logs] + [_everything(failed.value)])
    raw_store = orch.store.path.read_bytes()
    for secret in (SECRET, TOKEN, TOKEN + "y"):
        assert secret not in text
        assert secret.encode() not in raw_store
