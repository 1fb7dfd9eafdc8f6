"""Shared fixtures: sandboxes on real loopback sockets, and provider contexts built by
``voxhub.testing``'s ``voxhub_context`` (with Agora's test defaults)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from voxhub.clock import SystemClock
from voxhub.models import JobHandle, JobKind, JobRequest, RtcChannel, new_job_id
from voxhub.provider import Provider, ProviderContext
from voxhub.sandbox import FaultPlan, RunningSandbox, serve
from voxhub.transport import Timeouts
from voxhub_agora.sandbox_stt import AgoraSttSandbox
from voxhub_agora.sandbox_transcoder import AgoraTranscoderSandbox
from voxhub_agora.stt import AgoraSttProvider
from voxhub_agora.transcoder import AgoraTranscoderProvider


class FastClock(SystemClock):
    """Real time, but sleeps are recorded and cut short (back-offs in milliseconds)."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        with self._lock:
            self.slept.append(seconds)
        return super().sleep(min(seconds, 0.002), wake)


@pytest.fixture(autouse=True)
def _private_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Orchestrators and child processes keep their store (and so their locks) in tmp_path.
    monkeypatch.setenv("VOXHUB_STORE", str(tmp_path / "store" / "jobs.db"))
    monkeypatch.setenv("VOXHUB_CONFIG", str(tmp_path / "no-config.toml"))


