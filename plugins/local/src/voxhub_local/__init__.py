"""voxhub-local: offline speech recognition for voxhub, built on PocketSphinx.

* :mod:`voxhub_local.engine` — the self-contained recognition engine (no voxhub
  import); its ``recognize_text(path)`` is the recognizer this package declares
  in the ``voxhub.recognizers`` entry-point group, which sandboxes reach through
  :func:`voxhub.sandbox_kit.media_text`;
* :mod:`voxhub_local.worker` — worker processes that run the engine as jobs;
* :mod:`voxhub_local.provider` — the ``local`` provider built on them;
* :mod:`voxhub_local.plugin` — the entry point voxhub loads (group ``voxhub``).

Importing this package loads nothing else: voxhub imports it to read the plugin's
declarations, which must not load the engine (pocketsphinx, numpy). The engine's
names below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voxhub_local.engine import (
        AudioError,
        AudioInfo,
        Cancelled,
        ConfigError,
        EngineConfig,
        EngineError,
        ModelPaths,
        Recognition,
        Segment,
        WordTiming,
        audio_info,
        default_model_paths,
        supported_formats,
        transcribe,
    )

__version__ = "0.1.0"

__all__ = [
    "AudioError",
    "AudioInfo",
    "Cancelled",
    "ConfigError",
    "EngineConfig",
    "EngineError",
    "ModelPaths",
    "Recognition",
    "Segment",
    "WordTiming",
    "__version__",
    "audio_info",
    "default_model_paths",
    "supported_formats",
    "transcribe",
]


def __getattr__(name: str) -> Any:
    if name not in __all__ or name == "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("voxhub_local.engine"), name)
    globals()[name] = value
    return value
