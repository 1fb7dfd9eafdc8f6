"""Results in the job store: the fast transcript text reads back exactly, secrets stay masked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from voxhub import JobHandle, JobKind, JobRequest, JobState, JobStatus, RemoteUrl, Transcript
from voxhub._records import dumps
from voxhub._store_text import handle_text, result_text
from voxhub.models import (
    ModerationFinding,
    ModerationReport,
    Segment,
    TaskInfo,
    Word,
    new_job_id,
)
from voxhub.redact import MASK, Secret, redact
from voxhub.serialization import dump
from voxhub.store import Store


def slow_text(result: Any) -> str:
    """How the store wrote results before the fast path: the rules it must keep."""
    return dumps(redact(dump(result)))


def transcript(raw: Any = None, text: str = "안녕하세요 world", word: str = "세계") -> Transcript:
    words = (Word(0.0, 0.5, "안녕하세요", 0.98), Word(0.5, 1.25, word, None), Word(None, None, "x"))
    segments = (
        Segment(0.0, 1.25, text, speaker="화자 1", confidence=0.875, words=words),
        Segment(None, None, "", speaker=None, confidence=None, words=()),
        Segment(2.0, 3.0, "émoji 🎙", speaker="2", confidence=1.0, words=(Word(2.0, 3.0, "🎙"),)),
    )
    return Transcript(
        "revai", "job-1", text, language="ko", duration=3.0, segments=segments, raw=raw
    )


RAW = {
    "monologues": [{"speaker": 0, "elements": [{"type": "text", "value": "안녕", "ts": 0.5}]}],
    "nested": [1, 2.5, None, True, (3, 4)],
    "number_keys": {1: "one"},
}


def store_and_read(store_at: Path | str, result: Any) -> tuple[Any, str]:
    store = Store(store_at)
    request = JobRequest(provider="echo", media=RemoteUrl("http://x/a"), kind=JobKind.TRANSCRIPTION)
    handle = JobHandle(new_job_id(), "echo", JobKind.TRANSCRIPTION, "echo")
    store.record(request, handle)
    store.set_final(handle.job_id, JobStatus(JobState.SUCCEEDED), result)
    back = store.result(handle.job_id)
    (text,) = store._db.reader().execute(
        "SELECT result FROM results WHERE job_id=?", (handle.job_id,)
    ).fetchone()
    store.close()
    return back, text


@pytest.mark.parametrize("raw", [None, RAW, ["a", 1], "plain text"])
def test_a_transcript_reads_back_exactly(store_at: Path | str, raw: Any) -> None:
    result = transcript(raw)
    back, text = store_and_read(store_at, result)
    assert back == result  # words, speakers, confidences, unicode
    assert back.raw == json.loads(slow_text(result))["raw"]  # raw is not compared by ==
    assert json.loads(text) == json.loads(slow_text(result))
    assert "\\u" not in text  # Korean stays Korean


def test_the_fast_text_is_the_slow_one_for_plain_transcripts() -> None:
    result = transcript(RAW)
    assert result_text(result) == slow_text(result)


@pytest.mark.parametrize(
    "result",
    [
        ModerationReport(
            "p", "j", (ModerationFinding("hate", 0.5, datetime(2026, 1, 1, tzinfo=UTC), 2.0),)
        ),
        TaskInfo("p", "j", "t1", JobState.SUCCEEDED, details={"k": [1, 2]}),
        transcript({"at": datetime(2026, 1, 1, tzinfo=UTC)}),  # raw only cattrs can dump
    ],
)
def test_other_results_keep_the_cattrs_path(store_at: Path | str, result: Any) -> None:
    back, text = store_and_read(store_at, result)
    assert json.loads(text) == json.loads(slow_text(result))
    assert back == result


def test_secret_values_and_keys_are_masked_as_before(store_at: Path | str) -> None:
    secret = "tr4nscr1pt-s3cret-" + new_job_id()
    Secret(secret)
    cases = [
        transcript(text=f"said {secret} aloud"),  # in a segment's text
        transcript(word=secret),  # in one word
        transcript({"access_token": "short"}),  # a secret-looking key in raw
        transcript({"note": f'quoted "{secret}"'}),  # inside an escaped string
        transcript({"lines": f"first\n{secret}"}),
        transcript({"x": Secret("another-s3cret-value")}),  # a Secret object in raw
    ]
    for result in cases:
        text = result_text(result)
        assert json.loads(text) == json.loads(slow_text(result))
        assert secret not in text and "short" not in text and "another-s3cret" not in text
    back, text = store_and_read(store_at, cases[1])
    assert secret not in text
    assert back.segments[0].words[1].text == MASK


def test_stores_written_the_slow_way_still_read(store_at: Path | str) -> None:
    result = transcript(RAW)
    _, _ = store_and_read(store_at, result)
    slow = json.dumps(redact(dump(result)))
    store = Store(store_at)
    store._db.write(lambda conn: conn.execute("UPDATE results SET result=?", (slow,)))
    (record,) = store.jobs()
    assert store.result(record.job_id) == result
    store.close()


def test_handles_and_statuses_are_written_as_cattrs_writes_them() -> None:
    from voxhub._records import status_data

    handle = JobHandle(
        new_job_id(),
        "agora",
        JobKind.TRANSCRIPTION,
        "prod",
        endpoint="https://api.example/v1",
        vendor_ids={"task": "t-1", "builder_token": "b-2"},
        vendor_state={"seq": 3, "names": ["가", "b"], "nested": {"x": None}},
        idempotency_key="k",
        created_at=datetime(2026, 11, 27, 12, 0, 1, 250, tzinfo=UTC),
    )
    assert handle_text(handle) == dumps(dump(handle))
    odd = JobHandle(
        new_job_id(), "p", JobKind.TRANSCRIPTION, "p", vendor_state={"at": handle.created_at}
    )
    assert handle_text(odd) == dumps(dump(odd))  # a value only cattrs can dump
    status = JobStatus(JobState.FAILED, "error", "vendor_error", "détail", 0.5)
    assert dumps(status_data(status)) == dumps(dump(status))


@pytest.mark.parametrize("vendor_state", [{"seq": 1, "ids": ["a"]}, {"pair": (1, 2)}])
def test_a_written_handle_is_what_another_process_reads(
    store_at: Path | str, vendor_state: dict[str, Any]
) -> None:
    store = Store(store_at)
    request = JobRequest(provider="echo", media=RemoteUrl("http://x/a"), kind=JobKind.TRANSCRIPTION)
    handle = JobHandle(
        new_job_id(), "echo", JobKind.TRANSCRIPTION, "echo", vendor_state=vendor_state
    )
    record, _ = store.record(request, handle)
    fresh = Store(store_at)
    assert record.handle == fresh.get(handle.job_id).handle
    store.mark_submitted(handle.with_vendor({"job": "v-9"}), JobStatus(JobState.RUNNING))
    found = store.get(handle.job_id)
    assert found.handle == fresh.get(handle.job_id).handle
    assert found.handle.vendor_ids == {"job": "v-9"}
    store.close()
    fresh.close()