@pytest.fixture(autouse=True)
def _short_start_interval(request: pytest.FixtureRequest,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Seed 000's one-start-a-second rule would add a second to every test that starts twice;
    # test_start_pacing.py (marked real_start_interval) measures the real interval, and
    # child processes always run with it.
    if request.node.get_closest_marker("real_start_interval") is None:
        monkeypatch.setattr(AgoraSttProvider, "start_interval", 0.02)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_start_interval: keep the 1 s start pacing")


@pytest.fixture
def clock() -> FastClock:
    return FastClock()


# One server per sandbox kind for the whole session (stopping a werkzeug server takes its
# 0.5 s poll interval); each test gets it reset, with default settings and no faults.
_TUNABLES = ("builder_token_ttl", "task_lifetime", "require_rtc_tokens", "schedule",
             "agent_schedule", "visible_after")


def _fresh(running: RunningSandbox, defaults: dict[str, Any]) -> RunningSandbox:
    sandbox = running.sandbox
    sandbox.reset()
    sandbox.set_faults(FaultPlan())
    for name, value in defaults.items():
        setattr(sandbox, name, value)
    return running


@pytest.fixture(scope="session")
def _stt_server() -> Iterator[tuple[RunningSandbox, dict[str, Any]]]:
    sandbox = AgoraSttSandbox()
    defaults = {n: getattr(sandbox, n) for n in _TUNABLES if hasattr(sandbox, n)}
    with serve(sandbox) as running:
        yield running, defaults


@pytest.fixture(scope="session")
def _tc_server() -> Iterator[tuple[RunningSandbox, dict[str, Any]]]:
    sandbox = AgoraTranscoderSandbox()
    defaults = {n: getattr(sandbox, n) for n in _TUNABLES if hasattr(sandbox, n)}
    with serve(sandbox) as running:
        yield running, defaults


@pytest.fixture
def stt_sandbox(_stt_server: tuple[RunningSandbox, dict[str, Any]]) -> RunningSandbox:
    return _fresh(*_stt_server)


@pytest.fixture
def tc_sandbox(_tc_server: tuple[RunningSandbox, dict[str, Any]]) -> RunningSandbox:
    return _fresh(*_tc_server)


@pytest.fixture
def lock_dir(tmp_path: Path) -> Path:
    return tmp_path / "locks"


@pytest.fixture
def stt(lock_dir: Path) -> AgoraSttProvider:
    return AgoraSttProvider(lock_dir=lock_dir)


@pytest.fixture
def transcoder(lock_dir: Path) -> AgoraTranscoderProvider:
    return AgoraTranscoderProvider(lock_dir=lock_dir)


MakeCtx = Callable[..., ProviderContext]

#: Short timeouts: a sandbox answers at once unless a test slows it down on purpose.
TIMEOUTS = Timeouts(connect=2.0, read=5.0)


@pytest.fixture
def make_ctx(voxhub_context: Callable[..., ProviderContext], clock: FastClock,
             tmp_path: Path) -> MakeCtx:
    """``make_ctx(provider, running_sandbox, auth="basic", **setting_overrides)``.

    ``voxhub_context`` with this plugin's test defaults: Basic auth, the fast clock, short
    timeouts and a state directory for the lock records. A setting given as ``None`` is
    left out (``base_url=None``: no explicit host).
    """

    def make(provider: Provider, running: RunningSandbox | None, *, auth: str | None = "basic",
             timeouts: Timeouts = TIMEOUTS, **overrides: Any) -> ProviderContext:
        return voxhub_context(provider.info.name, running, clock=clock, timeouts=timeouts,
                              state_dir=tmp_path / "state", auth=auth, **overrides)

    return make


@pytest.fixture
def orchestrator(voxhub_orchestrator: Callable[..., Any], clock: FastClock) -> Callable[..., Any]:
    """``orchestrator(running_sandbox, **settings)``: an orchestrator on the fast clock with
    one profile for the sandbox's provider (short timeouts, so in-doubt waits are short)."""

    def make(running: RunningSandbox, *, read_timeout: float = 5.0, **settings: Any) -> Any:
        profile = {**running.settings(), **settings}
        return voxhub_orchestrator({running.provider: profile}, clock=clock,
                                   connect_timeout=2.0, read_timeout=read_timeout)

    return make


def stt_request(channel: str, key: str | None = None, **options: Any) -> JobRequest:
    options.setdefault("languages", ["en-US"])
    return JobRequest(provider="agora-stt", media=RtcChannel(channel),
                      kind=JobKind.CHANNEL_TRANSCRIPTION, options=options,
                      idempotency_key=key or f"key-{channel}-{new_job_id()}")


def handle_for(request: JobRequest) -> JobHandle:
    assert request.kind is not None
    return JobHandle(job_id=new_job_id(), provider=request.provider, kind=request.kind,
                     profile=request.provider, idempotency_key=request.idempotency_key)


def tc_request(key: str | None = None, **options: Any) -> JobRequest:
    return JobRequest(provider="agora-transcoder", kind=JobKind.TRANSCODING, options=options,
                      idempotency_key=key or f"key-{new_job_id()}")


def transcoder_doc() -> dict[str, Any]:
    """A valid composite configuration: one RTC host, canvas, watermark, RTC output."""
    return {
        "idleTimeout": 300,
        "audioInputs": [{"rtc": {"rtcChannel": "show", "rtcUid": 1001}}],
        "videoInputs": [{
            "rtc": {"rtcChannel": "show", "rtcUid": 1001},
            "placeholderImageUrl": "https://example.com/offline.png",
            "region": {"x": 0, "y": 0, "width": 640, "height": 360, "zOrder": 2},
        }],
        "canvas": {"width": 640, "height": 360, "color": 0,
                   "backgroundImage": "https://example.com/bg.jpg", "fillMode": "FIT"},
        "watermarks": [{"imageUrl": "https://example.com/logo.png",
                        "region": {"x": 10, "y": 10, "width": 120, "height": 120, "zOrder": 50}}],
        "outputs": [{
            "rtc": {"rtcChannel": "show-mixed", "rtcUid": 2002},
            "audioOption": {"profileType": "AUDIO_PROFILE_MUSIC_STANDARD"},
            "videoOption": {"width": 640, "height": 360, "bitrate": 800, "codec": "H264",
                            "fps": 15},
        }],
    }


# A separate process submitting one agora-stt job at an agreed instant, with its locks beside
# the store it is given ($VOXHUB_STORE), as under the orchestrator; it prints the vendor ids.
_CHILD_SUBMIT = r"""
import json, os, sys, time
from pathlib import Path
import structlog
from voxhub.clock import SystemClock
from voxhub.config import Config
from voxhub.models import JobHandle, JobKind, JobRequest, RtcChannel, new_job_id
from voxhub.provider import ProviderContext
from voxhub.transport import HttpClient
from voxhub_agora.stt import AgoraSttProvider

args = json.loads(sys.argv[1])
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
provider = AgoraSttProvider()
info = provider.info
settings = Config.from_profiles({"agora-stt": args["settings"]}).settings(info, "agora-stt")
# The locks live beside the shared store ($VOXHUB_STORE), as under the orchestrator.
ctx = ProviderContext(provider=info.name, profile=info.name, settings=settings,
                      http=HttpClient().bind(info.name, retry=info.retry), clock=SystemClock(),
                      log=structlog.get_logger(),
                      state_dir=Path(os.environ["VOXHUB_STORE"]).parent)
ctx.auth = provider.authenticate(ctx)
request = JobRequest(provider="agora-stt", media=RtcChannel(args["channel"]),
                     kind=JobKind.CHANNEL_TRANSCRIPTION,
                     options={"languages": ["en-US"], "api_version": args["version"]},
                     idempotency_key=args["key"])
handle = JobHandle(job_id=new_job_id(), provider="agora-stt", kind=JobKind.CHANNEL_TRANSCRIPTION,
                   profile="agora-stt", idempotency_key=args["key"])
time.sleep(max(0.0, args["at"] - time.time()))
print(json.dumps(provider.submit(ctx, request, handle).handle.vendor_ids))
"""


def submit_in_processes(
    running: RunningSandbox, jobs: list[tuple[Path, str, str]], version: str, *,
    lead: float = 1.5,
) -> list[dict[str, str]]:
    """Submit each ``(store, channel, key)`` from its own process, all at the same instant.

    ``lead`` seconds let every child import voxhub first. Returns each child's vendor ids.
    """
    import json
    import os
    import subprocess
    import sys
    import time

    start_at = time.time() + lead
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD_SUBMIT, json.dumps({
                "settings": running.settings(), "channel": channel, "key": key,
                "version": version, "at": start_at,
            })],
            env={**os.environ, "VOXHUB_STORE": str(store)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for store, channel, key in jobs
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    return outputs


class Helpers:
    """The helpers above, as a fixture (test modules cannot import conftest in importlib mode)."""

    stt_request = staticmethod(stt_request)
    handle_for = staticmethod(handle_for)
    tc_request = staticmethod(tc_request)
    transcoder_doc = staticmethod(transcoder_doc)
    submit_in_processes = staticmethod(submit_in_processes)


@pytest.fixture
def h() -> type[Helpers]:
    return Helpers


@pytest.fixture
def debug_logs() -> Iterator[list[Any]]:
    """Every structlog event at every level, as raw dicts (before any redaction)."""
    import logging

    from structlog.testing import LogCapture

    old = structlog.get_config()
    capture = LogCapture()
    structlog.configure(processors=[capture],
                        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
                        cache_logger_on_first_use=False)
    try:
        yield capture.entries
    finally:
        structlog.configure(**old)
