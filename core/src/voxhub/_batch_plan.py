"""Turning a batch's requests into rows to record: checked, made absolute, keyed, named.

Every request goes through the orchestrator's ``prepare`` before anything is
recorded; a request that fails it becomes an item failed at stage ``check``
with the check's one-line error, and the others go on.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import attrs

from ._batch_model import BatchSettings
from ._batch_rows import NewJob, Plan, PlannedItem, new_batch_id
from ._records import dumps
from ._store_text import handle_text
from .callback_tokens import token_hash
from .errors import ConfigurationError, VoxhubError
from .idempotency import derive_idempotency_key
from .models import JobHandle, JobRequest, LocalFile, Media, RemoteUrl
from .provider import Capability
from .secrets_at_rest import Sealer, sealer_for
from .serialization import dump

if TYPE_CHECKING:
    from .callback_tokens import CallbackTokens
    from .plugins import PluginManager
    from .provider import ProviderContext
    from .store import Store

__all__ = [
    "Planned",
    "Planner",
    "absolute",
    "describe",
    "one_line",
    "output_names",
    "settings_with_defaults",
]


class _Ops(Protocol):
    @property
    def store(self) -> Store: ...

    @property
    def plugins(self) -> PluginManager: ...

    @property
    def callback_tokens(self) -> CallbackTokens: ...

    def prepare(self, request: JobRequest) -> JobRequest: ...

    def context(self, provider: str, profile: str | None = None) -> ProviderContext: ...


def one_line(error: BaseException) -> str:
    """An error as the one line a summary shows."""
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


def absolute(request: JobRequest) -> JobRequest:
    """The request with a local path made absolute and a URL normalized, so the stored
    batch means the same input whatever the working directory later is."""
    media = request.media
    if isinstance(media, LocalFile):
        # Absolute, not resolved: a symlinked directory stays the path the user gave.
        path = Path(os.path.abspath(media.path.expanduser()))  # noqa: PTH100
        return attrs.evolve(request, media=LocalFile(path))
    if isinstance(media, RemoteUrl):
        return attrs.evolve(
            request, media=RemoteUrl(_normalized_url(media.url), dict(media.auth_headers))
        )
    return request


def _normalized_url(url: str) -> str:
    """Scheme and host lower-cased, default port and fragment dropped (the rest is the
    server's business and kept as given)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    try:
        port = parts.port
    except ValueError:
        return url.strip()  # not a URL we can take apart: the provider's check says why
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def describe(media: Media | None) -> str:
    """An input as the batch shows it (a URL's secrets masked)."""
    return "-" if media is None else media.describe()


def _stem(media: Media | None) -> str:
    if isinstance(media, LocalFile):
        return media.path.stem or "result"
    if isinstance(media, RemoteUrl):
        name = posixpath.splitext(posixpath.basename(unquote(urlsplit(media.url).path)))[0]
        return name or "result"
    return "result"


def output_names(directory: str, fmt: str, media: Iterable[Media | None]) -> Iterable[str]:
    """One file per input in ``directory``, unique in the batch: ``a/x.wav`` and
    ``b/x.wav`` become ``x.srt`` and ``x-2.srt``."""
    used: set[str] = set()
    for item in media:
        stem = _stem(item).replace(os.sep, "_")
        name, n = f"{stem}.{fmt}", 1
        while name.lower() in used:
            n += 1
            name = f"{stem}-{n}.{fmt}"
        used.add(name.lower())
        yield f"{directory.rstrip(os.sep)}{os.sep}{name}"


@attrs.frozen
class Planned:
    """A batch to record, with the requests only this process has: those whose stored
    form cannot be sent (``live``: secret URL headers) and those that failed their
    checks (``checks``, with the error)."""

    plan: Plan
    live: dict[int, JobRequest]
    checks: dict[int, tuple[JobRequest, VoxhubError]]


class Planner:
    """Checks and keys a batch's requests (no network beyond authenticating)."""

    def __init__(self, ops: _Ops) -> None:
        self._ops = ops

    def plan(self, requests: Iterable[JobRequest], settings: BatchSettings) -> Planned:
        """The rows of a new batch, and what only this process knows of its inputs."""
        store = self._ops.store
        sealer = sealer_for(store.callback_key())
        medias: list[Media | None] = []
        items: list[PlannedItem] = []
        live: dict[int, JobRequest] = {}
        checks: dict[int, tuple[JobRequest, VoxhubError]] = {}
        for seq, request in enumerate(requests, start=1):
            medias.append(request.media)
            try:
                prepared = self._ops.prepare(absolute(request))
                job = self._job(prepared, sealer, settings.callback)
            except VoxhubError as exc:
                checks[seq] = (request, exc)
                items.append(PlannedItem(seq, describe(request.media), None, error=one_line(exc)))
                continue
            if isinstance(prepared.media, RemoteUrl) and prepared.media.auth_headers:
                live[seq] = prepared  # its headers are never stored: sent from memory
            items.append(PlannedItem(seq, describe(prepared.media), job))
        if settings.output_dir is not None and settings.format is not None:
            names = output_names(settings.output_dir, settings.format, medias)
            items = [
                item if item.job is None else attrs.evolve(item, output=name)
                for item, name in zip(items, names, strict=True)
            ]
        return Planned(Plan(new_batch_id(), settings, items), live, checks)

    def job(self, request: JobRequest, callback: bool | None) -> NewJob:
        """A new job row for a stored (already prepared) request: a new attempt."""
        return self._job(request, sealer_for(self._ops.store.callback_key()), callback)

    def _job(self, request: JobRequest, sealer: Sealer, callback: bool | None) -> NewJob:
        kind, profile = request.kind, request.profile
        assert kind is not None and profile is not None  # prepare() filled both in
        key = request.idempotency_key or derive_idempotency_key(request)
        if "#superseded:" in key:  # a stored attempt's key: the input's own key again
            key = key.partition("#superseded:")[0]
        request = attrs.evolve(request, idempotency_key=key)
        handle = JobHandle.new(request, self._ops.context(request.provider, profile).base_url)
        hashed = None
        if not request.callback_url and self._callbacks(request.provider, callback):
            hashed = token_hash(self._ops.callback_tokens.token(handle.job_id))
        return NewJob(
            job_id=handle.job_id,
            provider=handle.provider,
            profile=profile,
            kind=kind.value,
            key=key,
            request_text=dumps(dump(request, sealer=sealer)),
            handle_text=handle_text(handle),
            media=request.media.describe() if request.media is not None else None,
            token_hash=hashed,
        )

    def _callbacks(self, provider: str, requested: bool | None) -> bool:
        """Whether a job of ``provider`` takes callbacks, as ``CallbackTokens.arm`` decides
        (a callback-only provider always does, and then needs a receiver)."""
        caps = self._ops.plugins.provider(provider).info.capabilities
        public = self._ops.callback_tokens.public_url
        wants = (
            requested
            if requested is not None
            else (public is not None and Capability.CALLBACKS in caps)
        )
        if Capability.CALLBACK_ONLY in caps:
            wants = True
        if wants and public is None:
            raise ConfigurationError(
                "callbacks need the public URL of a callback receiver: run `voxhub callbacks "
                "serve --public-url URL` and set [voxhub] callback_url (or VOXHUB_CALLBACK_URL)",
                provider=provider,
                operation="submit",
            )
        return wants


def settings_with_defaults(settings: BatchSettings) -> BatchSettings:
    """An output directory made absolute, and ``txt`` when it is given without a format."""
    if settings.output_dir is None:
        return settings
    directory = os.path.abspath(Path(settings.output_dir).expanduser())  # noqa: PTH100
    return attrs.evolve(settings, output_dir=directory, format=settings.format or "txt")
