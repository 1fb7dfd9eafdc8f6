"""Rev.ai job options and the provider's declaration: specs, cross-field rules, the request body.

:data:`INFO` declares the ``revai`` provider (kinds, capabilities, credentials,
retry and polling hints, and every option of Rev's ``POST /jobs`` options object
as an :class:`~voxhub.plugin.OptionSpec`), so ``voxhub providers revai`` lists it
without importing the provider. :func:`check` adds the rules that involve several
fields (human-only options, mutual exclusions, EU and language restrictions);
:func:`build_options` turns a checked request into Rev's options object. The media
location is not an option: it is the request's media (``RemoteUrl`` →
``source_config``, ``LocalFile`` → multipart upload).

This module stays light: it imports nothing but :mod:`voxhub.plugin`'s declarations.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any

from voxhub.plugin import (
    Capability,
    CredentialField,
    InvalidInputError,
    JobKind,
    JobRequest,
    Limit,
    LocalFile,
    OptionSpec,
    PollingHints,
    ProviderInfo,
    RemoteUrl,
    RetryPolicy,
    UnsupportedOptionError,
)

from .marker import (
    MAX_METADATA,
    MAX_USER_METADATA,
    METADATA_PREFIX,
    key_token,
    metadata_for,
    token_of,
    user_metadata,
)

__all__ = [
    "EU_URL",
    "HUMAN_ONLY",
    "INFO",
    "MAX_METADATA",
    "MAX_UPLOAD_BYTES",
    "METADATA_PREFIX",
    "NOT_FOR_HUMAN",
    "OPTIONS",
    "SUBMISSIONS",
    "UPLOADS",
    "US_URL",
    "build_options",
    "check",
    "key_token",
    "metadata_for",
    "token_of",
    "user_metadata",
]

US_URL = "https://api.rev.ai"
EU_URL = "https://ec1.api.rev.ai"

#: Largest multipart upload Rev accepts (its documented "2 GB"; read as 10^9 bytes to be safe).
MAX_UPLOAD_BYTES = 2_000_000_000
#: Rev's published submission limit ("Rate limits", per user): 10,000 jobs per 10 minutes.
#: The core waits for it before each ``submit``, shared by every worker of the store that
#: uses the same token; up to 100 at once, then evenly spaced (~61 ms apart).
SUBMISSIONS = Limit("submit", 10_000, per=600.0, burst=100)
#: Rev's concurrent multipart uploads per user: its docs say 5 (its 2021 spec said 10):
#: the lower one. Held by ``RevApi.create_job`` around each file upload.
UPLOADS = Limit("uploads", 5)

TRANSCRIBERS = ("machine", "low_cost", "fusion", "human", "machine_v2", "machine_v3")
TRANSLATION_LANGUAGES = (
    "en", "en-us", "en-gb", "ar", "pt", "pt-br", "pt-pt", "fr", "fr-ca", "es", "es-es", "es-la",
    "it", "ja", "ko", "de", "ru",
)
CALLBACK_STYLES = ("notification_config", "callback_url")

#: Options valid only with ``transcriber=human``.
HUMAN_ONLY = frozenset({"rush", "test_mode", "segments_to_transcribe", "speaker_names"})
#: Options Rev refuses for human transcription.
NOT_FOR_HUMAN = frozenset({
    "remove_disfluencies", "remove_atmospherics", "speaker_channels_count", "speakers_count",
    "diarization_type", "summarization_config", "translation_config",
})
#: Options limited to some languages (ISO 639-1 base codes).
LANGUAGE_LIMITS: Mapping[str, frozenset[str]] = {
    "speaker_channels_count": frozenset({"en", "es", "fr"}),
    "speakers_count": frozenset({"en", "es", "fr"}),
    "skip_postprocessing": frozenset({"en", "es"}),
    "forced_alignment": frozenset({"en", "fr", "it", "de", "es"}),
}

OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("transcriber", str, "model: machine (Reverb), low_cost (Reverb Turbo), fusion, "
               "human; machine_v2/machine_v3 where enabled", choices=TRANSCRIBERS),
    OptionSpec("language", str, "ISO 639-1 code (default en); same as the job's language",
               max_length=16),
    OptionSpec("verbatim", bool, "every syllable incl. disfluencies; machine default is true, "
               "false is sent explicitly"),
    OptionSpec("rush", bool, "human only: priority turnaround at extra cost"),
    OptionSpec("test_mode", bool, "human only: mocked job, nothing transcribed, no charge"),
    OptionSpec("segments_to_transcribe", list, "human only: [{start, end}] seconds, each >= 60 s, "
               "not overlapping", item_type=dict),
    OptionSpec("speaker_names", list, "human only: display names (strings or "
               "{display_name}), at most 100, 50 characters each", max_items=100),
    OptionSpec("skip_diarization", bool, "one speaker for the whole transcript"),
    OptionSpec("skip_punctuation", bool, "no punctuation elements in the JSON transcript"),
    OptionSpec("skip_postprocessing", bool, "no ITN, casing or punctuation (en, es)"),
    OptionSpec("remove_disfluencies", bool, "drop um/uh (not for human)"),
    OptionSpec("remove_atmospherics", bool, "drop <laugh>-style tags (not for human)"),
    OptionSpec("filter_profanity", bool, "mask profanities, keeping first and last letter (f**k)"),
    OptionSpec("speaker_channels_count", int, "transcribe each channel separately (1-8; en, es, "
               "fr; not for human)", min=1, max=8),
    OptionSpec("speakers_count", int, "hint: number of distinct speakers (en, es, fr; not for "
               "human)", min=1),
    OptionSpec("diarization_type", str, "standard or premium (not for human or low_cost)",
               choices=("standard", "premium")),
    OptionSpec("custom_vocabularies", list, "1-50 vocabularies [{phrases: [...]}] or a plain "
               "list of phrases; 6000 phrases at most", max_items=50),
    OptionSpec("custom_vocabulary_id", str, "a prebuilt custom vocabulary (not in the EU)",
               max_length=256),
    OptionSpec("strict_custom_vocabulary", bool, "use vocabulary phrases only as whole phrases"),
    OptionSpec("summarization_config", dict, "{model: standard|premium, type: "
               "paragraph|bullets, prompt} (type and prompt exclusive; not for human)"),
    OptionSpec("translation_config", dict, "{target_languages: [{language, model?}], model?} "
               "(not for human)"),
    OptionSpec("forced_alignment", bool, "more precise word timings (en, fr, it, de, es)"),
    OptionSpec("delete_after_seconds", int, "delete the job this long after it completes",
               min=0, max=2_592_000),
    OptionSpec("metadata", str, f"your free text echoed on the job (voxhub prefixes its "
               f"recovery marker; {MAX_USER_METADATA} characters left)",
               max_length=MAX_USER_METADATA),
    OptionSpec("notification_config", dict, "webhook {url}; usually set from the job's "
               "callback URL (its Authorization header comes from the profile's "
               "webhook_authorization, never from job options, which are stored)"),
    OptionSpec("callback_url", str, "deprecated webhook URL form", max_length=2048),
    OptionSpec("callback_style", str, "how the job's callback URL is sent: "
               "notification_config (default) or the legacy callback_url",
               choices=CALLBACK_STYLES, default="notification_config"),
)

INFO = ProviderInfo(
    name="revai",
    kinds=frozenset({JobKind.TRANSCRIPTION}),
    description="Rev.ai asynchronous speech-to-text (machine and human transcription)",
    capabilities=frozenset({
        Capability.UPLOAD, Capability.URL, Capability.CALLBACKS, Capability.CAPTIONS,
        Capability.DELETE, Capability.LIST, Capability.RECOVER, Capability.DIARIZATION,
        Capability.WORD_TIMINGS,
    }),
    options=OPTIONS,
    credentials=(
        CredentialField("token", "Rev.ai access token (Settings → Access token)"),
        CredentialField("region", "deployment: us (default) or eu (a separate account)",
                        secret=False, required=False),
        CredentialField("webhook_authorization", "Authorization header value Rev.ai sends "
                        "with webhooks (notification_config.auth_headers)", required=False),
    ),
    default_base_url=US_URL,
    retry=RetryPolicy(max_attempts=5, retry_statuses=frozenset({502, 503, 504}),
                      rate_limit_statuses=frozenset({429})),
    polling=PollingHints(first_poll=2.0, typical_duration=30.0, max_interval=15.0),
    limits=(SUBMISSIONS, UPLOADS),
    export_formats=frozenset({"srt", "vtt"}),
    docs_url="https://docs.rev.ai/api/asynchronous/reference/",
)
"""The ``revai`` provider as voxhub lists it."""


def _bad(message: str, field: str, *, unsupported: bool = False) -> InvalidInputError:
    cls = UnsupportedOptionError if unsupported else InvalidInputError
    return cls(message, field=field, provider="revai", operation="validate")


def _base_language(code: str) -> str:
    return code.strip().lower().replace("_", "-").split("-", 1)[0]


def effective_language(request: JobRequest) -> str:
    """The job's language: ``request.language``, else the ``language`` option, else ``en``."""
    return str(request.language or request.options.get("language") or "en")


