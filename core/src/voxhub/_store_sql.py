"""The job store's write statements and the columns its writes set (see :mod:`voxhub.store`)."""

from __future__ import annotations

from typing import Any

from ._records import RECORD_COLUMNS, StatusChange, vendor_ids_text
from ._store_text import handle_text
from .models import JobHandle

__all__ = ["CLAIM", "SELECT", "TAKE_OVER", "handle_columns", "status_columns"]

# Built from a constant column list only; every value is bound.
SELECT = f"SELECT {RECORD_COLUMNS} FROM jobs"  # noqa: S608
CLAIM = (
    "UPDATE jobs SET phase=?, owner=?, lease_until=?, updated_at=?, error=NULL "  # noqa: S608
    f"WHERE job_id=? AND phase=? RETURNING {RECORD_COLUMNS}"
)
TAKE_OVER = (
    "UPDATE jobs SET owner=?, lease_until=?, updated_at=? "  # noqa: S608
    f"WHERE job_id=? RETURNING {RECORD_COLUMNS}"
)


def handle_columns(handle: JobHandle) -> dict[str, Any]:
    """The ``jobs`` columns a handle sets (the handle and what listings show of its ids)."""
    ids = vendor_ids_text(handle.vendor_ids)
    return {"handle": handle_text(handle), "vendor_id": handle.vendor_id, "vendor_ids": ids}


def status_columns(change: StatusChange | None) -> dict[str, Any]:
    """The ``jobs`` columns a status change sets (none without a change)."""
    return {} if change is None else {"state": change.state, "status": change.text}
