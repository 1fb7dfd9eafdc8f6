"""The ``local`` provider: offline transcription jobs run by this machine.

A local job is a real job in voxhub's model, not a function call: ``submit``
queues the file in a :class:`~voxhub_local.pool.WorkerPool` (worker
processes, at most one per CPU) and returns at once; ``status`` reports the
share of the audio decoded; ``fetch`` turns the engine's
:class:`~voxhub_local.engine.Recognition` into a :class:`~voxhub.Transcript`;
``close`` cancels a running job and frees it.

What survives the process, honestly: the work runs in children of the process
that submitted it, so it ends with that process. The handle records which
process owns the job (host, boot, pid and the pid's start time). A provider
that does not know a job id therefore answers

* from the owning provider instance, if that is alive in this process;
* ``RUNNING`` (no progress) if the owning process is still alive on this
  machine — another ``voxhub`` command is running it;
* ``FAILED`` with reason ``interrupted`` otherwise — never a made-up result.

A finished job's result is stored by the orchestrator when it is fetched, so
``fetch`` after a restart is answered from the store without asking us.
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import uuid
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, cast

import attrs
from voxhub.plugin import (
    InvalidInputError,
    JobHandle,
    JobRequest,
    JobState,
    JobStatus,
    LocalFile,
    NotFoundError,
    Provider,
    ProviderContext,
    ProviderError,
    Segment,
    Transcript,
    Word,
)

from .common import AudioError, ConfigError, Recognition, audio_info
from .engine import config_from_options, engine_of
from .languages import BUNDLED_LANGUAGE, sphinx_language, whisper_language
from .options import INFO, NAME, OPTIONS
from .pool import JobPhase, JobView, WorkerPool

__all__ = ["INTERRUPTED_DETAIL", "LocalProvider"]

#: Options that name files or directories (made absolute at validation, so a
#: stored request means the same file whatever the working directory later is).
_PATH_OPTIONS: Final = ("model_dir", "dictionary", "language_model", "grammar")
#: ``model`` is a path only when it is not a model name (see voxhub_local.models).

INTERRUPTED_DETAIL: Final = (
    "the process that ran this local job ended before it finished (local jobs run inside "
    "the process that submitted them); submit it again with --new"
)


def _owner_identity() -> dict[str, Any]:
    """Who runs jobs submitted from this process (see :func:`_owner_alive`)."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "boot": _boot_id(),
        "pid": pid,
        "pid_started": _pid_start_time(pid),
    }


def _boot_id() -> str | None:
    # Changes at every boot: a pid recorded before a reboot means nothing after it.
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return None


def _pid_start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (Linux), to tell pid reuse apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after it.
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])  # field 22 of proc(5), the 20th after the name
    except (IndexError, ValueError):
        return None


def _owner_alive(owner: Mapping[str, Any]) -> bool | None:
    """Whether the process described by ``owner`` still runs: ``None`` if unknowable here."""
    if not owner:
        return False  # a handle without an owner (e.g. adopted): nobody here runs it
    if owner.get("host") != socket.gethostname():
        return None
    boot = owner.get("boot")
    if boot is not None and boot != _boot_id():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    started = owner.get("pid_started")
    if started is not None:
        return bool(_pid_start_time(pid) == started)
    return True


#: Live provider instances of this process by token, so that a second
#: instance (e.g. a second PluginManager) can answer for jobs the first runs.
_INSTANCES: weakref.WeakValueDictionary[str, LocalProvider] = weakref.WeakValueDictionary()


