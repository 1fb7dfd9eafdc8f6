"""Entry point module of the echo test plugin: declarations only, no provider code."""

from __future__ import annotations

import attrs
from voxhub.plugin import ProviderInfo, SandboxSpec, hookimpl

from .options import INFO


@hookimpl
def register_providers() -> list[ProviderInfo]:
    return [attrs.evolve(INFO, entry="voxhub_echo.provider:EchoProvider")]


@hookimpl
def register_sandboxes() -> list[SandboxSpec]:
    return [SandboxSpec("echo", "voxhub_echo.sandbox:EchoSandbox", "echo test vendor")]
