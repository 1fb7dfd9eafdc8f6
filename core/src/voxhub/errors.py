"""The one error hierarchy of voxhub.

Every error names the provider and the operation it happened in, so a line in a
log or on the terminal says where to look. Provider plugins map their vendor's
answers onto these classes and keep the vendor's own details in ``details``.

Messages are written for people: they never contain secrets (tokens, keys,
signatures). Anything a vendor sent back goes through :func:`voxhub.redact.redact`
before it is stored here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import JobHandle

__all__ = [
    "AuthenticationError",
    "BatchBusyError",
    "CallbackRejected",
    "ConfigurationError",
    "InvalidInputError",
    "JobFailedError",
    "NotFoundError",
    "PermissionDeniedError",
    "PluginError",
    "ProviderError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "RequestTimeoutError",
    "StoreError",
    "TransportError",
    "UnsupportedOptionError",
    "VoxhubError",
    "WaitTimeoutError",
]


class VoxhubError(Exception):
    """Base class of every error voxhub raises on purpose.

    ``provider`` and ``operation`` say where it happened (either may be ``None``
    for errors outside a provider call, e.g. configuration). ``details`` keeps
    structured facts (vendor codes, problem-details fields) for programs.
    """

    #: Process exit status the CLI uses for this kind of error.
    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        operation: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.operation = operation
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        where = ":".join(p for p in (self.provider, self.operation) if p)
        return f"{where}: {self.message}" if where else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConfigurationError(VoxhubError):
    """Configuration or credentials are missing or malformed (found before any request)."""

    exit_code = 2


class PluginError(VoxhubError):
    """A plugin could not be loaded or broke the hook contract."""

    exit_code = 2


class StoreError(VoxhubError):
    """The job store could not be opened, migrated or written."""


class _VendorFacts:
    """Keeps what a vendor said about an error: HTTP status, its own code, its request id."""

    details: dict[str, Any]

    def _keep_vendor_facts(
        self, status: int | None, code: str | int | None, request_id: str | None
    ) -> None:
        self.status = status
        self.code = code
        self.request_id = request_id
        for key, value in (("status", status), ("code", code), ("request_id", request_id)):
            if value is not None:
                self.details.setdefault(key, value)


class InvalidInputError(_VendorFacts, VoxhubError):
    """The request is invalid; ``field`` names the offending input when known.

    Raised before any request when voxhub can tell, or from a vendor's refusal
    (then ``status``, ``code`` and ``request_id`` keep the vendor's facts).
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        status: int | None = None,
        code: str | int | None = None,
        request_id: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.field = field
        if field is not None:
            self.details.setdefault("field", field)
        self._keep_vendor_facts(status, code, request_id)


class UnsupportedOptionError(InvalidInputError):
    """The provider does not accept this option (or not in this combination)."""


class ProviderError(_VendorFacts, VoxhubError):
    """An error reported by (or about) a provider's service.

    ``status`` is the HTTP status when there was one; ``code`` the vendor's own
    error code; ``request_id`` the vendor's request id for support tickets.

    ``in_doubt`` is the exactly-once signal for a failed *creating* request: True
    when the request may have reached the vendor and created something (its answer
    was lost), False when it provably did not (refused, or never sent). The
    submission owner (:mod:`voxhub.submission`) asks the provider's ``recover`` hook
    about in-doubt submissions before it sends anything again. Left unset, it is
    the class default: :attr:`in_doubt_by_default`.
    """

    #: Whether an error of this class leaves a submission in doubt when nobody said.
    in_doubt_by_default = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | int | None = None,
        request_id: str | None = None,
        in_doubt: bool | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self._keep_vendor_facts(status, code, request_id)
        self.in_doubt: bool = self.in_doubt_by_default if in_doubt is None else in_doubt


class AuthenticationError(ProviderError):
    """Credentials were refused (missing, wrong, expired)."""

    exit_code = 3


class PermissionDeniedError(ProviderError):
    """Credentials are valid but not allowed to do this (wrong region, plan, resource)."""

    exit_code = 3


class NotFoundError(ProviderError):
    """The job (or another resource) does not exist, or no longer exists (expired, deleted)."""

    exit_code = 4


class RateLimitedError(ProviderError):
    """The provider asked us to slow down; ``retry_after`` is in seconds when it said so."""

    exit_code = 5

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after
        if retry_after is not None:
            self.details.setdefault("retry_after", retry_after)


class ProviderUnavailableError(ProviderError):
    """The provider's service failed or could not be reached (5xx, connection errors)."""

    exit_code = 5

    # The service failed while (or before) answering: the request may have landed.
    in_doubt_by_default = True


class TransportError(ProviderUnavailableError):
    """The HTTP exchange itself failed (connection refused or reset, TLS, protocol)."""


class RequestTimeoutError(ProviderUnavailableError):
    """A request took longer than its connect or read timeout."""


class JobFailedError(ProviderError):
    """The job reached a terminal failure; ``reason`` and ``detail`` are the vendor's."""

    exit_code = 6

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        detail: str | None = None,
        handle: JobHandle | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.reason = reason
        self.detail = detail
        self.handle = handle
        if reason is not None:
            self.details.setdefault("reason", reason)


class WaitTimeoutError(VoxhubError):
    """Waiting gave up before the job finished. The job keeps running.

    ``handle`` identifies the job so it can be resumed (``voxhub wait JOB``).
    """

    exit_code = 7

    def __init__(self, message: str, *, handle: JobHandle, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.handle = handle
        self.details.setdefault("job_id", handle.job_id)


class BatchBusyError(VoxhubError):
    """Another live process is working through this batch; ``owner`` names it (``host:pid:…``).

    Nothing was started: run the command again once that process ended, or stop it.
    """

    exit_code = 8

    def __init__(self, message: str, *, owner: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.owner = owner
        self.details.setdefault("owner", owner)


class CallbackRejected(VoxhubError):
    """A callback request was refused; ``http_status`` is the answer to give the caller."""

    def __init__(self, message: str, *, http_status: int = 400, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.http_status = http_status


_STATUS_CLASSES: dict[int, type[ProviderError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    410: NotFoundError,
    429: RateLimitedError,
}


def error_for_status(status: int, message: str, **kw: Any) -> ProviderError:
    """The error class that fits an HTTP status, for providers without a finer mapping.

    4xx statuses other than those above become :class:`ProviderError` unless the
    caller knows better (e.g. a 400 naming a field is an :class:`InvalidInputError`).
    """
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status](message, status=status, **kw)
    if status >= 500:
        return ProviderUnavailableError(message, status=status, **kw)
    return ProviderError(message, status=status, **kw)
