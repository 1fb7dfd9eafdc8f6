"""Exactly-once submission: the one owner of recorded → sending → submitted.

Every job's submission goes through :class:`Submission`::

    record     Store.record         the job exists before anything is sent; the same
                                    input (idempotency key) maps to the same job
    claim      Store.claim          recorded -> sending, under a lease: one sender
    ready      RequestChecks        authenticate + validate have run in this process
    send       ProviderCalls.submit the one request that creates the vendor job
    accept     Store.mark_submitted the handle with the vendor's ids

A single new job is recorded and claimed in one write (``record(claim=True)``): a
crash before its request leaves leaves it ``sending``, i.e. in doubt, and it is
resolved like any in-doubt job below.

A failed ``submit`` is classified by :attr:`ProviderError.in_doubt`:

* not in doubt (refused, or provably never sent): the job goes back to
  ``recorded`` with the error and the error is raised; sending it again is safe;
* in doubt (the request may have reached the vendor): the job stays ``sending``
  and is *resolved*: after the provider's back-off, its ``recover`` hook looks
  for the vendor job. When it finds none and nobody saw the request end (its
  sender died, or the connection was lost or timed out), the in-flight window is
  waited out (a request lives at most a connect plus a read timeout after its
  claim) and ``recover`` asks once more. Found: the job is accepted with the
  found handle. Still nothing: nothing was created, so the job is sent again, at
  most ``RetryPolicy.max_attempts`` submits per call. A provider without
  ``recover`` leaves the job in doubt (``jobs resume --resubmit-in-doubt``).

A claim held by another live sender is followed until it ends; a claim whose
owner died (or whose lease ran out) is taken over and resolved the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs
import structlog

from .errors import ConfigurationError, PluginError, ProviderError, VoxhubError
from .idempotency import derive_idempotency_key
from .models import JobHandle, JobRequest, JobState, JobStatus, RemoteUrl
from .provider import Capability, Submitted
from .serialization import has_masked_secrets
from .store import JobRecord, Phase, Store
from .transport import upload_progress

if TYPE_CHECKING:
    from .callback_tokens import CallbackTokens
    from .clock import Clock
    from .events import JobEvents
    from .plugins import PluginManager
    from .provider import ProviderContext
    from .transport import Timeouts

__all__ = ["Submission", "derive_idempotency_key"]

log = structlog.get_logger("voxhub.submission")

#: Upload progress callback: ``(bytes sent, total bytes)``.
Progress = Callable[[int, int], None]

_DONE = (Phase.SUBMITTED, Phase.CLOSED)
#: Longest wait for a shared limit under a claim (half its lease: nobody takes it over).
_LIMIT_WAIT = Store.LEASE_SECONDS / 2


@attrs.define
class _Job:
    """One job on its way through a submission call."""

    job_id: str
    request: JobRequest
    #: Whether ``request`` went through ``prepare`` in this process (a stored one did not).
    prepared: bool
    progress: Progress | None = None
    #: Submit hook calls made for it by this call (bounded by the provider's retry policy).
    attempts: int = 0
    #: ``jobs resume --resubmit-in-doubt``: resend an in-doubt job that cannot be looked up.
    resubmit_unrecoverable: bool = False
    #: Its claim, when recording it claimed it too (used by the first send only).
    claimed: JobRecord | None = None


class Submission:
    """Records, claims, sends and resolves job submissions (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        plugins: PluginManager,
        contexts: Callable[[str, str], ProviderContext],
        prepare: Callable[[JobRequest], JobRequest],
        events: JobEvents,
        tokens: CallbackTokens,
        clock: Clock,
        timeouts: Timeouts,
    ) -> None:
        self.store = store
        self._plugins = plugins
        self._contexts = contexts
        self._prepare = prepare
        self._events = events
        self._tokens = tokens
        self._clock = clock
        self._timeouts = timeouts

    # --- entry points ------------------------------------------------------------------

    def submit(
        self,
        request: JobRequest,
        *,
        batch: str | None = None,
        callback: bool | None = None,
        progress: Progress | None = None,
    ) -> JobHandle:
        """Validate, record and send one job (or return the stored one); its handle."""
        return self._submit_prepared(
            self._prepare(request), batch=batch, callback=callback, progress=progress
        )

    def submit_many(
        self,
        requests: Sequence[JobRequest],
        *,
        batch: str | None = None,
        callback: bool | None = None,
    ) -> list[JobHandle]:
        """Several jobs; one ``submit_batch`` request when the provider can (same profile)."""
        prepared = [self._prepare(r) for r in requests]
        if not prepared:
            return []
        first = prepared[0]
        caps = self._plugins.provider(first.provider).info.capabilities
        same = all((r.provider, r.profile) == (first.provider, first.profile) for r in prepared)
        if Capability.BATCH_SUBMIT not in caps or not same or len(prepared) == 1:
            return [self._submit_prepared(r, batch=batch, callback=callback) for r in prepared]
        done: dict[int, JobHandle] = {}
        todo: list[tuple[int, _Job]] = []
        for index, request in enumerate(prepared):  # all recorded before any is claimed
            job, existing = self._record(request, batch=batch, callback=callback)
            if existing is not None:
                done[index] = existing
            else:
                todo.append((index, job))
        claimed: list[tuple[int, _Job, JobRecord]] = []
        for index, job in todo:
            record = self.store.claim(job.job_id)
            if record is None:  # someone else is sending it: follow that one
                done[index] = self._follow(job)
                continue
            claimed.append((index, job, record))
        if claimed:
            handles = self._send_batch([(job, record) for _, job, record in claimed])
            for (index, _, _), handle in zip(claimed, handles, strict=True):
                done[index] = handle
        return [done[i] for i in range(len(prepared))]

    def carry(self, record: JobRecord, resubmit_in_doubt: bool = False) -> JobHandle:
        """Bring a stored job to ``submitted`` (``jobs resume``): send what never left,
        resolve what is in doubt, return the handle of what is already accepted.

        ``resubmit_in_doubt`` sends an in-doubt job again when its provider cannot
        look jobs up (the user checked the vendor's console).
        """
        job = _Job(
            record.job_id,
            record.request,
            prepared=False,
            resubmit_unrecoverable=resubmit_in_doubt,
        )
        if record.phase == Phase.RECORDED:
            return self._send(job)
        if record.phase == Phase.SENDING:
            return self._follow(job)
        return record.handle

    # --- record and claim --------------------------------------------------------------

    def _submit_prepared(
        self,
        request: JobRequest,
        *,
        batch: str | None,
        callback: bool | None,
        progress: Progress | None = None,
    ) -> JobHandle:
        # Recorded and claimed in one write: a crash before the request leaves leaves the
        # job ``sending`` (in doubt), which ``recover`` resolves like any other in-doubt job.
        job, existing = self._record(request, batch=batch, callback=callback, claim=True)
        if existing is not None:
            return existing
        job.progress = progress
        return self._send(job, job.claimed)

    def _record(
        self, request: JobRequest, *, batch: str | None, callback: bool | None, claim: bool = False
    ) -> tuple[_Job, JobHandle | None]:
        """Store the job (or find it stored); a handle when it needs no sending.

        ``claim`` also claims a job it creates, in the same write (``job.claimed``).
        """
        kind, profile = request.kind, request.profile
        assert kind is not None and profile is not None  # prepare() filled both in
        key = request.idempotency_key or derive_idempotency_key(request)
        request = attrs.evolve(request, idempotency_key=key)
        handle = JobHandle.new(request, self._contexts(request.provider, profile).base_url)
        record, created = self.store.record(request, handle, batch=batch, claim=claim)
        if (
            not created
            and record.status is not None
            and record.status.state in (JobState.FAILED, JobState.CANCELLED)
        ):
            # The input failed before: a new attempt is a new job; the old one stays on record.
            self.store.supersede(record.job_id)
            record, created = self.store.record(request, handle, batch=batch, claim=claim)
        job = _Job(record.job_id, request, prepared=True)
        if created and record.phase == Phase.SENDING:
            job.claimed = record
        if not created:
            log.info("submit.existing", job_id=record.job_id, phase=record.phase)
            if record.phase in _DONE:
                return job, record.handle
            if not isinstance(request.media, RemoteUrl):
                # The stored request is the one to send (an explicit key may name another
                # input); it was validated by whoever stored it, so validate it again here.
                # A remote URL keeps the caller's copy: the stored one has its secret
                # headers masked.
                job = _Job(record.job_id, record.request, prepared=False)
        if not job.request.callback_url:
            caps = self._plugins.provider(request.provider).info.capabilities
            try:
                self._tokens.arm(record.job_id, request.provider, caps, callback)
            except VoxhubError as exc:
                if job.claimed is not None:  # nothing was sent: give the claim back
                    self.store.release(job.job_id, error=str(exc), unsent=True)
                raise
        return job, None

    def _follow(self, job: _Job) -> JobHandle:
        """The job is not ours to send: follow whoever holds it, or take over a dead claim."""
        deadline = self._clock.monotonic() + Store.LEASE_SECONDS
        while True:
            record = self.store.get(job.job_id)
            if record.phase in _DONE:
                return record.handle
            if record.phase == Phase.RECORDED:
                return self._send(job)
            # A claim of this process (another thread) is alive until its lease ends:
            # resolving it now could resend a request that is still on its way.
            ours = record.owner == self.store.owner
            if not (ours and (record.lease_until or 0.0) > self.store.clock.time()):
                taken = self.store.take_over(job.job_id)
                if taken is not None:
                    return self._resolve(job, taken, cause=None)
            if self._clock.monotonic() > deadline:
                raise ProviderError(
                    f"job {job.job_id} is being submitted by another process ({record.owner})",
                    provider=record.provider,
                    operation="submit",
                    in_doubt=True,
                )
            self._clock.sleep(0.2)

    # --- sending -----------------------------------------------------------------------

    def _send(self, job: _Job, claimed: JobRecord | None = None) -> JobHandle:
        """Send the job's submit request; ``claimed`` is its claim if already taken."""
        record = claimed or self.store.claim(job.job_id)
        job.claimed = None  # a claim is used once: a resend claims again
        if record is None:
            return self._follow(job)
        ctx, request = self._ready(job, record)
        job.attempts += 1
        ctx.log.info("submit.sending", job_id=job.job_id, media=_describe(request))
        try:
            # The vendor's declared limits, shared by every worker of the store; waited
            # for under the claim, so never longer than half its lease.
            with upload_progress(job.progress), ctx.limits.around("submit", max_wait=_LIMIT_WAIT):
                answer = self._plugins.calls(ctx.provider).submit(ctx, request, record.handle)
        except VoxhubError as exc:
            self._failed([(job, record)], exc)
            return self._resolve(job, self.store.take_over(job.job_id), cause=exc)
        return self._accept(answer, job.request)

    def _send_batch(self, jobs: Sequence[tuple[_Job, JobRecord]]) -> list[JobHandle]:
        items: list[tuple[JobRequest, JobHandle]] = []
        ctx: ProviderContext | None = None
        for job, record in jobs:
            try:
                ctx, request = self._ready(job, record)
            except VoxhubError:
                # _ready released the refused job; the others of the batch were not sent.
                for other, _ in jobs:
                    if other is not job:
                        self.store.release(other.job_id, error="another job of its batch failed")
                raise
            items.append((request, record.handle))
        assert ctx is not None
        for job, _ in jobs:
            job.attempts += 1
        log.info("submit.sending_batch", provider=ctx.provider, jobs=len(items))
        try:
            with ctx.limits.around("submit", times=len(items), max_wait=_LIMIT_WAIT):
                answers = self._plugins.calls(ctx.provider).submit_batch(ctx, items)
        except VoxhubError as exc:
            self._failed(jobs, exc)
            # In doubt: resolve each job alone (recover it, or send it alone if never created).
            handles: list[JobHandle] = []
            errors: list[VoxhubError] = []
            for job, _ in jobs:
                try:
                    handles.append(self._resolve(job, self.store.take_over(job.job_id), cause=exc))
                except VoxhubError as error:
                    errors.append(error)
            if errors:
                raise errors[0] from None
            return handles
        return [self._accept(a, job.request) for (job, _), a in zip(jobs, answers, strict=True)]

    def _ready(self, job: _Job, record: JobRecord) -> tuple[ProviderContext, JobRequest]:
        """Everything ``submit`` may rely on, checked while we hold the claim.

        The context is authenticated and the request went through ``prepare``
        (so ``validate``) in this process: a stored request is prepared again here.
        On a refusal the claim is released as unsent and the error raised.
        """
        if has_masked_secrets(job.request):
            self.store.release(job.job_id, error="secret headers must be supplied again")
            raise ConfigurationError(
                "this job's media URL needs its auth headers again (they are never "
                "stored): submit the request again with them",
                provider=record.provider,
                operation="submit",
            )
        try:
            if not job.prepared:
                job.request = self._prepare(job.request)
                job.prepared = True
            ctx = self._contexts(record.provider, record.profile)
        except VoxhubError as exc:
            self.store.release(job.job_id, error=str(exc), unsent=True)
            raise
        request = job.request
        url = ctx.callback_url_for(job.job_id)  # None unless the job was armed for callbacks
        if url is not None:
            request = attrs.evolve(request, callback_url=url)
        return ctx, request

    def _failed(self, jobs: Sequence[tuple[_Job, JobRecord]], exc: VoxhubError) -> None:
        """Record a failed submit; raises unless it is in doubt (then it must be resolved)."""
        if isinstance(exc, PluginError):
            # A plugin bug: its request may or may not have left, so the jobs stay in doubt,
            # and a broken plugin is not asked to look them up: `jobs resume` will.
            cause = type(exc.__cause__).__name__ if exc.__cause__ else type(exc).__name__
            for job, _ in jobs:
                self.store.release(job.job_id, error=f"plugin error: {cause}", unsent=False)
            raise exc
        if not (isinstance(exc, ProviderError) and exc.in_doubt):
            # Refused (invalid input, credentials, rate limit) or never sent: safe to resend.
            for job, record in jobs:
                self.store.release(job.job_id, error=str(exc), unsent=True)
                self._events.failed(record.handle, exc)
            raise exc
        for job, _ in jobs:
            self.store.release(job.job_id, error=str(exc), unsent=False)
            log.warning("submit.in_doubt", job_id=job.job_id, error=str(exc))

    # --- in doubt ----------------------------------------------------------------------

    def _resolve(self, job: _Job, record: JobRecord | None, cause: VoxhubError | None) -> JobHandle:
        """Find out whether an in-doubt submission created a vendor job; send only if not.

        ``record`` is the job's claim, taken over (``None``: someone else took it,
        follow them). ``cause`` is this call's failed submit, if any.
        """
        if record is None:
            return self._follow(job)
        info = self._plugins.provider(record.provider).info
        if Capability.RECOVER not in info.capabilities:
            return self._unrecoverable(job, record, cause)
        ctx = self._contexts(record.provider, record.profile)
        if cause is not None:
            # The provider's back-off, as before any retry: the vendor may need a moment
            # before a job it just created can be listed.
            self._clock.sleep(info.retry.backoff(max(1, job.attempts)))
        try:
            found = self._recover(ctx, job, record, cause)
        except VoxhubError as exc:
            # Still in doubt: leave it for the next resume, and say why the submit failed.
            self.store.release(job.job_id, error=f"recover failed: {exc}", unsent=False)
            log.warning("submit.recover_failed", job_id=job.job_id, error=str(exc))
            if cause is not None:
                raise cause from exc
            raise
        if found is not None:
            log.info("submit.recovered", job_id=job.job_id, vendor_ids=found.vendor_ids)
            self.store.add_event(job.job_id, "recovered", {"vendor_ids": found.vendor_ids})
            return self._accept(found, job.request)
        # No vendor job, and no request of ours still on its way: nothing was created.
        self.store.release(job.job_id, error=None if cause is None else str(cause), unsent=True)
        self.store.add_event(job.job_id, "recover-none", {})
        if job.attempts >= info.retry.max_attempts:
            error = cause or ProviderError(
                "submission kept failing", provider=record.provider, operation="submit"
            )
            if isinstance(error, ProviderError):
                error.in_doubt = False  # recover proved it: nothing was created
            raise error
        return self._send(job)

    def _recover(
        self, ctx: ProviderContext, job: _Job, record: JobRecord, cause: VoxhubError | None
    ) -> JobHandle | None:
        calls = self._plugins.calls(record.provider)
        found = calls.recover(ctx, job.request, record.handle)
        # A request whose end nobody saw (its sender died, or our connection was lost or
        # timed out) may still be on its way; one the vendor answered (even with a 5xx) is not.
        unseen = not isinstance(cause, ProviderError) or cause.status is None
        if found is None and unseen and self._await_in_flight(job.job_id):
            found = calls.recover(ctx, job.request, record.handle)  # ask again once it landed
        return found

    def _unrecoverable(self, job: _Job, record: JobRecord, cause: VoxhubError | None) -> JobHandle:
        if job.resubmit_unrecoverable:
            job.resubmit_unrecoverable = False  # the user's go-ahead covers one resend
            self._await_in_flight(job.job_id)
            self.store.release(job.job_id, error=None, unsent=True)
            return self._send(job)
        self.store.release(job.job_id, error="submission outcome unknown", unsent=False)
        raise ProviderError(
            f"job {job.job_id}: the submit request may have reached {record.provider} but its "
            "answer was lost, and this provider cannot look jobs up; check the vendor's "
            "console, then `voxhub jobs resume --resubmit-in-doubt` to submit it again"
            + (f" (cause: {cause})" if cause else ""),
            provider=record.provider,
            operation="submit",
            details={"job_id": job.job_id},
            in_doubt=True,
        )

    def _await_in_flight(self, job_id: str) -> bool:
        """Wait until a claimed submit request can no longer be in flight; whether it waited.

        A request sent at claim time lives at most a connect plus a read timeout; until
        then the vendor may still create the job (its sender may have died waiting), so
        "recover found nothing" would not yet prove it was never created.
        """
        claimed = self.store.claimed_at(job_id)
        if claimed is None:
            return False
        grace = self._timeouts.connect + self._timeouts.read
        # The claim time was written on the store's clock: compare on the same one.
        remaining = claimed + grace - self.store.clock.time()
        if remaining <= 0:
            return False
        log.info("submit.await_in_flight", job_id=job_id, seconds=round(remaining, 2))
        self._clock.sleep(remaining)
        return True

    # --- accepted ----------------------------------------------------------------------

    def _accept(self, answer: JobHandle | Submitted, request: JobRequest) -> JobHandle:
        submitted = answer if isinstance(answer, Submitted) else Submitted(answer)
        handle = submitted.handle
        if not isinstance(handle, JobHandle):
            raise PluginError(
                "submit must return a JobHandle or Submitted",
                provider=request.provider,
                operation="submit",
            )
        status = submitted.status or JobStatus(JobState.QUEUED, vendor_state="submitted")
        # One transaction: a crash can never leave the job accepted without its answer.
        self.store.mark_submitted(handle, status, submitted.result)
        log.info(
            "submit.accepted",
            job_id=handle.job_id,
            provider=handle.provider,
            vendor_ids=handle.vendor_ids,
        )
        self._events.submitted(handle, request)
        self._events.state_changed(handle, None, status)
        if submitted.result is not None and status.state is JobState.SUCCEEDED:
            self._events.completed(handle, submitted.result)
        return handle


def _describe(request: JobRequest) -> str | None:
    return None if request.media is None else request.media.describe()
