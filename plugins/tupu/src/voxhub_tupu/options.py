"""What the ``tupu`` provider declares: its options, credentials and metadata (:data:`INFO`).

Kept apart from the provider so that listing providers imports nothing heavy
(no cryptography, no HTTP library): this module needs only :mod:`voxhub.plugin`
and :mod:`voxhub_tupu.codes`. The checks that read an option's value (task
names to ids, the callback rule) are here too, next to the options they check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from voxhub.plugin import (
    Capability,
    CredentialField,
    InvalidInputError,
    JobKind,
    OptionSpec,
    PollingHints,
    ProviderInfo,
)

from .codes import (
    CALLBACK_RULE_NAMES,
    TASK_ALIASES,
    TASK_NAMES,
    TASK_TRANSCRIPTION,
    CallbackRules,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CALLBACK_RULES",
    "INFO",
    "NAME",
    "TRANSCRIPT_CALLBACK_RULES",
    "callback_rules",
    "default_callback_rules",
    "task_ids",
]

NAME: Final = "tupu"
DEFAULT_BASE_URL: Final = "http://api.speech.tuputech.com"

#: voxhub's default rule: violations plus the end-of-task callback, so a job
#: learns that its stream ended (Tupu's own default, 0, never says so).
DEFAULT_CALLBACK_RULES: Final = "violations+end"
#: The default when the transcription task is asked for: under rules 0 and 2 Tupu
#: "calls back violation results only" (seed 003), so no transcript would ever arrive.
TRANSCRIPT_CALLBACK_RULES: Final = "all+end"

_MAX_TAG = 256


def _options() -> tuple[OptionSpec, ...]:
    aliases = ", ".join(sorted(TASK_ALIASES))
    return (
        OptionSpec(
            "tasks", list, item_type=str, max_items=len(TASK_NAMES), max_length=64,
            help=f"task ids or names ({aliases}); default: the tasks configured on the secretId",
        ),
        OptionSpec(
            "callback_rules", str, choices=tuple(CALLBACK_RULE_NAMES),
            default=DEFAULT_CALLBACK_RULES,
            help="which callbacks Tupu sends: violations (0), all results (1), "
                 "violations+end (2: also the end-of-task status), all+end (3); "
                 f"default {DEFAULT_CALLBACK_RULES}, or {TRANSCRIPT_CALLBACK_RULES} when the "
                 "transcription task is asked for (transcripts are not violations)",
        ),
        OptionSpec("room_id", str, max_length=_MAX_TAG, help="roomId tag, echoed in callbacks"),
        OptionSpec("user_id", str, max_length=_MAX_TAG, help="userId tag, echoed in callbacks"),
        OptionSpec("forum_id", str, max_length=_MAX_TAG, help="forumId tag, echoed in callbacks"),
        OptionSpec(
            "return_pre_speech", bool, default=False,
            help="evidence audio covers up to one minute ending with the violation",
        ),
    )


INFO: Final = ProviderInfo(
    name=NAME,
    kinds=frozenset({JobKind.STREAM_MODERATION}),
    description="Tupu (图普科技) live speech-stream moderation and transcription (v3)",
    capabilities=frozenset({
        Capability.URL,
        Capability.CALLBACKS,
        Capability.CALLBACK_ONLY,
        Capability.BATCH_SUBMIT,
        Capability.CANCEL,
    }),
    options=_options(),
    credentials=(
        CredentialField("secret_id", "the secretId Tupu opened for you", secret=True),
        CredentialField(
            "private_key",
            "path to your RSA private key PEM (PKCS#1 or PKCS#8); `voxhub tupu keygen DIR` "
            "makes one",
            secret=False,
        ),
        CredentialField(
            "private_key_passphrase", "passphrase of an encrypted private key",
            secret=True, required=False,
        ),
        CredentialField(
            "public_key",
            "path to Tupu's public key PEM (open_tuputech_com_public_key.pem from Tupu's SDKs); "
            "answers and callbacks are verified with it",
            secret=False,
        ),
    ),
    default_base_url=DEFAULT_BASE_URL,
    polling=PollingHints(first_poll=5.0, typical_duration=3600.0, max_interval=60.0),
    docs_url="http://cloud.doc.tuputech.com/zh/API/speech/stream/readme.html",
)


def task_ids(values: Any, provider: str = NAME) -> list[str]:
    """The ``tasks`` option as task ids (names resolved, duplicates dropped), or an error."""
    if not isinstance(values, list):
        raise InvalidInputError("tasks must be a list", field="tasks", provider=provider,
                                operation="validate")
    ids: list[str] = []
    for value in values:
        text = str(value).strip()
        task = TASK_ALIASES.get(text.lower(), text)
        if task not in TASK_NAMES and not _looks_like_task_id(task):
            known = ", ".join(sorted(TASK_ALIASES))
            raise InvalidInputError(
                f"unknown task {text!r}: give a 24-hex task id or one of {known}",
                field="tasks", provider=provider, operation="validate",
            )
        if task not in ids:
            ids.append(task)
    return ids


def _looks_like_task_id(text: str) -> bool:
    return len(text) == 24 and all(c in "0123456789abcdef" for c in text.lower())


def default_callback_rules(options: Mapping[str, Any]) -> str:
    """voxhub's rule when ``callback_rules`` is unset: all+end when transcripts are wanted."""
    tasks = options.get("tasks") or ()
    wants_text = any(TASK_ALIASES.get(str(t), str(t)) == TASK_TRANSCRIPTION for t in tasks)
    return TRANSCRIPT_CALLBACK_RULES if wants_text else DEFAULT_CALLBACK_RULES


def callback_rules(options: Mapping[str, Any], provider: str = NAME) -> CallbackRules:
    """The stream's callback rule from the options (voxhub's default when unset)."""
    try:
        return CallbackRules.from_option(
            options.get("callback_rules", default_callback_rules(options)))
    except ValueError as exc:
        raise InvalidInputError(str(exc), field="callback_rules", provider=provider,
                                operation="validate") from None
