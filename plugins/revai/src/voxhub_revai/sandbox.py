"""A faithful emulator of Rev.ai's asynchronous speech-to-text API v1 (``voxhub sandbox revai``).

It speaks Rev's HTTP API under ``/speechtotext/v1/`` closely enough for the
official ``rev-ai`` SDK to run against it unchanged: bearer auth (401, and 403
for a token of "the other deployment"), JSON and multipart submissions with
Rev's per-parameter 400 problem details, 413 over the upload limit, jobs that
finish after ``processing_seconds`` (or fail for a ``failure_rate`` share),
paginated listing toward older jobs, delete (409 while in progress), the
transcript in JSON and text (406/409 like Rev), SRT/VTT captions, ``/account``
and webhooks posted on completion.

Transcripts come from the ``voxhub_local`` engine when it is installed, else
from a sidecar text file (``<media>.txt``), else a fixed placeholder; word
times are spread over the media's duration (WAV headers are read, other media
count one second per three words). URL jobs download their media only from
loopback URLs: the sandbox never reaches beyond this machine.

Test hooks: ``drop_after_create`` / ``drop_after_create_rate`` create the job and
then drop the connection (a lost answer), ``store_uploads=False`` streams uploads
through without keeping them (benchmarks), and the counters ``jobs.created``,
``jobs.duplicates`` and ``jobs.key.<token>`` prove that a client made no duplicate.
"""

from __future__ import annotations

import contextlib
import importlib
import ipaddress
import json
import random
import re
import shutil
import socket
import string
import tempfile
import threading
import time
import wave
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
import structlog
import urllib3
from voxhub.sandbox import CallbackSender, FaultPlan, Sandbox
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .options import key_token, token_of
from .schema import TRANSCRIPT_JSON

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["PLACEHOLDER_TEXT", "RevaiSandbox"]

log = structlog.get_logger("voxhub_revai.sandbox")

API = "/speechtotext/v1"
ERRORS = "https://www.rev.ai/api/v1/errors/"
# Rev's own bodies use both hosts for the same error kinds; so does the emulator.
ERRORS_NO_WWW = "https://rev.ai/api/v1/errors/"
PLACEHOLDER_TEXT = (
    "This is a placeholder transcript from the voxhub Rev.ai sandbox. "
    "No speech recognizer or sidecar text was available for this media."
)
FAILURES = (
    ("download_failure", "Failed to download media file. Please check your url and file type"),
    ("invalid_media", "The media file could not be decoded"),
    ("empty_media", "The media file contains no audio"),
    ("internal_processing", "An internal error occurred while processing the job"),
    ("transcription", "Transcription failed"),
)
CAPTION_TYPES = {"application/x-subrip": "srt", "text/vtt": "vtt"}
TRANSCRIPT_TYPES = (TRANSCRIPT_JSON, "text/plain")
BOOL_OPTIONS = (
    "verbatim", "rush", "test_mode", "skip_diarization", "skip_punctuation",
    "skip_postprocessing", "remove_disfluencies", "remove_atmospherics", "filter_profanity",
    "strict_custom_vocabulary", "forced_alignment",
)
INT_RANGES = {
    "speaker_channels_count": (1, 8),
    "speakers_count": (1, 2**31 - 1),
    "delete_after_seconds": (0, 2_592_000),
}
HUMAN_ONLY = ("rush", "test_mode", "segments_to_transcribe", "speaker_names")
NOT_FOR_HUMAN = (
    "remove_disfluencies", "remove_atmospherics", "speaker_channels_count", "speakers_count",
    "diarization_type", "summarization_config", "translation_config",
)
ECHOED = (
    "metadata", "callback_url", "media_url", "delete_after_seconds", "skip_diarization",
    "skip_punctuation", "remove_disfluencies", "filter_profanity", "custom_vocabulary_id",
    "speaker_channels_count", "verbatim", "rush", "segments_to_transcribe",
    "remove_atmospherics", "speakers_count", "diarization_type", "skip_postprocessing",
)
DISFLUENCIES = frozenset({"um", "uh", "umm", "uhh", "er", "erm", "hmm"})
PROFANITIES = frozenset({"damn", "hell", "shit", "fuck", "crap", "bastard"})


# --- jobs -----------------------------------------------------------------------------


@attrs.define
class _Job:
    id: str
    seq: int
    created: float  # wall clock, for created_on
    due: float  # monotonic time the job finishes
    options: dict[str, Any]
    name: str | None = None
    media_path: Path | None = None
    media_url: str | None = None  # where a URL job downloads from (kept, never echoed)
    media_auth: dict[str, str] = attrs.field(factory=dict)
    callback: tuple[str, dict[str, str]] | None = None
    status: str = "in_progress"
    finishing: bool = False
    completed: float | None = None
    duration: float | None = None
    failure: str | None = None
    failure_detail: str | None = None
    monologues: list[dict[str, Any]] = attrs.field(factory=list)
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "created_on": _iso(self.created),
            "status": self.status,
            "type": "async",
            "language": self.options.get("language", "en"),
            "transcriber": self.options.get("transcriber", "machine"),
        }
        if self.name:
            body["name"] = self.name
        if self.completed is not None:
            body["completed_on"] = _iso(self.completed)
        if self.duration is not None and self.status == "transcribed":
            body["duration_seconds"] = round(self.duration, 2)
        if self.failure:
            body["failure"] = self.failure
            body["failure_detail"] = self.failure_detail
        for key in ECHOED:
            # source_config and notification_config are never echoed (they may hold secrets).
            if self.options.get(key) is not None:
                body[key] = self.options[key]
        return body


