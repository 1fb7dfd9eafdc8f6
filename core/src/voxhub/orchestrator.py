"""The synchronous orchestrator apps embed: submit, wait, fetch, close, and batches.

A call flows like this (``voxhub transcribe`` does exactly this)::

    Orchestrator.submit(request)
      -> ProviderInfo.validate_options + provider ``validate`` hook   (no network)
      -> Store.record                  the job exists before anything is sent
      -> Store.claim                   recorded -> sending, under a lease
      -> provider ``submit`` hook      the one request that creates the vendor job
      -> Store.mark_submitted          handle with the vendor's ids
    Orchestrator.wait(job)   -> provider ``status`` hook, with back-off, or callback events
    Orchestrator.fetch(job)  -> provider ``fetch`` hook, result stored
    Orchestrator.close(job)  -> provider ``close`` hook

Exactly-once: the same input (same idempotency key) maps to the same stored
job, a claimed submission is never sent by two processes, and a submission
whose answer was lost is *in doubt* until the provider's ``recover`` hook says
whether the vendor job exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import attrs
import structlog

from .clock import Clock, SystemClock
from .config import Config
from .errors import (
    ConfigurationError,
    InvalidInputError,
    JobFailedError,
    NotFoundError,
    PluginError,
    ProviderError,
    VoxhubError,
    WaitTimeoutError,
)
from .export import render
from .models import (
    JobHandle,
    JobKind,
    JobRequest,
    JobState,
    JobStatus,
    LocalFile,
    Media,
    RemoteUrl,
    Result,
    RtcChannel,
    StreamUrl,
    new_job_id,
)
from .plugins import PluginManager, ProviderEntry
from .provider import Capability, ProviderContext, Submitted
from .serialization import dump, has_masked_secrets
from .store import JobRecord, Phase, Store
from .transport import HttpClient, RateLimiter, Timeouts, upload_progress

__all__ = ["ClosePolicy", "JobRef", "Orchestrator", "Outcome", "WaitPolicy", "media_from"]

log = structlog.get_logger("voxhub.orchestrator")

JobRef = str | JobHandle


class ClosePolicy:
    """When ``run`` closes a job at the provider: never, after fetching, or always."""

    NEVER = "never"
    AFTER_FETCH = "after-fetch"
    ALWAYS = "always"


@attrs.frozen
class WaitPolicy:
    """How waiting polls: the provider's hints unless overridden, growing by ``factor``.

    With callbacks, polling is only a safety net every ``callback_safety_poll`` seconds.
    """

    first_poll: float | None = None
    max_interval: float | None = None
    factor: float = 1.5
    callback_safety_poll: float = 60.0


@attrs.frozen
class Outcome:
    """What happened to one job of a batch: its handle, final status, result or error."""

    request: JobRequest
    handle: JobHandle | None
    status: JobStatus | None = None
    result: Result | None = None
    error: VoxhubError | None = None

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.status is not None
            and (self.status.state is JobState.SUCCEEDED)
        )


def media_from(value: str | Path) -> Media:
    """Turn a CLI argument into a media source: URL schemes by prefix, else a local path."""
    text = str(value)
    lowered = text.lower()
    if lowered.startswith(("http://", "https://")):
        return RemoteUrl(text)
    if lowered.startswith(("rtmp://", "rtmps://", "rtsp://", "hls://")) or lowered.endswith(
        ".m3u8"
    ):
        return StreamUrl(text)
    if lowered.startswith("rtc:"):
        return RtcChannel(text[4:])
    return LocalFile(Path(text).expanduser())


class Orchestrator:
    """Runs jobs on providers and keeps every job in the store.

    Thread-safe: one orchestrator can serve a web backend's threads. Construct
    it once per process; it owns the HTTP pool and the store connections.
    """

    def __init__(
        self,
        *,
        store: Store | str | Path | None = None,
        config: Config | None = None,
        plugins: PluginManager | None = None,
        clock: Clock | None = None,
        http: HttpClient | None = None,
        callback_url: str | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.config = config if config is not None else Config.load()
        self.plugins = plugins if plugins is not None else PluginManager.load()
        store_path = store if store is not None else self.config.get("store")
        self.store = (
            store_path if isinstance(store_path, Store) else Store(store_path, clock=self.clock)
        )
        self.http = http or HttpClient(clock=self.clock, timeouts=_timeouts(self.config))
        self.callback_url = (callback_url or self.config.get("callback_url") or "").rstrip(
            "/"
        ) or None
        self._contexts: dict[tuple[str, str], ProviderContext] = {}
        self._lock = threading.RLock()

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
        return self.plugins.provider(name)

    def default_provider(self) -> str:
        """The configured default provider, else ``local`` when installed, else the only one."""
        configured = self.config.get("default_provider")
        if configured:
            return str(configured)
        if "local" in self.plugins.providers:
            return "local"
        if len(self.plugins.providers) == 1:
            return next(iter(self.plugins.providers))
        raise ConfigurationError(
            "no provider given and no default configured: pass -p PROVIDER or set "
            "[voxhub] default_provider (installed: "
            f"{', '.join(sorted(self.plugins.providers)) or 'none'})"
        )

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
                callback_url_for=self._callback_url_for(provider),
                callback_events=self._callback_payloads,
                state_dir=self.store.path.parent,
            )
            ctx.auth = self.plugins.call(provider, "authenticate", ctx=ctx)
            self._contexts[key] = ctx
            return ctx

    def _callback_url_for(self, provider: str) -> Callable[[str], str | None]:
        def build(job_id: str) -> str | None:
            if self.callback_url is None or self.store.callback_token_hash(job_id) is None:
                return None
            return (
                f"{self.callback_url}/callbacks/{provider}/{job_id}/{self._callback_token(job_id)}"
            )

        return build

    def _callback_token(self, job_id: str) -> str:
        # Derived, not stored: any process sharing the store (and its key file) can rebuild
        # the URL of a job it resumes; the database holds only the token's hash.
        digest = hmac.new(self.store.callback_key(), job_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _callback_payloads(self, job_id: str) -> list[Mapping[str, Any]]:
        return [e.data for e in self.store.events(job_id) if e.type == "callback"]

    # --- submit -------------------------------------------------------------------

    def prepare(self, request: JobRequest) -> JobRequest:
        """Validate ``request`` completely without sending anything; return it normalized."""
        provider = request.provider or self.default_provider()
        entry = self.plugins.provider(provider)
        info = entry.info
        kind = request.kind
        if kind is None:
            if len(info.kinds) != 1:
                raise InvalidInputError(
                    f"provider {provider!r} runs several job kinds "
                    f"({', '.join(sorted(info.kinds))}): say which with kind=",
                    field="kind",
                    provider=provider,
                    operation="validate",
                )
            kind = next(iter(info.kinds))
        elif kind not in info.kinds:
            raise InvalidInputError(
                f"provider {provider!r} does not run {kind.value!r} jobs "
                f"(it runs: {', '.join(sorted(info.kinds))})",
                field="kind",
                provider=provider,
                operation="validate",
            )
        _check_media(request.media, info.capabilities, provider)
        options = info.validate_options(request.options)
        profile = request.profile or provider
        request = attrs.evolve(
            request, provider=provider, kind=JobKind(kind), options=options, profile=profile
        )
        ctx = self.context(provider, profile)
        validated = self.plugins.call(provider, "validate", ctx=ctx, request=request)
        return validated if isinstance(validated, JobRequest) else request

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
        """
        request = self.prepare(request)
        kind, profile = request.kind, request.profile
        assert kind is not None and profile is not None  # prepare() filled both in
        key = request.idempotency_key or derive_idempotency_key(request)
        request = attrs.evolve(request, idempotency_key=key)
        ctx = self.context(request.provider, profile)
        handle = JobHandle(
            job_id=new_job_id(),
            provider=request.provider,
            kind=kind,
            profile=profile,
            endpoint=ctx.base_url or None,
            idempotency_key=key,
        )
        record, created = self.store.record(request, handle, batch=batch)
        if (
            not created
            and record.status is not None
            and record.status.state in (JobState.FAILED, JobState.CANCELLED)
        ):
            # The input failed before: a new attempt is a new job; the old one stays on record.
            self.store.supersede(record.job_id)
            record, created = self.store.record(request, handle, batch=batch)
        if not created:
            log.info("submit.existing", job_id=record.job_id, phase=record.phase)
            if record.phase in (Phase.SUBMITTED, Phase.CLOSED):
                return record.handle
            request = _keep_secrets(record.request, request)
        self._prepare_callback(record.job_id, request, callback)
        return self._send(record.job_id, request, progress=progress)

    def submit_many(
        self,
        requests: Sequence[JobRequest],
        *,
        batch: str | None = None,
        callback: bool | None = None,
    ) -> list[JobHandle]:
        """Submit several jobs of one provider profile, in one vendor request when it can.

        With ``Capability.BATCH_SUBMIT`` every job is recorded and claimed first, then
        the provider's ``submit_batch`` creates them all at once (e.g. several Tupu
        streams). Otherwise this is :meth:`submit` in a loop. Inputs already stored are
        not submitted again.
        """
        prepared = [self.prepare(r) for r in requests]
        if not prepared:
            return []
        first = prepared[0]
        entry = self.plugins.provider(first.provider)
        same = all((r.provider, r.profile) == (first.provider, first.profile) for r in prepared)
        if Capability.BATCH_SUBMIT not in entry.info.capabilities or not same or len(prepared) == 1:
            return [self.submit(r, batch=batch, callback=callback) for r in prepared]
        assert first.profile is not None
        ctx = self.context(first.provider, first.profile)
        done: dict[int, JobHandle] = {}
        claimed: list[tuple[int, JobRequest, JobRecord]] = []
        for index, request in enumerate(prepared):
            key = request.idempotency_key or derive_idempotency_key(request)
            request = attrs.evolve(request, idempotency_key=key)
            assert request.kind is not None
            handle = JobHandle(
                job_id=new_job_id(),
                provider=request.provider,
                kind=request.kind,
                profile=first.profile,
                endpoint=ctx.base_url or None,
                idempotency_key=key,
            )
            record, _ = self.store.record(request, handle, batch=batch)
            if record.phase in (Phase.SUBMITTED, Phase.CLOSED):
                done[index] = record.handle
                continue
            self._prepare_callback(record.job_id, request, callback)
            mine = self.store.claim(record.job_id)
            if mine is None:  # someone else is sending it: follow that one
                done[index] = self._not_claimed(record.job_id, request, None)
                continue
            if self.store.callback_token_hash(record.job_id) is not None:
                request = attrs.evolve(request, callback_url=ctx.callback_url_for(record.job_id))
            claimed.append((index, request, mine))
        if claimed:
            items = [(request, record.handle) for _, request, record in claimed]
            try:
                answers = self.plugins.call(first.provider, "submit_batch", ctx=ctx, items=items)
            except VoxhubError as exc:
                unsent = not (isinstance(exc, ProviderError) and exc.in_doubt)
                for _, _, record in claimed:
                    self.store.release(record.job_id, error=str(exc), unsent=unsent)
                raise
            if not isinstance(answers, list) or len(answers) != len(claimed):
                raise PluginError(
                    "submit_batch must return one handle per item",
                    provider=first.provider,
                    operation="submit",
                )
            for (index, request, _), answer in zip(claimed, answers, strict=True):
                done[index] = self._accepted(answer, request)
        return [done[i] for i in range(len(prepared))]

    def _prepare_callback(self, job_id: str, request: JobRequest, callback: bool | None) -> None:
        entry = self.plugins.provider(request.provider)
        caps = entry.info.capabilities
        wants = (
            callback
            if callback is not None
            else (self.callback_url is not None and Capability.CALLBACKS in caps)
        )
        if Capability.CALLBACK_ONLY in caps:
            wants = True
        if not wants or request.callback_url:
            return
        if self.callback_url is None:
            raise ConfigurationError(
                "callbacks need the public URL of a callback receiver: run `voxhub callbacks "
                "serve --public-url URL` and set [voxhub] callback_url (or VOXHUB_CALLBACK_URL)",
                provider=request.provider,
                operation="submit",
            )
        self.store.set_callback_token_hash(job_id, _token_hash(self._callback_token(job_id)))

    #: How many times one call re-submits after in-doubt submissions the provider's
    #: ``recover`` showed never created a job, before giving up.
    MAX_IN_DOUBT_ROUNDS = 3

    def _send(
        self,
        job_id: str,
        request: JobRequest,
        progress: Callable[[int, int], None] | None = None,
        *,
        rounds: int = 0,
    ) -> JobHandle:
        record = self.store.claim(job_id)
        if record is None:
            return self._not_claimed(job_id, request, progress)
        if has_masked_secrets(request):
            self.store.release(job_id, error="secret headers must be supplied again")
            raise ConfigurationError(
                "this job's media URL needs its auth headers again (they are never stored): "
                "submit the request again with them",
                provider=request.provider,
                operation="submit",
            )
        handle = record.handle
        ctx = self.context(handle.provider, handle.profile)
        if self.store.callback_token_hash(handle.job_id) is not None:
            request = attrs.evolve(request, callback_url=ctx.callback_url_for(handle.job_id))
        ctx.log.info("submit.sending", job_id=job_id, media=_describe(request.media))
        try:
            with upload_progress(progress):
                answer = self.plugins.call(
                    handle.provider, "submit", ctx=ctx, request=request, handle=handle
                )
        except VoxhubError as exc:
            return self._submit_failed(record, request, exc, rounds=rounds)
        except Exception as exc:
            # A plugin bug: the request may or may not have left; keep it in doubt.
            self.store.release(job_id, error=f"plugin error: {type(exc).__name__}", unsent=False)
            raise PluginError(
                f"provider plugin failed during submit: {type(exc).__name__}: {exc}",
                provider=handle.provider,
                operation="submit",
            ) from exc
        return self._accepted(answer, request)

    def _accepted(self, answer: JobHandle | Submitted, request: JobRequest) -> JobHandle:
        submitted = answer if isinstance(answer, Submitted) else Submitted(answer)
        handle = submitted.handle
        if not isinstance(handle, JobHandle):
            raise PluginError(
                "submit must return a JobHandle or Submitted",
                provider=request.provider,
                operation="submit",
            )
        status = submitted.status or JobStatus(JobState.QUEUED, vendor_state="submitted")
        self.store.mark_submitted(handle, status)
        if submitted.result is not None:
            self.store.save_result(handle.job_id, submitted.result)
        log.info(
            "submit.accepted",
            job_id=handle.job_id,
            provider=handle.provider,
            vendor_ids=handle.vendor_ids,
        )
        self.plugins.notify("job_submitted", handle=handle, request=request)
        self._notify_status(handle, None, status)
        if submitted.result is not None and status.state is JobState.SUCCEEDED:
            self.plugins.notify("job_completed", handle=handle, result=submitted.result)
        return handle

    def _submit_failed(
        self, record: JobRecord, request: JobRequest, exc: VoxhubError, *, rounds: int = 0
    ) -> JobHandle:
        if not (isinstance(exc, ProviderError) and exc.in_doubt):
            # Refused (invalid input, credentials, rate limit) or never sent: safe to try again.
            self.store.release(record.job_id, error=str(exc), unsent=True)
            self.plugins.notify("job_failed", handle=record.handle, error=exc)
            raise exc
        self.store.release(record.job_id, error=str(exc), unsent=False)
        log.warning("submit.in_doubt", job_id=record.job_id, error=str(exc))
        return self._resolve_in_doubt(record.job_id, request, cause=exc, rounds=rounds + 1)

    def _not_claimed(
        self, job_id: str, request: JobRequest, progress: Callable[[int, int], None] | None
    ) -> JobHandle:
        # Another thread or process holds the claim, or the job moved on: follow it.
        deadline = self.clock.monotonic() + Store.LEASE_SECONDS
        while True:
            record = self.store.get(job_id)
            if record.phase in (Phase.SUBMITTED, Phase.CLOSED):
                return record.handle
            if record.phase == Phase.RECORDED:
                return self._send(job_id, request, progress)
            if self.store.take_over(job_id) is not None:
                return self._resolve_in_doubt(job_id, request, cause=None)
            if self.clock.monotonic() > deadline:
                raise ProviderError(
                    f"job {job_id} is being submitted by another process ({record.owner})",
                    provider=record.provider,
                    operation="submit",
                )
            self.clock.sleep(0.2)

    def _resolve_in_doubt(
        self,
        job_id: str,
        request: JobRequest,
        cause: VoxhubError | None,
        *,
        resubmit_without_recover: bool = False,
        rounds: int = 0,
    ) -> JobHandle:
        """Find out whether an in-doubt submission created a vendor job; submit only if not."""
        record = self.store.take_over(job_id)
        if record is None:
            return self.store.get(job_id).handle
        entry = self.plugins.provider(record.provider)
        ctx = self.context(record.provider, record.profile)
        if Capability.RECOVER in entry.info.capabilities:
            found = self.plugins.call(
                record.provider, "recover", ctx=ctx, request=request, handle=record.handle
            )
            if found is None and self._let_in_flight_request_land(job_id):
                # Not there yet, but its request may still have been in flight: ask again.
                found = self.plugins.call(
                    record.provider, "recover", ctx=ctx, request=request, handle=record.handle
                )
            if isinstance(found, JobHandle):
                log.info("submit.recovered", job_id=job_id, vendor_ids=found.vendor_ids)
                self.store.add_event(job_id, "recovered", {"vendor_ids": found.vendor_ids})
                return self._accepted(found, request)
            self.store.release(job_id, error=None, unsent=True)
            self.store.add_event(job_id, "recover-none", {})
            if rounds >= self.MAX_IN_DOUBT_ROUNDS:
                self.store.release(job_id, error=str(cause), unsent=True)
                raise cause or ProviderError(
                    "submission kept failing", provider=record.provider, operation="submit"
                )
            return self._send(job_id, request, rounds=rounds)
        if resubmit_without_recover:
            self._let_in_flight_request_land(job_id)
            self.store.release(job_id, error=None, unsent=True)
            return self._send(job_id, request)
        self.store.release(job_id, error="submission outcome unknown", unsent=False)
        raise ProviderError(
            f"job {job_id}: the submit request may have reached {record.provider} but its answer "
            "was lost, and this provider cannot look jobs up; check the vendor's console, then "
            "`voxhub jobs resume --resubmit-in-doubt` to submit it again"
            + (f" (cause: {cause})" if cause else ""),
            provider=record.provider,
            operation="submit",
            details={"job_id": job_id, "in_doubt": True},
        )

    def _let_in_flight_request_land(self, job_id: str) -> bool:
        """Wait until a claimed submit request can no longer be in flight.

        A request sent at claim time lives at most a connect plus a read timeout; until
        then the vendor may still create the job (its sender may have died waiting), so
        "recover found nothing" would not yet prove it was never created. Returns
        whether it waited.
        """
        claimed = self.store.claimed_at(job_id)
        if claimed is None:
            return False
        grace = self.http.timeouts.connect + self.http.timeouts.read
        # The claim time was written on the store's clock: compare on the same one.
        remaining = claimed + grace - self.store.clock.time()
        if remaining <= 0:
            return False
        log.info("submit.await_in_flight", job_id=job_id, seconds=round(remaining, 2))
        self.clock.sleep(remaining)
        return True

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
        record = self.record(job)
        if record.phase in (Phase.RECORDED, Phase.SENDING):
            raise ProviderError(
                f"job {record.job_id} has not been accepted by {record.provider} yet "
                f"({record.phase}{': ' + record.error if record.error else ''}); "
                "`voxhub jobs resume` submits it",
                provider=record.provider,
                operation="lookup",
            )
        return record.handle

    # --- status and waiting ------------------------------------------------------------

    def status(self, job: JobRef) -> JobStatus:
        """The job's status: stored if final, else asked from the provider (and stored)."""
        record = self.record(job)
        if record.status is not None and record.status.is_terminal:
            return record.status
        handle = self.handle(record.job_id)
        entry = self.plugins.provider(handle.provider)
        if Capability.CALLBACK_ONLY in entry.info.capabilities:
            return record.status or JobStatus(JobState.RUNNING)
        ctx = self.context(handle.provider, handle.profile)
        new = self.plugins.call(handle.provider, "status", ctx=ctx, handle=handle)
        if not isinstance(new, JobStatus):
            raise PluginError(
                "status must return a JobStatus", provider=handle.provider, operation="status"
            )
        self._store_status(handle, record.status, new)
        return new

    def _store_status(self, handle: JobHandle, old: JobStatus | None, new: JobStatus) -> None:
        if self.store.set_status(handle.job_id, new):
            self._notify_status(handle, old, new)

    def record_status(self, job_id: str, status: JobStatus) -> None:
        """Store a status learnt from a verified callback and notify observers."""
        record = self.store.get(job_id)
        self._store_status(record.handle, record.status, status)

    def _notify_status(self, handle: JobHandle, old: JobStatus | None, new: JobStatus) -> None:
        self.plugins.notify("job_state_changed", handle=handle, old=old, new=new)
        if new.state is JobState.FAILED:
            self.plugins.notify("job_failed", handle=handle, error=_failure(handle, new))

    def wait(
        self,
        job: JobRef,
        *,
        timeout: float | None = None,
        policy: WaitPolicy | None = None,
        on_status: Callable[[JobStatus], None] | None = None,
    ) -> JobStatus:
        """Block until the job is final or ``timeout`` seconds pass.

        Raises :class:`~voxhub.errors.WaitTimeoutError` (carrying the handle; the
        job keeps running) on timeout, and :class:`~voxhub.errors.JobFailedError`
        when the job failed. Jobs with callbacks wake on store events and confirm
        with one status call; others poll with back-off from the provider's hints.
        """
        policy = policy or WaitPolicy()
        handle = self.handle(job)
        entry = self.plugins.provider(handle.provider)
        hints = entry.info.polling
        deadline = None if timeout is None else self.clock.monotonic() + timeout
        uses_callbacks = (
            Capability.CALLBACK_ONLY in entry.info.capabilities
            or self.store.callback_token_hash(handle.job_id) is not None
        )
        interval = policy.first_poll if policy.first_poll is not None else hints.first_poll
        cap = policy.max_interval if policy.max_interval is not None else hints.max_interval
        seen = self.store.last_seq(handle.job_id)
        status = self.status(handle)
        while True:
            if on_status is not None:
                on_status(status)
            if status.is_terminal:
                if status.state is JobState.FAILED:
                    raise _failure(handle, status)
                return status
            remaining = None if deadline is None else deadline - self.clock.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(
                    f"job {handle.job_id} is still {status.state.value} after {timeout:g}s; "
                    f"it keeps running: `voxhub wait {handle.job_id}` resumes waiting",
                    handle=handle,
                    provider=handle.provider,
                    operation="wait",
                )
            if uses_callbacks:
                slice_ = policy.callback_safety_poll
                if remaining is not None:
                    slice_ = min(slice_, remaining)
                events = self._wait_events(handle.job_id, seen, slice_)
                if events:
                    seen = events[-1].seq
                    status = self._status_from_events(handle, events)
                else:
                    status = self.status(handle)  # the safety net
                continue
            delay = interval if remaining is None else min(interval, remaining)
            self.clock.sleep(delay)
            interval = min(cap, interval * policy.factor)
            status = self.status(handle)

    def _wait_events(self, job_id: str, after: int, timeout: float) -> list[Any]:
        if isinstance(self.clock, SystemClock):
            return self.store.wait_for_event(job_id, after, timeout)
        # A test clock: don't block in real time; let the clock jump instead.
        events = self.store.events(job_id, after)
        if not events:
            self.clock.sleep(timeout)
        return events

    def _status_from_events(self, handle: JobHandle, events: list[Any]) -> JobStatus:
        record = self.store.get(handle.job_id)
        hinted = any(e.type == "callback-hint" for e in events)
        if hinted and not (record.status and record.status.is_terminal):
            # Unsigned webhooks are hints: one status call confirms before we trust them.
            return self.status(handle)
        return record.status or JobStatus(JobState.RUNNING)

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
        handle = self.handle(record.job_id)
        status = self.status(handle)
        # Live work (a callback-only stream, an RTC channel task, a transcoder) has a
        # result while it runs: a snapshot, stored only once the job is final.
        live = rebuild or handle.kind in _LIVE_KINDS
        if status.state is JobState.FAILED:
            raise _failure(handle, status)
        if status.state is not JobState.SUCCEEDED and not live:
            raise ProviderError(
                f"job {handle.job_id} is {status.state.value}; its result is not ready "
                f"(`voxhub wait {handle.job_id}` first)",
                provider=handle.provider,
                operation="fetch",
                details={"state": status.state.value},
            )
        ctx = self.context(handle.provider, handle.profile)
        result = self.plugins.call(handle.provider, "fetch", ctx=ctx, handle=handle)
        if result is None:
            raise PluginError("fetch returned nothing", provider=handle.provider, operation="fetch")
        if status.is_terminal:
            self.store.save_result(handle.job_id, result)
            self.plugins.notify("job_completed", handle=handle, result=result)
        return result  # type: ignore[no-any-return]

    def export(self, job: JobRef, fmt: str) -> str:
        """The result as text in ``fmt``: the vendor's own rendering if offered, else ours."""
        record = self.record(job)
        entry = self.plugins.provider(record.provider)
        if fmt in entry.info.export_formats and record.phase != Phase.CLOSED:
            handle = self.handle(record.job_id)
            ctx = self.context(handle.provider, handle.profile)
            native = self.plugins.call(handle.provider, "export", ctx=ctx, handle=handle, fmt=fmt)
            if isinstance(native, str):
                return native
        return render(self.fetch(record.job_id), fmt)

    def close(self, job: JobRef) -> None:
        """Stop or delete the job at its provider (idempotent); its stored record stays."""
        record = self.record(job)
        if record.phase == Phase.CLOSED:
            return
        handle = self.handle(record.job_id)
        ctx = self.context(handle.provider, handle.profile)
        self.plugins.call(handle.provider, "close", ctx=ctx, handle=handle)
        self.store.mark_closed(handle.job_id)
        if record.status is None or not record.status.is_terminal:
            self._store_status(
                handle, record.status, JobStatus(JobState.CANCELLED, vendor_state="closed")
            )

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
        new = self.plugins.call(handle.provider, "retry", ctx=ctx, handle=handle)
        if not isinstance(new, JobHandle):
            raise PluginError(
                "retry must return a JobHandle", provider=handle.provider, operation="retry"
            )
        status = JobStatus(JobState.QUEUED, vendor_state="retried")
        self.store.reopen(handle.job_id, status, new)
        self._notify_status(new, record.status, status)
        return new

    # --- whole jobs and batches ---------------------------------------------------

    def run(
        self,
        request: JobRequest,
        *,
        timeout: float | None = None,
        close: str = ClosePolicy.NEVER,
        batch: str | None = None,
        callback: bool | None = None,
    ) -> Outcome:
        """Submit, wait and fetch one job; errors are returned in the outcome, not raised."""
        handle: JobHandle | None = None
        try:
            handle = self.submit(request, batch=batch, callback=callback)
            return self._finish(request, handle, timeout=timeout, close=close)
        except VoxhubError as exc:
            return Outcome(request, handle, error=exc)

    def _finish(
        self, request: JobRequest, handle: JobHandle, *, timeout: float | None, close: str
    ) -> Outcome:
        status: JobStatus | None = None
        try:
            status = self.wait(handle, timeout=timeout)
            result = self.fetch(handle)
            if close in (ClosePolicy.AFTER_FETCH, ClosePolicy.ALWAYS):
                self.close(handle)
            return Outcome(request, handle, status=status, result=result)
        except VoxhubError as exc:
            if close == ClosePolicy.ALWAYS and not isinstance(exc, WaitTimeoutError):
                try:
                    self.close(handle)
                except VoxhubError as close_exc:
                    log.warning("close.failed", job_id=handle.job_id, error=str(close_exc))
            if status is None and isinstance(exc, JobFailedError):
                status = self.store.get(handle.job_id).status
            return Outcome(request, handle, status=status, error=exc)

    def run_many(
        self,
        requests: Iterable[JobRequest],
        *,
        concurrency: int = 4,
        timeout: float | None = None,
        close: str = ClosePolicy.NEVER,
        batch: str | None = None,
        callback: bool | None = None,
    ) -> Iterator[Outcome]:
        """Run a batch with at most ``concurrency`` jobs in flight, yielding outcomes as they end.

        One job's failure never stops the others. Requests are validated as they
        are started; an invalid one yields an outcome with its error. Re-running
        the same batch resumes it: inputs already done come back from the store.
        """
        if concurrency < 1:
            raise InvalidInputError("concurrency must be at least 1", field="concurrency")
        pending: set[Future[Outcome]] = set()
        source = iter(requests)
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="voxhub") as pool:
            while True:
                while len(pending) < concurrency:
                    try:
                        request = next(source)
                    except StopIteration:
                        break
                    pending.add(
                        pool.submit(
                            self.run,
                            request,
                            timeout=timeout,
                            close=close,
                            batch=batch,
                            callback=callback,
                        )
                    )
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()

    def resume(
        self,
        *,
        batch: str | None = None,
        provider: str | None = None,
        timeout: float | None = None,
        concurrency: int = 4,
        resubmit_in_doubt: bool = False,
    ) -> Iterator[Outcome]:
        """Carry every unfinished stored job to its end: submit what never left, recover
        what is in doubt, wait for what runs, fetch what is done but not stored."""
        records = [
            r
            for r in self.store.jobs(batch=batch, provider=provider)
            if r.phase != Phase.CLOSED
            and not (r.has_result and r.status and r.status.is_terminal)
            and not (
                r.status is not None and r.status.state in (JobState.FAILED, JobState.CANCELLED)
            )
        ]

        def carry(record: JobRecord) -> Outcome:
            request = record.request
            try:
                if record.phase == Phase.RECORDED:
                    handle = self._send(record.job_id, request)
                elif record.phase == Phase.SENDING:
                    handle = self._resolve_in_doubt(
                        record.job_id,
                        request,
                        cause=None,
                        resubmit_without_recover=resubmit_in_doubt,
                    )
                else:
                    handle = record.handle
                return self._finish(request, handle, timeout=timeout, close=ClosePolicy.NEVER)
            except VoxhubError as exc:
                return Outcome(request, record.handle, error=exc)

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = [pool.submit(carry, r) for r in records]
            for future in futures:
                yield future.result()


