"""The hook specifications: the whole contract between voxhub and its plugins.

Three families:

* **registration** (called once at load): ``register_providers``,
  ``register_sandboxes``, ``register_commands``;
* **lifecycle** (``firstresult``): ``authenticate``, ``validate``, ``submit``,
  ``submit_batch``, ``recover``, ``status``, ``fetch``, ``export``, ``close``,
  ``retry``, ``parse_callback``. The plugin manager routes each call to exactly one
  provider — the one the job names — so a provider never sees another's jobs.
  Observer plugins still see every call by implementing the same hook as a
  wrapper (``@hookimpl(wrapper=True)``), e.g. for metrics or cost tracking;
* **events** (broadcast to every plugin): ``job_submitted``,
  ``job_state_changed``, ``job_completed``, ``job_failed``. Events are
  notifications: an exception raised by an observer is logged, never fatal.

Hook implementations whose names match no specification are refused when the
plugin is loaded (a misspelt ``sumbit`` is an error, not silence).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .models import JobHandle, JobRequest, JobStatus, Result
    from .provider import CallbackEvent, CallbackRequest, Provider, ProviderContext, Submitted
    from .sandbox import SandboxSpec

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "voxhub"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- registration ---------------------------------------------------------------


@hookspec
def register_providers() -> Sequence[Provider]:
    """Return the providers this plugin offers (instances of :class:`voxhub.Provider`)."""
    raise NotImplementedError


@hookspec
def register_sandboxes() -> Sequence[SandboxSpec]:
    """Return the vendor emulators this plugin ships (``voxhub sandbox NAME``)."""
    raise NotImplementedError


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``voxhub`` command line (e.g. ``voxhub agora token``)."""


# --- lifecycle (routed to the job's provider) ------------------------------------


@hookspec(firstresult=True)
def authenticate(ctx: ProviderContext) -> Any:
    """Check credentials locally and return what requests need; cached per profile."""
    raise NotImplementedError


@hookspec(firstresult=True)
def validate(ctx: ProviderContext, request: JobRequest) -> JobRequest:
    """Cross-field validation before any request; return the (normalized) request."""
    raise NotImplementedError


@hookspec(firstresult=True)
def submit(ctx: ProviderContext, request: JobRequest, handle: JobHandle) -> JobHandle | Submitted:
    """Create the vendor job for ``request``; return ``handle`` with vendor ids set."""
    raise NotImplementedError


@hookspec(firstresult=True)
def submit_batch(
    ctx: ProviderContext, items: Sequence[tuple[JobRequest, JobHandle]]
) -> list[JobHandle | Submitted]:
    """Create several jobs in one vendor request, one handle per item, in order."""
    raise NotImplementedError


@hookspec(firstresult=True)
def recover(ctx: ProviderContext, request: JobRequest, handle: JobHandle) -> JobHandle | None:
    """Find the vendor job of a submit whose answer was lost, or ``None`` if it was never made."""
    raise NotImplementedError


@hookspec(firstresult=True)
def status(ctx: ProviderContext, handle: JobHandle) -> JobStatus:
    """The job's current normalized status (safe to call any number of times)."""
    raise NotImplementedError


@hookspec(firstresult=True)
def fetch(ctx: ProviderContext, handle: JobHandle) -> Result:
    """The job's result (Transcript, ModerationReport or TaskInfo)."""
    raise NotImplementedError


@hookspec(firstresult=True)
def export(ctx: ProviderContext, handle: JobHandle, fmt: str) -> str | None:
    """The result rendered natively by the vendor in ``fmt``; ``None`` lets the core render it."""
    raise NotImplementedError


@hookspec(firstresult=True)
def close(ctx: ProviderContext, handle: JobHandle) -> Any:
    """Stop or delete the vendor job (idempotent)."""
    raise NotImplementedError


@hookspec(firstresult=True)
def retry(ctx: ProviderContext, handle: JobHandle) -> JobHandle:
    """Ask the vendor to run a failed job again; return the handle with the (new) vendor ids."""
    raise NotImplementedError


@hookspec(firstresult=True)
def parse_callback(ctx: ProviderContext, request: CallbackRequest) -> CallbackEvent:
    """Verify and read a callback; raise :class:`voxhub.errors.CallbackRejected` to refuse it."""
    raise NotImplementedError


# --- events (broadcast) -----------------------------------------------------------


@hookspec
def job_submitted(handle: JobHandle, request: JobRequest) -> None:
    """A job was accepted by its provider."""


@hookspec
def job_state_changed(handle: JobHandle, old: JobStatus | None, new: JobStatus) -> None:
    """A job's normalized state changed."""


@hookspec
def job_completed(handle: JobHandle, result: Result) -> None:
    """A job succeeded and its result was stored."""


@hookspec
def job_failed(handle: JobHandle, error: Exception) -> None:
    """A job ended in failure (vendor failure or an error that will not be retried)."""
