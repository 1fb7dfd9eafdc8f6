"""Keeping secrets out of logs, errors, reprs, CLI output and the job store.

Two complementary nets:

* by *name*: values under keys that look secret (``authorization``, ``token``,
  ``secret``, ``signature``, ``password``, ``private_key``...) are masked wherever
  they appear in a structure;
* by *value*: every :class:`Secret` registers its value, and any string that
  contains a registered value has it masked, whatever key it sits under (a
  token pasted into a URL or an error message is still caught).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "MASK",
    "Secret",
    "is_secret_key",
    "mask_url",
    "redact",
    "redact_text",
    "register_secret",
]

MASK = "***"

# Substrings of key names whose values are secret. Compared case-insensitively
# after removing "-" and "_", so "X-NHN-Authorization" and "app_certificate" match.
_SECRET_KEY_PARTS = (
    "authorization",
    "token",
    "secret",
    "password",
    "passphrase",
    "signature",
    "privatekey",
    "certificate",
    "apikey",
    "accesskey",
    "cookie",
    "credential",
)
# Keys that contain a secret-looking part but are not secret.
_NOT_SECRET_KEYS = frozenset({"tokenname", "builder_token_name", "tokentype", "maxtokens"})

# Secrets shorter than this are not matched by value: masking every "ab" in every
# log line would destroy the logs without protecting anything real.
_MIN_VALUE_LEN = 6

#: Up to this many registered values, one compiled regex finds them (fast, in C). Past
#: it (a resumed batch of signed URLs registers one per job) a regex alternation costs
#: per character what the values number, so values are looked up by length instead.
_REGEX_LIMIT = 256

_lock = threading.Lock()
_values: set[str] = set()
# Registered values by their length (the matcher past the regex limit).
_by_length: dict[int, set[str]] = {}
_pattern: re.Pattern[str] | None = None
_dirty = False  # values were added since the pattern was built (built on the next use)
# The shortest registered value: a shorter string cannot contain any.
_shortest = 0


def register_secret(value: str) -> None:
    """Remember ``value`` so that :func:`redact_text` masks it wherever it appears."""
    global _dirty, _shortest
    if len(value) < _MIN_VALUE_LEN:
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
        # Rebuilt lazily: registering many values (reading back a big batch) stays linear.
        _bucket(len(value)).add(value)
        _shortest = len(value) if not _shortest else min(_shortest, len(value))
        _dirty = True


def _bucket(length: int) -> set[str]:
    bucket = _by_length.get(length)
    if bucket is None:
        bucket = _by_length[length] = set()
    return bucket


def _current_pattern() -> re.Pattern[str] | None:
    """The regex of every value (longest first, so a value containing another is masked
    whole), rebuilt if values were added; ``None`` past :data:`_REGEX_LIMIT`."""
    global _pattern, _dirty
    if not _dirty:
        return _pattern
    with _lock:
        if _dirty:
            if len(_values) > _REGEX_LIMIT:
                _pattern = None
            else:
                ordered = sorted(_values, key=len, reverse=True)
                _pattern = re.compile("|".join(re.escape(v) for v in ordered))
            _dirty = False
        return _pattern


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a mapping key (header, field, option name) holds a secret value."""
    norm = key.lower().replace("-", "").replace("_", "")
    if norm in _NOT_SECRET_KEYS or key.lower() in _NOT_SECRET_KEYS:
        return False
    return any(part in norm for part in _SECRET_KEY_PARTS)


def redact_text(text: str) -> str:
    """Mask every registered secret value inside ``text``."""
    if not _values or len(text) < _shortest:
        return text
    pattern = _current_pattern()
    if pattern is not None:
        return pattern.sub(MASK, text)
    return _mask_by_length(text)


def _mask_by_length(text: str) -> str:
    """Mask registered values by looking up each window of each registered length
    (longest first); linear in the text, whatever the number of values."""
    with _lock:  # the sets themselves are not copied: a lookup in a growing set is safe
        buckets = sorted(_by_length.items(), key=lambda item: item[0], reverse=True)
    spans: list[tuple[int, int]] = []
    taken = bytearray(len(text) + 1)  # positions already inside a masked value
    for length, values in buckets:
        for start in range(len(text) - length + 1):
            if not taken[start] and text[start : start + length] in values:
                if any(taken[start : start + length]):
                    continue
                spans.append((start, start + length))
                taken[start : start + length] = b"\x01" * length
    if not spans:
        return text
    parts: list[str] = []
    position = 0
    for start, end in sorted(spans):
        parts.append(text[position:start])
        parts.append(MASK)
        position = end
    parts.append(text[position:])
    return "".join(parts)


_PLAIN = frozenset({int, float, bool, type(None)})


def redact(obj: Any) -> Any:
    """Return a copy of ``obj`` (mappings, sequences, strings) with secrets masked."""
    # Exact JSON types first: they are nearly all that is redacted (stored results, events,
    # log fields), and a type lookup is cheaper than the isinstance chain below.
    cls = type(obj)
    if cls is str:
        return redact_text(obj)
    if cls is dict:
        return _redact_mapping(obj)
    if cls is list:
        return [redact(v) for v in obj]
    if cls in _PLAIN:
        return obj
    if isinstance(obj, Secret):
        return MASK
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, bytes):
        return redact_text(obj.decode("utf-8", "replace"))
    if isinstance(obj, Mapping):
        return _redact_mapping(obj)
    if isinstance(obj, list | tuple | set | frozenset):
        return [redact(v) for v in obj]
    return obj


def _redact_mapping(obj: Mapping[Any, Any]) -> dict[Any, Any]:
    return {
        k: (
            MASK
            if isinstance(k, str) and is_secret_key(k) and v not in (None, "")
            else redact(v)
        )
        for k, v in obj.items()
    }


def mask_url(url: str) -> str:
    """Mask user info and secret-looking query parameters of a URL (for display)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _is_secret_query_key(k) else v) for k, v in pairs], safe="*")
    return redact_text(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def _is_secret_query_key(key: str) -> bool:
    lowered = key.lower()
    # Presigned URLs (S3, GCS, Azure SAS) carry their signature and credential in the query.
    return is_secret_key(key) or lowered in {"sig", "se", "x-amz-credential", "key"}


class Secret:
    """A string that must never be shown: its ``repr``/``str`` are masked.

    Call :meth:`reveal` at the one place that really sends it (a header, a
    signature). Creating a ``Secret`` registers its value for :func:`redact_text`.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        """The real value. Use only where it is sent or used for signing."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)
