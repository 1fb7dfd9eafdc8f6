"""The voxhub entry point of the Agora plugin (``[project.entry-points.voxhub] agora``)."""

from __future__ import annotations

from collections.abc import Sequence

import click
from voxhub.hookspecs import hookimpl
from voxhub.provider import Provider
from voxhub.sandbox import SandboxSpec

from .cli import agora
from .sandbox import AgoraSttSandbox, AgoraTranscoderSandbox
from .stt import AgoraSttProvider
from .transcoder import AgoraTranscoderProvider

__all__ = ["register_commands", "register_providers", "register_sandboxes"]


@hookimpl
def register_providers() -> Sequence[Provider]:
    """``agora-stt`` and ``agora-transcoder``."""
    return [AgoraSttProvider(), AgoraTranscoderProvider()]


@hookimpl
def register_sandboxes() -> Sequence[SandboxSpec]:
    """Emulators of both REST APIs (``voxhub sandbox agora-stt`` / ``agora-transcoder``)."""
    return [
        SandboxSpec("agora-stt", AgoraSttSandbox,
                    "Agora Real-Time STT (v5/v6 builderToken and v7 agents APIs)"),
        SandboxSpec("agora-transcoder", AgoraTranscoderSandbox,
                    "Agora Cloud Transcoder (cloudTranscoderV2)"),
    ]


@hookimpl
def register_commands(cli: click.Group) -> None:
    """``voxhub agora token rtc|rtm|inspect``."""
    cli.add_command(agora)
