"""What a durable batch is made of: its settings, items, counts, events and outcomes.

Plain frozen data, shared by the batch store (:mod:`voxhub._batch_rows`), the runner
(:mod:`voxhub._batch_runner`) and the public face (:mod:`voxhub.batches`).
"""

from __future__ import annotations

import enum
import json
import math
from typing import Any, Literal

import attrs

from .errors import InvalidInputError, VoxhubError
from .models import JobHandle, JobRequest, JobState, JobStatus, Result

__all__ = [
    "BatchCounts",
    "BatchEvent",
    "BatchInfo",
    "BatchSettings",
    "ClosePolicy",
    "EventKind",
    "ItemRow",
    "ItemState",
    "Outcome",
    "Stage",
    "close_policy",
]


class ClosePolicy(enum.StrEnum):
    """When ``run`` closes a job at the provider: never, after fetching, or always."""

    NEVER = "never"
    AFTER_FETCH = "after-fetch"
    ALWAYS = "always"

    @property
    def after_success(self) -> bool:
        """Whether a job is closed once its result is fetched (a step after the fetch)."""
        return self is not ClosePolicy.NEVER


def close_policy(value: str) -> ClosePolicy:
    """``value`` as a :class:`ClosePolicy`; a typed error naming ``close`` otherwise."""
    try:
        return ClosePolicy(value)
    except ValueError:
        choices = ", ".join(p.value for p in ClosePolicy)
        raise InvalidInputError(
            f"close must be one of {choices}, not {value!r}", field="close"
        ) from None


class ItemState(enum.StrEnum):
    """Where one input of a batch stands: not finished yet, done, or failed."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class Stage(enum.StrEnum):
    """The steps an input goes through; a failed input records the one it failed in."""

    CHECK = "check"
    SUBMIT = "submit"
    WAIT = "wait"
    FETCH = "fetch"
    EXPORT = "export"
    WRITE = "write"
    CLOSE = "close"


def _positive_int(_instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(
            f"{attribute.name} must be a whole number of at least 1, not {value!r}",
            field=attribute.name,
        )


def _timeout(_instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(
            f"timeout must be a finite number of seconds, not {value!r}", field="timeout"
        )
    if value <= 0:
        raise InvalidInputError(f"timeout must be positive, not {value!r}", field="timeout")


@attrs.frozen
class BatchSettings:
    """How a batch runs; stored with it (as JSON, never any secret) so resume runs it alike.

    ``output_dir`` (absolute) gets one file per input, named when the batch is
    recorded; without it, an exported text goes to ``on_text`` and
    :attr:`Outcome.text`. ``format`` ``None`` fetches results without exporting
    them (``txt`` when an ``output_dir`` is given); ``speakers`` labels the
    exported lines with their speaker.
    """

    name: str | None = None
    format: str | None = None
    output_dir: str | None = None
    close: ClosePolicy = attrs.field(default=ClosePolicy.NEVER, converter=close_policy)
    timeout: float | None = attrs.field(default=None, validator=_timeout)
    callback: bool | None = None
    concurrency: int = attrs.field(default=4, validator=_positive_int)
    #: Speaker labels in exported text (``Speaker 0: ...``; see :func:`voxhub.export.render`).
    speakers: bool = False

    def to_json(self) -> str:
        """The stored form."""
        data = attrs.asdict(self)
        data["close"] = self.close.value
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> BatchSettings:
        """The settings stored as ``text`` (unknown keys, from a newer voxhub, are ignored)."""
        data = json.loads(text)
        known = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@attrs.frozen
class Outcome:
    """What happened to one input: its handle, final status, result or error.

    Batch runs also say which item it was (``batch_id``, ``seq``, ``input``), the
    ``stage`` it failed in, the ``output`` file written, the exported ``text``
    (a format without an output directory), and for a resume, why an input was
    left alone (``skipped``: not an error; :attr:`ok` is false).
    """

    request: JobRequest
    handle: JobHandle | None
    status: JobStatus | None = None
    result: Result | None = None
    error: VoxhubError | None = None
    batch_id: str | None = None
    seq: int | None = None
    input: str | None = None
    stage: Stage | None = None
    output: str | None = None
    text: str | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the input succeeded: no error, not skipped, and the job succeeded."""
        return (
            self.error is None
            and self.skipped is None
            and self.status is not None
            and (self.status.state is JobState.SUCCEEDED)
        )

    def raise_for_error(self) -> Outcome:
        """Raise the input's error, if it had one; otherwise return this outcome."""
        if self.error is not None:
            raise self.error
        return self


@attrs.frozen
class BatchCounts:
    """How many inputs of a batch are in each state (``running``: started, not finished;
    they are also counted in ``pending``)."""

    total: int
    pending: int
    running: int
    done: int
    failed: int

    @property
    def finished(self) -> int:
        """Inputs that ended, either way."""
        return self.done + self.failed


@attrs.frozen
class BatchInfo:
    """A stored batch: its settings, counts, and whether a live process works on it."""

    batch_id: str
    name: str | None
    created_at: float
    updated_at: float
    settings: BatchSettings
    counts: BatchCounts
    owner_alive: bool
    interrupted_at: float | None

    @property
    def state(self) -> str:
        """One word for where the batch stands: ``running`` (a live process works on it),
        ``done``, ``failed`` (every input ended, some failed), ``interrupted`` (stopped by
        Ctrl-C) or ``unfinished``."""
        counts = self.counts
        if self.owner_alive:
            return "running"
        if counts.done == counts.total:
            return "done"
        if counts.done + counts.failed == counts.total:
            return "failed"
        return "interrupted" if self.interrupted_at is not None else "unfinished"


@attrs.frozen
class ItemRow:
    """One input of a stored batch; ``job_state`` is its job's shown state (e.g.
    ``succeeded``, ``failed``, ``closed``), ``None`` without a job."""

    batch_id: str
    seq: int
    input: str
    job_id: str | None
    state: ItemState
    stage: Stage | None
    output: str | None
    error: str | None
    job_state: str | None


EventKind = Literal["started", "state", "finished", "backoff"]


@attrs.frozen
class BatchEvent:
    """Something that happened in a running batch, for live displays.

    ``started``: an input's work began; ``state``: its job's state changed
    (``state`` the job's state, ``detail`` its progress share when known);
    ``finished``: it ended (``state`` ``done`` or ``failed``, ``detail`` the
    error or the output file); ``backoff``: a provider asked to wait (``detail``
    says who, why and how long; no item).
    """

    kind: EventKind
    seq: int | None
    input: str | None
    job_id: str | None
    state: str | None
    detail: str | None = None