def check(request: JobRequest, *, region: str, webhook_authorization: bool = False) -> None:
    """Cross-field rules Rev enforces with a 400/404, checked before any request.

    Raises :class:`InvalidInputError` (or :class:`UnsupportedOptionError`) whose
    ``field`` names the offending option.
    """
    opts = request.options
    _check_media(request)
    lang_opt = opts.get("language")
    if request.language and lang_opt and request.language.lower() != str(lang_opt).lower():
        raise _bad(f"language {request.language!r} and option language={lang_opt!r} differ; "
                   "give one", "language")
    language = effective_language(request)
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?", language):
        raise _bad(f"language {language!r} is not an ISO 639-1 code such as 'en' or 'es'",
                   "language")
    base = _base_language(language)
    transcriber = opts.get("transcriber", "machine")
    human = transcriber == "human"

    for name in sorted(HUMAN_ONLY & opts.keys()):
        if not human:
            raise _bad(f"option {name!r} is only valid with transcriber=human "
                       f"(got transcriber={transcriber})", name, unsupported=True)
    if human:
        for name in sorted(NOT_FOR_HUMAN & opts.keys()):
            raise _bad(f"option {name!r} is not available with transcriber=human", name,
                       unsupported=True)
    if transcriber == "low_cost" and "diarization_type" in opts:
        raise _bad("diarization_type is not available with transcriber=low_cost",
                   "diarization_type", unsupported=True)
    for name, langs in LANGUAGE_LIMITS.items():
        if name in opts and base not in langs:
            raise _bad(f"option {name!r} is only available for languages "
                       f"{', '.join(sorted(langs))} (job language is {language})", name,
                       unsupported=True)

    if region == "eu":
        if human:
            raise _bad("human transcription is not offered in Rev.ai's EU deployment",
                       "transcriber", unsupported=True)
        if "custom_vocabulary_id" in opts:
            raise _bad("custom_vocabulary_id is not supported in Rev.ai's EU deployment; send "
                       "the phrases with custom_vocabularies instead", "custom_vocabulary_id",
                       unsupported=True)

    if "custom_vocabularies" in opts and "custom_vocabulary_id" in opts:
        raise _bad("custom_vocabularies and custom_vocabulary_id are mutually exclusive",
                   "custom_vocabulary_id")
    if "custom_vocabularies" in opts:
        _vocabularies(opts["custom_vocabularies"])
    if "speaker_names" in opts:
        _speaker_names(opts["speaker_names"])
    if "segments_to_transcribe" in opts:
        _segments(opts["segments_to_transcribe"])
    if "summarization_config" in opts:
        _summarization(opts["summarization_config"])
    if "translation_config" in opts:
        _translation(opts["translation_config"])
    _check_callbacks(request, webhook_authorization)


