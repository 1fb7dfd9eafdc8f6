"""Fixtures for the NHN plugin tests: real sandboxes on loopback sockets, no mocks.

The run uses pytest's importlib mode (test folders are not on ``sys.path``), so
this conftest loads ``nhn_helpers.py`` under that unique name for the tests to import.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from voxhub.clock import FakeClock
from voxhub.plugin import ProviderContext, RetryPolicy, Timeouts
from voxhub.sandbox import RunningSandbox, serve
from voxhub_nhn.provider import NhnProvider
from voxhub_nhn.sandbox import NhnSandbox


def _load_helpers() -> Any:
    name = "nhn_helpers"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


helpers = _load_helpers()
FAST_RETRY: RetryPolicy = helpers.FAST_RETRY
MediaServer = helpers.MediaServer


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    d = tmp_path / "media"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def _stopper() -> Iterator[Callable[[RunningSandbox], None]]:
    """Stops servers in the background: a werkzeug shutdown waits up to 0.5 s for its poll."""
    threads: list[threading.Thread] = []

    def stop(server: RunningSandbox) -> None:
        thread = threading.Thread(target=server.stop, daemon=True)
        thread.start()
        threads.append(thread)

    yield stop
    for thread in threads:
        thread.join(timeout=5)


@pytest.fixture
def media_server(
    media_dir: Path, _stopper: Callable[[RunningSandbox], None]
) -> Iterator[RunningSandbox]:
    """A loopback file server for ``media_dir`` (the async API's "downloadable URL")."""
    server = serve(MediaServer(media_dir))
    yield server
    _stopper(server)


@pytest.fixture
def nhn_sandbox(
    _stopper: Callable[[RunningSandbox], None],
) -> Iterator[Callable[..., RunningSandbox]]:
    """Start ``NhnSandbox(**options)`` on an ephemeral loopback port; stopped after the test."""
    running: list[RunningSandbox] = []

    def start(**options: Any) -> RunningSandbox:
        options.setdefault("processing_seconds", 0.3)
        options.setdefault("use_engine", False)
        options.setdefault("media_dirs", ())
        server = serve(NhnSandbox(**options))
        running.append(server)
        return server

    yield start
    for server in running:
        _stopper(server)


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def nhn_ctx(
    voxhub_context: Callable[..., ProviderContext], fake_clock: FakeClock,
) -> Callable[..., ProviderContext]:
    """``voxhub_context("nhn", ...)`` with this plugin's test defaults.

    ``version`` sets ``api_version``; the clock is fake (back-offs and Retry-After
    waits are free and recorded) and retries are quick. Other keywords go to
    ``voxhub_context``: settings (``None`` removes one), ``retry=``, ``authenticate=``.
    """

    def make(server: RunningSandbox | None = None, *, version: str | None = None,
             **values: Any) -> ProviderContext:
        if version is not None:
            values["api_version"] = version
        values.setdefault("retry", FAST_RETRY)
        return voxhub_context("nhn", server, clock=fake_clock,
                              timeouts=Timeouts(connect=2.0, read=5.0), **values)

    return make


@pytest.fixture
def provider() -> NhnProvider:
    return NhnProvider()
