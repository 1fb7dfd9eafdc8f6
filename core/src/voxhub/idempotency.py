"""Idempotency keys: what makes two requests "the same input".

The submission owner (:mod:`voxhub.submission`) maps every input to one stored job
by its key: a request's own ``idempotency_key`` when it has one, else the key
derived here from what the input is.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .models import JobRequest, LocalFile
from .serialization import dump

__all__ = ["derive_idempotency_key"]


def derive_idempotency_key(request: JobRequest) -> str:
    """A stable key for "the same input": provider, profile, kind, media identity and options.

    A local file is identified by its absolute path, size and modification time,
    so an edited file is a new input.
    """
    media = request.media
    identity: Any
    if isinstance(media, LocalFile):
        try:
            stat = media.path.stat()
            identity = [str(media.path.resolve()), stat.st_size, stat.st_mtime_ns]
        except OSError:
            identity = [str(media.path)]
    else:
        identity = dump(media) if media is not None else None
    payload = [
        request.provider,
        request.profile,
        str(request.kind),
        identity,
        request.language,
        sorted(request.options.items(), key=lambda kv: kv[0]),
        sorted(request.metadata.items()),
    ]
    digest = hashlib.sha256(repr(payload).encode()).hexdigest()
    return f"auto-{digest[:32]}"
