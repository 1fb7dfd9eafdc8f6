"""The process: loopback by default, prints its URL, stops cleanly on SIGTERM and Ctrl-C."""

from __future__ import annotations

import signal
import socket
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_it_binds_loopback_prints_its_url_and_stops_cleanly(
    world: Any, kit: Any, how: signal.Signals
) -> None:
    running = kit.start_dashboard(world)
    url = urlsplit(running.url)
    assert url.hostname == "127.0.0.1" and url.port
    assert running.get("").status == 200
    running.proc.send_signal(how)
    assert running.proc.wait(timeout=15) == 0
    assert running.proc.stdout is not None
    rest = running.proc.stdout.read()
    running.proc.stdout.close()
    assert "dashboard stopped" in rest and "Traceback" not in rest
    with pytest.raises(OSError), socket.create_connection((url.hostname, url.port), timeout=2):
        pass


def test_a_busy_port_is_a_one_line_error(world: Any, dashboard: Any) -> None:
    port = str(urlsplit(dashboard.url).port)
    voxhub = dashboard.proc.args[0]
    done = subprocess.run(
        [voxhub, "--store", str(world.store), "dashboard", "--port", port],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr.strip().splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{port}")
    )
