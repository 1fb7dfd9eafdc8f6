"""voxhub's entry point for this plugin: the ``revai`` provider and its sandbox.

Declarations only: the provider and the emulator are named by ``"module:Class"``
and imported on first use, so ``voxhub providers`` loads no Rev.ai code.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from voxhub.plugin import ProviderInfo, SandboxSpec, hookimpl

from .options import INFO


@hookimpl
def register_providers() -> Sequence[ProviderInfo]:
    """The ``revai`` provider."""
    return [attrs.evolve(INFO, entry="voxhub_revai.provider:RevaiProvider")]


@hookimpl
def register_sandboxes() -> Sequence[SandboxSpec]:
    """The Rev.ai emulator (``voxhub sandbox revai``)."""
    return [
        SandboxSpec(
            "revai",
            "voxhub_revai.sandbox:RevaiSandbox",
            "Rev.ai async speech-to-text API v1 emulator",
        )
    ]
