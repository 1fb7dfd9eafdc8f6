"""Tupu's constants as data: task ids, callback rules, and its ``code`` values.

Every answer and callback from Tupu carries a numeric ``code`` (0 = success).
:func:`error_for_code` turns a non-zero one into the matching
:mod:`voxhub.errors` class with a message that says what to do about it.

Two code lists exist and they disagree on 10 and 11 (the Java SDK's
``ErrorUtil`` and a reseller's copy of the docs, see the README); for those
two the message names both meanings rather than guessing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import attrs
from voxhub.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    VoxhubError,
)
from voxhub.redact import redact_text

__all__ = [
    "CALLBACK_RULE_NAMES",
    "CODES",
    "TASK_ALIASES",
    "TASK_AUDIO_EVENT",
    "TASK_GENDER",
    "TASK_NAMES",
    "TASK_SPEECH_MODERATION",
    "TASK_TRANSCRIPTION",
    "TASK_VOICEPRINT",
    "TASK_VULGAR_SPEECH",
    "CallbackRules",
    "TupuCode",
    "as_int",
    "describe_code",
    "error_for_code",
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


# --------------------------------------------------------------------------
# Result codes
# --------------------------------------------------------------------------


@attrs.frozen
class TupuCode:
    """One known ``code``: what it means and which voxhub error it becomes."""

    code: int
    meaning: str
    error: type[VoxhubError]
    hint: str = ""
    field: str | None = None


_KEYGEN_HINT = (
    "generate a key pair with `voxhub tupu keygen DIR`, upload DIR/tupu_public.pem at "
    "https://console.cloud.tuputech.com/account/cert and set private_key to DIR/tupu_private.pem"
)

CODES: Final[Mapping[int, TupuCode]] = {
    c.code: c
    for c in (
        TupuCode(
            1,
            "authentication failed (request signature refused)",
            AuthenticationError,
            "check that private_key is the key whose public half is uploaded in the Tupu "
            "console for this secret_id",
        ),
        TupuCode(2, "model id error", ProviderError),
        TupuCode(3, "no file / stream given", InvalidInputError, field="media"),
        TupuCode(4, "API version error", ProviderError, "check base_url"),
        TupuCode(5, "API version deprecated", ProviderError, "check base_url"),
        TupuCode(6, "secretId error", AuthenticationError, "check secret_id"),
        TupuCode(
            7,
            "task not allowed for this secretId",
            PermissionDeniedError,
            "ask Tupu to enable the task or remove it from the tasks option",
            "tasks",
        ),
        TupuCode(8, "secretId status abnormal", PermissionDeniedError, "contact Tupu support"),
        TupuCode(9, "no certificate (public key) uploaded", AuthenticationError, _KEYGEN_HINT),
        TupuCode(
            10,
            "pipeId error, or callback address missing (the two code lists disagree)",
            InvalidInputError,
            field="callback_url",
        ),
        TupuCode(
            11,
            "callback parameter missing, or interface access failed "
            "(the two code lists disagree)",
            ProviderError,
        ),
        TupuCode(
            12,
            "time parameter error (request timestamp refused)",
            AuthenticationError,
            "check this machine's clock (NTP); requests are signed with the current time",
        ),
        TupuCode(
            13,
            "no task configured for this secretId, or all closed",
            PermissionDeniedError,
            "ask Tupu to configure tasks or pass the tasks option",
        ),
        TupuCode(14, "file download error", InvalidInputError, field="media"),
        TupuCode(15, "illegal parameter", InvalidInputError),
        TupuCode(16, "no data found", NotFoundError),
        TupuCode(
            17,
            "concurrency limit exceeded",
            RateLimitedError,
            "close streams you no longer need, or ask Tupu for a higher limit",
        ),
        TupuCode(18, "normal file (message truncated in the docs)", ProviderError),
        TupuCode(100, "Tupu server error", ProviderUnavailableError),
        TupuCode(101, "unknown error at Tupu", ProviderUnavailableError),
        TupuCode(400, "stream download failure (bad address or too large)", InvalidInputError,
                 field="media"),
        TupuCode(404, "stream not found at its address", InvalidInputError, field="media"),
    )
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


def describe_code(code: Any) -> str:
    """A one-line description of a Tupu ``code`` (``"code 12: time parameter error ..."``)."""
    number = as_int(code)
    known = CODES.get(number) if number is not None else None
    if known is None:
        return f"code {code}: not a documented Tupu code"
    return f"code {known.code}: {known.meaning}"


def error_for_code(
    code: Any,
    message: Any = None,
    *,
    operation: str,
    provider: str = "tupu",
    http_status: int | None = None,
) -> VoxhubError:
    """The voxhub error for a non-zero Tupu ``code`` (``message`` is Tupu's own text).

    The vendor message is redacted before it is quoted; the numeric code is kept
    in ``error.code`` and ``error.details["code"]``.
    """
    number = as_int(code)
    known = CODES.get(number) if number is not None else None
    vendor = redact_text(str(message))[:300] if message not in (None, "") else None
    parts = [f"Tupu answered {describe_code(code)}"]
    if vendor:
        parts.append(f"({vendor})")
    if known is not None and known.hint:
        parts.append(f"- {known.hint}")
    text = " ".join(parts)
    kw: dict[str, Any] = {"provider": provider, "operation": operation}
    details = {"code": code, "vendor_message": vendor}
    if known is None:
        return ProviderError(text, status=http_status, code=code, details=details, **kw)
    if issubclass(known.error, InvalidInputError):
        # InvalidInputError is not a ProviderError: the code lives in details only.
        return known.error(text, field=known.field, details=details, **kw)
    if issubclass(known.error, ProviderError):
        return known.error(text, status=http_status, code=known.code, details=details, **kw)
    return known.error(text, details=details, **kw)
