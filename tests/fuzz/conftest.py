"""Prints how many cases the fuzz tests generated, at the end of the run."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    cases: Counter[str] = Counter()
    # Every fuzz module keeps a CASES counter; under importlib mode its module name may be
    # dotted ("tests.fuzz.test_fuzz_answers") or bare.
    for name, module in list(sys.modules.items()):
        if name.rsplit(".", 1)[-1].startswith("test_fuzz"):
            cases.update(getattr(module, "CASES", None) or {})
    if cases:
        terminalreporter.write_line(
            "fuzz cases: " + ", ".join(f"{k}={v}" for k, v in sorted(cases.items()))
            + f" (total {sum(cases.values())})"
        )
