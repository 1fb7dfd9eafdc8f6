"""Normalized models: what a job asks for, how it is identified, where it stands, what it produced.

Everything here is a frozen, slotted attrs class. Vendor JSON is turned into
these by the provider plugins (with cattrs, see :mod:`voxhub.serialization`);
every result keeps the vendor's raw payload in ``raw`` so nothing is lost.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from .redact import Secret

__all__ = [
    "JobHandle",
    "JobKind",
    "JobRequest",
    "JobState",
    "JobStatus",
    "LocalFile",
    "Media",
    "ModerationFinding",
    "ModerationReport",
    "RemoteUrl",
    "Result",
    "RtcChannel",
    "Segment",
    "StreamUrl",
    "TaskInfo",
    "Transcript",
    "TranscriptSlice",
    "Word",
    "new_job_id",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_job_id() -> str:
    """A new voxhub job id: ``vx_`` + 20 hex characters (sortable by nothing; unique)."""
    return "vx_" + uuid.uuid4().hex[:20]


class JobKind(enum.StrEnum):
    """What a job does. A provider declares the kinds it supports."""

    TRANSCRIPTION = "transcription"
    CHANNEL_TRANSCRIPTION = "channel-transcription"
    TRANSCODING = "transcoding"
    STREAM_MODERATION = "stream-moderation"


class JobState(enum.StrEnum):
    """The normalized state of a job, whatever the vendor calls it."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Whether the job can no longer change state."""
        return self in _TERMINAL


_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


# --- media sources -----------------------------------------------------------------


def _to_path(value: str | Path) -> Path:
    return Path(value)


@attrs.frozen
class LocalFile:
    """A file on this machine, uploaded by the provider plugin (streamed, never read whole)."""

    path: Path = attrs.field(converter=_to_path)

    def describe(self) -> str:
        return str(self.path)


def _secret_headers(value: Mapping[str, str | Secret] | None) -> Mapping[str, Secret]:
    return {k: v if isinstance(v, Secret) else Secret(v) for k, v in (value or {}).items()}


@attrs.frozen
class RemoteUrl:
    """A URL the provider downloads itself; ``auth_headers`` are sent with that download.

    Header values are :class:`~voxhub.redact.Secret`: they are never stored in the
    job store or shown in a repr.
    """

    url: str
    auth_headers: Mapping[str, Secret] = attrs.field(factory=dict, converter=_secret_headers)

    def describe(self) -> str:
        from .redact import mask_url

        return mask_url(self.url)


@attrs.frozen
class RtcChannel:
    """A live real-time-communication channel (e.g. an Agora channel) to join."""

    channel: str

    def describe(self) -> str:
        return f"rtc:{self.channel}"


@attrs.frozen
class StreamUrl:
    """A live media stream (RTMP, HLS, HTTP-FLV, RTSP) the provider pulls."""

    url: str

    def describe(self) -> str:
        from .redact import mask_url

        return mask_url(self.url)


Media = LocalFile | RemoteUrl | RtcChannel | StreamUrl


# --- requests and handles ----------------------------------------------------------


def _frozen_dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


#: Longest vendor id accepted (Agora's builder tokens are the longest seen: a few hundred).
MAX_VENDOR_ID = 1024
_VENDOR_ID = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces or control characters


def _vendor_ids(value: Mapping[str, Any] | None) -> dict[str, str]:
    """Vendor ids checked before they are stored: text, at most MAX_VENDOR_ID printable chars.

    A vendor answer with a number, ``NaN`` or megabytes where an id belongs is a bad
    answer (a :class:`~voxhub.errors.ProviderError`), never a row in the store.
    """
    ids = dict(value or {})
    for key, vid in ids.items():
        problem = None
        if not isinstance(vid, str):
            problem = f"is {type(vid).__name__}, not text"
        elif len(vid) > MAX_VENDOR_ID:
            problem = f"is {len(vid)} characters long (at most {MAX_VENDOR_ID})"
        elif not _VENDOR_ID.fullmatch(vid):
            problem = "is empty or has spaces or control characters"
        if problem is not None:
            from .errors import ProviderError

            # In doubt: the vendor answered, so whatever it was asked to create may exist.
            raise ProviderError(
                f"the vendor's {str(key)[:40]!r} id {problem}",
                in_doubt=True,
                details={"field": f"vendor_ids.{str(key)[:40]}"},
            )
    return ids


def _masked_repr(value: Mapping[str, Any]) -> str:
    from .redact import redact

    return repr(redact(value))


