"""voxhub: speech and media jobs on any provider through one Python API, one CLI and one job store.

The public API for applications is what this module exports::

    from voxhub import Orchestrator, JobRequest, LocalFile

    with Orchestrator() as orch:
        outcome = orch.run(JobRequest(provider="revai", media=LocalFile("talk.wav")))
        print(outcome.result.text)  # run() raised the typed error if anything failed

Plugin authors import from :mod:`voxhub.plugin` instead (see ``docs/plugins.md``).

``import voxhub`` is cheap: each name is imported on first use (PEP 562), so a
program that only needs, say, :class:`JobRequest` never loads the HTTP client or
the job store. Importing voxhub configures nothing, logging included (see
``docs/configuration.md``).
"""

from __future__ import annotations

import importlib
import warnings

__version__ = "0.1.0"

# Not ``typing.TYPE_CHECKING``: importing typing costs more than the rest of this
# module; mypy treats any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .batches import (
        BatchCounts,
        BatchEvent,
        BatchInfo,
        BatchRun,
        BatchSettings,
        ItemRow,
        ItemState,
        Stage,
    )
    from .config import Config
    from .errors import (
        AuthenticationError,
        BatchBusyError,
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
    from .logging_setup import configure_logging
    from .media import media_from
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
    from .orchestrator import ClosePolicy, Orchestrator, Outcome, WaitPolicy

_ERRORS = (
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
)
_BATCHES = (
    "BatchCounts",
    "BatchEvent",
    "BatchInfo",
    "BatchRun",
    "BatchSettings",
    "ItemRow",
    "ItemState",
    "Stage",
)
_MODELS = (
    "JobHandle",
    "JobKind",
    "JobRequest",
    "JobState",
    "JobStatus",
    "LocalFile",
    "Media",
    "ModerationFinding",
    "ModerationReport",
    "RemoteUrl",
    "Result",
    "RtcChannel",
    "Segment",
    "StreamUrl",
    "TaskInfo",
    "Transcript",
    "TranscriptSlice",
    "Word",
)

# public name -> the module (under voxhub) that defines it
_PUBLIC: dict[str, str] = {
    **dict.fromkeys(_ERRORS, "errors"),
    **dict.fromkeys(_MODELS, "models"),
    **dict.fromkeys(_BATCHES, "batches"),
    "ClosePolicy": "orchestrator",
    "Config": "config",
    "Orchestrator": "orchestrator",
    "Outcome": "orchestrator",
    "WaitPolicy": "orchestrator",
    "configure_logging": "logging_setup",
    "media_from": "media",
    "render": "export",
}

# Names this module exported before it was trimmed to what applications use:
# still importable, with a DeprecationWarning saying where they live now.
_MOVED: dict[str, tuple[str, str]] = {
    **{
        name: ("provider", "voxhub.plugin")
        for name in (
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
        )
    },
    "hookimpl": ("markers", "voxhub.plugin"),
    "hookspec": ("markers", "voxhub.hookspecs"),
    "PluginManager": ("plugins", "voxhub.plugins"),
    "Store": ("store", "voxhub.store"),
    "RetryPolicy": ("policies", "voxhub.policies"),
    "Timeouts": ("policies", "voxhub.policies"),
    "Clock": ("clock", "voxhub.clock"),
    "FakeClock": ("clock", "voxhub.clock"),
    "SystemClock": ("clock", "voxhub.clock"),
    "Secret": ("redact", "voxhub.redact"),
    "ensure_default_logging": ("logging_setup", "voxhub.logging_setup"),
}


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    moved = _MOVED.get(name)
    if moved is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"voxhub.{name} is no longer part of the application API: import it from {moved[1]}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(f"{__name__}.{moved[0]}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AuthenticationError",
    "BatchBusyError",
    "BatchCounts",
    "BatchEvent",
    "BatchInfo",
    "BatchRun",
    "BatchSettings",
    "CallbackRejected",
    "ClosePolicy",
    "Config",
    "ConfigurationError",
    "InvalidInputError",
    "ItemRow",
    "ItemState",
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
    "Orchestrator",
    "Outcome",
    "PermissionDeniedError",
    "PluginError",
    "ProviderError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "RemoteUrl",
    "RequestTimeoutError",
    "Result",
    "RtcChannel",
    "Segment",
    "Stage",
    "StoreError",
    "StreamUrl",
    "TaskInfo",
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
    "media_from",
    "render",
]
