"""Shared fixtures of the core tests: an isolated environment and the echo test provider."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from voxhub import Orchestrator
from voxhub.clock import FakeClock
from voxhub.sandbox import RunningSandbox


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's config, store or VOXHUB_* variables."""
    for key in list(os.environ):
        if key.startswith("VOXHUB_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_at(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's store lives, once per backend: a SQLite file, or the URL of a new
    database on the session's PostgreSQL server (password included: pass it on as is)."""
    if request.param == "sqlite":
        return tmp_path / "s.db"
    url: str = request.getfixturevalue("voxhub_postgres_url")
    return url


@pytest.fixture
def echo(voxhub_sandbox: Callable[..., RunningSandbox]) -> RunningSandbox:
    """A running echo sandbox (jobs finish after two status polls)."""
    return voxhub_sandbox("echo")


@pytest.fixture
def orch(
    echo: RunningSandbox, voxhub_orchestrator: Callable[..., Orchestrator]
) -> Iterator[Orchestrator]:
    """An orchestrator on a temporary store, configured for the echo sandbox, fake clock."""
    yield voxhub_orchestrator({"echo": echo.settings()}, clock=FakeClock())


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """A small local media file whose name the echo provider transcribes."""
    path = tmp_path / "hello world.wav"
    path.write_bytes(b"RIFF" + bytes(4096))
    return path
