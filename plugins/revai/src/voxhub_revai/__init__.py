"""Rev.ai asynchronous speech-to-text for voxhub: the ``revai`` provider and its sandbox.

Both are imported on first use, so that importing ``voxhub_revai.options`` (what
listing providers needs) loads neither HTTP code nor the emulator's werkzeug.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .provider import RevaiProvider
    from .sandbox import RevaiSandbox

__all__ = ["RevaiProvider", "RevaiSandbox"]
__version__ = "0.1.0"

_LAZY = {"RevaiProvider": ".provider", "RevaiSandbox": ".sandbox"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'voxhub_revai' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
