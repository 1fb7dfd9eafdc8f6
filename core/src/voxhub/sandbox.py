"""The toolkit every vendor emulator ("sandbox") is built from.

A plugin's sandbox subclasses :class:`Sandbox` and implements :meth:`Sandbox.dispatch`
with werkzeug's request/response objects. This module adds what all of them
share, so each emulator is only about its vendor:

* fault injection (:class:`FaultPlan`): a share of requests answered 429 with
  ``Retry-After``, 502/503/504, slowed down, or dropped without an answer;
* counters of what was received (:class:`Counters`), to prove "no duplicates";
* a control API on every sandbox, for tests in other processes:
  ``GET /_sandbox/counters``, ``POST /_sandbox/faults`` (a JSON FaultPlan),
  ``POST /_sandbox/reset``;
* :func:`serve`, a loopback server in a background thread;
* :class:`SandboxProcess`, ``voxhub sandbox NAME`` in a child process, for tests
  and benchmarks that kill or load the client but need the vendor to live on;
* :class:`CallbackSender`, webhook delivery with retries.

Sandboxes listen on loopback only; nothing here reaches the outside world.
"""

from __future__ import annotations

import json
import queue
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import structlog
import urllib3
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from .redact import redact_text

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "CallbackSender",
    "Counters",
    "FaultPlan",
    "RunningSandbox",
    "Sandbox",
    "SandboxProcess",
    "SandboxSpec",
    "serve",
]

log = structlog.get_logger("voxhub.sandbox")


