"""A faithful emulator of Rev.ai's asynchronous speech-to-text API v1 (``voxhub sandbox revai``).

It speaks Rev's HTTP API under ``/speechtotext/v1/`` closely enough for the
official ``rev-ai`` SDK to run against it unchanged: bearer auth (401, and 403
for a token of "the other deployment"), JSON and multipart submissions with
Rev's per-parameter 400 problem details, 413 over the upload limit, jobs that
finish after ``processing_seconds`` (or fail for a ``failure_rate`` share),
paginated listing toward older jobs, delete (409 while in progress), the
transcript in JSON and text (406/409 like Rev), SRT/VTT captions, ``/account``
and webhooks posted on completion.

Built on :mod:`voxhub.sandbox_kit`, which brings the control API every sandbox has
(``/_sandbox/counters``, ``/_sandbox/faults``, ``/_sandbox/script``,
``/_sandbox/reset``). A lost submit answer is ``POST /_sandbox/script`` with
``{"endpoint": "create_job", "action": "drop_after"}`` (the job is created, its
answer lost), or a share of them with the fault plan's ``drop_after``.

Transcripts come from the recognizer installed in the ``voxhub.recognizers``
entry-point group (:func:`voxhub.sandbox_kit.media_text`; ``voxhub-local``
declares one), else from a sidecar text file (``<media>.txt``), else a fixed
placeholder; word times are spread over the media's duration (WAV headers are
read, other media count one second per three words). URL jobs download their
media only from loopback URLs: the sandbox never reaches beyond this machine.

``store_uploads=False`` streams uploads through without keeping them
(benchmarks), and the counters ``jobs.created``, ``jobs.duplicates`` and
``jobs.key.<token>`` prove that a client made no duplicate. Its parts:
``sandbox_jobs`` (jobs, option checks), ``sandbox_upload`` (multipart uploads),
``sandbox_transcribe`` (media to transcript) and ``sandbox_render`` (answers).
"""

from __future__ import annotations

import functools
import json
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import structlog
from voxhub.sandbox_kit import (
    CallbackSender,
    FaultPlan,
    Request,
    Response,
    Rule,
    Sandbox,
    is_loopback_url,
    json_answer,
    media_text,
)
from werkzeug.exceptions import HTTPException, NotFound

from .marker import key_token
from .sandbox_jobs import FAILURES, Job, JobBook, base_name, read_json_submission, safe_suffix
from .sandbox_render import (
    ERRORS_NO_WWW,
    captions,
    invalid,
    invalid_state,
    pick,
    plain_text,
    problem,
    unsupported_format,
)
from .sandbox_transcribe import PLACEHOLDER_TEXT, Outcome, download, sidecar_text, transcribe
from .sandbox_upload import UploadDesk, discard

__all__ = ["FAILURES", "PLACEHOLDER_TEXT", "RevaiSandbox"]

log = structlog.get_logger("voxhub_revai.sandbox")

API = "/speechtotext/v1"
CAPTION_TYPES = {"application/x-subrip": "srt", "text/vtt": "vtt"}
#: Rev's transcript media type, spelt here from Rev's API reference (not the client's schema).
TRANSCRIPT_JSON = "application/vnd.rev.transcript.v1.0+json"
TRANSCRIPT_TYPES = (TRANSCRIPT_JSON, "text/plain")
#: Multipart submissions Rev serves at once per user (Rev's docs, "Rate limits": 10).
MULTIPART_CONCURRENCY = 10
#: Rev: "If a webhook invocation does not receive a 200 Rev.ai will retry" - only 200 acks.
WEBHOOK_ACK_STATUSES = frozenset({200})


