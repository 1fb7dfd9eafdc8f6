"""NHN Cloud Speech-to-Text (API v2.0 and v2.1) provider plugin for voxhub.

Modules: :mod:`~voxhub_nhn.plugin` (the entry point voxhub loads),
:mod:`~voxhub_nhn.options` (declaration, options, local checks),
:mod:`~voxhub_nhn.provider` (lifecycle), :mod:`~voxhub_nhn.api` (requests),
:mod:`~voxhub_nhn.errors` (result codes), :mod:`~voxhub_nhn.schema` (wire format),
:mod:`~voxhub_nhn.sandbox` (emulator). ``NhnProvider`` and ``NhnSandbox`` are
importable from here, loaded on first use so that importing the package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .provider import NhnProvider
    from .sandbox import NhnSandbox

__all__ = ["NhnProvider", "NhnSandbox"]
__version__ = "0.1.0"

_LAZY = {"NhnProvider": "provider", "NhnSandbox": "sandbox"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'voxhub_nhn' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
