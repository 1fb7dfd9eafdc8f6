"""Prints how many cases the fuzz tests generated, at the end of the run."""

from __future__ import annotations

import sys
from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for name, module in list(sys.modules.items()):
        cases = getattr(module, "CASES", None) if name.endswith("test_fuzz") else None
        if cases:
            terminalreporter.write_line(
                "fuzz cases: " + ", ".join(f"{k}={v}" for k, v in sorted(cases.items()))
                + f" (total {sum(cases.values())})"
            )
