"""Tupu (图普科技) speech moderation v3 provider plugin for voxhub.

* :class:`~voxhub_tupu.provider.TupuProvider`: the ``tupu`` provider
  (kind ``stream-moderation``, results by signed callback only);
* :func:`~voxhub_tupu.report.build_report`: a job's callback payloads as a
  :class:`voxhub.models.ModerationReport`;
* :class:`~voxhub_tupu.sandbox.TupuSandbox`: the loopback emulator;
* :mod:`voxhub_tupu.signing`: request signing and answer/callback verification.
"""

from .codes import (
    TASK_SPEECH_MODERATION,
    TASK_TRANSCRIPTION,
    TASK_VULGAR_SPEECH,
    CallbackRules,
)
from .provider import TupuAuth, TupuProvider
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
