"""The ``revai`` provider: Rev.ai's asynchronous speech-to-text API v1.

Request flow: ``validate`` checks options before any request; ``submit`` sends
a URL job as JSON (``source_config``) or streams a local file as multipart;
``status``/``fetch``/``export``/``close`` read and delete the job;
``recover`` finds a job whose submit answer was lost, by the idempotency
marker voxhub writes into the job's ``metadata`` (see :mod:`voxhub_revai.options`).
"""

from __future__ import annotations

import json
import mimetypes
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
from voxhub.errors import (
    CallbackRejected,
    ConfigurationError,
    InvalidInputError,
    JobFailedError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    VoxhubError,
    error_for_status,
)
from voxhub.models import (
    JobHandle,
    JobKind,
    JobRequest,
    JobState,
    JobStatus,
    LocalFile,
    RemoteUrl,
    Segment,
    Transcript,
    Word,
)
from voxhub.provider import (
    CallbackEvent,
    CallbackRequest,
    Capability,
    CredentialField,
    PollingHints,
    Provider,
    ProviderContext,
    ProviderInfo,
)
from voxhub.redact import redact_text
from voxhub.transport import MultipartBody, Part, Response, RetryPolicy, Timeouts, parse_retry_after

from . import options as opt
from .schema import TRANSCRIPT_JSON, Account, Problem, RevJob, RevTranscript, read

__all__ = ["EU_URL", "US_URL", "RevaiProvider"]

US_URL = "https://api.rev.ai"
EU_URL = "https://ec1.api.rev.ai"
API_PATH = "/speechtotext/v1"
NAME = "revai"

#: Jobs created this long before the handle (clock skew between us and Rev) are still searched.
RECOVER_MARGIN = timedelta(minutes=10)
#: Upper bound on list pages read by one recovery (100 jobs a page).
RECOVER_MAX_PAGES = 50
#: Least read timeout for uploads: Rev may take a while to answer after a big file's last byte.
UPLOAD_READ_TIMEOUT = 300.0

CAPTION_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt"}
# Containers mimetypes does not know (or knows under a video type Rev does not care about).
_AUDIO_TYPES = {
    ".m4a": "audio/mp4", ".opus": "audio/ogg", ".oga": "audio/ogg", ".amr": "audio/amr",
    ".wma": "audio/x-ms-wma", ".aac": "audio/aac", ".flac": "audio/flac", ".wav": "audio/wav",
    ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".webm": "audio/webm", ".pcm": "audio/L16",
}

