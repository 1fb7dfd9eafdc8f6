"""A run's item marks ("started", "done") written in groups, off the workers' path.

(An input with nothing to do after its fetch is not marked here: it is done in the same
write as its job's result, see ``InputSteps`` and :meth:`voxhub.store.Store.set_final`.)

Each input of a batch is marked twice besides its job's own writes: when its work
starts (it counts as running) and when it is done. Neither decides anything that a
crash could make wrong: an item whose marks were lost is plain pending, and a resume
finishes it from what its job stored (a job that has its result is never sent again;
only its export and output file are made again). So the workers leave these marks in
memory, and they are written in groups, a short ``delay`` after the first, instead of
one transaction each: at 8 threads the two extra writes per input were two fifths of
the store's transactions, and the worker threads queued for them.

A failure is written at once (with any marks still held, in order): it is what an
operator reads, and what a resume decides on. The run yields no outcome before its
input's marks are written (:meth:`GroupedMarks.written`: the thread that iterates the
run writes them, grouped with any others held, while the workers go on), so an input
the caller was told is done stays done. :meth:`GroupedMarks.flush` writes everything
held; the run calls it before it releases the batch.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import structlog

from ._batch_model import ItemState, Stage
from .errors import VoxhubError

if TYPE_CHECKING:
    from ._batch_rows import BatchRows, NewJob

__all__ = ["GroupedMarks"]

log = structlog.get_logger("voxhub.batches")

#: Seconds a mark waits for others to be written with it (how stale another process's
#: view of a running batch may be; a crash loses no more than this).
DELAY = 0.25
#: Marks written at once, whatever the delay.
MOST = 512

_Ended = tuple[ItemState, "Stage | None", "str | None"]


class GroupedMarks:
    """:class:`~voxhub._batch_rows.BatchRows`'s item marks for one batch, grouped.

    Thread-safe: worker threads mark, a background thread writes. ``close`` writes what
    is left and stops that thread.
    """

    def __init__(self, rows: BatchRows, batch_id: str, *, delay: float = DELAY,
                 most: int = MOST) -> None:
        self._rows = rows
        self._batch_id = batch_id
        self._delay = delay
        self._most = most
        self._started: dict[int, None] = {}  # insertion-ordered set
        self._ended: dict[int, _Ended] = {}
        self._held = threading.Condition()
        self._writing = threading.Lock()  # one group at a time, in order
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="voxhub-batch-marks",
                                        daemon=True)
        self._thread.start()

    # --- what InputSteps calls (BatchRows' signatures) ----------------------------------

    def started(self, batch_id: str, seq: int) -> None:
        """The item's work began: written with the next group."""
        with self._held:
            self._ended.pop(seq, None)  # a new start supersedes an end not yet written
            self._started[seq] = None
            self._held.notify()

    def finished(self, batch_id: str, seq: int, *, state: ItemState, stage: Stage | None,
                 error: str | None) -> None:
        """The item ended: done is written with the next group, anything else at once."""
        with self._held:
            self._started.pop(seq, None)  # the end's row says all the start would
            self._ended[seq] = (state, stage, error)
            self._held.notify()
        if state is not ItemState.DONE:
            self.flush()

    def settled(self, batch_id: str, seq: int) -> None:
        """The item was marked done in its job's own write: its start is not written (the
        store would not let a start overwrite a done item anyway)."""
        with self._held:
            self._started.pop(seq, None)

    def relink(self, batch_id: str, seq: int, old_job: str, new: NewJob) -> str:
        """:meth:`BatchRows.relink <voxhub._batch_rows.BatchRows.relink>`, after the marks
        held (it changes the same row)."""
        self.flush()
        return self._rows.relink(batch_id, seq, old_job, new)

    # --- writing --------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every mark held now, in one transaction (raises the store's error; the
        marks are then held again for the next try)."""
        with self._writing:
            self._write_held()

    def written(self, seq: int) -> None:
        """Return once input ``seq``'s marks are written (with every other mark held, if
        its are not yet): the run yields no outcome the store would not show."""
        with self._writing:  # after a write under way, which may hold them
            with self._held:
                held = seq in self._started or seq in self._ended
            if held:
                self._write_held()

    def _write_held(self) -> None:
        """Write what is held (``_writing`` is held by the caller)."""
        with self._held:
            started, ended = list(self._started), dict(self._ended)
            self._started.clear()
            self._ended.clear()
        if not started and not ended:
            return
        try:
            self._rows.mark_many(
                self._batch_id, started,
                [(seq, *end) for seq, end in ended.items()],
            )
        except BaseException:
            with self._held:  # held again, unless newer marks of the same items came
                newer = self._started.keys() | self._ended.keys()
                self._started = {**dict.fromkeys(s for s in started if s not in newer),
                                 **self._started}
                self._ended = {**{s: e for s, e in ended.items() if s not in newer},
                               **self._ended}
            raise

    def pending(self) -> int:
        """How many marks are held, not yet written (after a write under way ends)."""
        with self._writing, self._held:
            return len(self._started) + len(self._ended)

    def close(self) -> None:
        """Write what is held and stop the writing thread."""
        with self._held:
            self._closed = True
            self._held.notify()
        self._thread.join(10.0)
        self.flush()

    def _run(self) -> None:
        while True:
            with self._held:
                while not self._closed and not (self._started or self._ended):
                    self._held.wait()
                if self._closed:
                    return
                # Let others join the group: up to ``delay``, or until it is full.
                self._held.wait_for(
                    lambda: self._closed
                    or len(self._started) + len(self._ended) >= self._most,
                    self._delay,
                )
            try:
                self.flush()
            except VoxhubError as exc:  # held again; tried with the next group
                log.warning("batch.marks_failed", batch_id=self._batch_id, error=str(exc))
                with self._held:
                    self._held.wait(self._delay)
