"""The provider conformance suite: one test class every provider plugin subclasses.

Use it from a plugin's tests (the ``voxhub.testing`` pytest plugin provides the
fixtures it needs)::

    from voxhub.testing import ProviderConformance

    class TestAcmeConformance(ProviderConformance):
        provider = "acme"
        invalid_options = [({"speed": 0}, "speed")]

        def make_request(self, tmp_path):
            return JobRequest(provider="acme", media=RemoteUrl("https://example.com/a.wav"))

Every setting is a class attribute, documented where it is declared below and in
``docs/plugins.md`` ("The conformance suite").
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from .clock import FakeClock
from .errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    ProviderUnavailableError,
    RateLimitedError,
)
from .models import JobHandle, JobRequest, JobState, JobStatus, Result, Transcript
from .orchestrator import Orchestrator
from .plugins import PluginManager
from .provider import Capability
from .sandbox_kit import FaultPlan
from .sandbox_server import RunningSandbox
from .store import Store

__all__ = ["ProviderConformance"]


class ProviderConformance:
    """Subclass this in a plugin's tests to check a provider against the whole voxhub contract.

    Set :attr:`provider` (and :attr:`sandbox` if it differs), override
    :meth:`make_request` to return a request that succeeds against the sandbox,
    and list :attr:`invalid_options` as ``(options, field)`` pairs that must be
    refused locally. Everything runs over real HTTP against the plugin's sandbox::

        class TestEchoConformance(ProviderConformance):
            provider = "echo"
            invalid_options = [({"speed": 0}, "speed")]

            def make_request(self, tmp_path):
                return JobRequest(provider="echo", media=RemoteUrl("http://x/hello"))

    Checked: declared metadata, option validation before any request,
    submit/status/wait/fetch/close, idempotent status/fetch/close, error mapping
    (bad credentials, unknown job, rate limiting, server errors), no secret in
    debug logs (JSON and console) or the store, JSON/SRT/VTT export of the
    result, and resuming a job from its handle in a fresh orchestrator.
    """

    #: The provider under test.
    provider: str = ""
    #: The sandbox to start (defaults to the provider's name).
    sandbox: str | None = None
    #: False for providers that talk to no service (an offline engine): no sandbox is started,
    #: and the checks that need a service (:data:`SERVICE_CHECKS`) are not collected.
    has_sandbox: bool = True
    #: True for providers whose results arrive only by callback (``Capability.CALLBACK_ONLY``,
    #: checked against the declared metadata): an unknown job is checked for "no news"
    #: instead of "not found", since such a vendor cannot be asked about a job.
    callback_only: bool = False
    #: Keyword options for the sandbox (e.g. make jobs finish quickly).
    sandbox_options: Mapping[str, Any] = {}
    #: ``(options, field)`` pairs that validation must refuse, naming ``field``.
    invalid_options: Sequence[tuple[Mapping[str, Any], str]] = ()
    #: Seconds to wait for a job in the lifecycle tests.
    timeout: float = 60.0
    #: Live jobs (RTC channel tasks, transcoders, streams) are healthy while RUNNING:
    #: :meth:`complete` waits for RUNNING instead of a final state.
    live: bool = False

    #: The checks that need a vendor service: not collected when :attr:`has_sandbox` is False.
    SERVICE_CHECKS = (
        "test_bad_credentials_are_an_authentication_error",
        "test_rate_limits_and_server_errors_are_retried_then_mapped",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.has_sandbox:
            for name in cls.SERVICE_CHECKS:
                setattr(cls, name, _not_applicable)

    # --- what a plugin author provides --------------------------------------------

    def make_request(self, tmp_path: Path) -> JobRequest:
        """A request that runs to success against the sandbox."""
        raise NotImplementedError("override make_request() in your conformance test class")

    def ghost_vendor_ids(self, handle: JobHandle) -> dict[str, str]:
        """Vendor ids of a job the vendor does not know (override to keep e.g. a session id)."""
        return {k: "nonexistent0000" for k in handle.vendor_ids}

    def complete(self, orch: Orchestrator, handle: JobHandle) -> JobStatus:
        """Bring a submitted job to success: a final state, or RUNNING for live jobs."""
        if not self.live:
            return orch.wait(handle, timeout=self.timeout)
        deadline = orch.clock.monotonic() + self.timeout
        while True:
            status = orch.status(handle)
            if status.state is JobState.RUNNING or status.is_terminal:
                return status
            if orch.clock.monotonic() > deadline:
                raise AssertionError(f"job still {status.state.value} after {self.timeout}s")
            orch.clock.sleep(0.05)

    @property
    def ok_states(self) -> tuple[JobState, ...]:
        return (JobState.RUNNING, JobState.SUCCEEDED) if self.live else (JobState.SUCCEEDED,)

    # --- fixtures -------------------------------------------------------------------

    @pytest.fixture
    def server(self, voxhub_sandbox: Callable[..., RunningSandbox]) -> RunningSandbox | None:
        if not self.has_sandbox:
            return None
        return voxhub_sandbox(self.sandbox or self.provider, **dict(self.sandbox_options))

    def settings(self, server: RunningSandbox | None) -> dict[str, Any]:
        """The client profile for the sandbox (empty without one)."""
        return dict(server.settings()) if server is not None else {}

    def requests_seen(self, server: RunningSandbox | None) -> int:
        return server.sandbox.counters.get("requests") if server is not None else 0

    def need_sandbox(self, server: RunningSandbox | None, what: str) -> RunningSandbox:
        # Only reached by SERVICE_CHECKS, which are not collected without a sandbox.
        assert server is not None, f"{what} needs the sandbox (set has_sandbox = True)"
        return server

    @pytest.fixture
    def receiver(self, voxhub_store: Store, voxhub_plugins: PluginManager) -> Iterator[str]:
        """A callback receiver on loopback writing into the test's store."""
        from werkzeug.serving import make_server

        from .callbacks import CallbackHandler, wsgi_app

        holder: dict[str, Orchestrator] = {}

        def app(environ: Any, start_response: Any) -> Any:
            return wsgi_app(CallbackHandler(holder["orch"]))(environ, start_response)

        srv = make_server("127.0.0.1", 0, app, threaded=True)
        self._receiver_holder = holder
        threading.Thread(
            target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        yield f"http://127.0.0.1:{srv.server_port}"
        srv.shutdown()
        srv.server_close()

    @pytest.fixture
    def orch(
        self,
        server: RunningSandbox | None,
        receiver: str,
        voxhub_orchestrator: Callable[..., Orchestrator],
    ) -> Orchestrator:
        made = voxhub_orchestrator({self.profile: self.settings(server)}, callback_url=receiver)
        self._receiver_holder["orch"] = made
        return made

    @property
    def profile(self) -> str:
        return self.provider

    # --- the checks -------------------------------------------------------------------

    def test_declares_its_metadata(self, voxhub_plugins: PluginManager) -> None:
        entry = voxhub_plugins.provider(self.provider)
        info = entry.info
        assert info.name == self.provider
        assert info.kinds, "a provider runs at least one job kind"
        assert all(isinstance(c, Capability) for c in info.capabilities)
        names = [o.name for o in info.options]
        assert len(names) == len(set(names)), "option names are unique"
        assert all(o.help for o in info.options), "every option has help text"
        if self.has_sandbox:
            assert (self.sandbox or self.provider) in voxhub_plugins.sandboxes, "ships a sandbox"
        declared = Capability.CALLBACK_ONLY in info.capabilities
        assert self.callback_only == declared, f"set callback_only = {declared} (its metadata)"
        assert entry.distribution, "loaded from an installed distribution's entry point"

    def test_refuses_invalid_options_before_any_request(
        self, orch: Orchestrator, server: RunningSandbox | None, tmp_path: Path
    ) -> None:
        base = self.make_request(tmp_path)
        before = self.requests_seen(server)
        cases = [*self.invalid_options, ({"no_such_option_xyz": 1}, "no_such_option_xyz")]
        for options, field in cases:
            request = attrs.evolve(base, options={**base.options, **options})
            try:
                orch.submit(request)
            except InvalidInputError as exc:
                named = f"options {options}: the error names {exc.field!r}, not {field!r}"
                assert exc.field == field, named
                assert field in str(exc), f"options {options}: the message does not say {field!r}"
            else:
                pytest.fail(f"options {options} were accepted; {field!r} should have been refused")
        assert self.requests_seen(server) == before, "validation sent requests"

    def test_lifecycle_and_idempotent_calls(
        self, orch: Orchestrator, server: RunningSandbox | None, tmp_path: Path
    ) -> None:
        handle = orch.submit(self.make_request(tmp_path))
        assert handle.vendor_ids, "submit returns the vendor's ids"
        assert self.complete(orch, handle).state in self.ok_states
        assert orch.status(handle).state in self.ok_states
        assert orch.status(handle).state == orch.status(handle).state
        result = orch.fetch(handle)
        again = orch.fetch(handle)
        # A live job's result is a snapshot that may move on; a finished one never changes.
        assert type(again) is type(result) if self.live else again == result
        self.check_exports(orch, handle, result)
        orch.close(handle)
        orch.close(handle)  # closing twice is not an error

    def check_exports(self, orch: Orchestrator, handle: JobHandle, result: Result) -> None:
        data = json.loads(orch.export(handle, "json"))
        assert data["provider"] == self.provider and data["job_id"] == handle.job_id
        if isinstance(result, Transcript):
            assert set(data) == {"provider", "job_id", "language", "duration", "text", "segments"}
            for fmt, head in (("srt", "1\n"), ("vtt", "WEBVTT")):
                text = orch.export(handle, fmt)
                assert text.startswith(head), f"{fmt} export starts with {head!r}"
                assert " --> " in text

    def test_resumes_from_a_handle_in_a_fresh_orchestrator(
        self,
        orch: Orchestrator,
        server: RunningSandbox | None,
        tmp_path: Path,
        voxhub_orchestrator: Callable[..., Orchestrator],
    ) -> None:
        handle = orch.submit(self.make_request(tmp_path))
        fresh = voxhub_orchestrator(
            {self.profile: self.settings(server)},
            store=Store(tmp_path / "fresh.db"),
            callback_url=orch.callback_url,
        )
        self._receiver_holder["orch"] = orch  # callbacks still land in the first store
        assert self.complete(orch, handle).state in self.ok_states
        callback_only = (
            Capability.CALLBACK_ONLY in orch.plugins.provider(self.provider).info.capabilities
        )
        # A callback-only job's news lands in the store its callbacks go to, not the fresh one.
        expected = (JobState.RUNNING, *self.ok_states) if callback_only else self.ok_states
        assert fresh.status(handle).state in expected
        assert fresh.fetch(handle) is not None

    def test_bad_credentials_are_an_authentication_error(
        self,
        server: RunningSandbox | None,
        tmp_path: Path,
        voxhub_orchestrator: Callable[..., Orchestrator],
        voxhub_plugins: PluginManager,
    ) -> None:
        self.need_sandbox(server, "credentials")
        info = voxhub_plugins.provider(self.provider).info
        settings = dict(self.settings(server))
        secrets_ = [f.name for f in info.credentials if f.secret and f.name in settings]
        assert secrets_, "the sandbox profile has at least one secret credential"
        for name in secrets_:
            settings[name] = "wrong-" + "0" * 26
        orch = voxhub_orchestrator({self.profile: settings}, clock=FakeClock())
        with pytest.raises((AuthenticationError, ConfigurationError)):
            orch.submit(self.make_request(tmp_path))

    def test_unknown_job_is_not_found(self, orch: Orchestrator, tmp_path: Path) -> None:
        handle = orch.submit(self.make_request(tmp_path))
        # A day-old job the vendor does not know (vendors may hide brand-new ids briefly).
        ghost = attrs.evolve(
            handle,
            job_id="vx_ghost",
            created_at=handle.created_at - timedelta(days=1),
            vendor_ids=self.ghost_vendor_ids(handle),
        )
        if self.callback_only:
            # Such a vendor cannot be asked about a job: one it never called back about
            # has no news, and asking must not invent a final state.
            status = orch.status(ghost)
            assert not status.is_terminal, f"a job with no callbacks reported {status.state}"
            return
        if self.live:
            # A live task the vendor no longer knows has ended: a final state says so.
            try:
                status = orch.status(ghost)
            except NotFoundError:
                return
            assert status.is_terminal, f"unknown live task reported {status.state.value}"
            return
        with pytest.raises(NotFoundError):
            orch.status(ghost)

    def test_rate_limits_and_server_errors_are_retried_then_mapped(
        self,
        server: RunningSandbox | None,
        tmp_path: Path,
        voxhub_orchestrator: Callable[..., Orchestrator],
        receiver: str,
    ) -> None:
        server = self.need_sandbox(server, "injected faults")
        # The real clock: sandbox jobs progress in real time. Waits stay short because the
        # injected Retry-After is small.
        orch = voxhub_orchestrator({self.profile: self.settings(server)}, callback_url=receiver)
        self._receiver_holder["orch"] = orch
        # Submits meet only refusals (429): a 5xx on a submit is ambiguous by nature.
        server.sandbox.set_faults(FaultPlan(rate_limited=0.4, retry_after=0.05, seed=3))
        handle = orch.submit(self.make_request(tmp_path))
        server.sandbox.set_faults(
            FaultPlan(rate_limited=0.2, server_error=0.2, retry_after=0.05, seed=4)
        )
        assert self.complete(orch, handle).state in self.ok_states
        server.sandbox.set_faults(FaultPlan())
        entry = orch.plugins.provider(self.provider)
        if Capability.CALLBACK_ONLY in entry.info.capabilities:
            return
        server.sandbox.set_faults(FaultPlan(rate_limited=1.0, retry_after=1))
        fresh = voxhub_orchestrator(
            {self.profile: self.settings(server)},
            clock=FakeClock(),
            store=Store(tmp_path / "limited.db"),
        )
        with pytest.raises(RateLimitedError):
            fresh.status(handle)
        server.sandbox.set_faults(FaultPlan(server_error=1.0))
        with pytest.raises(ProviderUnavailableError):
            fresh.status(handle)
        server.sandbox.set_faults(FaultPlan())

    @pytest.mark.parametrize("fmt", ["json", "console"])
    def test_no_secret_in_logs_errors_or_store(
        self,
        fmt: str,
        server: RunningSandbox | None,
        tmp_path: Path,
        voxhub_orchestrator: Callable[..., Orchestrator],
        voxhub_plugins: PluginManager,
        receiver: str,
    ) -> None:
        import io

        import structlog

        from .logging_setup import configure_logging, ensure_default_logging

        info = voxhub_plugins.provider(self.provider).info
        settings = self.settings(server)
        secret_values = [
            str(settings[f.name]) for f in info.credentials if f.secret and settings.get(f.name)
        ]
        out = io.StringIO()
        configure_logging("debug", fmt, stream=out)
        try:
            store = Store(tmp_path / "secrets.db")
            orch = voxhub_orchestrator({self.profile: settings}, store=store, callback_url=receiver)
            self._receiver_holder["orch"] = orch
            handle = orch.submit(self.make_request(tmp_path))
            self.complete(orch, handle)
            exported = orch.export(handle, "json")
            store.close()
        finally:
            structlog.reset_defaults()
            ensure_default_logging()
        logs = out.getvalue()
        assert logs, "debug logging produced output"
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("secrets.db*"))
        for value in secret_values:
            assert value not in logs, "a credential appeared in the logs"
            assert value not in exported, "a credential appeared in an export"
            assert value.encode() not in stored, "a credential reached the job store"


def _not_applicable(self: ProviderConformance) -> None:
    """A check that does not apply to this provider (see ``SERVICE_CHECKS``)."""


# pytest collects no function whose __test__ is False: a provider without a service has no
# credentials to refuse and no faults to inject, so those checks are absent, not skipped.
_not_applicable.__test__ = False  # type: ignore[attr-defined]
