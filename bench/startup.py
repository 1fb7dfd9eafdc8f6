"""Start-up time: ``voxhub --help`` and ``voxhub providers`` with every plugin installed.

Baselines measured in the same run: ``python -c pass`` (the interpreter alone) and
``python -c "import voxhub"`` (the core package). Each command runs ``--runs`` times
(after one warm-up run) in a fresh process with an empty configuration; the table
shows the median and the fastest run, hyperfine-style.

    python bench/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import median, table


def _voxhub() -> list[str]:
    script = shutil.which("voxhub", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-c", "from voxhub.cli import main; main()"]


def measure(argv: list[str], runs: int, env: dict[str, str]) -> list[float]:
    times = []
    for attempt in range(runs + 1):
        started = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        if attempt:  # the first run only warms the page cache
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="accepted for run_all (same runs)")
    args = parser.parse_args()
    runs = max(10, args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOXHUB_")}
        env.update(XDG_CONFIG_HOME=tmp, XDG_DATA_HOME=tmp)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            'python -c "import voxhub"': [sys.executable, "-c", "import voxhub"],
            "voxhub --help": [*_voxhub(), "--help"],
            "voxhub providers": [*_voxhub(), "providers"],
        }
        results = {name: measure(argv, runs, env) for name, argv in commands.items()}
    base = median(results["python -c pass"])
    rows = [[f"`{name}`", f"{median(t) * 1000:.0f}", f"{min(t) * 1000:.0f}",
             f"{(median(t) - base) * 1000:.0f}", f"{median(t) / base:.1f}x"]
            for name, t in results.items()]
    print(f"### Start-up time (median of {runs} runs, fresh processes)\n")
    print(table(["command", "median ms", "min ms", "over python ms", "vs python"], rows))


if __name__ == "__main__":
    main()
