"""Commands about the installation: ``providers``, ``config``, ``sandbox``, ``callbacks``,
``plugin``.

``voxhub providers`` and ``voxhub config`` read plugin metadata only: they import
no provider code, store or HTTP client (see :mod:`voxhub.plugins`).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .lazy import OrderedGroup
from .state import current, echo_json

if TYPE_CHECKING:
    from ..sandbox_server import RunningSandbox

__all__ = ["callbacks", "config", "plugin", "providers", "sandbox"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def providers(as_json: bool) -> None:
    """List installed providers, their plugin, version, kinds, and plugins that failed to load."""
    rows = current().plugins.list_plugins()
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no providers installed (pip install voxhub-local for offline transcription)")
        return
    for row in rows:
        if row["error"]:
            click.echo(f"!  {row['plugin']} ({row['distribution'] or '?'}): {row['error']}")
            continue
        dist = f"{row['distribution']} {row['version']}" if row["distribution"] else "-"
        sandbox = "  [sandbox]" if row["sandbox"] else ""
        click.echo(f"{row['provider']:<18} {','.join(row['kinds']):<24} {dist}{sandbox}")


# --- config ----------------------------------------------------------------------------


@click.group(cls=OrderedGroup)
def config() -> None:
    """Show the configuration (secrets masked) or where it is read from."""


@config.command("show")
def config_show() -> None:
    """Print the effective configuration with every secret masked."""
    from ..config import Config

    infos = {name: entry.info for name, entry in current().plugins.providers.items()}
    echo_json(Config.load(current().config).masked(infos))


@config.command("path")
def config_path() -> None:
    """Print the config file and job store locations."""
    from .._database import store_target
    from ..config import default_config_path
    from ..store import default_store_path

    run = current()
    click.echo(f"config: {run.config or default_config_path()}")
    # A PostgreSQL URL prints with its password masked.
    click.echo(f"store:  {store_target(run.store) if run.store else default_store_path()}")


# --- sandbox ----------------------------------------------------------------------------


@click.command()
@click.argument("providers_", metavar="[PROVIDER]...", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port of the first sandbox (0 = ephemeral); the next ones use the next ports.",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An emulator setting (JSON value), e.g. processing_seconds=0 for the Rev.ai sandbox.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KEY=VALUE",
    help="Fault injection, e.g. rate_limited=0.1 server_error=0.05 drop=0.02.",
)
def sandbox(
    providers_: tuple[str, ...],
    host: str,
    port: int,
    faults: tuple[str, ...],
    options: tuple[str, ...],
) -> None:
    """Run vendor emulators on loopback; prints one JSON line per sandbox, serves until ^C."""
    from ..errors import ConfigurationError
    from ..logging_setup import ensure_default_logging
    from ..sandbox import FaultPlan, serve

    ensure_default_logging()  # the servers log each request at debug level
    plugins = current().plugins
    names = list(providers_) or sorted(plugins.sandboxes)
    if not names:
        raise click.UsageError("no sandboxes are installed")
    plan = _fault_plan(FaultPlan, faults) if faults else None
    knobs = _pairs("--option", options)
    running: list[RunningSandbox] = []
    stop = threading.Event()
    # Installed before anything is announced, so a SIGTERM right after the JSON line
    # stops the sandboxes cleanly (exit 0) instead of killing the process.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for index, name in enumerate(names):
            try:
                spec = plugins.sandbox(name)
            except ConfigurationError as exc:
                raise click.UsageError(str(exc)) from None
            server = serve(_create(spec, plan, knobs), host, port + index if port else 0)
            running.append(server)
            click.echo(json.dumps(server.announce()))
        sys.stdout.flush()
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        for server in running:
            server.stop()


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return value


def _pairs(flag: str, items: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` arguments as a mapping (JSON values, else text); a usage error if malformed."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"{flag} {item[:40]!r}: expected KEY=VALUE")
        out[key.strip()] = _json_or_text(value)
    return out


def _fault_plan(plan_type: Any, faults: tuple[str, ...]) -> Any:
    """The ``--fault`` settings as a FaultPlan, each checked against the field's type."""
    import attrs

    fields = {f.name: f.default for f in attrs.fields(plan_type)}
    data = _pairs("--fault", faults)
    for key, value in data.items():
        if key not in fields:
            raise click.UsageError(
                f"--fault {key}: unknown fault setting (known: {', '.join(sorted(fields))})"
            )
        default = fields[key]
        if isinstance(default, tuple) or (default is None and key != "seed"):
            ok = isinstance(value, list) and all(
                isinstance(v, type(default[0]) if default else str) for v in value
            )
            expected = "a JSON list"
        elif key == "seed":
            ok = isinstance(value, int) and not isinstance(value, bool)
            expected = "an integer"
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
            expected = "a non-negative number"
            if ok and key not in {"retry_after", "slow_seconds"} and value > 1:
                ok, expected = False, "a share between 0 and 1"
        if not ok:
            raise click.UsageError(f"--fault {key}: expected {expected}, got {str(value)[:40]!r}")
    return plan_type.from_dict(data)


