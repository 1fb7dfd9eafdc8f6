"""What every ``voxhub`` command shares: the global options, the plugins, the orchestrator.

Nothing heavy is imported here: the plugin manager and the orchestrator (with the
store and the HTTP client) are imported the first time a command asks for them.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import click

from ..errors import InvalidInputError

if TYPE_CHECKING:
    from .._database import PostgresUrl
    from ..orchestrator import Orchestrator
    from ..plugins import PluginManager

__all__ = [
    "SECONDS",
    "Seconds",
    "State",
    "current",
    "echo_json",
    "interactive",
    "loaded_plugins",
    "parse_options",
]


class Seconds(click.ParamType[float]):
    """A time limit in seconds: a finite number above 0 (``-5``, ``0``, ``nan``, ``inf`` refused).

    Every ``--timeout`` (and ``--wait S``) of every command takes this type, so each
    refuses the same values with the same message.
    """

    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float) and math.isfinite(value) and value > 0:
            return value
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{str(value)[:20]!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or seconds <= 0:
            self.fail(
                f"{str(value)[:20]} is not a time limit: give a finite number of seconds above 0",
                param,
                ctx,
            )
        return seconds


#: The type of every ``--timeout`` option.
SECONDS = Seconds()


@attrs.define
class State:
    """The global options of one ``voxhub`` run and what they build, built once."""

    store: str | None
    config: str | None
    debug: bool
    #: Where ``store`` came from, for messages: ``--store`` or ``$VOXHUB_STORE``.
    store_from: str = "--store"
    _orch: Orchestrator | None = None

    @property
    def plugins(self) -> PluginManager:
        return loaded_plugins()

    def orchestrator(self, callback_url: str | None = None) -> Orchestrator:
        """The run's orchestrator, on ``--store`` with ``--config`` (built on first use)."""
        if self._orch is None:
            from ..config import Config
            from ..logging_setup import ensure_default_logging
            from ..orchestrator import Orchestrator
            from ..store import default_store_path

            ensure_default_logging()  # --log-level/--log-format, before anything logs
            config = Config.load(self.config)
            if self.store:
                store = _named_store(self.store, self.store_from)
            elif config.get("store"):
                store = _named_store(str(config.get("store")), "the config's store")
            else:
                store = default_store_path()  # the XDG default: its folder is created
            self._orch = Orchestrator(
                store=store,
                config=config,
                plugins=self.plugins,
                callback_url=callback_url,
            )
        return self._orch

    def close(self) -> None:
        if self._orch is not None:
            self._orch.close_resources()


def _named_store(value: str, source: str) -> Path | PostgresUrl:
    """A store someone named: a ``postgresql://`` URL, or a file whose folder must exist
    (a typo must not create folders)."""
    from .._database import PostgresUrl, is_postgres_url

    if is_postgres_url(value):
        return PostgresUrl(value)
    path = Path(value).expanduser()
    if not path.parent.is_dir():
        raise InvalidInputError(
            f"{source} {value}: the folder {path.parent} does not exist (create it first)",
            field="store",
        )
    return path


def current() -> State:
    """The current run's :class:`State` (a default one for a command run on its own)."""
    found = click.get_current_context().find_object(State)
    return found if found is not None else State(store=None, config=None, debug=False)


_PLUGINS: list[PluginManager] = []


def loaded_plugins() -> PluginManager:
    """Every installed plugin, loaded once per process (commands and orchestrator share it)."""
    if not _PLUGINS:
        from ..plugins import PluginManager

        _PLUGINS.append(PluginManager.load())
    return _PLUGINS[0]


def interactive() -> bool:
    """Whether a person is watching (stderr is a terminal): progress bars and spinners."""
    return sys.stderr.isatty()


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs as a mapping (values stay strings; specs convert them)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            # Only the start is echoed: the rest may be long, or a secret.
            raise InvalidInputError(
                f"--option expects KEY=VALUE, got {pair[:20]!r}...", field="option"
            )
        options[key.strip()] = value
    return options


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON with every secret masked."""
    from ..redact import redact

    click.echo(json.dumps(redact(data), ensure_ascii=False, indent=2, default=str))