@attrs.frozen
class FaultPlan:
    """Which faults to inject, as shares of requests in [0, 1] (checked in this order).

    ``only_paths`` limits faults to paths starting with one of these prefixes
    (``None`` = every vendor path; the control API is never faulted).
    ``drop`` closes the connection without an answer; ``slow`` delays the answer
    by ``slow_seconds`` (longer than a client's read timeout makes a timeout).
    """

    rate_limited: float = 0.0
    retry_after: float = 1.0
    server_error: float = 0.0
    server_error_statuses: tuple[int, ...] = (502, 503, 504)
    drop: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 2.0
    seed: int | None = None
    only_paths: tuple[str, ...] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultPlan:
        fields = {f.name for f in attrs.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        clean = dict(data)
        for key in ("server_error_statuses", "only_paths"):
            if clean.get(key) is not None:
                clean[key] = tuple(clean[key])
        return cls(**clean)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Counters:
    """Thread-safe named counters (``requests``, ``faults``, plus any the vendor code adds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


class Sandbox:
    """Base class of a vendor emulator: a WSGI application with faults and counters.

    Subclasses set :attr:`provider`, implement :meth:`dispatch` and
    :meth:`credentials`, and may override :meth:`settings` (what a client
    profile needs: ``base_url`` plus credentials).
    """

    provider: ClassVar[str] = ""

    def __init__(self, *, faults: FaultPlan | None = None) -> None:
        self.faults = faults or FaultPlan()
        self.counters = Counters()
        self._rng = random.Random(self.faults.seed)
        self._rng_lock = threading.Lock()
        self.root_url = ""  # set by serve(); used for absolute URLs in answers

    # --- for subclasses -----------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        """Answer one vendor API request."""
        raise NotImplementedError

    def credentials(self) -> dict[str, str]:
        """The credentials this sandbox accepts (as a client profile names them)."""
        return {}

    def settings(self, root_url: str) -> dict[str, str]:
        """A complete client profile for this sandbox (``base_url`` + credentials)."""
        return {"base_url": root_url, **self.credentials()}

    def reset(self) -> None:
        """Forget all vendor state (jobs, tasks...). Subclasses extend it."""
        self.counters.reset()

    def close(self) -> None:
        """Stop background work (timers, callback senders)."""

    # --- WSGI ---------------------------------------------------------------

    def set_faults(self, plan: FaultPlan) -> None:
        self.faults = plan
        with self._rng_lock:
            self._rng = random.Random(plan.seed)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/_sandbox/"):
            return self._control(request)(environ, start_response)
        self.counters.add("requests")
        self.counters.add(f"{request.method} {request.path}")
        fault = self._pick_fault(request.path)
        if fault == "drop":
            self.counters.add("faults.drop")
            _drop_connection(environ)
            raise ConnectionResetError("sandbox dropped the connection on purpose")
        if fault == "slow":
            self.counters.add("faults.slow")
            time.sleep(self.faults.slow_seconds)
        elif fault == "rate_limited":
            self.counters.add("faults.rate_limited")
            response = self.rate_limited_response(self.faults.retry_after)
            return response(environ, start_response)
        elif fault is not None:
            status = int(fault)
            self.counters.add(f"faults.{status}")
            return Response(f"sandbox injected {status}", status=status)(environ, start_response)
        try:
            response = self.dispatch(request)
        except HTTPException as exc:
            return exc(environ, start_response)
        return response(environ, start_response)

    def rate_limited_response(self, retry_after: float) -> Response:
        """The vendor's 429 answer (subclasses may give it the vendor's body)."""
        return Response(
            json.dumps({"title": "Too Many Requests", "status": 429}),
            status=429,
            headers={"Retry-After": _fmt_seconds(retry_after)},
            content_type="application/json",
        )

    def _pick_fault(self, path: str) -> str | None:
        plan = self.faults
        if plan.only_paths is not None and not path.startswith(plan.only_paths):
            return None
        with self._rng_lock:
            roll = self._rng.random()
            choice = self._rng.choice(plan.server_error_statuses or (503,))
        for name, share in (
            ("rate_limited", plan.rate_limited),
            (str(choice), plan.server_error),
            ("drop", plan.drop),
            ("slow", plan.slow),
        ):
            if roll < share:
                return name
            roll -= share
        return None

    def _control(self, request: Request) -> Response:
        action = request.path.removeprefix("/_sandbox/")
        if action == "counters" and request.method == "GET":
            return _json_response(self.counters.snapshot())
        if action == "faults" and request.method == "POST":
            try:
                self.set_faults(FaultPlan.from_dict(json.loads(request.get_data() or b"{}")))
            except (ValueError, TypeError) as exc:
                return _json_response({"error": str(exc)}, status=400)
            return _json_response(self.faults.to_dict())
        if action == "faults" and request.method == "GET":
            return _json_response(self.faults.to_dict())
        if action == "reset" and request.method == "POST":
            self.reset()
            return _json_response({"reset": True})
        return _json_response({"error": "unknown sandbox control"}, status=404)


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def _json_response(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


def _drop_connection(environ: WSGIEnvironment) -> None:
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        try:
            # SO_LINGER 0 makes close send a RST: the client sees a reset, not a clean EOF.
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


@attrs.frozen
class SandboxSpec:
    """How a plugin offers a sandbox: the provider it emulates and a factory."""

    provider: str
    factory: Callable[..., Sandbox]
    description: str = ""


class RunningSandbox:
    """A sandbox served on loopback in a background thread; a context manager."""

    def __init__(self, sandbox: Sandbox, server: BaseWSGIServer) -> None:
        self.sandbox = sandbox
        self.server = server
        host, port = server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        host_text = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{host_text}:{port}"
        sandbox.root_url = self.base_url
        # A short poll interval makes stop() take milliseconds instead of half a second.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{sandbox.provider}",
            daemon=True,
        )
        self._thread.start()

    @property
    def provider(self) -> str:
        return self.sandbox.provider

    def settings(self) -> dict[str, str]:
        """The client profile for this running sandbox."""
        return self.sandbox.settings(self.base_url)

    def announce(self) -> dict[str, Any]:
        """The JSON line ``voxhub sandbox`` prints for this sandbox."""
        settings = self.settings()
        base = settings.pop("base_url")
        return {"provider": self.provider, "base_url": base, "credentials": settings}

    def stop(self) -> None:
        self.sandbox.close()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class QuietRequestHandler(WSGIRequestHandler):
    """Access lines go to structlog at debug level instead of stderr, without the query
    string or the last path segment (where callback URLs carry their token)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        method, _, rest = self.requestline.partition(" ")
        path = rest.split(" ", 1)[0].split("?", 1)[0]
        if path.count("/") > 2:
            path = path.rsplit("/", 1)[0] + "/***"
        log.debug("http.request", method=method, path=redact_text(path), status=str(code))

    def log_error(self, format: str, *args: Any) -> None:
        log.debug("sandbox.error", message=format % args)


