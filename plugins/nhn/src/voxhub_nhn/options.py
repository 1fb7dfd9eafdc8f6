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

This module also declares the provider (:data:`INFO`, what ``voxhub providers``
lists) and holds the checks ``validate`` makes before anything is sent
(:func:`check_request`). It imports nothing heavy: listing providers loads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
from voxhub.plugin import (
    Capability,
    CredentialField,
    InvalidInputError,
    JobKind,
    JobRequest,
    LocalFile,
    OptionSpec,
    PollingHints,
    ProviderInfo,
    RemoteUrl,
    RetryPolicy,
    UnsupportedOptionError,
)

from .audio import describe_formats, probe

__all__ = [
    "API_VERSIONS",
    "BIASING_LIST",
    "CURRENT_LIMITS",
    "CURRENT_VERSION",
    "DEFAULT_BASE_URL",
    "INFO",
    "KOREAN",
    "LEGACY_HOST",
    "LEGACY_SYNC_LIMITS",
    "NAME",
    "NEW_HOST",
    "OPTIONS",
    "SYNC_READ_FACTOR",
    "SYNC_READ_SETTING",
    "BiasingEntry",
    "Limits",
    "check_language",
    "check_local_media",
    "check_request",
    "parse_biasing_list",
]

NAME = "nhn"
NEW_HOST = "api-speech.nhncloudservice.com"  # since the 2026-07 domain change
LEGACY_HOST = "speech.api.nhncloudservice.com"  # before it; still selectable
DEFAULT_BASE_URL = f"https://{NEW_HOST}"
#: v2.0 authenticates with ``Authorization: {secretKey}``, v2.1 with a User Access Key token.
API_VERSIONS = ("v2.0", "v2.1")
CURRENT_VERSION = "v2.1"

#: NHN writes its limits in "MB" without saying which. voxhub reads them as decimal
#: megabytes (10**6 bytes), the smaller and so the safe reading: 150 MB is 150,000,000
#: bytes, not 157,286,400 (150 MiB). Every size here, in errors and in the README is
#: in bytes or in these MB.
MB = 1_000_000

#: Synchronous recognition answers only when recognition ends, so the read timeout
#: grows with the audio: ``read + duration * factor``. 1.0 assumes recognition is no
#: slower than real time; the profile setting ``sync_read_factor`` changes it.
SYNC_READ_FACTOR = 1.0
SYNC_READ_SETTING = "sync_read_factor"

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
        field="biasing_list", provider=NAME, operation="validate",
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
                                provider=NAME, operation="validate")
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
        field="language", provider=NAME, operation="validate",
    )


@attrs.frozen
class Limits:
    """Media limits of one API (sizes in bytes, durations in seconds)."""

    max_bytes: int
    min_seconds: float = 0.36
    max_seconds: float = 3600.0

    def describe(self) -> str:
        return (f"at most {self.max_bytes:,} bytes ({self.max_bytes / MB:g} MB), "
                f"{self.min_seconds:g}-{self.max_seconds:g} s, formats {describe_formats()}")


#: The limits since the 2026-07 change (host ``api-speech.nhncloudservice.com``), sync and async.
CURRENT_LIMITS = Limits(150 * MB, 0.36, 3600.0)

#: The sync limits before 2026-07, still assumed for the old host: its API Gateway caps
#: request bodies at 10 MB (result code 4131000), and sync audio was limited to 150 s.
LEGACY_SYNC_LIMITS = Limits(10 * MB, 0.36, 150.0)


# --- checks made by ``validate`` (the core runs them before submit) ------------------------


def _invalid(message: str, field: str = "media", **details: Any) -> InvalidInputError:
    return InvalidInputError(message, field=field, provider=NAME, operation="validate",
                             details=details or None)


