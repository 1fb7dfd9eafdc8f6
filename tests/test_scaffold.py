"""`voxhub plugin new`: names, refusals, and a generated plugin that passes its own tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from voxhub.cli import cli
from voxhub.scaffold import (
    MAX_NAME_LENGTH,
    ScaffoldError,
    new_plugin,
    plugin_names,
    render_plugin,
)

BIN = Path(sys.executable).parent
VOXHUB = str(BIN / "voxhub")
REPO = Path(__file__).resolve().parents[1]
LONGEST = "x-long-vendor-name-for-speech-ab"  # MAX_NAME_LENGTH characters

EXPECTED_FILES = {
    ".gitignore",
    "README.md",
    "pyproject.toml",
    "src/voxhub_acme_speech/__init__.py",
    "src/voxhub_acme_speech/api.py",
    "src/voxhub_acme_speech/options.py",
    "src/voxhub_acme_speech/plugin.py",
    "src/voxhub_acme_speech/provider.py",
    "src/voxhub_acme_speech/py.typed",
    "src/voxhub_acme_speech/sandbox.py",
    "tests/test_conformance.py",
}


def tool(name: str) -> str:
    """A developer tool of this environment (ruff, mypy), or skip the test."""
    found = BIN / name
    if found.exists():
        return str(found)
    which = shutil.which(name)
    if which is None:
        pytest.skip(f"{name} is not installed")
    return which


def install_for_tests(plugin: Path, site: Path) -> None:
    """Make ``plugin`` importable with its real entry point, like an editable install.

    A dist-info built from the generated pyproject.toml (name, version, the
    ``voxhub`` entry points) goes into ``site``; the package's ``src`` is put on
    PYTHONPATH by the caller. Offline and instant, unlike a pip install.
    """
    project = tomllib.loads((plugin / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = [f"{k} = {v}" for k, v in project["entry-points"]["voxhub"].items()]
    (info / "entry_points.txt").write_text("[voxhub]\n" + "\n".join(lines) + "\n")


# --- names ---------------------------------------------------------------------------


def test_names_derived_from_the_plugin_name() -> None:
    assert len(LONGEST) == MAX_NAME_LENGTH
    names = plugin_names("acme-speech2")
    assert names.distribution == "voxhub-acme-speech2"
    assert names.module == "voxhub_acme_speech2"
    assert names.class_prefix == "AcmeSpeech2"
    assert names.title == "Acme Speech2"
    assert names.env == "ACME_SPEECH2"
    assert names.values()["voxhub_requirement"] == ">=0.1"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty"),
        ("Acme", "try 'acme'"),
        ("acme_speech", "try 'acme-speech'"),
        ("acme speech", "try 'acme-speech'"),
        ("1acme", "starting with a letter"),
        ("acme-", "single dashes"),
        ("-acme", "single dashes"),
        ("acme--speech", "single dashes"),
        ("acmé", "lower-case letters"),
        ("voxhub-acme", "without the 'voxhub-' prefix"),
        ("voxhub_acme", "without the 'voxhub_' prefix"),
        ("a" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH}"),
    ],
)
def test_invalid_names_are_refused(name: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match=re.escape(message)):
        new_plugin(name, tmp_path)
    assert list(tmp_path.iterdir()) == [], "nothing is written for a refused name"


# --- what is generated -------------------------------------------------------------------


def test_generated_tree_and_packaging(tmp_path: Path) -> None:
    target = new_plugin("acme-speech", tmp_path)
    assert target == tmp_path / "voxhub-acme-speech"
    found = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    assert found == EXPECTED_FILES
    for path in target.rglob("*"):
        if path.is_file():
            assert "$" not in path.read_text(), f"unsubstituted placeholder in {path}"
    meta = tomllib.loads((target / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["name"] == "voxhub-acme-speech"
    assert project["dependencies"] == ["voxhub>=0.1"]
    assert project["optional-dependencies"]["test"] == ["pytest>=8"]
    assert project["entry-points"]["voxhub"] == {"acme-speech": "voxhub_acme_speech.plugin"}
    assert meta["build-system"]["build-backend"] == "hatchling.build"
    assert meta["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [
        "src/voxhub_acme_speech"
    ]
    readme = (target / "README.md").read_text()
    for needle in ("python -m build", "twine upload", "pytest", "VOXHUB_ACME_SPEECH_API_KEY"):
        assert needle in readme
    provider = (target / "src/voxhub_acme_speech/provider.py").read_text()
    assert "class AcmeSpeechProvider(Provider)" in provider
    assert "replace with your vendor's API" in provider
    sandbox = (target / "src/voxhub_acme_speech/sandbox.py").read_text()
    assert "replace with your vendor's API" in sandbox
    tests = (target / "tests/test_conformance.py").read_text()
    assert "class TestAcmeSpeechConformance(ProviderConformance)" in tests


def test_render_matches_what_is_written(tmp_path: Path) -> None:
    target = new_plugin("acme", tmp_path)
    for relative, text in render_plugin("acme").items():
        assert (target / relative).read_text() == text


def test_existing_directory_is_refused_unless_forced(tmp_path: Path) -> None:
    target = new_plugin("acme", tmp_path)
    provider = target / "src/voxhub_acme/provider.py"
    provider.write_text("# my edits\n")
    (target / "NOTES.md").write_text("mine\n")
    with pytest.raises(ScaffoldError, match=r"already exists.*--force"):
        new_plugin("acme", tmp_path)
    assert provider.read_text() == "# my edits\n"
    new_plugin("acme", tmp_path, force=True)
    assert "class AcmeProvider" in provider.read_text(), "--force rewrites generated files"
    assert (target / "NOTES.md").read_text() == "mine\n", "--force leaves other files alone"
    (tmp_path / "voxhub-plain").write_text("")
    with pytest.raises(ScaffoldError, match="is not a directory"):
        new_plugin("plain", tmp_path, force=True)


def test_cli_generates_and_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, ["plugin", "new", *args])

    made = run("acme")
    assert made.exit_code == 0, made.output
    assert (tmp_path / "voxhub-acme/src/voxhub_acme/provider.py").is_file()
    assert 'pip install -e "./voxhub-acme[test]"' in made.stdout
    again = run("acme")
    assert again.exit_code == 2
    assert "voxhub-acme already exists" in again.stderr and "--force" in again.stderr
    assert run("acme", "--force").exit_code == 0
    bad = run("Acme_Co")
    assert bad.exit_code == 2 and "invalid plugin name 'Acme_Co'" in bad.stderr
    elsewhere = run("acme", "--dir", "out/plugins")
    assert elsewhere.exit_code == 0, elsewhere.output
    assert (tmp_path / "out/plugins/voxhub-acme/pyproject.toml").is_file()


def test_the_voxhub_script_has_the_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [VOXHUB, "plugin", "new", "acme", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "VOXHUB_LOAD_PLUGINS": ""},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"created {tmp_path.as_posix()}/voxhub-acme/")


# --- the generated code --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["acme", "a", LONGEST])
def test_generated_code_is_ruff_clean(name: str, tmp_path: Path) -> None:
    ruff = tool("ruff")
    target = new_plugin(name, tmp_path)
    # The generated pyproject.toml carries the rule set; --isolated would drop it.
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        result = subprocess.run(
            [ruff, *args], capture_output=True, text=True, cwd=target, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_generated_code_is_typed(tmp_path: Path) -> None:
    mypy = tool("mypy")
    target = new_plugin(LONGEST, tmp_path)
    result = subprocess.run(
        [mypy, "--strict", "--cache-dir", str(tmp_path / "mypy-cache"), "src", "tests"],
        capture_output=True,
        text=True,
        cwd=target,
        env={**os.environ, "MYPYPATH": "src"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_generated_plugin_passes_its_own_tests(tmp_path: Path) -> None:
    target = new_plugin("acme", tmp_path / "work")
    site = tmp_path / "site"
    install_for_tests(target, site)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VOXHUB_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(target / "src")])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v"],
        capture_output=True,
        text=True,
        cwd=target,
        env=env,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 8, summary
    assert not re.search(r"failed|error|skipped", summary), summary
    ran = re.findall(r"::TestAcmeConformance::(\w+)\S* PASSED", output)
    assert "test_lifecycle_and_idempotent_calls" in ran, "the conformance suite itself ran"
    assert len(ran) >= 8, ran


@pytest.mark.slow
def test_wheel_ships_the_templates(tmp_path: Path) -> None:
    """A non-editable install has the templates too (hatchling includes package data)."""
    wheel_dir = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheel_dir), "./core"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    if result.returncode != 0 and "hatchling" in result.stderr:
        pytest.skip("the build backend cannot be installed here (offline?)")
    assert result.returncode == 0, result.stderr
    (wheel,) = wheel_dir.glob("voxhub-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    templates = {n for n in names if n.startswith("voxhub/templates/plugin/")}
    assert "voxhub/templates/plugin/src/__module__/provider.py.tmpl" in templates
    assert len(templates) == len(render_plugin("acme")), "one template per generated file"
