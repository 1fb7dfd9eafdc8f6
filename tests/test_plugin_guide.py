"""The plugin guide's tutorial (docs/plugins.md) is code that works.

Every fenced code block of the guide that has a file name (``title="src/..."``) is
written into a fresh project, which is then made importable with its real
``voxhub`` entry point (a dist-info in a temporary site directory, as
``tests/test_scaffold.py`` does for the template: offline and instant). The Parrot
plugin's own tests run in a subprocess, and its package must be ruff-clean under the
template's rule set and ``mypy --strict`` clean. Editing the guide's code so that it
breaks fails here.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest
from voxhub.scaffold import render_plugin

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "plugins.md"
BIN = Path(sys.executable).parent
PACKAGE = "src/voxhub_parrot"

#: The files the tutorial builds, each shown once in the guide.
EXPECTED = {
    "pyproject.toml",
    f"{PACKAGE}/options.py",
    f"{PACKAGE}/plugin.py",
    f"{PACKAGE}/api.py",
    f"{PACKAGE}/provider.py",
    f"{PACKAGE}/sandbox.py",
    "tests/test_parrot.py",
    "tests/test_conformance.py",
}

#: What each part of the plugin may import from voxhub: the kit's modules only.
ALLOWED_VOXHUB = {
    "src": {"voxhub.plugin"},
    "sandbox": {"voxhub.plugin", "voxhub.sandbox_kit"},
    "tests": {"voxhub.plugin", "voxhub.testing"},
}

# An opening fence with a title, at any indentation (admonitions indent theirs).
_FENCE = re.compile(r'^(?P<indent>[ \t]*)```\w+ title="(?P<title>[^"]+)"[^\n]*$')


def guide_files(text: str) -> dict[str, str]:
    """The titled code blocks of ``text``: file name -> contents, dedented."""
    files: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        i += 1
        if opened is None:
            continue
        indent, title = opened["indent"], opened["title"]
        body: list[str] = []
        while i < len(lines) and lines[i].rstrip() != f"{indent}```":
            body.append(lines[i].removeprefix(indent))
            i += 1
        assert i < len(lines), f"the block {title!r} is never closed"
        i += 1
        assert title not in files, f"the guide shows {title!r} twice"
        files[title] = "\n".join(body).rstrip("\n") + "\n"
    return files


def test_the_guide_shows_every_file_of_the_plugin() -> None:
    files = guide_files(GUIDE.read_text(encoding="utf-8"))
    assert set(files) == EXPECTED


def test_extraction_reads_indented_blocks_and_refuses_open_ones() -> None:
    text = '!!! note\n    ```python title="a.py"\n    x = 1\n\n        y = 2\n    ```\n'
    assert guide_files(text) == {"a.py": "x = 1\n\n    y = 2\n"}
    with pytest.raises(AssertionError, match="never closed"):
        guide_files('```toml title="b.toml"\nx = 1\n')


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial's plugin, written from the guide into a fresh directory."""
    root = tmp_path_factory.mktemp("guide") / "voxhub-parrot"
    for name, text in guide_files(GUIDE.read_text(encoding="utf-8")).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / PACKAGE / "__init__.py").write_text("")  # "empty", as the guide's tree says
    return root


def install_for_tests(plugin: Path, site: Path) -> None:
    """A dist-info with the plugin's ``voxhub`` entry points, like an editable install."""
    project = tomllib.loads((plugin / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = [f"{k} = {v}" for k, v in project["entry-points"]["voxhub"].items()]
    (info / "entry_points.txt").write_text("[voxhub]\n" + "\n".join(lines) + "\n")


def tool(name: str) -> str:
    """A developer tool of this environment (ruff, mypy)."""
    found = BIN / name
    if found.exists():
        return str(found)
    which = shutil.which(name)
    assert which is not None, f"{name} is not installed in {BIN}"
    return which


def voxhub_imports(path: Path) -> set[str]:
    """Every ``voxhub`` module ``path`` imports (``voxhub_parrot`` is not one)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "voxhub" or m.startswith("voxhub.")}


def test_the_plugin_imports_only_the_kit(project: Path) -> None:
    for path in sorted(project.rglob("*.py")):
        part = path.parent.name if path.parent.name == "tests" else "src"
        part = "sandbox" if path.name == "sandbox.py" else part
        extra = voxhub_imports(path) - ALLOWED_VOXHUB[part]
        assert not extra, f"{path.relative_to(project)} imports {sorted(extra)}"


@pytest.mark.slow
def test_the_plugin_passes_its_own_tests(project: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_for_tests(project, site)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VOXHUB_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(project / "src")])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "tests"],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    assert not re.search(r"failed|error|skipped|xfail", summary), summary
    passed = set(re.findall(r"::(\w+)(?:\[[^\]]*\])? PASSED", output))
    own = re.findall(r"^def (test_\w+)", (project / "tests/test_parrot.py").read_text(), re.M)
    assert own and set(own) <= passed, f"not all of {own} passed"
    assert "test_lifecycle_and_idempotent_calls" in passed, "the conformance suite ran"
    assert "test_rate_limits_and_server_errors_are_retried_then_mapped" in passed


def test_the_plugin_is_ruff_clean(project: Path) -> None:
    # The rule set of the generated template, so the guide and the template agree.
    ruff = tomllib.loads(render_plugin("parrot")[PurePosixPath("pyproject.toml")])["tool"]["ruff"]
    lint = ruff["lint"]
    args = [
        "--isolated",
        "--no-cache",
        f"--line-length={ruff['line-length']}",
        f"--target-version={ruff['target-version']}",
        f"--select={','.join(lint['select'])}",
        f"--ignore={','.join(lint['ignore'])}",
        *(
            f"--per-file-ignores={pattern}:{','.join(codes)}"
            for pattern, codes in lint["per-file-ignores"].items()
        ),
    ]
    result = subprocess.run(
        [tool("ruff"), "check", *args, "."],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_plugin_is_typed(project: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [tool("mypy"), "--strict", "--cache-dir", str(tmp_path / "mypy-cache"), PACKAGE],
        capture_output=True,
        text=True,
        cwd=project,
        env={**os.environ, "MYPYPATH": "src"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
