"""Developer tasks: ``nox -s tests`` (what CI runs), ``lint``, ``typecheck``, ``docs``, ``bench``.

Every session installs the core, every plugin under ``plugins/`` and the test-only
plugins under ``tests/plugins/`` in editable mode, so entry points are real.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def packages() -> list[str]:
    """Editable install arguments for the core and every plugin (found, not listed by hand)."""
    plugins = sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))
    test_plugins = sorted(p.parent for p in ROOT.glob("tests/plugins/*/pyproject.toml"))
    args = ["-e", f"{ROOT / 'core'}[test,dask,dashboard]"]
    for path in [*plugins, *test_plugins]:
        args += ["-e", str(path) + EXTRAS.get(path.relative_to(ROOT).as_posix(), "")]
    return args


#: Optional parts the tests exercise: voxhub-local's PocketSphinx engine is an extra.
EXTRAS = {"plugins/local": "[pocketsphinx]"}


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (core, every plugin, cross-plugin)."""
    # rev-ai: the official SDK, for fidelity tests; ruff and mypy: the template tests check
    # that generated plugins are lint-clean and typed.
    session.install(*packages(), "rev-ai", "ruff", "mypy", "playwright")
    browser_for_dashboard_tests(session)
    session.run("pytest", *(session.posargs or ["-q", "--durations=15"]))


#: The browser the dashboard tests drive (Playwright from PyPI, Debian's Chromium).
CHROMIUM = Path("/usr/bin/chromium")


def browser_for_dashboard_tests(session: nox.Session) -> None:
    """Install Debian's ``chromium`` when it is missing (as root); the tests need it."""
    if CHROMIUM.exists():
        return
    if os.geteuid() != 0:
        session.error(f"{CHROMIUM} is missing: install Debian's chromium package (as root)")
    session.run("apt-get", "update", external=True)
    session.run("apt-get", "install", "-y", "--no-install-recommends", "chromium",
                external=True, env={"DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole repository."""
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the core and every plugin's source."""
    session.install(*packages(), "mypy")
    sources = ["core/src", *sorted(str(p) for p in ROOT.glob("plugins/*/src"))]
    for source in sources:
        session.run("mypy", "--strict", source, env={"MYPYPATH": source})


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors."""
    session.install(*packages(), "mkdocs", "mkdocs-material", "mkdocstrings[python]")
    session.run("python", "docs/gen_reference.py")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks; results go to bench/RESULTS.md."""
    session.install(*packages(), "rev-ai")
    session.run("python", "bench/run_all.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The quick start: offline transcription, then the Rev.ai lifecycle against its sandbox."""
    session.install("-e", str(ROOT / "core"), "-e", str(ROOT / "plugins/local"),
                    "-e", str(ROOT / "plugins/revai"))
    session.run("python", "docs/demo.py")