def _check_media(request: JobRequest) -> None:
    media = request.media
    if media is None:
        raise _bad("a Rev.ai job needs media: a local file or a URL", "media")
    if isinstance(media, LocalFile):
        path = media.path  # the core already checked that it is a file
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise _bad(
                f"{path.name} is {size / 1e9:.2f} GB; Rev.ai accepts uploads up to "
                f"{MAX_UPLOAD_BYTES / 1e9:.0f} GB. Put the file somewhere Rev.ai can download it "
                "and submit the URL instead (RemoteUrl, up to 5 TB)", "media")
        return
    if isinstance(media, RemoteUrl):
        if not re.match(r"(?i)https?://", media.url):
            raise _bad("the media URL must be http(s) and a direct download link", "media")
        extra = [k for k in media.auth_headers if k.lower() != "authorization"]
        if extra:
            raise _bad("Rev.ai sends only an Authorization header when downloading media "
                       f"(got {', '.join(sorted(extra))})", "media")
        return
    raise _bad(f"Rev.ai transcribes files and URLs, not {type(media).__name__}", "media",
               unsupported=True)


def _check_callbacks(request: JobRequest, webhook_authorization: bool) -> None:
    opts = request.options
    if "notification_config" in opts and "callback_url" in opts:
        raise _bad("notification_config and callback_url are mutually exclusive",
                   "callback_url")
    if request.callback_url and ("notification_config" in opts or "callback_url" in opts):
        raise _bad("the job already has a callback URL; do not also set "
                   "notification_config/callback_url options", "callback_url")
    if "notification_config" in opts:
        cfg = opts["notification_config"]
        if not isinstance(cfg.get("url"), str) or not cfg["url"]:
            raise _bad("notification_config needs a url", "notification_config")
        if "auth_headers" in cfg:
            # Job options are stored with the job: a secret header does not belong there.
            raise _bad("set the webhook's Authorization value in the profile setting "
                       "webhook_authorization (kept secret), not in notification_config",
                       "notification_config")
        unknown = set(cfg) - {"url"}
        if unknown:
            raise _bad(f"notification_config accepts url only, not {', '.join(sorted(unknown))}",
                       "notification_config")
    legacy = "callback_url" in opts or (
        opts.get("callback_style") == "callback_url" and request.callback_url)
    if webhook_authorization and legacy:
        raise _bad("the legacy callback_url form cannot carry the profile's "
                   "webhook_authorization header; use notification_config (the default)",
                   "callback_style")
    for url in (request.callback_url, opts.get("callback_url")):
        if url and not re.match(r"(?i)https?://", url):
            raise _bad("the callback URL must be http(s)", "callback_url")