def serve(sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> RunningSandbox:
    """Serve ``sandbox`` on ``host:port`` (port 0 = an ephemeral port) until stopped."""
    if host not in {"127.0.0.1", "::1", "localhost"} and not host.startswith("127."):
        # Emulators accept fake credentials: never expose them beyond this machine.
        raise ValueError(f"sandboxes listen on loopback only, not {host!r}")
    server = make_server(host, port, sandbox, threaded=True, request_handler=QuietRequestHandler)
    server.daemon_threads = True  # type: ignore[attr-defined]
    return RunningSandbox(sandbox, server)


class CallbackSender:
    """Delivers webhooks from a sandbox in the background, retrying failed deliveries.

    ``schedule`` lists the delays before each retry (the real vendors retry over
    hours; sandboxes default to seconds). Every attempt is counted in
    ``counters`` as ``callbacks.sent`` / ``callbacks.failed`` / ``callbacks.delivered``.
    """

    def __init__(
        self,
        counters: Counters,
        *,
        schedule: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0),
        timeout: float = 5.0,
    ) -> None:
        self.counters = counters
        self.schedule = schedule
        self._pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(timeout))
        self._queue: queue.Queue[tuple[str, bytes, dict[str, str], int] | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._run, name="sandbox-callbacks", daemon=True)
            for _ in range(2)
        ]
        for thread in self._threads:
            thread.start()
        self.delivered: list[tuple[str, bytes]] = []

    def send(self, url: str, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        """Queue one callback POST."""
        self._queue.put((url, body, dict(headers or {}), 0))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            url, body, headers, attempt = item
            self.counters.add("callbacks.sent")
            ok = False
            try:
                resp = self._pool.request(
                    "POST", url, body=body, headers={"Content-Type": "application/json", **headers}
                )
                ok = 200 <= resp.status < 300
            except (urllib3.exceptions.HTTPError, OSError):
                ok = False
            if ok:
                self.counters.add("callbacks.delivered")
                self.delivered.append((url, body))
                continue
            self.counters.add("callbacks.failed")
            if attempt < len(self.schedule):
                delay = self.schedule[attempt]
                timer = threading.Timer(
                    delay, self._queue.put, args=((url, body, headers, attempt + 1),)
                )
                timer.daemon = True
                timer.start()

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        self._pool.clear()


class SandboxProcess:
    """``voxhub sandbox PROVIDER`` in a child process, driven through its control API.

    The emulator outlives whatever the caller does to its own process (kills,
    load), which is what crash tests and benchmarks need::

        with SandboxProcess("revai", options={"processing_seconds": 0}) as vendor:
            env = vendor.env("revai")          # VOXHUB_REVAI_BASE_URL, VOXHUB_REVAI_TOKEN
            vendor.set_faults(rate_limited=0.2)
            print(vendor.counters()["requests"])

    ``options`` are the sandbox's own settings (``voxhub sandbox --option``),
    ``faults`` a :class:`FaultPlan` as keywords, ``env`` the child's environment.
    """

    def __init__(
        self,
        provider: str,
        *,
        options: Mapping[str, Any] | None = None,
        faults: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        voxhub: str | None = None,
    ) -> None:
        import subprocess
        import sys
        from pathlib import Path

        argv = [voxhub or str(Path(sys.executable).with_name("voxhub")), "sandbox", provider]
        for flag, values in (("--option", options), ("--fault", faults)):
            for key, value in (values or {}).items():
                argv += [flag, f"{key}={json.dumps(value)}"]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=None if env is None else dict(env),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError(f"voxhub sandbox {provider} did not start")
        announced = json.loads(line)
        self.provider = provider
        self.base_url: str = announced["base_url"]
        self.credentials: dict[str, str] = announced["credentials"]
        self._http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(30))

    @property
    def settings(self) -> dict[str, str]:
        """A client profile for this sandbox: ``base_url`` plus its credentials."""
        return {"base_url": self.base_url, **self.credentials}

    def env(self, profile: str | None = None) -> dict[str, str]:
        """``VOXHUB_<PROFILE>_*`` variables pointing a client at this sandbox."""
        from .config import env_name

        profile = profile or self.provider
        return {env_name(profile, key): value for key, value in self.settings.items()}

    def _control(self, action: str, body: Any = None) -> Any:
        answer = self._http.request(
            "GET" if body is None else "POST",
            f"{self.base_url}/_sandbox/{action}",
            body=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        if answer.status != 200:
            raise RuntimeError(f"sandbox control {action} failed: HTTP {answer.status}")
        return json.loads(answer.data)

    def counters(self) -> dict[str, int]:
        """What the sandbox received so far (see :class:`Counters`)."""
        return dict(self._control("counters"))

    def set_faults(self, **plan: Any) -> None:
        """Replace the fault plan (no keywords: no faults)."""
        self._control("faults", plan)

    def reset(self) -> None:
        """Forget all vendor state and counters."""
        self._control("reset", {})

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after 10 s)."""
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
