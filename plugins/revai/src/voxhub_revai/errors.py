"""Rev.ai's error answers mapped onto voxhub's errors: :func:`error_from_response`, the one table.

Rev answers failures with RFC 7807 problem details (``type``, ``title``, ``detail``,
and per-parameter reasons for 400s). Every member is kept in the error's
``details``; the message says what Rev said and, where it helps, what to do.
:meth:`voxhub_revai.api.RevApi.parse_error` calls this for every failed answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from voxhub.plugin import (
    InvalidInputError,
    ProviderError,
    RateLimitedError,
    Response,
    VoxhubError,
    error_for_status,
    parse_retry_after,
    redact_text,
)

from .schema import Problem

__all__ = ["error_from_response"]

NAME = "revai"

#: What a 409 means for each operation: a hint with ``{current}`` and ``{allowed}`` filled
#: in, and what to say for ``{current}`` when Rev did not say.
_CONFLICT_HINTS = {
    "close": ("the job is still {current}; Rev.ai deletes only finished jobs ({allowed}) - "
              "wait for it, then close again", "in progress"),
    "fetch": ("the job is {current}, the transcript needs {allowed}", "not finished"),
    "export": ("the job is {current}, captions need {allowed}", "not finished"),
}
_OTHER_CONFLICT = ("the job is {current} (allowed: {allowed})", "in another state")


def error_from_response(
    response: Response, operation: str, *, sent: Mapping[str, Any] | None = None
) -> VoxhubError:
    """The voxhub error for one of Rev's failed answers (problem details or not).

    ``sent`` is the options object of a ``POST /jobs``, to name the option a 404
    refers to (an unknown ``custom_vocabulary_id``).
    """
    try:
        data = json.loads(response.data) if response.data else None
    except (ValueError, RecursionError):  # RecursionError: a body nested thousands deep
        data = None
    problem = Problem.from_json(data)
    details = problem.to_details()
    request_id = response.header("X-Request-ID") or response.header("X-Rev-Request-Id")
    status = response.status
    text = problem.title or (response.text[:200].strip() if data is None else "")
    text = text or f"HTTP {status}"
    if problem.detail and problem.detail != problem.title:
        text = f"{text}: {problem.detail}"
    text = redact_text(text)  # whatever the server echoed, a known secret is not shown
    common: dict[str, Any] = {"provider": NAME, "operation": operation, "details": details}

    if status in (400, 405):
        params = problem.parameters
        reasons = redact_text(
            "; ".join(f"{k}: {' '.join(v) or 'invalid'}" for k, v in params.items()))
        details.update(status=status)
        if problem.kind:
            details["code"] = problem.kind
        return InvalidInputError(f"{text} ({reasons})" if reasons else text,
                                 field=next(iter(params)) if len(params) == 1 else None, **common)
    if status == 404 and operation == "submit":
        # On POST /jobs a 404 means an unknown custom vocabulary, or an option the EU
        # deployment does not offer.
        details.update(status=status)
        named = sent is not None and "custom_vocabulary_id" in sent
        return InvalidInputError(
            f"{text} (an unknown custom_vocabulary_id, or an option this deployment does not "
            "offer)", field="custom_vocabulary_id" if named else None, **common)
    if status == 413:
        details.update(status=status)
        return InvalidInputError(
            f"{text}: the upload is over Rev.ai's 2 GB multipart limit; submit a URL instead",
            field="media", **common)
    if status == 409:
        template, unknown = _CONFLICT_HINTS.get(operation, _OTHER_CONFLICT)
        hint = template.format(current=problem.current_value or unknown,
                               allowed=", ".join(problem.allowed_values or ()) or "?")
        return ProviderError(f"{text} - {hint}", status=status, code=problem.kind,
                             request_id=request_id, **common)
    if status == 403:
        text += " (a token of another deployment? US and EU accounts are separate)"
    if status == 429:
        return RateLimitedError(
            f"{text} (Rev.ai rate limit)",
            retry_after=parse_retry_after(response.header("Retry-After")),
            status=status, code=problem.kind, request_id=request_id, **common)
    return error_for_status(status, text, code=problem.kind, request_id=request_id, **common)
