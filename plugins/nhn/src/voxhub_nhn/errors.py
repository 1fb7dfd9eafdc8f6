"""NHN Cloud STT result codes, and the one function that turns a failed answer into an error.

NHN puts the outcome of every call in an envelope, ``header`` (``isSuccessful``,
``resultCode``, ``resultMessage``), whatever the HTTP status. :func:`parse_error`
reads it; :class:`voxhub_nhn.api.NhnApi` calls it for every answer that is not a
success, so this module is the only place codes become voxhub errors.

Two sources make up the table (see ``README.md``):

* the STT error-code page (``error-code.md``): 7-digit codes built as
  *HTTP status x 10^4 + sub-code*, plus ``0``, ``-1`` and six plain HTTP codes.
  The STT service answers these with HTTP 200 (documented);
* the NHN API Gateway codes the old host (``speech.api.nhncloudservice.com``)
  answered with through the gateway. Those come with their real HTTP status.

Codes that are in neither list are classified by their leading HTTP status
(see :func:`lookup`), as the docs say unlisted codes follow RFC 9110.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
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

from .schema import Header, structure

__all__ = [
    "CODES",
    "NAME",
    "Category",
    "NhnCode",
    "lookup",
    "parse_error",
    "read_header",
    "status_of",
]

#: The provider's name, as errors carry it.
NAME = "nhn"


class Category(enum.StrEnum):
    """What a result code means for a voxhub caller (which error class it becomes)."""

    SUCCESS = "success"
    INVALID_INPUT = "invalid-input"  # -> InvalidInputError (field names the culprit)
    AUTH = "auth"  # -> AuthenticationError
    PERMISSION = "permission"  # -> PermissionDeniedError
    NOT_FOUND = "not-found"  # -> NotFoundError
    RATE_LIMITED = "rate-limited"  # -> RateLimitedError
    UNAVAILABLE = "unavailable"  # -> ProviderUnavailableError
    PROVIDER = "provider"  # -> ProviderError (nothing finer fits)


@attrs.frozen
class NhnCode:
    """One documented result code.

    ``http_status`` is the HTTP status NHN sends it with (200 for STT codes, per
    the docs; the real status for API Gateway codes). ``field`` is the request
    field an invalid-input code blames (``media`` for the audio limits).
    """

    code: int
    key: str
    meaning: str
    category: Category
    http_status: int = 200
    field: str | None = None
    gateway: bool = False

    @property
    def natural_status(self) -> int:
        """The RFC 9110 status the code encodes (``4000002`` -> 400, ``-1`` -> 500)."""
        return status_of(self.code)


def _stt(code: int, key: str, meaning: str, category: Category,
         field: str | None = None) -> NhnCode:
    return NhnCode(code, key, meaning, category, 200, field)


def _gw(code: int, status: int, key: str, meaning: str, category: Category,
        field: str | None = None) -> NhnCode:
    return NhnCode(code, key, meaning, category, status, field, gateway=True)


_C = Category

#: Every documented code, STT codes first then API Gateway codes.
CODES: Mapping[int, NhnCode] = {
    c.code: c
    for c in (
        _stt(0, "SUCCESS", "success", _C.SUCCESS),
        _stt(-1, "FAIL", "unknown error", _C.PROVIDER),
        _stt(400, "BAD_REQUEST", "bad request", _C.INVALID_INPUT),
        _stt(401, "UNAUTHORIZED", "unauthorized", _C.AUTH),
        _stt(403, "FORBIDDEN", "forbidden", _C.PERMISSION),
        _stt(404, "NOT_FOUND", "no such API URL or HTTP method", _C.NOT_FOUND),
        _stt(405, "METHOD_NOT_ALLOWED", "HTTP method not allowed", _C.PROVIDER),
        _stt(415, "UNSUPPORTED_MEDIA_TYPE", "unsupported request content type",
             _C.INVALID_INPUT, "media"),
        _stt(4000001, "INVALID_PARAMETER", "bad parameter", _C.INVALID_INPUT),
        _stt(4000002, "MAX_UPLOAD_SIZE_EXCEEDED", "upload above the size limit",
             _C.INVALID_INPUT, "media"),
        _stt(4000003, "INVALID_FILE_TYPE", "unsupported file type", _C.INVALID_INPUT, "media"),
        _stt(4000004, "UPLOADED_FILE_IS_EMPTY", "empty upload", _C.INVALID_INPUT, "media"),
        _stt(4000201, "INVALID_AUDIO_FILE", "audio could not be decoded or is invalid",
             _C.INVALID_INPUT, "media"),
        _stt(4000202, "AUDIO_LENGTH_TOO_LONG", "audio longer than the limit",
             _C.INVALID_INPUT, "media"),
        _stt(4000203, "AUDIO_LENGTH_TOO_SHORT", "audio shorter than 0.36 s",
             _C.INVALID_INPUT, "media"),
        _stt(4000204, "SPEECH_NOT_DETECTED", "no speech found in the audio",
             _C.INVALID_INPUT, "media"),
        _stt(4010001, "INVALID_APPKEY_SECRETKEY", "app key or secret key is wrong", _C.AUTH),
        _stt(4010002, "INVALID_UUID", "malformed id", _C.NOT_FOUND),
        _stt(4010003, "NOT_ALLOWED_USER", "user not allowed", _C.PERMISSION),
        _stt(4010004, "INVALID_PROJECT", "project invalid", _C.AUTH),
        _stt(4010005, "UNAUTHORIZED_ROLE", "role lacks permission", _C.PERMISSION),
        _stt(4010006, "INVALID_ASYNC_ID", "unknown or invalid async task id", _C.NOT_FOUND),
        _stt(4010007, "INVALID_TOKEN", "user access key token is invalid", _C.AUTH),
        _stt(4010008, "PERMISSION_DENIED", "token lacks permission", _C.PERMISSION),
        _stt(5000001, "INTERNAL_API_FAIL", "internal call failed", _C.UNAVAILABLE),
        _stt(5000002, "ERROR_PARSING_FAIL", "error parsing failed", _C.UNAVAILABLE),
        _stt(5000003, "DATABASE_FAIL", "database error", _C.UNAVAILABLE),
        _stt(5000004, "RESOURCE_DELETE_FAIL", "resource deletion failed", _C.UNAVAILABLE),
        _stt(5000005, "FILE_READ_FAIL", "file read failed", _C.UNAVAILABLE),
        _stt(5004001, "STT_API_FAIL", "speech engine call failed", _C.UNAVAILABLE),
        _stt(5004002, "STT_API_RETURN_EMPTY", "speech engine returned nothing", _C.UNAVAILABLE),
        _stt(5004003, "STT_API_CONVERSION_FAIL", "speech engine could not convert the speech",
             _C.UNAVAILABLE),
        _stt(5004004, "STT_API_AUDIO_READ_FAIL", "speech engine could not read the audio",
             _C.UNAVAILABLE),
        # API Gateway (old host): real HTTP statuses.
        _gw(4131000, 413, "REQUEST_ENTITY_TOO_LARGE", "request body over the gateway's 10 MB",
            _C.INVALID_INPUT, "media"),
        _gw(4291000, 429, "TOO_MANY_REQUESTS", "too many requests", _C.RATE_LIMITED),
        _gw(4041007, 404, "NO_ROUTE", "no gateway route for this path", _C.NOT_FOUND),
        _gw(5020001, 502, "BAD_GATEWAY", "upstream bad gateway", _C.UNAVAILABLE),
        _gw(5030001, 503, "SERVICE_UNAVAILABLE", "upstream unavailable or circuit open",
            _C.UNAVAILABLE),
        *(
            _gw(4011000 + n, 401, f"HMAC_AUTH_FAIL_{n}", "gateway HMAC authentication failed",
                _C.AUTH)
            for n in range(1, 10)
        ),
        _gw(4012001, 401, "JWT_AUTH_FAIL_1", "gateway JWT authentication failed", _C.AUTH),
        _gw(4012002, 401, "JWT_AUTH_FAIL_2", "gateway JWT authentication failed", _C.AUTH),
        _gw(4031007, 403, "IP_NOT_ALLOWED", "caller IP not allowed", _C.PERMISSION),
        _gw(5021001, 502, "PRE_CALL_FAILED", "gateway pre-call API failed", _C.UNAVAILABLE),
    )
}


def status_of(code: int) -> int:
    """The HTTP status a result code encodes: 7-digit codes are status x 10^4 + sub-code."""
    if code == 0:
        return 200
    if 100 <= code <= 599:
        return code
    if 1_000_000 <= code <= 5_999_999:
        return code // 10_000
    return 500  # -1 and anything else unknown: a server-side failure


_CATEGORY_OF_STATUS: Mapping[int, Category] = {
    400: Category.INVALID_INPUT,
    401: Category.AUTH,
    403: Category.PERMISSION,
    404: Category.NOT_FOUND,
    410: Category.NOT_FOUND,
    413: Category.INVALID_INPUT,
    415: Category.INVALID_INPUT,
    429: Category.RATE_LIMITED,
}


def lookup(code: int) -> NhnCode:
    """The table entry for ``code``, or one derived from its HTTP status when unlisted."""
    known = CODES.get(code)
    if known is not None:
        return known
    status = status_of(code)
    category = _CATEGORY_OF_STATUS.get(
        status, Category.UNAVAILABLE if status >= 500 else Category.PROVIDER
    )
    return NhnCode(code, "UNLISTED", f"unlisted code (HTTP {status} class)", category, status)


# --- failed answers -> voxhub errors ---------------------------------------------------


def read_header(response: Response) -> Header | None:
    """The answer's envelope, or ``None`` when there is none (a proxy page, a bare 5xx...)."""
    try:
        data: Any = json.loads(response.data) if response.data else None
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested 1000s deep
        return None
    if not isinstance(data, dict) or not isinstance(data.get("header"), dict):
        return None
    try:
        return structure(data["header"], Header)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError):
        return None


