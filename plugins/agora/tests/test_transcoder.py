"""agora-transcoder against its sandbox: config files, lifecycle, schema ranges, rules, limits."""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from voxhub.errors import InvalidInputError
from voxhub.models import JobState
from voxhub.provider import Submitted
from voxhub.sandbox import FaultPlan, RunningSandbox
from voxhub.transport import Timeouts
from voxhub_agora.errors import TaskConflictError
from voxhub_agora.provider import BuilderToken
from voxhub_agora.sandbox_transcoder import AgoraTranscoderSandbox
from voxhub_agora.transcoder import AgoraTranscoderProvider, normalize_transcoder_status
from voxhub_agora.transcoder_config import (
    Canvas,
    Output,
    Region,
    RtcEndpoint,
    TranscoderConfig,
    VideoInput,
    VideoOption,
)

TOML_CONFIG = """
[transcoder]
idleTimeout = 300

[[transcoder.audioInputs]]
rtc = { rtcChannel = "show", rtcUid = 1001 }

[[transcoder.videoInputs]]
rtc = { rtcChannel = "show", rtcUid = 1001 }
region = { x = 0, y = 0, width = 640, height = 360, zOrder = 2 }

[transcoder.canvas]
width = 640
height = 360
color = 255

[[transcoder.outputs]]
rtc = { rtcChannel = "show-mixed", rtcUid = 2002 }
audioOption = { profileType = "AUDIO_PROFILE_DEFAULT" }
videoOption = { width = 640, height = 360, bitrate = 800, codec = "VP8" }
"""


def _config_file(tmp_path: Path, fmt: str, doc: dict[str, Any]) -> Path:
    if fmt == "json":
        path = tmp_path / "transcoder.json"
        # A whole request body is accepted as well as the bare transcoder object.
        path.write_text(json.dumps({"services": {"cloudTranscoder": {
            "serviceType": "cloudTranscoderV2", "config": {"transcoder": doc}}}}))
    else:
        path = tmp_path / "transcoder.toml"
        path.write_text(TOML_CONFIG)
    return path


