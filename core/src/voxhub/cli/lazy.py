"""Commands declared by name and imported when they run.

``voxhub --help`` lists every command, the plugins' included, from one-line help
texts declared up front; a command's module (and whatever it imports: the
orchestrator, the store, HTTP) is imported only when that command runs or its own
``--help`` is asked for. See :func:`voxhub.hookspecs.register_commands`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..errors import PluginError
from ..lazy import check_entry, load_entry

__all__ = ["LazyCommand", "LazyGroup", "OrderedGroup"]


class LazyCommand(click.Command):
    """A command named by ``"package.module:attribute"``, imported on first use.

    ``help`` is the first line of the command's help, shown (shortened to fit, as
    click does) in the parent's command list; ``voxhub NAME --help`` shows the real
    command's full help.
    """

    def __init__(self, name: str, entry: str, help: str, *, hidden: bool = False) -> None:
        super().__init__(name, help=help, hidden=hidden)
        self.entry = check_entry(entry, field=f"command {name!r}")
        self._loaded: click.Command | None = None

    def load(self) -> click.Command:
        """The real command (imported now if it was not yet)."""
        if self._loaded is None:
            try:
                command = load_entry(self.entry)
            except Exception as exc:
                raise PluginError(
                    f"command {self.name!r} failed to load from {self.entry!r}: "
                    f"{type(exc).__name__}: {exc}",
                    operation="command",
                ) from exc
            if not isinstance(command, click.Command):
                raise PluginError(
                    f"command {self.name!r}: {self.entry!r} is {type(command).__name__}, "
                    "not a click command",
                    operation="command",
                )
            self._loaded = command
        return self._loaded

    # Everything that needs the real command's parameters or callback goes to it.

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        return self.load().make_context(info_name, args, parent=parent, **extra)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        return self.load().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        return self.load().invoke(ctx)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return self.load().get_params(ctx)

    def get_help(self, ctx: click.Context) -> str:
        return self.load().get_help(ctx)

    def to_info_dict(self, ctx: click.Context) -> dict[str, Any]:
        return self.load().to_info_dict(ctx)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        return self.load().shell_complete(ctx, incomplete)


class OrderedGroup(click.Group):
    """Lists commands in the order they were added (most used first)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


class LazyGroup(OrderedGroup):
    """The ``voxhub`` group: core commands declared lazily, plugin commands on demand.

    ``extend`` adds the plugins' commands; it runs only when they are needed: to
    list all commands (``voxhub --help``) or to find a name that is not a core
    command. Running a core command loads no plugin.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extend: Callable[[LazyGroup], None] | None = None
        self._core: frozenset[str] | None = None

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if self._core is not None and name in self._core:
            raise ValueError(f"{name!r} is a voxhub command; a plugin cannot replace it")
        super().add_command(cmd, name)

    def _extend(self) -> None:
        if self._core is None:
            self._core = frozenset(self.commands)
            if self.extend is not None:
                self.extend(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._extend()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            self._extend()
        command = self.commands.get(cmd_name)
        return command.load() if isinstance(command, LazyCommand) else command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's version calls get_command for each row, which would import every
        # command's module just to print one line of help per command.
        rows = [
            (name, command)
            for name in self.list_commands(ctx)
            if (command := self.commands.get(name)) is not None and not command.hidden
        ]
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in rows])
