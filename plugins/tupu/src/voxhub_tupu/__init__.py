"""Tupu (图普科技) speech moderation v3 provider plugin for voxhub.

* :class:`~voxhub_tupu.provider.TupuProvider`: the ``tupu`` provider
  (kind ``stream-moderation``, results by signed callback only);
* :func:`~voxhub_tupu.report.build_report`: a job's callback payloads as a
  :class:`voxhub.plugin.ModerationReport`;
* :class:`~voxhub_tupu.sandbox.TupuSandbox`: the loopback emulator;
* :mod:`voxhub_tupu.signing` and :mod:`voxhub_tupu.keys`: request signing,
  answer/callback verification, and RSA keys.

The names below are imported on first use: voxhub imports this package to read
the plugin's declarations (:mod:`voxhub_tupu.plugin`), which must not load
cryptography or the provider.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import TupuAuth
    from .codes import (
        TASK_SPEECH_MODERATION,
        TASK_TRANSCRIPTION,
        TASK_VULGAR_SPEECH,
        CallbackRules,
    )
    from .provider import TupuProvider
    from .report import build_report

__all__ = [
    "TASK_SPEECH_MODERATION",
    "TASK_TRANSCRIPTION",
    "TASK_VULGAR_SPEECH",
    "CallbackRules",
    "TupuAuth",
    "TupuProvider",
    "build_report",
]

__version__ = "0.1.0"

_LAZY = {
    "TASK_SPEECH_MODERATION": "codes",
    "TASK_TRANSCRIPTION": "codes",
    "TASK_VULGAR_SPEECH": "codes",
    "CallbackRules": "codes",
    "TupuAuth": "api",
    "TupuProvider": "provider",
    "build_report": "report",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'voxhub_tupu' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
