"""NHN STT wire formats (v2.0 = v2.1 bodies) as attrs classes, read and written with cattrs.

The same classes serve the provider (structuring answers) and the sandbox
(unstructuring them), so the two cannot drift apart. Reading is lenient where
the docs are inconsistent:

* ``timeslot[].startTime``/``endTime`` are typed *Long (ms)* but written as
  strings in the examples: both forms are accepted;
* v1-style scalars (``text`` as one string, ``confidence`` as one number) are
  wrapped in lists;
* unknown fields are ignored; missing optional fields take defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

__all__ = [
    "AsyncSubmitAnswer",
    "Header",
    "RetryAnswer",
    "RetryResult",
    "StatusAnswer",
    "SttResult",
    "SyncAnswer",
    "Timeslot",
    "converter",
    "structure",
    "unstructure",
]

T = TypeVar("T")


def _millis(value: Any) -> float | int:
    """A time in ms given as a number or a numeric string (the docs use both)."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            return float(text)
    raise ValueError(f"not a time in milliseconds: {value!r}")


@attrs.frozen
class Header:
    """The envelope every answer carries: success flag, result code, message."""

    is_successful: bool
    result_code: int
    result_message: str = ""

    @property
    def ok(self) -> bool:
        """Success means both the flag and code 0 (an inconsistent pair is a failure)."""
        return self.is_successful and self.result_code == 0


@attrs.frozen
class Timeslot:
    """Where the text of the same index was heard, in milliseconds (number or string)."""

    start_time: float | int | str
    end_time: float | int | str

    @property
    def start_seconds(self) -> float:
        return float(_millis(self.start_time)) / 1000.0

    @property
    def end_seconds(self) -> float:
        return float(_millis(self.end_time)) / 1000.0


@attrs.frozen
class SttResult:
    """A recognition result (sync answer, or ``result`` of a COMPLETED async task)."""

    input_length: float | None = None
    file_type: str | None = None
    text: list[str] = attrs.field(factory=list)
    timeslot: list[Timeslot] = attrs.field(factory=list)
    confidence: list[float] = attrs.field(factory=list)


@attrs.frozen
class SyncAnswer:
    """``POST .../stt``: the envelope plus ``result`` when successful."""

    header: Header
    result: SttResult | None = None


@attrs.frozen
class AsyncSubmitAnswer:
    """``POST .../stt/async``: ``taskId`` sits at top level, beside ``header``."""

    header: Header
    task_id: str | None = None


@attrs.frozen
class StatusAnswer:
    """``GET .../status``: ``taskStatus`` and, once COMPLETED, ``result``."""

    header: Header
    task_id: str | None = None
    task_status: str | None = None
    result: SttResult | None = None


@attrs.frozen
class RetryResult:
    """``result`` of a retry answer: the id to follow from now on."""

    task_id: str | None = None


@attrs.frozen
class RetryAnswer:
    """``GET .../retry``: unlike submit, the id is nested in ``result``."""

    header: Header
    result: RetryResult | None = None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]  # v1.0 style scalar


def _is(alias: Any) -> Callable[[Any], bool]:
    return lambda t: bool(t == alias)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(omit_if_default=False)
    conv.register_structure_hook(float | int | str, lambda v, _t: _millis(v))

    def _strs(value: Any, _t: Any) -> list[str]:
        return ["" if v is None else str(v) for v in _as_list(value)]

    def _floats(value: Any, _t: Any) -> list[float]:
        return [float(v) for v in _as_list(value) if v is not None and not isinstance(v, bool)]

    def _slots(value: Any, _t: Any) -> list[Timeslot]:
        return [conv.structure(v, Timeslot) for v in _as_list(value) if isinstance(v, dict)]

    def _code(value: Any, _t: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("resultCode is not a boolean")
        return int(value)

    def _flag(value: Any, _t: Any) -> bool:
        if isinstance(value, str):
            return value.strip().lower() == "true"
        return bool(value)

    # Generic aliases are not classes: dispatch them by equality.
    for alias, hook in ((list[str], _strs), (list[float], _floats), (list[Timeslot], _slots)):
        conv.register_structure_hook_func(_is(alias), hook)
    conv.register_structure_hook(int, _code)
    conv.register_structure_hook(bool, _flag)
    conv.register_structure_hook(str, lambda v, _t: "" if v is None else str(v))

    for cls in (Header, Timeslot, SttResult, SyncAnswer, AsyncSubmitAnswer, StatusAnswer,
                RetryResult, RetryAnswer):
        renames: dict[str, Any] = {
            a.name: override(rename=_camel(a.name)) for a in attrs.fields(cls)
        }
        conv.register_structure_hook(cls, make_dict_structure_fn(cls, conv, **renames))
        conv.register_unstructure_hook(cls, make_dict_unstructure_fn(cls, conv, **renames))
    return conv


#: The converter for NHN's JSON (camelCase on the wire, snake_case in Python).
converter = _make_converter()


def structure(data: Any, cls: type[T]) -> T:
    """Read ``data`` (parsed JSON) as ``cls``; raises ``cattrs`` errors on malformed input."""
    return converter.structure(data, cls)


def unstructure(obj: Any, *, drop_none: bool = True) -> Any:
    """``obj`` as JSON-ready data (camelCase keys); ``None`` fields dropped by default."""
    data = converter.unstructure(obj)
    return _drop_none(data) if drop_none else data


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value

