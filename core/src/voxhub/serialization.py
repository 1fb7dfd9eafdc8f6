"""The cattrs converter for voxhub's own models (job store, JSON output, resume).

Provider plugins keep their own converters for vendor JSON; this one turns
requests, handles, statuses and results into plain JSON-able data and back.
Secrets never survive a round trip: a :class:`~voxhub.redact.Secret` is written
as ``"***"``, so nothing secret reaches the store.
"""

from __future__ import annotations

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
from .redact import MASK, Secret, redact

__all__ = ["converter", "dump", "has_masked_secrets", "load"]

T = TypeVar("T")

converter = cattrs.Converter(omit_if_default=False)

converter.register_unstructure_hook(datetime, lambda d: d.isoformat())
converter.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
converter.register_unstructure_hook(Path, str)
converter.register_structure_hook(Path, lambda v, _: Path(v))
converter.register_unstructure_hook(Secret, lambda _s: MASK)
converter.register_structure_hook(Secret, lambda v, _: Secret(v))


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
    # Options whose names say they are secret (at any depth) never reach the store.
    data["options"] = redact(request.options)
    return data


_plain_request = cattrs.gen.make_dict_unstructure_fn(JobRequest, converter)
converter.register_unstructure_hook(JobRequest, _dump_request)


def dump(obj: Any) -> Any:
    """Plain JSON-able data for any voxhub model (secrets masked).

    Results carry a ``type`` tag (``transcript``, ``moderation``, ``task``) so
    :func:`load` can rebuild them as :data:`~voxhub.models.Result`.
    """
    if isinstance(obj, Transcript | ModerationReport | TaskInfo):
        return converter.unstructure(obj, Result)
    return converter.unstructure(obj)


def load(data: Any, cls: type[T]) -> T:
    """The model ``cls`` from data written by :func:`dump`."""
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
    return isinstance(media, RemoteUrl) and any(
        v.reveal() == MASK for v in media.auth_headers.values()
    )