def _vocabularies(value: list[Any]) -> None:
    field = "custom_vocabularies"
    vocabularies = _normalize_vocabularies(value)
    if not vocabularies:
        raise _bad("give at least one vocabulary", field)
    total = 0
    for i, vocab in enumerate(vocabularies):
        phrases = vocab.get("phrases")
        if not isinstance(phrases, list) or not phrases:
            raise _bad(f"vocabulary {i} needs a non-empty 'phrases' list", field)
        for phrase in phrases:
            if not isinstance(phrase, str) or not phrase.strip():
                raise _bad(f"vocabulary {i}: phrases must be non-empty strings", field)
            words = phrase.split()
            if len(words) > 12:
                raise _bad(f"phrase {phrase!r} has more than 12 words", field)
            if any(len(w) > 34 for w in words):
                raise _bad(f"phrase {phrase!r} has a word longer than 34 characters", field)
            if not any(c.isalpha() for c in phrase):
                raise _bad(f"phrase {phrase!r} needs at least one letter", field)
            if any(c.isdigit() for c in phrase):
                raise _bad(f"phrase {phrase!r} contains digits (spell numbers out)", field)
        total += len(phrases)
    if total > 6000:
        raise _bad(f"{total} phrases given; Rev.ai accepts at most 6000 per job", field)


def _normalize_vocabularies(value: list[Any]) -> list[dict[str, Any]]:
    # A plain list of phrases (handy on the command line) is one vocabulary.
    if value and all(isinstance(v, str) for v in value):
        return [{"phrases": list(value)}]
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or set(item) - {"phrases"}:
            raise _bad(f"vocabulary {i} must be {{'phrases': [...]}}", "custom_vocabularies")
        out.append(dict(item))
    return out


def _speaker_names(value: list[Any]) -> None:
    for i, item in enumerate(_normalize_speaker_names(value)):
        name = item.get("display_name")
        if not isinstance(name, str) or not name.strip():
            raise _bad(f"speaker name {i} is empty", "speaker_names")
        if len(name) > 50:
            raise _bad(f"speaker name {i} is longer than 50 characters", "speaker_names")


