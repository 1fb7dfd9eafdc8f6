"""Tupu's constants as data: task ids and callback rules.

Tupu's numeric result ``code`` values, and the voxhub errors they become, are in
:mod:`voxhub_tupu.errors`. This module imports nothing heavy: the provider's
metadata (:mod:`voxhub_tupu.options`) is built from it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "CALLBACK_RULE_NAMES",
    "TASK_ALIASES",
    "TASK_AUDIO_EVENT",
    "TASK_GENDER",
    "TASK_NAMES",
    "TASK_SPEECH_MODERATION",
    "TASK_TRANSCRIPTION",
    "TASK_VOICEPRINT",
    "TASK_VULGAR_SPEECH",
    "CallbackRules",
    "as_int",
]

# --------------------------------------------------------------------------
# Task ids (Go SDK constants, confirmed by the docs)
# --------------------------------------------------------------------------

#: 低俗语音: vulgar speech (moaning and the like).
TASK_VULGAR_SPEECH: Final = "5c8213b9bc807806aab0a574"
#: 语音转译: speech-to-text transcription of the stream.
TASK_TRANSCRIPTION: Final = "5ca1bd6b3872ecc9afb99132"
#: 语音转译审核: transcription plus text moderation of the transcript.
TASK_SPEECH_MODERATION: Final = "5caee6b2a76925c55a09a6d2"
#: 性别: speaker gender (results are kept raw, not normalized).
TASK_GENDER: Final = "5f59e4b71b29fa890e5472fb"
#: Audio event detection (results are kept raw, not normalized).
TASK_AUDIO_EVENT: Final = "5df33c3c8c485b3a65b82f7b"
#: Voiceprint (results are kept raw, not normalized).
TASK_VOICEPRINT: Final = "5e6b0164836eb77597849087"

#: Friendly names accepted in the ``tasks`` option, mapped to task ids.
TASK_ALIASES: Final[Mapping[str, str]] = {
    "vulgar": TASK_VULGAR_SPEECH,
    "transcription": TASK_TRANSCRIPTION,
    "moderation": TASK_SPEECH_MODERATION,
    "transcription+moderation": TASK_SPEECH_MODERATION,
    "gender": TASK_GENDER,
    "audio-event": TASK_AUDIO_EVENT,
    "voiceprint": TASK_VOICEPRINT,
}

#: The short name of each known task id (used in reports and logs).
TASK_NAMES: Final[Mapping[str, str]] = {
    TASK_VULGAR_SPEECH: "vulgar",
    TASK_TRANSCRIPTION: "transcription",
    TASK_SPEECH_MODERATION: "moderation",
    TASK_GENDER: "gender",
    TASK_AUDIO_EVENT: "audio-event",
    TASK_VOICEPRINT: "voiceprint",
}


# --------------------------------------------------------------------------
# callbackRules
# --------------------------------------------------------------------------


class CallbackRules(enum.IntEnum):
    """The stream's ``callbackRules`` value: a bit mask.

    Bit 0 asks for every result (not only violations); bit 1 asks for an
    end-of-task status callback. Transcript slices of the transcription task
    are sent whatever the rule.
    """

    VIOLATIONS = 0
    ALL = 1
    VIOLATIONS_AND_END = 2
    ALL_AND_END = 3

    @property
    def sends_end(self) -> bool:
        """Whether Tupu posts an end-of-task callback under this rule."""
        return bool(self & 2)

    @property
    def sends_all(self) -> bool:
        """Whether Tupu posts every result, not only violations."""
        return bool(self & 1)

    @classmethod
    def from_option(cls, value: str | int) -> CallbackRules:
        """The rule for an option value: a name of :data:`CALLBACK_RULE_NAMES` or 0..3."""
        if isinstance(value, str) and value in CALLBACK_RULE_NAMES:
            return CALLBACK_RULE_NAMES[value]
        number = as_int(value)
        if number is None or number not in {r.value for r in cls}:
            allowed = ", ".join(CALLBACK_RULE_NAMES)
            raise ValueError(f"{value!r} is not a callback rule (one of: {allowed}, or 0..3)")
        return cls(number)


#: Option names of the rules (``--option callback_rules=all+end``).
CALLBACK_RULE_NAMES: Final[Mapping[str, CallbackRules]] = {
    "violations": CallbackRules.VIOLATIONS,
    "all": CallbackRules.ALL,
    "violations+end": CallbackRules.VIOLATIONS_AND_END,
    "all+end": CallbackRules.ALL_AND_END,
}


def as_int(value: Any) -> int | None:
    """``value`` as an int when it is one (number or digit string); else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    return None
