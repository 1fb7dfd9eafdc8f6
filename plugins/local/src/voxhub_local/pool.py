"""The parent side of the local provider's worker processes: :class:`WorkerPool`.

A FIFO queue of jobs served by at most ``max_workers`` long-lived worker processes
(one per CPU by default), started on demand as ``python -m voxhub_local.worker``
(:mod:`voxhub_local.worker`, the child side, says why processes and why not
:mod:`multiprocessing`) and retired after ``idle_seconds`` without work. One reader
thread per worker turns its messages into job state (progress, result, failure); a
worker that dies or stops answering a cancel is killed and its job failed.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import os
import pickle
import site
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from .common import Recognition
from .worker import read_message, write_message

if TYPE_CHECKING:
    from .engine import EngineConfig

__all__ = ["JobPhase", "JobView", "WorkerPool", "default_workers"]

#: How long :meth:`WorkerPool.cancel` waits for a worker to notice a cancel
#: request before killing the worker process. PocketSphinx checks every half
#: second of audio; Whisper after every 30-second chunk, which takes up to a
#: few seconds on a slow CPU with a larger model.
_CANCEL_GRACE_SECONDS: Final = 8.0
#: How long a killed worker is waited for.
_KILL_WAIT_SECONDS: Final = 5.0
#: Bytes of a worker's stderr kept to explain a crash.
_STDERR_TAIL: Final = 4096


def default_workers() -> int:
    """Worker processes to run at once: the CPUs this process may use.

    ``VOXHUB_LOCAL_WORKERS`` overrides it (e.g. to leave cores to a web
    server). Decoding one file keeps one core busy, so more workers than
    cores only slows every job down.
    """
    configured = os.environ.get("VOXHUB_LOCAL_WORKERS", "").strip()
    if configured:
        try:
            return max(1, int(configured))
        except ValueError:
            pass  # a typo must not break the provider: fall back to the machine size
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)



class JobPhase(enum.Enum):
    """Where a job of the pool is."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Whether the job can no longer change."""
        return self in (JobPhase.SUCCEEDED, JobPhase.FAILED, JobPhase.CANCELLED)


@attrs.frozen
class JobView:
    """A consistent snapshot of one job, for the provider to report.

    ``progress`` is the share of the audio decoded (0 while queued, 1 once
    done); ``reason``/``detail`` explain a failure; ``result`` is set once the
    job succeeded.
    """

    job_id: str
    phase: JobPhase
    progress: float
    reason: str | None = None
    detail: str | None = None
    result: Recognition | None = None


@attrs.define(eq=False)
class _Job:
    job_id: str
    path: str
    config: EngineConfig
    phase: JobPhase = JobPhase.QUEUED
    progress: float = 0.0
    reason: str | None = None
    detail: str | None = None
    result: Recognition | None = None
    cancel_requested: bool = False
    fetched: bool = False
    finished_at: float | None = None
    worker: _Worker | None = None
    done: threading.Event = attrs.field(factory=threading.Event)


