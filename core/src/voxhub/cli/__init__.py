"""The ``voxhub`` command line: a thin layer over :class:`voxhub.Orchestrator`.

Every command builds one orchestrator from the global options (store, config,
logging), calls it, and prints: human-readable text on a terminal, quiet and
parseable text otherwise (``--json`` where it matters). Errors are one line on
stderr and a non-zero exit status; ``--debug`` shows the traceback.

Start-up is kept short: the commands are declared here by name with their one
line of help (:class:`LazyCommand`), and each command's module is imported only
when it runs. Plugins are loaded only when a command needs them, or to list their
commands in ``voxhub --help``.

* :mod:`voxhub.cli.run` — ``transcribe``, ``submit``, ``moderate``;
* :mod:`voxhub.cli.jobs` — ``status``, ``wait``, ``fetch``, ``close``, ``retry``, ``jobs``;
* :mod:`voxhub.cli.batches` — ``batches`` (list, show, resume, manifest);
* :mod:`voxhub.cli.admin` — ``providers``, ``config``, ``sandbox``, ``callbacks``, ``plugin``.
"""

from __future__ import annotations

import sys
import traceback
from typing import NoReturn

import click

from .. import __version__
from ..errors import VoxhubError
from .lazy import LazyCommand, LazyGroup
from .state import State, loaded_plugins

__all__ = ["LazyCommand", "cli", "main"]

#: Commands that normally log nothing: they leave structlog unimported unless they do.
QUIET_COMMANDS = frozenset({"providers", "config", "plugin", "jobs"})

#: (name, "module:attribute", the first line of its help), in the order ``--help`` lists them.
CORE_COMMANDS = (
    (
        "providers",
        "voxhub.cli.admin:providers",
        "List installed providers, their plugin, version, kinds, and plugins that failed to load.",
    ),
    (
        "transcribe",
        "voxhub.cli.run:transcribe",
        "Transcribe files or URLs and print (or write) the transcripts.",
    ),
    ("submit", "voxhub.cli.run:submit", "Submit jobs without waiting; prints one job id per line."),
    (
        "moderate",
        "voxhub.cli.run:moderate",
        "Submit live streams for moderation; prints job ids (or the reports with --wait).",
    ),
    (
        "status",
        "voxhub.cli.jobs:status",
        "Show a job's current status (asks the provider unless it is final).",
    ),
    (
        "wait",
        "voxhub.cli.jobs:wait_cmd",
        "Wait until a job is final; exits non-zero if it failed or the wait timed out.",
    ),
    (
        "fetch",
        "voxhub.cli.jobs:fetch",
        "Print a finished job's result (captions come from the provider when it offers them).",
    ),
    (
        "close",
        "voxhub.cli.jobs:close",
        "Close jobs at their provider (delete or stop); the stored record stays.",
    ),
    (
        "retry",
        "voxhub.cli.jobs:retry",
        "Ask the provider to run a failed job again (same voxhub job, new vendor task).",
    ),
    (
        "jobs",
        "voxhub.cli.jobs:jobs",
        "List stored jobs, newest first, a page at a time (subcommands: show, resume).",
    ),
    (
        "batches",
        "voxhub.cli.batches:batches",
        "List batches with counts per state (subcommands: show, resume, manifest).",
    ),
    (
        "dashboard",
        "voxhub.dashboard.server:dashboard",
        "Serve a web dashboard of the job store: batches, jobs, transcripts with audio.",
    ),
    (
        "config",
        "voxhub.cli.admin:config",
        "Show the configuration (secrets masked) or where it is read from.",
    ),
    (
        "sandbox",
        "voxhub.cli.admin:sandbox",
        "Run vendor emulators on loopback; prints one JSON line per sandbox, serves until ^C.",
    ),
    (
        "callbacks",
        "voxhub.cli.admin:callbacks",
        "Receive provider callbacks (webhooks) into the job store.",
    ),
    (
        "plugin",
        "voxhub.cli.admin:plugin",
        "Write a provider plugin of your own (see docs/plugins.md).",
    ),
)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="voxhub")
@click.option(
    "--store",
    type=click.Path(dir_okay=False),
    envvar="VOXHUB_STORE",
    help="Job store: a SQLite file, or postgresql://user:password@host:port/dbname. "
    "Default: $XDG_DATA_HOME/voxhub/jobs.db.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="VOXHUB_CONFIG",
    help="Config file. Default: $XDG_CONFIG_HOME/voxhub/config.toml.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    envvar="VOXHUB_LOG_LEVEL",
)
@click.option(
    "--log-format",
    type=click.Choice(["console", "json"]),
    default="console",
    show_default=True,
    envvar="VOXHUB_LOG_FORMAT",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(
    ctx: click.Context,
    store: str | None,
    config_path: str | None,
    log_level: str,
    log_format: str,
    debug: bool,
) -> None:
    """Run speech and media jobs on any provider: one CLI, one job store."""
    from ..logging_setup import configure_logging, request_logging

    setup = request_logging if ctx.invoked_subcommand in QUIET_COMMANDS else configure_logging
    setup(log_level, log_format, debug=debug)
    from_env = ctx.get_parameter_source("store") is click.core.ParameterSource.ENVIRONMENT
    ctx.obj = State(
        store=store,
        config=config_path,
        debug=debug,
        store_from="$VOXHUB_STORE" if from_env else "--store",
    )
    ctx.call_on_close(ctx.obj.close)


for _name, _entry, _help in CORE_COMMANDS:
    cli.add_command(LazyCommand(_name, _entry, _help))


def _plugin_commands(group: LazyGroup) -> None:
    try:
        loaded_plugins().register_commands(group)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
        click.echo(f"warning: plugin commands unavailable: {exc}", err=True)


cli.extend = _plugin_commands


def _add_plugin_commands() -> None:
    """Add every plugin's commands to :data:`cli` now (for tools that walk the tree)."""
    cli._extend()


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the ``voxhub`` script.

    Each error ends the run with its one-line message and its own exit status
    (:attr:`voxhub.errors.VoxhubError.exit_code`); ``--debug`` prints the traceback
    before that line and keeps the status.
    """
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="voxhub", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except VoxhubError as exc:
        _fail(f"error: {exc}", exc.exit_code, debug)
    except KeyError as exc:
        _fail(f"error: not found: {exc}", 4, debug)
    except RecursionError:
        # Input nested deeper than any parser here should follow (JSON, TOML): bad input.
        _fail("error: input nested too deeply", 2, debug)
    sys.exit(0)


def _fail(message: str, code: int, debug: bool) -> NoReturn:
    """End the run with ``message`` on stderr and ``code``; with ``--debug`` the traceback
    of the error being handled comes first (the message stays the last line)."""
    if debug:
        traceback.print_exc()
    click.echo(message, err=True)
    sys.exit(code)
