"""voxhub-local: offline speech recognition for voxhub (faster-whisper, PocketSphinx).

* :mod:`voxhub_local.engine` — both engines behind one ``transcribe`` (no voxhub
  import); its ``recognize_text(path)`` is the recognizer this package declares
  in the ``voxhub.recognizers`` entry-point group, which sandboxes reach through
  :func:`voxhub.sandbox_kit.media_text`;
* :mod:`voxhub_local.whisper` — the default engine, windowed faster-whisper;
* :mod:`voxhub_local.sphinx` — PocketSphinx, for keyphrases and grammars;
* :mod:`voxhub_local.models` — where a Whisper model comes from, offline first;
* :mod:`voxhub_local.pool` — the pool of worker processes that run the engines as
  jobs, and :mod:`voxhub_local.worker`, what each of those processes runs;
* :mod:`voxhub_local.provider` — the ``local`` provider built on them;
* :mod:`voxhub_local.plugin` — the entry point voxhub loads (group ``voxhub``).

Importing this package loads nothing else: voxhub imports it to read the plugin's
declarations, which must not load an engine. The names below are imported on
first use.
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
        EngineError,
        Recognition,
        Segment,
        WordTiming,
        audio_info,
        config_from_options,
        recognize_text,
        supported_formats,
        transcribe,
    )
    from voxhub_local.sphinx import SphinxConfig
    from voxhub_local.whisper import WhisperConfig

__version__ = "0.2.0"

_HOMES = {"SphinxConfig": "voxhub_local.sphinx", "WhisperConfig": "voxhub_local.whisper"}

__all__ = [
    "AudioError",
    "AudioInfo",
    "Cancelled",
    "ConfigError",
    "EngineError",
    "Recognition",
    "Segment",
    "SphinxConfig",
    "WhisperConfig",
    "WordTiming",
    "__version__",
    "audio_info",
    "config_from_options",
    "recognize_text",
    "supported_formats",
    "transcribe",
]


def __getattr__(name: str) -> Any:
    if name not in __all__ or name == "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES.get(name, "voxhub_local.engine")), name)
    globals()[name] = value
    return value
