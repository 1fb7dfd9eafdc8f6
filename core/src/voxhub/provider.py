"""What a provider is: its declared metadata, the context it is called with, and a base class.

A plugin author subclasses :class:`Provider`, fills in :attr:`Provider.info`
and overrides the lifecycle methods (``submit``, ``status``, ``fetch``,
``close`` and optionally ``authenticate``, ``validate``, ``recover``,
``export``, ``parse_callback``). The base class turns those methods into pluggy
hook implementations, so an author never needs to touch pluggy — but raw
``@voxhub.hookimpl`` functions work as well (see :mod:`voxhub.hookspecs`).
"""

from __future__ import annotations

import builtins
import enum
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from .clock import Clock
from .errors import InvalidInputError, NotFoundError, UnsupportedOptionError
from .lazy import check_entry
from .markers import hookimpl
from .models import JobHandle, JobKind, JobRequest, JobStatus, Result
from .policies import RetryPolicy
from .redact import Secret, register_secret

if TYPE_CHECKING:
    import structlog

    from ._provider_limits import ProviderLimits
    from .shared_limits import Limit
    from .transport import ProviderHttp

__all__ = [
    "CallbackEvent",
    "CallbackRequest",
    "Capability",
    "CredentialField",
    "OptionSpec",
    "PollingHints",
    "Provider",
    "ProviderContext",
    "ProviderInfo",
    "ProviderSettings",
    "Submitted",
]


class Capability(enum.StrEnum):
    """Features a provider may offer, declared as data (shown in ``voxhub providers``)."""

    UPLOAD = "upload"  # accepts local files
    URL = "url"  # accepts remote URLs
    CALLBACKS = "callbacks"  # can call a webhook when done
    CALLBACK_ONLY = "callback-only"  # results arrive only by callback (no polling)
    CAPTIONS = "captions"  # native SRT/VTT export
    DELETE = "delete"  # close deletes the vendor's data
    CANCEL = "cancel"  # close stops running work
    LIST = "list"  # can list the vendor's jobs
    RECOVER = "recover"  # can find a job whose submit answer was lost
    PROGRESS = "progress"  # status reports a progress share
    RETRY = "retry"  # a failed job can be retried by the vendor
    DIARIZATION = "diarization"
    WORD_TIMINGS = "word-timings"
    BATCH_SUBMIT = "batch-submit"  # several jobs in one request


@attrs.frozen
class OptionSpec:
    """A provider option: its type and limits, checked before any request.

    ``type`` is one of ``bool``, ``int``, ``float``, ``str``, ``list``, ``dict``.
    Values given as strings (``--option k=v`` on the CLI) are converted: JSON for
    lists and dicts, ``true``/``false`` for booleans.
    """

    name: str
    type: builtins.type
    help: str = ""
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    max_length: int | None = None
    item_type: builtins.type | None = None
    max_items: int | None = None
    default: Any = None
    secret: bool = False

    def convert(self, value: Any, *, provider: str) -> Any:
        """Validate (and convert from string when needed) one value of this option."""
        where = f"option {self.name!r}"

        def bad(msg: str) -> InvalidInputError:
            return InvalidInputError(
                f"{where}: {msg}", field=self.name, provider=provider, operation="validate"
            )

        if isinstance(value, str) and self.type is not str:
            value = _from_string(value, self.type, bad)
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type in (int, float) and isinstance(value, bool):
            raise bad(f"expected {self.type.__name__}, got a boolean")
        if not isinstance(value, self.type):
            raise bad(f"expected {self.type.__name__}, got {type(value).__name__}")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise bad(f"{value!r} is not one of: {allowed}")
        number: Any = value  # a number here: the isinstance check above allowed only the type
        if self.min is not None and number < self.min:
            raise bad(f"{value} is below the minimum {_num(self.min)} (allowed {self._range()})")
        if self.max is not None and number > self.max:
            raise bad(f"{value} is above the maximum {_num(self.max)} (allowed {self._range()})")
        if self.max_length is not None and isinstance(value, str) and len(value) > self.max_length:
            raise bad(f"longer than {self.max_length} characters")
        if isinstance(value, list):
            if self.max_items is not None and len(value) > self.max_items:
                raise bad(f"at most {self.max_items} items allowed, got {len(value)}")
            if self.item_type is not None:
                for i, item in enumerate(value):
                    if not isinstance(item, self.item_type):
                        raise bad(f"item {i} should be {self.item_type.__name__}")
                    if (
                        self.max_length is not None
                        and isinstance(item, str)
                        and len(item) > self.max_length
                    ):
                        raise bad(f"item {i} is longer than {self.max_length} characters")
        return value

    def _range(self) -> str:
        lo = "-inf" if self.min is None else _num(self.min)
        hi = "inf" if self.max is None else _num(self.max)
        return f"{lo}..{hi}"


