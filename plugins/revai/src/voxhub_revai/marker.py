"""voxhub's idempotency marker in a Rev job's ``metadata``: how a lost submit answer is found.

Rev has no idempotency keys, but echoes the free-text ``metadata`` on every job
(512 characters at most). voxhub writes ``voxhub:<token>`` there, then, after one
space, the user's own text; ``recover`` lists jobs and matches the token.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "MAX_METADATA",
    "MAX_USER_METADATA",
    "METADATA_PREFIX",
    "key_token",
    "metadata_for",
    "token_of",
    "user_metadata",
]

#: Rev's limit on the free-text ``metadata`` echoed on the job.
MAX_METADATA = 512
#: voxhub's marker in ``metadata``: ``voxhub:<token>`` then, after one space, the user's text.
METADATA_PREFIX = "voxhub:"
#: Longest idempotency token written into ``metadata`` (longer keys are hashed to this size).
_TOKEN_MAX = 64
#: Room left for the user's own metadata text after ``voxhub:<token> ``.
MAX_USER_METADATA = MAX_METADATA - len(METADATA_PREFIX) - _TOKEN_MAX - 1
_TOKEN_RE = re.compile(r"[A-Za-z0-9._:\-]{1,64}")


def key_token(key: str) -> str:
    """The form of an idempotency key written into ``metadata``.

    Short keys of safe characters are written as they are; anything longer
    than 64 characters or containing other characters is replaced by ``h`` +
    63 hex digits of its SHA-256, so the marker always fits and never contains
    a space.
    """
    if _TOKEN_RE.fullmatch(key):
        return key
    return "h" + hashlib.sha256(key.encode()).hexdigest()[: _TOKEN_MAX - 1]


def metadata_for(key: str | None, user: str | None) -> str | None:
    """Rev ``metadata``: ``voxhub:<token>`` and, after one space, the user's own text."""
    if key is None:
        return user
    marker = METADATA_PREFIX + key_token(key)
    return f"{marker} {user}" if user else marker


def token_of(metadata: str | None) -> str | None:
    """The idempotency token of a job's ``metadata``, if voxhub wrote one."""
    if not metadata or not metadata.startswith(METADATA_PREFIX):
        return None
    return metadata[len(METADATA_PREFIX):].split(" ", 1)[0] or None


def user_metadata(metadata: str | None) -> str | None:
    """The user's part of a ``metadata`` written by :func:`metadata_for`."""
    if metadata is None or token_of(metadata) is None:
        return metadata
    _, _, rest = metadata.partition(" ")
    return rest or None
