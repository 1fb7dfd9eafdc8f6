"""The voxhub entry point of the Agora plugin (``[project.entry-points.voxhub] agora``).

Declarations only: the providers, the emulators and ``voxhub agora`` are named by
``"module:Name"`` and imported on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
from voxhub.plugin import ProviderInfo, SandboxSpec, hookimpl

from .options import STT_INFO, TRANSCODER_INFO

if TYPE_CHECKING:
    import click

__all__ = ["register_commands", "register_providers", "register_sandboxes"]


@hookimpl
def register_providers() -> Sequence[ProviderInfo]:
    """``agora-stt`` and ``agora-transcoder``."""
    return [
        attrs.evolve(STT_INFO, entry="voxhub_agora.stt:AgoraSttProvider"),
        attrs.evolve(TRANSCODER_INFO, entry="voxhub_agora.transcoder:AgoraTranscoderProvider"),
    ]


@hookimpl
def register_sandboxes() -> Sequence[SandboxSpec]:
    """Emulators of both REST APIs (``voxhub sandbox agora-stt`` / ``agora-transcoder``)."""
    return [
        SandboxSpec(
            "agora-stt",
            "voxhub_agora.sandbox_stt:AgoraSttSandbox",
            "Agora Real-Time STT (v5/v6 builderToken and v7 agents APIs)",
        ),
        SandboxSpec(
            "agora-transcoder",
            "voxhub_agora.sandbox_transcoder:AgoraTranscoderSandbox",
            "Agora Cloud Transcoder (cloudTranscoderV2)",
        ),
    ]


@hookimpl
def register_commands(cli: click.Group) -> None:
    """``voxhub agora token rtc|rtm|inspect``."""
    from voxhub.cli import LazyCommand

    cli.add_command(
        LazyCommand("agora", "voxhub_agora.cli:agora", "Agora tools (AccessToken2 tokens).")
    )
