"""voxhub's entry point for this plugin: the ``nhn`` provider, its sandbox, ``voxhub nhn``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import voxhub
from voxhub.provider import Provider
from voxhub.sandbox import SandboxSpec

from .provider import NhnProvider
from .sandbox import SANDBOX_SPEC

if TYPE_CHECKING:
    import click


@voxhub.hookimpl
def register_providers() -> Sequence[Provider]:
    """The ``nhn`` provider (NHN Cloud Speech-to-Text v2.0/v2.1)."""
    return [NhnProvider()]


@voxhub.hookimpl
def register_sandboxes() -> Sequence[SandboxSpec]:
    """The NHN emulator (``voxhub sandbox nhn``)."""
    return [SANDBOX_SPEC]


@voxhub.hookimpl
def register_commands(cli: click.Group) -> None:
    """``voxhub nhn retry JOB``: run a FAILED async task again."""
    from .commands import nhn  # click is only needed when the CLI is used

    cli.add_command(nhn)