INFO = ProviderInfo(
    name=NAME,
    kinds=frozenset({JobKind.TRANSCRIPTION}),
    description="Rev.ai asynchronous speech-to-text (machine and human transcription)",
    capabilities=frozenset({
        Capability.UPLOAD, Capability.URL, Capability.CALLBACKS, Capability.CAPTIONS,
        Capability.DELETE, Capability.LIST, Capability.RECOVER, Capability.DIARIZATION,
        Capability.WORD_TIMINGS,
    }),
    options=opt.OPTIONS,
    credentials=(
        CredentialField("token", "Rev.ai access token (Settings → Access token)"),
        CredentialField("region", "deployment: us (default) or eu (a separate account)",
                        secret=False, required=False),
        CredentialField("webhook_authorization", "Authorization header value Rev.ai sends "
                        "with webhooks (notification_config.auth_headers)", required=False),
    ),
    default_base_url=US_URL,
    retry=RetryPolicy(max_attempts=5, retry_statuses=frozenset({502, 503, 504}),
                      rate_limit_statuses=frozenset({429})),
    polling=PollingHints(first_poll=2.0, typical_duration=30.0, max_interval=15.0),
    export_formats=frozenset({"srt", "vtt", "txt"}),
    docs_url="https://docs.rev.ai/api/asynchronous/reference/",
)


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

    def _finished_job(self, ctx: ProviderContext, vendor_id: str) -> RevJob:
        with self._finished_lock:
            job = self._finished.pop(vendor_id, None)
        return job if job is not None else self.get_job(ctx, vendor_id, operation="fetch")

    # --- configuration -----------------------------------------------------------

    def authenticate(self, ctx: ProviderContext) -> dict[str, str]:
        """The request headers (bearer token); checks the profile's token and region locally."""
        token = ctx.settings.require("token")
        self._region(ctx)
        return {"Authorization": f"Bearer {token}"}

    def _headers(self, ctx: ProviderContext, accept: str = "application/json") -> dict[str, str]:
        auth = ctx.auth if isinstance(ctx.auth, Mapping) else self.authenticate(ctx)
        return {**auth, "Accept": accept}

    @staticmethod
    def _region(ctx: ProviderContext) -> str:
        region = str(ctx.settings.get("region") or "").strip().lower()
        if not region:
            # A base_url pointing at the EU host means the EU rules apply.
            return "eu" if "ec1." in (ctx.settings.base_url or "") else "us"
        if region not in ("us", "eu"):
            raise ConfigurationError(
                f"region must be 'us' or 'eu', not {region!r}", provider=NAME,
                operation="authenticate",
            )
        return region

    def _api(self, ctx: ProviderContext) -> str:
        """The API root: the profile's base_url if set (sandbox, proxy), else by region."""
        base = ctx.base_url
        if not base or base == US_URL:
            # The US host is also the declared default, so region=eu must still win over it.
            base = EU_URL if self._region(ctx) == "eu" else US_URL
        return base if base.endswith(API_PATH) else base + API_PATH

    def _job_url(self, ctx: ProviderContext, vendor_id: str, suffix: str = "") -> str:
        return f"{self._api(ctx)}/jobs/{quote(vendor_id, safe='')}{suffix}"

    # --- validation ----------------------------------------------------------------

    def validate(self, ctx: ProviderContext, request: JobRequest) -> JobRequest:
        """Per-option specs plus Rev's cross-field rules; raises before any request.

        Returns the request with its options converted to their declared types
        (``"false"`` from a command line becomes ``False``).
        """
        request = attrs.evolve(request, options=self.info.validate_options(request.options))
        opt.check(request, region=self._region(ctx),
                  webhook_authorization=bool(ctx.settings.secret("webhook_authorization")))
        if request.kind not in (None, JobKind.TRANSCRIPTION):
            raise InvalidInputError(f"Rev.ai does only transcription, not {request.kind}",
                                    field="kind", provider=NAME, operation="validate")
        return request

    # --- submit / recover ------------------------------------------------------------

    def submit(self, ctx: ProviderContext, request: JobRequest, handle: JobHandle) -> JobHandle:
        """Create the Rev job; on an ambiguous failure, look for it before sending again.

        The transport never repeats a POST whose fate is unknown. When the
        answer is lost (dropped connection, read timeout) or a gateway error
        comes back, the job may exist anyway: ``recover`` looks for it by its
        idempotency marker and the request is sent again only if it is not there.
        """
        request = self.validate(ctx, request)  # again: never send what Rev would refuse
        key = handle.idempotency_key or request.idempotency_key
        body = opt.build_options(request, idempotency_key=key,
                                 callback_url=ctx.callback_url_for(handle.job_id),
                                 webhook_authorization=ctx.settings.secret("webhook_authorization"))
        media = request.media
        policy = self.info.retry
        failure: VoxhubError | None = None
        for attempt in range(1, policy.max_attempts + 1):
            try:
                resp = self._post_job(ctx, media, body)
            except ProviderUnavailableError as exc:  # TransportError and RequestTimeoutError
                if not exc.in_doubt:
                    raise  # the transport already retried requests that never left
                failure = exc
            else:
                if resp.status < 500:
                    job = self._job_or_raise(resp, "submit", body=body)
                    ctx.log.info("revai.submitted", vendor_id=job.id, attempts=attempt,
                                 upload=isinstance(media, LocalFile))
                    return self._handle(handle, job, media)
                failure = self._error(resp, "submit")
            failure.in_doubt = True
            if key is None:
                # Without a marker a lost answer cannot be told from a lost request.
                raise failure
            ctx.log.warning("revai.submit_ambiguous", attempt=attempt, error=str(failure))
            ctx.clock.sleep(policy.backoff(attempt))
            try:
                found = self.recover(ctx, request, handle)
            except ProviderError as exc:
                ctx.log.warning("revai.recover_failed", error=str(exc))
                raise failure from None
            if found is not None:
                ctx.log.info("revai.recovered", vendor_id=found.vendor_id, attempt=attempt)
                return found
        assert failure is not None
        # We looked after the last attempt and no job carries the key: it was not created,
        # so the orchestrator may treat the submit as not sent (no endless in-doubt loop).
        failure.in_doubt = False
        failure.details["recover_checked"] = True
        raise failure

    def _post_job(self, ctx: ProviderContext, media: Any, body: dict[str, Any]) -> Response:
        url = f"{self._api(ctx)}/jobs"
        if isinstance(media, RemoteUrl):
            source: dict[str, Any] = {"url": media.url}
            if media.auth_headers:
                source["auth_headers"] = {k: v.reveal() for k, v in media.auth_headers.items()}
            return ctx.http.request(
                "POST", url, operation="submit", headers=self._headers(ctx),
                json={**body, "source_config": source}, idempotent=False,
            )
        assert isinstance(media, LocalFile)
        path = media.path
        size = path.stat().st_size
        if size > opt.MAX_UPLOAD_BYTES:  # re-checked: the file may have grown since validate
            raise InvalidInputError(
                f"{path.name} is over Rev.ai's 2 GB upload limit; submit a URL instead",
                field="media", provider=NAME, operation="submit",
            )
        multipart = MultipartBody([
            Part("media", path=path, filename=path.name, content_type=_content_type(path)),
            Part("options", value=json.dumps(body, ensure_ascii=False),
                 content_type="application/json"),
        ])
        # Progress goes to whatever the caller set up with voxhub.transport.upload_progress
        # (the CLI's progress bar): no callback of our own, which would replace it.
        ctx.log.debug("revai.uploading", bytes=size, content_type=multipart.parts[0].content_type)
        timeouts = Timeouts(connect=ctx.http.timeouts.connect,
                            read=max(ctx.http.timeouts.read, UPLOAD_READ_TIMEOUT))
        return ctx.http.request(
            "POST", url, operation="submit", headers=self._headers(ctx), body=multipart,
            idempotent=False, timeouts=timeouts,
        )

    @staticmethod
    def _handle(handle: JobHandle, job: RevJob, media: Any) -> JobHandle:
        state: dict[str, Any] = {"upload": isinstance(media, LocalFile)}
        return handle.with_vendor({"job": job.id}, state)

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
            return None
        token = opt.key_token(key)
        cutoff = handle.created_at - RECOVER_MARGIN
        matches: list[RevJob] = []
        for job in self._iter_jobs(ctx, page_size=100, max_pages=RECOVER_MAX_PAGES,
                                   operation="recover"):
            created = job.created
            if created is not None and created < cutoff:
                break
            if opt.token_of(job.metadata) == token:
                matches.append(job)
        if not matches:
            return None
        if len(matches) > 1:
            ctx.log.warning("revai.duplicates_found", count=len(matches),
                            vendor_ids=[j.id for j in matches])
        return self._handle(handle, matches[-1], request.media)

    # --- status / fetch / export ------------------------------------------------------

    def _vendor_id(self, handle: JobHandle) -> str:
        vendor_id = handle.vendor_ids.get("job") or handle.vendor_id
        if not vendor_id:
            raise InvalidInputError("this job has no Rev.ai job id yet (was it submitted?)",
                                    field="job", provider=NAME, operation="status")
        return vendor_id

    def get_job(self, ctx: ProviderContext, vendor_id: str, *, operation: str = "status") -> RevJob:
        """``GET /jobs/{id}`` as a :class:`RevJob`."""
        resp = ctx.http.request("GET", self._job_url(ctx, vendor_id), operation=operation,
                                headers=self._headers(ctx))
        return self._job_or_raise(resp, operation)

    def status(self, ctx: ProviderContext, handle: JobHandle) -> JobStatus:
        """The job's state: in_progress → running, transcribed → succeeded, failed → failed."""
        vendor_id = self._vendor_id(handle)
        job = self.get_job(ctx, vendor_id)
        status = job.to_status()
        if status.is_terminal:
            self._remember(vendor_id, job)
        return status

    def fetch(self, ctx: ProviderContext, handle: JobHandle) -> Transcript:
        """The JSON transcript as a :class:`Transcript` (duration from the job)."""
        vendor_id = self._vendor_id(handle)
        job = self._finished_job(ctx, vendor_id)
        status = job.to_status()
        if status.state is JobState.FAILED:
            raise JobFailedError(
                f"Rev.ai job {vendor_id} failed: {job.failure or 'unknown reason'}"
                + (f" ({job.failure_detail})" if job.failure_detail else ""),
                reason=job.failure, detail=job.failure_detail, handle=handle, provider=NAME,
                operation="fetch", details={"vendor_id": vendor_id},
            )
        resp = ctx.http.request("GET", self._job_url(ctx, vendor_id, "/transcript"),
                                operation="fetch", headers=self._headers(ctx, TRANSCRIPT_JSON))
        if not resp.ok:
            raise self._error(resp, "fetch")
        data = resp.json(provider=NAME, operation="fetch")
        transcript = read(data, RevTranscript, operation="fetch")
        return to_transcript(transcript, job, handle.job_id, raw=data)

    def export(self, ctx: ProviderContext, handle: JobHandle, fmt: str) -> str | None:
        """SRT/VTT from Rev's captions endpoint, txt from its plain-text transcript."""
        fmt = fmt.lower()
        if fmt in CAPTION_TYPES:
            suffix, accept = "/captions", CAPTION_TYPES[fmt]
        elif fmt == "txt":
            suffix, accept = "/transcript", "text/plain"
        else:
            return None
        resp = ctx.http.request("GET", self._job_url(ctx, self._vendor_id(handle), suffix),
                                operation="export", headers=self._headers(ctx, accept))
        if not resp.ok:
            raise self._error(resp, "export")
        return resp.data.decode("utf-8", "replace")

    # --- close / list / account --------------------------------------------------------

    def close(self, ctx: ProviderContext, handle: JobHandle) -> None:
        """Delete the job and its media/transcript; an already deleted job is fine.

        Rev refuses to delete a job still in progress (409): that is raised, not
        swallowed, so the caller knows the data still exists.
        """
        resp = ctx.http.request("DELETE", self._job_url(ctx, self._vendor_id(handle)),
                                operation="close", headers=self._headers(ctx))
        if resp.status in (200, 204, 404):
            return
        raise self._error(resp, "close")

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
        yield from self._iter_jobs(ctx, page_size=page_size, starting_after=starting_after,
                                   operation="list", limit=limit)

    def _iter_jobs(
        self,
        ctx: ProviderContext,
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
            resp = ctx.http.request(
                "GET", f"{self._api(ctx)}/jobs", operation=operation, headers=self._headers(ctx),
                params={"limit": size, "starting_after": starting_after},
            )
            if not resp.ok:
                raise self._error(resp, operation)
            items = resp.json(provider=NAME, operation=operation)
            if not isinstance(items, list):
                raise ProviderError("unexpected answer from Rev.ai: the job list is not a list",
                                    provider=NAME, operation=operation, status=resp.status)
            pages += 1
            for item in items:
                yield read(item, RevJob, operation=operation)
            if remaining is not None:
                remaining -= len(items)
            if len(items) < size:
                return
            starting_after = str(items[-1].get("id"))

    def account(self, ctx: ProviderContext) -> Account:
        """``GET /account``: e-mail and remaining balance in seconds."""
        resp = ctx.http.request("GET", f"{self._api(ctx)}/account", operation="account",
                                headers=self._headers(ctx))
        if not resp.ok:
            raise self._error(resp, "account")
        return read(resp.json(provider=NAME, operation="account"), Account, operation="account")

    # --- callbacks ---------------------------------------------------------------------

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
            job = read(job_data, RevJob, operation="callback")
        except ProviderError as exc:
            raise CallbackRejected(exc.message, http_status=400, provider=NAME,
                                   operation="callback") from None
        status = job.to_status()
        return CallbackEvent(vendor_id=job.id, status=status, confirm=True,
                             data={"revai_status": job.status})

    # --- errors ------------------------------------------------------------------------

    def _job_or_raise(self, resp: Response, operation: str, *, body: Any = None) -> RevJob:
        if not resp.ok:
            raise self._error(resp, operation, body=body)
        job = read(resp.json(provider=NAME, operation=operation), RevJob, operation=operation)
        if not job.id:
            raise ProviderError("unexpected answer from Rev.ai: the job has no id",
                                provider=NAME, operation=operation, status=resp.status)
        return job

    def _error(self, resp: Response, operation: str, *, body: Any = None) -> VoxhubError:
        return error_from_response(resp, operation, sent=body)


def error_from_response(resp: Response, operation: str, *, sent: Any = None) -> VoxhubError:
    """Map a Rev error answer (problem details or not) onto voxhub's error classes.

    Every problem-details member is kept in ``details``; the message says what
    Rev said and, where it helps, what to do.
    """
    try:
        data = json.loads(resp.data) if resp.data else None
    except ValueError:
        data = None
    problem = Problem.from_json(data)
    details = problem.to_details()
    request_id = resp.header("X-Request-ID") or resp.header("X-Rev-Request-Id")
    status = resp.status
    text = problem.title or (resp.text[:200].strip() if data is None else "")
    text = text or f"HTTP {status}"
    if problem.detail and problem.detail != problem.title:
        text = f"{text}: {problem.detail}"
    text = redact_text(text)  # whatever the server echoed, a known secret is not shown
    common: dict[str, Any] = {"provider": NAME, "operation": operation, "details": details}

    if status == 400 or status == 405:
        params = problem.parameters
        reasons = redact_text(
            "; ".join(f"{k}: {' '.join(v) or 'invalid'}" for k, v in params.items()))
        message = f"{text} ({reasons})" if reasons else text
        field = next(iter(params)) if len(params) == 1 else None
        details.update(status=status)
        if problem.kind:
            details["code"] = problem.kind
        return InvalidInputError(message, field=field, **common)
    if status == 404 and operation == "submit":
        # On POST /jobs a 404 means an unknown custom vocabulary, or an option the EU
        # deployment does not offer.
        field = "custom_vocabulary_id" if isinstance(sent, Mapping) and (
            "custom_vocabulary_id" in sent) else None
        details.update(status=status)
        return InvalidInputError(
            f"{text} (an unknown custom_vocabulary_id, or an option this deployment does not "
            "offer)", field=field, **common)
    if status == 413:
        details.update(status=status)
        return InvalidInputError(
            f"{text}: the upload is over Rev.ai's 2 GB multipart limit; submit a URL instead",
            field="media", **common)
    if status == 409:
        current = problem.current_value
        allowed = ", ".join(problem.allowed_values or ()) or "?"
        hint = {
            "close": f"the job is still {current or 'in progress'}; Rev.ai deletes only "
                     f"finished jobs ({allowed}) - wait for it, then close again",
            "fetch": f"the job is {current or 'not finished'}, the transcript needs "
                     f"{allowed}",
            "export": f"the job is {current or 'not finished'}, captions need {allowed}",
        }.get(operation, f"the job is {current or 'in another state'} (allowed: {allowed})")
        return ProviderError(f"{text} - {hint}", status=status, code=problem.kind, **common,
                             request_id=request_id)
    if status == 403:
        text += " (a token of another deployment? US and EU accounts are separate)"
    if status == 429:
        return RateLimitedError(
            f"{text} (Rev.ai rate limit)", retry_after=parse_retry_after(
                resp.header("Retry-After")), status=status, code=problem.kind,
            request_id=request_id, **common)
    return error_for_status(status, text, code=problem.kind, request_id=request_id, **common)


def _content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    return (_AUDIO_TYPES.get(suffix) or mimetypes.guess_type(path.name)[0]
            or "application/octet-stream")


def to_transcript(data: RevTranscript, job: RevJob, job_id: str, *, raw: Any = None) -> Transcript:
    """Rev's transcript as voxhub's: one segment per monologue, words from ``text`` elements.

    A segment's text is the monologue's element values joined exactly as Rev
    joins them (spaces are elements too); the transcript's text is the
    segments' texts, trimmed, joined by one space.
    """
    segments: list[Segment] = []
    for mono in data.monologues:
        words = tuple(
            Word(start=e.ts, end=e.end_ts, text=e.value, confidence=e.confidence)
            for e in mono.elements if e.type == "text"
        )
        times = [e.ts for e in mono.elements if e.ts is not None]
        ends = [e.end_ts for e in mono.elements if e.end_ts is not None]
        confidences = [w.confidence for w in words if w.confidence is not None]
        segments.append(Segment(
            start=min(times) if times else None,
            end=max(ends) if ends else None,
            text=mono.text,
            speaker=None if mono.speaker is None else str(mono.speaker),
            confidence=sum(confidences) / len(confidences) if confidences else None,
            words=words,
        ))
    text = " ".join(t for t in (s.text.strip() for s in segments) if t)
    return Transcript(
        provider=NAME, job_id=job_id, text=text, language=job.language,
        duration=job.duration_seconds, segments=tuple(segments), raw=raw,
    )
