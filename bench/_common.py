"""Shared pieces of the benchmarks: a sandbox in its own process, timing, tables, the machine.

The sandbox runs in a child process (``python bench/_common.py serve PROVIDER KNOBS``)
so the client being measured has the interpreter, and a core, to itself; it listens
on 127.0.0.1 with an ephemeral port and stops when the benchmark closes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class SandboxProcess:
    """A vendor sandbox served by a child Python process, with its control API."""

    def __init__(self, provider: str, **knobs: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve", provider, json.dumps(knobs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError(f"the {provider} sandbox did not start")
        announced = json.loads(line)
        self.base_url: str = announced["base_url"]
        self.settings: dict[str, str] = announced["settings"]

    def _control(self, action: str, body: Any = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 - a loopback http URL
            f"{self.base_url}/_sandbox/{action}",
            data=None if body is None else json.dumps(body).encode(),
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
            return json.loads(answer.read())

    def counters(self) -> dict[str, int]:
        return dict(self._control("counters"))

    def reset(self) -> None:
        self._control("reset", {})

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # the child stops when its stdin closes
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
        self.close()


def _serve(provider: str, knobs: str) -> None:
    """Child side: serve the sandbox until stdin closes or SIGTERM."""
    from voxhub import PluginManager
    from voxhub.sandbox import serve

    spec = PluginManager.load(env={}).sandboxes[provider]
    running = serve(spec.factory(**json.loads(knobs)))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def stop_when_stdin_closes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    print(json.dumps({"base_url": running.base_url, "settings": running.settings()}), flush=True)
    stop.wait()
    running.stop()


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> str:
    """A markdown table; ``align`` is one letter per column (l/r), right by default after col 0."""
    align = align or "l" + "r" * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |",
             "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |"]
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


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "serve":
    _serve(sys.argv[2], sys.argv[3])