def _gone(job: _Job) -> bool:
    return job.deleted


def _iso(when: float) -> str:
    dt = datetime.fromtimestamp(when, UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond // 10000:02d}Z"


class _Sink:
    """Where an upload's bytes go: a file, or nowhere (counted, then forgotten)."""

    def __init__(self, path: Path | None, limit: int) -> None:
        self.path = path
        self.size = 0
        self._limit = limit
        self._fh: IO[bytes] | None = path.open("wb") if path is not None else None

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self._limit:
            raise RequestEntityTooLarge()  # chunked uploads have no Content-Length to check
        if self._fh is not None:
            self._fh.write(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._fh is not None:
            self._fh.flush()
        return 0

    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""

    def tell(self) -> int:
        return self.size

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class _UploadRequest(Request):
    """A request whose multipart file parts stream into :class:`_Sink` objects."""

    sink_factory: Any = None

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        return self.sink_factory(filename)  # type: ignore[no-any-return]


# --- the emulator ------------------------------------------------------------------------


class RevaiSandbox(Sandbox):
    """Rev.ai's async API on loopback. Every knob is a keyword argument.

    ``token`` is accepted; ``other_region_token`` is "valid but for the other
    deployment" (403). ``region="eu"`` refuses human transcription and
    custom vocabulary ids with 404 like the EU deployment. ``processing_seconds``
    is how long a job stays ``in_progress`` (0 = done right after the submit
    answer); ``failure_rate`` is the share of jobs that fail.
    """

    provider = "revai"

    def __init__(
        self,
        *,
        token: str = "revai-sandbox-token",  # noqa: S107 - a fake token for a fake server
        other_region_token: str = "revai-sandbox-other-region-token",  # noqa: S107
        region: str = "us",
        processing_seconds: float = 0.5,
        failure_rate: float = 0.0,
        max_upload_bytes: int = 2_000_000_000,
        max_concurrent_uploads: int = 5,
        store_uploads: bool = True,
        drop_after_create: int = 0,
        drop_after_create_rate: float = 0.0,
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
        self.token = token
        self.other_region_token = other_region_token
        self.region = region
        self.processing_seconds = processing_seconds
        self.failure_rate = failure_rate
        self.max_upload_bytes = max_upload_bytes
        self.max_concurrent_uploads = max_concurrent_uploads
        self.store_uploads = store_uploads
        self.drop_after_create = drop_after_create
        self.drop_after_create_rate = drop_after_create_rate
        self.use_engine = use_engine
        self.sidecar_dirs = tuple(Path(d) for d in sidecar_dirs)
        self.custom_vocabulary_ids = frozenset(custom_vocabulary_ids)
        self.balance_seconds = balance_seconds
        self.callback_schedule = callback_schedule
        self._jobs: dict[str, _Job] = {}
        self._seq = 0
        self._lock = threading.RLock()
        self._job_rng = random.Random(seed)
        self._uploads = 0
        self._timers: list[threading.Timer] = []
        self._callbacks: CallbackSender | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="voxhub-revai-sandbox-"))
        self._keys: dict[str, int] = {}
        #: What the last accepted upload looked like (name and part type as sent), for tests.
        self.last_upload: dict[str, Any] | None = None
        self._url_map = Map([
            Rule(f"{API}/jobs", endpoint="jobs", methods=["GET", "POST"]),
            Rule(f"{API}/jobs/<job_id>", endpoint="job", methods=["GET", "DELETE"]),
            Rule(f"{API}/jobs/<job_id>/transcript", endpoint="transcript", methods=["GET"]),
            Rule(f"{API}/jobs/<job_id>/captions", endpoint="captions", methods=["GET"]),
            Rule(f"{API}/account", endpoint="account", methods=["GET"]),
        ], strict_slashes=False)

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
        """Forget every job and counter."""
        super().reset()
        with self._lock:
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self._jobs.clear()
            self._keys.clear()
            self._seq = 0

    def close(self) -> None:
        """Stop timers and webhook delivery; remove stored media."""
        with self._lock:
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            if self._callbacks is not None:
                self._callbacks.close()
                self._callbacks = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def rate_limited_response(self, retry_after: float) -> Response:
        """Rev's 429: a problem body and ``Retry-After``."""
        resp = _problem(429, "Too Many Requests", kind="too-many-requests",
                        detail="Rate limit exceeded; retry later")
        resp.headers["Retry-After"] = (
            str(int(retry_after)) if float(retry_after).is_integer() else f"{retry_after:.3f}"
        )
        return resp

    def jobs_for_key(self, key_or_token: str) -> int:
        """How many jobs were created with this idempotency token in their metadata."""
        with self._lock:
            return self._keys.get(key_token(key_or_token), 0)

    def job_ids(self) -> list[str]:
        """Ids of the jobs not deleted, newest first (for tests)."""
        with self._lock:
            jobs = sorted((j for j in self._jobs.values() if not j.deleted),
                          key=lambda j: -j.seq)
            return [j.id for j in jobs]

    # --- dispatch --------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        """Route one request of Rev's API (after auth)."""
        adapter = self._url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except NotFound:
            self._drain(request)
            return _problem(404, "Not Found", detail=f"no such endpoint {request.path}")
        except HTTPException as exc:
            self._drain(request)
            return _problem(exc.code or 405, exc.name or "Method Not Allowed")
        denied = self._auth(request)
        if denied is not None:
            self._drain(request)
            return denied
        self._settle()
        if endpoint == "jobs":
            if request.method == "POST":
                return self._submit(request)
            return self._list(request)
        if endpoint == "account":
            return self._account()
        job = self._get(str(args["job_id"]))
        if job is None:
            return _problem(404, "could not find job", kind="job-not-found", host=ERRORS_NO_WWW)
        if endpoint == "job":
            if request.method == "DELETE":
                return self._delete(job)
            return _json(job.to_json())
        if endpoint == "transcript":
            return self._transcript(request, job)
        return self._captions(request, job)

    def _auth(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip() == self.token:
            return None
        if scheme.lower() == "bearer" and value.strip() == self.other_region_token:
            self.counters.add("auth.forbidden")
            return _problem(403, "User does not have permission to access this deployment",
                            kind="forbidden",
                            detail=f"this token belongs to another Rev.ai deployment than "
                                   f"{self.region.upper()}")
        self.counters.add("auth.denied")
        # Rev's 401 body has exactly these two members.
        return _json({"title": "Authorization has been denied for this request", "status": 401},
                     status=401, content_type="application/problem+json")

    @staticmethod
    def _drain(request: Request) -> None:
        # Read what the client still sends, so it sees our answer rather than a reset.
        stream = request.stream
        while stream.read(1 << 20):
            pass

    # --- submit ------------------------------------------------------------------------

    def _submit(self, request: Request) -> Response:
        mimetype = request.mimetype
        if mimetype == "multipart/form-data":
            return self._submit_multipart(request)
        if mimetype != "application/json":
            self._drain(request)
            return _invalid({"body": ["Content-Type must be application/json or "
                                      "multipart/form-data"]})
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return _invalid({"body": ["The request body must be a JSON object"]})
        source = data.get("source_config")
        media_url = data.get("media_url")
        problems: dict[str, list[str]] = {}
        if source is not None and media_url is not None:
            problems["media_url"] = ["Only one of media_url and source_config may be given"]
        elif source is None and media_url is None:
            problems["media_url"] = ["The media_url field is required"]
        url: str | None = None
        auth: dict[str, str] = {}
        if source is not None:
            if not isinstance(source, dict) or not isinstance(source.get("url"), str):
                problems["source_config"] = ["source_config must be an object with a url"]
            else:
                url = source["url"]
                headers = source.get("auth_headers") or {}
                if not isinstance(headers, dict) or any(
                    str(k).lower() != "authorization" for k in headers
                ):
                    problems["source_config.auth_headers"] = [
                        "Only the Authorization header is supported"]
                else:
                    auth = {str(k): str(v) for k, v in headers.items()}
        elif isinstance(media_url, str):
            url = media_url
            if len(media_url) > 2048:
                problems["media_url"] = ["The media_url must be at most 2048 characters"]
        elif media_url is not None:
            problems["media_url"] = ["The media_url must be a string"]
        if url is not None and not re.match(r"(?i)https?://", url):
            problems.setdefault("media_url", []).append("The media url must be http(s)")
        options = {k: v for k, v in data.items() if k not in ("source_config",)}
        problems.update(self._check_options(options))
        if problems:
            self.counters.add("jobs.rejected")
            return _invalid(problems)
        not_found = self._check_resources(options)
        if not_found is not None:
            return not_found
        name = None
        if url:
            name = PurePosixPath(urlsplit(url).path).name or None
        job = self._create(options, name=name, media_url=url, media_auth=auth, upload=False)
        return self._created(request, job)

    def _submit_multipart(self, request: Request) -> Response:
        length = request.content_length
        if length is not None and length > self.max_upload_bytes:
            self.counters.add("uploads.too_large")
            self._drain(request)
            return _too_large(self.max_upload_bytes)
        with self._lock:
            busy = self._uploads >= self.max_concurrent_uploads
            if not busy:
                self._uploads += 1
        if busy:
            self.counters.add("uploads.concurrency_limited")
            self._drain(request)
            return _problem(429, "Too many concurrent multipart requests", kind="too-many-requests",
                            detail=f"at most {self.max_concurrent_uploads} concurrent uploads")
        try:
            return self._receive_upload(request)
        finally:
            with self._lock:
                self._uploads -= 1

    def _receive_upload(self, request: Request) -> Response:
        upload = _UploadRequest(request.environ)
        sinks: list[_Sink] = []
        stored = self.store_uploads

        def factory(filename: str | None) -> _Sink:
            path = None
            if stored:
                with self._lock:
                    self._seq += 1
                    index = self._seq
                path = self._dir / f"upload-{index}{_safe_suffix(filename)}"
            sink = _Sink(path, self.max_upload_bytes)
            sinks.append(sink)
            return sink

        upload.sink_factory = factory
        started = time.monotonic()
        try:
            files = upload.files
            form = upload.form
        except RequestEntityTooLarge:
            self.counters.add("uploads.too_large")
            self._discard(sinks)
            self._drain(upload)  # the stream that has been read from, not a fresh one
            return _too_large(self.max_upload_bytes)
        finally:
            for sink in sinks:
                sink.close()
        media = files.get("media")
        kept: Any = media.stream if media is not None else None
        problems: dict[str, list[str]] = {}
        if not isinstance(kept, _Sink):
            problems["media"] = ["The media field is required"]
        raw_options = form.get("options")
        options: dict[str, Any] = {}
        if raw_options:
            try:
                parsed = json.loads(raw_options)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                options = parsed
            else:
                problems["options"] = ["options must be a JSON object"]
        for key in ("media_url", "source_config"):
            if key in options:
                problems[key] = [f"{key} cannot be used with a file upload"]
        problems.update(self._check_options(options))
        if problems:
            self.counters.add("jobs.rejected")
            self._discard(sinks)
            return _invalid(problems)
        not_found = self._check_resources(options)
        if not_found is not None:
            self._discard(sinks)
            return not_found
        assert isinstance(kept, _Sink) and media is not None
        self.counters.add("uploads.bytes", kept.size)
        log.debug("sandbox.upload", bytes=kept.size,
                  seconds=round(time.monotonic() - started, 3), stored=stored)
        self._discard([s for s in sinks if s is not kept])
        name = _base_name(media.filename)
        self.last_upload = {"filename": media.filename, "content_type": media.content_type,
                            "bytes": kept.size, "options": dict(options)}
        job = self._create(options, name=name, media_path=kept.path, upload=True)
        return self._created(request, job)

    @staticmethod
    def _discard(sinks: Sequence[_Sink]) -> None:
        for sink in sinks:
            sink.close()
            if sink.path is not None:
                sink.path.unlink(missing_ok=True)

    def _check_options(self, opts: Mapping[str, Any]) -> dict[str, list[str]]:
        """Rev's option validation: a reasons list per offending parameter."""
        problems: dict[str, list[str]] = {}

        def bad(name: str, reason: str) -> None:
            problems.setdefault(name, []).append(reason)

        for name in BOOL_OPTIONS:
            if name in opts and not isinstance(opts[name], bool):
                bad(name, f"The {name} field must be a boolean")
        for name, (lo, hi) in INT_RANGES.items():
            value = opts.get(name)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                bad(name, f"The {name} field must be an integer")
            elif not lo <= value <= hi:
                bad(name, f"The field {name} must be between {lo} and {hi}.")
        metadata = opts.get("metadata")
        if metadata is not None and (not isinstance(metadata, str) or len(metadata) > 512):
            bad("metadata", "The field metadata must be a string with a maximum length of 512.")
        language = opts.get("language", "en")
        if not isinstance(language, str) or not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8})?",
                                                             language.lower()):
            bad("language", "The language is not supported")
        transcriber = opts.get("transcriber", "machine")
        if transcriber not in ("machine", "low_cost", "fusion", "human", "machine_v2",
                               "machine_v3"):
            bad("transcriber", f"The transcriber {transcriber!r} is not supported")
        if transcriber != "human":
            for name in HUMAN_ONLY:
                if opts.get(name):
                    bad(name, f"{name} is only supported for human transcription")
        else:
            for name in NOT_FOR_HUMAN:
                if opts.get(name) is not None and opts.get(name) is not False:
                    bad(name, f"{name} is not supported for human transcription")
        if opts.get("diarization_type") not in (None, "standard", "premium"):
            bad("diarization_type", "The diarization_type must be standard or premium")
        elif opts.get("diarization_type") is not None and transcriber == "low_cost":
            bad("diarization_type", "diarization_type is not supported for low_cost")
        if opts.get("custom_vocabularies") is not None:
            if opts.get("custom_vocabulary_id") is not None:
                bad("custom_vocabularies",
                    "Only one of custom_vocabularies and custom_vocabulary_id may be given")
            for reason in _vocabulary_problems(opts["custom_vocabularies"]):
                bad("custom_vocabularies", reason)
        if opts.get("notification_config") is not None:
            if opts.get("callback_url") is not None:
                bad("notification_config",
                    "Only one of callback_url and notification_config may be given")
            cfg = opts["notification_config"]
            if not isinstance(cfg, dict) or not isinstance(cfg.get("url"), str):
                bad("notification_config", "notification_config must be an object with a url")
            elif any(str(k).lower() != "authorization" for k in (cfg.get("auth_headers") or {})):
                bad("notification_config.auth_headers", "Only Authorization is supported")
        callback = opts.get("callback_url")
        if callback is not None and (not isinstance(callback, str)
                                     or not re.match(r"(?i)https?://", callback)):
            bad("callback_url", "The callback_url must be an http(s) URL")
        names = opts.get("speaker_names")
        if names is not None and (not isinstance(names, list) or len(names) > 100 or any(
            not isinstance(n, dict) or not isinstance(n.get("display_name"), str)
            or len(n["display_name"]) > 50 for n in names
        )):
            bad("speaker_names", "speaker_names must be at most 100 {display_name} objects "
                                 "of at most 50 characters")
        summary = opts.get("summarization_config")
        if isinstance(summary, dict) and summary.get("type") and summary.get("prompt"):
            bad("summarization_config", "type and prompt are mutually exclusive")
        return problems

    def _check_resources(self, opts: Mapping[str, Any]) -> Response | None:
        if self.region == "eu" and (opts.get("transcriber") == "human"
                                    or opts.get("custom_vocabulary_id") is not None):
            return _problem(404, "Not supported in this deployment",
                            detail="human transcription and custom vocabulary ids are not "
                                   "available in the EU deployment")
        vocab = opts.get("custom_vocabulary_id")
        if vocab is not None and vocab not in self.custom_vocabulary_ids:
            return _problem(404, "Custom vocabulary not found", kind="custom-vocabulary-not-found",
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
    ) -> _Job:
        notification = options.pop("notification_config", None)
        callback: tuple[str, dict[str, str]] | None = None
        if isinstance(notification, dict):
            headers = {str(k): str(v) for k, v in (notification.get("auth_headers") or {}).items()}
            callback = (str(notification["url"]), headers)
        elif isinstance(options.get("callback_url"), str):
            callback = (options["callback_url"], {})
        token = token_of(options.get("metadata"))
        with self._lock:
            self._seq += 1
            job = _Job(
                id=self._new_id(), seq=self._seq, created=time.time(),
                due=time.monotonic() + self.processing_seconds, options=options, name=name,
                media_path=media_path, media_url=media_url, media_auth=dict(media_auth or {}),
                callback=callback,
            )
            self._jobs[job.id] = job
            if token is not None:
                seen = self._keys.get(token, 0)
                self._keys[token] = seen + 1
                if seen:
                    self.counters.add("jobs.duplicates")
                self.counters.add(f"jobs.key.{token}")
            self.counters.add("jobs.created")
            self.counters.add("jobs.created.upload" if upload else "jobs.created.url")
            if self.processing_seconds > 0:
                timer = threading.Timer(self.processing_seconds, self._finish, args=(job.id,))
                timer.daemon = True
                self._timers = [t for t in self._timers if t.is_alive()]
                self._timers.append(timer)
                timer.start()
        return job

    def _created(self, request: Request, job: _Job) -> Response:
        body = job.to_json()  # the answer always says in_progress, as Rev's does
        if self.processing_seconds <= 0:
            self._finish(job.id)
        if self._should_drop():
            self.counters.add("faults.drop_after_create")
            _drop_connection(request.environ)
            raise ConnectionResetError("sandbox dropped the submit answer on purpose")
        return _json(body)

    def _should_drop(self) -> bool:
        with self._lock:
            if self.drop_after_create > 0:
                self.drop_after_create -= 1
                return True
            return self.drop_after_create_rate > 0 and (
                self._job_rng.random() < self.drop_after_create_rate)

    def _new_id(self) -> str:
        alphabet = string.ascii_letters + string.digits
        while True:
            job_id = "".join(self._job_rng.choice(alphabet) for _ in range(12))
            if job_id not in self._jobs:
                return job_id

    # --- processing --------------------------------------------------------------------

    def _settle(self) -> None:
        """Finish jobs whose time has come (in case a timer is late)."""
        now = time.monotonic()
        with self._lock:
            due = [j.id for j in self._jobs.values()
                   if j.status == "in_progress" and not j.finishing and j.due <= now]
        for job_id in due:
            self._finish(job_id)

    def _finish(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.deleted or job.status != "in_progress" or job.finishing:
                return
            job.finishing = True
            fail = self.failure_rate > 0 and self._job_rng.random() < self.failure_rate
            reason = self._job_rng.choice(FAILURES)
        failure: tuple[str, str] | None = reason if fail else None
        duration: float | None = None
        monologues: list[dict[str, Any]] = []
        try:
            if failure is None:
                failure, duration, monologues = self._transcribe(job)
        except Exception as exc:  # noqa: BLE001 - any engine crash is a failed job, as at Rev
            log.warning("sandbox.transcribe_failed", job=job_id, error=repr(exc))
            failure = ("internal_processing", "An internal error occurred")
        with self._lock:
            if _gone(job):  # deleted while it was being transcribed
                return
            job.completed = time.time()
            job.duration = duration
            if failure is not None:
                job.status = "failed"
                job.failure, job.failure_detail = failure
                self.counters.add("jobs.failed")
            else:
                job.status = "transcribed"
                job.monologues = monologues
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
                self._callbacks = CallbackSender(self.counters, schedule=self.callback_schedule)
            return self._callbacks

    def _transcribe(
        self, job: _Job
    ) -> tuple[tuple[str, str] | None, float | None, list[dict[str, Any]]]:
        path = job.media_path
        if job.media_url is not None and _is_loopback(job.media_url):
            path = self._download(job)
            if path is None:
                return FAILURES[0], None, []
        channels = None
        duration = None
        if path is not None:
            duration, channels = _wav_info(path)
        count = job.options.get("speaker_channels_count")
        if isinstance(count, int) and channels is not None and count > channels:
            return ("invalid_media", f"speaker_channels_count {count} is more than the "
                    f"{channels} channel(s) of the media"), None, []
        text = self._text_for(path, job.name)
        words = text.split()
        if duration is None:
            duration = max(1.0, len(words) / 3.0)  # one second per three words
        return None, duration, _monologues(text, duration, job.options)

    def _download(self, job: _Job) -> Path | None:
        assert job.media_url is not None
        target = self._dir / f"url-{job.seq}{_safe_suffix(urlsplit(job.media_url).path)}"
        pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(10.0))
        try:
            resp = pool.request("GET", job.media_url, headers=job.media_auth,
                                preload_content=False)
            if resp.status != 200:
                resp.release_conn()
                return None
            with target.open("wb") as fh:
                for chunk in resp.stream(1 << 16):
                    fh.write(chunk)
            resp.release_conn()
            self.counters.add("downloads")
            side = pool.request("GET", job.media_url + ".txt", headers=job.media_auth)
            if side.status == 200:
                Path(f"{target}.txt").write_bytes(side.data)
        except (urllib3.exceptions.HTTPError, OSError):
            return None
        finally:
            pool.clear()
        return target

    def _text_for(self, path: Path | None, name: str | None) -> str:
        if path is not None and self.use_engine is not False:
            text = _engine_text(path, required=self.use_engine is True)
            if text:
                return text
        candidates: list[Path] = []
        if path is not None:
            candidates.append(Path(f"{path}.txt"))
        if name:
            candidates.extend(d / f"{name}.txt" for d in self.sidecar_dirs)
        for candidate in candidates:
            if candidate.is_file():
                text = candidate.read_text("utf-8", "replace").strip()
                if text:
                    return text
        return PLACEHOLDER_TEXT

    # --- reading ------------------------------------------------------------------------

    def _get(self, job_id: str) -> _Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None or job.deleted else job

    def _list(self, request: Request) -> Response:
        raw_limit = request.args.get("limit")
        limit = 100
        if raw_limit not in (None, ""):
            try:
                limit = int(raw_limit)
            except ValueError:
                return _invalid({"limit": ["The limit must be an integer"]})
            if not 0 <= limit <= 1000:
                return _invalid({"limit": ["The field limit must be between 0 and 1000."]})
        after = request.args.get("starting_after") or None
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: -j.seq)
            if after is not None:
                anchor = self._jobs.get(after)  # deleted jobs still anchor a page
                if anchor is None:
                    return _invalid({"starting_after": [f"Job {after} was not found"]})
                jobs = [j for j in jobs if j.seq < anchor.seq]
            page = [j.to_json() for j in jobs if not j.deleted][:limit]
        return _json(page)

    def _delete(self, job: _Job) -> Response:
        with self._lock:
            if job.status == "in_progress":
                return _problem(409, "Job is in invalid state", kind="invalid-job-state",
                                host=ERRORS_NO_WWW,
                                detail="Job is in invalid state to be deleted",
                                allowed_values=["transcribed", "failed"],
                                current_value=job.status)
            job.deleted = True
            job.monologues = []
            path = job.media_path
            self.counters.add("jobs.deleted")
        if path is not None:
            path.unlink(missing_ok=True)
            Path(f"{path}.txt").unlink(missing_ok=True)
        return Response(status=204)

    def _transcript(self, request: Request, job: _Job) -> Response:
        accept = request.headers.get("Accept")
        chosen = TRANSCRIPT_JSON if not accept else _pick(accept, TRANSCRIPT_TYPES)
        if chosen is None:
            return _problem(406, "Unsupported output format", kind="unsupported-output-format",
                            allowed_values=list(TRANSCRIPT_TYPES), current_value=accept)
        if job.status != "transcribed":
            return _problem(409, "Job is in invalid state", kind="invalid-job-state",
                            host=ERRORS_NO_WWW,
                            detail="Job is in invalid state to obtain the transcript",
                            allowed_values=["transcribed"], current_value=job.status)
        if chosen == "text/plain":
            return Response(_plain_text(job.monologues), content_type="text/plain; charset=utf-8")
        return _json({"monologues": job.monologues}, content_type=TRANSCRIPT_JSON)

    def _captions(self, request: Request, job: _Job) -> Response:
        accept = request.headers.get("Accept")
        if not accept or accept.strip() == "*/*":
            chosen: str | None = "application/x-subrip"  # SRT is the default
        else:
            chosen = _pick(accept, tuple(CAPTION_TYPES))
        if chosen is None:
            return _problem(406, "Unsupported output format", kind="unsupported-output-format",
                            allowed_values=list(CAPTION_TYPES), current_value=accept)
        if job.status != "transcribed":
            return _problem(409, "Job is in invalid state", kind="invalid-job-state",
                            host=ERRORS_NO_WWW,
                            detail="Job is in invalid state to obtain captions",
                            allowed_values=["transcribed"], current_value=job.status)
        monologues = job.monologues
        channel = request.args.get("speaker_channel")
        if job.options.get("speaker_channels_count") is not None:
            if channel is None:
                return _problem(405, "Invalid job properties", kind="invalid-job-properties",
                                detail="speaker_channel is required for multichannel jobs")
            monologues = [m for m in monologues if str(m.get("speaker")) == channel]
        text = _captions(monologues, CAPTION_TYPES[chosen])
        return Response(text, content_type=f"{chosen}; charset=utf-8")

    def _account(self) -> Response:
        with self._lock:
            used = sum(j.duration or 0.0 for j in self._jobs.values() if j.status == "transcribed")
        return _json({"email": "sandbox@voxhub.invalid",
                      "balance_seconds": max(0, int(self.balance_seconds - used))})


