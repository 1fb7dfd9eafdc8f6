"""The child side of the local provider's worker processes: ``python -m voxhub_local.worker``.

:func:`main` reads jobs from stdin, runs one at a time through
:func:`voxhub_local.engine.transcribe`, and writes progress reports and one final
message per job to its (duplicated) stdout. A reader thread receives ``cancel`` while
the engine decodes, and cancels everything when stdin reaches end-of-file, i.e. when
the parent is gone, so an orphaned worker never burns a core for nobody. The parent
side is :class:`voxhub_local.pool.WorkerPool`. This module knows nothing of the voxhub
core: a worker process imports only it and the engine.

Why processes and not threads: PocketSphinx decoding is CPU-bound code that
holds the GIL, and a Whisper model is best loaded once and kept: a
long-lived worker process loads it on its first job and keeps it for the
next ones. Processes also keep a crash in an engine (e.g. on a broken model)
from taking the caller down, and let a job stuck in one C call be stopped
(its worker is killed and replaced).

Why plain subprocesses and not :mod:`multiprocessing`: multiprocessing's
spawn and forkserver start methods re-run the caller's ``__main__`` module in
every worker, which breaks every script that calls voxhub without an
``if __name__ == "__main__":`` guard (and ``fork`` is unsafe in a
multi-threaded caller). Workers started as ``python -m voxhub_local.worker``
have no such requirement; the protocol (:func:`write_message`,
:func:`read_message`) is length-prefixed pickles over pipes between two processes
of the same installation.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Final

from .common import AudioError, Cancelled, ConfigError, EngineError
from .engine import transcribe

if TYPE_CHECKING:
    from .engine import EngineConfig

__all__ = ["main", "read_message", "write_message"]

#: Minimum time between two progress messages of a worker (bounds pipe traffic
#: on fast machines; the orchestrator polls at most every 0.2 s anyway).
_PROGRESS_INTERVAL: Final = 0.05
_HEADER: Final = struct.Struct(">I")


# --------------------------------------------------------------------------
# Framing: 4-byte big-endian length, then a pickle.


def write_message(stream: IO[bytes], message: tuple[Any, ...]) -> None:
    """Send one message: its pickle's length (4 bytes, big-endian), then the pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_message(stream: IO[bytes]) -> tuple[Any, ...] | None:
    """The next message, or ``None`` at end of file (or a torn message)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    message = pickle.loads(data)  # noqa: S301 - our own child/parent, same installation
    return message if isinstance(message, tuple) and message else None


def _run_job(path: str, config: EngineConfig, cancel: threading.Event,
             send: Callable[[tuple[Any, ...]], None]) -> tuple[Any, ...]:
    """Transcribe one file; the final message for it (progress goes out via ``send``)."""
    last = 0.0

    def report(share: float) -> None:
        nonlocal last
        now = time.monotonic()
        if share < 1.0 and now - last < _PROGRESS_INTERVAL:
            return
        last = now
        send(("progress", share))

    try:
        return ("ok", transcribe(path, config, progress=report, cancel=cancel))
    except Cancelled:
        return ("cancelled",)
    except AudioError as exc:
        return ("failed", "unreadable-audio", str(exc))
    except ConfigError as exc:
        return ("failed", "invalid-config", str(exc))
    except EngineError as exc:
        return ("failed", "engine-error", str(exc))
    except Exception as exc:  # noqa: BLE001 - any other crash is a failed job, reported as such
        return ("failed", "internal-error", f"{type(exc).__name__}: {exc}")


def main() -> int:
    """Worker process: serve jobs from stdin until it closes."""
    # Ctrl-C on a terminal reaches the whole process group: the parent decides
    # what happens to its jobs, so a worker must not die with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox = sys.stdin.buffer
    # The protocol gets a private copy of stdout; fd 1 then points at stderr so
    # that anything printed by a library cannot corrupt the message stream.
    outbox = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    jobs: deque[tuple[Any, ...] | None] = deque()
    ready = threading.Condition()
    cancels: dict[str, threading.Event] = {}

    def receive() -> None:
        while True:
            message = read_message(inbox)
            with ready:
                if message is None:  # the parent is gone (or closed us): stop everything
                    for event in cancels.values():
                        event.set()
                    jobs.append(None)
                    ready.notify()
                    return
                if message[0] == "job":
                    cancels[message[1]] = threading.Event()
                    jobs.append(message)
                    ready.notify()
                elif message[0] == "cancel" and message[1] in cancels:
                    cancels[message[1]].set()

    threading.Thread(target=receive, name="voxhub-local-inbox", daemon=True).start()
    while True:
        with ready:
            while not jobs:
                ready.wait()
            item = jobs.popleft()
            if item is None:
                return 0
            _, job_id, path, config = item
            cancel = cancels[job_id]

        def send(message: tuple[Any, ...], job_id: str = job_id) -> None:
            write_message(outbox, (message[0], job_id, *message[1:]))

        outcome = _run_job(path, config, cancel, send)
        with ready:
            cancels.pop(job_id, None)
        try:
            send(("done", outcome))
        except (BrokenPipeError, OSError):
            return 0  # the parent is gone; nobody is left to tell


if __name__ == "__main__":
    sys.exit(main())
