"""A small base for a vendor's HTTP API client, so providers hold only vendor logic.

In the spirit of Apache Libcloud's ``Connection``/``Response``: one subclass per
vendor says where the API lives, which headers authenticate a request and how the
vendor's error answers map onto :mod:`voxhub.errors`. Everything else — joining
URLs, sending through the core's transport (pooling, retries, ``Retry-After``,
rate limits, redaction), reading JSON into attrs classes with cattrs, refusing
non-JSON answers — is done here once::

    class RevApi(ApiClient):
        name = "Rev.ai"
        path_prefix = "/speechtotext/v1"

        def auth_headers(self) -> Mapping[str, str]:
            return self.ctx.auth          # what the provider's authenticate returned

        def parse_error(self, response: Response, operation: str) -> VoxhubError:
            ...                            # the vendor's codes -> voxhub errors

    api = RevApi(ctx)
    job = api.call("GET", f"/jobs/{job_id}", operation="status", into=RevJob)

A client is cheap to build (one per call is fine); it holds no connection of its
own — ``ctx.http`` does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload
from urllib.parse import quote

import cattrs

from .errors import ProviderError, RateLimitedError, VoxhubError, error_for_status
from .redact import redact, redact_text

if TYPE_CHECKING:
    from .provider import ProviderContext
    from .transport import Body, Response, Timeouts

__all__ = ["ApiClient", "path_segment"]

T = TypeVar("T")

#: The converter vendor schemas are read with unless a client sets its own: lenient
#: about extra keys (vendors add fields), strict about the types of the ones declared.
default_converter = cattrs.Converter(forbid_extra_keys=False)


def path_segment(value: str) -> str:
    """``value`` quoted for use as one URL path segment (a vendor id may hold ``/``)."""
    return quote(str(value), safe="")


class ApiClient:
    """One vendor API as seen from one provider context (``ctx``).

    Override :meth:`auth_headers` and :meth:`parse_error`; set :attr:`name`,
    and :attr:`path_prefix` when every path shares one. :attr:`converter` may be
    replaced by a vendor's own cattrs converter (hooks for its date formats...).
    """

    #: The vendor's name as people know it, used in error messages.
    name: str = "the provider"
    #: Prepended to every path (e.g. ``/speechtotext/v1``) unless the base URL ends with it.
    path_prefix: str = ""
    #: How vendor JSON becomes attrs classes.
    converter: cattrs.Converter = default_converter

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Every vendor's parse_error, however it is reached (some clients map answers
        # themselves), must say when the transport stopped retrying for the deadline.
        own = cls.__dict__.get("parse_error")
        if own is not None and not getattr(own, "_notes_gave_up", False):
            cls.parse_error = _noting_gave_up(own)  # type: ignore[method-assign,assignment]

    def __init__(self, ctx: ProviderContext, *, base_url: str | None = None) -> None:
        self.ctx = ctx
        self._base = (base_url or ctx.base_url).rstrip("/")

    # --- the two hooks a vendor overrides ------------------------------------------------

    def auth_headers(self) -> Mapping[str, str]:
        """Headers that authenticate a request; by default what ``authenticate`` returned."""
        auth = self.ctx.auth
        return auth if isinstance(auth, Mapping) else {}

    def parse_error(self, response: Response, operation: str) -> VoxhubError:
        """The voxhub error for a failed answer; the default maps by HTTP status.

        Overrides read the vendor's error body (codes, problem details) and should
        keep ``Retry-After`` on rate limits (:meth:`retry_after`). Whatever an
        override returns, when the transport stopped retrying early because the next
        wait would have passed the deadline in scope
        (:func:`~voxhub.policies.deadline_scope`; ``response.gave_up``), the error's
        message ends with why and ``details["gave_up"]`` is ``"deadline"``.
        """
        text = redact_text(response.text[:200].strip()) or f"HTTP {response.status}"
        common: dict[str, Any] = {
            "provider": self.ctx.provider,
            "operation": operation,
            "request_id": response.header("X-Request-ID"),
        }
        if response.status == 429:
            limited = RateLimitedError(
                f"{self.name} rate limit: {text}",
                retry_after=self.retry_after(response),
                status=429,
                **common,
            )
            return _note_gave_up(limited, response)
        return _note_gave_up(
            error_for_status(response.status, f"{self.name}: {text}", **common), response
        )

    # --- building and sending requests ---------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API root every path is joined to (profile ``base_url`` plus the prefix)."""
        if self.path_prefix and not self._base.endswith(self.path_prefix):
            return self._base + self.path_prefix
        return self._base

    def url(self, path: str) -> str:
        """An absolute URL for ``path`` (already absolute URLs pass through)."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        body: Body = None,
        headers: Mapping[str, str] | None = None,
        accept: str | None = "application/json",
        ok: Collection[int] = (),
        idempotent: bool | None = None,
        timeouts: Timeouts | None = None,
    ) -> Response:
        """Send one request; a failed answer (not 2xx and not in ``ok``) raises :meth:`parse_error`.

        ``idempotent`` defaults to True for every method but POST and PATCH: those are
        never sent twice by the transport when their fate is unknown.
        """
        sent = {**self.auth_headers(), **(headers or {})}
        if accept is not None:
            sent.setdefault("Accept", accept)
        response = self.ctx.http.request(
            method,
            self.url(path),
            operation=operation,
            headers=sent,
            params=params,
            json=json,
            body=body,
            idempotent=idempotent,
            timeouts=timeouts,
        )
        if not (response.ok or response.status in ok):
            raise self.parse_error(response, operation)
        return response

    @overload
    def call(
        self, method: str, path: str, *, operation: str, into: type[T], **kw: Any
    ) -> T: ...

    @overload
    def call(
        self, method: str, path: str, *, operation: str, into: None = None, **kw: Any
    ) -> Any: ...

    def call(
        self, method: str, path: str, *, operation: str, into: type[T] | None = None, **kw: Any
    ) -> T | Any:
        """:meth:`request`, then the JSON body — read into ``into`` when given."""
        response = self.request(method, path, operation=operation, **kw)
        data = self.json(response, operation)
        return data if into is None else self.read(data, into, operation)

    # --- reading answers -------------------------------------------------------------------

    def json(self, response: Response, operation: str) -> Any:
        """The body as JSON, or a :class:`ProviderError` that says what came instead."""
        return response.json(provider=self.ctx.provider, operation=operation)

    def read(self, data: Any, into: type[T], operation: str) -> T:
        """``data`` structured as ``into`` by :attr:`converter`, or a :class:`ProviderError`."""
        try:
            return self.converter.structure(data, into)
        except (cattrs.BaseValidationError, KeyError, TypeError, ValueError) as exc:
            detail = "; ".join(cattrs.transform_error(exc)) if isinstance(
                exc, cattrs.BaseValidationError
            ) else str(exc)
            raise ProviderError(
                f"unexpected answer from {self.name}: could not read it as "
                f"{into.__name__} ({redact_text(detail)})",
                provider=self.ctx.provider,
                operation=operation,
                details={"body": redact(data) if isinstance(data, Mapping | list) else None},
            ) from None

    @staticmethod
    def retry_after(response: Response) -> float | None:
        """The answer's ``Retry-After`` in seconds (a number or an HTTP date), if any."""
        from .transport import parse_retry_after

        return parse_retry_after(response.header("Retry-After"))


_ParseError = Callable[[ApiClient, "Response", str], VoxhubError]


def _note_gave_up(error: VoxhubError, response: Response) -> VoxhubError:
    """``error``, its message ending with why retrying stopped early, when it did."""
    if response.gave_up and "gave_up" not in error.details:
        error.message = f"{error.message} ({response.gave_up})"
        error.args = (error.message,)
        error.details["gave_up"] = "deadline"
    return error


def _noting_gave_up(parse_error: _ParseError) -> _ParseError:
    @functools.wraps(parse_error)
    def wrapped(self: ApiClient, response: Response, operation: str) -> VoxhubError:
        return _note_gave_up(parse_error(self, response, operation), response)

    wrapped._notes_gave_up = True  # type: ignore[attr-defined]
    return wrapped
