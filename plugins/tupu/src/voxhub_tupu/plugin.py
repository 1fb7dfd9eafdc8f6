"""The voxhub plugin module of ``voxhub-tupu`` (entry point ``tupu`` in group ``voxhub``).

Declarations only: the provider, the emulator and ``voxhub tupu`` are named by
``"module:Name"`` and imported on first use (the provider needs cryptography).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
from voxhub.plugin import ProviderInfo, SandboxSpec, hookimpl

from .options import INFO

if TYPE_CHECKING:
    import click

__all__ = ["register_commands", "register_providers", "register_sandboxes"]


@hookimpl
def register_providers() -> Sequence[ProviderInfo]:
    """The ``tupu`` provider."""
    return [attrs.evolve(INFO, entry="voxhub_tupu.provider:TupuProvider")]


@hookimpl
def register_sandboxes() -> Sequence[SandboxSpec]:
    """The ``tupu`` sandbox (``voxhub sandbox tupu``)."""
    return [
        SandboxSpec(
            "tupu",
            "voxhub_tupu.sandbox:TupuSandbox",
            "Tupu speech-stream moderation: signed API, signed callbacks",
        )
    ]


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``voxhub tupu keygen``."""
    from voxhub.cli import LazyCommand

    cli.add_command(
        LazyCommand(
            "tupu",
            "voxhub_tupu.cli:tupu_group",
            "Tupu (图普科技) speech-stream moderation helpers.",
        )
    )
