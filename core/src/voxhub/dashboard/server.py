"""``voxhub dashboard``: serve the dashboard until Ctrl-C or SIGTERM.

It binds to loopback unless told otherwise, prints its URL (and, with
``--allow-actions``, the action token) on stdout, and on Ctrl-C or SIGTERM stops
accepting requests, stops any batch it resumed, closes the store and exits 0.
"""

from __future__ import annotations

import signal
import socket
import threading
from types import FrameType

import click

from ..cli.state import current
from ..errors import InvalidInputError
from ..sandbox_media import is_loopback_host

__all__ = ["dashboard", "hosts_for", "serve"]


def hosts_for(host: str, port: int) -> list[str]:
    """The ``Host`` values the dashboard answers to when bound to ``host:port``."""
    names = {host}
    if is_loopback_host(host):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    return [f"{name}:{port}" for name in sorted(names)]


def serve(host: str, port: int, *, allow_actions: bool) -> None:
    """Run the dashboard over the current command's store until Ctrl-C or SIGTERM."""
    from werkzeug.serving import make_server

    from .app import DashboardApp

    state = current()
    orch = state.orchestrator()
    shown_host = f"[{host}]" if ":" in host else host
    # Bound here, so a busy port is our one-line error (werkzeug would exit on its own);
    # port 0 picks a free one, and the app learns the real address after.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family)
    try:
        server = make_server(
            host, port, lambda e, s: app(e, s), threaded=True, fd=listener.fileno()
        )
    finally:
        listener.close()  # the server holds its own duplicate of the socket
    port = int(server.socket.getsockname()[1])
    app = DashboardApp(orch, hosts=hosts_for(shown_host, port), allow_actions=allow_actions)
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            # shutdown() waits for serve_forever to return: call it from another thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    previous = signal.signal(signal.SIGTERM, stop)
    url = f"http://{shown_host}:{port}/"
    click.echo(f"voxhub dashboard on {url} (store {orch.store.path})")
    if allow_actions:
        click.echo(f"actions enabled; sign in at {url}login with the token {app.token}")
    else:
        click.echo("read-only (--allow-actions enables resume, retry and close)")
    if not is_loopback_host(host):
        click.echo(
            f"warning: {host} is not a loopback address: anyone who can reach it "
            "can read every stored job",
            err=True,
        )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        app.shutdown()
        server.server_close()
        click.echo("dashboard stopped")


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind (loopback unless you mean to share it).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to bind (0 picks a free one; the URL printed says which).",
)
@click.option(
    "--allow-actions",
    is_flag=True,
    help="Enable resume, retry and close (behind the token printed at start).",
)
@click.option(
    "--store",
    help="The job store to show (a SQLite file or a postgresql:// URL); the same as the "
    "global --store, which it overrides.",
)
def dashboard(host: str, port: int, allow_actions: bool, store: str | None) -> None:
    """Serve a web dashboard of the job store: batches, jobs, transcripts with audio.

    Read-only unless --allow-actions. Prints its URL; stops on Ctrl-C or SIGTERM.
    Needs the `dashboard` extra: pip install 'voxhub[dashboard]'.

    \b
    Examples:
      voxhub dashboard
      voxhub dashboard --store jobs.db --port 0 --allow-actions
    """
    try:
        import jinja2  # noqa: F401
    except ImportError:
        raise InvalidInputError(
            "the dashboard needs Jinja2: pip install 'voxhub[dashboard]'", field="dashboard"
        ) from None
    if store is not None:
        state = current()
        state.store, state.store_from = store, "--store"
    try:
        serve(host, port, allow_actions=allow_actions)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", field="port"
        ) from None
