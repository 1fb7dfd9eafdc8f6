"""Serving a vendor emulator: a loopback HTTP/1.1 server, or ``voxhub sandbox`` as a child.

* :func:`serve` — a threaded loopback server that keeps connections alive, as the
  real vendors do; :class:`RunningSandbox` is its handle (a context manager);
* :class:`SandboxProcess` — ``voxhub sandbox NAME`` in a child process, for tests and
  benchmarks that kill or load the client but need the vendor to live on.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import IO, Any, cast
from urllib.parse import unquote_to_bytes

import structlog
import urllib3
from werkzeug.serving import DechunkedInput, WSGIRequestHandler
from werkzeug.wsgi import LimitedStream

from .redact import redact_text
from .sandbox_kit import Sandbox

__all__ = [
    "KeepAliveHandler",
    "QuietRequestHandler",
    "RunningSandbox",
    "SandboxProcess",
    "serve",
]

log = structlog.get_logger("voxhub.sandbox")


class RunningSandbox:
    """A sandbox served on loopback in a background thread; a context manager."""

    def __init__(self, sandbox: Sandbox, server: _LoopbackServer) -> None:
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


def _access_path(requestline: str) -> tuple[str, str]:
    """Method and path of a request line, without the query or the last path segment
    (callback URLs carry their token there)."""
    method, _, rest = requestline.partition(" ")
    path = rest.split(" ", 1)[0].split("?", 1)[0]
    if path.count("/") > 2:
        path = path.rsplit("/", 1)[0] + "/***"
    return method, redact_text(path)


class QuietRequestHandler(WSGIRequestHandler):
    """werkzeug's handler with access lines at debug level in structlog (not stderr),
    masked by :func:`_access_path` (used by ``voxhub callbacks serve``)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        method, path = _access_path(self.requestline)
        log.debug("http.request", method=method, path=path, status=str(code))

    def log_error(self, format: str, *args: Any) -> None:
        log.debug("sandbox.error", message=format % args)


class KeepAliveHandler(BaseHTTPRequestHandler):
    """Serves a WSGI emulator over HTTP/1.1 with persistent connections.

    werkzeug's development server closes every connection after one answer; real
    vendors keep them open, and an emulator that does not would hide how a client
    reuses connections and make benchmarks pay a handshake per request. Answers
    are small, so each is buffered and sent with its ``Content-Length``; whatever
    the application left unread of a request body is drained so the next request
    on the connection starts where it should.
    """

    protocol_version = "HTTP/1.1"
    #: Seconds an idle keep-alive connection stays open.
    timeout = 30
    server: _LoopbackServer

    def _serve(self) -> None:
        stream = self._body_stream()
        environ = self._environ(stream)
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
            answer["status"], answer["headers"] = status, headers
            return lambda data: answer.setdefault("written", []).append(data)

        try:
            chunks = self.server.app(environ, start_response)
            try:
                body = b"".join([*answer.get("written", []), *chunks])
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        except ConnectionError:
            # The emulator dropped the connection on purpose (a lost answer).
            self.close_connection = True
            return
        except Exception as exc:  # noqa: BLE001 - a vendor bug answers 500, as a server would
            log.warning("sandbox.error", error=f"{type(exc).__name__}: {exc}")
            answer = {"status": "500 Internal Server Error", "headers": []}
            body = b"sandbox error"
        self._drain(stream)
        code, _, reason = answer["status"].partition(" ")
        self.send_response_only(int(code), reason)
        for name, value in answer["headers"]:
            if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.log_request(int(code), len(body))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _body_stream(self) -> Any:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return DechunkedInput(cast(IO[bytes], self.rfile))
        try:
            length = max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            length = 0
        return LimitedStream(cast(IO[bytes], self.rfile), length)

    def _drain(self, stream: Any) -> None:
        try:
            if isinstance(stream, LimitedStream):
                stream.exhaust()
            else:
                while stream.read(65536):
                    pass
        except (OSError, ValueError):
            self.close_connection = True

    def _environ(self, stream: Any) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": stream,
            "wsgi.input_terminated": isinstance(stream, DechunkedInput),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "werkzeug.socket": self.connection,  # the kit's drop_connection needs it
        }
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            if key in {"CONTENT_TYPE", "CONTENT_LENGTH"}:
                environ[key] = value
            else:
                environ[f"HTTP_{key}"] = value
        return environ

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        method, path = _access_path(self.requestline)
        log.debug("http.request", method=method, path=path, status=str(code))

    def log_error(self, format: str, *args: Any) -> None:
        log.debug("sandbox.error", message=format % args)


class _LoopbackServer(ThreadingHTTPServer):
    """A threaded server for one WSGI app that closes its open connections when stopped."""

    daemon_threads = True

    def __init__(self, host: str, port: int, app: Any) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        #: Connections accepted so far (keep-alive shows as fewer connections than requests).
        self.connections_accepted = 0
        super().__init__((host, port), KeepAliveHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
            self.connections_accepted += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client (or stop()) closing a connection mid-request is routine for an emulator
        # that drops answers on purpose: a debug line, not a traceback on stderr.
        exc = sys.exc_info()[1]
        log.debug("sandbox.connection_error", error=f"{type(exc).__name__}: {exc}")

    def server_close(self) -> None:
        super().server_close()
        # Idle keep-alive connections would otherwise outlive the server.
        with self._open_lock:
            open_now, self._open = self._open, set()
        for conn in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def serve(sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> RunningSandbox:
    """Serve ``sandbox`` on ``host:port`` (port 0 = an ephemeral port) until stopped."""
    if host not in {"127.0.0.1", "::1", "localhost"} and not host.startswith("127."):
        # Emulators accept fake credentials: never expose them beyond this machine.
        raise ValueError(f"sandboxes listen on loopback only, not {host!r}")
    return RunningSandbox(sandbox, _LoopbackServer(host, port, sandbox))


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
