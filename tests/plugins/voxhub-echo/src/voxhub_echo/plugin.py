"""Entry point module of the echo test plugin."""

from __future__ import annotations

from voxhub import hookimpl
from voxhub.sandbox import SandboxSpec

from .provider import EchoProvider
from .sandbox import EchoSandbox


@hookimpl
def register_providers() -> list[EchoProvider]:
    return [EchoProvider()]


@hookimpl
def register_sandboxes() -> list[SandboxSpec]:
    return [SandboxSpec("echo", EchoSandbox, "echo test vendor")]