def check_request(request: JobRequest, limits: Limits) -> None:
    """What only NHN refuses: callbacks, languages, ``biasing_list`` and the media.

    Option names, types and the job kind are the core's checks (:data:`INFO`).
    ``limits`` are the sync API's for the profile's host (local files only).
    """
    if request.callback_url:
        raise UnsupportedOptionError("NHN Speech-to-Text has no callbacks; voxhub polls",
                                     field="callback_url", provider=NAME, operation="validate")
    check_language(request.language)
    parse_biasing_list(request.options.get("biasing_list"))
    media = request.media
    if isinstance(media, LocalFile):
        check_local_media(media, limits)
    elif isinstance(media, RemoteUrl):
        scheme = urlsplit(media.url).scheme.lower()
        if scheme not in ("http", "https"):
            raise _invalid(f"NHN downloads audioUrl over http(s), not {scheme!r}")
        if media.auth_headers:
            raise UnsupportedOptionError(
                "NHN downloads audioUrl itself and cannot send headers; use a URL that "
                "needs none (e.g. a presigned URL)",
                field="media", provider=NAME, operation="validate",
            )
    else:
        what = "no media" if media is None else type(media).__name__
        raise _invalid(f"NHN transcribes a local file or an http(s) URL, got {what}")


def check_local_media(media: LocalFile, limits: Limits) -> None:
    """NHN's limits for an upload, checked on this machine (``field="media"`` when broken)."""
    path = media.path

    def bad(msg: str) -> InvalidInputError:
        return _invalid(f"{path.name}: {msg}", limits=limits.describe())

    if not path.is_file():
        raise bad("no such file")
    size = path.stat().st_size
    if size == 0:
        raise bad("the file is empty")
    if size > limits.max_bytes:
        raise bad(f"{size:,} bytes is over NHN's limit of {limits.max_bytes:,} bytes "
                  f"({limits.max_bytes / MB:g} MB)")
    info = probe(path)
    if info.format is None:
        raise bad(f"not a format NHN accepts ({describe_formats()})")
    if info.duration is not None:
        if info.duration < limits.min_seconds:
            raise bad(f"{info.duration:.2f} s is shorter than NHN's minimum of "
                      f"{limits.min_seconds:g} s")
        if info.duration > limits.max_seconds:
            raise bad(f"{info.duration:.1f} s is longer than NHN's maximum of "
                      f"{limits.max_seconds:g} s")


# --- the provider's declaration -----------------------------------------------------------

#: What ``voxhub providers`` shows and the core validates against (no provider code loaded).
INFO = ProviderInfo(
    name=NAME,
    kinds=frozenset({JobKind.TRANSCRIPTION}),
    description="NHN Cloud Speech-to-Text v2.0/v2.1 (Korean): sync file upload, async URL",
    capabilities=frozenset({Capability.UPLOAD, Capability.URL, Capability.RETRY}),
    options=OPTIONS,
    credentials=(
        CredentialField("app_key", "Appkey from the console's URL & Appkey menu"),
        CredentialField("secret_key", "Secret key (API v2.0: 'Authorization' header)",
                        required=False),
        CredentialField("uak_token", "User Access Key token (API v2.1: "
                        "'X-NHN-Authorization: Bearer ...')", required=False),
        CredentialField("host", f"API host: {NEW_HOST} (default) or {LEGACY_HOST}",
                        secret=False, required=False),
        CredentialField("api_version", "v2.1 (token) or v2.0 (secret key); chosen from "
                        "the credentials when unset", secret=False, required=False),
        CredentialField(SYNC_READ_SETTING, "seconds of read timeout added per second of "
                        f"audio for synchronous recognition (default {SYNC_READ_FACTOR:g})",
                        secret=False, required=False),
    ),
    default_base_url=DEFAULT_BASE_URL,
    # Gateway 5xx and 429 are retried by the transport; submits (POST) and retry (a GET
    # that starts work) are sent with idempotent=False, so never resent ambiguously.
    retry=RetryPolicy(),
    polling=PollingHints(first_poll=2.0, typical_duration=60.0, max_interval=15.0),
    export_formats=frozenset(),
    docs_url="https://docs.nhncloud.com/en/AI%20Service/Speech%20to%20Text/en/api-guide-v2.0/",
)
