"""Reliability tests: faults, crashes, concurrency, bad input and secrets (issue 10).

Everything runs against the plugins' sandboxes on 127.0.0.1 with ephemeral ports;
servers and child processes are stopped by the tests that start them.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Test modules import the shared helpers by name (importlib mode cannot import a conftest).
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
