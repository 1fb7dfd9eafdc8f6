"""What a person sees while a batch runs: one live region on stderr, or plain lines.

Three displays share one small interface (:class:`Display`):

* :class:`BatchLive` — a batch on a terminal: one rich ``Live`` region on stderr with
  the counts per state, throughput, ETA and the latest back-off;
* :class:`SingleLive` — one input on a terminal: a spinner with the file name, its
  state, the time elapsed and the percent done when the provider says;
* :class:`Plain` — no terminal: no bar at all, only the lines written through it.

Results and messages go through :meth:`Display.out` (stdout) and
:meth:`Display.err` (stderr). On a terminal the live region is taken down first,
the text written and flushed, then the region drawn again below it: a transcript
never lands inside a bar, and the region is *transient*, so no stale bar stays in
the scrollback once the command ends.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

    from ..batches import BatchCounts

__all__ = ["BatchLive", "Display", "Plain", "SingleLive", "clock_text", "open_display"]

#: How long a back-off stays on show after its wait started, beyond the wait itself.
_BACKOFF_LINGER = 5.0


def clock_text(seconds: float) -> str:
    """``seconds`` as ``H:MM:SS``."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class Display:
    """Writes lines for the batch runner; the base class is the plain, no-terminal one."""

    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self._stdout = stdout
        self._stderr = stderr
        # One writer at a time: the main thread prints results, the ^C thread a notice.
        self._lock = threading.RLock()

    @property
    def stdout(self) -> TextIO:
        return self._stdout or sys.stdout

    @property
    def stderr(self) -> TextIO:
        return self._stderr or sys.stderr

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def out(self, text: str) -> None:
        """Write ``text`` (a result) on stdout, ending it with a newline if it has none."""
        self._write(self.stdout, text)

    def err(self, text: str) -> None:
        """Write a message line on stderr."""
        self._write(self.stderr, text)

    def _write(self, stream: TextIO, text: str) -> None:
        with self._lock:
            stream.write(text if text.endswith("\n") else text + "\n")
            stream.flush()

    def state(self, job_id: str | None, state: str, progress: float | None = None) -> None:
        """A job's state changed (shown by the single-input spinner only)."""

    def backoff(self, notice: Any) -> None:
        """A request is about to wait before a retry (a :class:`voxhub.policies.Backoff`)."""


Plain = Display


class _LiveDisplay(Display):
    """The part both terminal displays share: a transient rich ``Live`` on stderr."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console

        self.console: Console = Console(file=sys.stderr, stderr=True)
        self._live: Live | None = None
        self.started = time.monotonic()
        self._backoff: tuple[float, Any] | None = None

    def render(self) -> RenderableType:
        raise NotImplementedError

    def _start(self) -> None:
        from rich.live import Live

        # A new Live each time: one that was stopped would first erase as many lines
        # as it last drew, which are by then the text written in between.
        self._live = Live(
            get_renderable=self.render,
            console=self.console,
            transient=True,
            refresh_per_second=8,
            # Our own writes go around the region; nothing else may print inside it.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start(refresh=True)

    def __enter__(self) -> Display:
        with self._lock:
            self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None

    def _write(self, stream: TextIO, text: str) -> None:
        with self._lock:
            live = self._live
            if live is None:
                super()._write(stream, text)
                return
            # Take the region down (transient: it is erased), write, draw it again below.
            # No refresh runs in between: stop() ends the refresh thread.
            live.stop()
            try:
                self.console.file.flush()
                super()._write(stream, text)
            finally:
                self._start()

    def backoff(self, notice: Any) -> None:
        self._backoff = (time.monotonic(), notice)

    def backoff_text(self) -> str | None:
        """The latest back-off, while it lasts (and a few seconds after)."""
        latest = self._backoff
        if latest is None:
            return None
        since, notice = latest
        seconds = float(getattr(notice, "seconds", 0.0))
        if time.monotonic() - since > seconds + _BACKOFF_LINGER:
            return None
        provider = getattr(notice, "provider", "?")
        reason = getattr(notice, "reason", "?")
        attempt = getattr(notice, "attempt", None)
        tries = f", attempt {attempt}" if attempt else ""
        return f"back-off: {provider} {reason}, waiting {seconds:.1f} s{tries}"


class BatchLive(_LiveDisplay):
    """Counts per state, a bar, throughput and ETA for a batch, on one live region.

    ``counts`` is read at every refresh (:meth:`voxhub.batches.BatchRun.counts`, cheap).
    """

    def __init__(self, batch_id: str, counts: Callable[[], BatchCounts]) -> None:
        super().__init__()
        self.batch_id = batch_id
        self._counts = counts
        self._first: int | None = None

    def render(self) -> RenderableType:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        counts = self._counts()
        finished = counts.done + counts.failed
        if self._first is None:
            self._first = finished  # inputs finished before this run don't count for speed
        elapsed = time.monotonic() - self.started
        rate = (finished - self._first) / elapsed if elapsed > 0 else 0.0
        left = counts.total - finished
        eta = clock_text(left / rate) if rate > 0 else "-:--:--"
        row = Table.grid(padding=(0, 1))
        row.add_row(
            Text(f"batch {self.batch_id}", style="bold"),
            ProgressBar(total=max(counts.total, 1), completed=finished, width=30),
            Text(f"{finished}/{counts.total}"),
            Text(
                # ``pending`` counts the running ones too: show those not started apart.
                f"done {counts.done} · failed {counts.failed} · running {counts.running}"
                f" · waiting {max(0, counts.pending - counts.running)}"
            ),
            Text(f"{rate:.1f}/s  {clock_text(elapsed)}  ETA {eta}"),
        )
        lines: list[RenderableType] = [row]
        notice = self.backoff_text()
        if notice:
            lines.append(Text(notice, style="yellow"))
        return Group(*lines)


class SingleLive(_LiveDisplay):
    """One input: a spinner with its name, state, elapsed time and percent when known."""

    def __init__(self, name: str) -> None:
        super().__init__()
        from rich.spinner import Spinner

        self.name = name
        self._state = "recorded"
        self._progress: float | None = None
        self._job: str | None = None
        self._spinner = Spinner("dots")

    def state(self, job_id: str | None, state: str, progress: float | None = None) -> None:
        self._job = job_id or self._job
        self._state = state
        if progress is not None:
            self._progress = progress

    def render(self) -> RenderableType:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        share = f"{self._progress:.0%}" if self._progress is not None else ""
        job = f"({self._job})" if self._job else ""
        row = Table.grid(padding=(0, 1))
        row.add_row(
            self._spinner,
            Text(self.name, style="bold"),
            Text(self._state),
            Text(clock_text(time.monotonic() - self.started)),
            Text(share),
            Text(job, style="dim"),
        )
        notice = self.backoff_text()
        return Group(row, Text(notice, style="yellow")) if notice else row


def open_display(
    *,
    interactive: bool,
    single: str | None,
    batch_id: str,
    counts: Callable[[], BatchCounts],
) -> Display:
    """The display for this run: live on a terminal (spinner for ``single``), else plain."""
    if not interactive:
        return Plain()
    if single is not None:
        return SingleLive(single)
    return BatchLive(batch_id, counts)
