"""voxhub-local: offline speech recognition for voxhub, built on PocketSphinx.

* :mod:`voxhub_local.engine` — the self-contained recognition engine (no voxhub
  import; the revai, nhn and tupu sandboxes call its ``transcribe(path)``);
* :mod:`voxhub_local.worker` — worker processes that run the engine as jobs;
* :mod:`voxhub_local.provider` — the ``local`` provider built on them;
* :mod:`voxhub_local.plugin` — the entry point voxhub loads (group ``voxhub``).

Importing this package loads only the engine, not the provider.
"""

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
