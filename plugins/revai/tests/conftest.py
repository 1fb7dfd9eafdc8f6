"""Fixtures and helpers for the revai tests: a running sandbox, contexts, media, loopback servers.

The test run uses pytest's importlib mode, so helpers are reached through the
``kit`` fixture instead of being imported from a module.
"""

from __future__ import annotations

import threading
import time
import types
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from voxhub.clock import FakeClock
from voxhub.plugin import JobHandle, JobKind, JobRequest, LocalFile, ProviderContext
from voxhub.sandbox import RunningSandbox, serve
from voxhub.transport import Timeouts
from voxhub_revai import RevaiProvider, RevaiSandbox
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

SPOKEN = "Hello there. How are you today? I am fine, thanks."


def write_wav(path: Path, seconds: float = 3.0, channels: int = 1, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * channels * int(rate * seconds))
    return path


_counter = iter(range(1, 1_000_000))


def new_job(media: Any, **kw: Any) -> tuple[JobRequest, JobHandle]:
    """A request and the handle the orchestrator would record before submit."""
    n = next(_counter)
    key = kw.pop("idempotency_key", f"key-{n}-{time.monotonic_ns()}")
    if isinstance(media, Path):
        media = LocalFile(media)
    request = JobRequest(provider="revai", media=media, idempotency_key=key, **kw)
    handle = JobHandle(job_id=f"vx_{n:020d}", provider="revai", kind=JobKind.TRANSCRIPTION,
                       profile="revai", idempotency_key=key)
    return request, handle


def wait_until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class Loopback:
    """A tiny werkzeug server on 127.0.0.1 that records requests and answers via ``handler``."""

    def __init__(self, handler: Callable[[Request], Response]) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self._handler = handler

        def app(environ: Any, start_response: Any) -> Any:
            request = Request(environ)
            self.requests.append((request.path, dict(request.headers), request.get_data()))
            return handler(request)(environ, start_response)

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _stop_soon(stop: Callable[[], None]) -> None:
    # serve_forever polls for shutdown every 0.5 s; stopping in the background keeps the
    # suite fast (each test has its own servers, so nothing waits on a stopping one).
    threading.Thread(target=stop, daemon=True).start()


@pytest.fixture
def provider() -> RevaiProvider:
    return RevaiProvider()


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    d = tmp_path / "media"
    d.mkdir()
    return d

@pytest.fixture
def wav(media_dir: Path) -> Path:
    """A 3 s mono WAV with a sidecar transcript."""
    path = write_wav(media_dir / "hello.wav")
    Path(f"{path}.txt").write_text(SPOKEN)
    return path


@pytest.fixture
def make_sandbox(media_dir: Path) -> Iterator[Callable[..., RunningSandbox]]:
    running: list[RunningSandbox] = []

    def make(**kwargs: Any) -> RunningSandbox:
        kwargs.setdefault("processing_seconds", 0.0)
        kwargs.setdefault("use_engine", False)
        kwargs.setdefault("sidecar_dirs", [media_dir])
        kwargs.setdefault("seed", 7)
        run = serve(RevaiSandbox(**kwargs))
        running.append(run)
        return run

    yield make
    for run in running:
        _stop_soon(run.stop)


@pytest.fixture
def sandbox(make_sandbox: Callable[..., RunningSandbox]) -> RunningSandbox:
    return make_sandbox()

@pytest.fixture
def make_ctx(voxhub_context: Callable[..., ProviderContext]) -> Callable[..., ProviderContext]:
    """``voxhub_context`` for ``revai``, with this suite's defaults and shorthands."""

    def make(
        run: RunningSandbox | None = None,
        *,
        fake_clock: bool = False,
        timeouts: Timeouts | None = None,
        callback_url_for: Callable[[str], str | None] | None = None,
        **settings: Any,
    ) -> ProviderContext:
        if run is None:
            settings.setdefault("token", "no-token-set")
        return voxhub_context("revai", run, clock=FakeClock() if fake_clock else None,
                              timeouts=timeouts, callback_url_for=callback_url_for, **settings)

    return make


@pytest.fixture
def ctx(sandbox: RunningSandbox, make_ctx: Callable[..., ProviderContext]) -> ProviderContext:
    return make_ctx(sandbox)

@pytest.fixture
def loopback() -> Iterator[Callable[[Callable[[Request], Response]], Loopback]]:
    servers: list[Loopback] = []

    def start(handler: Callable[[Request], Response]) -> Loopback:
        server = Loopback(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        _stop_soon(server.stop)


@pytest.fixture
def media_server(loopback: Callable[..., Loopback], media_dir: Path) -> Loopback:
    """Serves files of ``media_dir``; ``/private/...`` needs ``Authorization: Bearer media-key``."""

    def handler(request: Request) -> Response:
        path = request.path
        if path.startswith("/private/"):
            if request.headers.get("Authorization") != "Bearer media-key":
                return Response("no", status=401)
            path = path.removeprefix("/private")
        target = media_dir / path.lstrip("/")
        if not target.is_file():
            return Response("not found", status=404)
        return Response(target.read_bytes(), content_type="application/octet-stream")

    return loopback(handler)


@pytest.fixture
def kit(make_ctx: Callable[..., ProviderContext]) -> types.SimpleNamespace:
    """The helpers above, for test modules (importlib mode cannot import conftest)."""
    return types.SimpleNamespace(
        SPOKEN=SPOKEN, make_ctx=make_ctx, new_job=new_job, wait_until=wait_until,
        write_wav=write_wav, Loopback=Loopback,
    )


@pytest.fixture
def make_orch(
    voxhub_orchestrator: Callable[..., Any], voxhub_clock: FakeClock
) -> Callable[..., Any]:
    """An orchestrator with one ``revai`` profile: a running sandbox's, or the given settings.

    Its clock is fake, so back-offs and in-flight waits take no time.
    """

    def make(run: RunningSandbox | None = None, **settings: Any) -> Any:
        profile = run.settings() if run is not None else {"token": "no-token-set"}
        return voxhub_orchestrator(profiles={"revai": {**profile, **settings}}, clock=voxhub_clock)

    return make
