"""What every ``voxhub`` command shares: the global options, the plugins, the orchestrator.

Nothing heavy is imported here: the plugin manager and the orchestrator (with the
store and the HTTP client) are imported the first time a command asks for them.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import attrs
import click

from ..errors import InvalidInputError

if TYPE_CHECKING:
    from ..orchestrator import Orchestrator
    from ..plugins import PluginManager

__all__ = ["State", "current", "echo_json", "interactive", "loaded_plugins", "parse_options"]


@attrs.define
class State:
    """The global options of one ``voxhub`` run and what they build, built once."""

    store: str | None
    config: str | None
    debug: bool
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
            self._orch = Orchestrator(
                store=self.store or config.get("store") or default_store_path(),
                config=config,
                plugins=self.plugins,
                callback_url=callback_url,
            )
        return self._orch

    def close(self) -> None:
        if self._orch is not None:
            self._orch.close_resources()


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