def _normalize_speaker_names(value: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            out.append({"display_name": item})
        elif isinstance(item, Mapping) and set(item) <= {"display_name"}:
            out.append(dict(item))
        else:
            raise _bad(f"speaker name {i} must be a string or {{'display_name': ...}}",
                       "speaker_names")
    return out


def _segments(value: list[dict[str, Any]]) -> None:
    field = "segments_to_transcribe"
    spans: list[tuple[float, float]] = []
    for i, seg in enumerate(value):
        start, end = seg.get("start"), seg.get("end")
        if set(seg) - {"start", "end"} or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in (start, end)
        ):
            raise _bad(f"segment {i} must be {{'start': seconds, 'end': seconds}}", field)
        assert isinstance(start, int | float) and isinstance(end, int | float)
        if start < 0 or end - start < 60:
            raise _bad(f"segment {i} must start at >= 0 and last at least 60 seconds", field)
        spans.append((float(start), float(end)))
    spans.sort()
    for (_, end_a), (start_b, _) in itertools.pairwise(spans):
        if start_b < end_a:
            raise _bad("segments_to_transcribe must not overlap", field)


def _summarization(cfg: Mapping[str, Any]) -> None:
    field = "summarization_config"
    unknown = set(cfg) - {"model", "type", "prompt"}
    if unknown:
        raise _bad(f"unknown keys {', '.join(sorted(unknown))} (accepted: model, type, prompt)",
                   field)
    if cfg.get("model") not in (None, "standard", "premium"):
        raise _bad("model must be standard or premium", field)
    if cfg.get("type") not in (None, "paragraph", "bullets"):
        raise _bad("type must be paragraph or bullets", field)
    if cfg.get("type") is not None and cfg.get("prompt") is not None:
        raise _bad("type and prompt are mutually exclusive", field)


def _translation(cfg: Mapping[str, Any]) -> None:
    field = "translation_config"
    unknown = set(cfg) - {"target_languages", "model"}
    if unknown:
        raise _bad(f"unknown keys {', '.join(sorted(unknown))}", field)
    if cfg.get("model") not in (None, "standard", "premium"):
        raise _bad("model must be standard or premium", field)
    targets = cfg.get("target_languages")
    if not isinstance(targets, list) or not targets:
        raise _bad("target_languages must be a non-empty list", field)
    for target in _normalize_targets(targets):
        lang = target.get("language")
        if lang not in TRANSLATION_LANGUAGES:
            raise _bad(f"cannot translate to {lang!r} (accepted: "
                       f"{', '.join(TRANSLATION_LANGUAGES)})", field)
        if target.get("model") not in (None, "standard", "premium"):
            raise _bad("a target's model must be standard or premium", field)


def _normalize_targets(targets: list[Any]) -> list[dict[str, Any]]:
    return [{"language": t} if isinstance(t, str) else dict(t) for t in targets]


# --- the options object ----------------------------------------------------------------


def build_options(
    request: JobRequest,
    *,
    idempotency_key: str | None,
    callback_url: str | None = None,
    webhook_authorization: str | None = None,
) -> dict[str, Any]:
    """Rev's options object for a checked request (no media location).

    Every option the caller set is sent, including explicit ``false`` values
    (Rev's machine default for ``verbatim`` is true, so false matters).
    ``webhook_authorization`` (the profile's secret) becomes the webhook's
    ``Authorization`` header in ``notification_config``.
    """
    opts = dict(request.options)
    style = opts.pop("callback_style", "notification_config")
    authorization = webhook_authorization
    user_meta = opts.pop("metadata", None)
    body: dict[str, Any] = {}
    for name, value in opts.items():
        if name == "custom_vocabularies":
            value = _normalize_vocabularies(value)
        elif name == "speaker_names":
            value = _normalize_speaker_names(value)
        elif name == "translation_config":
            value = {**value, "target_languages": _normalize_targets(value["target_languages"])}
        body[name] = value
    body["language"] = effective_language(request)
    metadata = metadata_for(idempotency_key, user_meta)
    if metadata is not None:
        body["metadata"] = metadata
    url = request.callback_url or callback_url
    if url and "notification_config" not in body and "callback_url" not in body:
        if style == "callback_url":
            body["callback_url"] = url
        else:
            cfg: dict[str, Any] = {"url": url}
            if authorization:
                cfg["auth_headers"] = {"Authorization": authorization}
            body["notification_config"] = cfg
    elif authorization and "notification_config" in body:
        body["notification_config"] = {
            **body["notification_config"], "auth_headers": {"Authorization": authorization},
        }
    return body
