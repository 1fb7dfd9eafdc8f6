"""The pieces of a Cloud Transcoder configuration: regions, inputs, canvas, outputs.

Each class parses and checks one JSON object of the seed's schema (``from_dict``)
and writes it back (``to_dict``); :class:`~.transcoder_config.TranscoderConfig`
combines them and checks the rules that span several pieces. Every name here is
re-exported by :mod:`.transcoder_config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._checks import (
    UINT32_MAX,
    FieldError,
    check_channel,
    check_image_url,
    check_keys,
    check_stream_url,
    get_int,
    get_mapping,
    get_str,
    join,
)

__all__ = [
    "BITRATE",
    "CODECS",
    "COLOR",
    "COORDINATE",
    "FILL_MODES",
    "FPS",
    "IDLE_TIMEOUT",
    "MAX_OUTPUT_PIXELS",
    "PROFILE_TYPES",
    "SERVICE_TYPE",
    "SINGLE_MODES",
    "SIZE",
    "STREAM_PROCESS_MODES",
    "VIDEO_Z_ORDER",
    "VOLUME",
    "WATERMARK_Z_ORDER",
    "AudioInput",
    "AudioOption",
    "Canvas",
    "Output",
    "Region",
    "RtcEndpoint",
    "VideoInput",
    "VideoOption",
    "Watermark",
]

SERVICE_TYPE = "cloudTranscoderV2"
FILL_MODES = ("FILL", "FIT")
CODECS = ("H264", "VP8")
PROFILE_TYPES = (
    "AUDIO_PROFILE_DEFAULT",
    "AUDIO_PROFILE_SPEECH_STANDARD",
    "AUDIO_PROFILE_MUSIC_STANDARD",
    "AUDIO_PROFILE_MUSIC_STANDARD_STEREO",
    "AUDIO_PROFILE_MUSIC_HIGH_QUALITY",
    "AUDIO_PROFILE_MUSIC_HIGH_QUALITY_STEREO",
)
#: ``mix`` is the documented default (sent by omitting the field).
STREAM_PROCESS_MODES = ("mix", "heterogeneous-single", "single")
SINGLE_MODES = ("heterogeneous-single", "single")

IDLE_TIMEOUT = (1, 86_400)
COORDINATE = (0, 3840)
SIZE = (120, 3840)
VIDEO_Z_ORDER = (2, 100)
WATERMARK_Z_ORDER = (0, 100)
COLOR = (0, 0xFFFFFF)
VOLUME = (0, 200)
BITRATE = (1, 10_000)
FPS = (1, 30)
#: The quota page's output cap (above it only a warning, see the module docstring).
MAX_OUTPUT_PIXELS = (1920, 1080)


@attrs.frozen
class Region:
    """Placement on the canvas in pixels, origin top-left; ``z_order`` stacks layers."""

    x: int
    y: int
    width: int
    height: int
    z_order: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str, z_range: tuple[int, int]) -> Region:
        """Parse and validate the wire object at ``path``."""
        check_keys(data, ("x", "y", "width", "height", "zOrder"), path)

        def num(key: str, bounds: tuple[int, int]) -> int:
            value = get_int(data, key, path, low=bounds[0], high=bounds[1], required=True)
            assert value is not None
            return value

        return cls(num("x", COORDINATE), num("y", COORDINATE), num("width", SIZE),
                   num("height", SIZE), num("zOrder", z_range))

    def to_dict(self) -> dict[str, Any]:
        """The wire (camelCase) object."""
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height,
                "zOrder": self.z_order}


@attrs.frozen
class RtcEndpoint:
    """An RTC channel endpoint: where an input is taken from or an output published to.

    ``token`` is the RTC token the transcoder joins with (``None`` = build it from the
    app certificate when sending). It is never shown in a repr.
    """

    channel: str
    uid: int
    token: str | None = attrs.field(default=None, repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str) -> RtcEndpoint:
        """Parse and validate the wire object at ``path``."""
        check_keys(data, ("rtcChannel", "rtcUid", "rtcToken"), path)
        channel = check_channel(get_str(data, "rtcChannel", path, required=True),
                                join(path, "rtcChannel"))
        uid = get_int(data, "rtcUid", path, low=1, high=UINT32_MAX, required=True)
        assert uid is not None
        token = get_str(data, "rtcToken", path, allow_empty=True)
        return cls(channel, uid, token)

    def to_dict(self) -> dict[str, Any]:
        """The wire (camelCase) object."""
        out: dict[str, Any] = {"rtcChannel": self.channel, "rtcUid": self.uid}
        if self.token is not None:
            out["rtcToken"] = self.token
        return out


def _source(data: Mapping[str, Any], path: str) -> tuple[RtcEndpoint | None, str | None]:
    """The ``rtc`` / ``streamUrl`` pair of an input or output: exactly one must be given."""
    rtc_data = get_mapping(data, "rtc", path)
    url = get_str(data, "streamUrl", path)
    if rtc_data is None and url is None:
        raise FieldError(path, "needs either rtc or streamUrl")
    if rtc_data is not None and url is not None:
        raise FieldError(path, "has both rtc and streamUrl (give exactly one)")
    if url is not None:
        check_stream_url(url, join(path, "streamUrl"))
        return None, url
    assert rtc_data is not None
    return RtcEndpoint.from_dict(rtc_data, join(path, "rtc")), None


def _repeat(data: Mapping[str, Any], path: str) -> int | None:
    value = get_int(data, "repeat", path)
    if value is not None and (value == 0 or value < -1):
        raise FieldError(join(path, "repeat"),
                         f"{value} is not allowed (allowed -1 = loop, or 1..inf times; 0 is "
                         "invalid)")
    return value


def _fill_mode(data: Mapping[str, Any], path: str) -> str | None:
    return get_str(data, "fillMode", path, choices=FILL_MODES)


@attrs.frozen
class AudioInput:
    """An audio source: an RTC host (``rtc``) or a CDN stream (``stream_url``)."""

    rtc: RtcEndpoint | None = None
    stream_url: str | None = None
    volume: int | None = None
    repeat: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str) -> AudioInput:
        """Parse and validate the wire object at ``path``."""
        check_keys(data, ("rtc", "streamUrl", "volume", "repeat"), path)
        rtc, url = _source(data, path)
        volume = get_int(data, "volume", path, low=VOLUME[0], high=VOLUME[1])
        return cls(rtc, url, volume, _repeat(data, path))

    def to_dict(self) -> dict[str, Any]:
        """The wire (camelCase) object."""
        out: dict[str, Any] = {}
        if self.rtc is not None:
            out["rtc"] = self.rtc.to_dict()
        if self.stream_url is not None:
            out["streamUrl"] = self.stream_url
        if self.volume is not None:
            out["volume"] = self.volume
        if self.repeat is not None:
            out["repeat"] = self.repeat
        return out


@attrs.frozen
class VideoInput:
    """A video source placed on the canvas at ``region``."""

    region: Region
    rtc: RtcEndpoint | None = None
    stream_url: str | None = None
    repeat: int | None = None
    placeholder_image_url: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str) -> VideoInput:
        """Parse and validate the wire object at ``path``."""
        check_keys(data, ("rtc", "streamUrl", "repeat", "placeholderImageUrl", "region"), path)
        rtc, url = _source(data, path)
        placeholder = get_str(data, "placeholderImageUrl", path)
        if placeholder is not None:
            check_image_url(placeholder, join(path, "placeholderImageUrl"))
        region_data = get_mapping(data, "region", path, required=True)
        assert region_data is not None
        region = Region.from_dict(region_data, join(path, "region"), VIDEO_Z_ORDER)
        return cls(region, rtc, url, _repeat(data, path), placeholder)

    def to_dict(self) -> dict[str, Any]:
        """The wire (camelCase) object."""
        out: dict[str, Any] = {}
        if self.rtc is not None:
            out["rtc"] = self.rtc.to_dict()
        if self.stream_url is not None:
            out["streamUrl"] = self.stream_url
        if self.repeat is not None:
            out["repeat"] = self.repeat
        if self.placeholder_image_url is not None:
            out["placeholderImageUrl"] = self.placeholder_image_url
        out["region"] = self.region.to_dict()
        return out


@attrs.frozen
class Canvas:
    """The output picture: size, background colour (RGB integer) and optional image."""

    width: int
    height: int
    color: int = 0
    background_image: str | None = None
    fill_mode: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str) -> Canvas:
        """Parse and validate the wire object at ``path``."""
        check_keys(data, ("width", "height", "color", "backgroundImage", "fillMode"), path)
        width = get_int(data, "width", path, low=SIZE[0], high=SIZE[1], required=True)
        height = get_int(data, "height", path, low=SIZE[0], high=SIZE[1], required=True)
        color = get_int(data, "color", path, low=COLOR[0], high=COLOR[1], required=True)
        assert width is not None and height is not None and color is not None
        image = get_str(data, "backgroundImage", path)
        if image is not None:
            check_image_url(image, join(path, "backgroundImage"))
        return cls(width, height, color, image, _fill_mode(data, path))

    def to_dict(self) -> dict[str, Any]:
        """The wire (camelCase) object."""
        out: dict[str, Any] = {"width": self.width, "height": self.height, "color": self.color}
        if self.background_image is not None:
            out["backgroundImage"] = self.background_image
        if self.fill_mode is not None:
            out["fillMode"] = self.fill_mode
        return out


@attrs.frozen
class Watermark:
    """An image drawn over the canvas (``z_order`` 0..100)."""

    image_url: str
    region: Region
    fill_mode: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str) -> Watermark:
        """Parse and validate the wire object at ``path``."""
        check_keys(data, ("imageUrl", "region", "fillMode"), path)
        url = check_image_url(get_str(data, "imageUrl", path, required=True),
                              join(path, "imageUrl"))
        region_data = get_mapping(data, "region", path, required=True)
        assert region_data is not None
        region = Region.from_dict(region_data, join(path, "region"), WATERMARK_Z_ORDER)
        return cls(url, region, _fill_mode(data, path))

    def to_dict(self) -> dict[str, Any]:
        """The wire (camelCase) object."""
        out: dict[str, Any] = {"imageUrl": self.image_url, "region": self.region.to_dict()}
        if self.fill_mode is not None:
            out["fillMode"] = self.fill_mode
        return out


@attrs.frozen
class AudioOption:
    """Output audio profile (one of :data:`PROFILE_TYPES`)."""

    profile_type: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str) -> AudioOption:
        """Parse and validate the wire object at ``path``."""
        check_keys(data, ("profileType",), path)
        return cls(get_str(data, "profileType", path, choices=PROFILE_TYPES))

    def to_dict(self) -> dict[str, Any]:
        """The wire (camelCase) object."""
        return {} if self.profile_type is None else {"profileType": self.profile_type}


@attrs.frozen
class VideoOption:
    """Output video encoding; ``mode="RAW"`` passes one video input through untranscoded."""

    width: int
    height: int
    bitrate: int
    codec: str
    fps: int | None = None
    mode: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str) -> VideoOption:
        """Parse and validate the wire object at ``path``."""
        check_keys(data, ("width", "height", "bitrate", "codec", "fps", "mode"), path)
        width = get_int(data, "width", path, low=SIZE[0], high=SIZE[1], required=True)
        height = get_int(data, "height", path, low=SIZE[0], high=SIZE[1], required=True)
        bitrate = get_int(data, "bitrate", path, low=BITRATE[0], high=BITRATE[1], required=True)
        codec = get_str(data, "codec", path, choices=CODECS, required=True)
        fps = get_int(data, "fps", path, low=FPS[0], high=FPS[1])
        mode = get_str(data, "mode", path, choices=("RAW",))
        assert width is not None and height is not None and bitrate is not None
        assert codec is not None
        return cls(width, height, bitrate, codec, fps, mode)

    def to_dict(self) -> dict[str, Any]:
        """The wire (camelCase) object."""
        out: dict[str, Any] = {"width": self.width, "height": self.height,
                               "bitrate": self.bitrate, "codec": self.codec}
        if self.fps is not None:
            out["fps"] = self.fps
        if self.mode is not None:
            out["mode"] = self.mode
        return out


@attrs.frozen
class Output:
    """Where the result goes: a CDN ``stream_url`` or an RTC channel (``rtc``)."""

    rtc: RtcEndpoint | None = None
    stream_url: str | None = None
    audio_option: AudioOption | None = None
    video_option: VideoOption | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str) -> Output:
        """Parse and validate the wire object at ``path``."""
        check_keys(data, ("rtc", "streamUrl", "audioOption", "videoOption"), path)
        rtc, url = _source(data, path)
        audio = get_mapping(data, "audioOption", path)
        video = get_mapping(data, "videoOption", path)
        return cls(
            rtc, url,
            None if audio is None else AudioOption.from_dict(audio, join(path, "audioOption")),
            None if video is None else VideoOption.from_dict(video, join(path, "videoOption")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The wire (camelCase) object."""
        out: dict[str, Any] = {}
        if self.rtc is not None:
            out["rtc"] = self.rtc.to_dict()
        if self.stream_url is not None:
            out["streamUrl"] = self.stream_url
        if self.audio_option is not None:
            out["audioOption"] = self.audio_option.to_dict()
        if self.video_option is not None:
            out["videoOption"] = self.video_option.to_dict()
        return out
