"""What the transcoder emulator accepts, copied from seed ``001`` (the ``builderTokens``
reference, whose ``services`` schema Create and Update share) and spec 2.5 / 2.8.

Sandbox side only: the client's :mod:`.transcoder_config` is not used here. Required
means present: ``canvas`` (with ``width``, ``height``, ``color``) and ``watermarks`` (an
empty array is a valid "no watermark"); the examples' spelling ``waterMarks`` is
accepted for the latter. Image URLs must end in ``jpg`` or ``png``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .sandbox_schema import Arr, ImageUrl, Int, Obj, Refusal, Str, check, where

__all__ = ["UPDATE_MASK", "check_acquire", "check_services", "transcoder_of"]

UPDATE_MASK = "services.cloudTranscoder.config"

_SIZE = Int(120, 3840)
_COORD = Int(0, 3840)
_REPEAT = Int(-1, None, not_=(0,))
_FILL = Str(choices=("FILL", "FIT"))


def _rtc() -> Obj:
    return Obj({"rtcChannel": (Str(), True), "rtcUid": (Int(0, 0xFFFF_FFFF), True),
                "rtcToken": (Str(), True)})


def _region(z_low: int) -> Obj:
    return Obj({"x": (_COORD, True), "y": (_COORD, True), "width": (_SIZE, True),
                "height": (_SIZE, True), "zOrder": (Int(z_low, 100), True)})


_WATERMARKS = Arr(Obj({"imageUrl": (ImageUrl(), True), "region": (_region(0), True),
                       "fillMode": (_FILL, False)}))

_TRANSCODER = Obj({
    "idleTimeout": (Int(1, 86_400), False),
    "streamProcessMode": (Str(choices=("mix", "heterogeneous-single", "single")), False),
    "audioInputs": (Arr(Obj({"streamUrl": (Str(), False), "volume": (Int(0, 200), False),
                             "repeat": (_REPEAT, False), "rtc": (_rtc(), False)})), False),
    "videoInputs": (Arr(Obj({"streamUrl": (Str(), False), "repeat": (_REPEAT, False),
                             "rtc": (_rtc(), False), "placeholderImageUrl": (ImageUrl(), False),
                             "region": (_region(2), True)})), False),
    "canvas": (Obj({"width": (_SIZE, True), "height": (_SIZE, True),
                    "color": (Int(0, 16_777_215), True), "backgroundImage": (ImageUrl(), False),
                    "fillMode": (_FILL, False)}), True),
    # Required per the seed; the check below accepts the examples' "waterMarks" instead.
    "watermarks": (_WATERMARKS, False),
    "waterMarks": (_WATERMARKS, False),
    "outputs": (Arr(Obj({
        "streamUrl": (Str(), False),
        "rtc": (_rtc(), False),
        "audioOption": (Obj({"profileType": (Str(choices=(
            "AUDIO_PROFILE_DEFAULT", "AUDIO_PROFILE_SPEECH_STANDARD",
            "AUDIO_PROFILE_MUSIC_STANDARD", "AUDIO_PROFILE_MUSIC_STANDARD_STEREO",
            "AUDIO_PROFILE_MUSIC_HIGH_QUALITY", "AUDIO_PROFILE_MUSIC_HIGH_QUALITY_STEREO")),
            False)}), False),
        "videoOption": (Obj({"width": (_SIZE, True), "height": (_SIZE, True),
                             "bitrate": (Int(1, 10_000), True),
                             "codec": (Str(choices=("H264", "VP8")), True),
                             "fps": (Int(1, 30), False),
                             "mode": (Str(choices=("RAW",)), False)}), False),
    }), 1), True),
})


def transcoder_of(body: Any) -> Mapping[str, Any]:
    """``services.cloudTranscoder.config.transcoder`` of a request body (checked shape)."""
    path = "services"
    node: Any = body.get("services") if isinstance(body, Mapping) else None
    for key in ("cloudTranscoder", "config", "transcoder"):
        if not isinstance(node, Mapping):
            raise Refusal(path, "is required (an object)")
        if key == "config" and node.get("serviceType") != "cloudTranscoderV2":
            raise Refusal(where(path, "serviceType"), 'must be "cloudTranscoderV2"')
        path, node = where(path, key), node.get(key)
    if not isinstance(node, Mapping):
        raise Refusal(path, "is required (an object)")
    return node


def _has(item: Mapping[str, Any], key: str) -> bool:
    return item.get(key) is not None


def _exactly_one_source(items: list[Any], key: str) -> None:
    for index, item in enumerate(items):
        if _has(item, "rtc") == _has(item, "streamUrl"):
            raise Refusal(where(key, index), "needs either rtc or streamUrl")


def _cross_rules(t: Mapping[str, Any], path: str) -> None:
    if t.get("watermarks") is None and t.get("waterMarks") is None:
        raise Refusal(where(path, "watermarks"), "is required")
    audio, video = t.get("audioInputs") or [], t.get("videoInputs") or []
    outputs = t["outputs"]
    _exactly_one_source(audio, where(path, "audioInputs"))
    _exactly_one_source(video, where(path, "videoInputs"))
    _exactly_one_source(outputs, where(path, "outputs"))
    if t.get("streamProcessMode") in ("single", "heterogeneous-single"):
        for key, items in (("audioInputs", audio), ("videoInputs", video)):
            if len(items) > 1:
                raise Refusal(where(path, key), "may hold at most 1 item in this mode")
    channels = {i["rtc"]["rtcChannel"] for i in (*audio, *video) if _has(i, "rtc")}
    if len(channels) > 1:
        raise Refusal(where(path, "videoInputs"), "sources must belong to one channel")
    if len({_has(o, "rtc") for o in outputs}) > 1 or len(
            {o["rtc"]["rtcChannel"] for o in outputs if _has(o, "rtc")}) > 1:
        raise Refusal(where(path, "outputs"), "one RTC channel, or CDN only, per task")
    for index, output in enumerate(outputs):
        if (output.get("videoOption") or {}).get("mode") == "RAW" and len(video) != 1:
            raise Refusal(where(where(path, "outputs"), index) + ".videoOption.mode",
                          "RAW needs exactly one video input")


def check_services(body: Any) -> Mapping[str, Any]:
    """A Create/Update body (``services`` required); returns the ``transcoder`` object."""
    if not isinstance(body, Mapping) or set(body) - {"services"}:
        raise Refusal("", "the body holds only 'services'")
    transcoder = transcoder_of(body)
    path = "services.cloudTranscoder.config.transcoder"
    check(_TRANSCODER, dict(transcoder), path)
    _cross_rules(transcoder, path)
    return transcoder


def check_acquire(body: Any) -> Mapping[str, Any]:
    """An acquire body: ``instanceId`` and ``services`` are both required (seed ``001``)."""
    if not isinstance(body, Mapping):
        raise Refusal("instanceId", "is required")
    if body.get("instanceId") is None:
        raise Refusal("instanceId", "is required")
    check(Str(pattern=r"[A-Za-z0-9_-]{1,64}"), body["instanceId"], "instanceId")
    if set(body) - {"instanceId", "services"}:
        raise Refusal(sorted(set(body) - {"instanceId", "services"})[0],
                      "is not a documented field")
    return check_services({"services": body.get("services")})
