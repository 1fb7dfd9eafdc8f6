"""The cattrs converter for voxhub's own models (job store, JSON output, resume).

Provider plugins keep their own converters for vendor JSON; this one turns
requests, handles, statuses and results into plain JSON-able data and back.
Secrets never appear in clear: a :class:`~voxhub.redact.Secret`, secret options
and credentials in media URLs are written masked (``"***"``), or, for the job
store, sealed with the store's key (:mod:`voxhub.secrets_at_rest`).
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import cattrs
import cattrs.gen
from cattrs.strategies import configure_tagged_union

from .models import (
    JobRequest,
    LocalFile,
    Media,
    ModerationReport,
    RemoteUrl,
    Result,
    RtcChannel,
    StreamUrl,
    TaskInfo,
    Transcript,
)
from .redact import MASK, Secret, is_secret_key, mask_url, redact, redact_text
from .secrets_at_rest import Sealer, is_sealed, unseal

__all__ = ["converter", "dump", "has_masked_secrets", "load"]

T = TypeVar("T")

converter = cattrs.Converter(omit_if_default=False)

converter.register_unstructure_hook(datetime, lambda d: d.isoformat())
converter.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
converter.register_unstructure_hook(Path, str)
converter.register_structure_hook(Path, lambda v, _: Path(v))
# The sealer of the store being written to, while :func:`dump` runs for it (else None).
_sealing: contextvars.ContextVar[Sealer | None] = contextvars.ContextVar(
    "voxhub_sealing", default=None
)


def _dump_secret(secret: Secret) -> str:
    sealer = _sealing.get()
    return MASK if sealer is None else sealer.seal(secret.reveal())


def _load_secret(value: Any, _: Any) -> Secret:
    if is_sealed(value):
        value = unseal(value)
        return Secret(MASK if value is None else value)
    return Secret(value)


converter.register_unstructure_hook(Secret, _dump_secret)
converter.register_structure_hook(Secret, _load_secret)


def _time_value(value: Any, _: Any) -> datetime | float | None:
    if value is None or isinstance(value, int | float):
        return value
    return datetime.fromisoformat(value)


# Union fields of the moderation models: a wall-clock datetime or media seconds.
converter.register_structure_hook(datetime | float | None, _time_value)

configure_tagged_union(
    Media,
    converter,
    tag_name="type",
    tag_generator=lambda cls: {
        LocalFile: "file",
        RemoteUrl: "url",
        RtcChannel: "rtc",
        StreamUrl: "stream",
    }[cls],
)
configure_tagged_union(
    Result,
    converter,
    tag_name="type",
    tag_generator=lambda cls: {
        Transcript: "transcript",
        ModerationReport: "moderation",
        TaskInfo: "task",
    }[cls],
)


def _optional_media(value: Any, _: Any) -> Media | None:
    if value is None:
        return None
    media: Media = converter.structure(value, Media)  # type: ignore[arg-type]
    return media


converter.register_structure_hook(Media | None, _optional_media)
converter.register_unstructure_hook(
    Media | None,
    lambda v: None if v is None else converter.unstructure(v, Media),
)


def _dump_request(request: JobRequest) -> dict[str, Any]:
    data: dict[str, Any] = _plain_request(request)
    sealer = _sealing.get()
    media = data.get("media")
    if isinstance(media, dict) and isinstance(media.get("url"), str):
        url = media["url"]
        shown = mask_url(url)
        if shown != url:
            # Credentials in the URL (user info, a token or signature in the query).
            media["url"] = shown
            if sealer is not None:
                media["sealed_url"] = sealer.seal(url)
    # Secret options (by name, or holding a value registered as secret, e.g. an option the
    # provider declares secret) are sealed for the store and masked anywhere else.
    data["options"] = (
        redact(request.options) if sealer is None else _seal_options(request.options, sealer)
    )
    return data


def _seal_options(value: Any, sealer: Sealer) -> Any:
    if isinstance(value, Mapping):
        return {
            k: (
                sealer.seal(json.dumps(v))
                if isinstance(k, str) and is_secret_key(k) and v not in (None, "")
                else _seal_options(v, sealer)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_seal_options(v, sealer) for v in value]
    if isinstance(value, str) and redact_text(value) != value:
        return sealer.seal(json.dumps(value))
    return value


def _open_options(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _open_options(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_open_options(v) for v in value]
    if is_sealed(value):
        text = unseal(value)
        if text is None:  # not this process's key: the value must be supplied again
            return MASK
        opened = json.loads(text)
        _register(opened)
        return opened
    return value


def _register(value: Any) -> None:
    if isinstance(value, str):
        Secret(value)  # registers it: masked by value in logs from now on
    elif isinstance(value, dict):
        for v in value.values():
            _register(v)
    elif isinstance(value, list):
        for v in value:
            _register(v)


def _load_request(data: Any, _: Any) -> JobRequest:
    if isinstance(data, dict):
        data = dict(data)
        media = data.get("media")
        if isinstance(media, dict) and "sealed_url" in media:
            media = dict(media)
            url = unseal(str(media.pop("sealed_url")))
            if url is not None:
                Secret(url)
                media["url"] = url
            data["media"] = media
        if isinstance(data.get("options"), dict):
            data["options"] = _open_options(data["options"])
    request: JobRequest = _plain_load_request(data, JobRequest)
    return request


_plain_request = cattrs.gen.make_dict_unstructure_fn(JobRequest, converter)
_plain_load_request = cattrs.gen.make_dict_structure_fn(JobRequest, converter)
converter.register_unstructure_hook(JobRequest, _dump_request)
converter.register_structure_hook(JobRequest, _load_request)


def dump(obj: Any, *, sealer: Sealer | None = None) -> Any:
    """Plain JSON-able data for any voxhub model (secrets masked).

    With ``sealer`` (the job store's, see :mod:`voxhub.secrets_at_rest`), secrets
    are sealed instead of masked: credentials in a media URL, auth headers and
    secret options, so that :func:`load` in a process holding the store's key
    gets them back. Results carry a ``type`` tag (``transcript``, ``moderation``,
    ``task``) so :func:`load` can rebuild them as :data:`~voxhub.models.Result`.
    """
    token = _sealing.set(sealer)
    try:
        if isinstance(obj, Transcript | ModerationReport | TaskInfo):
            return converter.unstructure(obj, Result)
        return converter.unstructure(obj)
    finally:
        _sealing.reset(token)


def load(data: Any, cls: type[T]) -> T:
    """The model ``cls`` from data written by :func:`dump` (sealed secrets opened when the
    store's key is known in this process, else left masked)."""
    return converter.structure(data, cls)


def _contains_mask(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_contains_mask(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_mask(v) for v in value)
    return bool(value == MASK)


def has_masked_secrets(request: JobRequest) -> bool:
    """Whether a request loaded from the store lost secret values (they must be re-supplied)."""
    media = request.media
    if _contains_mask(request.options):
        return True
    if isinstance(media, RemoteUrl | StreamUrl) and MASK in media.url:
        return True  # its credentials were sealed with a key this process does not hold
    return isinstance(media, RemoteUrl) and any(
        v.reveal() == MASK for v in media.auth_headers.values()
    )
