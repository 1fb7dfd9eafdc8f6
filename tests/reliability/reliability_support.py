"""Helpers shared by the reliability tests (imported by name: ``conftest.py`` puts this
folder on ``sys.path``, because test modules cannot import a conftest in importlib mode).

* :class:`RecordingHttp` — voxhub's real :class:`~voxhub.transport.HttpClient` that also
  writes down every logical call, every attempt's outcome and every back-off sleep, so a
  test can hold the transport to the provider's :class:`~voxhub.transport.RetryPolicy`;
* :class:`SandboxProcess` — ``voxhub sandbox NAME`` in its own process (it survives the
  client processes a test kills), driven through the sandbox control API;
* :func:`voxhub_cli` / :func:`cli_env` — the ``voxhub`` command of this interpreter's
  environment, with an environment that reads no developer configuration.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
from voxhub.clock import SystemClock
from voxhub.transport import (
    HttpClient,
    HttpRequest,
    Response,
    RetryPolicy,
    SendError,
    Timeouts,
    Urllib3Transport,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_WAV = ROOT / "docs" / "samples" / "hello.wav"


# --- the recording transport ------------------------------------------------------------


@attrs.define
class Call:
    """One logical request (one ``HttpClient.send``) and what each of its attempts met."""

    method: str
    path: str
    operation: str
    idempotent: bool
    retry: RetryPolicy
    #: Per attempt: the HTTP status, or "unsent: <reason>" / "in doubt: <reason>" for an
    #: attempt that failed without an answer.
    outcomes: list[int | str] = attrs.field(factory=list)
    #: Every sleep the transport made between attempts, in order.
    sleeps: list[float] = attrs.field(factory=list)

    @property
    def rate_limited(self) -> int:
        return sum(1 for o in self.outcomes if o in self.retry.rate_limit_statuses)

    @property
    def errors(self) -> int:
        """Attempts that count against ``max_attempts`` (transport errors, retryable 5xx)."""
        return sum(
            1
            for o in self.outcomes
            if isinstance(o, str) or (self.idempotent and o in self.retry.retry_statuses)
        )

    @property
    def gave_up(self) -> bool:
        """Whether the call ended on a fault (an exception, a retryable status, a 429)."""
        last = self.outcomes[-1] if self.outcomes else "none"
        return (
            isinstance(last, str)
            or last in self.retry.retry_statuses
            or last in self.retry.rate_limit_statuses
        )

    @property
    def exhausted(self) -> bool:
        """Whether giving up was the policy's decision (budget spent, or an ambiguous POST)."""
        if self.errors >= self.retry.max_attempts:
            return True
        if self.rate_limited >= self.retry.max_rate_limited_attempts:
            return True
        return not self.idempotent and self.gave_up


class _CallClock(SystemClock):
    """Real time; each sleep is also written on the calling thread's current :class:`Call`."""

    def __init__(self, current: threading.local) -> None:
        self._current = current

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        call: Call | None = getattr(self._current, "call", None)
        if call is not None:
            call.sleeps.append(seconds)
        return super().sleep(seconds, wake)


class _RecordingTransport(Urllib3Transport):
    """The real pooled transport; each attempt's outcome is written on the current Call."""

    def __init__(self, current: threading.local) -> None:
        super().__init__()
        self._current = current

    def handle(self, request: HttpRequest) -> Response:
        call: Call | None = getattr(self._current, "call", None)
        try:
            resp = super().handle(request)
        except SendError as exc:
            if call is not None:
                call.outcomes.append(f"{'in doubt' if exc.in_doubt else 'unsent'}: {exc.reason}")
            raise
        if call is not None:
            call.outcomes.append(resp.status)
        return resp


class RecordingHttp(HttpClient):
    """voxhub's pooled client, unchanged, plus a record of every call's attempts."""

    def __init__(self, *, timeouts: Timeouts | None = None) -> None:
        self._current = threading.local()
        # The transport is the one place bytes leave: it sees every attempt, retries included.
        super().__init__(
            clock=_CallClock(self._current),
            timeouts=timeouts,
            transport=_RecordingTransport(self._current),
        )
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def send(self, method: str, url: str, **kwargs: Any) -> Response:
        call = Call(
            method=method,
            path=url.split("?", 1)[0].split("://", 1)[-1].partition("/")[2],
            operation=str(kwargs.get("operation")),
            idempotent=bool(kwargs.get("idempotent")),
            retry=kwargs["retry"],
        )
        self._current.call = call
        try:
            return super().send(method, url, **kwargs)
        finally:
            self._current.call = None
            with self._lock:
                self.calls.append(call)


def policy_violations(calls: Sequence[Call], retry_after: float) -> list[str]:
    """Every way the recorded calls broke their provider's retry policy (empty = none).

    Checked per call: attempt budgets (``max_attempts`` for errors,
    ``max_rate_limited_attempts`` for 429s); a non-idempotent request is never
    repeated after an answer the server may have acted on (only after a refusal or
    a request that provably never reached it); one sleep before each
    retry: exactly ``Retry-After`` after a 429, the policy's jittered exponential
    back-off after an error.
    """
    problems: list[str] = []
    for call in calls:
        policy = call.retry
        where = f"{call.method} /{call.path} ({call.operation}) {call.outcomes}"
        if call.errors > policy.max_attempts:
            problems.append(f"{where}: {call.errors} errors > max_attempts")
        if call.rate_limited > policy.max_rate_limited_attempts:
            problems.append(f"{where}: {call.rate_limited} 429s > max_rate_limited_attempts")
        if not call.idempotent and any(
            o not in policy.rate_limit_statuses and not str(o).startswith("unsent")
            for o in call.outcomes[:-1]
        ):
            problems.append(f"{where}: a non-idempotent request was repeated after a fault")
        if len(call.sleeps) != len(call.outcomes) - 1:
            problems.append(f"{where}: {len(call.sleeps)} sleeps for {len(call.outcomes)} tries")
            continue
        errors = 0
        for outcome, slept in zip(call.outcomes, call.sleeps, strict=False):
            if outcome in policy.rate_limit_statuses:
                if abs(slept - min(retry_after, policy.retry_after_max)) > 1e-6:
                    problems.append(f"{where}: slept {slept} after a 429, not Retry-After")
                continue
            errors += 1
            ceiling = min(policy.backoff_max, policy.backoff_base * 2 ** (errors - 1))
            if not ceiling / 2 - 1e-9 <= slept <= ceiling + 1e-9:
                problems.append(f"{where}: back-off {slept} outside [{ceiling / 2}, {ceiling}]")
    return problems


# --- the voxhub command and sandboxes in their own processes ---------------------------------


def voxhub_cli() -> list[str]:
    """The ``voxhub`` console script beside this interpreter (else the same entry point)."""
    script = shutil.which("voxhub", path=str(Path(sys.executable).parent))
    if script:
        return [script]
    return [sys.executable, "-c", "from voxhub.cli import main; main()"]


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for CLI subprocesses: no developer config, store or VOXHUB_* leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXHUB_")}
    env.update(
        XDG_CONFIG_HOME=str(home / "xdg-config"),
        XDG_DATA_HOME=str(home / "xdg-data"),
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
        # Short timeouts: a resumed in-doubt submission waits until the dead process's
        # request could no longer be in flight (connect + read timeout after its claim).
        VOXHUB_CONNECT_TIMEOUT="2",
        VOXHUB_READ_TIMEOUT="5",
    )
    env.update(extra)
    return env


def wait_until(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@contextlib.contextmanager
def background_server(app: Any) -> Iterator[str]:
    """Serve a WSGI ``app`` on an ephemeral loopback port in a thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
