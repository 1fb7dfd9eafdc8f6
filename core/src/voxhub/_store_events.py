"""The job store's event writes: appending to a job's history (once per delivery, for
callbacks), and the callback key and token hashes (see :class:`voxhub.store.Store`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ._records import event_text
from ._sqlite import key_file, update_job

if TYPE_CHECKING:
    from ._database import Connection, Database
    from .clock import Clock

__all__ = ["EventWrites"]


class EventWrites:
    """The event and callback-secret writes of :class:`voxhub.store.Store`."""

    _db: Database
    clock: Clock
    _callback_key: bytes | None

    def _append(self, conn: Connection, job_id: str, *events: tuple[str, str]) -> int:
        """Append ``(type, JSON text)`` events in one statement; the last one's sequence.

        Called after the write changed (so locked) the job's row: on PostgreSQL sequences
        are taken before commit, and the row lock makes one job's events commit in their
        order, so a reader that saw sequence N never misses a later-committed N-1.
        """
        at = self.clock.time()
        return self._db.insert_events(
            conn, [v for type_, text in events for v in (job_id, at, type_, text)]
        )

    def add_event(self, job_id: str, type_: str, data: Any, *, once: str | None = None) -> int:
        """Append a provider event (e.g. a verified callback's payload); returns its sequence.

        ``once`` is a delivery's digest, stored as the event's ``_digest``: when an event
        of the job already carries it, nothing is appended and 0 is returned. The check and
        the insert are one transaction behind the job's row lock, so receivers in several
        processes or machines given the same delivery at once store it once.
        """
        if once is not None:
            data = {**data, "_digest": once}
        text = event_text(data)

        def write(conn: Connection) -> int:
            if once is not None:
                # The job's row lock orders the receivers of one job (PostgreSQL; SQLite's
                # write transactions exclude each other), so the look-up below is the truth.
                conn.execute(
                    "SELECT job_id FROM jobs WHERE job_id=?" + self._db.for_update,  # noqa: S608
                    (job_id,),
                )
                # LIKE narrows the rows (no JSON function: any stored text is readable);
                # the parse decides, so a payload merely quoting the digest is no match.
                rows = conn.execute(
                    "SELECT data FROM events WHERE job_id=? AND data LIKE ?",
                    (job_id, f'%"_digest":"{once}"%'),
                ).fetchall()
                if any(_digest_of(row[0]) == once for row in rows):
                    return 0  # a replay changes nothing
            update_job(conn, job_id, {"updated_at": self.clock.time()})  # first: see _append
            return self._append(conn, job_id, (type_, text))

        return self._db.write(write)

    def callback_key(self) -> bytes:
        """The secret that callback tokens are derived from, shared by every process of this
        store: a file (mode 0600) beside a SQLite store, for PostgreSQL in
        :attr:`state_dir` or ``$VOXHUB_STORE_KEY_FILE``; never inside the database."""
        if self._callback_key is not None:
            return self._callback_key
        key = key_file(self._db.key_path)
        self._callback_key = key  # read once per store: it never changes
        return key

    def set_callback_token_hash(self, job_id: str, token_hash: str) -> None:
        """Store the hash of the job's callback token (the token is derived, never stored)."""
        self._db.write(
            lambda conn: conn.execute(
                "INSERT INTO callback_tokens (job_id, token_hash) VALUES (?, ?) "
                "ON CONFLICT (job_id) DO UPDATE SET token_hash=excluded.token_hash",
                (job_id, token_hash),
            )
        )


def _digest_of(text: str) -> object:
    """The ``_digest`` of an event's stored JSON (``None`` when it has none)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data.get("_digest") if isinstance(data, dict) else None
