"""The options NHN STT accepts, its media limits, and their local validation.

``biasing_list`` is NHN's ``biasingList``: words to prefer or correct, each a
pair *(correct form, form as recognised)* sent as ``"<correct>_<recognised>"``
(``"안전운행_안전 운행"`` turns a recognised "안전 운행" into "안전운행").
Accepted spellings of one item:

* ``"차단기_차단계"`` (the wire form; literal surrounding quotes, as in NHN's
  curl example, are removed);
* ``["차단기", "차단계"]`` (a pair);
* ``{"correct": "차단기", "recognized": "차단계"}`` (``recognised`` also accepted).

The recognised form may contain spaces; neither side may be empty or contain
an underscore (the underscore is the separator, so a second one is ambiguous).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from voxhub.errors import InvalidInputError
from voxhub.provider import OptionSpec

from .audio import describe_formats

__all__ = [
    "BIASING_LIST",
    "CURRENT_LIMITS",
    "KOREAN",
    "LEGACY_SYNC_LIMITS",
    "OPTIONS",
    "BiasingEntry",
    "Limits",
    "check_language",
    "parse_biasing_list",
]

MB = 1024 * 1024

#: The language NHN recognises (the docs: "recognition results are provided for Korean only").
KOREAN = "ko"
_KOREAN_TAGS = frozenset({"ko", "ko-kr", "ko_kr", "kor", "korean"})

#: Cap on biasing entries; NHN documents none, this only stops accidents (e.g. a whole lexicon).
MAX_BIASING_ITEMS = 1000
MAX_BIASING_ITEM_LENGTH = 200

BIASING_LIST = OptionSpec(
    "biasing_list",
    list,
    help=(
        "NHN biasingList: words to favour or correct, each 'correct_as-recognised' "
        "(e.g. '안전운행_안전 운행'), a [correct, recognised] pair, or "
        "{'correct': ..., 'recognized': ...}"
    ),
    max_items=MAX_BIASING_ITEMS,
)

#: Every option the provider declares (NHN has no other tuning knob in any version).
OPTIONS: tuple[OptionSpec, ...] = (BIASING_LIST,)


@attrs.frozen
class BiasingEntry:
    """One biasing pair: ``correct`` replaces ``recognised`` in the result."""

    correct: str
    recognised: str

    @property
    def wire(self) -> str:
        """The form NHN expects: ``"<correct>_<recognised>"``."""
        return f"{self.correct}_{self.recognised}"


def _bad(index: int, msg: str) -> InvalidInputError:
    return InvalidInputError(
        f"option 'biasing_list': item {index}: {msg}",
        field="biasing_list", provider="nhn", operation="validate",
    )


def _strip_quotes(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].strip()
    return text


def _entry(index: int, correct: Any, recognised: Any) -> BiasingEntry:
    if not isinstance(correct, str) or not isinstance(recognised, str):
        raise _bad(index, "both forms must be strings")
    correct, recognised = _strip_quotes(correct), _strip_quotes(recognised)
    if not correct:
        raise _bad(index, "the correct form is empty")
    if not recognised:
        raise _bad(index, "the recognised form is empty")
    for side, value in (("correct", correct), ("recognised", recognised)):
        if "_" in value:
            raise _bad(index, f"the {side} form {value!r} contains '_', NHN's separator")
        if "\n" in value or "\r" in value:
            raise _bad(index, f"the {side} form contains a line break")
    entry = BiasingEntry(correct, recognised)
    if len(entry.wire) > MAX_BIASING_ITEM_LENGTH:
        raise _bad(index, f"longer than {MAX_BIASING_ITEM_LENGTH} characters")
    return entry


def parse_biasing_list(value: Any) -> tuple[BiasingEntry, ...]:
    """Validate and normalize a ``biasing_list`` value (see the module docstring)."""
    if value is None:
        return ()
    if isinstance(value, str):  # a single item given on the command line
        value = [value]
    if not isinstance(value, Sequence):
        raise InvalidInputError("option 'biasing_list': expected a list", field="biasing_list",
                                provider="nhn", operation="validate")
    entries: list[BiasingEntry] = []
    for i, item in enumerate(value):
        if isinstance(item, BiasingEntry):
            entries.append(_entry(i, item.correct, item.recognised))
        elif isinstance(item, str):
            text = _strip_quotes(item)
            if text.count("_") != 1:
                raise _bad(i, f"{text!r} must be 'correct_as-recognised' with exactly one '_'")
            correct, recognised = text.split("_")
            entries.append(_entry(i, correct, recognised))
        elif isinstance(item, Sequence) and len(item) == 2:
            entries.append(_entry(i, item[0], item[1]))
        elif isinstance(item, Mapping):
            recognised = item.get("recognized", item.get("recognised"))
            extra = set(item) - {"correct", "recognized", "recognised"}
            if extra:
                raise _bad(i, f"unknown keys {sorted(extra)}")
            entries.append(_entry(i, item.get("correct"), recognised))
        else:
            raise _bad(i, "expected 'correct_recognised', a pair, or a mapping")
    return tuple(entries)


def check_language(language: str | None) -> str:
    """NHN recognises Korean only: ``None`` or a Korean tag is fine, anything else refused."""
    if language is None or language.strip().lower() in _KOREAN_TAGS:
        return KOREAN
    raise InvalidInputError(
        f"NHN Speech-to-Text recognises Korean only, not {language!r} (use 'ko' or leave it unset)",
        field="language", provider="nhn", operation="validate",
    )


@attrs.frozen
class Limits:
    """Media limits of one API (sizes in bytes, durations in seconds)."""

    max_bytes: int
    min_seconds: float = 0.36
    max_seconds: float = 3600.0

    def describe(self) -> str:
        return (f"at most {self.max_bytes // MB} MB, {self.min_seconds:g}-{self.max_seconds:g} s, "
                f"formats {describe_formats()}")


#: The limits since the 2026-07 change (host ``api-speech.nhncloudservice.com``), sync and async.
CURRENT_LIMITS = Limits(150 * MB, 0.36, 3600.0)

#: The sync limits before 2026-07, still assumed for the old host: its API Gateway caps
#: request bodies at 10 MB (result code 4131000), and sync audio was limited to 150 s.
LEGACY_SYNC_LIMITS = Limits(10 * MB, 0.36, 150.0)
