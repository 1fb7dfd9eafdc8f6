"""The SQL of the ``exports`` table: a vendor's own rendering of a stored result.

A native export (Rev.ai's SRT or VTT) is kept the first time it is produced and
served from the store from then on, so a job reads the same before and after it
is closed at the vendor. Rows hang off the ``results`` row (deleted with it, e.g.
when a retry drops the result); without a stored result nothing is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .redact import redact_text

if TYPE_CHECKING:
    from ._database import Connection
    from .store import Store

__all__ = ["keep_export", "stored_export"]


def stored_export(store: Store, job_id: str, fmt: str) -> str | None:
    """The kept rendering of the job's result in ``fmt``, or ``None``."""
    row = (
        store._db.reader()
        .execute("SELECT text FROM exports WHERE job_id=? AND format=?", (job_id, fmt))
        .fetchone()
    )
    return None if row is None else str(row[0])


def keep_export(store: Store, job_id: str, fmt: str, text: str) -> str:
    """Keep ``text`` as the job's rendering in ``fmt`` unless one is kept already; return
    the kept one (the first export wins, so every reader serves the same text).

    Secret values are masked, as in stored results. Nothing is kept while the job has
    no stored result (a live job's snapshot); ``text`` is then returned as it is.
    """
    masked = redact_text(text)
    now = store.clock.time()

    def write(conn: Connection) -> str | None:
        conn.execute(
            "INSERT INTO exports (job_id, format, text, created_at) "
            "SELECT job_id, ?, ?, ? FROM results WHERE job_id=? "
            "ON CONFLICT (job_id, format) DO NOTHING",
            (fmt, masked, now, job_id),
        )
        row = conn.execute(
            "SELECT text FROM exports WHERE job_id=? AND format=?", (job_id, fmt)
        ).fetchone()
        return None if row is None else str(row[0])

    kept = store._db.write(write)
    return masked if kept is None else kept
