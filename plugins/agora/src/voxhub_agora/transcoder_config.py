"""The Cloud Transcoder configuration (``services.cloudTranscoder.config.transcoder``), as attrs.

Every range of the seed's schema (the API reference of ``builderTokens``) is checked
before anything is sent; a problem names the field by its JSON path and says what is
allowed, e.g. ``videoInputs[0].region.zOrder: 1 is out of range (allowed 2..100)``.

Read a configuration with :meth:`TranscoderConfig.from_dict` (or :func:`load_config`
for a JSON or TOML file); build one in code and call :meth:`TranscoderConfig.validate`.
The sandbox parses what it receives with the same code.

Documentation conflicts and choices: the schema table says ``watermarks``, the
examples ``waterMarks`` — both are read, ``watermarks`` is sent. ``canvas`` is
marked required; it is required here whenever video is involved (video inputs or a
``videoOption``), since an audio-only task has nothing to draw. The ranges allow up
to 3840 px while the quota page caps output at 1920x1080: 3840 is accepted and a
larger-than-1080p output only produces a warning.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ._checks import (
    UINT32_MAX,
    FieldError,
    as_mapping,
    check_channel,
    check_image_url,
    check_keys,
    check_stream_url,
    get_int,
    get_list,
    get_mapping,
    get_str,
    join,
)

__all__ = [
    "CODECS",
    "FILL_MODES",
    "PROFILE_TYPES",
    "STREAM_PROCESS_MODES",
    "AudioInput",
    "AudioOption",
    "Canvas",
    "Output",
    "Region",
    "RtcEndpoint",
    "TranscoderConfig",
    "VideoInput",
    "VideoOption",
    "Watermark",
    "load_config",
    "transcoder_section",
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


def _items(data: Mapping[str, Any], key: str, *, required: bool = False,
           min_items: int = 0) -> list[tuple[str, Mapping[str, Any]]]:
    items = get_list(data, key, "", required=required, min_items=min_items) or []
    return [(join(key, i), as_mapping(item, join(key, i))) for i, item in enumerate(items)]


@attrs.frozen
class TranscoderConfig:
    """``services.cloudTranscoder.config.transcoder``: inputs, canvas, watermarks, outputs."""

    outputs: tuple[Output, ...]
    audio_inputs: tuple[AudioInput, ...] = ()
    video_inputs: tuple[VideoInput, ...] = ()
    canvas: Canvas | None = None
    watermarks: tuple[Watermark, ...] = ()
    idle_timeout: int | None = None
    stream_process_mode: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TranscoderConfig:
        """Parse and fully validate a ``transcoder`` object (see :func:`transcoder_section`).

        Raises:
            FieldError: the first problem, naming the field path and the allowed values.
        """
        if not isinstance(data, Mapping):
            raise FieldError("transcoder", "must be an object")
        keys = ("idleTimeout", "streamProcessMode", "audioInputs", "videoInputs", "canvas",
                "watermarks", "waterMarks", "outputs")
        check_keys(data, keys, "")
        if "watermarks" in data and "waterMarks" in data:
            raise FieldError("waterMarks", "give either watermarks or waterMarks, not both")
        idle = get_int(data, "idleTimeout", "", low=IDLE_TIMEOUT[0], high=IDLE_TIMEOUT[1])
        mode = get_str(data, "streamProcessMode", "", choices=STREAM_PROCESS_MODES)
        audio = tuple(AudioInput.from_dict(item, p) for p, item in _items(data, "audioInputs"))
        video = tuple(VideoInput.from_dict(item, p) for p, item in _items(data, "videoInputs"))
        canvas_data = get_mapping(data, "canvas", "")
        canvas = None if canvas_data is None else Canvas.from_dict(canvas_data, "canvas")
        mark_key = "waterMarks" if "waterMarks" in data else "watermarks"
        marks = tuple(Watermark.from_dict(item, p) for p, item in _items(data, mark_key))
        outputs = tuple(Output.from_dict(item, p)
                        for p, item in _items(data, "outputs", required=True, min_items=1))
        config = cls(outputs, audio, video, canvas, marks, idle,
                     None if mode == "mix" else mode)
        config._check_rules()
        return config

    def _check_rules(self) -> None:
        """Cross-field rules of the schema (stream modes, channels, RAW, outputs)."""
        if self.stream_process_mode in SINGLE_MODES:
            for key, items in (("audioInputs", self.audio_inputs),
                               ("videoInputs", self.video_inputs)):
                if len(items) > 1:
                    raise FieldError(key, f"has {len(items)} items (allowed at most 1 in "
                                     f"streamProcessMode {self.stream_process_mode!r})")
        inputs: tuple[AudioInput | VideoInput, ...] = (*self.audio_inputs, *self.video_inputs)
        channels = {i.rtc.channel for i in inputs if i.rtc is not None}
        if len(channels) > 1:
            raise FieldError("videoInputs" if self.video_inputs else "audioInputs",
                             "RTC inputs come from several channels (allowed: one channel)")
        kinds = {"rtc" if o.rtc is not None else "cdn" for o in self.outputs}
        if len(kinds) > 1:
            raise FieldError("outputs", "mixes CDN (streamUrl) and RTC outputs (allowed: one "
                             "kind per task)")
        out_channels = {o.rtc.channel for o in self.outputs if o.rtc is not None}
        if len(out_channels) > 1:
            raise FieldError("outputs", "publishes to several RTC channels (allowed: one)")
        for index, output in enumerate(self.outputs):
            video = output.video_option
            if video is not None and video.mode == "RAW" and len(self.video_inputs) != 1:
                raise FieldError(
                    f"outputs[{index}].videoOption.mode",
                    f"RAW needs exactly one video input (found {len(self.video_inputs)})")
        has_video = bool(self.video_inputs) or any(o.video_option for o in self.outputs)
        if has_video and self.canvas is None and self.stream_process_mode is None:
            raise FieldError("canvas", "is required when the task composes video")

    def validate(self) -> TranscoderConfig:
        """Check a configuration built in code by the same rules as a parsed one."""
        return TranscoderConfig.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The wire ``transcoder`` object (camelCase, absent fields omitted)."""
        out: dict[str, Any] = {}
        if self.idle_timeout is not None:
            out["idleTimeout"] = self.idle_timeout
        if self.stream_process_mode is not None:
            out["streamProcessMode"] = self.stream_process_mode
        if self.audio_inputs:
            out["audioInputs"] = [i.to_dict() for i in self.audio_inputs]
        if self.video_inputs:
            out["videoInputs"] = [i.to_dict() for i in self.video_inputs]
        if self.canvas is not None:
            out["canvas"] = self.canvas.to_dict()
        if self.watermarks:
            out["watermarks"] = [w.to_dict() for w in self.watermarks]
        out["outputs"] = [o.to_dict() for o in self.outputs]
        return out

    def services_body(self) -> dict[str, Any]:
        """The ``{"services": ...}`` body of acquire, create and update."""
        return {"services": {"cloudTranscoder": {
            "serviceType": SERVICE_TYPE, "config": {"transcoder": self.to_dict()},
        }}}

    @property
    def input_channel(self) -> str | None:
        """The one RTC channel inputs come from, if any."""
        inputs: tuple[AudioInput | VideoInput, ...] = (*self.audio_inputs, *self.video_inputs)
        for item in inputs:
            if item.rtc is not None:
                return item.rtc.channel
        return None

    @property
    def output_channel(self) -> str | None:
        """The RTC channel outputs go to, if any."""
        return next((o.rtc.channel for o in self.outputs if o.rtc is not None), None)

    def endpoints(self) -> list[tuple[str, RtcEndpoint]]:
        """Every RTC endpoint with its path (``videoInputs[0].rtc``), inputs first."""
        found: list[tuple[str, RtcEndpoint]] = []
        groups: tuple[tuple[str, tuple[AudioInput | VideoInput | Output, ...]], ...] = (
            ("audioInputs", self.audio_inputs), ("videoInputs", self.video_inputs),
            ("outputs", self.outputs))
        for key, items in groups:
            for index, item in enumerate(items):
                if item.rtc is not None:
                    found.append((f"{key}[{index}].rtc", item.rtc))
        return found

    def with_tokens(self, make: Callable[[str, RtcEndpoint, bool], str | None]) -> TranscoderConfig:
        """A copy where endpoints without a token get ``make(path, endpoint, is_input)``.

        Inputs are joined with a random uid by the transcoder, so their token must be
        built for uid 0; an output's token is built for its own ``rtcUid`` (seed text).
        """

        def fill(item: Any, is_input: bool, path: str) -> Any:
            rtc = item.rtc
            if rtc is None or rtc.token is not None:
                return item
            return attrs.evolve(item, rtc=attrs.evolve(rtc, token=make(path, rtc, is_input)))

        return attrs.evolve(
            self,
            audio_inputs=tuple(fill(i, True, f"audioInputs[{n}].rtc")
                               for n, i in enumerate(self.audio_inputs)),
            video_inputs=tuple(fill(i, True, f"videoInputs[{n}].rtc")
                               for n, i in enumerate(self.video_inputs)),
            outputs=tuple(fill(o, False, f"outputs[{n}].rtc") for n, o in enumerate(self.outputs)),
        )

    def missing_tokens(self) -> list[str]:
        """Paths of RTC endpoints still without a token."""
        return [join(path, "rtcToken") for path, rtc in self.endpoints() if rtc.token is None]

    def warnings(self) -> list[str]:
        """Accepted but doubtful settings (outputs above the documented 1920x1080 cap)."""
        found = []
        for index, output in enumerate(self.outputs):
            video = output.video_option
            if video is not None and (max(video.width, video.height) > max(MAX_OUTPUT_PIXELS)
                                      or min(video.width, video.height) > min(MAX_OUTPUT_PIXELS)):
                found.append(f"outputs[{index}].videoOption is {video.width}x{video.height}, "
                             "above the documented maximum of 1920x1080")
        return found


