"""Agora's error answers mapped onto voxhub's error classes.

Agora answers failures in three shapes (spec sections 1.9, 1.10, 2.1)::

    {"message": "..."}                     Basic/token auth, STT v5/v6, Cloud Transcoder
    {"code": 2, "reason": "..."}           STT integer error codes (reason may be absent)
    {"reason": "...", "detail": "..."}     STT v7 (agents API)

:func:`parse_error` reads any of them, prefers the most specific signal
(integer code, then a known message, then the HTTP status) and returns a
voxhub error that keeps the HTTP status, Agora's code and the ``X-Request-ID``
(``request_id``) for support tickets. Vendor text is redacted and shortened
before it goes into a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from voxhub.plugin import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    VoxhubError,
    redact_text,
)

__all__ = [
    "RETRY_SCHEDULES",
    "AgoraInvalidRequestError",
    "BuilderTokenError",
    "TaskConflictError",
    "parse_error",
    "retry_delays",
]

#: Back-off (seconds between attempts) Agora asks for, by integer code (spec 1.9):
#: code 20 "retry after 3 then 6 s"; 501/502/504 "retry with 1/3/6 s back-off".
RETRY_SCHEDULES: dict[int, tuple[float, ...]] = {
    20: (3.0, 6.0),
    501: (1.0, 3.0, 6.0),
    502: (1.0, 3.0, 6.0),
    504: (1.0, 3.0, 6.0),
}

#: HTTP statuses retried with the 1/3/6 s schedule when the body carries no code.
_RETRY_STATUSES: dict[int, tuple[float, ...]] = {
    500: (1.0, 3.0, 6.0),
    502: (1.0, 3.0, 6.0),
    503: (1.0, 3.0, 6.0),
    504: (1.0, 3.0, 6.0),
}

_MAX_VENDOR_TEXT = 300
_TASK_ID_RE = re.compile(r"taskId is ([A-Za-z0-9_-]+)")


class BuilderTokenError(ProviderError):
    """The builder token is expired, unparsable or does not match the task / App ID.

    For a start or create this is recoverable (acquire a new token); for query,
    update and stop it means the handle's (builder token, task id) pair is wrong.
    """


class TaskConflictError(ProviderError):
    """A task already exists: same builder token (code 49), same instanceId or agent name (409).

    ``task_id`` is the existing task's id when Agora named it.
    """

    def __init__(self, message: str, *, task_id: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.task_id = task_id
        if task_id is not None:
            self.details.setdefault("task_id", task_id)


class AgoraInvalidRequestError(InvalidInputError):
    """Agora refused a parameter (code 2, ``body schema check fail``, HTTP 400).

    Carries ``status`` / ``code`` / ``request_id`` like every vendor refusal.
    """


def _vendor_text(body: Any) -> str:
    """The human text of an error body (message, reason and detail), redacted and shortened."""
    if isinstance(body, Mapping):
        parts = [str(body[k]) for k in ("message", "reason", "detail") if body.get(k)]
        text = "; ".join(parts)
    elif isinstance(body, str):
        text = body.strip()
    else:
        text = ""
    text = redact_text(text)
    if len(text) > _MAX_VENDOR_TEXT:
        text = text[: _MAX_VENDOR_TEXT - 3] + "..."
    return text


def _code_of(body: Any) -> int | None:
    if not isinstance(body, Mapping):
        return None
    code = body.get("code")
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().lstrip("-").isdigit():
        return int(code)
    return None


def retry_delays(error: VoxhubError) -> tuple[float, ...]:
    """The back-off schedule Agora documents for ``error`` (empty = do not retry)."""
    code = error.details.get("code")
    if isinstance(code, int) and code in RETRY_SCHEDULES:
        return RETRY_SCHEDULES[code]
    status = error.details.get("status")
    if code is None and isinstance(status, int) and status in _RETRY_STATUSES:
        return _RETRY_STATUSES[status]
    return ()


def parse_error(
    status: int,
    body: Any,
    *,
    provider: str,
    operation: str,
    request_id: str | None,
    product: str = "Real-Time STT",
    retry_after: float | None = None,
) -> VoxhubError:
    """The voxhub error for one failed Agora answer (see the module docstring).

    ``retry_after`` is the answer's ``Retry-After`` in seconds, kept on rate limits.
    """
    code = _code_of(body)
    text = _vendor_text(body)
    said = f" (Agora said: {text})" if text else ""
    kw: dict[str, Any] = {
        "provider": provider,
        "operation": operation,
        "status": status,
        "code": code,
        "request_id": request_id,
    }
    if request_id:
        said += f" [X-Request-ID {request_id}]"
    lowered = text.lower()

    # --- authentication (the seed's three 401 messages) -----------------------------
    if status == 401:
        if "token is expired" in lowered:
            return AuthenticationError(
                "the AccessToken2 sent for REST authentication is expired; build a new one "
                "(its lifetime is issue time + expire)" + said, **kw)
        if "invalid token" in lowered:
            return AuthenticationError(
                "Agora refused the AccessToken2 sent for REST authentication: it was not "
                "signed with this App ID's app certificate, or is malformed" + said, **kw)
        return AuthenticationError(
            "Agora refused the customer ID / customer secret (HTTP Basic authentication); "
            "check them in Console > RESTful API" + said, **kw)

    # --- integer codes (spec 1.9) -------------------------------------------------------
    if code is not None:
        found = _from_code(code, status, text, said, operation, product, kw)
        if found is not None:
            return found

    # --- known messages -------------------------------------------------------------------
    if "reaches out the limited time interval" in lowered:
        return BuilderTokenError(
            "the builder token is older than its 5-minute validity; acquire a new one" + said,
            **kw)
    if "buildertoken is invalid" in lowered or "buildertoken can not be parsed" in lowered:
        return BuilderTokenError(
            "the builder token is unknown or cannot be parsed; acquire a new one" + said, **kw)
    if "does not match with buildertoken" in lowered or "product name does not match" in lowered:
        return BuilderTokenError(
            "the builder token does not match this task or product; acquire a new one" + said,
            **kw)
    if "invalid_appid" in lowered or "appid is invalid" in lowered:
        return PermissionDeniedError(
            f"{product} is not enabled for this App ID (or the App ID is wrong); enable it "
            "in Agora Console" + said, **kw)
    if "task is not found" in lowered or ("not found" in lowered and status == 404):
        return NotFoundError("the task does not exist any more (it has ended)" + said, **kw)
    if "has been started" in lowered:
        match = _TASK_ID_RE.search(text)
        return TaskConflictError(
            "a task was already started with this builder token" + said,
            task_id=match.group(1) if match else None, **kw)
    if "schema check fail" in lowered or "invalid sequenceid" in lowered:
        return AgoraInvalidRequestError(
            f"{product} refused the request body" + said, provider=provider,
            operation=operation, status=status, code=code, request_id=request_id,
            field=_field_from(text))

    # --- HTTP status --------------------------------------------------------------------
    if status == 403:
        return PermissionDeniedError(
            f"{product} is not enabled for this App ID, or these credentials may not use it"
            + said, **kw)
    if status == 404:
        return NotFoundError("not found: the task does not exist any more" + said, **kw)
    if status == 409:
        match = _TASK_ID_RE.search(text)
        return TaskConflictError(
            "a task with the same instanceId / name already exists" + said,
            task_id=match.group(1) if match else _str_field(body, "agent_id", "taskId"), **kw)
    if status == 429:
        return RateLimitedError(
            "Agora's rate limit was exceeded (10 requests per second per account)" + said,
            retry_after=retry_after, **kw)
    if status >= 500:
        return ProviderUnavailableError(f"Agora answered HTTP {status}" + said, **kw)
    if status == 400:
        return AgoraInvalidRequestError(
            f"{product} refused the request (HTTP 400)" + said, provider=provider,
            operation=operation, status=status, code=code, request_id=request_id,
            field=_field_from(text))
    return ProviderError(f"unexpected answer from Agora (HTTP {status})" + said, **kw)


def _from_code(
    code: int,
    status: int,
    text: str,
    said: str,
    operation: str,
    product: str,
    kw: dict[str, Any],
) -> VoxhubError | None:
    if code == 2:
        return AgoraInvalidRequestError(
            "Agora refused a parameter (code 2: wrong type, case-sensitive name, out of range "
            "or missing)" + said, provider=kw["provider"], operation=operation, status=status,
            code=code, request_id=kw["request_id"], field=_field_from(text))
    if code in (1, 6, 23):
        return ProviderUnavailableError(
            f"Agora had an internal error (code {code}); try again" + said, **kw)
    if code == 20:
        return ProviderUnavailableError(
            "Agora timed out processing the request (code 20)" + said, **kw)
    if code == 49:
        match = _TASK_ID_RE.search(text)
        return TaskConflictError(
            "repeated request with the same builder token (code 49): the task was already "
            "started (or already stopped)" + said, task_id=match.group(1) if match else None,
            **kw)
    if code == 53:
        return BuilderTokenError(
            "the task id does not match the builder token (code 53)" + said, **kw)
    if code == 62:
        if operation == "acquire":
            return PermissionDeniedError(
                f"{product} is not enabled for this App ID (code 62); enable it in Agora "
                "Console" + said, **kw)
        return ProviderUnavailableError(
            "Agora reported a network problem (code 62); try again" + said, **kw)
    if code == 404:
        return NotFoundError("the task has already ended (code 404)" + said, **kw)
    if code in (501, 502, 504):
        return ProviderUnavailableError(
            f"Agora had an internal error (code {code})" + said, **kw)
    if code == 1001:
        return BuilderTokenError(
            "the builder token cannot be parsed (code 1001); acquire a new one" + said, **kw)
    if code == 1003:
        return BuilderTokenError(
            "the App ID or task id does not match the builder token (code 1003)" + said, **kw)
    return None


def _field_from(text: str) -> str | None:
    """The field an Agora validation message names, when it names one (``field: reason``)."""
    match = re.search(r"([A-Za-z_][A-Za-z0-9_]*(?:(?:\.|\[\d+\]\.?)[A-Za-z0-9_]+)*): ", text)
    return match.group(1) if match else None


def _str_field(body: Any, *keys: str) -> str | None:
    if isinstance(body, Mapping):
        for key in keys:
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return None