class LocalProvider(Provider):
    """Offline transcription (Whisper or PocketSphinx) as voxhub jobs (see the module docstring).

    Args:
        max_workers: Worker processes running at once (default: one per CPU
            this process may use, or ``VOXHUB_LOCAL_WORKERS``).
    """

    info = INFO

    def __init__(self, *, max_workers: int | None = None) -> None:
        self._pool = WorkerPool(max_workers)
        self._token = uuid.uuid4().hex
        _INSTANCES[self._token] = self
        # Runs when the instance is collected or, at the latest, at interpreter
        # exit: queued jobs are dropped and running workers killed rather than
        # waited for (a job cannot outlive its process; see the module docstring).
        self._finalizer = weakref.finalize(self, WorkerPool.shutdown, self._pool)

    @property
    def pool(self) -> WorkerPool:
        """The worker processes of this instance."""
        return self._pool

    def shutdown(self) -> None:
        """Stop every job of this instance now, as the end of the process would."""
        _INSTANCES.pop(self._token, None)
        self._finalizer()

    # --- validation ---------------------------------------------------------------

    def validate(self, ctx: ProviderContext, request: JobRequest) -> JobRequest:
        """Check media, language and options; return the request with absolute paths."""
        media = request.media
        if not isinstance(media, LocalFile):
            kind = "no media" if media is None else f"{type(media).__name__} media"
            raise InvalidInputError(
                f"the local provider transcribes local audio files only, got {kind}",
                field="media", provider=NAME, operation="validate",
            )
        try:
            audio_info(media.path)
        except AudioError as exc:
            raise InvalidInputError(str(exc), field="media", provider=NAME,
                                    operation="validate") from None
        options = dict(request.options)
        for name in _PATH_OPTIONS:
            value = options.get(name)
            if isinstance(value, str) and value:
                options[name] = str(Path(value).expanduser().resolve())
        model = options.get("model")
        if isinstance(model, str) and _is_path(model):
            options["model"] = str(Path(model).expanduser().resolve())
        language = _language(request.language, options)
        # Every cross-field and file check, and the model's resolution (an offline
        # machine without the model is refused here), before anything runs.
        _engine_config(options, language, resolve=True)
        path = LocalFile(media.path.expanduser().resolve())
        return attrs.evolve(request, media=path, options=options, language=language)

    # --- the job lifecycle ---------------------------------------------------------

    def submit(self, ctx: ProviderContext, request: JobRequest, handle: JobHandle) -> JobHandle:
        """Queue the file in the worker pool; the vendor id is a new local job id."""
        media = cast(LocalFile, request.media)  # validate made it an absolute local file
        config = _engine_config(request.options, request.language)
        local_id = "lj_" + uuid.uuid4().hex[:20]
        owner = {**_owner_identity(), "instance": self._token}
        try:
            self._pool.submit(local_id, str(media.path), config)
        except RuntimeError as exc:  # shut down: nothing was queued, so nothing is in doubt
            raise ProviderError(f"the local provider cannot take jobs: {exc}", provider=NAME,
                                operation="submit") from None
        ctx.log.info("local.queued", job_id=handle.job_id, local_job=local_id,
                     workers=self._pool.max_workers)
        language = request.language
        return handle.with_vendor({"local_job": local_id},
                                  {"owner": owner, "language": language})

    def status(self, ctx: ProviderContext, handle: JobHandle) -> JobStatus:
        """Where the job is; progress is the share of the audio decoded."""
        local_id = _local_id(handle)
        view = self._pool.view(local_id)
        if view is not None:
            return _status(view)
        other = self._owner_instance(handle)
        if other is not None:
            return other.status(ctx, handle)
        self._check_not_ours(handle, "status")
        where = _elsewhere(_owner(handle))
        if where is not None:
            # Not ours to judge: it may well be running there. Progress is only known there.
            return JobStatus(JobState.RUNNING, vendor_state="elsewhere",
                             detail=f"owned by {where}; its progress is only known there")
        return JobStatus(JobState.FAILED, vendor_state="interrupted", reason="interrupted",
                         detail=INTERRUPTED_DETAIL)

    def fetch(self, ctx: ProviderContext, handle: JobHandle) -> Transcript:
        """The transcript of a finished job (segments, word timings and confidences)."""
        local_id = _local_id(handle)
        view = self._pool.view(local_id)
        if view is None:
            other = self._owner_instance(handle)
            if other is not None:
                return other.fetch(ctx, handle)
            self._check_not_ours(handle, "fetch")
            where = _elsewhere(_owner(handle))
            if where is not None:
                raise ProviderError(
                    f"local job {local_id} is owned by {where}; its result reaches the store "
                    "when that process fetches it", provider=NAME, operation="fetch",
                )
            raise NotFoundError(
                f"local job {local_id} is not held by this process: the process that ran it "
                "ended before its result was stored; submit it again with --new",
                provider=NAME, operation="fetch",
            )
        if view.phase is not JobPhase.SUCCEEDED or view.result is None:
            raise ProviderError(
                f"local job {local_id} is {view.phase.value}; its result is not ready",
                provider=NAME, operation="fetch", details={"state": view.phase.value},
            )
        given = handle.vendor_state.get("language")
        transcript = to_transcript(view.result, job_id=handle.job_id,
                                   language=str(given) if given else None)
        self._pool.mark_fetched(local_id)
        return transcript

    def close(self, ctx: ProviderContext, handle: JobHandle) -> None:
        """Cancel the job if it still runs (its worker is stopped) and free it."""
        local_id = _local_id(handle)
        if self._pool.view(local_id) is not None:
            self._pool.forget(local_id)
            return
        other = self._owner_instance(handle)
        if other is not None:
            other.close(ctx, handle)
            return
        where = _elsewhere(_owner(handle))
        if where is not None:
            raise ProviderError(
                f"local job {local_id} is owned by {where}; it can only be cancelled there "
                "(or by ending that process)", provider=NAME, operation="close",
            )
        # Otherwise the process that ran it is gone, and the job with it: nothing to do.

    # --- helpers ---------------------------------------------------------------------

    def _check_not_ours(self, handle: JobHandle, operation: str) -> None:
        """An id this very instance handed out but no longer holds is simply unknown."""
        if _owner(handle).get("instance") == self._token:
            raise NotFoundError(
                f"no local job {_local_id(handle)} here: it was closed, its fetched result "
                "was released, or it never existed", provider=NAME, operation=operation,
            )

    def _owner_instance(self, handle: JobHandle) -> LocalProvider | None:
        owner = _owner(handle)
        token = owner.get("instance")
        if owner.get("pid") != os.getpid() or not isinstance(token, str) or token == self._token:
            return None
        return _INSTANCES.get(token)


