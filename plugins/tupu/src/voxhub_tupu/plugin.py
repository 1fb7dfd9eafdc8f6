"""The voxhub plugin module of ``voxhub-tupu`` (entry point ``tupu`` in group ``voxhub``)."""

from __future__ import annotations

from collections.abc import Sequence

import click
from voxhub.hookspecs import hookimpl
from voxhub.provider import Provider
from voxhub.sandbox import SandboxSpec

from .cli import tupu_group
from .provider import TupuProvider
from .sandbox import SANDBOX_SPEC

__all__ = ["register_commands", "register_providers", "register_sandboxes"]


@hookimpl
def register_providers() -> Sequence[Provider]:
    """The ``tupu`` provider."""
    return [TupuProvider()]


@hookimpl
def register_sandboxes() -> Sequence[SandboxSpec]:
    """The ``tupu`` sandbox (``voxhub sandbox tupu``)."""
    return [SANDBOX_SPEC]


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``voxhub tupu keygen``."""
    cli.add_command(tupu_group)
