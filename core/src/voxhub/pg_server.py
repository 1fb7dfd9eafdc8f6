"""A throwaway PostgreSQL server for tests: a fresh data directory, loopback only.

It stops by itself: a small watchdog process stops it and deletes its data when the
process that started it ends without calling :meth:`PostgresServer.stop` (a test run
killed with SIGKILL, say), since ``pg_ctl`` leaves the server running on its own.

:meth:`PostgresServer.start` runs the installed server binaries (``initdb``, ``pg_ctl``:
Debian's ``postgresql`` package puts them in ``/usr/lib/postgresql/<version>/bin``, or
name the folder in ``$VOXHUB_PG_BIN``) on ``127.0.0.1`` at a free port, with password
authentication (a random password for the user ``voxhub``), durability settings off
(fsync: a test server's data is thrown away) and no Unix socket. PostgreSQL refuses to
run as root: as root, the server runs as the ``postgres`` user (``runuser``), which owns
the temporary directory.

:meth:`PostgresServer.new_database` creates a database for one test, by default from a
template that already holds the job store's schema (``CREATE DATABASE ... TEMPLATE``:
a file copy, much faster than running the migrations again).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["PostgresServer", "server_binaries"]

_USER = "voxhub"
_TEMPLATE = "voxhub_template"
_SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
"""

# Run as ``python -c WATCHDOG PARENT_PID ROOT PG_CTL_ARGV...``: waits for the parent to
# end, then stops the server and removes its folder.
_WATCHDOG = """
import os, shutil, subprocess, sys, time
parent, root, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
while True:
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break
    except PermissionError:
        pass
    time.sleep(0.5)
subprocess.run(argv, capture_output=True, timeout=60, check=False)
shutil.rmtree(root, ignore_errors=True)
"""


def server_binaries() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: ``$VOXHUB_PG_BIN``, the newest
    ``/usr/lib/postgresql/*/bin``, or wherever ``pg_ctl`` is on ``PATH``."""
    named = os.environ.get("VOXHUB_PG_BIN")
    if named:
        return Path(named)
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(
        "no PostgreSQL server binaries found: install them (Debian: apt-get install "
        "postgresql; `nox -s tests` does it when run as root) or set VOXHUB_PG_BIN"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """A running test server; :meth:`stop` removes it with its data."""

    def __init__(
        self, root: Path, bindir: Path, port: int, password: str, prefix: list[str]
    ) -> None:
        self.root = root
        self.bindir = bindir
        self.port = port
        self.password = password
        self._prefix = prefix  # runuser, as root
        self._count = 0
        # Its own session: a Ctrl-C to the test run's process group leaves it to do its job.
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(root), *self._stop_argv()],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip

    def _stop_argv(self) -> list[str]:
        return [*self._prefix, str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"),
                "-m", "immediate", "-w", "stop"]  # fmt: skip

    @classmethod
    def start(cls) -> PostgresServer:
        """Create a data directory in a new temporary folder and start a server on it."""
        bindir = server_binaries()
        # Not under pytest's folders: the ``postgres`` user must be able to reach it.
        root = Path(tempfile.mkdtemp(prefix="voxhub-pg-"))
        prefix: list[str] = []
        if os.geteuid() == 0:
            prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(root, "postgres")
        password = secrets.token_urlsafe(18)
        pwfile = root / "password"
        pwfile.write_text(password + "\n")
        if prefix:
            shutil.chown(pwfile, "postgres")
        data = root / "data"
        _run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", _USER, "-A",
              "scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-locale",
              "-N"])  # fmt: skip
        pwfile.unlink()
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(_SETTINGS)
        for _attempt in range(3):
            port = _free_port()
            started = subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"),
                 "-w", "-t", "60", "-o", f"-p {port}", "start"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if started.returncode == 0:
                server = cls(root, bindir, port, password, prefix)
                server._make_template()
                return server
        log = (root / "log").read_text(errors="replace")[-2000:]
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"the test PostgreSQL server did not start: {log}")

    def url(self, database: str = "postgres") -> str:
        """The URL of ``database`` on this server, password included."""
        return f"postgresql://{_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.encode())  # names made here, never input

    def _make_template(self) -> None:
        """A database holding the job store's schema, for :meth:`new_database`."""
        import psycopg

        from .store import Store

        self._admin(f"CREATE DATABASE {_TEMPLATE}")
        Store(self.url(_TEMPLATE)).close()
        # The key check is each test's own (each has its own key file).
        with psycopg.connect(self.url(_TEMPLATE), autocommit=True) as conn:
            conn.execute("DELETE FROM voxhub_meta WHERE name='key_check'")

    def new_database(self, *, empty: bool = False) -> str:
        """A new database's URL: with the job store's schema, or ``empty``."""
        self._count += 1
        name = f"test_{self._count}"
        template = "template0" if empty else _TEMPLATE
        self._admin(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`new_database` (closing its connections)."""
        name = url.rsplit("/", 1)[1]
        if name.startswith("test_"):
            self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Stop the server at once and delete its data."""
        self._watchdog.kill()  # stopped here: nothing left for it to do
        self._watchdog.wait()
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(self._stop_argv(), capture_output=True, check=False, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        name = next((Path(arg).name for arg in argv if "/" in arg), argv[0])
        raise RuntimeError(f"{name} failed: {done.stderr[-2000:]}")
