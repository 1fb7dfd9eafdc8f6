"""voxhub's entry point for this distribution: the ``local`` provider.

Declarations only: the provider (with its engines) is imported the first
time a local job is run. ``INFO``'s description says which engines and
offline Whisper models this installation has (found without importing them).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from voxhub.plugin import ProviderInfo, hookimpl

from .options import INFO


@hookimpl
def register_providers() -> Sequence[ProviderInfo]:
    """The ``local`` provider (a new instance, with its own worker pool, per plugin manager)."""
    return [attrs.evolve(INFO, entry="voxhub_local.provider:LocalProvider")]
