"""Which engines and Whisper models are installed, found without importing them.

Light (standard library only): the plugin's declarations use it to say, in
the provider's description, what this installation can run.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Final

__all__ = ["ENGINES", "cached_models", "describe", "installed_engines", "installed_models"]

#: The engines of voxhub-local, the default first.
ENGINES: Final = ("whisper", "pocketsphinx")
_MODULES: Final = {"whisper": "faster_whisper", "pocketsphinx": "pocketsphinx"}
_CACHE_PREFIX: Final = "models--Systran--faster-whisper-"


def installed_engines() -> tuple[str, ...]:
    """The engines whose library is importable here, the default first."""
    return tuple(e for e in ENGINES if importlib.util.find_spec(_MODULES[e]) is not None)


def cached_models() -> tuple[str, ...]:
    """Whisper models in faster-whisper's download cache (the Hugging Face hub's folder)."""
    hub = os.environ.get("HF_HUB_CACHE") or str(
        Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "hub")
    try:
        names = [p.name for p in Path(hub).iterdir() if p.name.startswith(_CACHE_PREFIX)]
    except OSError:
        return ()
    return tuple(sorted(n[len(_CACHE_PREFIX):] for n in names))


def installed_models() -> tuple[str, ...]:
    """Whisper models usable offline: the pinned weights packages installed, then the cache."""
    from .models import PACKAGED_MODELS, packaged_model

    packaged = [name for name in PACKAGED_MODELS if packaged_model(name, verify=False)]
    return tuple(dict.fromkeys([*packaged, *cached_models()]))


def describe() -> str:
    """One line for the provider's description: engines and offline models installed."""
    engines = installed_engines()
    models = installed_models() if "whisper" in engines else ()
    return (f"Offline speech recognition on this machine. Engines installed: "
            f"{', '.join(engines) or 'none'} (default whisper); Whisper models available "
            f"offline: {', '.join(models) or 'none'}.")