@attrs.frozen
class JobRequest:
    """What the caller asks for. Validated against the provider's declared options
    before any network call (see :meth:`voxhub.Orchestrator.submit`).

    ``idempotency_key`` identifies the *input*: submitting the same key twice
    returns the job already recorded instead of creating a second one. The
    orchestrator derives one when none is given.
    """

    provider: str
    media: Media | None = None
    kind: JobKind | None = None
    language: str | None = None
    callback_url: str | None = None
    idempotency_key: str | None = None
    metadata: dict[str, str] = attrs.field(factory=dict, converter=_frozen_dict)
    options: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict, repr=_masked_repr)
    profile: str | None = None


@attrs.frozen
class JobHandle:
    """Everything needed to find a job again, from any process.

    ``vendor_ids`` holds the vendor's identifiers (some vendors need two, e.g.
    Agora's builder token and task id). ``vendor_state`` is small, non-secret
    provider bookkeeping that must survive restarts (e.g. a sequence number).
    """

    job_id: str
    provider: str
    kind: JobKind
    profile: str
    endpoint: str | None = None
    vendor_ids: dict[str, str] = attrs.field(factory=dict, converter=_vendor_ids)
    vendor_state: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)
    idempotency_key: str | None = None
    created_at: datetime = attrs.field(factory=utcnow)

    @classmethod
    def new(cls, request: JobRequest, endpoint: str | None = None) -> JobHandle:
        """The handle of a new job for a prepared ``request`` (its kind, profile and
        idempotency key filled in) at ``endpoint``; vendor ids come when it is submitted."""
        if request.kind is None or request.profile is None:
            raise ValueError("a new job's request needs its kind and profile (prepare it)")
        return cls(
            job_id=new_job_id(),
            provider=request.provider,
            kind=request.kind,
            profile=request.profile,
            endpoint=endpoint or None,
            idempotency_key=request.idempotency_key,
        )

    @property
    def vendor_id(self) -> str | None:
        """The vendor's main id for the job (the first of ``vendor_ids``), if known yet."""
        return next(iter(self.vendor_ids.values()), None)

    def with_vendor(
        self, ids: Mapping[str, str] | None = None, state: Mapping[str, Any] | None = None
    ) -> JobHandle:
        """A copy with vendor ids and/or vendor state merged in."""
        return attrs.evolve(
            self,
            vendor_ids={**self.vendor_ids, **(ids or {})},
            vendor_state={**self.vendor_state, **(state or {})},
        )


@attrs.frozen
class JobStatus:
    """A job's state as normalized by its provider, keeping the vendor's own words.

    ``progress`` is a share in [0, 1] when the provider knows it.
    """

    state: JobState
    vendor_state: str | None = None
    reason: str | None = None
    detail: str | None = None
    progress: float | None = None
    raw: Any = attrs.field(default=None, eq=False, repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal


# --- results -----------------------------------------------------------------------


@attrs.frozen
class Word:
    """A recognised word; times in seconds from the start of the media."""

    start: float | None
    end: float | None
    text: str
    confidence: float | None = None


@attrs.frozen
class Segment:
    """A stretch of speech (a Rev.ai monologue, an NHN time slot, a decoder utterance)."""

    start: float | None
    end: float | None
    text: str
    speaker: str | None = None
    confidence: float | None = None
    words: tuple[Word, ...] = ()


@attrs.frozen
class Transcript:
    """The normalized result of a transcription job; see :mod:`voxhub.export` for formats."""

    provider: str
    job_id: str
    text: str
    language: str | None = None
    duration: float | None = None
    segments: tuple[Segment, ...] = ()
    raw: Any = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class TranscriptSlice:
    """A piece of live transcript with the wall-clock time it was spoken at."""

    text: str
    start: datetime | float | None = None
    end: datetime | float | None = None
    speaker: str | None = None


@attrs.frozen
class ModerationFinding:
    """One violation found in a stream: what, how sure, when, and where to hear it."""

    label: str
    score: float | None = None
    start: datetime | float | None = None
    end: datetime | float | None = None
    text: str | None = None
    evidence_url: str | None = None
    review: bool | None = None
    action: str | None = None
    details: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)


@attrs.frozen
class ModerationReport:
    """Everything a moderation job reported so far (findings and transcript slices)."""

    provider: str
    job_id: str
    findings: tuple[ModerationFinding, ...] = ()
    transcript: tuple[TranscriptSlice, ...] = ()
    ended: bool = False
    raw: Any = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class TaskInfo:
    """The result of a task-like job (channel transcription, transcoding): its vendor facts."""

    provider: str
    job_id: str
    task_id: str | None
    state: JobState
    vendor_state: str | None = None
    details: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)
    raw: Any = attrs.field(default=None, eq=False, repr=False)


Result = Transcript | ModerationReport | TaskInfo
