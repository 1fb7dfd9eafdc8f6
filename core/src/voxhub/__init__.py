"""voxhub: speech and media jobs on any provider through one Python API, one CLI and one job store.

The public API is what this module exports; everything else is internal::

    from voxhub import Orchestrator, JobRequest, LocalFile

    with Orchestrator() as orch:
        outcome = orch.run(JobRequest(provider="revai", media=LocalFile("talk.wav")))
        print(outcome.result.text)

Plugin authors need :class:`Provider`, :class:`ProviderInfo`, :class:`OptionSpec`,
:class:`Capability` and :data:`hookimpl` (see ``docs/plugins.md``).
"""

from .clock import Clock, FakeClock, SystemClock
from .config import Config
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
    StoreError,
    TransportError,
    UnsupportedOptionError,
    VoxhubError,
    WaitTimeoutError,
)
from .export import render
from .hookspecs import hookimpl, hookspec
from .logging_setup import configure_logging, ensure_default_logging
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
from .orchestrator import ClosePolicy, Orchestrator, Outcome, WaitPolicy, media_from
from .plugins import PluginManager
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
from .redact import Secret
from .store import Store
from .transport import RetryPolicy, Timeouts

__version__ = "0.1.0"

ensure_default_logging()

__all__ = [
    "AuthenticationError",
    "CallbackEvent",
    "CallbackRejected",
    "CallbackRequest",
    "Capability",
    "Clock",
    "ClosePolicy",
    "Config",
    "ConfigurationError",
    "CredentialField",
    "FakeClock",
    "InvalidInputError",
    "JobFailedError",
    "JobHandle",
    "JobKind",
    "JobRequest",
    "JobState",
    "JobStatus",
    "LocalFile",
    "Media",
    "ModerationFinding",
    "ModerationReport",
    "NotFoundError",
    "OptionSpec",
    "Orchestrator",
    "Outcome",
    "PermissionDeniedError",
    "PluginError",
    "PluginManager",
    "PollingHints",
    "Provider",
    "ProviderContext",
    "ProviderError",
    "ProviderInfo",
    "ProviderSettings",
    "ProviderUnavailableError",
    "RateLimitedError",
    "RemoteUrl",
    "RequestTimeoutError",
    "Result",
    "RetryPolicy",
    "RtcChannel",
    "Secret",
    "Segment",
    "Store",
    "StoreError",
    "StreamUrl",
    "Submitted",
    "SystemClock",
    "TaskInfo",
    "Timeouts",
    "Transcript",
    "TranscriptSlice",
    "TransportError",
    "UnsupportedOptionError",
    "VoxhubError",
    "WaitPolicy",
    "WaitTimeoutError",
    "Word",
    "__version__",
    "configure_logging",
    "hookimpl",
    "hookspec",
    "media_from",
    "render",
]
