"""voxhub's entry point for this distribution: the ``local`` provider."""

from __future__ import annotations

from collections.abc import Sequence

import voxhub
from voxhub.provider import Provider

from .provider import LocalProvider


@voxhub.hookimpl
def register_providers() -> Sequence[Provider]:
    """The ``local`` provider (a new instance, with its own worker pool, per plugin manager)."""
    return [LocalProvider()]
