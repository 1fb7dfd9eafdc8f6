"""Reading Rev's documents tolerantly, and mapping its error answers onto voxhub's errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from voxhub.plugin import (
    AuthenticationError,
    InvalidInputError,
    JobState,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    Response,
)
from voxhub_revai.api import RevApi
from voxhub_revai.errors import error_from_response
from voxhub_revai.schema import Problem, RevJob, RevTranscript, parse_time, to_transcript


@pytest.fixture
def read(kit):
    """Read a Rev document as the provider does (:meth:`RevApi.read`)."""
    api = RevApi(kit.make_ctx(base_url="http://127.0.0.1:9"))

    def read(data: Any, cls: type, *, operation: str) -> Any:
        return api.read(data, cls, operation)

    return read


def _resp(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
    data = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    return Response(status=status, headers=headers or {}, data=data, url="http://x/jobs")


@pytest.mark.parametrize(("status", "state"), [
    ("in_progress", JobState.RUNNING), ("transcribed", JobState.SUCCEEDED),
    ("failed", JobState.FAILED), ("completed", JobState.SUCCEEDED),
    ("queued", JobState.RUNNING), (None, JobState.RUNNING), ("TRANSCRIBED", JobState.SUCCEEDED),
])
def test_status_mapping_never_crashes(read, status, state):
    data: dict[str, Any] = {"id": "j1", "created_on": "2018-05-05T23:23:22.29Z"}
    if status is not None:
        data["status"] = status
    job = read({**data, "failure": "download_failure", "failure_detail": "no"}, RevJob,
               operation="status")
    mapped = job.to_status()
    assert mapped.state is state
    assert mapped.vendor_state == (status or "unknown")
    if state is JobState.FAILED:
        assert (mapped.reason, mapped.detail) == ("download_failure", "no")
    else:
        assert mapped.reason is None


def test_job_reading_is_tolerant(read):
    job = read({"id": "j1", "status": "transcribed", "duration_seconds": "2.51",
                "new_field": {"x": 1}, "delete_after_seconds": None}, RevJob, operation="x")
    assert job.duration_seconds == 2.51
    assert job.raw["new_field"] == {"x": 1}
    with pytest.raises(ProviderError, match="unexpected answer") as missing:
        read({"status": "transcribed"}, RevJob, operation="status")
    assert missing.value.operation == "status"
    with pytest.raises(ProviderError, match="RevJob"):
        read(["not", "a", "job"], RevJob, operation="status")


def test_parse_time_variants():
    assert parse_time("2018-05-05T23:23:22.29Z") == datetime(2018, 5, 5, 23, 23, 22, 290000,
                                                             tzinfo=UTC)
    assert parse_time("2018-09-15T05:14:38.13") == datetime(2018, 9, 15, 5, 14, 38, 130000,
                                                            tzinfo=UTC)
    assert parse_time("2024-01-01T00:00:00.1234567Z") is not None
    assert parse_time("2024-01-01T00:00:00+02:00") is not None
    assert parse_time("yesterday") is None and parse_time(None) is None


def test_transcript_conversion_rebuilds_text_exactly(read):
    raw = {"monologues": [
        {"speaker": 1, "speaker_info": {"id": "s1", "display_name": "Ann"}, "elements": [
            {"type": "text", "value": "Hi", "ts": 0.075, "end_ts": 0.43, "confidence": 0.96},
            {"type": "punct", "value": ","},
            {"type": "punct", "value": " "},
            {"type": "unknown", "value": "<inaudible>"},
            {"type": "punct", "value": " "},
            {"type": "text", "value": "there", "ts": 1.0, "end_ts": 1.2},
            {"type": "punct", "value": "."},
        ]},
        {"speaker": "2", "elements": [{"type": "text", "value": "Yo", "ts": 2, "end_ts": 2.5,
                                       "confidence": 0.5}, {"type": "punct", "value": "!"}]},
        {"elements": []},
    ]}
    job = read({"id": "j", "status": "transcribed", "duration_seconds": 3.5,
                "language": "en"}, RevJob, operation="fetch")
    t = to_transcript(read(raw, RevTranscript, operation="fetch"), job, "vx_1", raw=raw)
    first, second, empty = t.segments
    assert first.text == "Hi, <inaudible> there."
    assert first.speaker == "1" and second.speaker == "2" and empty.speaker is None
    assert [w.text for w in first.words] == ["Hi", "there"]
    assert first.words[1].confidence is None
    assert (first.start, first.end) == (0.075, 1.2)
    assert first.confidence == 0.96
    assert t.text == "Hi, <inaudible> there. Yo!"
    assert t.duration == 3.5 and t.language == "en" and t.job_id == "vx_1"
    assert (empty.start, empty.end, empty.text) == (None, None, "")


def test_problem_accepts_both_spellings():
    doc_example = Problem.from_json({
        "parameter": {"media_url": ["The media_url field is required"]},
        "type": "https://www.rev.ai/api/v1/errors/invalid-parameters",
        "title": "Your request parameters didn't validate", "status": 400})
    schema_example = Problem.from_json({
        "parameters": {"limit": "too big"}, "type": "https://rev.ai/api/v1/errors/x/",
        "details": "plural detail", "error": "ignored when title is set", "title": "T"})
    sdk_403 = Problem.from_json({"error": "forbidden", "status": 403, "extra_member": 1})
    assert doc_example.kind == "invalid-parameters"
    assert doc_example.parameters == {"media_url": ("The media_url field is required",)}
    assert schema_example.kind == "x" and schema_example.detail == "plural detail"
    assert schema_example.parameters == {"limit": ("too big",)}
    assert sdk_403.title == "forbidden" and sdk_403.extra == {"extra_member": 1}
    assert Problem.from_json("nonsense") == Problem()


def test_error_mapping_by_status():
    one = error_from_response(_resp(400, {"parameters": {"limit": ["over 1000"]},
                                          "title": "bad", "status": 400,
                                          "type": "https://rev.ai/api/v1/errors/invalid-parameters"}),
                              "list")
    assert isinstance(one, InvalidInputError) and one.field == "limit"
    assert "limit: over 1000" in str(one)
    assert one.details["parameters"] == {"limit": ["over 1000"]}
    assert one.details["code"] == "invalid-parameters"
    two = error_from_response(_resp(400, {"parameter": {"a": ["x"], "b": ["y"]}}), "submit")
    assert isinstance(two, InvalidInputError) and two.field is None
    assert set(two.details["parameters"]) == {"a", "b"}
    assert isinstance(error_from_response(_resp(401, {"title": "denied", "status": 401}), "s"),
                      AuthenticationError)
    assert isinstance(error_from_response(_resp(403, {"error": "no"}), "s"),
                      PermissionDeniedError)
    nf = error_from_response(_resp(404, {"type": "https://rev.ai/api/v1/errors/job-not-found",
                                         "title": "could not find job"}), "status")
    assert isinstance(nf, NotFoundError) and nf.code == "job-not-found"
    vocab = error_from_response(_resp(404, {"title": "nope"}), "submit",
                                sent={"custom_vocabulary_id": "cv"})
    assert isinstance(vocab, InvalidInputError) and vocab.field == "custom_vocabulary_id"
    too_big = error_from_response(_resp(413, {"title": "too large", "status": 413}), "submit")
    assert isinstance(too_big, InvalidInputError) and too_big.field == "media"
    conflict = error_from_response(_resp(409, {
        "allowed_values": ["transcribed", "failed"], "current_value": "in_progress",
        "type": "https://rev.ai/api/v1/errors/invalid-job-state",
        "title": "Job is in invalid state"}), "close")
    assert type(conflict) is ProviderError and conflict.status == 409
    assert "still in_progress" in str(conflict)
    assert conflict.details["allowed_values"] == ["transcribed", "failed"]
    limited = error_from_response(_resp(429, {"title": "slow"}, {"Retry-After": "7"}), "s")
    assert isinstance(limited, RateLimitedError) and limited.retry_after == 7
    gateway = error_from_response(_resp(502, b"<html>bad gateway</html>"), "submit")
    assert isinstance(gateway, ProviderUnavailableError) and gateway.status == 502
    assert "bad gateway" in str(gateway)
    bare = error_from_response(_resp(500), "status")
    assert isinstance(bare, ProviderUnavailableError) and "HTTP 500" in str(bare)
