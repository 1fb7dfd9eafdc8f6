"""Tupu's answers that are not a success, as voxhub errors: one table, one entry point.

Every answer and callback from Tupu carries a numeric ``code`` (0 = success).
:data:`CODES` says what each known one means and which voxhub error it becomes;
:func:`parse_error` turns any failed answer into that error:

* a signed answer with a non-zero ``code``: looked up in :data:`CODES`;
* an unsigned answer (a gateway error page, a bare ``{"error": ...}``): mapped by
  its HTTP status, with ``code="unsigned"``;
* an answer whose signature does not verify: a :class:`ProviderError` with
  ``code="unverified"`` that says to check ``public_key`` (in doubt for a submit:
  the streams may exist).

Two code lists exist and they disagree on 10 and 11 (the Java SDK's
``ErrorUtil`` and a reseller's copy of the docs, see the README); for those
two the message names both meanings rather than guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
from voxhub.plugin import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    Response,
    VoxhubError,
    error_for_status,
    parse_retry_after,
    redact_text,
)

from .codes import as_int
from .signing import VerificationError, verify_response

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["CODES", "TupuCode", "describe_code", "error_for_code", "parse_error"]


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

    The lookup in :data:`CODES` behind :func:`parse_error`. The vendor message is
    redacted before it is quoted; the numeric code is kept in ``error.code`` and
    ``error.details["code"]``.
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


def parse_error(
    response: Response,
    operation: str,
    *,
    public_key: rsa.RSAPublicKey,
    provider: str = "tupu",
    payload: Mapping[str, Any] | None = None,
) -> VoxhubError:
    """The voxhub error for a Tupu answer that is not a success (see the module docstring).

    ``payload`` is the answer's already verified payload, when the caller has it
    (a 2xx answer with a non-zero code), so its signature is not checked twice.
    """
    if payload is None:
        try:
            payload = verify_response(response.data, public_key)
        except VerificationError as exc:
            return _unsigned_or_unverified(response, operation, str(exc), provider)
    return error_for_code(payload.get("code"), payload.get("message"), operation=operation,
                          provider=provider, http_status=response.status)


def _unsigned_or_unverified(
    response: Response, operation: str, reason: str, provider: str
) -> VoxhubError:
    if not response.ok or "unsigned error" in reason:
        snippet = redact_text(response.text[:200])
        kw: dict[str, Any] = {"provider": provider, "operation": operation, "code": "unsigned"}
        if response.status == 429:
            kw["retry_after"] = parse_retry_after(response.header("Retry-After"))
        return error_for_status(
            response.status,
            f"Tupu answered HTTP {response.status} without a signed body: {snippet}", **kw,
        )
    maybe = " The streams may have been created." if operation == "submit" else ""
    return ProviderError(
        f"Tupu's answer failed signature verification ({reason}); check that public_key is "
        f"Tupu's public key (not yours) and base_url is Tupu's.{maybe}",
        provider=provider, operation=operation, status=response.status,
        code="unverified", in_doubt=operation == "submit",
    )
