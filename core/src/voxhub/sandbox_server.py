"""Serving a vendor emulator: a loopback HTTP/1.1 server, or ``voxhub sandbox`` as a child.

* :func:`serve` — a threaded loopback server that keeps connections alive, as the
  real vendors do; :class:`RunningSandbox` is its handle (a context manager);
* :class:`SandboxProcess` — ``voxhub sandbox NAME`` in a child process, for tests and
  benchmarks that kill or load the client but need the vendor to live on.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import structlog
import urllib3
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .redact import redact_text
from .sandbox_kit import Sandbox

__all__ = ["QuietRequestHandler", "RunningSandbox", "SandboxProcess", "serve"]

log = structlog.get_logger("voxhub.sandbox")


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
    """HTTP/1.1 with keep-alive; access lines go to structlog at debug level instead of
    stderr, without the query string or the last path segment (where callback URLs
    carry their token)."""

    # Real vendors keep connections alive; an emulator that closes each one would hide
    # a client's connection handling and make benchmarks pay a handshake per request.
    protocol_version = "HTTP/1.1"

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
