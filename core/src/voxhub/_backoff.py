"""Retry waits made visible and bounded: what :class:`~voxhub.transport.HttpClient` does
between two attempts of one request.

Each wait is first checked against the deadline in scope
(:func:`~voxhub.policies.deadline_scope`), then logged at info level as ``backoff``,
told to the back-off listeners, and slept on the client's clock.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import structlog

from ._transports import Response
from .clock import Clock
from .policies import Backoff, RetryPolicy, current_deadline, parse_retry_after
from .redact import redact_text

__all__ = ["BackoffListener", "Backoffs", "request_path", "retry_delay"]

log = structlog.get_logger("voxhub.transport")

#: Told about each retry wait, on the requesting thread, before the wait starts.
BackoffListener = Callable[[Backoff], None]


def retry_delay(
    resp: Response, nth: int, retry: RetryPolicy, clock: Clock, rng: random.Random
) -> tuple[float, str]:
    """How long to wait before the ``nth`` retry after ``resp``, and the notice's reason."""
    status = str(resp.status)
    header = resp.header("Retry-After")
    if header is None:
        return retry.backoff(nth, rng), status
    asked = parse_retry_after(header, clock.time())
    if asked is None:
        # An unreadable value must turn into neither a silent nor an endless wait.
        return retry.backoff(nth, rng), f"{status} (Retry-After unreadable)"
    if asked > retry.retry_after_max:
        return retry.retry_after_max, f"{status} (Retry-After capped)"
    return asked, f"{status} (Retry-After)"


def request_path(url: str) -> str:
    """The URL's path alone: no host, no query (signatures live there), secrets masked."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return "?"
    return redact_text(path or "/")


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


class Backoffs:
    """The listeners of one client, and the waits they are told about."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        # Replaced whole under the lock, read without it: a request never waits on it.
        # Each registration is its own entry (a token and the listener), so a remover
        # removes exactly what its call added, even for equal bound methods.
        self._listeners: tuple[tuple[object, BackoffListener], ...] = ()
        self._lock = threading.Lock()

    def add(self, listener: BackoffListener) -> Callable[[], None]:
        """Register ``listener``; returns the function that removes this registration."""
        token = object()
        with self._lock:
            self._listeners = (*self._listeners, (token, listener))

        def remove() -> None:
            with self._lock:
                self._listeners = tuple(e for e in self._listeners if e[0] is not token)

        return remove

    def pause(self, notice: Backoff) -> str | None:
        """Wait out ``notice``; or, when that would pass the deadline in scope, say why not.

        Returns ``None`` after waiting, else the reason retrying stops (for the error).
        """
        fields = {
            "provider": notice.provider,
            "reason": notice.reason,
            "seconds": round(notice.seconds, 3),
            "attempt": notice.attempt,
            "operation": notice.operation,
            "method": notice.method,
            "path": notice.path,
        }
        deadline = current_deadline()
        if deadline is not None:
            left = deadline - self.clock.monotonic()  # negative once it has passed
            if notice.seconds > left:
                log.info("backoff.gave_up", left=round(max(0.0, left), 3), **fields)
                return (
                    f"waiting {_seconds(notice.seconds)} more would pass the deadline, "
                    f"{_seconds(max(0.0, left))} away"
                )
        log.info("backoff", **fields)
        for _token, listener in self._listeners:
            try:
                listener(notice)
            except Exception:  # a display's bug must not fail the request it shows
                log.warning("backoff.listener_failed", provider=notice.provider, exc_info=True)
        self.clock.sleep(notice.seconds)
        return None
