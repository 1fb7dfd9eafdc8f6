"""Run every benchmark and write ``bench/RESULTS.md`` (``nox -s bench`` runs this).

Each benchmark is its own script, run in a fresh process; each measures its baseline
in the same run and reports medians of several repeats. The results file starts with
a description of the machine. ``--quick`` scales every benchmark down (minutes
instead of ~10) and says so at the top of the file; a benchmark that fails is
reported as failed, the others still run.

    python bench/run_all.py [--quick] [--only NAME ...] [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from _common import machine

HERE = Path(__file__).resolve().parent

#: name -> (title, full-run arguments, --quick arguments)
BENCHES: dict[str, tuple[str, list[str], list[str]]] = {
    "overhead": ("Orchestrator overhead", ["overhead.py"], ["overhead.py", "--quick"]),
    "throughput": ("Batch throughput", ["throughput.py"], ["throughput.py", "--quick"]),
    "upload": ("Upload: peak memory and throughput, voxhub vs the official SDK",
               ["revai_upload.py", "--size-mib", "1024", "--runs", "3"],
               ["revai_upload.py", "--size-mib", "128", "--runs", "1"]),
    "startup": ("Start-up", ["startup.py"], ["startup.py"]),
    "polling": ("Polling cost", ["polling.py"], ["polling.py", "--quick"]),
    "listing": ("Job listings on big stores (`voxhub jobs`)",
                ["listing.py", "--repeats", "5"],
                ["listing.py", "--sizes", "2000", "10000", "--repeats", "3"]),
    "scale": ("Scale: threads vs Dask workers, SQLite vs PostgreSQL",
              ["scale.py"], ["scale.py", "--quick"]),
    "local_rtf": ("Local provider real-time factor",
                  ["local_rtf.py", "--minutes", "1", "--repeats", "3"],
                  ["local_rtf.py", "--minutes", "0.5", "--repeats", "1"]),
}

NOTES = """\
Reading these numbers:

- The sandboxes keep HTTP/1.1 connections alive, as the real vendors do. The
  per-job overhead and throughput benchmarks use a Rev.ai-shaped fake in its own
  process that answers at once (`_common.FakeRevai`), so that the clients' own
  cost, not the emulator's, is what they measure.
- voxhub and the SDK loop both make 3 requests per short Rev.ai job (submit,
  status, transcript): the Rev.ai provider reuses the job details its last status
  call read.
- The machine is a shared 2-core VM: absolute times drift between runs (start-up
  most of all); the ratios against the baseline of the same run are what to read.
"""


def run(name: str, quick: bool) -> tuple[str, float]:
    title, full, fast = BENCHES[name]
    argv = fast if quick else full
    script = HERE / argv[0]
    if not script.exists():
        return f"## {title}\n\nSkipped: `bench/{argv[0]}` is not present.\n", 0.0
    print(f"[bench] {name}: {' '.join(argv)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script), *argv[1:]], capture_output=True,
                          text=True, cwd=HERE.parent, timeout=3600)
    seconds = time.monotonic() - started
    body = done.stdout.strip()
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        body = f"**Failed** (exit {done.returncode}):\n\n```\n{tail}\n```"
    # Sub-headings of the scripts nest under this section's heading.
    body = "\n".join(line.replace("## ", "### ", 1) if line.startswith("## ") else line
                     for line in body.splitlines())
    command = f"python bench/{' '.join(argv)}"
    return f"## {title}\n\n`{command}` ({seconds:.0f} s)\n\n{body}\n", seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="scaled-down runs (minutes)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="run only these")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()

    host = machine()
    sections = []
    total = 0.0
    for name in args.only or list(BENCHES):
        text, seconds = run(name, args.quick)
        sections.append(text)
        total += seconds
    mode = ("**Quick run** (`--quick`: every benchmark scaled down; indicative only)"
            if args.quick else "Full run")
    header = [
        "# Benchmark results",
        "",
        f"{mode}, written by `python bench/run_all.py{' --quick' if args.quick else ''}` "
        f"in {total / 60:.1f} min. Everything runs on loopback against the plugins' "
        "sandboxes; each benchmark measures its own baseline in the same run.",
        "",
        "| machine | |",
        "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in host.items()),
        "",
        NOTES,
    ]
    args.out.write_text("\n".join(header) + "\n" + "\n".join(sections), encoding="utf-8")
    print(f"[bench] wrote {args.out} ({total:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