def _elsewhere(owner: Mapping[str, Any]) -> str | None:
    """Where a job we do not hold lives, if its owner may still run it; ``None`` if it is gone."""
    alive = _owner_alive(owner)
    if alive is None:
        return f"a process on host {owner.get('host')!r} (it cannot be checked from here)"
    if alive and owner.get("pid") != os.getpid():
        return f"process {owner.get('pid')} on this machine"
    return None


def _local_id(handle: JobHandle) -> str:
    local_id = handle.vendor_ids.get("local_job")
    if not local_id:
        raise NotFoundError(f"job {handle.job_id} has no local job id", provider=NAME,
                            operation="lookup")
    return local_id


def _owner(handle: JobHandle) -> Mapping[str, Any]:
    owner = handle.vendor_state.get("owner")
    return owner if isinstance(owner, Mapping) else {}


def _is_path(model: str) -> bool:
    from .models import MODEL_NAMES

    return model.strip() not in MODEL_NAMES


def _language(language: str | None, options: Mapping[str, Any]) -> str | None:
    """The request's language, checked against the engine (and model) that will be used."""
    try:
        if engine_of(options) == "pocketsphinx":
            return sphinx_language(language, other_model=bool(options.get("model_dir")))
        return whisper_language(language)[0]
    except ConfigError as exc:
        raise InvalidInputError(str(exc).partition(": ")[2], field=exc.field, provider=NAME,
                                operation="validate") from None


def _engine_config(options: Mapping[str, Any], language: str | None, *,
                   resolve: bool = False) -> Any:
    """The engine configuration of validated options; a bad one names its field.

    ``resolve`` also finds the Whisper model (and checks it fits the language
    and device), so that a missing model fails validation, not the job.
    """
    known = {name: options[name] for name in (spec.name for spec in OPTIONS) if name in options}
    try:
        code = None
        if engine_of(known) == "whisper":
            code = whisper_language(language)[1]
        config = config_from_options(known, language=code)
        if resolve and hasattr(config, "resolve"):
            config.resolve()
        return config
    except ConfigError as exc:
        raise InvalidInputError(
            f"option {exc.field!r}: {str(exc).partition(': ')[2] or exc}",
            field=exc.field, provider=NAME, operation="validate",
        ) from None


def _status(view: JobView) -> JobStatus:
    phase = view.phase
    if phase is JobPhase.QUEUED:
        return JobStatus(JobState.QUEUED, vendor_state="waiting-for-worker", progress=0.0)
    if phase is JobPhase.RUNNING:
        return JobStatus(JobState.RUNNING, vendor_state="decoding", progress=view.progress)
    if phase is JobPhase.SUCCEEDED:
        return JobStatus(JobState.SUCCEEDED, vendor_state="done", progress=1.0)
    if phase is JobPhase.CANCELLED:
        return JobStatus(JobState.CANCELLED, vendor_state="cancelled", progress=view.progress)
    return JobStatus(JobState.FAILED, vendor_state="failed", reason=view.reason,
                     detail=view.detail, progress=view.progress)


def to_transcript(recognition: Recognition, *, job_id: str, language: str | None) -> Transcript:
    """The core transcript of an engine result: one segment per engine segment.

    Word times and confidences are the engine's (Whisper: word probabilities;
    PocketSphinx: posterior probabilities); a segment's confidence is
    Whisper's (``None`` with PocketSphinx); no speaker (neither engine
    diarizes). ``language``: the one asked for, else the engine's (detected
    by a multilingual Whisper model, ``en`` for an English-only one).
    """
    segments = tuple(
        Segment(
            start=segment.start,
            end=segment.end,
            text=segment.text,
            speaker=None,
            confidence=segment.confidence,
            words=tuple(
                Word(start=w.start, end=w.end, text=w.text, confidence=w.confidence)
                for w in segment.words
            ),
        )
        for segment in recognition.segments
    )
    raw = {
        "engine": recognition.engine,
        "engine_version": _version(recognition.engine),
        "model": recognition.model,
        "duration": recognition.duration,
        "words": len(recognition.words),
        "windows": recognition.windows,
        "language_probability": recognition.language_probability,
    }
    fallback = BUNDLED_LANGUAGE if recognition.engine == "pocketsphinx" else None
    return Transcript(provider=NAME, job_id=job_id, text=recognition.text,
                      language=language or recognition.language or fallback,
                      duration=recognition.duration, segments=segments, raw=raw)


def _version(engine: str) -> str | None:
    distribution = {"whisper": "faster-whisper", "pocketsphinx": "pocketsphinx"}[engine]
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
