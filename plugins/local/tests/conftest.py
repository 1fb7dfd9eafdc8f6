"""voxhub-local tests run offline: no model download, and a check that nothing connects out.

``HF_HUB_OFFLINE=1`` (inherited by the worker processes) makes faster-whisper's
hub refuse any download, and an empty ``HF_HUB_CACHE`` means a model that is
not in a weights package is not found, whatever this machine cached before.
The ``no_network`` fixture records, through a Python audit hook (no patching),
every connection and name lookup this process makes to something other than
loopback, and fails the test if there was one.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="voxhub-local-empty-hf-cache-")

SAMPLES = Path(__file__).resolve().parents[3] / "docs" / "samples"

_LOCAL = ("127.", "::1", "localhost")
_seen: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _seen is None:
        return
    if event == "socket.connect":
        address = args[1]
        host = str(address[0]) if isinstance(address, tuple) else str(address)
    elif event == "socket.getaddrinfo":
        host = str(args[0])
    else:
        return
    if not host.startswith(_LOCAL) and not host.startswith("/"):
        _seen.append(f"{event} {host}")


sys.addaudithook(_audit)


@pytest.fixture
def no_network() -> Iterator[None]:
    """Fail the test if this process connected to (or looked up) a non-loopback host."""
    global _seen
    _seen = []
    try:
        yield
        assert _seen == [], f"network access during an offline test: {_seen}"
    finally:
        _seen = None
