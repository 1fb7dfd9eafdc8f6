"""Path-aware field checks of the client-side validators.

Every check raises :class:`FieldError`, which names the offending field by its
path in Agora's JSON (``videoInputs[0].region.zOrder``) and says what is
allowed. The providers turn it into :class:`voxhub.errors.InvalidInputError`.
The sandboxes do *not* use these: they judge requests with their own rules
(:mod:`.sandbox_stt_rules`, :mod:`.sandbox_transcoder_rules`), so a client that
misreads the vendor documents is caught by a sandbox 400 in tests.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

__all__ = [
    "FieldError",
    "check_keys",
    "get_bool",
    "get_int",
    "get_list",
    "get_mapping",
    "get_str",
    "range_text",
]

T = TypeVar("T")

_MISSING = object()

#: uint32 upper bound: RTC uids are unsigned 32-bit integers.
UINT32_MAX = 0xFFFF_FFFF

#: ``instanceId`` / agent ``name``: 1..64 characters of ``[a-zA-Z0-9_-]``.
INSTANCE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Agora channel names: at most 64 bytes from this character set (Agora SDK docs).
_CHANNEL_RE = re.compile(r"^[A-Za-z0-9 !#$%&()+\-:;<=.>?@\[\]^_{|}~,]{1,64}$")

# Language codes such as en-US, zh-CN, cmn-Hans-CN (kept lenient on purpose: Agora adds languages).
_LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$")


class FieldError(ValueError):
    """A field of a request is missing, of the wrong type or outside its allowed range."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def range_text(low: float | None, high: float | None) -> str:
    """``"2..100"`` style text for an inclusive range (open ends shown as -inf/inf)."""
    lo = "-inf" if low is None else _num(low)
    hi = "inf" if high is None else _num(high)
    return f"{lo}..{hi}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def join(path: str, key: str | int) -> str:
    """The path of ``key`` inside ``path`` (``a.b`` or ``a[0]``)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def check_keys(data: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    """Refuse keys outside ``allowed``: a misspelt field must not be silently ignored."""
    for key in data:
        if key not in allowed:
            where = path or "request body"
            raise FieldError(
                join(path, key),
                f"unknown field in {where} (accepted: {', '.join(allowed)})",
            )


def _get(data: Mapping[str, Any], key: str, path: str, required: bool) -> Any:
    value = data.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise FieldError(join(path, key), "is required")
        return _MISSING
    return value


def get_int(
    data: Mapping[str, Any],
    key: str,
    path: str,
    *,
    low: int | None = None,
    high: int | None = None,
    required: bool = False,
) -> int | None:
    """An integer field within ``low..high`` (inclusive); ``None`` when absent and optional."""
    value = _get(data, key, path, required)
    if value is _MISSING:
        return None
    where = join(path, key)
    # bool is an int subclass; true as a width is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(where, f"must be an integer, got {type(value).__name__}")
    if isinstance(value, float):
        if not value.is_integer():
            raise FieldError(where, f"must be an integer, got {value}")
        value = int(value)
    check_range(value, where, low, high)
    return int(value)


def check_range(value: int, where: str, low: int | None, high: int | None) -> None:
    """Raise when ``value`` is outside ``low..high``, naming the field and the allowed range."""
    if (low is not None and value < low) or (high is not None and value > high):
        raise FieldError(where, f"{value} is out of range (allowed {range_text(low, high)})")


def get_str(
    data: Mapping[str, Any],
    key: str,
    path: str,
    *,
    required: bool = False,
    choices: Sequence[str] | None = None,
    max_length: int | None = None,
    allow_empty: bool = False,
) -> str | None:
    """A string field, optionally one of ``choices`` and at most ``max_length`` characters."""
    value = _get(data, key, path, required)
    if value is _MISSING:
        return None
    where = join(path, key)
    if not isinstance(value, str):
        raise FieldError(where, f"must be a string, got {type(value).__name__}")
    if not value and not allow_empty:
        raise FieldError(where, "must not be empty")
    if choices is not None and value not in choices:
        raise FieldError(where, f"{value!r} is not allowed (allowed: {', '.join(choices)})")
    if max_length is not None and len(value) > max_length:
        raise FieldError(where, f"is {len(value)} characters long (allowed at most {max_length})")
    return value


def get_bool(data: Mapping[str, Any], key: str, path: str) -> bool | None:
    """A boolean field (JSON true/false only)."""
    value = _get(data, key, path, False)
    if value is _MISSING:
        return None
    if not isinstance(value, bool):
        raise FieldError(join(path, key), f"must be true or false, got {type(value).__name__}")
    return value


def get_list(
    data: Mapping[str, Any],
    key: str,
    path: str,
    *,
    required: bool = False,
    min_items: int = 0,
    max_items: int | None = None,
) -> list[Any] | None:
    """A list field with ``min_items..max_items`` entries."""
    value = _get(data, key, path, required)
    if value is _MISSING:
        return None
    where = join(path, key)
    if not isinstance(value, list | tuple):
        raise FieldError(where, f"must be a list, got {type(value).__name__}")
    if len(value) < min_items or (max_items is not None and len(value) > max_items):
        allowed = (f"at most {max_items}" if min_items == 0 and max_items is not None
                   else range_text(min_items, max_items))
        raise FieldError(where, f"has {len(value)} items (allowed {allowed})")
    return list(value)


def get_mapping(
    data: Mapping[str, Any], key: str, path: str, *, required: bool = False
) -> Mapping[str, Any] | None:
    """An object field."""
    value = _get(data, key, path, required)
    if value is _MISSING:
        return None
    if not isinstance(value, Mapping):
        raise FieldError(join(path, key), f"must be an object, got {type(value).__name__}")
    return value


def as_mapping(value: Any, where: str) -> Mapping[str, Any]:
    """``value`` if it is an object (a list item, say), else a :class:`FieldError`."""
    if not isinstance(value, Mapping):
        raise FieldError(where, f"must be an object, got {type(value).__name__}")
    return value


def check_uid(value: Any, where: str, *, allow_zero: bool = False) -> str:
    """An RTC uid given as a decimal string (Agora's STT API types uids as strings)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise FieldError(where, f"must be a uid string, got {type(value).__name__}")
    text = str(value)
    if not text.isdigit():
        raise FieldError(where, f"{text!r} is not a numeric uid")
    low = 0 if allow_zero else 1
    check_range(int(text), where, low, UINT32_MAX)
    return text


def check_channel(value: Any, where: str) -> str:
    """An RTC channel name: 1..64 characters from Agora's channel character set."""
    if not isinstance(value, str) or not _CHANNEL_RE.match(value):
        raise FieldError(
            where,
            "must be 1..64 characters of letters, digits, space and !#$%&()+-:;<=.>?@[]^_{|}~,",
        )
    return value


def check_language(value: Any, where: str) -> str:
    """A language code such as ``en-US``."""
    if not isinstance(value, str) or not _LANGUAGE_RE.match(value):
        raise FieldError(where, f"{value!r} is not a language code such as 'en-US'")
    return value


def check_instance_id(value: Any, where: str) -> str:
    """``instanceId`` / agent name: at most 64 characters of ``[a-zA-Z0-9_-]``."""
    if not isinstance(value, str) or not INSTANCE_ID_RE.match(value):
        raise FieldError(where, "must be 1..64 characters of a-z, A-Z, 0-9, '_' and '-'")
    return value


def check_base64_salt(value: Any, where: str) -> str:
    """A salt: the base64 text of exactly 32 bytes (encryption modes 7 and 8)."""
    if not isinstance(value, str):
        raise FieldError(where, "must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise FieldError(where, "is not valid base64 (expected the base64 of 32 bytes)") from None
    if len(raw) != 32:
        raise FieldError(where, f"decodes to {len(raw)} bytes (allowed exactly 32)")
    return value


def check_image_url(value: Any, where: str) -> str:
    """An http(s) URL of a jpg or png image (seed ``001``: the URL has a jpg or png suffix).

    ``.jpeg`` is refused: it is a JPEG, but its suffix is neither ``jpg`` nor ``png``.
    """
    if not isinstance(value, str) or not value:
        raise FieldError(where, "must be an image URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FieldError(where, "must be an http(s) URL")
    if not parts.path.lower().endswith((".jpg", ".png")):
        raise FieldError(where, "must be a jpg or png image URL ending in .jpg or .png "
                         "(.jpeg is refused by Agora)")
    return value


def check_stream_url(value: Any, where: str) -> str:
    """A media stream URL (rtmp, rtmps, http, https, rtsp, srt)."""
    if not isinstance(value, str) or not value:
        raise FieldError(where, "must be a stream URL")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("rtmp", "rtmps", "http", "https", "rtsp", "srt") or not (
        parts.netloc
    ):
        raise FieldError(where, "must be an rtmp(s)://, http(s)://, rtsp:// or srt:// URL")
    return value
