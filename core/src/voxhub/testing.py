"""pytest plugin shipped with voxhub (entry point ``pytest11``): fixtures for plugin authors.

Fixtures:

``voxhub_clock``
    a :class:`~voxhub.clock.FakeClock`: waits and back-offs return at once.
``voxhub_store``
    a job store in a temporary directory.
``voxhub_postgres``
    a PostgreSQL server (:class:`voxhub.pg_server.PostgresServer`) on loopback with a
    fresh data directory, started once per test session on first use and removed after.
``voxhub_postgres_url``
    the URL of a new database on it holding the job store's schema, for one test;
    every store of the process on it is closed and the database dropped after.
``voxhub_sandbox``
    ``voxhub_sandbox("revai", **options)`` starts an installed sandbox on an
    ephemeral loopback port and returns the running server; every sandbox
    started this way is stopped after the test.
``voxhub_context``
    ``voxhub_context("revai", server_or_settings, **overrides)`` builds an
    authenticated :class:`~voxhub.provider.ProviderContext` exactly as the
    orchestrator does (settings resolved and secrets wrapped, the provider's retry
    policy, ``authenticate`` run and kept in ``ctx.auth``), for tests that call a
    provider's methods directly.
``voxhub_orchestrator``
    ``voxhub_orchestrator(profiles={...}, clock=..., callback_url=...)`` builds an
    orchestrator on ``voxhub_store`` with only the given profiles configured
    (the environment and the user's config file are ignored).

And :class:`ProviderConformance`, the test class every provider plugin subclasses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from .clock import Clock, FakeClock, SystemClock
from .config import Config
from .conformance import ProviderConformance
from .orchestrator import Orchestrator
from .plugins import PluginManager
from .provider import ProviderContext
from .sandbox import FaultPlan, RunningSandbox, serve
from .store import Store
from .transport import HttpClient, RetryPolicy, Timeouts

if TYPE_CHECKING:
    from .pg_server import PostgresServer

__all__ = [
    "ProviderConformance",
    "voxhub_clock",
    "voxhub_context",
    "voxhub_orchestrator",
    "voxhub_plugins",
    "voxhub_postgres",
    "voxhub_postgres_url",
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
def voxhub_postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the session (needs the server binaries)."""
    from .pg_server import PostgresServer

    server = PostgresServer.start()
    yield server
    server.stop()


@pytest.fixture
def voxhub_postgres_url(voxhub_postgres: PostgresServer) -> Iterator[str]:
    """A new database with the job store's schema (its URL, password included)."""
    from ._postgres import close_all

    url = voxhub_postgres.new_database()
    yield url
    close_all()
    voxhub_postgres.drop_database(url)


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
        server = serve(spec.create(faults=faults, **options))
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def voxhub_context(voxhub_plugins: PluginManager) -> Iterator[Callable[..., ProviderContext]]:
    """Build provider contexts the way the orchestrator does; their HTTP pool closes after."""
    clients: list[HttpClient] = []

    def make(
        provider: str,
        settings: RunningSandbox | Mapping[str, Any] | None = None,
        *,
        profile: str | None = None,
        clock: Clock | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        authenticate: bool = True,
        callback_url_for: Callable[[str], str | None] | None = None,
        state_dir: Path | None = None,
        **values: Any,
    ) -> ProviderContext:
        """``settings``: a running sandbox (its profile) or a mapping; ``values`` override it.

        A value of ``None`` removes that setting (to test a missing credential).
        """
        info = voxhub_plugins.provider(provider).info
        profile = profile or provider
        base = settings.settings() if isinstance(settings, RunningSandbox) else dict(settings or {})
        merged = {k: v for k, v in {**base, **values}.items() if v is not None}
        config = Config.from_profiles({profile: {"provider": provider, **merged}})
        clock = clock or SystemClock()
        client = HttpClient(clock=clock, timeouts=timeouts)
        clients.append(client)
        ctx = ProviderContext(
            provider=provider,
            profile=profile,
            settings=config.settings(info, profile),
            http=client.bind(provider, retry=retry or info.retry, timeouts=timeouts),
            clock=clock,
            log=structlog.get_logger(f"voxhub.test.{provider}"),
            state_dir=state_dir,
        )
        if callback_url_for is not None:
            ctx.callback_url_for = callback_url_for
        if authenticate:
            ctx.auth = voxhub_plugins.calls(provider).authenticate(ctx)
        return ctx

    yield make
    for client in clients:
        client.close()


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

