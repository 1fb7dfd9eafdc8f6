"""An exclusive lock plus a small record per key: one task per channel.

Why: the seed warns that two clients enabling Real-Time STT for one channel
within a second create two tasks (and twice the bill). Every start therefore
runs under an exclusive lock for its channel, and the lock's record says which
task already serves that channel and which jobs use it. The second start finds
the first task instead of creating another one; the task is stopped when its
last job is closed.

Two places keep the locks, behind one interface (:class:`Registry`):

* :class:`StoreRegistry`, the default: the job store (``ctx.limits.locked``, see
  :mod:`voxhub.shared_limits`), so every thread, process and machine sharing the store
  shares them, PostgreSQL stores across machines included;
* :class:`TaskRegistry`, with the ``lock_dir`` option: one ``<key-hash>.lock`` file per
  key, locked with ``flock`` (separate ``open()`` calls conflict even within one
  process, so the same code serialises threads and processes), the record
  ``<key-hash>.json`` next to it, replaced atomically. Shared by the processes that see
  that directory with working ``flock``.

The seed also asks for no more than one start per second from one app: that turn lives
in the job store, so it holds across machines too (``ctx.limits.turn``, see
:meth:`voxhub_agora.provider.AgoraProvider.paced`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if sys.platform != "win32":
    import fcntl

from voxhub.plugin import ConfigurationError, ProviderUnavailableError

if TYPE_CHECKING:
    from voxhub.plugin import ProviderContext

__all__ = ["LockRecord", "Registry", "Slot", "StoreRegistry", "TaskRegistry"]

#: How long a start waits for another one holding its channel's lock.
LOCK_TIMEOUT = 60.0


class LockRecord(Protocol):
    """The record of a held lock: set :attr:`data` (``None`` deletes it); it is written
    when the lock is released normally, or at once by :meth:`save`."""

    key: str
    data: dict[str, Any] | None

    def save(self) -> None:
        """Write the record now (the lock is still held)."""


class Registry(Protocol):
    """Where the channel locks and their records live."""

    def locked(self, key: str) -> AbstractContextManager[LockRecord]:
        """Hold the lock of ``key`` and yield its record."""

    def read(self, key: str) -> dict[str, Any] | None:
        """The record of ``key`` without locking (a snapshot; may be stale at once)."""


class StoreRegistry:
    """The locks in the job store: shared by every machine of the store.

    A key (``agora-stt|<app id>|<channel>``, or the transcoder's instance id) is stored
    as a hash under the App ID (``agora-stt:app-<app id>:lock.<sha-256>``): keys are
    shown to operators, channel names need not be.
    """

    def __init__(self, ctx: ProviderContext, *, timeout: float = LOCK_TIMEOUT) -> None:
        self._limits = ctx.limits
        self.timeout = timeout

    @staticmethod
    def _name(key: str) -> tuple[str, str]:
        app = key.split("|", 2)[1] if key.count("|") >= 2 else "any"
        return f"lock.{hashlib.sha256(key.encode()).hexdigest()[:40]}", f"app-{app}"

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[LockRecord]:
        """Hold the lock of ``key`` and yield its record; the record is saved on normal exit."""
        name, scope = self._name(key)
        with self._limits.locked(name, scope=scope, operation="submit",
                                 timeout=self.timeout) as record:
            yield record

    def read(self, key: str) -> dict[str, Any] | None:
        """The record of ``key`` without locking (a snapshot; may be stale at once)."""
        name, scope = self._name(key)
        return self._limits.record(name, scope=scope)


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


class Slot:
    """The record of one locked key; set :attr:`data` (or ``None`` to delete it).

    The record is written when the lock is released normally, or at once by :meth:`save`
    (for facts that must survive a failure later in the block, e.g. a builder token about
    to be used).
    """

    def __init__(self, key: str, data: dict[str, Any] | None, path: Path) -> None:
        self.key = key
        self._path = path
        self._original = data
        self.data: dict[str, Any] | None = None if data is None else dict(data)

    @property
    def changed(self) -> bool:
        """Whether the record differs from what was read or last saved."""
        return self.data != self._original

    def save(self) -> None:
        """Write the record now (the lock is still held)."""
        _write(self._path, self.data)
        self._original = None if self.data is None else dict(self.data)


class TaskRegistry:
    """Locks and records under ``directory`` (created on first use)."""

    def __init__(self, directory: Path, *, timeout: float = LOCK_TIMEOUT) -> None:
        self.directory = directory
        self.timeout = timeout

    def _paths(self, key: str) -> tuple[Path, Path]:
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        return self.directory / f"{digest}.lock", self.directory / f"{digest}.json"

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[LockRecord]:
        """Hold the lock of ``key`` and yield its record; the record is saved on normal exit."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the Agora lock directory {self.directory}: {exc}",
                operation="submit",
            ) from exc
        lock_path, data_path = self._paths(key)
        with _thread_lock(str(lock_path)), lock_path.open("a+b") as handle:
            self._flock(handle.fileno(), lock_path)
            try:
                slot = Slot(key, _read(data_path), data_path)
                yield slot
                if slot.changed:
                    _write(data_path, slot.data)
            finally:
                if sys.platform != "win32":
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def read(self, key: str) -> dict[str, Any] | None:
        """The record of ``key`` without locking (a snapshot; may be stale at once)."""
        return _read(self._paths(key)[1])

    def _flock(self, fd: int, path: Path) -> None:
        if sys.platform == "win32":  # pragma: no cover - threads are still serialised
            return
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ProviderUnavailableError(
                        f"another process held the lock {path} for over {self.timeout:g}s",
                        operation="submit", in_doubt=False,
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)


@contextlib.contextmanager
def _thread_lock(name: str) -> Iterator[None]:
    # flock already excludes other open() calls, but a process-local lock first keeps
    # threads of this process from spinning on the file.
    with _thread_locks_guard:
        lock = _thread_locks.setdefault(name, threading.Lock())
    with lock:
        yield


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # a torn or foreign file is treated as no record
    return data if isinstance(data, dict) else None


def _write(path: Path, data: dict[str, Any] | None) -> None:
    if data is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise
