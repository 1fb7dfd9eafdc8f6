"""Webhook delivery from an emulator, with the retries real vendors make.

Part of the sandbox kit (:mod:`voxhub.sandbox_kit` re-exports :class:`CallbackSender`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

import urllib3

if TYPE_CHECKING:
    from .sandbox_kit import Counters

__all__ = ["CallbackSender"]


class CallbackSender:
    """Delivers webhooks from a sandbox in the background, retrying failed deliveries.

    ``schedule`` lists the delays before each retry (the real vendors retry over
    hours; sandboxes default to seconds). Every attempt is counted in
    ``counters`` as ``callbacks.sent`` / ``callbacks.failed`` / ``callbacks.delivered``.
    ``ack_statuses`` are the answers that acknowledge a delivery (``None``: any 2xx);
    a vendor that documents "only a 200 acknowledges" passes ``{200}``.
    """

    def __init__(
        self,
        counters: Counters,
        *,
        schedule: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0),
        timeout: float = 5.0,
        ack_statuses: Collection[int] | None = None,
    ) -> None:
        self.counters = counters
        self.ack_statuses = None if ack_statuses is None else frozenset(ack_statuses)
        self.schedule = schedule
        self._pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(timeout))
        self._queue: queue.Queue[tuple[str, bytes, dict[str, str], int] | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._run, name="sandbox-callbacks", daemon=True)
            for _ in range(2)
        ]
        for thread in self._threads:
            thread.start()
        self.delivered: list[tuple[str, bytes]] = []

    def send(self, url: str, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        """Queue one callback POST."""
        self._queue.put((url, body, dict(headers or {}), 0))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            url, body, headers, attempt = item
            self.counters.add("callbacks.sent")
            ok = False
            try:
                resp = self._pool.request(
                    "POST", url, body=body, headers={"Content-Type": "application/json", **headers}
                )
                ok = (200 <= resp.status < 300 if self.ack_statuses is None
                      else resp.status in self.ack_statuses)
            except (urllib3.exceptions.HTTPError, OSError):
                ok = False
            if ok:
                self.counters.add("callbacks.delivered")
                self.delivered.append((url, body))
                continue
            self.counters.add("callbacks.failed")
            if attempt < len(self.schedule):
                delay = self.schedule[attempt]
                timer = threading.Timer(
                    delay, self._queue.put, args=((url, body, headers, attempt + 1),)
                )
                timer.daemon = True
                timer.start()

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        self._pool.clear()


