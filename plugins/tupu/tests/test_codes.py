"""Tupu's codes map to clear voxhub errors; callback rules and task constants."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from voxhub.plugin import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    Response,
    Secret,
    VoxhubError,
)
from voxhub_tupu.codes import (
    CALLBACK_RULE_NAMES,
    TASK_ALIASES,
    TASK_NAMES,
    CallbackRules,
    as_int,
)
from voxhub_tupu.errors import describe_code, error_for_code, parse_error
from voxhub_tupu.signing import sign_payload


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


# --------------------------------------------------------------------------
# parse_error: any failed answer, signed or not
# --------------------------------------------------------------------------

_TUPU_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _signed(payload: dict[str, object], key: rsa.RSAPrivateKey = _TUPU_KEY) -> bytes:
    return json.dumps(sign_payload(payload, key)).encode()


def _parse(status: int, body: bytes, operation: str = "status", **headers: str) -> VoxhubError:
    response = Response(status=status, headers=headers, data=body)
    return parse_error(response, operation, public_key=_TUPU_KEY.public_key())


def test_parse_error_reads_the_code_of_a_signed_answer() -> None:
    error = _parse(200, _signed({"code": 17, "message": "too many streams"}))
    assert type(error) is RateLimitedError and error.code == 17
    assert "concurrency limit" in str(error) and "too many streams" in str(error)
    assert error.status == 200


def test_parse_error_maps_unsigned_answers_by_status() -> None:
    unavailable = _parse(503, b"<html>bad gateway</html>", operation="submit")
    assert type(unavailable) is ProviderUnavailableError
    assert unavailable.code == "unsigned" and unavailable.in_doubt  # a submit may have landed
    assert "without a signed body" in str(unavailable) and "bad gateway" in str(unavailable)
    limited = _parse(429, b'{"error": "slow down"}', **{"Retry-After": "12"})
    assert type(limited) is RateLimitedError and limited.retry_after == 12
    missing = _parse(404, b"not found")
    assert type(missing) is NotFoundError and missing.code == "unsigned"
    # A 2xx bare error object is unsigned too, not "unverified".
    bare = _parse(200, b'{"error": "gateway"}')
    assert type(bare) is ProviderError and bare.code == "unsigned"


def test_parse_error_refuses_answers_that_do_not_verify() -> None:
    forged = _signed({"code": 0, "result": []}, key=_OTHER_KEY)
    on_submit = _parse(200, forged, operation="submit")
    assert type(on_submit) is ProviderError and on_submit.code == "unverified"
    assert on_submit.in_doubt and "streams may have been created" in str(on_submit)
    on_status = _parse(200, forged)
    assert not on_status.in_doubt and "public_key" in str(on_status)  # type: ignore[attr-defined]