def _register_secret_values(value: Any) -> None:
    if isinstance(value, str):
        register_secret(value)
    elif isinstance(value, list | tuple):
        for item in value:
            _register_secret_values(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            _register_secret_values(item)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _from_string(text: str, target: type, bad: Callable[[str], InvalidInputError]) -> Any:
    if target is bool:
        lowered = text.strip().lower()
        if lowered in {"true", "1", "yes", "on"}:
            return True
        if lowered in {"false", "0", "no", "off"}:
            return False
        raise bad(f"expected true or false, got {text!r}")
    if target in (int, float):
        try:
            return target(text)
        except ValueError:
            raise bad(f"expected {target.__name__}, got {text!r}") from None
    if target in (list, dict):
        stripped = text.lstrip()
        # Text that starts like JSON must be valid JSON: a broken ``["a",`` is a typo, never
        # the one-item list ``['["a"']``. Plain text stays a comma list (friendlier on a CLI).
        if target is list and not stripped.startswith(("[", "{", '"')):
            return [item.strip() for item in text.split(",") if item.strip()]
        try:
            return json.loads(text)
        except RecursionError:
            raise bad("JSON value nested too deeply") from None
        except ValueError as exc:
            kind = "a JSON list" if target is list else "a JSON object"
            raise bad(f"expected {kind} ({exc.msg} at character {exc.pos})"
                      if isinstance(exc, json.JSONDecodeError) else f"expected {kind}") from None
    return text


@attrs.frozen
class CredentialField:
    """A configuration field of a provider profile (``secret`` ones are masked everywhere)."""

    name: str
    help: str = ""
    secret: bool = True
    required: bool = True


@attrs.frozen
class PollingHints:
    """How to wait for this provider's jobs: first poll, typical duration, cap between polls."""

    first_poll: float = 2.0
    typical_duration: float = 60.0
    max_interval: float = 30.0


def _check_entry(_instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None:
        check_entry(value, field=f"ProviderInfo.{attribute.name}")


@attrs.frozen
class ProviderInfo:
    """Metadata a provider declares: shown by ``voxhub providers``, used for validation.

    ``entry`` names the provider class as ``"package.module:Class"``. With it, a
    plugin's ``register_providers`` returns this object instead of an instance, and
    the class is imported only when the provider is first used (see
    :func:`voxhub.hookspecs.register_providers`). This module imports no HTTP
    library, so declaring metadata stays cheap. ``limits`` are the vendor's published
    limits (:class:`~voxhub.shared_limits.Limit`), shared by every worker of a store.
    """

    name: str
    kinds: frozenset[JobKind]
    description: str = ""
    capabilities: frozenset[Capability] = frozenset()
    options: tuple[OptionSpec, ...] = ()
    credentials: tuple[CredentialField, ...] = ()
    default_base_url: str | None = None
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    polling: PollingHints = attrs.field(factory=PollingHints)
    requests_per_second: float | None = None
    limits: tuple[Limit, ...] = ()
    export_formats: frozenset[str] = frozenset()  # formats ``export`` renders natively
    # Media types (patterns such as ``audio/*``) a local file must be, by its magic
    # bytes, before it is recorded: see :mod:`voxhub.media_checks`. ``{"*/*"}`` takes any.
    media_types: frozenset[str] = frozenset({"audio/*", "video/*"})
    docs_url: str | None = None
    entry: str | None = attrs.field(default=None, validator=_check_entry)

    def option(self, name: str) -> OptionSpec | None:
        return next((o for o in self.options if o.name == name), None)

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Check every option against its spec; unknown names are refused."""
        checked: dict[str, Any] = {}
        for key, value in options.items():
            spec = self.option(key)
            if spec is None:
                known = ", ".join(sorted(o.name for o in self.options)) or "none"
                raise UnsupportedOptionError(
                    f"unknown option {key!r} (accepted: {known})",
                    field=key,
                    provider=self.name,
                    operation="validate",
                )
            checked[key] = spec.convert(value, provider=self.name)
            if spec.secret:
                # Masked by value from now on in logs and errors, and sealed in the job store.
                _register_secret_values(checked[key])
        return checked


@attrs.frozen
class ProviderSettings:
    """A provider profile's resolved configuration (file + environment).

    Secret fields are :class:`~voxhub.redact.Secret`; use :meth:`secret` to read one.
    """

    provider: str
    profile: str
    base_url: str | None
    values: Mapping[str, Any] = attrs.field(factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def secret(self, name: str) -> str | None:
        """The revealed value of a secret field, or ``None`` if not configured."""
        value = self.values.get(name)
        if value is None:
            return None
        return value.reveal() if isinstance(value, Secret) else str(value)

    def require(self, name: str) -> str:
        """Like :meth:`secret` but a :class:`~voxhub.errors.ConfigurationError` when missing."""
        from .errors import ConfigurationError

        value = self.secret(name)
        if not value:
            env = f"VOXHUB_{self.profile.upper().replace('-', '_')}_{name.upper()}"
            raise ConfigurationError(
                f"missing setting {name!r} for profile {self.profile!r} "
                f"(set {env} or add it to the config file)",
                provider=self.provider,
                operation="authenticate",
            )
        return value


@attrs.define
class ProviderContext:
    """What every lifecycle call receives: who is calling, with what settings and tools.

    ``auth`` holds what the provider's ``authenticate`` returned (cached per
    profile). ``callback_url_for(job_id)`` gives the public callback URL for a
    job when a callback receiver is configured (else ``None``).
    ``callback_events(job_id)`` returns the payloads (``CallbackEvent.data``) of
    every verified callback stored for a job, oldest first — what providers
    whose results arrive only by callback build their results from.
    ``state_dir`` is a directory beside the job store that every process sharing
    the store also shares (for cross-process locks). ``limits`` are the limits shared
    by every process and machine of the store (:mod:`voxhub._provider_limits`).
    """

    provider: str
    profile: str
    settings: ProviderSettings
    http: ProviderHttp
    clock: Clock
    log: structlog.typing.FilteringBoundLogger
    auth: Any = None
    callback_url_for: Callable[[str], str | None] = lambda _job_id: None
    callback_events: Callable[[str], list[Mapping[str, Any]]] = lambda _job_id: []
    state_dir: Path | None = None
    limits: ProviderLimits = attrs.field(
        default=attrs.Factory(lambda ctx: _limits_beside(ctx), takes_self=True)
    )

    @property
    def base_url(self) -> str:
        """The profile's base URL (config ``base_url``) or the provider's default."""
        return (self.settings.base_url or "").rstrip("/")


def _limits_beside(ctx: ProviderContext) -> ProviderLimits:
    from ._provider_limits import limits_beside  # here: only contexts built by hand need it

    return limits_beside(ctx)


@attrs.frozen
class Submitted:
    """What ``submit`` may return instead of a bare handle: a job that finished at once.

    Synchronous vendor APIs (NHN's sync STT) return their result with the answer;
    the orchestrator stores ``status`` and ``result`` so ``status``/``fetch`` work
    the same as for asynchronous jobs, without another request.
    """

    handle: JobHandle
    status: JobStatus | None = None
    result: Result | None = None


@attrs.frozen
class CallbackRequest:
    """An incoming provider callback: headers (lower-cased names), raw body, query and token."""

    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str] = attrs.field(factory=dict)
    token: str | None = None


@attrs.frozen
class CallbackEvent:
    """What a provider made of a verified callback.

    ``vendor_id`` finds the job (matched against the handle's vendor ids) unless
    ``job_id`` is known. ``status`` is the new state if it says one;
    ``confirm`` asks the orchestrator to check the state by one status call
    before trusting it (for unsigned webhooks); ``data`` is appended to the job's
    events (e.g. moderation findings); ``delivery_id`` identifies the delivery for
    replay detection; ``response`` is the body to answer with.
    """

    vendor_id: str | None = None
    job_id: str | None = None
    status: JobStatus | None = None
    confirm: bool = False
    data: Mapping[str, Any] = attrs.field(factory=dict)
    #: What makes this delivery the same as another one, by meaning (e.g. vendor job id and
    #: reported status): a second callback with the same ``delivery_id`` for the same job is
    #: a replay, acknowledged and not recorded again. ``None``: the receiver compares the
    #: body's canonical JSON (key order and whitespace ignored) instead.
    delivery_id: str | None = None
    response_status: int = 200
    response_body: bytes = b""
    response_content_type: str = "text/plain"


class Provider:
    """Base class for providers. Override the lifecycle methods you support.

    Every method receives a :class:`ProviderContext`. Methods raise errors from
    :mod:`voxhub.errors`; the orchestrator records the job before ``submit`` is
    called and stores every handle it returns.
    """

    info: ClassVar[ProviderInfo]

    # --- methods plugin authors override -----------------------------------------

    def authenticate(self, ctx: ProviderContext) -> Any:
        """Check the profile's credentials locally and return what requests need (headers...)."""
        return None

    def validate(self, ctx: ProviderContext, request: JobRequest) -> JobRequest:
        """Cross-field checks beyond the per-option specs; return the request (maybe normalized)."""
        return request

    def submit(
        self, ctx: ProviderContext, request: JobRequest, handle: JobHandle
    ) -> JobHandle | Submitted:
        """Create the vendor job; return ``handle`` with the vendor's ids filled in."""
        raise NotImplementedError

    def submit_batch(
        self, ctx: ProviderContext, items: Sequence[tuple[JobRequest, JobHandle]]
    ) -> list[JobHandle | Submitted]:
        """Create several jobs in one vendor request (only with ``Capability.BATCH_SUBMIT``)."""
        return [self.submit(ctx, request, handle) for request, handle in items]

    def recover(
        self, ctx: ProviderContext, request: JobRequest, handle: JobHandle
    ) -> JobHandle | None:
        """Find the job of a submit whose answer was lost (by idempotency key), else ``None``."""
        raise NotImplementedError

    def status(self, ctx: ProviderContext, handle: JobHandle) -> JobStatus:
        raise NotImplementedError

    def fetch(self, ctx: ProviderContext, handle: JobHandle) -> Result:
        raise NotImplementedError

    def export(self, ctx: ProviderContext, handle: JobHandle, fmt: str) -> str | None:
        """The result rendered natively by the vendor in ``fmt`` (e.g. captions), or ``None``."""
        return None

    def close(self, ctx: ProviderContext, handle: JobHandle) -> None:
        """Stop or delete the vendor job; closing an already closed job is not an error."""

    def retry(self, ctx: ProviderContext, handle: JobHandle) -> JobHandle:
        """Run a failed job again at the vendor (only with ``Capability.RETRY``)."""
        raise NotImplementedError

    def parse_callback(self, ctx: ProviderContext, request: CallbackRequest) -> CallbackEvent:
        """Verify and read a callback this provider sent."""
        raise NotFoundError(
            "this provider does not accept callbacks",
            provider=ctx.provider,
            operation="callback",
            status=404,
        )

    # --- the hook implementations pluggy sees (routing is done by the plugin manager) ----

    @hookimpl(specname="authenticate")
    def _hook_authenticate(self, ctx: ProviderContext) -> Any:
        return self.authenticate(ctx)

    @hookimpl(specname="validate")
    def _hook_validate(self, ctx: ProviderContext, request: JobRequest) -> JobRequest:
        return self.validate(ctx, request)

    @hookimpl(specname="submit")
    def _hook_submit(self, ctx: ProviderContext, request: JobRequest, handle: JobHandle) -> Any:
        return self.submit(ctx, request, handle)

    @hookimpl(specname="submit_batch")
    def _hook_submit_batch(
        self, ctx: ProviderContext, items: Sequence[tuple[JobRequest, JobHandle]]
    ) -> Any:
        return self.submit_batch(ctx, items)

    @hookimpl(specname="recover")
    def _hook_recover(self, ctx: ProviderContext, request: JobRequest, handle: JobHandle) -> Any:
        return self.recover(ctx, request, handle)

    @hookimpl(specname="status")
    def _hook_status(self, ctx: ProviderContext, handle: JobHandle) -> JobStatus:
        return self.status(ctx, handle)

    @hookimpl(specname="fetch")
    def _hook_fetch(self, ctx: ProviderContext, handle: JobHandle) -> Result:
        return self.fetch(ctx, handle)

    @hookimpl(specname="export")
    def _hook_export(self, ctx: ProviderContext, handle: JobHandle, fmt: str) -> Any:
        return self.export(ctx, handle, fmt)

    @hookimpl(specname="close")
    def _hook_close(self, ctx: ProviderContext, handle: JobHandle) -> Any:
        self.close(ctx, handle)
        return True

    @hookimpl(specname="retry")
    def _hook_retry(self, ctx: ProviderContext, handle: JobHandle) -> JobHandle:
        return self.retry(ctx, handle)

    @hookimpl(specname="parse_callback")
    def _hook_parse_callback(self, ctx: ProviderContext, request: CallbackRequest) -> CallbackEvent:
        return self.parse_callback(ctx, request)
