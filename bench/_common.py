"""Shared pieces of the benchmarks: timing, tables, the machine.

Sandboxes run in a child process (:class:`voxhub.sandbox.SandboxProcess`) so the
client being measured has the interpreter, and a core, to itself. :class:`FakeRevai`
is a Rev.ai-shaped keep-alive server that answers at once, for measuring clients'
own cost per job.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from voxhub.sandbox import SandboxProcess

__all__ = ["FakeRevai", "SandboxProcess", "cpu_and_wall", "machine", "median", "table", "timed"]

ROOT = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> str:
    """A markdown table; ``align`` is one letter per column (l/r), right by default after col 0."""
    align = align or "l" + "r" * (len(headers) - 1)
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, Python, OS and the date of this run."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    versions = {}
    for dist in ("voxhub", "voxhub-revai", "rev-ai", "urllib3", "werkzeug"):
        with contextlib.suppress(PackageNotFoundError):
            versions[dist] = version(dist)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


def url(i: int, tag: str = "bench") -> str:
    """A media URL the sandbox never fetches (not loopback): it answers a placeholder text."""
    return f"https://media.voxhub.invalid/{tag}-{i}.wav"


# --- a Rev.ai-shaped keep-alive server that answers at once --------------------------------
#
# The sandboxes model Rev.ai faithfully but cost CPU of their own per answer. To measure a
# client's own cost per job, FakeRevai answers every request at once from prebuilt bytes,
# keeps HTTP/1.1 connections alive (as the real API does) and runs in a child process, so
# the client's process CPU time is the client's alone.

FAKE_TOKEN = "bench-fake-revai-token"
_CREATED = "2026-01-01T00:00:00.000Z"
_TRANSCRIPT = {
    "monologues": [{
        "speaker": 0,
        "elements": [
            {"type": "text", "value": "Hello", "ts": 0.12, "end_ts": 0.5, "confidence": 0.98},
            {"type": "punct", "value": " "},
            {"type": "text", "value": "world", "ts": 0.6, "end_ts": 1.02, "confidence": 0.97},
            {"type": "punct", "value": "."},
        ],
    }],
}


def _fake_app(counts: dict[str, int], jobs: set[str], lock: Any, method: str, path: str,
              auth: bytes | None, body: bytes) -> tuple[int, bytes]:
    """One answer of the fake Rev.ai API: ``(status, JSON body)``."""
    import json

    if path == "/_bench/counters":
        with lock:
            return 200, json.dumps(counts).encode()
    if path == "/_bench/reset":
        with lock:
            counts.clear()
            jobs.clear()
        return 200, b"{}"
    with lock:
        counts["requests"] = counts.get("requests", 0) + 1
    if auth != f"Bearer {FAKE_TOKEN}".encode():
        return 401, b'{"title":"Authorization has been denied for this request","status":401}'
    prefix = "/speechtotext/v1/jobs"
    if method == "POST" and path == prefix:
        options = json.loads(body or b"{}")
        with lock:
            job_id = f"fk{len(jobs) + 1:08d}"
            jobs.add(job_id)
            counts["submit"] = counts.get("submit", 0) + 1
        job = {"id": job_id, "created_on": _CREATED, "status": "in_progress", "type": "async",
               "language": "en", "metadata": options.get("metadata")}
        return 200, json.dumps(job).encode()
    if method == "GET" and path.startswith(prefix + "/"):
        job_id, _, rest = path[len(prefix) + 1:].partition("/")
        if job_id not in jobs:
            return 404, b'{"title":"Job could not be found","status":404}'
        if rest == "transcript":
            with lock:
                counts["transcript"] = counts.get("transcript", 0) + 1
            return 200, json.dumps(_TRANSCRIPT).encode()
        if not rest:
            with lock:
                counts["status"] = counts.get("status", 0) + 1
            job = {"id": job_id, "created_on": _CREATED, "completed_on": _CREATED,
                   "status": "transcribed", "type": "async", "language": "en",
                   "duration_seconds": 1.02}
            return 200, json.dumps(job).encode()
    return 404, b'{"title":"Not found","status":404}'


def serve_fake_revai(latency: float = 0.0) -> None:
    """Run the fake Rev.ai server on an ephemeral loopback port; print ``PORT <n>``.

    ``latency``: seconds each API answer waits before it is sent (as a real vendor's
    round trip would), on its connection's own thread; control requests answer at once.
    """
    import socket
    import socketserver
    import sys
    import threading
    import time

    counts: dict[str, int] = {}
    jobs: set[str] = set()
    lock = threading.Lock()
    reasons = {200: b"OK", 401: b"Unauthorized", 404: b"Not Found", 411: b"Length Required"}

    class Handler(socketserver.StreamRequestHandler):
        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def handle(self) -> None:
            rfile, conn = self.rfile, self.connection
            while True:
                line = rfile.readline(65537)
                if not line.strip():
                    return  # the client closed its keep-alive connection
                method, target, _ = line.decode("latin-1").split(" ", 2)
                length, auth, close = None, None, False
                while True:
                    header = rfile.readline(65537)
                    if header in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = header.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"authorization":
                        auth = value.strip()
                    elif name == b"connection":
                        close = value.strip().lower() == b"close"
                    elif name == b"transfer-encoding":
                        length = -1  # no client measured here streams chunks
                if length == -1:
                    status, payload = 411, b'{"title":"Length Required","status":411}'
                    close = True
                else:
                    body = rfile.read(length) if length else b""
                    path = target.partition("?")[0]
                    status, payload = _fake_app(counts, jobs, lock, method, path, auth, body)
                    if latency and not path.startswith("/_bench/"):
                        time.sleep(latency)
                head = (f"HTTP/1.1 {status} {reasons[status].decode()}\r\n"
                        "Content-Type: application/json; charset=utf-8\r\n"
                        f"Content-Length: {len(payload)}\r\n"
                        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n").encode()
                conn.sendall(head + payload)
                if close:
                    return

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 256

    with Server(("127.0.0.1", 0), Handler) as server:
        print(f"PORT {server.server_address[1]}", flush=True)
        threading.Thread(target=lambda: (sys.stdin.read(), server.shutdown()),
                         daemon=True).start()  # stdin closed = the parent is done
        server.serve_forever(poll_interval=0.2)


class FakeRevai:
    """The fake Rev.ai server (:func:`serve_fake_revai`) in a child process.

    ``settings`` is a voxhub ``revai`` profile pointing at it; ``counters()`` says how
    many API requests it answered (and of which kind) since the last ``reset()``. The
    profile turns off Rev.ai's published submission limit (``limit_submit = "off"``): the
    fake has none, and the real one (10,000 per 10 minutes, one every 60 ms after a burst
    of 100) would make every benchmark measure that wait instead of the client.
    ``latency`` (seconds) delays every API answer, as a vendor's round trip would.
    """

    def __init__(self, latency: float = 0.0) -> None:
        import subprocess
        import sys

        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve-fake-revai", str(latency)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self._proc.kill()
            raise RuntimeError(f"the fake Rev.ai server did not start ({line!r})")
        self.base_url = f"http://127.0.0.1:{line[1]}"
        self.token = FAKE_TOKEN
        self.settings = {"token": FAKE_TOKEN, "base_url": self.base_url, "limit_submit": "off"}

    def _control(self, path: str) -> dict[str, int]:
        import http.client
        import json

        conn = http.client.HTTPConnection(self.base_url.removeprefix("http://"), timeout=10)
        try:
            conn.request("GET", path)
            data: dict[str, int] = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        return data

    def counters(self) -> dict[str, int]:
        return self._control("/_bench/counters")

    def reset(self) -> None:
        self._control("/_bench/reset")

    def close(self) -> None:
        import subprocess

        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()  # the server shuts down when its stdin ends
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> FakeRevai:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cpu_and_wall(fn: Callable[[], Any]) -> tuple[float, float]:
    """``(process CPU seconds, wall seconds)`` spent in ``fn`` (every thread of this process)."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["serve-fake-revai"]:
        serve_fake_revai(float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