def transcoder_section(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``transcoder`` object inside any of the accepted document shapes.

    Accepted: a whole request body (``{"services": {"cloudTranscoder": ...}}``),
    ``{"config": {"transcoder": ...}}``, ``{"transcoder": ...}``, or the transcoder
    object itself.
    """
    doc: Any = document
    if isinstance(doc, Mapping) and "services" in doc:
        doc = as_mapping(doc["services"], "services")
        doc = as_mapping(doc.get("cloudTranscoder"), "services.cloudTranscoder")
        service_type = doc.get("serviceType", SERVICE_TYPE)
        if service_type != SERVICE_TYPE:
            raise FieldError("services.cloudTranscoder.serviceType",
                             f"{service_type!r} is not allowed (allowed: {SERVICE_TYPE})")
    if isinstance(doc, Mapping) and "config" in doc and isinstance(doc["config"], Mapping):
        doc = doc["config"]
    if isinstance(doc, Mapping) and "transcoder" in doc:
        doc = doc["transcoder"]
    return as_mapping(doc, "transcoder")


def load_config(path: str | Path) -> Mapping[str, Any]:
    """Read a configuration document from a ``.json`` or ``.toml`` file.

    Other suffixes are tried as JSON, then TOML.

    Raises:
        FieldError: (path ``config_file``) when the file cannot be read or parsed.
    """
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise FieldError("config_file", f"cannot read {file}: {exc.strerror or exc}") from None
    suffix = file.suffix.lower()
    parsers: list[tuple[str, Callable[[str], Any]]] = [("JSON", json.loads),
                                                       ("TOML", tomllib.loads)]
    if suffix == ".toml":
        parsers.reverse()
    elif suffix == ".json":
        parsers = parsers[:1]
    problems = []
    for name, parse in parsers:
        try:
            data = parse(text)
        except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
            problems.append(f"not valid {name}: {exc}")
            continue
        if not isinstance(data, Mapping):
            raise FieldError("config_file", f"{file} must contain an object")
        return data
    raise FieldError("config_file", f"{file} is {'; '.join(problems)}")

