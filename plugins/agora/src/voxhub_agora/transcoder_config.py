"""The Cloud Transcoder configuration (``services.cloudTranscoder.config.transcoder``), as attrs.

Every range of the seed's schema (the API reference of ``builderTokens``) is checked
before anything is sent; a problem names the field by its JSON path and says what is
allowed, e.g. ``videoInputs[0].region.zOrder: 1 is out of range (allowed 2..100)``.

Read a configuration with :meth:`TranscoderConfig.from_dict` (or :func:`load_config`
for a JSON or TOML file); build one in code and call :meth:`TranscoderConfig.validate`.
The sandbox checks what it receives with its own rules (:mod:`.sandbox_transcoder_rules`).
The pieces (regions, inputs, canvas, outputs) are in :mod:`.transcoder_parts`,
re-exported here.

Documentation conflicts and choices: the schema table says ``watermarks``, the
examples ``waterMarks`` — both are read, ``watermarks`` is sent. Seed ``001`` marks
``canvas`` (with ``width``, ``height``, ``color``) and ``watermarks`` required, so both
are always sent: ``watermarks`` as ``[]`` when there is none (an array with no item is
the documented way to say "no watermark"), and a task that composes nothing gets the
canvas :func:`default_canvas` (the first output video's size, else the smallest
documented size, 120x120, black). Composing video inputs without a canvas is still
refused: the layout is the user's to choose. The ranges allow up to 3840 px while the
quota page caps output at 1920x1080: 3840 is accepted and a larger-than-1080p output
only produces a warning.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ._checks import (
    FieldError,
    as_mapping,
    check_keys,
    get_int,
    get_list,
    get_mapping,
    get_str,
    join,
)
from .transcoder_parts import (
    CODECS,
    FILL_MODES,
    IDLE_TIMEOUT,
    MAX_OUTPUT_PIXELS,
    PROFILE_TYPES,
    SERVICE_TYPE,
    SINGLE_MODES,
    SIZE,
    STREAM_PROCESS_MODES,
    AudioInput,
    AudioOption,
    Canvas,
    Output,
    Region,
    RtcEndpoint,
    VideoInput,
    VideoOption,
    Watermark,
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
    "default_canvas",
    "load_config",
    "transcoder_section",
]


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
        # Both are required by seed 001, even when nothing is drawn.
        out["canvas"] = (self.canvas or default_canvas(self.outputs)).to_dict()
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


def default_canvas(outputs: tuple[Output, ...]) -> Canvas:
    """The canvas sent when the configuration has none (nothing is composed).

    The first output's video size when there is one (the picture is that big anyway),
    else 120x120, the smallest size seed ``001`` allows; black (``color`` 0), no image.
    """
    video = next((o.video_option for o in outputs if o.video_option is not None), None)
    if video is None:
        return Canvas(SIZE[0], SIZE[0], 0)
    return Canvas(video.width, video.height, 0)


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

