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


@pytest.mark.both_stores
def test_it_names_its_store_but_never_the_password(world: Any, kit: Any) -> None:
    # Named with --store, as an operator might: a URL with the password in it.
    running = kit.start_dashboard(world, store_option=True)
    assert running.get("").status == 200
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(timeout=15) == 0
    assert running.proc.stdout is not None
    output = "".join(running.lines) + running.proc.stdout.read()
    running.proc.stdout.close()
    shown = world.store
    if world.kind == "postgresql":
        password = urlsplit(world.store).password
        assert password and password in world.secrets
        shown = world.store.replace(f":{password}@", ":***@")
    assert f"(store {shown})" in running.lines[0]
    assert "dashboard stopped" in output and "Traceback" not in output
    kit.assert_no_secret(output, "the command's output", world.secrets)


def test_a_busy_port_is_a_one_line_error(world: Any, dashboard: Any) -> None:
    port = str(urlsplit(dashboard.url).port)
    voxhub = dashboard.proc.args[0]
    done = subprocess.run(
        [voxhub, "dashboard", "--port", port],
        capture_output=True, text=True, timeout=30, env=world.process_env(),
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr.strip().splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{port}")
    )
