"""The ``revai`` provider: Rev.ai's asynchronous speech-to-text API v1.

Lifecycle only; the HTTP side is :class:`~voxhub_revai.api.RevApi`, the options
:mod:`voxhub_revai.options`. ``validate`` adds Rev's cross-field rules to the
option specs the core checked; ``submit`` sends the one ``POST /jobs`` (a URL job as
JSON, a local file as multipart) carrying an idempotency marker in its
``metadata`` (:mod:`voxhub_revai.marker`); ``recover`` finds the job of a submit
whose answer was lost by that marker; ``status``/``fetch``/``export``/``close``
read and delete the job.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import timedelta

from voxhub.plugin import (
    CallbackEvent,
    CallbackRejected,
    CallbackRequest,
    InvalidInputError,
    JobFailedError,
    JobHandle,
    JobRequest,
    JobState,
    JobStatus,
    LocalFile,
    Media,
    Provider,
    ProviderContext,
    ProviderError,
    Transcript,
)

from . import options as opt
from .api import EXPORT_TYPES, RevApi, region
from .marker import key_token, token_of
from .options import EU_URL, INFO, US_URL
from .schema import Account, RevJob, to_transcript

__all__ = ["EU_URL", "INFO", "US_URL", "RevaiProvider"]

NAME = "revai"

#: Jobs created this long before the handle (clock skew between us and Rev) are still searched.
RECOVER_MARGIN = timedelta(minutes=10)
#: Upper bound on list pages read by one recovery (100 jobs a page).
RECOVER_MAX_PAGES = 50


class RevaiProvider(Provider):
    """Rev.ai's async STT API behind voxhub's provider contract."""

    info = INFO

    #: How many finished jobs' details are remembered for the fetch that usually follows.
    FINISHED_MEMORY = 1024

    def __init__(self) -> None:
        # The status call that saw a job finish already read its details (duration,
        # failure): keeping them spares fetch one GET per job. Another process simply
        # reads the job again.
        self._finished: OrderedDict[str, RevJob] = OrderedDict()
        self._finished_lock = threading.Lock()

    def _remember(self, vendor_id: str, job: RevJob) -> None:
        with self._finished_lock:
            self._finished[vendor_id] = job
            while len(self._finished) > self.FINISHED_MEMORY:
                self._finished.popitem(last=False)

    def _finished_job(self, api: RevApi, vendor_id: str) -> RevJob:
        with self._finished_lock:
            job = self._finished.pop(vendor_id, None)
        return job if job is not None else api.job(vendor_id, operation="fetch")

    # --- configuration and validation ---------------------------------------------------

    def authenticate(self, ctx: ProviderContext) -> dict[str, str]:
        """The request headers (bearer token); checks the profile's token and region locally."""
        token = ctx.settings.require("token")
        region(ctx)
        return {"Authorization": f"Bearer {token}"}

    def validate(self, ctx: ProviderContext, request: JobRequest) -> JobRequest:
        """Rev's cross-field rules (the core already applied the option specs)."""
        opt.check(request, region=region(ctx),
                  webhook_authorization=bool(ctx.settings.secret("webhook_authorization")))
        return request

    # --- submit / recover -----------------------------------------------------------------

    def submit(self, ctx: ProviderContext, request: JobRequest, handle: JobHandle) -> JobHandle:
        """Create the Rev job with one ``POST /jobs``.

        When its answer is lost (dropped connection, read timeout, a gateway's 5xx)
        the error says ``in_doubt``: the core then asks :meth:`recover` before
        anything is sent again.
        """
        key = handle.idempotency_key or request.idempotency_key
        body = opt.build_options(request, idempotency_key=key,
                                 callback_url=ctx.callback_url_for(handle.job_id),
                                 webhook_authorization=ctx.settings.secret("webhook_authorization"))
        job = RevApi(ctx).create_job(request.media, body)
        ctx.log.info("revai.submitted", vendor_id=job.id, upload=isinstance(request.media,
                                                                            LocalFile))
        return _handle(handle, job, request.media)

    def recover(
        self, ctx: ProviderContext, request: JobRequest, handle: JobHandle
    ) -> JobHandle | None:
        """Find the job submitted for ``handle`` by its ``metadata`` marker, or ``None``.

        Lists jobs newest first and stops at jobs created well before the
        handle (``RECOVER_MARGIN`` allows for clock skew). If a duplicate was
        ever created, the oldest match is returned (and the others logged).
        """
        key = handle.idempotency_key or request.idempotency_key
        if key is None:
            # Without a marker a lost answer cannot be told from a lost request.
            raise ProviderError("Rev.ai jobs are found by their idempotency key, and this "
                                "submission has none: check the Rev.ai dashboard",
                                provider=NAME, operation="recover", in_doubt=True)
        token = key_token(key)
        cutoff = handle.created_at - RECOVER_MARGIN
        matches: list[RevJob] = []
        for job in self._iter_jobs(RevApi(ctx), page_size=100, max_pages=RECOVER_MAX_PAGES,
                                   operation="recover"):
            created = job.created
            if created is not None and created < cutoff:
                break
            if token_of(job.metadata) == token:
                matches.append(job)
        if not matches:
            return None
        if len(matches) > 1:
            ctx.log.warning("revai.duplicates_found", count=len(matches),
                            vendor_ids=[j.id for j in matches])
        ctx.log.info("revai.recovered", vendor_id=matches[-1].id)
        return _handle(handle, matches[-1], request.media)

    # --- status / fetch / export ----------------------------------------------------------

    def status(self, ctx: ProviderContext, handle: JobHandle) -> JobStatus:
        """The job's state: in_progress → running, transcribed → succeeded, failed → failed."""
        vendor_id = _vendor_id(handle)
        job = RevApi(ctx).job(vendor_id)
        status = job.to_status()
        if status.is_terminal:
            self._remember(vendor_id, job)
        return status

    def fetch(self, ctx: ProviderContext, handle: JobHandle) -> Transcript:
        """The JSON transcript as a :class:`Transcript` (duration from the job)."""
        vendor_id = _vendor_id(handle)
        api = RevApi(ctx)
        job = self._finished_job(api, vendor_id)
        if job.to_status().state is JobState.FAILED:
            raise JobFailedError(
                f"Rev.ai job {vendor_id} failed: {job.failure or 'unknown reason'}"
                + (f" ({job.failure_detail})" if job.failure_detail else ""),
                reason=job.failure, detail=job.failure_detail, handle=handle, provider=NAME,
                operation="fetch", details={"vendor_id": vendor_id},
            )
        transcript, raw = api.transcript(vendor_id)
        return to_transcript(transcript, job, handle.job_id, raw=raw)

    def export(self, ctx: ProviderContext, handle: JobHandle, fmt: str) -> str | None:
        """SRT/VTT from Rev's captions endpoint; other formats are voxhub's (``None``)."""
        fmt = fmt.lower()
        if fmt not in EXPORT_TYPES:
            return None
        return RevApi(ctx).rendering(_vendor_id(handle), fmt)

    # --- close / list / account -----------------------------------------------------------

    def close(self, ctx: ProviderContext, handle: JobHandle) -> None:
        """Delete the job and its media/transcript; an already deleted job is fine.

        Rev refuses to delete a job still in progress (409): that is raised, not
        swallowed, so the caller knows the data still exists.
        """
        RevApi(ctx).delete_job(_vendor_id(handle))

    def list_jobs(
        self,
        ctx: ProviderContext,
        limit: int | None = None,
        starting_after: str | None = None,
        *,
        page_size: int = 100,
    ) -> Iterator[RevJob]:
        """The account's jobs of the last 30 days, newest first, across pages.

        ``limit`` caps the number of jobs yielded (``None`` = all);
        ``starting_after`` starts after (i.e. older than) that job id.
        """
        if limit is not None and limit < 0:
            raise InvalidInputError("limit must be >= 0", field="limit", provider=NAME,
                                    operation="list")
        if not 1 <= page_size <= 1000:
            raise InvalidInputError("page_size must be 1..1000", field="page_size",
                                    provider=NAME, operation="list")
        yield from self._iter_jobs(RevApi(ctx), page_size=page_size,
                                   starting_after=starting_after, operation="list", limit=limit)

    @staticmethod
    def _iter_jobs(
        api: RevApi,
        *,
        page_size: int,
        operation: str,
        starting_after: str | None = None,
        max_pages: int | None = None,
        limit: int | None = None,
    ) -> Iterator[RevJob]:
        pages = 0
        remaining = limit
        while max_pages is None or pages < max_pages:
            size = page_size if remaining is None else min(page_size, remaining)
            if size <= 0:
                return
            page = api.jobs_page(limit=size, starting_after=starting_after, operation=operation)
            pages += 1
            yield from page
            if remaining is not None:
                remaining -= len(page)
            if len(page) < size:
                return
            starting_after = page[-1].id

    def account(self, ctx: ProviderContext) -> Account:
        """``GET /account``: e-mail and remaining balance in seconds."""
        return RevApi(ctx).account()

    # --- callbacks ------------------------------------------------------------------------

    def parse_callback(self, ctx: ProviderContext, request: CallbackRequest) -> CallbackEvent:
        """Read Rev's ``{"job": {...}}`` webhook.

        Rev does not sign webhooks, so the event asks the orchestrator to
        confirm the state with one ``GET /jobs/{id}`` before trusting it.
        """
        try:
            data = json.loads(request.body or b"")
        except ValueError:
            raise CallbackRejected("Rev.ai webhook body is not JSON", http_status=400,
                                   provider=NAME, operation="callback") from None
        job_data = data.get("job") if isinstance(data, Mapping) else None
        if not isinstance(job_data, Mapping) or not job_data.get("id"):
            raise CallbackRejected('Rev.ai webhook body has no "job" with an id',
                                   http_status=400, provider=NAME, operation="callback")
        try:
            job = RevApi(ctx).read(job_data, RevJob, "callback")
        except ProviderError as exc:
            raise CallbackRejected(exc.message, http_status=400, provider=NAME,
                                   operation="callback") from None
        # One delivery per (job, reported status): a re-indented or re-sent copy is a replay.
        return CallbackEvent(vendor_id=job.id, status=job.to_status(), confirm=True,
                             data={"revai_status": job.status},
                             delivery_id=f"revai:{job.id}:{job.status}")


def _vendor_id(handle: JobHandle) -> str:
    vendor_id = handle.vendor_ids.get("job") or handle.vendor_id
    if not vendor_id:
        raise InvalidInputError("this job has no Rev.ai job id yet (was it submitted?)",
                                field="job", provider=NAME, operation="status")
    return vendor_id


def _handle(handle: JobHandle, job: RevJob, media: Media | None) -> JobHandle:
    return handle.with_vendor({"job": job.id}, {"upload": isinstance(media, LocalFile)})
