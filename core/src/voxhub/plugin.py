"""Everything a provider plugin needs, in one module: ``from voxhub.plugin import ...``.

Plugin authors import from here and nowhere else in ``voxhub`` (the store, the
orchestrator and the CLI are the core's business, not a plugin's). The names fall
into five groups:

* **the contract** — :data:`hookimpl`, :class:`Provider`, :class:`ProviderInfo`,
  :class:`OptionSpec`, :class:`CredentialField`, :class:`Capability`,
  :class:`PollingHints`, :class:`ProviderContext`, :class:`Submitted`,
  :class:`CallbackRequest`, :class:`CallbackEvent`, :class:`Limit` (a vendor limit
  shared by every worker of a store, see ``ctx.limits``), :class:`LockedRecord` (what
  ``ctx.limits.locked`` yields: a lock every machine of a store shares, with a record);
* **the models** jobs are made of — :class:`JobRequest`, :class:`JobHandle`,
  :class:`JobStatus`, :class:`JobState`, :class:`JobKind`, the media types and
  the result types;
* **the errors** to raise — every class of :mod:`voxhub.errors` and
  :func:`error_for_status`;
* **HTTP** — :class:`ApiClient` (base URL, auth headers, JSON into attrs, one
  error-mapping hook), :class:`Response`, :class:`MultipartBody`, :class:`Part`,
  :class:`RawBody`, :class:`RetryPolicy`, :class:`Timeouts`, :func:`parse_retry_after`;
* **secrets** — :class:`Secret`, :func:`redact`, :func:`redact_text`, :func:`mask_url`;
* **sandboxes** — :class:`SandboxSpec` (the kit itself is :mod:`voxhub.sandbox_kit`,
  imported only by a plugin's ``sandbox.py``).

What the core guarantees a provider (so providers never re-check it): ``authenticate``
ran for the context before any other call and its answer is ``ctx.auth``; the
request passed every :class:`OptionSpec`, the job-kind and media checks and the
provider's ``validate`` hook before ``submit``; the job was recorded in the store
before ``submit`` is called, and an in-doubt ``submit`` (one that raised a
:class:`ProviderError` with ``in_doubt=True``) is resolved through ``recover``
before anything is sent again. See ``docs/plugins.md``.

Names that pull in heavy libraries (urllib3, cattrs, werkzeug) are imported on
first use, so that a plugin's ``plugin.py`` listing its providers stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (
    AuthenticationError,
    CallbackRejected,
    ConfigurationError,
    InvalidInputError,
    JobFailedError,
    NotFoundError,
    PermissionDeniedError,
    PluginError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    RequestTimeoutError,
    TransportError,
    UnsupportedOptionError,
    VoxhubError,
    error_for_status,
)
from .hookspecs import hookimpl
from .lazy import lazy_exports
from .models import (
    JobHandle,
    JobKind,
    JobRequest,
    JobState,
    JobStatus,
    LocalFile,
    Media,
    ModerationFinding,
    ModerationReport,
    RemoteUrl,
    Result,
    RtcChannel,
    Segment,
    StreamUrl,
    TaskInfo,
    Transcript,
    TranscriptSlice,
    Word,
)
from .redact import Secret, mask_url, redact, redact_text

if TYPE_CHECKING:
    from .api_client import ApiClient, path_segment
    from .policies import RetryPolicy, Timeouts
    from .provider import (
        CallbackEvent,
        CallbackRequest,
        Capability,
        CredentialField,
        OptionSpec,
        PollingHints,
        Provider,
        ProviderContext,
        ProviderInfo,
        ProviderSettings,
        Submitted,
    )
    from .sandbox import SandboxSpec
    from .shared_limits import Limit, LockedRecord
    from .transport import MultipartBody, Part, RawBody, Response, parse_retry_after

# name -> module that defines it, imported on first access (PEP 562).
_LAZY = {
    "ApiClient": "api_client",
    "path_segment": "api_client",
    "RetryPolicy": "policies",
    "Timeouts": "policies",
    "CallbackEvent": "provider",
    "CallbackRequest": "provider",
    "Capability": "provider",
    "CredentialField": "provider",
    "OptionSpec": "provider",
    "PollingHints": "provider",
    "Provider": "provider",
    "ProviderContext": "provider",
    "ProviderInfo": "provider",
    "ProviderSettings": "provider",
    "Submitted": "provider",
    "SandboxSpec": "sandbox",
    "Limit": "shared_limits",
    "LockedRecord": "shared_limits",
    "MultipartBody": "transport",
    "Part": "transport",
    "RawBody": "transport",
    "Response": "transport",
    "parse_retry_after": "transport",
}


__getattr__ = lazy_exports(__name__, {name: f"voxhub.{module}" for name, module in _LAZY.items()})


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ApiClient",
    "AuthenticationError",
    "CallbackEvent",
    "CallbackRejected",
    "CallbackRequest",
    "Capability",
    "ConfigurationError",
    "CredentialField",
    "InvalidInputError",
    "JobFailedError",
    "JobHandle",
    "JobKind",
    "JobRequest",
    "JobState",
    "JobStatus",
    "Limit",
    "LocalFile",
    "LockedRecord",
    "Media",
    "ModerationFinding",
    "ModerationReport",
    "MultipartBody",
    "NotFoundError",
    "OptionSpec",
    "Part",
    "PermissionDeniedError",
    "PluginError",
    "PollingHints",
    "Provider",
    "ProviderContext",
    "ProviderError",
    "ProviderInfo",
    "ProviderSettings",
    "ProviderUnavailableError",
    "RateLimitedError",
    "RawBody",
    "RemoteUrl",
    "RequestTimeoutError",
    "Response",
    "Result",
    "RetryPolicy",
    "RtcChannel",
    "SandboxSpec",
    "Secret",
    "Segment",
    "StreamUrl",
    "Submitted",
    "TaskInfo",
    "Timeouts",
    "Transcript",
    "TranscriptSlice",
    "TransportError",
    "UnsupportedOptionError",
    "VoxhubError",
    "Word",
    "error_for_status",
    "hookimpl",
    "mask_url",
    "parse_retry_after",
    "path_segment",
    "redact",
    "redact_text",
]
