"""The plugin template tutorial (docs/plugin-template.md), followed literally.

``docs/plugins.md`` (the guide to writing a plugin) sends readers in a hurry to
``docs/plugin-template.md``: ``voxhub plugin new``, then test, run and publish.
``STEPS`` are that tutorial's commands, verbatim (a fast test checks the document
still contains each of them). The slow test runs them one by one in a fresh
virtual environment in a temporary directory outside the repository. Only the
mechanics of a terminal are interpreted: ``. .venv/bin/activate`` sets PATH and
VIRTUAL_ENV, ``cd`` changes directory, ``path/to/voxhub`` is this checkout,
``pip install`` gets ``--quiet``, ``voxhub sandbox`` runs in the background (the
tutorial's "second terminal") and ``export`` takes the values it printed.
Dependencies come from the package index pip is configured with (PyPI).
"""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The tutorial's commands, in order, exactly as the document shows them.
STEPS = [
    "python -m venv .venv",
    ". .venv/bin/activate",
    "pip install -e path/to/voxhub/core",
    "voxhub plugin new acme",
    'pip install -e "./voxhub-acme[test]"',
    "cd voxhub-acme",
    "pytest",
    "voxhub providers",
    "voxhub sandbox acme",
    "export VOXHUB_ACME_BASE_URL=",
    "voxhub transcribe https://example.com/hello-world.wav -p acme",
]


TUTORIAL = REPO / "docs" / "plugin-template.md"


def test_steps_are_the_documented_ones() -> None:
    text = TUTORIAL.read_text(encoding="utf-8")
    for step in STEPS:
        assert step in text, f"{TUTORIAL.name} no longer shows {step!r}"
    assert "VOXHUB_ACME_API_KEY=" in text
    guide = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert "(plugin-template.md)" in guide, "the plugin guide links to the template tutorial"


class Author:
    """A terminal: a working directory and an environment, like a new plugin author's."""

    def __init__(self, home: Path) -> None:
        self.cwd = home
        drop = ("VOXHUB_", "PYTHON", "VIRTUAL_ENV", "PYTEST_", "CONDA")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        self.venv: Path | None = None

    def argv(self, step: str) -> list[str]:
        argv = shlex.split(step.replace("path/to/voxhub", str(REPO)))
        if argv[0] == "python" and self.venv is None:
            argv[0] = sys.executable  # the author's own Python, before any venv exists
        if argv[:2] == ["pip", "install"]:
            argv.insert(2, "--quiet")
        found = shutil.which(argv[0], path=self.env["PATH"])
        assert found, f"{argv[0]} is not on PATH"
        if self.venv is not None:
            assert Path(found).parent == self.venv / "bin", f"{argv[0]} is not the venv's"
        return [found, *argv[1:]]

    def run(self, step: str, timeout: float = 240) -> str:
        if step.startswith(". ") and step.endswith("/bin/activate"):
            self.venv = self.cwd / Path(step[2:]).parent.parent
            self.env["VIRTUAL_ENV"] = str(self.venv)
            self.env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{self.env['PATH']}"
            return ""
        if step.startswith("cd "):
            self.cwd = self.cwd / step[3:]
            return ""
        result = subprocess.run(
            self.argv(step),
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"{step}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def start(self, step: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(step),
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )


@pytest.mark.slow
def test_tutorial_end_to_end(tmp_path: Path) -> None:
    author = Author(tmp_path)
    steps = iter(STEPS)
    for step in steps:  # everything up to the tests of the generated plugin
        out = author.run(step)
        if step == "pytest":
            summary = out.strip().splitlines()[-1]
            passed = re.search(r"(\d+) passed", summary)
            assert passed and int(passed.group(1)) >= 8, out
            assert "failed" not in summary and "error" not in summary, out
            break
    assert author.venv is not None and not author.venv.is_relative_to(REPO)

    rows = author.run(next(steps)).splitlines()  # voxhub providers
    acme = [r for r in rows if r.split()[:1] == ["acme"]]
    assert acme and "voxhub-acme 0.1.0" in acme[0] and "[sandbox]" in acme[0], rows

    sandbox = author.start(next(steps))  # voxhub sandbox acme, in "another terminal"
    try:
        assert sandbox.stdout is not None
        ready, _, _ = select.select([sandbox.stdout], [], [], 60)
        assert ready, "voxhub sandbox printed nothing within 60 s"
        line = json.loads(sandbox.stdout.readline())
        assert line["provider"] == "acme"
        assert next(steps).startswith("export VOXHUB_ACME_BASE_URL=")
        author.env["VOXHUB_ACME_BASE_URL"] = line["base_url"]
        author.env["VOXHUB_ACME_API_KEY"] = line["credentials"]["api_key"]
        assert author.run(next(steps), timeout=60).strip() == "hello world"
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=15)
    assert next(steps, None) is None, "every step ran"