# --- helpers ---------------------------------------------------------------------------------


def _json(data: Any, status: int = 200, content_type: str = "application/json") -> Response:
    return Response(json.dumps(data), status=status, content_type=content_type)


def _problem(
    status: int,
    title: str,
    *,
    kind: str | None = None,
    host: str = ERRORS,
    detail: str | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {}
    if kind is not None:
        body["type"] = host + kind
    body["title"] = title
    if detail is not None:
        body["detail"] = detail
    body["status"] = status
    body.update({k: v for k, v in extra.items() if v is not None})
    return _json(body, status=status, content_type="application/problem+json")


def _invalid(parameters: Mapping[str, list[str]]) -> Response:
    return _problem(400, "Your request parameters didn't validate", kind="invalid-parameters",
                    parameters=dict(parameters))


def _too_large(limit: int) -> Response:
    # Rev's 413 has no type member.
    return _problem(413, "Request entity too large",
                    detail=f"Multipart uploads are limited to {limit} bytes; submit a media url "
                           "for larger files")


def _pick(accept: str, offered: Sequence[str]) -> str | None:
    """The first media type of ``accept`` that is exactly one we offer (Rev ignores wildcards)."""
    for item in accept.split(","):
        media = item.split(";", 1)[0].strip().lower()
        if media in offered:
            return media
    return None


def _drop_connection(environ: WSGIEnvironment) -> None:
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            # SO_LINGER 0: close sends a RST, the client sees a reset instead of an answer.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
            sock.shutdown(socket.SHUT_RDWR)


def _base_name(filename: str | None) -> str | None:
    if not filename:
        return None
    # The official SDK sends the path as given; keep only the name, whatever the OS.
    return PureWindowsPath(PurePosixPath(filename).name).name or None


def _safe_suffix(filename: str | None) -> str:
    suffix = PurePosixPath(filename or "").suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _wav_info(path: Path) -> tuple[float | None, int | None]:
    try:
        with wave.open(str(path), "rb") as wav:
            frames, rate, channels = wav.getnframes(), wav.getframerate(), wav.getnchannels()
    except (wave.Error, EOFError, OSError):
        return None, None
    return (frames / rate if rate else None), channels


def _engine_text(path: Path, *, required: bool) -> str | None:
    """Text from ``voxhub_local.engine.transcribe(path)`` when that engine is installed."""
    try:
        engine = importlib.import_module("voxhub_local.engine")
    except ImportError:
        if required:
            raise
        return None
    result = engine.transcribe(path)
    if isinstance(result, str):
        return result.strip()
    text = getattr(result, "text", None)
    return text.strip() if isinstance(text, str) else None


def _vocabulary_problems(value: Any) -> list[str]:
    if not isinstance(value, list) or not 1 <= len(value) <= 50:
        return ["custom_vocabularies must be a list of 1 to 50 vocabularies"]
    total = 0
    for vocab in value:
        phrases = vocab.get("phrases") if isinstance(vocab, dict) else None
        if not isinstance(phrases, list) or not phrases:
            return ["each vocabulary needs a non-empty phrases list"]
        for phrase in phrases:
            if not isinstance(phrase, str) or not any(c.isalpha() for c in phrase):
                return [f"phrase {phrase!r} must contain a letter"]
            if any(c.isdigit() for c in phrase):
                return [f"phrase {phrase!r} must not contain digits"]
            words = phrase.split()
            if len(words) > 12 or any(len(w) > 34 for w in words):
                return [f"phrase {phrase!r} is too long"]
        total += len(phrases)
    if total > 6000:
        return ["at most 6000 phrases per job"]
    return []


_PUNCT = ".,?!;:"


def _monologues(text: str, duration: float, options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rev-shaped monologues for ``text``, word times spread evenly over ``duration``."""
    tokens = text.split()
    if options.get("remove_disfluencies"):
        tokens = [t for t in tokens if t.strip(_PUNCT).lower() not in DISFLUENCIES]
    if not tokens:
        return []
    slot = duration / len(tokens)
    # Sentences alternate between speakers when more than one is expected.
    speakers = 1
    if options.get("speaker_channels_count"):
        speakers = int(options["speaker_channels_count"])
    elif options.get("speakers_count") and not options.get("skip_diarization"):
        speakers = int(options["speakers_count"])
    names = [n.get("display_name") for n in options.get("speaker_names") or []
             if isinstance(n, dict)]
    skip_punct = bool(options.get("skip_punctuation"))
    profanity = bool(options.get("filter_profanity"))
    monologues: list[dict[str, Any]] = []
    sentence = 0
    current: dict[str, Any] | None = None
    for i, token in enumerate(tokens):
        speaker = sentence % speakers
        if current is None or current["speaker"] != speaker:
            current = {"speaker": speaker, "elements": []}
            if speaker < len(names):
                current["speaker_info"] = {"id": f"spk{speaker}", "display_name": names[speaker]}
            monologues.append(current)
        elements: list[dict[str, Any]] = current["elements"]
        if elements and not skip_punct:
            elements.append({"type": "punct", "value": " "})
        core = token.rstrip(_PUNCT) or token
        trail = token[len(core):]
        if profanity and core.lower() in PROFANITIES and len(core) > 2:
            core = core[0] + "*" * (len(core) - 2) + core[-1]
        start = i * slot
        if core.startswith("<") and core.endswith(">"):
            elements.append({"type": "unknown", "value": core})
        else:
            elements.append({
                "type": "text", "value": core, "ts": round(start, 3),
                "end_ts": round(start + slot * 0.9, 3),
                "confidence": round(0.85 + (sum(map(ord, core)) % 15) / 100, 2),
            })
        if trail and not skip_punct:
            elements.append({"type": "punct", "value": trail})
        if trail and trail[-1] in ".?!":
            sentence += 1
    return monologues


def _hms(seconds: float) -> str:
    total = int(seconds)
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _plain_text(monologues: Sequence[Mapping[str, Any]]) -> str:
    paragraphs = []
    for mono in monologues:
        elements = mono["elements"]
        start = next((e["ts"] for e in elements if "ts" in e), 0.0)
        info = mono.get("speaker_info") or {}
        who = info.get("display_name") or f"Speaker {mono['speaker']}"
        if any(e["type"] == "punct" for e in elements):
            text = "".join(e["value"] for e in elements)
        else:  # skip_punctuation: the plain text is still space separated
            text = " ".join(e["value"] for e in elements)
        paragraphs.append(f"{who}    {_hms(start)}    {text}")
    return "\n\n".join(paragraphs) + "\n"


def _stamp(seconds: float, sep: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{millis:03d}"


def _captions(monologues: Sequence[Mapping[str, Any]], fmt: str) -> str:
    """SRT or VTT cues of at most 10 words / 5 seconds, never across monologues or sentences."""
    cues: list[tuple[float, float, str]] = []
    for mono in monologues:
        words: list[list[Any]] = []  # [start, end, text with its punctuation]
        for element in mono["elements"]:
            if element["type"] == "punct":
                if words and element["value"].strip():
                    words[-1][2] += element["value"]
            else:
                start = element.get("ts", words[-1][1] if words else 0.0)
                words.append([start, element.get("end_ts", start), element["value"]])
        group: list[list[Any]] = []
        for word in words:
            group.append(word)
            if (len(group) >= 10 or group[-1][1] - group[0][0] >= 5.0
                    or word[2][-1:] in (".", "?", "!") or word is words[-1]):
                cues.append((group[0][0], group[-1][1], " ".join(w[2] for w in group)))
                group = []
    sep = "," if fmt == "srt" else "."
    lines: list[str] = [] if fmt == "srt" else ["WEBVTT", ""]
    for n, (start, end, text) in enumerate(cues, 1):
        lines += [str(n), f"{_stamp(start, sep)} --> {_stamp(max(end, start), sep)}", text, ""]
    return "\n".join(lines) + ("\n" if lines else "")
