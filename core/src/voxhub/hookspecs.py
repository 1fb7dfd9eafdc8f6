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

Registration is cheap by design: a plugin's entry-point module (``plugin.py``)
names its code by ``"module:Name"`` strings instead of importing it, so listing
providers, sandboxes and commands imports no provider code, HTTP client,
emulator or recognition engine. The named code is imported on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .markers import PROJECT, hookimpl, hookspec

if TYPE_CHECKING:
    import click

    from .models import JobHandle, JobRequest, JobStatus, Result
    from .provider import (
        CallbackEvent,
        CallbackRequest,
        Provider,
        ProviderContext,
        ProviderInfo,
        Submitted,
    )
    from .sandbox import SandboxSpec

__all__ = ["PROJECT", "hookimpl", "hookspec"]


# --- registration ---------------------------------------------------------------


@hookspec
def register_providers() -> Sequence[ProviderInfo | Provider]:
    """Return the providers this plugin offers.

    Preferred: a :class:`~voxhub.provider.ProviderInfo` per provider whose ``entry``
    names the provider class, e.g. ``ProviderInfo(name="acme", ..., entry=
    "voxhub_acme.provider:AcmeProvider")``. The metadata is listed at once; the
    class is imported, instantiated (without arguments) and registered only when the
    provider is first called. A failure then is a :class:`~voxhub.errors.PluginError`
    naming the provider and its entry.

    Also accepted: a :class:`~voxhub.provider.Provider` instance, registered at
    once (its module, and everything that imports, is loaded with the plugin).
    """
    raise NotImplementedError


@hookspec
def register_sandboxes() -> Sequence[SandboxSpec]:
    """Return the vendor emulators this plugin ships (``voxhub sandbox NAME``).

    Name each emulator class by a string, ``SandboxSpec("acme",
    "voxhub_acme.sandbox:AcmeSandbox", "...")``, so that it (and werkzeug) is
    imported only when the sandbox starts.
    """
    raise NotImplementedError


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``voxhub`` command line (e.g. ``voxhub agora token``).

    Add them lazily, declared by name, with the one-line help ``voxhub --help``
    shows::

        from voxhub.cli import LazyCommand

        cli.add_command(LazyCommand("acme", "voxhub_acme.cli:acme", "Acme account tools."))

    The module named is imported only when the command runs (or its own ``--help``
    is asked for). The ``voxhub`` CLI calls this hook only when it needs plugin
    commands: to list them in ``voxhub --help`` or to run a name that is not a core
    command. Adding a ready :class:`click.Command` also works, at the price of
    importing its module whenever plugin commands are listed.
    """


# --- lifecycle (routed to the job's provider) ------------------------------------


@hookspec(firstresult=True)
def authenticate(ctx: ProviderContext) -> Any:
    """Check credentials locally and return what requests need; cached per profile.

    Called once per provider profile when the core builds its context; the value
    is ``ctx.auth`` in every later call, so no other hook needs to authenticate.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def validate(ctx: ProviderContext, request: JobRequest) -> JobRequest:
    """Cross-field validation before any request; return the (normalized) request.

    The core has already resolved the job kind (one the provider declares),
    checked the media against its capabilities and converted ``request.options``
    with ``ProviderInfo.validate_options``. Raise
    :class:`~voxhub.errors.InvalidInputError` naming the field to refuse.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def submit(ctx: ProviderContext, request: JobRequest, handle: JobHandle) -> JobHandle | Submitted:
    """Create the vendor job for ``request``; return ``handle`` with vendor ids set.

    What the core guarantees before calling it, on every path (first submit, a
    resend after ``recover`` found nothing, ``voxhub jobs resume``):

    * ``authenticate`` has run for ``ctx`` (its value is ``ctx.auth``);
    * ``request`` went through ``validate`` (and the core's kind, media and option
      checks) in this process, so the plugin need not re-check it;
    * ``request.callback_url`` is set when the job takes callbacks, and
      ``handle.idempotency_key`` is always set;
    * this process holds the job's claim: nobody else sends it meanwhile.

    Send the one creating request, once: do not retry an ambiguous failure and do
    not call ``recover`` yourself. Raise a :class:`~voxhub.errors.ProviderError`
    whose ``in_doubt`` says whether the request may have created the vendor job
    (True: its answer was lost, or a 5xx came back) or provably did not (False:
    refused, or never sent). For in-doubt failures the core backs off (the
    provider's ``RetryPolicy``) and calls ``recover``; when that finds nothing and
    the request may still be on its way (no answer was seen), it waits until it
    cannot be and asks ``recover`` again. It sends again only when nothing was
    created, at most ``RetryPolicy.max_attempts`` times per call.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def submit_batch(
    ctx: ProviderContext, items: Sequence[tuple[JobRequest, JobHandle]]
) -> list[JobHandle | Submitted]:
    """Create several jobs in one vendor request, one handle per item, in order.

    The same guarantees and error contract as ``submit``. When it fails in doubt,
    the core resolves each job alone (``recover``, then ``submit`` for the jobs
    that were not created).
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def recover(ctx: ProviderContext, request: JobRequest, handle: JobHandle) -> JobHandle | None:
    """Find the vendor job of a submit whose answer was lost, or ``None`` if it was never made.

    Look it up by something the submit sent (``handle.idempotency_key``, a name
    derived from it). ``None`` must mean "no such job exists": the core then sends
    the job again. Raise when the lookup itself fails; the job stays in doubt.
    Declare ``Capability.RECOVER`` to be asked.
    """
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
