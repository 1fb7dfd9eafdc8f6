"""Time as a dependency, so waits and back-offs can run instantly in tests."""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    """What voxhub needs of time: a wall clock, a monotonic clock and sleeping."""

    def time(self) -> float:
        """Seconds since the epoch."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        """Sleep up to ``seconds``; return early (True) when ``wake`` is set."""


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        if seconds <= 0:
            return bool(wake and wake.is_set())
        if wake is not None:
            return wake.wait(seconds)
        time.sleep(seconds)
        return False


class FakeClock:
    """A clock that advances only when slept on; sleeping returns at once.

    Shared safely by threads. ``slept`` records every requested sleep so tests
    can assert back-off and Retry-After behaviour without waiting.
    """

    def __init__(self, start: float | None = None) -> None:
        # Starts at the real time: signed tokens and expiry checks made with it stay valid
        # for servers that use the real clock.
        self._now = time.time() if start is None else start
        self._mono = 0.0
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def time(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            self._mono += seconds

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        if wake is not None and wake.is_set():
            return True
        seconds = max(0.0, seconds)
        with self._lock:
            self.slept.append(seconds)
        self.advance(seconds)
        # Let other threads run, as a real sleep would.
        time.sleep(0)
        return bool(wake and wake.is_set())
