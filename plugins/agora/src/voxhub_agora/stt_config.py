"""Real-Time STT request bodies: built from voxhub options, validated before any request.

The sandbox checks what it receives with its own rules (:mod:`.sandbox_stt_rules`),
not with these. Limits differ by API version (spec 1.4, 1.6, 1.10):

============================  ======  ======  ======
rule                          v5      v6      v7
============================  ======  ======  ======
languages                     <= 2    <= 4    <= 4
uidLanguagesConfig            no      <= 5    <= 5
subscribeAudioUids            <= 3    <= 32   <= 32
unSubscribeAudioUids          no      <= 5    <= 5
translate sources (start)     <= 2    <= 4    <= 4
transferMode                  yes     no      no
forceTranslateInterval        2..5    no      no
agent ``name``                no      no      required
============================  ======  ======  ======

Documentation conflicts and the choices made here (see the README):
v6 lists ``subscribeAudioUids`` twice (3 and 32): 32 with ``["all"]`` is used for v6/v7;
``storage.vendor`` is documented as 1, 5, 6 but the examples send 2 and v7 allows 1..8:
1..8 is accepted; the storage keys are sent camelCase (``accessKey``) but the table's
``accesskey`` is accepted; updates allow at most 2 translation sources (as documented),
starts 4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from voxhub.plugin import Secret

from ._checks import (
    FieldError,
    as_mapping,
    check_base64_salt,
    check_channel,
    check_instance_id,
    check_keys,
    check_language,
    check_uid,
    get_bool,
    get_int,
    get_list,
    get_mapping,
    get_str,
    join,
)

__all__ = [
    "API_VERSIONS",
    "LIMITS",
    "UPDATE_MASK_FIELDS",
    "SttLimits",
    "default_bot_uids",
    "option_for_path",
    "start_body",
    "update_body",
    "validate_start_body",
    "validate_update_body",
]

API_VERSIONS = ("v7", "v6", "v5")

MAX_IDLE_TIME = (5, 2_592_000)
SLICE_DURATION = (5, 28_800)
FORCE_TRANSLATE_INTERVAL = (2, 5)
CRYPTION_MODES = (0, 8)
STORAGE_VENDORS = (1, 8)
MAX_PREFIX_CHARS = 128
MAX_TARGETS = 5
MAX_UID_LANGUAGE_ENTRIES = 5
MAX_UID_LANGUAGES = 4
MAX_UNSUBSCRIBE = 5
UPDATE_TRANSLATE_SOURCES = 2

UPDATE_MASK_FIELDS = (
    "languages",
    "uidLanguagesConfig",
    "rtcConfig.subscribeAudioUids",
    "translateConfig.enable",
    "translateConfig.languages",
)


@attrs.frozen
class SttLimits:
    """What one API version accepts."""

    languages: int
    translate_sources: int
    subscribe_uids: int
    uid_languages: bool
    unsubscribe: bool
    v5_only_fields: bool
    agent_name: bool


LIMITS: dict[str, SttLimits] = {
    "v5": SttLimits(2, 2, 3, uid_languages=False, unsubscribe=False, v5_only_fields=True,
                    agent_name=False),
    "v6": SttLimits(4, 4, 32, uid_languages=True, unsubscribe=True, v5_only_fields=False,
                    agent_name=False),
    "v7": SttLimits(4, 4, 32, uid_languages=True, unsubscribe=True, v5_only_fields=False,
                    agent_name=True),
}

# Wire path prefix -> the voxhub option that sets it (longest prefix wins).
_OPTION_PATHS: tuple[tuple[str, str], ...] = (
    ("name", "instance_id"),
    ("languages", "languages"),
    ("uidLanguagesConfig", "uid_languages"),
    ("maxIdleTime", "max_idle_time"),
    ("rtcConfig.channelName", "media"),
    ("rtcConfig.subBotUid", "sub_bot_uid"),
    ("rtcConfig.subBotToken", "sub_bot_token"),
    ("rtcConfig.pubBotUid", "pub_bot_uid"),
    ("rtcConfig.pubBotToken", "pub_bot_token"),
    ("rtcConfig.subscribeAudioUids", "subscribe_audio_uids"),
    ("rtcConfig.unSubscribeAudioUids", "unsubscribe_audio_uids"),
    ("rtcConfig.cryptionMode", "encryption_mode"),
    ("rtcConfig.secret", "encryption_secret"),
    ("rtcConfig.salt", "encryption_salt"),
    ("rtcConfig.enableJsonProtocol", "enable_json_protocol"),
    ("rtcConfig.transferMode", "transfer_mode"),
    ("translateConfig.forceTranslateInterval", "force_translate_interval"),
    ("translateConfig", "translate"),
    ("captionConfig.sliceDuration", "caption_slice_duration"),
    ("captionConfig.storage.accessKey", "caption_access_key"),
    ("captionConfig.storage.secretKey", "caption_secret_key"),
    ("captionConfig.storage.bucket", "caption_bucket"),
    ("captionConfig.storage.vendor", "caption_vendor"),
    ("captionConfig.storage.region", "caption_region"),
    ("captionConfig.storage.fileNamePrefix", "caption_file_name_prefix"),
    ("captionConfig", "caption_bucket"),
)


def option_for_path(path: str) -> str:
    """The voxhub option behind a wire path (for messages that name what the user typed)."""
    best = ""
    found = path
    for prefix, option in _OPTION_PATHS:
        if (path == prefix or path.startswith((prefix + ".", prefix + "["))) and len(
            prefix) > len(best):
            best, found = prefix, option
    return found


# --- validation (client side) --------------------------------------------------------


def _languages(data: Mapping[str, Any], key: str, path: str, limit: int, *,
               required: bool) -> list[str] | None:
    items = get_list(data, key, path, required=required, min_items=1, max_items=limit)
    if items is None:
        return None
    where = join(path, key)
    for index, item in enumerate(items):
        check_language(item, join(where, index))
    if len(set(items)) != len(items):
        raise FieldError(where, "lists a language twice")
    return items


def _uid_languages(body: Mapping[str, Any], limits: SttLimits, version: str) -> None:
    entries = get_list(body, "uidLanguagesConfig", "", max_items=MAX_UID_LANGUAGE_ENTRIES)
    if entries is None:
        return
    if not limits.uid_languages:
        raise FieldError("uidLanguagesConfig", f"is not available in API {version} (v6 and v7)")
    seen: set[str] = set()
    for index, raw in enumerate(entries):
        where = join("uidLanguagesConfig", index)
        item = as_mapping(raw, where)
        check_keys(item, ("uid", "languages"), where)
        uid = check_uid(item.get("uid"), join(where, "uid"))
        if uid in seen:
            raise FieldError(join(where, "uid"), f"uid {uid} is configured twice")
        seen.add(uid)
        _languages(item, "languages", where, MAX_UID_LANGUAGES, required=True)


def _uid_list(data: Mapping[str, Any], key: str, path: str, limit: int, *,
              allow_all: bool) -> list[str] | None:
    items = get_list(data, key, path, min_items=1, max_items=limit)
    if items is None:
        return None
    where = join(path, key)
    if allow_all and "all" in items:
        if items != ["all"]:
            raise FieldError(where, '"all" must be the only item')
        return items
    for index, item in enumerate(items):
        check_uid(item, join(where, index))
    return [str(i) for i in items]


def _rtc_config(rtc: Mapping[str, Any], limits: SttLimits, version: str) -> None:
    path = "rtcConfig"
    if "unSubscribeAudioUids" in rtc and not limits.unsubscribe:
        raise FieldError(join(path, "unSubscribeAudioUids"),
                         f"is not available in API {version} (v6 and v7)")
    if "transferMode" in rtc and not limits.v5_only_fields:
        raise FieldError(join(path, "transferMode"), f"is only available in API v5, not {version}")
    check_keys(rtc, (
        "channelName", "subBotUid", "subBotToken", "pubBotUid", "pubBotToken",
        "subscribeAudioUids", "unSubscribeAudioUids", "cryptionMode", "secret", "salt",
        "enableJsonProtocol", "transferMode",
    ), path)
    check_channel(get_str(rtc, "channelName", path, required=True), join(path, "channelName"))
    sub = check_uid(rtc.get("subBotUid"), join(path, "subBotUid")) if rtc.get(
        "subBotUid") is not None else None
    if sub is None:
        raise FieldError(join(path, "subBotUid"), "is required")
    if rtc.get("pubBotUid") is None:
        raise FieldError(join(path, "pubBotUid"), "is required")
    pub = check_uid(rtc.get("pubBotUid"), join(path, "pubBotUid"))
    if sub == pub:
        raise FieldError(join(path, "pubBotUid"), "must differ from subBotUid (each bot needs "
                         "its own uid in the channel)")
    get_str(rtc, "subBotToken", path)
    get_str(rtc, "pubBotToken", path)
    subscribe = _uid_list(rtc, "subscribeAudioUids", path, limits.subscribe_uids,
                          allow_all=version != "v5")
    unsubscribe = _uid_list(rtc, "unSubscribeAudioUids", path, MAX_UNSUBSCRIBE, allow_all=False)
    if subscribe is not None and unsubscribe is not None:
        raise FieldError(join(path, "unSubscribeAudioUids"),
                         "cannot be combined with subscribeAudioUids (use one of them)")
    mode = get_int(rtc, "cryptionMode", path, low=CRYPTION_MODES[0], high=CRYPTION_MODES[1]) or 0
    secret = get_str(rtc, "secret", path)
    salt = get_str(rtc, "salt", path)
    if mode and secret is None:
        raise FieldError(join(path, "secret"), f"is required when cryptionMode is {mode}")
    if not mode and secret is not None:
        raise FieldError(join(path, "secret"), "is only used with cryptionMode 1..8")
    if mode in (7, 8):
        if salt is None:
            raise FieldError(join(path, "salt"), f"is required when cryptionMode is {mode}")
        check_base64_salt(salt, join(path, "salt"))
    elif salt is not None:
        raise FieldError(join(path, "salt"), "is only used with cryptionMode 7 or 8")
    get_bool(rtc, "enableJsonProtocol", path)
    modes = get_list(rtc, "transferMode", path, min_items=1, max_items=2)
    if modes is not None:
        where = join(path, "transferMode")
        for index, item in enumerate(modes):
            if item not in ("RTC", "RTM"):
                raise FieldError(join(where, index), f"{item!r} is not allowed (allowed: RTC, RTM)")
        if len(set(modes)) != len(modes):
            raise FieldError(where, "lists a mode twice")


def _translate_languages(data: Mapping[str, Any], path: str, limit: int, *,
                         required: bool) -> None:
    entries = get_list(data, "languages", path, required=required, min_items=1, max_items=limit)
    if entries is None:
        return
    sources: set[str] = set()
    for index, raw in enumerate(entries):
        where = join(join(path, "languages"), index)
        item = as_mapping(raw, where)
        check_keys(item, ("source", "target"), where)
        source = check_language(get_str(item, "source", where, required=True),
                                join(where, "source"))
        if source in sources:
            raise FieldError(join(where, "source"), f"source {source} is configured twice")
        sources.add(source)
        targets = _languages(item, "target", where, MAX_TARGETS, required=True) or []
        if source in targets:
            raise FieldError(join(where, "target"),
                             f"must not contain the source language {source}")


def _translate_config(translate: Mapping[str, Any], limits: SttLimits, version: str) -> None:
    path = "translateConfig"
    if "forceTranslateInterval" in translate and not limits.v5_only_fields:
        raise FieldError(join(path, "forceTranslateInterval"),
                         f"is only available in API v5, not {version}")
    check_keys(translate, ("languages", "forceTranslateInterval"), path)
    _translate_languages(translate, path, limits.translate_sources, required=True)
    get_int(translate, "forceTranslateInterval", path, low=FORCE_TRANSLATE_INTERVAL[0],
            high=FORCE_TRANSLATE_INTERVAL[1])


def _caption_config(caption: Mapping[str, Any]) -> None:
    path = "captionConfig"
    check_keys(caption, ("sliceDuration", "storage"), path)
    get_int(caption, "sliceDuration", path, low=SLICE_DURATION[0], high=SLICE_DURATION[1])
    storage = get_mapping(caption, "storage", path, required=True)
    assert storage is not None
    where = join(path, "storage")
    check_keys(storage, ("accessKey", "accesskey", "secretKey", "secretkey", "bucket", "vendor",
                         "region", "fileNamePrefix"), where)
    for camel, lower in (("accessKey", "accesskey"), ("secretKey", "secretkey")):
        # The parameter table spells these lower-case, every example camelCase: accept both.
        key = camel if camel in storage else lower
        if key not in storage:
            raise FieldError(join(where, camel), "is required")
        get_str(storage, key, where, required=True)
    get_str(storage, "bucket", where, required=True)
    get_int(storage, "vendor", where, low=STORAGE_VENDORS[0], high=STORAGE_VENDORS[1],
            required=True)
    get_int(storage, "region", where, low=0, required=True)
    prefix = get_list(storage, "fileNamePrefix", where)
    if prefix is not None:
        total = 0
        for index, item in enumerate(prefix):
            item_path = join(join(where, "fileNamePrefix"), index)
            if not isinstance(item, str) or not item.isascii() or not item.isalnum():
                raise FieldError(item_path, "must contain only letters and digits")
            total += len(item)
        if total > MAX_PREFIX_CHARS:
            raise FieldError(join(where, "fileNamePrefix"),
                             f"is {total} characters long in total (allowed at most "
                             f"{MAX_PREFIX_CHARS})")


def validate_start_body(body: Mapping[str, Any], version: str) -> None:
    """Check a start (v5/v6) or join (v7) body; raise :class:`FieldError` on the first problem."""
    limits = LIMITS[version]
    allowed = ["languages", "uidLanguagesConfig", "maxIdleTime", "rtcConfig", "translateConfig",
               "captionConfig"]
    if limits.agent_name:
        allowed.insert(0, "name")
        check_instance_id(body.get("name"), "name")
    check_keys(body, allowed, "")
    _languages(body, "languages", "", limits.languages, required=True)
    _uid_languages(body, limits, version)
    get_int(body, "maxIdleTime", "", low=MAX_IDLE_TIME[0], high=MAX_IDLE_TIME[1])
    rtc = get_mapping(body, "rtcConfig", "", required=True)
    assert rtc is not None
    _rtc_config(rtc, limits, version)
    translate = get_mapping(body, "translateConfig", "")
    if translate is not None:
        _translate_config(translate, limits, version)
    caption = get_mapping(body, "captionConfig", "")
    if caption is not None:
        _caption_config(caption)


def validate_update_body(body: Mapping[str, Any], version: str, mask: Sequence[str]) -> None:
    """Check an update body and its ``updateMask`` (spec 1.6)."""
    limits = LIMITS[version]
    if not mask:
        raise FieldError("updateMask", "names no field to update")
    for field in mask:
        if field not in UPDATE_MASK_FIELDS:
            raise FieldError("updateMask", f"{field!r} cannot be updated (allowed: "
                             f"{', '.join(UPDATE_MASK_FIELDS)})")
    check_keys(body, ("languages", "uidLanguagesConfig", "rtcConfig", "translateConfig"), "")
    _languages(body, "languages", "", limits.languages, required="languages" in mask)
    _uid_languages(body, limits, version)
    rtc = get_mapping(body, "rtcConfig", "")
    if rtc is not None:
        check_keys(rtc, ("subscribeAudioUids",), "rtcConfig")
        _uid_list(rtc, "subscribeAudioUids", "rtcConfig", limits.subscribe_uids,
                  allow_all=version != "v5")
    translate = get_mapping(body, "translateConfig", "")
    if translate is not None:
        check_keys(translate, ("enable", "languages"), "translateConfig")
        enable = get_bool(translate, "enable", "translateConfig")
        _translate_languages(translate, "translateConfig", UPDATE_TRANSLATE_SOURCES,
                             required=bool(enable))
    present = _present_fields(body)
    for field in present:
        if field not in mask:
            raise FieldError("updateMask", f"does not name {field!r}, which the body changes")
    for field in mask:
        if field not in present:
            raise FieldError(field, "is named in updateMask but missing from the body")


def _present_fields(body: Mapping[str, Any]) -> list[str]:
    present = [f for f in ("languages", "uidLanguagesConfig") if f in body]
    rtc = body.get("rtcConfig")
    if isinstance(rtc, Mapping) and "subscribeAudioUids" in rtc:
        present.append("rtcConfig.subscribeAudioUids")
    translate = body.get("translateConfig")
    if isinstance(translate, Mapping):
        present += [f"translateConfig.{k}" for k in ("enable", "languages") if k in translate]
    return present


# --- building bodies from options -----------------------------------------------------


def _plain(value: Any) -> Any:
    return value.reveal() if isinstance(value, Secret) else value


def default_bot_uids(channel: str) -> tuple[str, str]:
    """Bot uids derived from the channel name when none are given.

    Why derived: the same channel always gets the same bots (a repeated start finds
    them), and the values sit in 3000000000..3999999999, far from the small uids apps
    usually hand out.
    """

    def pick(label: str) -> int:
        import hashlib  # used per start, not when providers are listed

        digest = hashlib.sha256(f"{label}|{channel}".encode()).digest()
        return 3_000_000_000 + int.from_bytes(digest[:8], "big") % 1_000_000_000

    sub, pub = pick("sub"), pick("pub")
    if pub == sub:  # pragma: no cover - one chance in a billion
        pub = sub + 1 if sub < 3_999_999_999 else sub - 1
    return str(sub), str(pub)


def _translate_entries(value: Any) -> Any:
    # {"en-US": ["ja-JP"]} is the friendly option form; a list of {source, target} is the wire.
    if isinstance(value, Mapping):
        return [
            {"source": source, "target": list(t) if isinstance(t, list | tuple) else [t]}
            for source, t in value.items()
        ]
    return value


def start_body(options: Mapping[str, Any], channel: str, version: str, *,
               name: str | None = None) -> dict[str, Any]:
    """The start/join body for ``options`` (tokens are added later, when sending)."""
    default_sub, default_pub = default_bot_uids(channel)
    rtc: dict[str, Any] = {
        "channelName": channel,
        "subBotUid": str(_plain(options.get("sub_bot_uid") or default_sub)),
        "pubBotUid": str(_plain(options.get("pub_bot_uid") or default_pub)),
    }
    for option, key in (
        ("sub_bot_token", "subBotToken"), ("pub_bot_token", "pubBotToken"),
        ("subscribe_audio_uids", "subscribeAudioUids"),
        ("unsubscribe_audio_uids", "unSubscribeAudioUids"),
        ("encryption_mode", "cryptionMode"), ("encryption_secret", "secret"),
        ("encryption_salt", "salt"), ("enable_json_protocol", "enableJsonProtocol"),
        ("transfer_mode", "transferMode"),
    ):
        if options.get(option) is not None:
            rtc[key] = _plain(options[option])
    body: dict[str, Any] = {}
    if version == "v7":
        body["name"] = name
    languages = options.get("languages")
    body["languages"] = list(languages) if isinstance(languages, list | tuple) else languages
    uid_languages = options.get("uid_languages")
    if uid_languages is not None:
        body["uidLanguagesConfig"] = (
            [{"uid": str(uid), "languages": langs} for uid, langs in uid_languages.items()]
            if isinstance(uid_languages, Mapping) else uid_languages
        )
    if options.get("max_idle_time") is not None:
        body["maxIdleTime"] = options["max_idle_time"]
    body["rtcConfig"] = rtc
    translate = options.get("translate")
    if translate is not None or options.get("force_translate_interval") is not None:
        config: dict[str, Any] = {}
        if translate is not None:
            config["languages"] = _translate_entries(translate)
        if options.get("force_translate_interval") is not None:
            config["forceTranslateInterval"] = options["force_translate_interval"]
        body["translateConfig"] = config
    caption_keys = [k for k in options if k.startswith("caption_") and options[k] is not None]
    if caption_keys:
        storage: dict[str, Any] = {}
        for option, key in (
            ("caption_access_key", "accessKey"), ("caption_secret_key", "secretKey"),
            ("caption_bucket", "bucket"), ("caption_vendor", "vendor"),
            ("caption_region", "region"), ("caption_file_name_prefix", "fileNamePrefix"),
        ):
            if options.get(option) is not None:
                storage[key] = _plain(options[option])
        caption: dict[str, Any] = {"storage": storage}
        if options.get("caption_slice_duration") is not None:
            caption["sliceDuration"] = options["caption_slice_duration"]
        body["captionConfig"] = caption
    return body


def update_body(
    *,
    languages: Sequence[str] | None = None,
    uid_languages: Mapping[str, Sequence[str]] | None = None,
    subscribe_audio_uids: Sequence[str] | None = None,
    translate: Mapping[str, Sequence[str]] | Sequence[Mapping[str, Any]] | bool | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """An update body and its ``updateMask`` from the fields being changed.

    ``translate=False`` switches translation off; a mapping (source -> targets) or
    a list of ``{source, target}`` switches it on with those languages.
    """
    body: dict[str, Any] = {}
    mask: list[str] = []
    if languages is not None:
        body["languages"] = list(languages)
        mask.append("languages")
    if uid_languages is not None:
        body["uidLanguagesConfig"] = [
            {"uid": str(uid), "languages": list(langs)} for uid, langs in uid_languages.items()
        ]
        mask.append("uidLanguagesConfig")
    if subscribe_audio_uids is not None:
        body["rtcConfig"] = {"subscribeAudioUids": [str(u) for u in subscribe_audio_uids]}
        mask.append("rtcConfig.subscribeAudioUids")
    if translate is False:
        body["translateConfig"] = {"enable": False}
        mask.append("translateConfig.enable")
    elif translate is not None and translate is not True:
        body["translateConfig"] = {"enable": True, "languages": _translate_entries(translate)}
        mask += ["translateConfig.enable", "translateConfig.languages"]
    return body, mask
