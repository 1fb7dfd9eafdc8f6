"""voxhub's entry point for this plugin: the ``revai`` provider and its sandbox."""

from __future__ import annotations

from collections.abc import Sequence

import voxhub
from voxhub.provider import Provider
from voxhub.sandbox import SandboxSpec

from .provider import RevaiProvider
from .sandbox import RevaiSandbox


@voxhub.hookimpl
def register_providers() -> Sequence[Provider]:
    """The ``revai`` provider."""
    return [RevaiProvider()]


@voxhub.hookimpl
def register_sandboxes() -> Sequence[SandboxSpec]:
    """The Rev.ai emulator (``voxhub sandbox revai``)."""
    return [SandboxSpec("revai", RevaiSandbox, "Rev.ai async speech-to-text API v1 emulator")]