def parse_error(response: Response, operation: str) -> VoxhubError:
    """The voxhub error for an answer that is not a success.

    The envelope decides when there is one (NHN sends most failures with HTTP 200);
    without one the HTTP status does; a 2xx without an envelope is a broken answer.
    Every error from a result code keeps it: ``error.code`` on :class:`ProviderError`
    subclasses and ``error.details["code"]`` always.
    """
    header = read_header(response)
    if header is not None and not header.ok:
        return _code_error(header, response, operation)
    if not response.ok:
        return _status_error(response, operation)
    return ProviderError(
        f"NHN answered HTTP {response.status} without the result envelope ('header')",
        provider=NAME, operation=operation, status=response.status,
    )


_HINTS: Mapping[Category, str] = {
    Category.AUTH: "check app_key and secret_key / uak_token",
    Category.PERMISSION: "the credentials lack permission for Speech-to-Text",
}


def _code_error(header: Header, response: Response, operation: str) -> VoxhubError:
    entry = lookup(header.result_code)
    vendor_message = redact_text(header.result_message or "")
    message = f"NHN result {entry.code} {entry.key}: {vendor_message or entry.meaning}"
    hint = _HINTS.get(entry.category)
    if entry.code in (404, 4041007):
        hint = "check base_url/host and api_version"
    if hint:
        message += f" ({hint})"
    details: dict[str, Any] = {
        "code": entry.code, "code_key": entry.key,
        "result_message": vendor_message, "http_status": response.status,
    }
    common: dict[str, Any] = {"provider": NAME, "operation": operation}
    category = entry.category
    if category is Category.INVALID_INPUT:
        return InvalidInputError(message, field=entry.field, details=details, **common)
    # An STT code is the service's own verdict: nothing was created, a resubmit is safe.
    # A gateway 5xx only says the upstream failed, which may be after it acted.
    in_doubt = entry.gateway and category is Category.UNAVAILABLE
    kw: dict[str, Any] = {
        "status": response.status, "code": entry.code, "details": details,
        "in_doubt": in_doubt, **common,
    }
    if category is Category.AUTH:
        return AuthenticationError(message, **kw)
    if category is Category.PERMISSION:
        return PermissionDeniedError(message, **kw)
    if category is Category.NOT_FOUND:
        return NotFoundError(message, **kw)
    if category is Category.RATE_LIMITED:
        return RateLimitedError(message, retry_after=_retry_after(response), **kw)
    if category is Category.UNAVAILABLE:
        return ProviderUnavailableError(message, **kw)
    return ProviderError(message, **kw)


def _status_error(response: Response, operation: str) -> VoxhubError:
    """A failure without an envelope (a proxy page, an injected fault...): by HTTP status."""
    snippet = redact_text(response.text[:200]).strip()
    message = f"NHN answered HTTP {response.status}" + (f": {snippet}" if snippet else "")
    if response.status in (400, 413, 415):
        return InvalidInputError(message, field="media" if response.status != 400 else None,
                                 provider=NAME, operation=operation,
                                 details={"http_status": response.status})
    if response.status == 429:
        return RateLimitedError(message, retry_after=_retry_after(response), status=429,
                                provider=NAME, operation=operation)
    return error_for_status(response.status, message, provider=NAME, operation=operation)


def _retry_after(response: Response) -> float | None:
    return parse_retry_after(response.header("Retry-After"))
