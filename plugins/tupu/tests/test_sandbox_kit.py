"""The Tupu sandbox on the kit: werkzeug routes, scripted answers, timers, media text.

Also what the provider makes of answers that are not Tupu's signed envelopes
(unsigned gateway pages, lost answers, rate limits), driven through the kit's
scripted answers and faults over real HTTP.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
from tupu_helpers import MakeCtx, Start, new_handle, request, setup, submit
from voxhub.clock import FakeClock
from voxhub.plugin import JobState, NotFoundError, ProviderError, RateLimitedError
from voxhub.sandbox import FaultPlan
from voxhub.sandbox_kit import media_text, wav_info
from voxhub_tupu.codes import TASK_TRANSCRIPTION
from voxhub_tupu.provider import TupuProvider
from voxhub_tupu.report import build_report
from voxhub_tupu.sandbox import TupuSandbox
from voxhub_tupu.sandbox_content import slices_from_audio

HELLO_WAV = Path(__file__).resolve().parents[3] / "docs" / "samples" / "hello.wav"
STREAM = "/v3/recognition/speech/stream"


def test_routes_answer_404_and_405_like_a_server(tupu_sandbox: Start) -> None:
    server = tupu_sandbox()
    sid = server.settings()["secret_id"]
    assert urllib3.request("POST", f"{server.base_url}/v3/nothing/here").status == 404
    assert urllib3.request("GET", f"{server.base_url}{STREAM}/{sid}").status == 405
    assert urllib3.request("GET", f"{server.base_url}{STREAM}/close/{sid}").status == 405
    assert urllib3.request("GET", f"{server.base_url}/media/unknown/0.wav").status == 404
    # An unsigned POST reaches the vendor logic: refused with Tupu's code, signed.
    answer = urllib3.request("POST", f"{server.base_url}{STREAM}/search/{sid}", body=b"{}",
                             headers={"Content-Type": "application/json"})
    assert answer.status == 200 and set(json.loads(answer.data)) == {"json", "signature"}
    assert server.sandbox.counters.get("answers.code.12") == 1  # no timestamp


def test_a_lost_submit_answer_is_in_doubt_and_the_stream_exists(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context)
    sandbox.script(endpoint="submit", action="drop_after")
    with pytest.raises(ProviderError) as info:
        submit(ctx, provider, tasks=["transcription"])
    assert info.value.in_doubt, "the stream may run: the core must resolve it, not resend"
    assert sandbox.counters.get("streams.submitted") == 1
    assert sandbox.counters.get("scripted.drop_after") == 1
    # The submit was sent once: a POST is never replayed by the transport.
    assert sandbox.counters.get(f"POST {STREAM}/{sandbox.secret_id}") == 1


def test_an_unsigned_404_from_search_means_running(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context)
    handle = submit(ctx, provider, tasks=["transcription"], callback_rules="violations")
    script = {"endpoint": "search", "status": 404, "body": {"error": "no such endpoint"}}
    control = urllib3.request("POST", f"{sandbox.root_url}/_sandbox/script",
                              body=json.dumps(script).encode())
    assert control.status == 200
    status = provider.status(ctx, handle)
    assert status.state is JobState.RUNNING and "unavailable" in (status.detail or "")
    # Without the script, the same call reads the stream's state from the signed answer.
    assert provider.status(ctx, handle).vendor_state in ("running", "end")
    # A signed "no data found" (code 16) is not softened: the stream is unknown.
    with pytest.raises(NotFoundError) as info:
        provider.status(ctx, handle.with_vendor(ids={"requestId": "0" * 24}))
    assert info.value.code == 16


def test_an_unsigned_2xx_answer_is_refused_as_unsigned(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context)
    handle = submit(ctx, provider, tasks=["transcription"])
    sandbox.script(endpoint="close", status=200, body={"error": "gateway says hi"})
    with pytest.raises(ProviderError, match="without a signed body") as info:
        provider.close(ctx, handle)
    assert info.value.code == "unsigned" and "gateway says hi" in str(info.value)
    provider.close(ctx, handle)  # the next answer is Tupu's own again


def test_rate_limits_keep_retry_after(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    server = tupu_sandbox(faults=FaultPlan(rate_limited=1.0, retry_after=7))
    ctx = make_context(server, receiver=receiver, clock=FakeClock(start=time.time()))
    handle = new_handle().with_vendor(ids={"requestId": "abc"})
    with pytest.raises(RateLimitedError) as info:
        TupuProvider().status(ctx, handle)
    assert info.value.retry_after == 7 and info.value.status == 429
    assert info.value.code == "unsigned"


def test_streams_finish_on_timers_that_reset_cancels(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context, loop=True)
    handle = submit(ctx, provider, tasks=["transcription"])
    receiver.wait_for(lambda r: len(r.for_job(handle.job_id)) >= 2)
    assert len(sandbox.timers) >= 1, "the stream's next slice waits on a kit timer"
    sandbox.reset()
    assert len(sandbox.timers) == 0 and sandbox.stream(handle.vendor_ids["requestId"]) is None
    seen = len(receiver.for_job(handle.job_id))
    time.sleep(0.3)  # six slice intervals: nothing more is sent for a forgotten stream
    assert len(receiver.for_job(handle.job_id)) <= seen + 1  # at most one already in flight


def test_audio_content_has_the_words_the_recognizer_hears(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    heard = media_text(HELLO_WAV, default=None) or ""  # "" when no recognizer is installed
    info = wav_info(HELLO_WAV)
    assert info is not None
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context, audio=str(HELLO_WAV),
                                   audio_slice_seconds=1.0)
    slices = sandbox.content
    assert len(slices) == math.ceil(info.duration)
    assert " ".join(s.text for s in slices if s.text) == heard
    assert [s.media_start for s in slices] == [float(i) for i in range(len(slices))]
    assert sum(s.duration for s in slices) == pytest.approx(info.duration)

    handle = submit(ctx, provider, tasks=["transcription"])
    receiver.wait_for(lambda r: r.ended(handle.job_id) and sum(
        TASK_TRANSCRIPTION in p for p in r.payloads(handle.job_id)) == len(slices))
    report = build_report(handle.job_id, receiver.payloads(handle.job_id))
    assert " ".join(s.text for s in report.transcript if s.text) == heard


def test_audio_that_is_not_wav_needs_a_recognizer(tmp_path: Path) -> None:
    missing = tmp_path / "nope.wav"
    with pytest.raises(ValueError, match="does not exist"):
        TupuSandbox(audio=missing)
    noise = tmp_path / "noise.bin"
    noise.write_bytes(b"\x00not audio at all" * 100)
    if media_text(noise, default=None):
        pytest.fail("a recognizer heard words in bytes that are not audio")
    with pytest.raises(ValueError, match=r"cannot read .* as WAV"):
        slices_from_audio(noise)


def test_unsigned_answers_and_requests_are_not_logged_with_secrets(
    tupu_sandbox: Start, receiver: Any, make_context: MakeCtx
) -> None:
    # The secretId travels in the URL path; a refusal quoting the URL must not leak it.
    sandbox, ctx, provider = setup(tupu_sandbox, receiver, make_context)
    sandbox.script(endpoint="submit", status=503, body="upstream unavailable")
    with pytest.raises(ProviderError) as info:
        provider.submit(ctx, provider.validate(ctx, request()), new_handle())
    assert info.value.status == 503 and info.value.in_doubt
    assert sandbox.secret_id not in str(info.value) and sandbox.secret_id not in repr(info.value)