_LIVE_KINDS = frozenset(
    {JobKind.CHANNEL_TRANSCRIPTION, JobKind.TRANSCODING, JobKind.STREAM_MODERATION}
)

# --- helpers -----------------------------------------------------------------------


def derive_idempotency_key(request: JobRequest) -> str:
    """A stable key for "the same input": provider, profile, kind, media identity and options.

    A local file is identified by its absolute path, size and modification time,
    so an edited file is a new input.
    """
    media = request.media
    identity: Any
    if isinstance(media, LocalFile):
        try:
            stat = media.path.stat()
            identity = [str(media.path.resolve()), stat.st_size, stat.st_mtime_ns]
        except OSError:
            identity = [str(media.path)]
    else:
        identity = dump(media) if media is not None else None
    payload = [
        request.provider,
        request.profile,
        str(request.kind),
        identity,
        request.language,
        sorted(request.options.items(), key=lambda kv: kv[0]),
        sorted(request.metadata.items()),
    ]
    digest = hashlib.sha256(repr(payload).encode()).hexdigest()
    return f"auto-{digest[:32]}"


def _timeouts(config: Config) -> Timeouts:
    defaults = Timeouts()
    try:
        return Timeouts(
            connect=float(config.get("connect_timeout", defaults.connect)),
            read=float(config.get("read_timeout", defaults.read)),
        )
    except (TypeError, ValueError):
        raise ConfigurationError(
            "connect_timeout and read_timeout must be numbers of seconds"
        ) from None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _keep_secrets(stored: JobRequest, given: JobRequest) -> JobRequest:
    # The stored request has its secret headers masked; the caller's has them.
    return given if isinstance(given.media, RemoteUrl) else stored


def _failure(handle: JobHandle, status: JobStatus) -> JobFailedError:
    reason = status.reason or status.vendor_state or "failed"
    detail = f": {status.detail}" if status.detail else ""
    return JobFailedError(
        f"job {handle.job_id} failed ({reason}){detail}",
        provider=handle.provider,
        operation="wait",
        reason=status.reason,
        detail=status.detail,
        handle=handle,
    )


def _check_media(media: Media | None, caps: frozenset[Capability], provider: str) -> None:
    if isinstance(media, LocalFile):
        if Capability.UPLOAD not in caps:
            raise InvalidInputError(
                f"provider {provider!r} does not accept local files; give a URL",
                field="media",
                provider=provider,
                operation="validate",
            )
        if not media.path.is_file():
            raise InvalidInputError(
                f"no such file: {media.path}",
                field="media",
                provider=provider,
                operation="validate",
            )
    elif isinstance(media, RemoteUrl) and Capability.URL not in caps:
        raise InvalidInputError(
            f"provider {provider!r} does not accept URLs; give a local file",
            field="media",
            provider=provider,
            operation="validate",
        )


def _describe(media: Media | None) -> str | None:
    return None if media is None else media.describe()


__all__ += ["derive_idempotency_key"]
