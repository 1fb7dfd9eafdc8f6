"""A small schema language for the emulators' request checks (sandbox side only).

The Agora emulators describe each documented request body as a tree of these nodes,
copied from the vendor's parameter tables (:mod:`.sandbox_stt_rules`,
:mod:`.sandbox_transcoder_rules`), and :func:`check` walks a received body against it.
It shares nothing with the client's validators on purpose: the sandbox must judge
what the client sends by the vendor's documents, not by the client's own reading.

``null`` counts as absent (the seed marks optional fields "nullable").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

__all__ = ["Arr", "Bool", "ImageUrl", "Int", "Node", "Obj", "Refusal", "Str", "check", "where"]


class Refusal(ValueError):
    """A request the vendor would refuse: ``path`` names the field, ``message`` says why."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def where(path: str, key: str | int) -> str:
    """``a.b`` / ``a[0]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


@attrs.frozen
class Int:
    """A JSON number without a fraction (not a boolean), within ``low..high``."""

    low: int | None = None
    high: int | None = None
    not_: tuple[int, ...] = ()


@attrs.frozen
class Str:
    """A non-empty JSON string; optionally one of ``choices``, matching ``pattern``."""

    choices: tuple[str, ...] = ()
    pattern: str | None = None
    max_len: int | None = None


@attrs.frozen
class Bool:
    """``true`` or ``false``."""


@attrs.frozen
class ImageUrl:
    """An http(s) URL whose path ends in ``jpg`` or ``png`` (seed ``001``)."""


@attrs.frozen
class Arr:
    """A JSON array of ``item`` with ``low..high`` entries."""

    item: Node
    low: int = 0
    high: int | None = None


@attrs.frozen
class Obj:
    """A JSON object: ``fields`` maps a key to ``(node, required)``; other keys are refused."""

    fields: Mapping[str, tuple[Node, bool]]


Node = Int | Str | Bool | ImageUrl | Arr | Obj


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean",
            type(None): "null"}.get(type(value), "number")


def check(node: Node, value: Any, path: str) -> None:
    """Raise :class:`Refusal` for the first way ``value`` breaks ``node``."""
    if isinstance(node, Int):
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                isinstance(value, float) and not value.is_integer()):
            raise Refusal(path, f"must be an integer, got {_type_name(value)}")
        number = int(value)
        if (node.low is not None and number < node.low) or (
                node.high is not None and number > node.high) or number in node.not_:
            low = "" if node.low is None else node.low
            span = f"{low}..{'' if node.high is None else node.high}"
            extra = f", not {', '.join(map(str, node.not_))}" if node.not_ else ""
            raise Refusal(path, f"{number} is out of range ({span}{extra})")
    elif isinstance(node, Str):
        if not isinstance(value, str) or not value:
            raise Refusal(path, f"must be a non-empty string, got {_type_name(value)}")
        if node.choices and value not in node.choices:
            raise Refusal(path, f"{value!r} is not one of {', '.join(node.choices)}")
        if node.pattern is not None and not re.fullmatch(node.pattern, value):
            raise Refusal(path, f"{value!r} has an invalid format")
        if node.max_len is not None and len(value) > node.max_len:
            raise Refusal(path, f"is longer than {node.max_len} characters")
    elif isinstance(node, Bool):
        if not isinstance(value, bool):
            raise Refusal(path, f"must be a boolean, got {_type_name(value)}")
    elif isinstance(node, ImageUrl):
        _image_url(value, path)
    elif isinstance(node, Arr):
        if not isinstance(value, list):
            raise Refusal(path, f"must be an array, got {_type_name(value)}")
        if len(value) < node.low or (node.high is not None and len(value) > node.high):
            raise Refusal(path, f"has {len(value)} items ({node.low}..{node.high or ''} allowed)")
        for index, item in enumerate(value):
            check(node.item, item, where(path, index))
    else:
        if not isinstance(value, dict):
            raise Refusal(path, f"must be an object, got {_type_name(value)}")
        for key in value:
            if key not in node.fields:
                raise Refusal(where(path, key), "is not a documented field")
        for key, (child, required) in node.fields.items():
            if value.get(key) is None:
                if required:
                    raise Refusal(where(path, key), "is required")
                continue
            check(child, value[key], where(path, key))


def _image_url(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise Refusal(path, f"must be an image URL string, got {_type_name(value)}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Refusal(path, "must be a valid http(s) URL")
    # "a valid image URL with a jpg or png suffix": .jpeg is neither.
    if not parts.path.lower().endswith(("jpg", "png")):
        raise Refusal(path, "must end in jpg or png")
