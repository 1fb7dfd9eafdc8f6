"""pytest plugin shipped with voxhub (entry point ``pytest11``): fixtures for plugin authors.

Fixtures:

``voxhub_clock``
    a :class:`~voxhub.clock.FakeClock`: waits and back-offs return at once.
``voxhub_store``
    a job store in a temporary directory.
``voxhub_sandbox``
    ``voxhub_sandbox("revai", **options)`` starts an installed sandbox on an
    ephemeral loopback port and returns the running server; every sandbox
    started this way is stopped after the test.
``voxhub_orchestrator``
    ``voxhub_orchestrator(profiles={...}, clock=..., callback_url=...)`` builds an
    orchestrator on ``voxhub_store`` with only the given profiles configured
    (the environment and the user's config file are ignored).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from .clock import FakeClock
from .config import Config
from .orchestrator import Orchestrator
from .plugins import PluginManager
from .sandbox import FaultPlan, RunningSandbox, serve
from .store import Store

__all__ = [
    "voxhub_clock",
    "voxhub_orchestrator",
    "voxhub_plugins",
    "voxhub_sandbox",
    "voxhub_store",
]


@pytest.fixture
def voxhub_clock() -> FakeClock:
    """A fake clock: sleeping advances it instantly."""
    return FakeClock()


@pytest.fixture
def voxhub_store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite job store in the test's temporary directory."""
    store = Store(tmp_path / "voxhub-jobs.db")
    yield store
    store.close()


@pytest.fixture(scope="session")
def voxhub_plugins() -> PluginManager:
    """Every installed voxhub plugin, loaded once per test session."""
    return PluginManager.load(env={})


@pytest.fixture
def voxhub_sandbox(voxhub_plugins: PluginManager) -> Iterator[Callable[..., RunningSandbox]]:
    """Start installed sandboxes by provider name; all are stopped after the test."""
    running: list[RunningSandbox] = []

    def start(provider: str, *, faults: FaultPlan | None = None, **options: Any) -> RunningSandbox:
        spec = voxhub_plugins.sandboxes.get(provider)
        if spec is None:
            known = ", ".join(sorted(voxhub_plugins.sandboxes)) or "none"
            raise LookupError(f"no sandbox for {provider!r} is installed (installed: {known})")
        server = serve(spec.factory(faults=faults, **options))
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def voxhub_orchestrator(
    voxhub_store: Store, voxhub_plugins: PluginManager
) -> Iterator[Callable[..., Orchestrator]]:
    """Build orchestrators on the test's store with explicit profiles only."""
    made: list[Orchestrator] = []

    def make(
        profiles: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        clock: Any = None,
        callback_url: str | None = None,
        store: Store | None = None,
        **globals_: Any,
    ) -> Orchestrator:
        orch = Orchestrator(
            store=store or voxhub_store,
            config=Config.from_profiles(profiles or {}, **globals_),
            plugins=voxhub_plugins,
            clock=clock,
            callback_url=callback_url,
        )
        made.append(orch)
        return orch

    yield make
    for orch in made:
        orch.http.close()