@pytest.mark.parametrize("auth", ["basic", "token"])
@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_lifecycle_from_config_file(fmt: str, auth: str, tmp_path: Path, h: Any,
                                    transcoder: AgoraTranscoderProvider,
                                    tc_sandbox: RunningSandbox, make_ctx: Any) -> None:
    ctx = make_ctx(transcoder, tc_sandbox, auth=auth)
    path = _config_file(tmp_path, fmt, h.transcoder_doc())
    request = h.tc_request(config_file=str(path))
    transcoder.validate(ctx, request)
    submitted = transcoder.submit(ctx, request, h.handle_for(request))
    handle = submitted.handle
    assert set(handle.vendor_ids) == {"task_id", "builder_token_name"}
    assert submitted.status is not None and submitted.status.state is JobState.RUNNING
    assert handle.vendor_state["sequence_id"] == 0
    time.sleep(0.25)
    status = transcoder.status(ctx, handle)
    assert (status.state, status.vendor_state) == (JobState.RUNNING,
                                                   "IN_PROGRESS/serviceInProgress")

    # Full-config replacement with a strictly increasing sequenceId per task.
    moved = h.transcoder_doc()
    moved["videoInputs"][0]["region"]["x"] = 100
    handle = transcoder.update(ctx, handle, moved)
    assert handle.vendor_state["sequence_id"] == 1
    handle = transcoder.update(ctx, handle, path)
    assert handle.vendor_state["sequence_id"] == 2
    sandbox = tc_sandbox.sandbox
    assert isinstance(sandbox, AgoraTranscoderSandbox)
    task = next(iter(sandbox.tasks.values()))
    assert task.sequence == 2

    info = transcoder.fetch(ctx, handle)
    assert info.task_id == handle.vendor_ids["task_id"]
    assert info.details["sequence_id"] == "2" and info.details["service_status"]

    transcoder.close(ctx, handle)
    transcoder.close(ctx, handle)
    assert transcoder.status(ctx, handle).state is JobState.SUCCEEDED
    counters = sandbox.counters.snapshot()
    assert counters["tasks.created"] == 1 and counters["tasks.stopped"] == 1
    assert counters["tasks.updated"] == 2 and counters.get("rtc_tokens.invalid", 0) == 0
    assert counters.get("tasks.late_create", 0) == 0


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    target: Any = doc
    for key in keys[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value


_DELETE = object()

# (dotted path to change, new value, field named in the error, text in the message)
OUT_OF_RANGE = [
    ("idleTimeout", 0, "idleTimeout", "1..86400"),
    ("idleTimeout", 86401, "idleTimeout", "1..86400"),
    ("audioInputs.0.volume", -1, "audioInputs[0].volume", "0..200"),
    ("audioInputs.0.volume", 201, "audioInputs[0].volume", "0..200"),
    ("audioInputs.0.repeat", 0, "audioInputs[0].repeat", "0 is invalid"),
    ("audioInputs.0.repeat", -2, "audioInputs[0].repeat", "-1 = loop"),
    ("videoInputs.0.repeat", 0, "videoInputs[0].repeat", "0 is invalid"),
    ("videoInputs.0.region.x", -1, "videoInputs[0].region.x", "0..3840"),
    ("videoInputs.0.region.x", 3841, "videoInputs[0].region.x", "0..3840"),
    ("videoInputs.0.region.y", -1, "videoInputs[0].region.y", "0..3840"),
    ("videoInputs.0.region.y", 3841, "videoInputs[0].region.y", "0..3840"),
    ("videoInputs.0.region.width", 119, "videoInputs[0].region.width", "120..3840"),
    ("videoInputs.0.region.width", 3841, "videoInputs[0].region.width", "120..3840"),
    ("videoInputs.0.region.height", 119, "videoInputs[0].region.height", "120..3840"),
    ("videoInputs.0.region.height", 3841, "videoInputs[0].region.height", "120..3840"),
    ("videoInputs.0.region.zOrder", 1, "videoInputs[0].region.zOrder", "2..100"),
    ("videoInputs.0.region.zOrder", 101, "videoInputs[0].region.zOrder", "2..100"),
    ("audioInputs.0.rtc.rtcUid", 0, "audioInputs[0].rtc.rtcUid", "1..4294967295"),
    ("canvas.width", 119, "canvas.width", "120..3840"),
    ("canvas.width", 3841, "canvas.width", "120..3840"),
    ("canvas.height", 119, "canvas.height", "120..3840"),
    ("canvas.height", 3841, "canvas.height", "120..3840"),
    ("canvas.color", -1, "canvas.color", "0..16777215"),
    ("canvas.color", 16777216, "canvas.color", "0..16777215"),
    ("canvas.fillMode", "STRETCH", "canvas.fillMode", "FILL, FIT"),
    ("watermarks.0.region.zOrder", -1, "watermarks[0].region.zOrder", "0..100"),
    ("watermarks.0.region.zOrder", 101, "watermarks[0].region.zOrder", "0..100"),
    ("watermarks.0.region.x", 3841, "watermarks[0].region.x", "0..3840"),
    ("watermarks.0.region.width", 119, "watermarks[0].region.width", "120..3840"),
    ("watermarks.0.region.height", 3841, "watermarks[0].region.height", "120..3840"),
    ("watermarks.0.fillMode", "TILE", "watermarks[0].fillMode", "FILL, FIT"),
    ("outputs.0.videoOption.width", 119, "outputs[0].videoOption.width", "120..3840"),
    ("outputs.0.videoOption.width", 3841, "outputs[0].videoOption.width", "120..3840"),
    ("outputs.0.videoOption.height", 119, "outputs[0].videoOption.height", "120..3840"),
    ("outputs.0.videoOption.height", 3841, "outputs[0].videoOption.height", "120..3840"),
    ("outputs.0.videoOption.bitrate", 0, "outputs[0].videoOption.bitrate", "1..10000"),
    ("outputs.0.videoOption.bitrate", 10001, "outputs[0].videoOption.bitrate", "1..10000"),
    ("outputs.0.videoOption.fps", 0, "outputs[0].videoOption.fps", "1..30"),
    ("outputs.0.videoOption.fps", 31, "outputs[0].videoOption.fps", "1..30"),
    ("outputs.0.videoOption.codec", "H265", "outputs[0].videoOption.codec", "H264, VP8"),
    ("outputs.0.videoOption.mode", "FAST", "outputs[0].videoOption.mode", "RAW"),
    ("outputs.0.audioOption.profileType", "AUDIO_PROFILE_LOUD",
     "outputs[0].audioOption.profileType", "AUDIO_PROFILE_MUSIC_HIGH_QUALITY_STEREO"),
    ("streamProcessMode", "double", "streamProcessMode", "heterogeneous-single"),
    ("videoInputs.0.placeholderImageUrl", "https://x.example/a.gif",
     "videoInputs[0].placeholderImageUrl", "jpg or png"),
    ("canvas.backgroundImage", "https://x.example/bg.bmp", "canvas.backgroundImage", "jpg or png"),
    ("watermarks.0.imageUrl", "https://x.example/logo", "watermarks[0].imageUrl", "jpg or png"),
    ("outputs.0.videoOption.width", True, "outputs[0].videoOption.width", "integer"),
    ("canvas.waterMark", 1, "canvas.waterMark", "unknown field"),
]


@pytest.mark.parametrize(("path", "value", "field", "needle"), OUT_OF_RANGE,
                         ids=[f"{p}={v}" for p, v, _, _ in OUT_OF_RANGE])
def test_out_of_range_refused_locally(path: str, value: Any, field: str, needle: str, h: Any,
                                      transcoder: AgoraTranscoderProvider,
                                      tc_sandbox: RunningSandbox, make_ctx: Any) -> None:
    doc = h.transcoder_doc()
    _set(doc, path, value)
    ctx = make_ctx(transcoder, tc_sandbox)
    request = h.tc_request(config=doc)
    with pytest.raises(InvalidInputError) as info:
        transcoder.validate(ctx, request)
    with pytest.raises(InvalidInputError):
        transcoder.submit(ctx, request, h.handle_for(request))
    assert info.value.field == field
    assert field in str(info.value) and needle in str(info.value)
    assert tc_sandbox.sandbox.counters.get("requests") == 0


def _second_video(doc: dict[str, Any]) -> None:
    extra = copy.deepcopy(doc["videoInputs"][0])
    extra["rtc"]["rtcUid"] = 1002
    doc["videoInputs"].append(extra)


RULES = [
    ("raw-needs-one-video-input",
     lambda d: (_second_video(d), _set(d, "outputs.0.videoOption.mode", "RAW")),
     "outputs[0].videoOption.mode", "exactly one video input"),
    ("single-mode-one-input",
     lambda d: (d["audioInputs"].append({"streamUrl": "rtmp://cdn.example/live/x"}),
                _set(d, "streamProcessMode", "single")),
     "audioInputs", "at most 1"),
    ("heterogeneous-single-one-input",
     lambda d: (_second_video(d), _set(d, "streamProcessMode", "heterogeneous-single")),
     "videoInputs", "at most 1"),
    ("input-needs-rtc-or-url", lambda d: _set(d, "audioInputs.0.rtc", _DELETE),
     "audioInputs[0]", "either rtc or streamUrl"),
    ("input-not-both",
     lambda d: _set(d, "videoInputs.0.streamUrl", "rtmp://cdn.example/live/x"),
     "videoInputs[0]", "both rtc and streamUrl"),
    ("no-cdn-and-rtc-outputs",
     lambda d: d["outputs"].append({"streamUrl": "rtmp://cdn.example/live/out"}),
     "outputs", "mixes CDN"),
    ("one-input-channel", lambda d: _set(d, "audioInputs.0.rtc.rtcChannel", "other"),
     "videoInputs", "several channels"),
    ("outputs-required", lambda d: _set(d, "outputs", []), "outputs", "1..inf"),
    ("canvas-required-for-video", lambda d: _set(d, "canvas", _DELETE), "canvas", "required"),
    ("stream-url-scheme", lambda d: _set(d, "audioInputs.0", {"streamUrl": "ftp://x/y"}),
     "audioInputs[0].streamUrl", "rtmp"),
    ("watermark-spellings", lambda d: _set(d, "waterMarks", d["watermarks"]),
     "waterMarks", "not both"),
]


@pytest.mark.parametrize(("name", "change", "field", "needle"), RULES,
                         ids=[r[0] for r in RULES])
def test_schema_rules_refused_locally(name: str, change: Any, field: str, needle: str, h: Any,
                                      transcoder: AgoraTranscoderProvider,
                                      tc_sandbox: RunningSandbox, make_ctx: Any) -> None:
    doc = h.transcoder_doc()
    change(doc)
    ctx = make_ctx(transcoder, tc_sandbox)
    with pytest.raises(InvalidInputError) as info:
        transcoder.validate(ctx, h.tc_request(config=doc))
    assert info.value.field == field, info.value
    assert needle in str(info.value)
    assert tc_sandbox.sandbox.counters.get("requests") == 0


def test_valid_variants_are_accepted(h: Any, transcoder: AgoraTranscoderProvider,
                                     tc_sandbox: RunningSandbox, make_ctx: Any) -> None:
    ctx = make_ctx(transcoder, tc_sandbox)
    raw = h.transcoder_doc()
    raw["outputs"][0]["videoOption"]["mode"] = "RAW"
    relay = {"streamProcessMode": "single",
             "audioInputs": [{"rtc": {"rtcChannel": "a", "rtcUid": 5}}],
             "outputs": [{"rtc": {"rtcChannel": "b", "rtcUid": 6}}]}
    cdn = {"audioInputs": [{"streamUrl": "https://cdn.example/in.flv", "volume": 200,
                            "repeat": -1}],
           "outputs": [{"streamUrl": "rtmp://cdn.example/live/out"}]}
    marks = h.transcoder_doc()
    marks["waterMarks"] = marks.pop("watermarks")
    for doc in (raw, relay, cdn, marks, {"transcoder": relay}):
        transcoder.validate(ctx, h.tc_request(config=doc))
    # Built in code, checked by the same rules; the wire form round-trips.
    built = TranscoderConfig(
        outputs=(Output(rtc=RtcEndpoint("dst", 9), video_option=VideoOption(640, 360, 500,
                                                                            "H264")),),
        video_inputs=(VideoInput(Region(0, 0, 640, 360, 2), rtc=RtcEndpoint("src", 3)),),
        canvas=Canvas(640, 360),
    )
    assert TranscoderConfig.from_dict(built.validate().to_dict()) == built
    assert "rtcToken" not in repr(built.with_tokens(lambda *_: "secret-token-value"))
    bad = TranscoderConfig(outputs=(Output(stream_url="rtmp://x/y"),),
                           video_inputs=(VideoInput(Region(0, 0, 100, 360, 2),
                                                    rtc=RtcEndpoint("src", 3)),),
                           canvas=Canvas(640, 360))
    with pytest.raises(InvalidInputError, match=r"videoInputs\[0\]\.region\.width"):
        transcoder.parse_config(ctx, bad)
    assert tc_sandbox.sandbox.counters.get("requests") == 0


@pytest.mark.parametrize(("options", "field", "needle"), [
    ({}, "config", "exactly one"),
    ({"config": {}, "config_file": "x.json"}, "config_file", "exactly one"),
    ({"config_file": "/nonexistent/cfg.json"}, "config_file", "cannot read"),
    ({"config": {"outputs": "nope"}}, "outputs", "must be a list"),
    ({"config": {"services": {"cloudTranscoder": {"serviceType": "v1", "config": {}}}}},
     "services.cloudTranscoder.serviceType", "cloudTranscoderV2"),
    ({"instance_id": "bad id", "config": None}, "instance_id", "a-z"),
])
def test_config_option_problems(options: dict[str, Any], field: str, needle: str, h: Any,
                                transcoder: AgoraTranscoderProvider, tc_sandbox: RunningSandbox,
                                make_ctx: Any) -> None:
    if options.get("config", 0) is None:
        options = {**options, "config": h.transcoder_doc()}
    ctx = make_ctx(transcoder, tc_sandbox)
    with pytest.raises(InvalidInputError) as info:
        transcoder.validate(ctx, h.tc_request(**options))
    assert info.value.field == field and needle in str(info.value)


def test_bad_config_file_contents(tmp_path: Path, h: Any, transcoder: AgoraTranscoderProvider,
                                  tc_sandbox: RunningSandbox, make_ctx: Any) -> None:
    ctx = make_ctx(transcoder, tc_sandbox)
    for name, text in (("a.json", "{not json"), ("b.toml", "= nope"), ("c.cfg", "[1, 2]")):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(InvalidInputError) as info:
            transcoder.validate(ctx, h.tc_request(config_file=str(path)))
        assert info.value.field == "config_file"


def test_tokens_required_without_certificate(h: Any, transcoder: AgoraTranscoderProvider,
                                             tc_sandbox: RunningSandbox, make_ctx: Any) -> None:
    ctx = make_ctx(transcoder, tc_sandbox, app_certificate=None)
    with pytest.raises(InvalidInputError) as info:
        transcoder.validate(ctx, h.tc_request(config=h.transcoder_doc()))
    assert info.value.field == "audioInputs[0].rtc.rtcToken"


def test_bad_rtc_token_fails_the_task(h: Any, transcoder: AgoraTranscoderProvider,
                                      tc_sandbox: RunningSandbox, make_ctx: Any) -> None:
    doc = h.transcoder_doc()
    doc["outputs"][0]["rtc"]["rtcToken"] = "007eJxbroken"
    ctx = make_ctx(transcoder, tc_sandbox)
    request = h.tc_request(config=doc)
    status = transcoder.submit(ctx, request, h.handle_for(request)).status
    assert status is not None and status.state is JobState.FAILED
    assert status.reason == "service status serviceAbnormal"


def test_concurrent_creates_of_one_input_make_one_task(h: Any, make_ctx: Any,
                                                       transcoder: AgoraTranscoderProvider,
                                                       tc_sandbox: RunningSandbox) -> None:
    results: list[Submitted] = []
    barrier = threading.Barrier(4)

    def one() -> None:
        ctx = make_ctx(transcoder, tc_sandbox)
        request = h.tc_request(key="same-input", config=h.transcoder_doc())
        barrier.wait()
        results.append(transcoder.submit(ctx, request, h.handle_for(request)))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert len({r.handle.vendor_ids["task_id"] for r in results}) == 1
    assert tc_sandbox.sandbox.counters.get("tasks.created") == 1


def test_same_instance_id_elsewhere_is_a_conflict(h: Any, make_ctx: Any, tmp_path: Path,
                                                  tc_sandbox: RunningSandbox) -> None:
    first = AgoraTranscoderProvider(lock_dir=tmp_path / "machine-a")
    second = AgoraTranscoderProvider(lock_dir=tmp_path / "machine-b")
    request = h.tc_request(config=h.transcoder_doc(), instance_id="studio-1")
    first.submit(make_ctx(first, tc_sandbox), request, h.handle_for(request))
    with pytest.raises(TaskConflictError, match="studio-1") as info:
        second.submit(make_ctx(second, tc_sandbox), request, h.handle_for(request))
    assert info.value.status == 409 and info.value.request_id
    assert tc_sandbox.sandbox.counters.get("tasks.created") == 1


def test_lost_create_answer_finds_the_task(h: Any, orchestrator: Any,
                                           tc_sandbox: RunningSandbox) -> None:
    sandbox = tc_sandbox.sandbox
    assert isinstance(sandbox, AgoraTranscoderSandbox)
    tasks_path = f"/v1/projects/{sandbox.app_id}/rtsc/cloud-transcoder/tasks"
    # Seed 4: the first create is answered too late (the client times out; the task is
    # created), the next one is not. The plugin sends a create once; the core finds no
    # record and sends it again with the recorded builder token: one task either way (the
    # one create that finds the token used gets the deprecated 201 naming the task).
    sandbox.set_faults(FaultPlan(slow=0.5, slow_seconds=0.6, seed=4, only_paths=(tasks_path,)))
    orch = orchestrator(tc_sandbox, read_timeout=0.3)
    request = h.tc_request(config=h.transcoder_doc())
    try:
        handle = orch.submit(request)
        time.sleep(0.7)  # the fast test clock skipped the core's in-flight wait: let it land
    finally:
        sandbox.set_faults(FaultPlan())
    counters = sandbox.counters.snapshot()
    assert counters["tasks.created"] == 1 and counters["tasks.repeated_create"] >= 1
    assert counters["tokens.acquired"] == 1
    assert handle.vendor_ids["task_id"] == next(iter(sandbox.tasks))


def test_lost_create_answer_is_recovered_from_the_record(h: Any, orchestrator: Any,
                                                         tc_sandbox: RunningSandbox) -> None:
    sandbox = tc_sandbox.sandbox
    sandbox.script(endpoint="create", action="drop_after")
    orch = orchestrator(tc_sandbox)
    handle = orch.submit(h.tc_request(config=h.transcoder_doc()))
    counters = sandbox.counters.snapshot()
    assert counters["tasks.created"] == 1 and counters["scripted.drop_after"] == 1
    assert handle.vendor_ids["task_id"] == next(iter(sandbox.tasks))
    orch.close(handle)
    assert sandbox.counters.get("tasks.stopped") == 1


def test_stale_builder_token_is_replaced_before_create(h: Any, make_ctx: Any,
                                                       transcoder: AgoraTranscoderProvider,
                                                       tc_sandbox: RunningSandbox) -> None:
    ctx = make_ctx(transcoder, tc_sandbox)
    request = h.tc_request(config=h.transcoder_doc())
    config = transcoder.config_from(ctx, request.options)
    fresh = transcoder.acquire_builder_token(ctx, "inst", config.with_tokens(
        lambda *_: "007unused").services_body())
    stale = BuilderToken(fresh.name, "inst", ctx.clock.monotonic() - 3.0)  # > 2 s old
    submitted = transcoder.create_task(ctx, request, h.handle_for(request), builder_token=stale)
    assert submitted.handle.vendor_ids["builder_token_name"] != fresh.name
    assert tc_sandbox.sandbox.counters.get("tasks.late_create") == 0


def test_expired_builder_token_is_reacquired(h: Any, make_ctx: Any,
                                             transcoder: AgoraTranscoderProvider,
                                             tc_sandbox: RunningSandbox) -> None:
    tc_sandbox.sandbox.builder_token_ttl = 0.0  # type: ignore[attr-defined]
    ctx = make_ctx(transcoder, tc_sandbox)
    request = h.tc_request(config=h.transcoder_doc())
    with pytest.raises(Exception, match="5-minute validity"):
        transcoder.submit(ctx, request, h.handle_for(request))
    assert tc_sandbox.sandbox.counters.get("tokens.acquired") == 3  # three fresh attempts


def test_sequence_ids_shared_across_stale_handles(h: Any, make_ctx: Any,
                                                  transcoder: AgoraTranscoderProvider,
                                                  tc_sandbox: RunningSandbox) -> None:
    ctx = make_ctx(transcoder, tc_sandbox)
    request = h.tc_request(config=h.transcoder_doc())
    handle = transcoder.submit(ctx, request, h.handle_for(request)).handle
    newer = transcoder.update(ctx, handle, h.transcoder_doc())
    # Another process still holds the old handle (sequence 0): the lock record knows 1.
    again = transcoder.update(ctx, handle, h.transcoder_doc())
    assert (newer.vendor_state["sequence_id"], again.vendor_state["sequence_id"]) == (1, 2)
    assert tc_sandbox.sandbox.counters.get("updates.stale") == 0


def test_update_retried_with_next_sequence(h: Any, make_ctx: Any, clock: Any,
                                           transcoder: AgoraTranscoderProvider,
                                           tc_sandbox: RunningSandbox) -> None:
    ctx = make_ctx(transcoder, tc_sandbox)
    request = h.tc_request(config=h.transcoder_doc())
    handle = transcoder.submit(ctx, request, h.handle_for(request)).handle
    sandbox = tc_sandbox.sandbox
    assert isinstance(sandbox, AgoraTranscoderSandbox)
    sandbox.script(endpoint="update", status=503, body={"message": "overloaded"}, times=2)
    updated = transcoder.update(ctx, handle, h.transcoder_doc())
    assert updated.vendor_state["sequence_id"] == 3 and clock.slept == [1.0, 3.0]
    assert next(iter(sandbox.tasks.values())).sequence == 3


def test_not_yet_visible_after_create(h: Any, make_ctx: Any,
                                      transcoder: AgoraTranscoderProvider,
                                      tc_sandbox: RunningSandbox) -> None:
    tc_sandbox.sandbox.visible_after = 0.3  # type: ignore[attr-defined]
    ctx = make_ctx(transcoder, tc_sandbox)
    request = h.tc_request(config=h.transcoder_doc())
    handle = transcoder.submit(ctx, request, h.handle_for(request)).handle
    early = transcoder.status(ctx, handle)
    assert (early.state, early.vendor_state) == (JobState.QUEUED, "NOT_VISIBLE_YET")
    time.sleep(0.35)
    assert transcoder.status(ctx, handle).state is JobState.RUNNING


def test_rate_limit_is_respected_client_side(h: Any, orchestrator: Any,
                                             transcoder: AgoraTranscoderProvider,
                                             tc_sandbox: RunningSandbox) -> None:
    assert transcoder.info.requests_per_second == 10
    orch = orchestrator(tc_sandbox)  # the core limits every profile to the declared rate
    handle = orch.submit(h.tc_request(config=h.transcoder_doc()))  # 2 requests
    started = time.monotonic()
    for _ in range(13):
        orch.status(handle)
    # 15 requests with a burst of 10 at 10/s: the last 5 wait 0.1 s each.
    assert time.monotonic() - started >= 0.45


def test_large_output_only_warns(h: Any, make_ctx: Any, transcoder: AgoraTranscoderProvider,
                                 tc_sandbox: RunningSandbox, debug_logs: list[Any]) -> None:
    doc = h.transcoder_doc()
    doc["outputs"][0]["videoOption"].update(width=3840, height=2160)
    ctx = make_ctx(transcoder, tc_sandbox)
    transcoder.validate(ctx, h.tc_request(config=doc))
    assert any("1920x1080" in str(e.get("warning")) for e in debug_logs)


@pytest.mark.parametrize(("task", "service", "state"), [
    ("IDLE", None, JobState.QUEUED), ("PREPARED", None, JobState.QUEUED),
    ("STARTING", None, JobState.QUEUED), ("CREATED", None, JobState.QUEUED),
    ("STARTED", "serviceReady", JobState.RUNNING),
    ("IN_PROGRESS", "serviceInProgress", JobState.RUNNING),
    ("STOPPING", None, JobState.RUNNING), ("STOPPED", "serviceCompleted", JobState.SUCCEEDED),
    ("EXIT", None, JobState.SUCCEEDED), ("FAILURE_STOP", None, JobState.FAILED),
    ("IN_PROGRESS", "serviceValidationFailed", JobState.FAILED),
    ("IN_PROGRESS", "serviceAbnormal", JobState.FAILED),
    ("STOPPED", "servicePartialCompleted", JobState.SUCCEEDED),
    (None, "serviceStarted", JobState.RUNNING), (None, "serviceIdle", JobState.QUEUED),
    ("NEW_THING", "serviceUnknown", JobState.RUNNING),
])
def test_statuses_normalized(task: str | None, service: str | None, state: JobState) -> None:
    assert normalize_transcoder_status(task, service).state is state


def test_failed_create_attempt_is_resumed_with_its_token(h: Any, make_ctx: Any,
                                                          transcoder: AgoraTranscoderProvider,
                                                          tc_sandbox: RunningSandbox) -> None:
    from voxhub.errors import RequestTimeoutError as VoxTimeout

    sandbox = tc_sandbox.sandbox
    assert isinstance(sandbox, AgoraTranscoderSandbox)
    tasks_path = f"/v1/projects/{sandbox.app_id}/rtsc/cloud-transcoder/tasks"
    sandbox.set_faults(FaultPlan(slow=1.0, slow_seconds=0.3, only_paths=(tasks_path,)))
    request = h.tc_request(key="one-mix", config=h.transcoder_doc())
    impatient = make_ctx(transcoder, tc_sandbox, timeouts=Timeouts(connect=2.0, read=0.1))
    with pytest.raises(VoxTimeout) as info:
        transcoder.submit(impatient, request, h.handle_for(request))
    assert info.value.in_doubt is True
    time.sleep(0.35)
    sandbox.set_faults(FaultPlan())
    submitted = transcoder.submit(make_ctx(transcoder, tc_sandbox), request,
                                  h.handle_for(request))
    assert submitted.handle.vendor_ids["task_id"] == next(iter(sandbox.tasks))
    counters = sandbox.counters.snapshot()
    assert counters["tasks.created"] == 1 and counters["tokens.acquired"] == 1