def _create(spec: Any, plan: Any, knobs: dict[str, Any]) -> Any:
    """Build one sandbox; settings it does not take or cannot use are a usage error."""
    import inspect

    from ..lazy import load_entry

    factory = spec.factory
    if knobs:
        try:
            target = load_entry(factory) if isinstance(factory, str) else factory
            params = inspect.signature(target).parameters
        except Exception:  # noqa: BLE001 - spec.create below reports a broken plugin
            params = None
        if params is not None and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            for key, value in knobs.items():
                if key not in params or key == "faults":
                    known = ", ".join(sorted(k for k in params if k != "faults"))
                    raise click.UsageError(
                        f"--option {key}: the {spec.provider} sandbox has no such setting "
                        f"(known: {known})"
                    )
                default = params[key].default
                if not _same_kind(default, value):
                    raise click.UsageError(
                        f"--option {key}: expected {_kind_name(default)}, "
                        f"got {str(value)[:40]!r}"
                    )
    try:
        return spec.create(faults=plan, **knobs)
    except (ValueError, TypeError) as exc:
        raise click.UsageError(f"--option: the {spec.provider} sandbox refused: {exc}") from None


def _same_kind(default: Any, value: Any) -> bool:
    """Whether ``value`` has the type of a parameter's default (unknown defaults accept any)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, tuple | list):
        return isinstance(value, list)
    return True


def _kind_name(default: Any) -> str:
    for kind, name in ((bool, "true or false"), (int, "a number"), (float, "a number"),
                       (str, "text"), (tuple, "a JSON list"), (list, "a JSON list")):
        if isinstance(default, kind):
            return name
    return "a value"


@click.group(cls=OrderedGroup)
def callbacks() -> None:
    """Receive provider callbacks (webhooks) into the job store."""


@callbacks.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--public-url",
    help="The URL providers reach this receiver at (e.g. behind a proxy), shown in the "
    "startup line. Processes that submit jobs read it from [voxhub] callback_url or "
    "VOXHUB_CALLBACK_URL: set it there too.",
)
def callbacks_serve(host: str, port: int, public_url: str | None) -> None:
    """Run the callback receiver until interrupted; prints one JSON line when listening.

    Several receivers may share one store (behind a load balancer, on a PostgreSQL store
    when on several machines): any of them takes any job's callbacks, and a delivery
    given to two at once is stored once (see docs/scale.md).
    """
    from werkzeug.serving import make_server

    from ..callbacks import CallbackHandler, wsgi_app
    from ..sandbox import QuietRequestHandler

    orch = current().orchestrator(callback_url=public_url)
    # The quiet handler keeps per-job callback tokens (in the URL path) out of stderr.
    server = make_server(
        host,
        port,
        wsgi_app(CallbackHandler(orch)),
        threaded=True,
        request_handler=QuietRequestHandler,
    )
    listening = f"http://{host if ':' not in host else f'[{host}]'}:{server.server_port}"
    # The store shows masked: a receiver's operator checks every receiver uses the same one.
    click.echo(json.dumps({"listening": listening, "public_url": orch.callback_url or listening,
                           "store": str(orch.store.path)}))
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# --- plugin authoring ------------------------------------------------------------------


@click.group(cls=OrderedGroup)
def plugin() -> None:
    """Write a provider plugin of your own (see docs/plugins.md)."""


@plugin.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    help="Where to create voxhub-NAME/ (default: the current directory).",
)
@click.option("--force", is_flag=True, help="Overwrite the generated files in voxhub-NAME/.")
def plugin_new(name: str, directory: Path, force: bool) -> None:
    """Generate voxhub-NAME/, a working plugin to turn into yours.

    It holds a provider of a small fictional job API, the sandbox emulating that
    API, tests (voxhub's conformance suite) and packaging. NAME is the provider's
    name: lower-case letters, digits and dashes (e.g. acme).
    """
    from ..scaffold import ScaffoldError, new_plugin, next_steps

    try:
        target = new_plugin(name, directory, force=force)
    except ScaffoldError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(next_steps(target, name))
