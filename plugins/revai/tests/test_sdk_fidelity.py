"""The official SDK (rev-ai 2.21.0) runs against the sandbox unchanged: the emulator is faithful."""

from __future__ import annotations

import pytest

apiclient = pytest.importorskip("rev_ai.apiclient")
models = pytest.importorskip("rev_ai.models")
requests = pytest.importorskip("requests")


def _poll(kit, client, job_id: str) -> object:
    def done() -> object:
        job = client.get_job_details(job_id)
        return job if job.status != models.JobStatus.IN_PROGRESS else None

    return kit.wait_until(done)


def test_sdk_full_lifecycle(kit, make_sandbox, wav, media_server):
    run = make_sandbox(processing_seconds=0.1)
    client = apiclient.RevAiAPIClient(run.sandbox.token, url=run.base_url)

    local = client.submit_job_local_file(str(wav), metadata="from the sdk",
                                         skip_diarization=True)
    assert local.status == models.JobStatus.IN_PROGRESS
    assert local.name == "hello.wav"  # the SDK sends the full path; Rev keeps the name
    by_url = client.submit_job_url(media_url=f"{media_server.url}/hello.wav",
                                   metadata="url job")
    by_source = client.submit_job_url(
        source_config=models.CustomerUrlData(f"{media_server.url}/private/hello.wav",
                                             {"Authorization": "Bearer media-key"}),
        notification_config=None,
    )
    for job in (local, by_url, by_source):
        details = _poll(kit, client, job.id)
        assert details.status == models.JobStatus.TRANSCRIBED
        assert details.duration_seconds == 3.0

    text = client.get_transcript_text(local.id)
    assert text.startswith("Speaker 0    00:00:00    Hello there.")
    as_json = client.get_transcript_json(by_url.id)
    assert as_json["monologues"][0]["elements"][0]["type"] == "text"
    transcript = client.get_transcript_object(by_source.id)
    words = [e.value for m in transcript.monologues for e in m.elements if e.type_ == "text"]
    assert words[:2] == ["Hello", "there"]

    srt = client.get_captions(local.id)
    vtt = client.get_captions(local.id, content_type=models.CaptionType.VTT)
    assert srt.startswith("1\n") and vtt.startswith("WEBVTT")

    listed = client.get_list_of_jobs()
    assert [j.id for j in listed] == [by_source.id, by_url.id, local.id]
    assert [j.id for j in client.get_list_of_jobs(limit=1, starting_after=by_url.id)] == [
        local.id]
    account = client.get_account()
    assert account.balance_seconds > 0

    for job in (local, by_url, by_source):
        client.delete_job(job.id)
    assert client.get_list_of_jobs() == []


def test_sdk_sees_rev_error_statuses(make_sandbox, wav):
    run = make_sandbox(processing_seconds=5)
    client = apiclient.RevAiAPIClient(run.sandbox.token, url=run.base_url)
    job = client.submit_job_local_file(str(wav))
    with pytest.raises(requests.HTTPError) as conflict:
        client.delete_job(job.id)
    assert conflict.value.response.status_code == 409
    body = conflict.value.response.json()
    assert body["allowed_values"] == ["transcribed", "failed"]
    assert body["current_value"] == "in_progress"
    with pytest.raises(requests.HTTPError) as not_ready:
        client.get_transcript_text(job.id)
    assert not_ready.value.response.status_code == 409
    with pytest.raises(requests.HTTPError) as missing:
        client.get_job_details("nosuchjob")
    assert missing.value.response.status_code == 404
    with pytest.raises(requests.HTTPError) as invalid:
        client.submit_job_url(media_url="https://media.example.com/a.mp3",
                              speaker_channels_count=12)
    assert invalid.value.response.status_code == 400
    assert "speaker_channels_count" in invalid.value.response.json()["parameter"]
    bad = apiclient.RevAiAPIClient("wrong-token", url=run.base_url)
    with pytest.raises(requests.HTTPError) as denied:
        bad.get_account()
    assert denied.value.response.status_code == 401
