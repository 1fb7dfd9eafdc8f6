"""build_report and the tolerant readers, on recorded and hand-written payloads.

Every inferred shape of the README's "Callback shapes" is fed in both of its
plausible variants.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from voxhub.plugin import JobState
from voxhub.serialization import dump, load
from voxhub.store import Event
from voxhub_tupu.codes import (
    TASK_GENDER,
    TASK_SPEECH_MODERATION,
    TASK_TRANSCRIPTION,
    TASK_VULGAR_SPEECH,
)
from voxhub_tupu.provider import _callback_status, _status_from_search
from voxhub_tupu.report import (
    TUPU_TZ,
    build_report,
    callback_payloads,
    parse_bool,
    parse_epoch,
    parse_rate,
    parse_time,
    request_ids,
)

RID = "61275d377b8d07d33a10cde0"
CST = timedelta(hours=8)


def _seg(start: str, end: str, **extra: Any) -> dict[str, Any]:
    return {"requestId": RID, "roomId": "111111", "userId": "23231", "forumId": "321313",
            "sliceStartTime": start, "sliceEndTime": end,
            "speechUrl": f"http://cdn.example/{start[-2:]}.wav", **extra}


# A recorded run of the sandbox (documented variant), trimmed: what the store keeps.
RECORDED: list[dict[str, Any]] = [
    {"code": 0, "message": "success", "timestamp": 1552391372490, "nonce": "0.0162",
     TASK_TRANSCRIPTION: {"texts": [_seg("2026-01-02 03:04:05", "2026-01-02 03:04:15",
                                         content="大家好")]}},
    {"code": 0, "message": "success", "timestamp": 1552391382490, "nonce": "0.0163",
     TASK_TRANSCRIPTION: {"texts": [_seg("2026-01-02 03:04:15", "2026-01-02 03:04:25",
                                         content="加微信买便宜货")]},
     TASK_SPEECH_MODERATION: {"texts": [_seg(
         "2026-01-02 03:04:15", "2026-01-02 03:04:25", content="加微信买便宜货",
         action="block", label="ADs", review=False, rate=0.97,
         details=[{"keyword": "加微信", "hint": "加微信买便宜货", "mainLabel": "ADs",
                   "subLabel": "contact"}])]}},
    {"code": 0, "message": "success", "timestamp": 1552391392490, "nonce": "0.0164",
     TASK_VULGAR_SPEECH: {"texts": [_seg("2026-01-02 03:04:25", "2026-01-02 03:04:35",
                                         label=1, review=True, rate=0.91)]}},
    {"code": 0, "requestId": RID, "status": "end", "nonce": "0.8954065702381435",
     "timestamp": 1629969759333},
]

# The same run in the other plausible shape of every inferred field.
ALTERNATE: list[dict[str, Any]] = [
    {"code": "0", "message": "success", "timestamp": "1552391372490", "nonce": 0.0162,
     TASK_TRANSCRIPTION: {"texts": [_seg("2026-01-02 03:04:05", "2026-01-02 03:04:15",
                                         content="大家好")]}},
    {"code": "0", "timestamp": "1552391382490", "nonce": 0.0163,
     TASK_SPEECH_MODERATION: {"violations": [_seg(
         "2026-01-02 03:04:15", "2026-01-02 03:04:25", content="加微信买便宜货",
         action="block", label="ADs", review="false", rate="0.97",
         details=[{"key": "加微信", "hint": "加微信买便宜货", "mainLabel": "ADs"}])]}},
    {"code": "0", "timestamp": "1552391392490", "nonce": 0.0164,
     TASK_VULGAR_SPEECH: {"speechs": [_seg("2026-01-02 03:04:25", "2026-01-02 03:04:35",
                                           label="1", review="true", rate="0.91")]}},
    {"code": "0", "requestId": RID, "status": "end", "nonce": 0.89, "timestamp": "1629969759333"},
]


@pytest.mark.parametrize("payloads", [RECORDED, ALTERNATE], ids=["documented", "alternate"])
def test_build_report_from_recorded_payloads(payloads: list[dict[str, Any]]) -> None:
    report = build_report("vx_1", payloads, request_id=RID)
    assert report.ended and report.provider == "tupu" and report.job_id == "vx_1"
    assert [s.text for s in report.transcript] == ["大家好", "加微信买便宜货"]
    first = report.transcript[0]
    assert first.start == datetime(2026, 1, 2, 3, 4, 5, tzinfo=TUPU_TZ)
    assert first.start.utcoffset() == CST  # type: ignore[union-attr]
    assert first.end == datetime(2026, 1, 1, 19, 4, 15, tzinfo=UTC)
    ads, vulgar = report.findings
    assert (ads.label, ads.action, ads.score, ads.review) == ("ADs", "block", 0.97, False)
    assert ads.text == "加微信买便宜货" and ads.evidence_url == "http://cdn.example/15.wav"
    assert ads.details["keywords"] == ["加微信"] and ads.details["hints"] == ["加微信买便宜货"]
    assert ads.details["matches"][0]["main_label"] == "ADs"
    assert ads.details["userId"] == "23231" and ads.details["task_id"] == TASK_SPEECH_MODERATION
    assert (vulgar.label, vulgar.score, vulgar.review) == ("vulgar", 0.91, True)
    assert vulgar.start == datetime(2026, 1, 2, 3, 4, 25, tzinfo=TUPU_TZ)
    assert vulgar.details["task"] == "vulgar"
    assert report.raw == payloads
    # The report survives the store's round trip.
    assert load(dump(report), type(report)) == report


def test_moderation_text_not_transcribed_becomes_a_slice() -> None:
    payload = {"code": 0, TASK_SPEECH_MODERATION: {"texts": [_seg(
        "2026-01-02 03:04:05", "2026-01-02 03:04:15", content="你好", action="pass",
        label="Normal", rate=0.99, review=False, details=[])]}}
    report = build_report("vx", [payload])
    assert [s.text for s in report.transcript] == ["你好"]
    assert report.findings == () and not report.ended


def test_file_shaped_entries_with_numeric_times() -> None:
    # The async file API's shapes: numbers for times (seconds into the media).
    payload = {
        "code": 0, "requestId": RID,
        TASK_VULGAR_SPEECH: {"violations": [{"label": 1, "review": False, "details": [
            {"startTime": 5, "endTime": 10, "label": 1, "rate": 0.8},
            {"startTime": 12, "endTime": 15, "label": 1, "rate": 0.9}]}]},
        TASK_SPEECH_MODERATION: {"text": "whole text", "violations": [
            {"startTime": 3.5, "endTime": "7", "content": "bad", "action": "review",
             "label": 3, "rate": None, "review": 1,
             "details": [{"keyword": "(A+B)", "hint": "bad", "mainLabel": "Porn"}]}]},
    }
    report = build_report("vx", [payload])
    vulgar = next(f for f in report.findings if f.details["task"] == "vulgar")
    assert (vulgar.start, vulgar.end, vulgar.label) == (5.0, 15.0, "vulgar")
    assert len(vulgar.details["matches"]) == 2
    moderation = next(f for f in report.findings if f.details["task"] == "moderation")
    assert (moderation.start, moderation.end) == (3.5, 7.0)
    assert (moderation.label, moderation.score, moderation.review) == ("3", None, True)
    assert moderation.details["keywords"] == ["(A+B)"]
    assert [s.text for s in report.transcript] == ["bad"]


def test_normal_entries_are_not_findings() -> None:
    base = ("2026-01-02 03:04:05", "2026-01-02 03:04:15")
    payload = {"code": 0,
               TASK_VULGAR_SPEECH: {"texts": [_seg(*base, label=0, rate=0.01),
                                              _seg(*base, label="0", rate="0.02")]},
               TASK_SPEECH_MODERATION: {"texts": [
                   _seg(*base, content="a", action="pass", label="Normal"),
                   _seg(*base, content="b", label="normal"),
                   _seg(*base, content="c", action="PASS", label="Porn"),  # action wins
               ]}}
    assert build_report("vx", [payload]).findings == ()


def test_violations_without_label_and_other_tasks() -> None:
    payload = {"code": 0,
               TASK_VULGAR_SPEECH: {"violations": [{"requestId": RID, "speechUrl": "u"}]},
               TASK_GENDER: {"texts": [{"requestId": RID, "label": "female"}]}}
    report = build_report("vx", [payload])
    assert [(f.label, f.evidence_url) for f in report.findings] == [("vulgar", "u")]
    assert report.raw == [payload]  # other tasks are kept raw


def test_request_id_filter_duplicates_and_store_events() -> None:
    other = json.loads(json.dumps(RECORDED[1]).replace(RID, "someone-else"))
    events: list[Any] = [
        Event(1, "vx", 0.0, "callback", RECORDED[0]),
        {"type": "callback", "data": RECORDED[1]},
        {"type": "state", "data": {"state": "running"}},
        Event(2, "vx", 0.0, "error", {"error": "x"}),
        RECORDED[1],  # a redelivery
        other,
        "garbage",
    ]
    assert len(callback_payloads(events)) == 3
    report = build_report("vx", events, request_id=RID)
    assert [s.text for s in report.transcript] == ["大家好", "加微信买便宜货"]
    assert len(report.findings) == 1
    assert len(build_report("vx", events).findings) == 2  # no filter: both streams


def test_findings_and_slices_are_in_time_order() -> None:
    later, earlier = RECORDED[2], RECORDED[1]
    report = build_report("vx", [later, RECORDED[0], earlier])
    assert [f.label for f in report.findings] == ["ADs", "vulgar"]
    assert [s.text for s in report.transcript] == ["大家好", "加微信买便宜货"]


def test_parse_time_variants() -> None:
    wall = datetime(2026, 1, 2, 3, 4, 5, tzinfo=TUPU_TZ)
    assert parse_time("2026-01-02 03:04:05") == wall
    assert parse_time(" 2026/01/02 03:04:05 ") == wall
    assert parse_time("2026-01-02T03:04:05+08:00") == wall
    assert parse_time("2026-01-01T19:04:05Z") == wall
    assert parse_time(wall.timestamp()) == wall
    assert parse_time(str(int(wall.timestamp() * 1000))) == wall
    assert parse_time(5) == 5.0 and parse_time("7.5") == 7.5
    odd: Any
    for odd in (None, "", "yesterday", True, [], {}):
        assert parse_time(odd) is None
    assert parse_epoch(1552391372490) == datetime(2019, 3, 12, 11, 49, 32, 490000, tzinfo=UTC)
    assert parse_epoch("1552391372") == datetime(2019, 3, 12, 11, 49, 32, tzinfo=UTC)
    assert parse_epoch(12) is None and parse_epoch("x") is None


def test_scalar_readers() -> None:
    assert parse_rate("0.5") == 0.5 and parse_rate(1) == 1.0
    assert parse_rate(None) is None and parse_rate("high") is None and parse_rate(True) is None
    assert parse_bool("true") is True and parse_bool(0) is False and parse_bool("no") is False
    assert parse_bool(None) is None and parse_bool("maybe") is None


def test_request_ids_top_level_and_entries() -> None:
    assert request_ids(RECORDED[3]) == [RID]
    assert request_ids(RECORDED[0]) == [RID]
    assert request_ids({"requestId": 123}) == ["123"]
    assert request_ids({"code": 0, "x": {"texts": [{"requestId": True}]}}) == []


def test_callback_status_variants() -> None:
    assert _callback_status(RECORDED[0]).state is JobState.RUNNING
    for end in (RECORDED[3], ALTERNATE[3]):
        status = _callback_status(end)
        assert (status.state, status.vendor_state) == (JobState.SUCCEEDED, "end")
    failed = _callback_status({"code": 17, "requestId": RID, "status": "end",
                               "message": "too many"})
    assert failed.state is JobState.FAILED and failed.reason == "code 17"
    assert "concurrency" in (failed.detail or "") and "too many" in (failed.detail or "")
    odd = _callback_status({"code": "E1", "requestId": RID, "status": "end"})
    assert odd.state is JobState.FAILED and odd.reason == "code E1"


@pytest.mark.parametrize(
    ("payload", "state", "vendor_state"),
    [
        ({"code": 0, "result": [{"requestId": "a", "status": "running"},
                                {"requestId": RID, "status": "closed"}]},
         JobState.SUCCEEDED, "closed"),
        ({"code": 0, "result": {"requestId": RID, "status": "end", "code": 0}},
         JobState.SUCCEEDED, "end"),
        ({"code": 0, "result": [{"requestId": RID, "status": "end", "code": "400"}]},
         JobState.FAILED, "end"),
        ({"code": 0, "status": "pending"}, JobState.QUEUED, "pending"),
        ({"code": 0, "result": [{"requestId": RID, "state": "processing"}]},
         JobState.RUNNING, "processing"),
        ({"code": 0, "result": [{"requestId": RID, "status": 1}]}, JobState.RUNNING, "1"),
        ({"code": 0, "result": []}, JobState.RUNNING, None),
        ({"code": 0, "result": [{"requestId": RID, "status": "error"}]}, JobState.FAILED,
         "error"),
    ],
)
def test_search_answers_read_tolerantly(
    payload: dict[str, Any], state: JobState, vendor_state: str | None
) -> None:
    status = _status_from_search(payload, RID)
    assert (status.state, status.vendor_state) == (state, vendor_state)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["texts", "violations", "speechs", "details", "label", "rate",
                         "review", "action", "content", "sliceStartTime", "startTime",
                         "requestId", "status", "code", "keyword", "speechUrl"]),
        inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(
    st.sampled_from([TASK_TRANSCRIPTION, TASK_SPEECH_MODERATION, TASK_VULGAR_SPEECH, "code",
                     "status", "requestId"]), _json, max_size=4), max_size=4))
def test_build_report_never_raises_on_odd_payloads(payloads: list[dict[str, Any]]) -> None:
    report = build_report("vx", payloads)
    assert len(report.raw) <= len(payloads)
    for payload in payloads:
        _callback_status(payload)
        request_ids(payload)
