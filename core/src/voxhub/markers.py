"""pluggy's markers for voxhub: :data:`hookspec` and :data:`hookimpl`.

Kept in their own module so that :mod:`voxhub.provider` (which marks the methods
of :class:`~voxhub.provider.Provider`) and :mod:`voxhub.hookspecs` (whose
signatures name provider types) do not import each other.
"""

from __future__ import annotations

import pluggy

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "voxhub"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
