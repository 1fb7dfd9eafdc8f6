"""Start-up time: ``voxhub --help`` and ``voxhub providers`` with every plugin installed.

Baselines measured in the same run, in fresh processes: ``python -c pass`` (the
interpreter alone), ``python -c "import click"`` (the CLI framework, the yardstick
of the targets) and ``python -c "import voxhub"`` (the core package). The commands
run in rounds, one of each per round in turn, so that load on the machine during
the run falls on all of them alike; one warm-up round is not counted. The table
shows medians and the fastest run.

Targets (issue 19): ``voxhub --help`` and ``voxhub providers`` at a median of at
most 150 ms, and at most 3x ``python -c "import click"``.

    python bench/startup.py [--runs 20]

It also shows what ``voxhub providers`` spends importing, by package (``python -X
importtime``, one run): what is left to cut.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import median, table

TARGET_MS = 150.0
TARGET_RATIO = 3.0
BASELINE = 'python -c "import click"'


def _voxhub() -> list[str]:
    script = shutil.which("voxhub", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-c", "from voxhub.cli import main; main()"]


def _run(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def measure(
    commands: dict[str, list[str]], runs: int, env: dict[str, str]
) -> dict[str, list[float]]:
    """``runs`` timings per command, taken in interleaved rounds after one warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(runs + 1):
        for name, argv in commands.items():
            elapsed = _run(argv, env)
            if round_:  # the first round only warms the page cache
                times[name].append(elapsed)
    return times


def import_costs(env: dict[str, str], top: int) -> list[tuple[str, float]]:
    """What ``voxhub providers`` spends importing, by top-level package (self time, ms)."""
    code = "from voxhub.cli import main; main(['providers'])"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    costs: dict[str, float] = {}
    for line in result.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3:
            continue
        own = parts[0].removeprefix("import time:").strip()
        if own.isdigit():
            package = parts[2].strip().split(".")[0]
            costs[package] = costs.get(package, 0.0) + int(own) / 1000
    return sorted(costs.items(), key=lambda c: -c[1])[:top]


def compile_sources(plugins: list[importlib.metadata.EntryPoint]) -> None:
    """Byte-compile voxhub and the plugins, as an installation does.

    With ``PYTHONDONTWRITEBYTECODE`` set (as in CI), sources edited since their
    ``.pyc`` was written would be compiled again in every timed process.
    """
    for name in {"voxhub", *(ep.value.split(":")[0].split(".")[0] for ep in plugins)}:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                compileall.compile_dir(location, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per command (>= 15)")
    parser.add_argument("--quick", action="store_true", help="accepted for run_all (same runs)")
    args = parser.parse_args()
    runs = max(15, args.runs)
    found = list(importlib.metadata.entry_points(group="voxhub"))
    plugins = sorted(ep.dist.name if ep.dist is not None else ep.name for ep in found)
    compile_sources(found)
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOXHUB_")}
        env.update(XDG_CONFIG_HOME=tmp, XDG_DATA_HOME=tmp)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            BASELINE: [sys.executable, "-c", "import click"],
            'python -c "import voxhub"': [sys.executable, "-c", "import voxhub"],
            "voxhub --help": [*_voxhub(), "--help"],
            "voxhub providers": [*_voxhub(), "providers"],
        }
        results = measure(commands, runs, env)
        costs = import_costs(env, 12)
    python = median(results["python -c pass"])
    click = median(results[BASELINE])
    rows = [
        [
            f"`{name}`",
            f"{median(t) * 1000:.0f}",
            f"{min(t) * 1000:.0f}",
            f"{median(t) / python:.1f}x",
            f"{median(t) / click:.2f}x",
        ]
        for name, t in results.items()
    ]
    print(f"### Start-up time (median of {runs} runs per command, fresh processes)\n")
    print(f"Installed plugins: {', '.join(plugins) or 'none'}.\n")
    print(table(["command", "median ms", "min ms", "vs python", "vs import click"], rows))
    print()
    for name in ("voxhub --help", "voxhub providers"):
        ms, ratio = median(results[name]) * 1000, median(results[name]) / click
        met = ms <= TARGET_MS and ratio <= TARGET_RATIO
        print(
            f"- `{name}`: {ms:.0f} ms, {ratio:.2f}x `import click` — target "
            f"<= {TARGET_MS:.0f} ms and <= {TARGET_RATIO:.0f}x: {'met' if met else 'NOT met'}."
        )
    if costs:
        print(
            "\nWhere `voxhub providers` spends its import time, by package (`python -X "
            "importtime`, one run, self times summed):\n"
        )
        print(table(["package", "ms"], [[f"`{n}`", f"{ms:.1f}"] for n, ms in costs]))


if __name__ == "__main__":
    main()
