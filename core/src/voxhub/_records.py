"""What the job store hands out (phases, records, events), how rows become them, and the
rules for owners of a claim and for status changes."""

from __future__ import annotations

import enum
import json
import os
import secrets
import socket
import threading
from typing import Any, TypeVar

import attrs

from ._database import Row
from .listing import shown_state
from .models import JobHandle, JobRequest, JobStatus
from .redact import redact
from .serialization import load

__all__ = [
    "RECORD_COLUMNS",
    "Decoded",
    "Event",
    "JobRecord",
    "Phase",
    "StatusChange",
    "dumps",
    "event_text",
    "new_owner_id",
    "owner_alive",
    "record_from_row",
    "status_change",
    "status_data",
    "vendor_ids_text",
]

T = TypeVar("T")


class Phase(enum.StrEnum):
    """How far a job's submission got (stored as these strings)."""

    RECORDED = "recorded"
    SENDING = "sending"
    SUBMITTED = "submitted"
    CLOSED = "closed"


_PHASES = {p.value: p for p in Phase}


@attrs.frozen
class Event:
    """One entry of a job's append-only history."""

    seq: int
    job_id: str
    at: float
    type: str
    data: dict[str, Any]

    @classmethod
    def from_row(cls, row: Row) -> Event:
        return cls(row["seq"], row["job_id"], row["at"], row["type"], json.loads(row["data"]))


@attrs.frozen
class JobRecord:
    """A job as stored: what was asked, how to find it, where it stands.

    Records of one job share their request, handle and status objects (frozen
    models): treat them as read-only.
    """

    job_id: str
    provider: str
    profile: str
    phase: Phase
    request: JobRequest
    handle: JobHandle
    status: JobStatus | None
    has_result: bool
    created_at: float
    updated_at: float
    batch: str | None = None
    owner: str | None = None
    lease_until: float | None = None
    error: str | None = None

    @property
    def state(self) -> str:
        """The normalized state, or the phase while the job is not submitted yet."""
        if self.status is not None:
            return self.status.state.value
        return "failed" if self.error and self.phase != Phase.SENDING else self.phase.value

    @property
    def shown(self) -> str:
        """What a listing shows: :attr:`state`, but ``closed`` once the job was closed."""
        return shown_state(self.phase, self.status.state.value if self.status else None, self.error)


def dumps(data: Any) -> str:
    """Compact JSON text as the store writes it."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


class Decoded:
    """What a store remembers of the rows it read and wrote.

    * Models decoded from stored JSON, by their exact text. Every lookup of a job
      rebuilds its record, but a job's request, handle and status change only a
      few times in its life, and the same text always decodes to an equal frozen
      model: each text is decoded (JSON + cattrs) once.
    * Each job's status text as last seen, so a status update can be decided and
      written without reading the row first (the write still checks it).

    Bounded; the oldest entries are dropped first.
    """

    SIZE = 4096

    def __init__(self) -> None:
        self._cache: dict[tuple[type[Any], str], Any] = {}
        self._statuses: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def saw_status(self, job_id: str, text: str | None) -> None:
        """The job's stored status text is ``text`` (as just read or written)."""
        with self._lock:
            self._statuses[job_id] = text
            if len(self._statuses) > self.SIZE:
                del self._statuses[next(iter(self._statuses))]

    def last_status(self, job_id: str) -> tuple[bool, str | None]:
        """``(known, text)``: the job's status text as last seen, if it was."""
        with self._lock:
            if job_id in self._statuses:
                return True, self._statuses[job_id]
        return False, None

    def remember(self, text: str, cls: type[T], value: T) -> None:
        """``value`` is what ``text`` decodes to (a model just dumped to it)."""
        with self._lock:
            self._cache[(cls, text)] = value
            if len(self._cache) > self.SIZE:
                del self._cache[next(iter(self._cache))]

    def load(self, text: str, cls: type[T]) -> T:
        key = (cls, text)
        found: T | None = self._cache.get(key)
        if found is None:
            found = self.load_once(text, cls)
            with self._lock:
                self._cache[key] = found
                if len(self._cache) > self.SIZE:
                    del self._cache[next(iter(self._cache))]
        return found

    @staticmethod
    def load_once(text: str, cls: type[T]) -> T:
        return load(json.loads(text), cls)


#: The ``jobs`` columns a record is built from, in :func:`record_from_row`'s order. The
#: result itself lives in the ``results`` table: it can be large, and a record only says
#: whether it exists.
RECORD_COLUMNS = (
    "job_id, provider, profile, phase, request, handle, status, has_result, "
    "created_at, updated_at, batch, owner, lease_until, error"
)


def record_from_row(row: Row, decoded: Decoded) -> JobRecord:
    """The :class:`JobRecord` of a row of :data:`RECORD_COLUMNS`."""
    (job_id, provider, profile, phase, request, handle, status, has_result, created_at,
     updated_at, batch, owner, lease_until, error) = row  # fmt: skip
    decoded.saw_status(job_id, status)
    return JobRecord(
        job_id=job_id,
        provider=provider,
        profile=profile,
        phase=_PHASES[phase],
        request=decoded.load(request, JobRequest),
        handle=decoded.load(handle, JobHandle),
        status=decoded.load(status, JobStatus) if status else None,
        has_result=bool(has_result),
        created_at=created_at,
        updated_at=updated_at,
        batch=batch,
        owner=owner,
        lease_until=lease_until,
        error=error,
    )


def new_owner_id() -> str:
    """A claim owner's id: ``host:pid:random``, so a dead owner on this host can be told."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_alive(owner: str) -> bool:
    """Whether the process named by an owner id still runs (only knowable on this host)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine: trust the lease expiry instead
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@attrs.frozen
class StatusChange:
    """A status to store: its state, its column text and its (redacted) event text."""

    state: str
    text: str
    event: str


def status_change(stored: str | None, status: JobStatus, decoded: Decoded) -> StatusChange | None:
    """What storing ``status`` over the ``stored`` one writes; ``None`` when nothing."""
    if stored is not None:
        old = decoded.load(stored, JobStatus)
        if old.state.is_terminal:
            # A final state is final: a late or out-of-order answer (a delayed callback,
            # a stale poll) never changes it. Vendor-side retries go through reopen().
            return None
        if (old.state, old.vendor_state, old.reason, old.progress) == (
            status.state,
            status.vendor_state,
            status.reason,
            status.progress,
        ):
            return None
    # By hand, not attrs.evolve + cattrs: two statuses per job (tests/test_store_results.py
    # checks that this stays what ``dump`` writes).
    plain = JobStatus(
        status.state, status.vendor_state, status.reason, status.detail, status.progress
    )
    data = status_data(plain)
    text = dumps(data)
    # A status holds no secrets, so it decodes back to itself: no later read decodes it.
    decoded.remember(text, JobStatus, plain)
    masked = redact(data)
    return StatusChange(status.state.value, text, text if masked == data else dumps(masked))


def status_data(status: JobStatus) -> dict[str, Any]:
    """``dump(status)`` for a status without ``raw`` (the stored form)."""
    return {
        "state": status.state.value,
        "vendor_state": status.vendor_state,
        "reason": status.reason,
        "detail": status.detail,
        "progress": status.progress,
        "raw": None,
    }


def vendor_ids_text(ids: Any) -> str:
    """The ``jobs.vendor_ids`` column: the vendor ids as listings show them (JSON, ids under
    secret-looking names masked), written with the handle so a listing parses nothing."""
    return dumps(redact(dict(ids))) if ids else "{}"


def event_text(data: Any) -> str:
    """An event's stored JSON: secrets masked by key name and by value."""
    return dumps(redact(data))
