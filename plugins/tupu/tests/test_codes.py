"""Tupu's codes map to clear voxhub errors; callback rules and task constants."""

from __future__ import annotations

import pytest
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
from voxhub.redact import Secret
from voxhub_tupu.codes import (
    CALLBACK_RULE_NAMES,
    TASK_ALIASES,
    TASK_NAMES,
    CallbackRules,
    as_int,
    describe_code,
    error_for_code,
)


@pytest.mark.parametrize(
    ("code", "cls", "words"),
    [
        (1, AuthenticationError, "private_key"),
        ("1", AuthenticationError, "authentication failed"),
        (6, AuthenticationError, "secret_id"),
        (7, PermissionDeniedError, "task not allowed"),
        (9, AuthenticationError, "voxhub tupu keygen"),
        (12, AuthenticationError, "clock"),
        (13, PermissionDeniedError, "no task configured"),
        (16, NotFoundError, "no data found"),
        (17, RateLimitedError, "concurrency limit"),
        (100, ProviderUnavailableError, "server error"),
        (101, ProviderUnavailableError, "unknown error"),
        (2, ProviderError, "model id"),
        (999, ProviderError, "not a documented Tupu code"),
        ("E42", ProviderError, "not a documented Tupu code"),
    ],
)
def test_codes_become_clear_errors(code: object, cls: type[VoxhubError], words: str) -> None:
    error = error_for_code(code, "vendor says hi", operation="submit")
    assert type(error) is cls
    assert words in str(error)
    assert "vendor says hi" in str(error)
    assert str(error).startswith("tupu:submit: ")
    assert error.details["code"] == code
    if isinstance(error, ProviderError) and as_int(code) in (1, 6, 7, 12, 16, 17):
        assert error.code == as_int(code)


@pytest.mark.parametrize(("code", "field"), [(3, "media"), (10, "callback_url"), (14, "media"),
                                             (15, None), (400, "media"), (404, "media")])
def test_input_codes_name_the_field(code: int, field: str | None) -> None:
    error = error_for_code(code, None, operation="submit")
    assert isinstance(error, InvalidInputError)
    assert error.field == field and error.details["code"] == code


def test_ambiguous_codes_say_both_meanings() -> None:
    assert "disagree" in str(error_for_code(10, None, operation="submit"))
    assert "disagree" in str(error_for_code(11, None, operation="submit"))


def test_vendor_message_is_redacted_and_bounded() -> None:
    secret = Secret("very-secret-value-123")
    error = error_for_code(1, f"bad {secret.reveal()} " + "x" * 1000, operation="submit")
    assert "very-secret-value-123" not in str(error)
    assert len(str(error)) < 600


def test_describe_and_as_int() -> None:
    assert describe_code(12).startswith("code 12: time parameter error")
    assert as_int("17") == 17 and as_int(3.0) == 3 and as_int(-1) == -1
    assert as_int(True) is None and as_int("1.5") is None and as_int(None) is None


def test_callback_rules() -> None:
    assert [CallbackRules.from_option(n) for n in CALLBACK_RULE_NAMES] == list(CallbackRules)
    assert CallbackRules.from_option(3) is CallbackRules.ALL_AND_END
    assert CallbackRules.from_option("2") is CallbackRules.VIOLATIONS_AND_END
    assert [(r.sends_all, r.sends_end) for r in CallbackRules] == [
        (False, False), (True, False), (False, True), (True, True)]
    for bad in ("sometimes", 4, "-1"):
        with pytest.raises(ValueError, match="callback rule"):
            CallbackRules.from_option(bad)


def test_task_constants() -> None:
    assert TASK_ALIASES["vulgar"] == "5c8213b9bc807806aab0a574"
    assert TASK_ALIASES["transcription"] == "5ca1bd6b3872ecc9afb99132"
    assert TASK_ALIASES["moderation"] == "5caee6b2a76925c55a09a6d2"
    assert set(TASK_ALIASES.values()) == set(TASK_NAMES)
