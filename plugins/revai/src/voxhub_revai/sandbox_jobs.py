"""The Rev.ai emulator's jobs and its reading of submissions: what ``POST /jobs`` accepts.

Part of ``voxhub sandbox revai`` (:mod:`voxhub_revai.sandbox`): :class:`Job` (an
emulated job and its JSON as Rev shows it), :class:`JobBook` (every job, with the
counters that prove a client made no duplicate), :func:`check_options` (Rev's
per-parameter validation of the options object) and :func:`read_json_submission`
(the JSON form of a submission: ``source_config`` or the legacy ``media_url``).
"""

from __future__ import annotations

import random
import re
import string
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import attrs
from voxhub.sandbox_kit import Counters

from .marker import token_of

__all__ = [
    "FAILURES",
    "Job",
    "JobBook",
    "JsonSubmission",
    "base_name",
    "check_options",
    "read_json_submission",
    "safe_suffix",
]

FAILURES = (
    ("download_failure", "Failed to download media file. Please check your url and file type"),
    ("invalid_media", "The media file could not be decoded"),
    ("empty_media", "The media file contains no audio"),
    ("internal_processing", "An internal error occurred while processing the job"),
    ("transcription", "Transcription failed"),
)
TRANSCRIBERS = ("machine", "low_cost", "fusion", "human", "machine_v2", "machine_v3")
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
#: Options Rev shows on the job (source_config and notification_config never: they may
#: hold secrets).
ECHOED = (
    "metadata", "callback_url", "media_url", "delete_after_seconds", "skip_diarization",
    "skip_punctuation", "remove_disfluencies", "filter_profanity", "custom_vocabulary_id",
    "speaker_channels_count", "verbatim", "rush", "segments_to_transcribe",
    "remove_atmospherics", "speakers_count", "diarization_type", "skip_postprocessing",
)


def iso(when: float) -> str:
    """A Rev timestamp: UTC, two fraction digits, ``Z``."""
    dt = datetime.fromtimestamp(when, UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond // 10000:02d}Z"


@attrs.define
class Job:
    """One emulated Rev job."""

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

    def live(self) -> bool:
        """Not deleted (a call: a type checker must not narrow it, other threads change it)."""
        return not self.deleted

    def to_json(self) -> dict[str, Any]:
        """The job as ``GET /jobs/{id}`` shows it (null members left out, as Rev does)."""
        body: dict[str, Any] = {
            "id": self.id,
            "created_on": iso(self.created),
            "status": self.status,
            "type": "async",
            "language": self.options.get("language", "en"),
            "transcriber": self.options.get("transcriber", "machine"),
        }
        if self.name:
            body["name"] = self.name
        if self.completed is not None:
            body["completed_on"] = iso(self.completed)
        if self.duration is not None and self.status == "transcribed":
            body["duration_seconds"] = round(self.duration, 2)
        if self.failure:
            body["failure"] = self.failure
            body["failure_detail"] = self.failure_detail
        for key in ECHOED:
            if self.options.get(key) is not None:
                body[key] = self.options[key]
        return body


class JobBook:
    """The emulator's jobs by id, in creation order; :attr:`lock` guards them and their jobs.

    Counts ``jobs.created`` (``.upload``/``.url``), ``jobs.key.<token>`` per idempotency
    marker, and ``jobs.duplicates`` when a marker is seen again.
    """

    def __init__(self, rng: random.Random, counters: Counters) -> None:
        self.lock = threading.RLock()
        self._rng = rng
        self._counters = counters
        self._jobs: dict[str, Job] = {}
        self._keys: dict[str, int] = {}
        self._seq = 0

    def add(self, options: dict[str, Any], *, upload: bool, processing: float,
            **fields: Any) -> Job:
        """Create a job (``fields``: :class:`Job`'s media and callback members)."""
        token = token_of(options.get("metadata"))
        with self.lock:
            self._seq += 1
            job = Job(id=self._new_id(), seq=self._seq, created=time.time(),
                      due=time.monotonic() + processing, options=options, **fields)
            self._jobs[job.id] = job
            if token is not None:
                seen = self._keys.get(token, 0)
                self._keys[token] = seen + 1
                if seen:
                    self._counters.add("jobs.duplicates")
                self._counters.add(f"jobs.key.{token}")
            self._counters.add("jobs.created")
            self._counters.add("jobs.created.upload" if upload else "jobs.created.url")
        return job

    def _new_id(self) -> str:
        alphabet = string.ascii_letters + string.digits
        while True:
            job_id = "".join(self._rng.choice(alphabet) for _ in range(12))
            if job_id not in self._jobs:
                return job_id

    def get(self, job_id: str, *, deleted: bool = False) -> Job | None:
        """The job ``job_id`` (a deleted one only when asked: it still anchors a page)."""
        with self.lock:
            job = self._jobs.get(job_id)
        return job if job is not None and (deleted or job.live()) else None

    def newest_first(self, *, older_than: Job | None = None) -> list[Job]:
        """The jobs not deleted, newest first, only those older than ``older_than`` if given."""
        with self.lock:
            jobs = sorted(self._jobs.values(), key=lambda j: -j.seq)
        return [j for j in jobs if j.live() and (older_than is None or j.seq < older_than.seq)]

    def due(self, now: float) -> list[str]:
        """Ids of the jobs in progress whose processing time is over."""
        with self.lock:
            return [j.id for j in self._jobs.values()
                    if j.status == "in_progress" and not j.finishing and j.due <= now]

    def count_for(self, token: str) -> int:
        """How many jobs were created with this idempotency token."""
        with self.lock:
            return self._keys.get(token, 0)

    def transcribed_seconds(self) -> float:
        """Seconds of media transcribed so far (what the account was charged)."""
        with self.lock:
            return sum(j.duration or 0.0 for j in self._jobs.values()
                       if j.status == "transcribed")

    def clear(self) -> None:
        """Forget every job."""
        with self.lock:
            self._jobs.clear()
            self._keys.clear()
            self._seq = 0


# --- submissions ------------------------------------------------------------------------


@attrs.frozen
class JsonSubmission:
    """A JSON ``POST /jobs`` read: its options, media location, and what is wrong with it."""

    options: dict[str, Any]
    url: str | None
    auth: dict[str, str]
    problems: dict[str, list[str]]


def read_json_submission(data: Mapping[str, Any]) -> JsonSubmission:
    """Read a JSON submission body as Rev does (media location checks, then options)."""
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
    options = {k: v for k, v in data.items() if k != "source_config"}
    problems.update(check_options(options))
    return JsonSubmission(options=options, url=url, auth=auth, problems=problems)


def check_options(opts: Mapping[str, Any]) -> dict[str, list[str]]:
    """Rev's option validation: a list of reasons per offending parameter."""
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
    if transcriber not in TRANSCRIBERS:
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


def base_name(filename: str | None) -> str | None:
    """The file name of an upload without its directories, whatever the client's OS."""
    if not filename:
        return None
    # The official SDK sends the path as given; Rev keeps only the name.
    return PureWindowsPath(PurePosixPath(filename).name).name or None


def safe_suffix(filename: str | None) -> str:
    """A short, plain suffix of ``filename`` (``.wav``), or ``""``: safe in a stored file name."""
    suffix = PurePosixPath(filename or "").suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""
