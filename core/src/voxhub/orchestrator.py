"""The synchronous orchestrator apps embed: submit, wait, fetch, close, and batches.

:class:`Orchestrator` is a facade over small parts, each the one owner of its
concern (``voxhub transcribe`` goes through exactly this path)::

    Orchestrator.submit(request)
      -> RequestChecks.prepare          (validation)  kind, media, options, ``validate``
      -> Submission.submit              (submission)  record -> claim -> ``submit`` -> accept,
                                                      in-doubt resolution through ``recover``
           -> ProviderCalls.submit      (calls)       the provider's ``submit`` hook
    Orchestrator.wait(job)   -> Waiter  (waiting)     ``status`` with back-off, or callback events
    Orchestrator.fetch(job)  -> ``fetch`` hook, result stored
    Orchestrator.close(job)  -> ``close`` hook
    Orchestrator.record_batch / run_batch / run_many / resume -> Batches (batches):
                                      a batch recorded whole, then worked through

Provider contexts (settings, the bound HTTP client, the authenticated
credentials) are built and cached here; callback URLs come from
:class:`~voxhub.callback_tokens.CallbackTokens`; every event hook goes out
through :class:`~voxhub.events.JobEvents`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from ._batch_steps import BatchSteps
from ._database import PostgresUrl
from ._provider_limits import store_limits
from ._status_steps import JobRef, StatusSteps, accepted
from ._stored_exports import keep_export, stored_export
from .batches import Batches, BatchInfo, BatchRun, BatchSettings, ClosePolicy, Outcome
from .callback_tokens import CallbackTokens
from .clock import Clock, SystemClock
from .config import Config
from .errors import (
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    PluginError,
    ProviderError,
)
from .events import JobEvents, failure
from .export import render
from .logging_setup import ensure_default_logging
from .models import JobHandle, JobKind, JobRequest, JobState, JobStatus, Result
from .plugins import PluginManager, ProviderEntry
from .provider import Capability, ProviderContext
from .store import JobRecord, Phase, Store
from .submission import Submission, derive_idempotency_key
from .transport import HttpClient, RateLimiter, Timeouts
from .validation import RequestChecks
from .waiting import Waiter, WaitPolicy

__all__ = [
    "BatchInfo",
    "BatchRun",
    "BatchSettings",
    "ClosePolicy",
    "JobRef",
    "Orchestrator",
    "Outcome",
    "WaitPolicy",
    "derive_idempotency_key",
]

log = structlog.get_logger("voxhub.orchestrator")

#: Formats always rendered by voxhub, never by a vendor: one shape for every provider.
_OWN_FORMATS = frozenset({"txt", "json"})

#: Job kinds whose work runs live: they have a (partial) result before they end.
_LIVE_KINDS = frozenset(
    {JobKind.CHANNEL_TRANSCRIPTION, JobKind.TRANSCODING, JobKind.STREAM_MODERATION}
)


class Orchestrator(StatusSteps, BatchSteps):
    """Runs jobs on providers and keeps every job in the store.

    Thread-safe: one orchestrator can serve a web backend's threads. Construct
    it once per process; it owns the HTTP pool and the store connections.
    """

    def __init__(
        self,
        *,
        store: Store | str | Path | PostgresUrl | None = None,
        config: Config | None = None,
        plugins: PluginManager | None = None,
        clock: Clock | None = None,
        http: HttpClient | None = None,
        callback_url: str | None = None,
    ) -> None:
        # The first orchestrator of a process that did not configure structlog gives
        # voxhub quiet defaults (warnings, redacted, stderr); ``import voxhub`` does not.
        ensure_default_logging()
        self.clock = clock or SystemClock()
        self.config = config if config is not None else Config.load()
        self.plugins = plugins if plugins is not None else PluginManager.load()
        store_path = store if store is not None else self.config.get("store")
        self.store = (
            store_path if isinstance(store_path, Store) else Store(store_path, clock=self.clock)
        )
        self.http = http or HttpClient(clock=self.clock, timeouts=_timeouts(self.config))
        self.callback_tokens = CallbackTokens(
            self.store, callback_url or self.config.get("callback_url")
        )
        self.events = JobEvents(self.plugins, self.store)
        self._contexts: dict[tuple[str, str], ProviderContext] = {}
        self._lock = threading.RLock()
        self._checks = RequestChecks(
            plugins=self.plugins, config=self.config, contexts=self.context
        )
        self._submission = Submission(
            store=self.store,
            plugins=self.plugins,
            contexts=self.context,
            prepare=self._checks.prepare,
            events=self.events,
            tokens=self.callback_tokens,
            clock=self.clock,
            timeouts=self.http.timeouts,
        )
        self._waiter = Waiter(store=self.store, clock=self.clock, status=self.status)
        self._batches = Batches(self, self._submission.carry)

    @property
    def callback_url(self) -> str | None:
        """The callback receiver's public base URL, when one is configured."""
        return self.callback_tokens.public_url

    def close_resources(self) -> None:
        """Release the HTTP pool and the store's connections."""
        self.http.close()
        self.store.close()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_resources()

    # --- providers and contexts ---------------------------------------------------

    def provider_entry(self, name: str) -> ProviderEntry:
        """The loaded provider ``name`` (its metadata and plugin)."""
        return self.plugins.provider(name)

    def default_provider(self) -> str:
        """The configured default provider, else ``local`` when installed, else the only one."""
        return self._checks.default_provider()

    def context(self, provider: str, profile: str | None = None) -> ProviderContext:
        """The (cached) context for a provider profile; authenticates on first use."""
        profile = profile or provider
        key = (provider, profile)
        with self._lock:
            ctx = self._contexts.get(key)
            if ctx is not None:
                return ctx
            entry = self.plugins.provider(provider)
            settings = self.config.settings(entry.info, profile)
            limiter = None
            if entry.info.requests_per_second:
                limiter = RateLimiter(entry.info.requests_per_second, clock=self.clock)
            ctx = ProviderContext(
                provider=provider,
                profile=profile,
                settings=settings,
                http=self.http.bind(provider, retry=entry.info.retry, limiter=limiter),
                clock=self.clock,
                log=log.bind(provider=provider, profile=profile),
                callback_url_for=self.callback_tokens.url_builder(provider),
                callback_events=self._callback_payloads,
                state_dir=self.store.state_dir,
                limits=store_limits(self.store, self.clock, entry.info, settings),
            )
            # Authenticated before anyone can use it: every hook call gets ``ctx.auth``.
            ctx.auth = self.plugins.calls(provider).authenticate(ctx)
            self._contexts[key] = ctx
            return ctx

    def _callback_payloads(self, job_id: str) -> list[Mapping[str, Any]]:
        return [e.data for e in self.store.events(job_id) if e.type == "callback"]

    # --- submit -------------------------------------------------------------------

    def prepare(self, request: JobRequest) -> JobRequest:
        """Validate ``request`` completely without sending anything; return it normalized."""
        return self._checks.prepare(request)

    def submit(
        self,
        request: JobRequest,
        *,
        batch: str | None = None,
        callback: bool | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> JobHandle:
        """Validate, record, then submit one job; returns its handle.

        Submitting an input whose idempotency key is already stored returns the
        stored job (submitting it only if its earlier submission never left).
        ``callback`` asks for a callback URL to be filled in (default: when a
        public ``callback_url`` is configured and the provider supports it).
        See :mod:`voxhub.submission` for the exactly-once protocol.
        """
        return self._submission.submit(request, batch=batch, callback=callback, progress=progress)

    def submit_many(
        self,
        requests: Sequence[JobRequest],
        *,
        batch: str | None = None,
        callback: bool | None = None,
    ) -> list[JobHandle]:
        """Submit several jobs, in one vendor request when the provider can.

        Every request is checked first (the first error is raised, nothing is
        recorded); then they are recorded as one batch (``batch`` is its name;
        ``jobs.batch`` its id), and submitted: with ``Capability.BATCH_SUBMIT``
        (one provider profile) the provider's ``submit_batch`` creates them all at
        once (e.g. several Tupu streams), otherwise one by one. Inputs already
        stored are not submitted again. ``run_batch`` on the batch finishes it.
        """
        prepared = self._batches.prepare_all(requests)
        if not prepared:
            return []
        info = self._batches.record_batch(
            prepared, settings=BatchSettings(name=batch, callback=callback)
        )
        return self._submission.submit_many(prepared, batch=info.batch_id, callback=callback)

    # --- looking jobs up ---------------------------------------------------------------

    def record(self, job: JobRef) -> JobRecord:
        """The stored record of a job (adopting a handle from another store if needed)."""
        if isinstance(job, JobHandle):
            found = self.store.find(job.job_id)
            return found if found is not None else self.adopt(job)
        found = self.store.find(job)
        if found is None:
            raise NotFoundError(
                f"no job {job!r} in the store {self.store.path}", operation="lookup"
            )
        return found

    def adopt(self, handle: JobHandle) -> JobRecord:
        """Bring a job submitted elsewhere (e.g. another store) into this store, by its handle."""
        self.plugins.provider(handle.provider)
        request = JobRequest(
            provider=handle.provider,
            kind=handle.kind,
            profile=handle.profile,
            idempotency_key=handle.idempotency_key,
        )
        # Not unique: the same input may already be stored here under another job id.
        self.store.record(request, handle, unique=False)
        self.store.mark_submitted(handle)
        self.store.add_event(handle.job_id, "adopted", {})
        return self.store.get(handle.job_id)

    def handle(self, job: JobRef) -> JobHandle:
        """The job's handle; an error while the provider has not accepted it yet."""
        return accepted(self.record(job))

    # --- results ---------------------------------------------------------------

    def fetch(self, job: JobRef, *, refresh: bool = False) -> Result:
        """The job's result: stored if present, else fetched (and stored once final)."""
        record = self.record(job)
        entry = self.plugins.provider(record.provider)
        # Callback-only results are built locally from the stored callbacks, and callbacks
        # may still arrive after the final one: rebuild them rather than serve a stale copy.
        rebuild = Capability.CALLBACK_ONLY in entry.info.capabilities
        if not refresh and not rebuild and record.has_result:
            stored = self.store.result(record.job_id)
            if stored is not None:
                return stored
        handle = accepted(record)
        status = self._status_of(record)
        # Live work (a callback-only stream, an RTC channel task, a transcoder) has a
        # result while it runs: a snapshot, stored only once the job is final.
        live = rebuild or handle.kind in _LIVE_KINDS
        if status.state is JobState.FAILED:
            raise failure(handle, status)
        if status.state is not JobState.SUCCEEDED and not live:
            raise ProviderError(
                f"job {handle.job_id} is {status.state.value}; its result is not ready "
                f"(`voxhub wait {handle.job_id}` first)",
                provider=handle.provider,
                operation="fetch",
                details={"state": status.state.value},
            )
        ctx = self.context(handle.provider, handle.profile)
        result = self.plugins.calls(handle.provider).fetch(ctx, handle)
        if result is None:
            raise PluginError("fetch returned nothing", provider=handle.provider, operation="fetch")
        if status.is_terminal:
            self.store.save_result(handle.job_id, result)
            self.events.completed(handle, result)
        return result

    def export(self, job: JobRef, fmt: str, *, speakers: bool = False) -> str:
        """The job's result as text in ``fmt`` (see :func:`voxhub.export.render`).

        ``txt`` and ``json`` are always voxhub's renderings of the stored result, the
        same shape for every provider. A caption format the provider renders itself
        (``ProviderInfo.export_formats``, e.g. Rev.ai's SRT/VTT) is asked for once, kept
        in the store with the result and served from there from then on, also after
        ``close``; one first asked for after ``close`` is rendered by voxhub. With
        ``speakers`` the lines carry speaker labels, which only voxhub's renderings do.
        """
        fmt = fmt.lower()
        record = self.record(job)
        entry = self.plugins.provider(record.provider)
        native = fmt in entry.info.export_formats and fmt not in _OWN_FORMATS and not speakers
        if native:
            kept = stored_export(self.store, record.job_id, fmt)
            if kept is not None:
                return kept
        # The result first: it is what stays once the vendor's copy is gone.
        result = self.fetch(record.job_id)
        if native and record.phase != Phase.CLOSED:
            handle = accepted(record)
            ctx = self.context(handle.provider, handle.profile)
            text = self.plugins.calls(handle.provider).export(ctx, handle, fmt)
            if text is not None:
                return keep_export(self.store, handle.job_id, fmt, text)
        return render(result, fmt, speakers=speakers)

    def close(self, job: JobRef) -> None:
        """Stop or delete the job at its provider (idempotent); its stored record stays."""
        record = self.record(job)
        if record.phase == Phase.CLOSED:
            return
        handle = self.handle(record.job_id)
        ctx = self.context(handle.provider, handle.profile)
        self.plugins.calls(handle.provider).close(ctx, handle)
        self.store.mark_closed(handle.job_id)
        if record.status is None or not record.status.is_terminal:
            cancelled = JobStatus(JobState.CANCELLED, vendor_state="closed")
            self.events.store_status(handle, record.status, cancelled)

    def retry(self, job: JobRef) -> JobHandle:
        """Ask the vendor to run a failed job again; the new vendor ids go on the same job."""
        record = self.record(job)
        handle = self.handle(record.job_id)
        entry = self.plugins.provider(handle.provider)
        if Capability.RETRY not in entry.info.capabilities:
            raise InvalidInputError(
                f"provider {handle.provider!r} cannot retry jobs; submit the input again "
                "(voxhub transcribe ... --new)",
                field="job",
                provider=handle.provider,
                operation="retry",
            )
        if record.status is None or record.status.state is not JobState.FAILED:
            state = record.status.state.value if record.status else record.phase
            raise InvalidInputError(
                f"job {handle.job_id} is {state}; only failed jobs can be retried",
                field="job",
                provider=handle.provider,
                operation="retry",
            )
        ctx = self.context(handle.provider, handle.profile)
        new = self.plugins.calls(handle.provider).retry(ctx, handle)
        status = JobStatus(JobState.QUEUED, vendor_state="retried")
        self.store.reopen(handle.job_id, status, new)
        self.events.state_changed(new, record.status, status)
        return new


def _timeouts(config: Config) -> Timeouts:
    defaults = Timeouts()
    try:
        return Timeouts(
            connect=float(config.get("connect_timeout", defaults.connect)),
            read=float(config.get("read_timeout", defaults.read)),
            write=float(config.get("write_timeout", defaults.write)),
        )
    except (TypeError, ValueError):
        raise ConfigurationError(
            "connect_timeout, read_timeout and write_timeout must be positive numbers of seconds"
        ) from None
