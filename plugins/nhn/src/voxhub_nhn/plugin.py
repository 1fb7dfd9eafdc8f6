"""voxhub's entry point for this plugin: the ``nhn`` provider, its sandbox, ``voxhub nhn``.

Declarations only: the provider, the emulator and the command are named by
``"module:Name"`` and imported on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
from voxhub.plugin import ProviderInfo, SandboxSpec, hookimpl

from .options import INFO

if TYPE_CHECKING:
    import click


@hookimpl
def register_providers() -> Sequence[ProviderInfo]:
    """The ``nhn`` provider (NHN Cloud Speech-to-Text v2.0/v2.1)."""
    return [attrs.evolve(INFO, entry="voxhub_nhn.provider:NhnProvider")]


@hookimpl
def register_sandboxes() -> Sequence[SandboxSpec]:
    """The NHN emulator (``voxhub sandbox nhn``)."""
    return [
        SandboxSpec(
            "nhn",
            "voxhub_nhn.sandbox:NhnSandbox",
            "NHN Cloud Speech-to-Text v2.0/v2.1: sync, async, status and retry, with result codes",
        )
    ]


@hookimpl
def register_commands(cli: click.Group) -> None:
    """``voxhub nhn retry JOB``: run a FAILED async task again."""
    from voxhub.cli import LazyCommand

    cli.add_command(
        LazyCommand("nhn", "voxhub_nhn.commands:nhn", "NHN Cloud Speech-to-Text commands.")
    )
