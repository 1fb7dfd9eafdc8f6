"""Developer tasks: ``nox -s tests`` (what CI runs), ``lint``, ``typecheck``, ``docs``, ``bench``.

Every session installs the core, every plugin under ``plugins/`` and the test-only
plugins under ``tests/plugins/`` in editable mode, so entry points are real.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def packages() -> list[str]:
    """Editable install arguments for the core and every plugin (found, not listed by hand)."""
    plugins = sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))
    test_plugins = sorted(p.parent for p in ROOT.glob("tests/plugins/*/pyproject.toml"))
    args = ["-e", f"{ROOT / 'core'}[test,postgres,dask,dashboard]"]
    for path in [*plugins, *test_plugins]:
        args += ["-e", str(path) + EXTRAS.get(path.relative_to(ROOT).as_posix(), "")]
    return args


#: Optional parts the tests exercise: voxhub-local's PocketSphinx engine is an extra.
EXTRAS = {"plugins/local": "[pocketsphinx]"}


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (core, every plugin, cross-plugin)."""
    system_packages(session)
    # rev-ai: the official SDK, for fidelity tests; ruff and mypy: the template tests check
    # that generated plugins are lint-clean and typed.
    session.install(*packages(), "rev-ai", "ruff", "mypy", "playwright")
    session.run("pytest", *(session.posargs or ["-q", "--durations=15"]))


#: The browser the dashboard tests drive (Playwright from PyPI, Debian's Chromium).
CHROMIUM = Path("/usr/bin/chromium")


def _has_postgres_server() -> bool:
    return bool(
        Path("/usr/lib/postgresql").is_dir()
        or shutil.which("pg_ctl")
        or os.environ.get("VOXHUB_PG_BIN")
    )


def system_packages(session: nox.Session) -> None:
    """Install the Debian packages the tests start for real when they are missing (as
    root, with apt): PostgreSQL's server (voxhub.pg_server starts a throwaway one) and
    Chromium (the dashboard tests drive it). Nothing is skipped without them."""
    wanted = {"postgresql": _has_postgres_server(), "chromium": CHROMIUM.exists()}
    missing = [package for package, present in wanted.items() if not present]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        session.error(
            f"the tests need Debian's {' and '.join(missing)}: install them (apt-get install "
            f"{' '.join(missing)}), or set VOXHUB_PG_BIN to PostgreSQL's binaries"
        )
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run_always("apt-get", "update", "-q", external=True, env=env)
    session.run_always("apt-get", "install", "-y", "-q", "--no-install-recommends", *missing,
                       external=True, env=env)  # fmt: skip


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