@attrs.define(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    job: _Job | None = None
    idle_since: float = 0.0
    stderr_tail: collections.deque[bytes] = attrs.field(
        factory=lambda: collections.deque(maxlen=64)
    )


def _worker_env() -> dict[str, str]:
    """The environment of a worker: ours, with this package importable for sure.

    The caller may have made ``voxhub_local`` importable by changing
    ``sys.path`` at run time (tests, embedding apps); a child only sees the
    environment, so the directory holding the package goes first on its path.
    """
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    site_dirs = [*site.getsitepackages(), site.getusersitepackages()]
    if any(Path(d).resolve() == Path(root) for d in site_dirs):
        # An ordinary install: the child finds it anyway, and a site directory on
        # PYTHONPATH would come before the standard library and could shadow it.
        return env
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = root if not existing else os.pathsep.join([root, existing])
    return env


class WorkerPool:
    """A FIFO of transcription jobs served by at most ``max_workers`` processes.

    Thread-safe. Jobs are identified by ids chosen by the caller. A finished
    job is kept (with its result) until :meth:`forget`; once more than
    ``keep_fetched`` finished jobs have been marked fetched, the oldest of those
    are dropped, so a long-lived server does not grow without bound. Workers
    idle for ``idle_seconds`` exit (they are started again on demand).
    """

    def __init__(
        self, max_workers: int | None = None, *, keep_fetched: int = 64,
        idle_seconds: float = 60.0,
    ) -> None:
        self.max_workers = max_workers if max_workers is not None else default_workers()
        if self.max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._keep_fetched = keep_fetched
        self._idle_seconds = idle_seconds
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._queue: deque[_Job] = deque()
        self._workers: list[_Worker] = []
        self._closed = False

    # --- submitting and looking up ----------------------------------------------

    def submit(self, job_id: str, path: str, config: EngineConfig) -> None:
        """Queue a job; it starts as soon as a worker is free (first come, first served)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            if job_id in self._jobs:
                raise ValueError(f"job {job_id!r} already exists")
            job = _Job(job_id=job_id, path=path, config=config)
            self._jobs[job_id] = job
            self._queue.append(job)
            self._dispatch()

    def view(self, job_id: str) -> JobView | None:
        """A snapshot of the job, or ``None`` if this pool does not know it."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            progress = 1.0 if job.phase is JobPhase.SUCCEEDED else job.progress
            return JobView(job.job_id, job.phase, progress, job.reason, job.detail, job.result)

    def wait(self, job_id: str, timeout: float | None = None) -> bool:
        """Block until the job has finished; ``False`` on timeout or for an unknown job."""
        with self._lock:
            job = self._jobs.get(job_id)
        return job is not None and job.done.wait(timeout)

    def mark_fetched(self, job_id: str) -> None:
        """Note that the job's result was handed out (so it may be dropped later)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.fetched:
                return
            job.fetched = True
            fetched = [j for j in self._jobs.values() if j.fetched]
            excess = len(fetched) - self._keep_fetched
            if excess > 0:
                fetched.sort(key=lambda j: j.finished_at or 0.0)
                for old in fetched[:excess]:
                    del self._jobs[old.job_id]

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for diagnostics and tests)."""
        with self._lock:
            return [w.process.pid for w in self._workers]

    # --- stopping ---------------------------------------------------------------

    def cancel(self, job_id: str) -> bool:
        """Stop a queued or running job, waiting until its worker has let go of it.

        Returns ``True`` if the job was stopped before it finished, ``False`` if
        it had already finished (or is unknown). A worker that does not notice
        the request within a grace period is killed (and replaced on demand).
        """
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.phase.finished:
                return False
            job.cancel_requested = True
            if job.phase is JobPhase.QUEUED:
                self._queue.remove(job)
                self._finish(job, JobPhase.CANCELLED)
                return True
            worker = job.worker
            if worker is not None:
                self._send(worker, ("cancel", job_id))
        if not job.done.wait(_CANCEL_GRACE_SECONDS) and worker is not None:
            _kill(worker.process)
            job.done.wait(_KILL_WAIT_SECONDS)
        with self._lock:
            return job.phase is JobPhase.CANCELLED

    def forget(self, job_id: str) -> None:
        """Drop a job, cancelling it first if it has not finished; unknown ids are ignored."""
        self.cancel(job_id)
        with self._lock:
            self._jobs.pop(job_id, None)

    def shutdown(self) -> None:
        """Stop everything at once (as at process exit): no waiting for a graceful end."""
        with self._lock:
            self._closed = True
            while self._queue:
                self._finish(self._queue.popleft(), JobPhase.CANCELLED)
            workers = list(self._workers)
            for worker in workers:
                if worker.job is not None:
                    worker.job.cancel_requested = True
        for worker in workers:
            _kill(worker.process)

    # --- workers ------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Give queued jobs to idle workers, starting workers up to the limit (lock held)."""
        while self._queue and not self._closed:
            worker = next((w for w in self._workers if w.job is None), None)
            if worker is None:
                if len(self._workers) >= self.max_workers:
                    return
                try:
                    worker = self._start_worker()
                except OSError as exc:
                    job = self._queue.popleft()
                    self._finish(job, JobPhase.FAILED, "worker-start-failed",
                                 f"could not start a worker process: {exc}")
                    continue
            job = self._queue.popleft()
            job.phase, job.worker, worker.job = JobPhase.RUNNING, worker, job
            self._send(worker, ("job", job.job_id, job.path, job.config))

    def _start_worker(self) -> _Worker:
        process = subprocess.Popen(
            [sys.executable, "-m", "voxhub_local.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=_worker_env(), close_fds=True,
        )
        worker = _Worker(process)
        self._workers.append(worker)
        for target, name in ((self._read_messages, "out"), (self._read_stderr, "err")):
            threading.Thread(target=target, args=(worker,), daemon=True,
                             name=f"voxhub-local-{process.pid}-{name}").start()
        return worker

    def _send(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        stdin = worker.process.stdin
        assert stdin is not None
        # A dead worker refuses the write: its reader thread reports the job at EOF.
        with contextlib.suppress(OSError, ValueError):
            write_message(stdin, message)

    def _read_messages(self, worker: _Worker) -> None:
        stdout = worker.process.stdout
        assert stdout is not None
        while True:
            try:
                message = read_message(stdout)
            except (OSError, ValueError, pickle.UnpicklingError):
                message = None
            if message is None:
                break
            with self._lock:
                job = worker.job
                if job is None or job.job_id != message[1]:
                    continue  # a late report for a job that already ended
                if message[0] == "progress":
                    job.progress = min(1.0, max(job.progress, float(message[2])))
                elif message[0] == "done":
                    self._finish(job, *_outcome(message[2]))
                    worker.job, worker.idle_since = None, time.monotonic()
                    self._dispatch()
                    if worker.job is None:
                        self._schedule_retirement(worker)
        returncode = worker.process.wait()
        with self._lock:
            for stream in (worker.process.stdin, stdout):
                if stream is not None:
                    stream.close()
            if worker in self._workers:
                self._workers.remove(worker)
            job = worker.job
            if job is not None and not job.phase.finished:
                if job.cancel_requested:
                    self._finish(job, JobPhase.CANCELLED)
                else:
                    how = (f"was killed by signal {-returncode}" if returncode < 0
                           else f"exited with status {returncode}")
                    tail = b"".join(worker.stderr_tail).decode("utf-8", "replace").strip()
                    last = tail.splitlines()[-1] if tail else ""
                    self._finish(job, JobPhase.FAILED, "worker-crashed",
                                 f"the worker process transcribing this file {how}"
                                 + (f" ({last})" if last else ""))
            worker.job = None
            self._dispatch()  # a replacement worker for what is still queued

    def _read_stderr(self, worker: _Worker) -> None:
        # Drained continuously (a full pipe would block the worker) and kept short.
        stderr = worker.process.stderr
        assert stderr is not None
        try:
            for line in iter(stderr.readline, b""):
                worker.stderr_tail.append(line[-_STDERR_TAIL:])
        except (OSError, ValueError):
            pass
        finally:
            stderr.close()

    def _schedule_retirement(self, worker: _Worker) -> None:
        stamp = worker.idle_since

        def retire() -> None:
            with self._lock:
                if worker.job is not None or worker.idle_since != stamp:
                    return  # it found work meanwhile
                if worker in self._workers:
                    self._workers.remove(worker)
            stdin = worker.process.stdin
            if stdin is not None:
                with contextlib.suppress(OSError):
                    stdin.close()  # end of file: the worker exits on its own

        timer = threading.Timer(self._idle_seconds, retire)
        timer.daemon = True
        timer.start()

    def _finish(
        self, job: _Job, phase: JobPhase, reason: str | None = None, detail: str | None = None,
        result: Recognition | None = None,
    ) -> None:
        # Called with the lock held.
        job.phase, job.reason, job.detail, job.result = phase, reason, detail, result
        job.finished_at = time.monotonic()
        job.worker = None
        job.done.set()


def _outcome(
    message: Any,
) -> tuple[JobPhase, str | None, str | None, Recognition | None]:
    kind = message[0] if isinstance(message, tuple) and message else None
    if kind == "ok" and isinstance(message[1], Recognition):
        return JobPhase.SUCCEEDED, None, None, message[1]
    if kind == "cancelled":
        return JobPhase.CANCELLED, None, None, None
    if kind == "failed":
        return JobPhase.FAILED, str(message[1]), str(message[2]), None
    return JobPhase.FAILED, "internal-error", f"unexpected answer from the worker: {kind!r}", None


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(OSError):  # it may have ended meanwhile
            process.kill()