class RevaiSandbox(Sandbox):
    """Rev.ai's async API on loopback. Every knob is a keyword argument.

    ``token`` is accepted; ``other_region_token`` is "valid but for the other
    deployment" (403). ``region="eu"`` refuses human transcription and
    custom vocabulary ids with 404 like the EU deployment. ``processing_seconds``
    is how long a job stays ``in_progress`` (0 = done right after the submit
    answer); ``failure_rate`` is the share of jobs that fail. ``use_engine=False``
    never asks the installed recognizer (sidecar text or the placeholder only).
    """

    provider = "revai"
    rules = (
        Rule(f"{API}/jobs", endpoint="list_jobs", methods=["GET"]),
        Rule(f"{API}/jobs", endpoint="create_job", methods=["POST"]),
        Rule(f"{API}/jobs/<job_id>", endpoint="get_job", methods=["GET"]),
        Rule(f"{API}/jobs/<job_id>", endpoint="delete_job", methods=["DELETE"]),
        Rule(f"{API}/jobs/<job_id>/transcript", endpoint="transcript", methods=["GET"]),
        Rule(f"{API}/jobs/<job_id>/captions", endpoint="captions", methods=["GET"]),
        Rule(f"{API}/account", endpoint="account", methods=["GET"]),
    )

    def __init__(
        self,
        *,
        token: str = "revai-sandbox-token",  # noqa: S107 - a fake token for a fake server
        other_region_token: str = "revai-sandbox-other-region-token",  # noqa: S107
        region: str = "us",
        processing_seconds: float = 0.5,
        failure_rate: float = 0.0,
        max_upload_bytes: int = 2_000_000_000,
        max_concurrent_uploads: int = MULTIPART_CONCURRENCY,
        store_uploads: bool = True,
        use_engine: bool | None = None,
        sidecar_dirs: Sequence[str | Path] = (),
        custom_vocabulary_ids: Sequence[str] = ("cv_sandbox",),
        balance_seconds: int = 360_000,
        callback_schedule: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0),
        seed: int | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        super().__init__(faults=faults)
        if region not in ("us", "eu"):
            raise ValueError("region must be 'us' or 'eu'")
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate is a share in [0, 1]")
        self.token = token
        self.other_region_token = other_region_token
        self.region = region
        self.processing_seconds = processing_seconds
        self.failure_rate = failure_rate
        self.use_engine = use_engine
        self.sidecar_dirs = tuple(Path(d) for d in sidecar_dirs)
        self.custom_vocabulary_ids = frozenset(custom_vocabulary_ids)
        self.balance_seconds = balance_seconds
        self.callback_schedule = callback_schedule
        self._job_rng = random.Random(seed)
        self.jobs = JobBook(self._job_rng, self.counters)
        self._lock = self.jobs.lock
        self._callbacks: CallbackSender | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="voxhub-revai-sandbox-"))
        self.uploads = UploadDesk(limit=max_upload_bytes, concurrent=max_concurrent_uploads,
                                  directory=self._dir if store_uploads else None,
                                  counters=self.counters)
        #: What the last accepted upload looked like (name and part type as sent), for tests.
        self.last_upload: dict[str, Any] | None = None

    # --- Sandbox API ----------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        """The token this sandbox accepts, under the provider profile's field name."""
        return {"token": self.token}

    def settings(self, root_url: str) -> dict[str, str]:
        """A client profile for this sandbox (``region`` only when emulating the EU)."""
        settings = super().settings(root_url)
        if self.region == "eu":
            settings["region"] = "eu"
        return settings

    def reset(self) -> None:
        """Forget every job, counter, script and pending timer."""
        super().reset()
        self.jobs.clear()

    def close(self) -> None:
        """Stop timers and webhook delivery; remove stored media."""
        super().close()
        with self._lock:
            if self._callbacks is not None:
                self._callbacks.close()
                self._callbacks = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def rate_limited_response(self, retry_after: float) -> Response:
        """Rev's 429: a problem body and ``Retry-After``."""
        resp = problem(429, "Too Many Requests", kind="too-many-requests",
                       detail="Rate limit exceeded; retry later")
        resp.headers["Retry-After"] = (
            str(int(retry_after)) if float(retry_after).is_integer() else f"{retry_after:.3f}"
        )
        return resp

    def recognize(self, path: Path) -> str | None:
        """What the speech in ``path`` says, from the installed recognizer (``None``: none)."""
        return media_text(path, default=None)

    def jobs_for_key(self, key_or_token: str) -> int:
        """How many jobs were created with this idempotency token in their metadata."""
        return self.jobs.count_for(key_token(key_or_token))

    def job_ids(self) -> list[str]:
        """Ids of the jobs not deleted, newest first (for tests)."""
        return [j.id for j in self.jobs.newest_first()]

    # --- routing ---------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        """Check the bearer token, then answer through the route's ``on_<endpoint>``."""
        denied = self._auth(request)
        if denied is not None:
            self._drain(request)
            return denied
        self._settle()
        try:
            return super().dispatch(request)
        except NotFound:
            self._drain(request)
            return problem(404, "Not Found", detail=f"no such endpoint {request.path}")
        except HTTPException as exc:
            self._drain(request)
            return problem(exc.code or 405, exc.name or "Method Not Allowed")

    def _auth(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip() == self.token:
            return None
        if scheme.lower() == "bearer" and value.strip() == self.other_region_token:
            self.counters.add("auth.forbidden")
            return problem(403, "User does not have permission to access this deployment",
                           kind="forbidden",
                           detail=f"this token belongs to another Rev.ai deployment than "
                                  f"{self.region.upper()}")
        self.counters.add("auth.denied")
        # Rev's 401 body has exactly these two members.
        return json_answer({"title": "Authorization has been denied for this request",
                            "status": 401}, 401, content_type="application/problem+json")

    @staticmethod
    def _drain(request: Request) -> None:
        # Read what the client still sends, so it sees our answer rather than a reset.
        stream = request.stream
        while stream.read(1 << 20):
            pass

    def _job(self, job_id: str) -> Job | Response:
        job = self.jobs.get(job_id)
        if job is None:
            return problem(404, "could not find job", kind="job-not-found", host=ERRORS_NO_WWW)
        return job

    # --- submit ------------------------------------------------------------------------

    def on_create_job(self, request: Request) -> Response:
        """``POST /jobs``: JSON (a URL) or multipart (an upload)."""
        mimetype = request.mimetype
        if mimetype == "multipart/form-data":
            return self._submit_multipart(request)
        if mimetype != "application/json":
            self._drain(request)
            return invalid({"body": ["Content-Type must be application/json or "
                                     "multipart/form-data"]})
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return invalid({"body": ["The request body must be a JSON object"]})
        submission = read_json_submission(data)
        if submission.problems:
            self.counters.add("jobs.rejected")
            return invalid(submission.problems)
        not_found = self._check_resources(submission.options)
        if not_found is not None:
            return not_found
        url = submission.url
        name = (PurePosixPath(urlsplit(url).path).name or None) if url else None
        job = self._create(submission.options, name=name, media_url=url,
                           media_auth=submission.auth, upload=False)
        return self._created(job)

    def _submit_multipart(self, request: Request) -> Response:
        upload = self.uploads.receive(request, self._drain)
        if isinstance(upload, Response):
            return upload
        not_found = self._check_resources(upload.options)
        if not_found is not None:
            discard(upload.sinks)
            return not_found
        assert upload.sink is not None and upload.media is not None  # it was accepted
        media = upload.media
        self.last_upload = {"filename": media.filename, "content_type": media.content_type,
                            "bytes": upload.sink.size, "options": dict(upload.options)}
        job = self._create(upload.options, name=base_name(media.filename),
                           media_path=upload.sink.path, upload=True)
        return self._created(job)

    def _check_resources(self, opts: dict[str, Any]) -> Response | None:
        if self.region == "eu" and (opts.get("transcriber") == "human"
                                    or opts.get("custom_vocabulary_id") is not None):
            return problem(404, "Not supported in this deployment",
                           detail="human transcription and custom vocabulary ids are not "
                                  "available in the EU deployment")
        vocab = opts.get("custom_vocabulary_id")
        if vocab is not None and vocab not in self.custom_vocabulary_ids:
            return problem(404, "Custom vocabulary not found", kind="custom-vocabulary-not-found",
                           detail=f"custom vocabulary {vocab} was not found or is not complete")
        return None

    def _create(
        self,
        options: dict[str, Any],
        *,
        name: str | None,
        upload: bool,
        media_path: Path | None = None,
        media_url: str | None = None,
        media_auth: dict[str, str] | None = None,
    ) -> Job:
        notification = options.pop("notification_config", None)
        callback: tuple[str, dict[str, str]] | None = None
        if isinstance(notification, dict):
            headers = {str(k): str(v) for k, v in (notification.get("auth_headers") or {}).items()}
            callback = (str(notification["url"]), headers)
        elif isinstance(options.get("callback_url"), str):
            callback = (options["callback_url"], {})
        return self.jobs.add(options, upload=upload, processing=self.processing_seconds,
                             name=name, media_path=media_path, media_url=media_url,
                             media_auth=dict(media_auth or {}), callback=callback)

    def _created(self, job: Job) -> Response:
        body = job.to_json()  # the answer always says in_progress, as Rev's does
        self.timers.after(self.processing_seconds, functools.partial(self._finish, job.id))
        return json_answer(body)

    # --- processing --------------------------------------------------------------------

    def _settle(self) -> None:
        """Finish jobs whose time has come (in case a timer is late)."""
        for job_id in self.jobs.due(time.monotonic()):
            self._finish(job_id)

    def _finish(self, job_id: str) -> None:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None or job.status != "in_progress" or job.finishing:
                return
            job.finishing = True
            fail = self.failure_rate > 0 and self._job_rng.random() < self.failure_rate
            reason = self._job_rng.choice(FAILURES)
        failure: tuple[str, str] | None = reason if fail else None
        duration: float | None = None
        monos: list[dict[str, Any]] = []
        try:
            if failure is None:
                failure, duration, monos = self._transcribe(job)
        except Exception as exc:  # noqa: BLE001 - any engine crash is a failed job, as at Rev
            log.warning("sandbox.transcribe_failed", job=job_id, error=repr(exc))
            failure = ("internal_processing", "An internal error occurred")
        with self._lock:
            if not job.live():  # deleted while it was being transcribed
                return
            job.completed = time.time()
            job.duration = duration
            if failure is not None:
                job.status = "failed"
                job.failure, job.failure_detail = failure
                self.counters.add("jobs.failed")
            else:
                job.status = "transcribed"
                job.monologues = monos
                self.counters.add("jobs.transcribed")
            job.finishing = False
            body = json.dumps({"job": job.to_json()}).encode()
            callback = job.callback
        if callback is not None:
            url, headers = callback
            self._sender().send(url, body, headers)

    def _sender(self) -> CallbackSender:
        with self._lock:
            if self._callbacks is None:
                self._callbacks = CallbackSender(self.counters, schedule=self.callback_schedule,
                                                 ack_statuses=WEBHOOK_ACK_STATUSES)
            return self._callbacks

    def _transcribe(self, job: Job) -> Outcome:
        path = job.media_path
        if job.media_url is not None and is_loopback_url(job.media_url):
            path = self._dir / f"url-{job.seq}{safe_suffix(urlsplit(job.media_url).path)}"
            if not download(job.media_url, job.media_auth, path):
                return FAILURES[0], None, []
            self.counters.add("downloads")
        return transcribe(job.options, path, functools.partial(self._text_for, path, job.name))

    def _text_for(self, path: Path | None, name: str | None) -> str:
        if path is not None and self.use_engine is not False:
            text = self.recognize(path)
            if text:
                return text
        return sidecar_text(path, name, self.sidecar_dirs) or PLACEHOLDER_TEXT

    # --- reading -----------------------------------------------------------------------

    def on_list_jobs(self, request: Request) -> Response:
        """``GET /jobs``: newest first, ``limit`` 0-1000, ``starting_after`` pages older."""
        raw_limit = request.args.get("limit")
        limit = 100
        if raw_limit not in (None, ""):
            try:
                limit = int(raw_limit)
            except ValueError:
                return invalid({"limit": ["The limit must be an integer"]})
            if not 0 <= limit <= 1000:
                return invalid({"limit": ["The field limit must be between 0 and 1000."]})
        after = request.args.get("starting_after") or None
        anchor = None if after is None else self.jobs.get(after, deleted=True)
        if after is not None and anchor is None:
            return invalid({"starting_after": [f"Job {after} was not found"]})
        with self._lock:
            page = [j.to_json() for j in self.jobs.newest_first(older_than=anchor)[:limit]]
        return json_answer(page)

    def on_get_job(self, request: Request, job_id: str) -> Response:
        """``GET /jobs/{id}``."""
        job = self._job(job_id)
        return job if isinstance(job, Response) else json_answer(job.to_json())

    def on_delete_job(self, request: Request, job_id: str) -> Response:
        """``DELETE /jobs/{id}``: 409 while in progress; media and transcript are removed."""
        job = self._job(job_id)
        if isinstance(job, Response):
            return job
        with self._lock:
            if job.status == "in_progress":
                return invalid_state("be deleted", job.status, ["transcribed", "failed"])
            job.deleted = True
            job.monologues = []
            path = job.media_path
            self.counters.add("jobs.deleted")
        if path is not None:
            path.unlink(missing_ok=True)
            Path(f"{path}.txt").unlink(missing_ok=True)
        return Response(status=204)

    def on_transcript(self, request: Request, job_id: str) -> Response:
        """``GET /jobs/{id}/transcript`` as Rev JSON or plain text, chosen by ``Accept``."""
        job = self._job(job_id)
        if isinstance(job, Response):
            return job
        accept = request.headers.get("Accept")
        chosen = TRANSCRIPT_JSON if not accept else pick(accept, TRANSCRIPT_TYPES)
        if chosen is None:
            return unsupported_format(TRANSCRIPT_TYPES, accept)
        if job.status != "transcribed":
            return invalid_state("obtain the transcript", job.status, ["transcribed"])
        if chosen == "text/plain":
            return Response(plain_text(job.monologues), content_type="text/plain; charset=utf-8")
        return json_answer({"monologues": job.monologues}, content_type=TRANSCRIPT_JSON)

    def on_captions(self, request: Request, job_id: str) -> Response:
        """``GET /jobs/{id}/captions``: SRT (the default) or VTT, per channel if multichannel."""
        job = self._job(job_id)
        if isinstance(job, Response):
            return job
        accept = request.headers.get("Accept")
        if not accept or accept.strip() == "*/*":
            chosen: str | None = "application/x-subrip"  # SRT is the default
        else:
            chosen = pick(accept, tuple(CAPTION_TYPES))
        if chosen is None:
            return unsupported_format(tuple(CAPTION_TYPES), accept)
        if job.status != "transcribed":
            return invalid_state("obtain captions", job.status, ["transcribed"])
        monos = job.monologues
        channel = request.args.get("speaker_channel")
        if job.options.get("speaker_channels_count") is not None:
            if channel is None:
                return problem(405, "Invalid job properties", kind="invalid-job-properties",
                               detail="speaker_channel is required for multichannel jobs")
            monos = [m for m in monos if str(m.get("speaker")) == channel]
        text = captions(monos, CAPTION_TYPES[chosen])
        return Response(text, content_type=f"{chosen}; charset=utf-8")

    def on_account(self, request: Request) -> Response:
        """``GET /account``: a fixed e-mail and the balance left after transcribed jobs."""
        used = self.jobs.transcribed_seconds()
        return json_answer({"email": "sandbox@voxhub.invalid",
                            "balance_seconds": max(0, int(self.balance_seconds - used))})
