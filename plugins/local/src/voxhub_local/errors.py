"""The engines' errors, in a module that imports nothing heavy (no numpy, no engine).

Re-exported by :mod:`voxhub_local.common` and :mod:`voxhub_local.engine`.
"""

from __future__ import annotations

import os

__all__ = ["AudioError", "Cancelled", "ConfigError", "EngineError"]

StrPath = str | os.PathLike[str]


class AudioError(ValueError):
    """The audio file cannot be read or decoded; the message names the path."""

    def __init__(self, path: StrPath, reason: str) -> None:
        self.path: str = os.fspath(path)
        self.reason: str = reason
        super().__init__(f"cannot decode audio file {self.path!r}: {reason}")


class ConfigError(ValueError):
    """An engine configuration field is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field: str = field
        super().__init__(f"EngineConfig.{field}: {message}")


class EngineError(RuntimeError):
    """The engine failed (e.g. model files it cannot load, bad grammar)."""


class Cancelled(Exception):
    """Raised by ``transcribe`` when its ``cancel`` event was set."""
