"""What the STT emulator accepts, copied from Agora's STT reference (spec 1.4, 1.6, 1.10).

Sandbox side only: the client's own validators (:mod:`.stt_config`) are not used here.
Where the documents disagree the emulator takes the lenient reading (it must not refuse
what the vendor may accept): ``subscribeAudioUids`` <= 32 in v6 (the table also says 3),
storage keys ``accessKey`` or ``accesskey``, storage ``vendor`` 1..8.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .sandbox_schema import Arr, Bool, Int, Obj, Refusal, Str, check, where

__all__ = ["UPDATE_FIELDS", "check_join", "check_start", "check_update", "check_update_query"]

_LANGUAGE = Str(pattern=r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}")
_NAME = Str(pattern=r"[A-Za-z0-9_-]{1,64}")


def _languages(limit: int) -> Arr:
    return Arr(_LANGUAGE, 1, limit)


def _translate(sources: int, *, v5: bool, update: bool) -> Obj:
    fields: dict[str, tuple[Any, bool]] = {
        "languages": (Arr(Obj({"source": (_LANGUAGE, True),
                               "target": (Arr(_LANGUAGE, 1, 5), True)}), 1, sources),
                      not update),
    }
    if v5:
        fields["forceTranslateInterval"] = (Int(2, 5), False)
    if update:
        fields["enable"] = (Bool(), False)
    return Obj(fields)


def _storage() -> Obj:
    # The table spells accesskey/secretkey, every example accessKey/secretKey.
    return Obj({
        "accessKey": (Str(), False), "accesskey": (Str(), False),
        "secretKey": (Str(), False), "secretkey": (Str(), False),
        "bucket": (Str(), True), "vendor": (Int(1, 8), True), "region": (Int(0), True),
        "fileNamePrefix": (Arr(Str(pattern=r"[A-Za-z0-9]+")), False),
    })


def _start_schema(version: str) -> Obj:
    v5 = version == "v5"
    rtc: dict[str, tuple[Any, bool]] = {
        "channelName": (Str(max_len=64), True),
        "subBotUid": (Str(), True), "subBotToken": (Str(), False),
        "pubBotUid": (Str(), True), "pubBotToken": (Str(), False),
        "subscribeAudioUids": (Arr(Str(), 1, 3 if v5 else 32), False),
        "cryptionMode": (Int(0, 8), False), "secret": (Str(), False), "salt": (Str(), False),
        "enableJsonProtocol": (Bool(), False),
    }
    if v5:
        rtc["transferMode"] = (Arr(Str(choices=("RTC", "RTM")), 1, 2), False)
    else:
        rtc["unSubscribeAudioUids"] = (Arr(Str(), 1, 5), False)
    fields: dict[str, tuple[Any, bool]] = {
        "languages": (_languages(2 if v5 else 4), True),
        "maxIdleTime": (Int(5, 2_592_000), False),
        "rtcConfig": (Obj(rtc), True),
        "translateConfig": (_translate(2 if v5 else 4, v5=v5, update=False), False),
        "captionConfig": (Obj({"sliceDuration": (Int(5, 28_800), False),
                               "storage": (_storage(), True)}), False),
    }
    if not v5:
        fields["uidLanguagesConfig"] = (
            Arr(Obj({"uid": (Str(), True), "languages": (_languages(4), True)}), 1, 5), False)
    if version == "v7":
        fields["name"] = (_NAME, True)
    return Obj(fields)


def _cross_rules(body: Mapping[str, Any]) -> None:
    rtc = body["rtcConfig"]
    if rtc["subBotUid"] == rtc["pubBotUid"]:
        raise Refusal("rtcConfig.pubBotUid", "must be unique in the channel (equals subBotUid)")
    subscribe = rtc.get("subscribeAudioUids")
    if subscribe is not None and "all" in subscribe and subscribe != ["all"]:
        raise Refusal("rtcConfig.subscribeAudioUids", '"all" must be the only item')
    if subscribe is not None and rtc.get("unSubscribeAudioUids") is not None:
        raise Refusal("rtcConfig.unSubscribeAudioUids", "is exclusive with subscribeAudioUids")
    mode = rtc.get("cryptionMode") or 0
    if mode and not rtc.get("secret"):
        raise Refusal("rtcConfig.secret", "is required when cryptionMode is not 0")
    if mode in (7, 8) and not rtc.get("salt"):
        raise Refusal("rtcConfig.salt", "is required for cryptionMode 7 and 8")
    _sources_differ(body.get("translateConfig"))
    caption = body.get("captionConfig")
    if caption is not None:
        storage = caption["storage"]
        for camel in ("accessKey", "secretKey"):
            if storage.get(camel) is None and storage.get(camel.lower()) is None:
                raise Refusal(f"captionConfig.storage.{camel}", "is required")
        prefix = storage.get("fileNamePrefix") or []
        if sum(len(p) for p in prefix) > 128:
            raise Refusal("captionConfig.storage.fileNamePrefix", "is over 128 characters")


def _sources_differ(translate: Any) -> None:
    for index, entry in enumerate((translate or {}).get("languages") or []):
        if entry["source"] in entry["target"]:
            raise Refusal(where(where("translateConfig.languages", index), "target"),
                          "must not contain the source language")


def check_start(body: Any, version: str) -> None:
    """A v5/v6 start body; raise :class:`Refusal`."""
    check(_start_schema(version), body, "")
    _cross_rules(body)


def check_join(body: Any) -> None:
    """A v7 join body (v6 fields plus the agent ``name``)."""
    check_start(body, "v7")


#: The dotted fields an ``updateMask`` may name (spec 1.6).
UPDATE_FIELDS = ("languages", "uidLanguagesConfig", "rtcConfig.subscribeAudioUids",
                 "translateConfig.enable", "translateConfig.languages")


def check_update_query(args: Mapping[str, str]) -> tuple[int, list[str]]:
    """``sequenceId`` (integer >= 0) and ``updateMask`` (known fields), both required."""
    raw = args.get("sequenceId")
    if raw is None or raw == "":
        raise Refusal("sequenceId", "is required (query parameter)")
    if not raw.isdigit():
        raise Refusal("sequenceId", f"{raw!r} is not an integer >= 0")
    mask = [m.strip() for m in (args.get("updateMask") or "").split(",") if m.strip()]
    if not mask:
        raise Refusal("updateMask", "is required (query parameter)")
    for field in mask:
        if field not in UPDATE_FIELDS:
            raise Refusal("updateMask", f"{field!r} cannot be updated")
    return int(raw), mask


def _present(body: Mapping[str, Any]) -> set[str]:
    found = {k for k in ("languages", "uidLanguagesConfig") if k in body}
    for group in ("rtcConfig", "translateConfig"):
        value = body.get(group)
        if isinstance(value, Mapping):
            found |= {f"{group}.{k}" for k in value}
    return found


def check_update(body: Any, version: str, mask: list[str]) -> None:
    """An update body: documented fields only, and exactly those the mask names."""
    v5 = version == "v5"
    schema = Obj({
        "languages": (_languages(2 if v5 else 4), False),
        "uidLanguagesConfig": (
            Arr(Obj({"uid": (Str(), True), "languages": (_languages(4), True)}), 1, 5), False),
        "rtcConfig": (Obj({"subscribeAudioUids": (Arr(Str(), 1, 3 if v5 else 32), False)}),
                      False),
        "translateConfig": (_translate(2, v5=False, update=True), False),
    })
    check(schema, body, "")
    present = _present(body)
    for field in mask:
        if field not in present:
            raise Refusal(field, "is named in updateMask but missing from the body")
    for field in sorted(present - set(mask)):
        raise Refusal(field, "is in the body but not named in updateMask")
    _sources_differ(body.get("translateConfig"))
