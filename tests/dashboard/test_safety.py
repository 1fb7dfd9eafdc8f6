"""Safe by default: no secret in any answer, audio only for stored files, own hosts only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from voxhub.listing import JobFilter


@pytest.mark.both_stores
def test_no_secret_shows_in_any_page_api_answer_or_export(
    world: Any, dashboard: Any, page: Any, kit: Any
) -> None:
    # On PostgreSQL, the database's password is one of ``world.secrets`` too.
    paths = ["", "api/batches"]
    for batch_id in world.batches.values():
        paths += [f"batches/{batch_id}", f"api/batches/{batch_id}",
                  f"batches/{batch_id}?state=failed&provider=echo"]  # fmt: skip
    rows = list(world.orch.store.listing.rows(JobFilter()))
    assert len(rows) > 70
    for row in rows:
        if row.batch == world.batches["live"]:
            continue  # sixty of the same
        paths += [f"jobs/{row.job_id}", f"api/jobs/{row.job_id}"]
        if row.has_result:
            paths += [f"jobs/{row.job_id}/transcript"]
            paths += [f"jobs/{row.job_id}/export/{fmt}" for fmt in ("txt", "json", "srt", "vtt")]
    for path in paths:
        answer = dashboard.get(path)
        assert answer.status == 200, (path, answer.status)
        kit.assert_no_secret(answer.data.decode(), path, world.secrets)
    # An unknown batch's message names the store: by its path, or its URL masked.
    for path in ("batches/vb_nope", "api/batches/vb_nope"):
        answer = dashboard.get(path)
        text = answer.data.decode()
        assert answer.status == 404 and "in the store" in text, (path, text)
        kit.assert_no_secret(text, path, world.secrets)
        if world.kind == "postgresql":
            assert ":***@127.0.0.1:" in text, text
    # The job whose URL carried them shows where they were, masked.
    secret_job = world.jobs["secret_url"]
    page.goto(f"{dashboard.url}jobs/{secret_job}")
    kit.assert_no_secret(page.content(), "the rendered page", world.secrets)
    media = page.locator("#media").inner_text()
    assert "X-Amz-Signature=***" in media and "X-Amz-Credential=***" in media
    # A URL that needs credentials is not played from the page.
    page.goto(f"{dashboard.url}jobs/{secret_job}/transcript")
    assert page.locator("audio").count() == 0
    kit.assert_no_secret(page.content(), "the transcript page", world.secrets)


def test_audio_is_served_only_for_files_of_stored_jobs_with_ranges(
    world: Any, dashboard: Any
) -> None:
    job_id = world.jobs["transcript"]
    whole = (world.media / "hello.wav").read_bytes()
    answer = dashboard.get(f"jobs/{job_id}/audio")
    assert answer.status == 200 and answer.data == whole
    assert (
        answer.headers["Content-Type"] == "audio/x-wav" or "wav" in answer.headers["Content-Type"]
    )
    assert answer.headers["Accept-Ranges"] == "bytes"
    part = dashboard.get(f"jobs/{job_id}/audio", Range="bytes=1000-1999")
    assert part.status == 206 and part.data == whole[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(whole)}"
    tail = dashboard.get(f"jobs/{job_id}/audio", Range="bytes=-10")
    assert tail.status == 206 and tail.data == whole[-10:]

    refused = [
        "jobs/vx_00000000000000000000/audio",  # no such job
        f"jobs/{world.jobs['secret_url']}/audio",  # a URL, not a local file
        "jobs/..%2F..%2F..%2Fetc%2Fpasswd/audio",
        "jobs/%2Fetc%2Fpasswd/audio",
        "audio?path=/etc/passwd",
        "static/..%2F..%2Fdashboard%2Fapp.py",
        "static/app.py",
    ]
    for path in refused:
        answer = dashboard.get(path)
        assert answer.status == 404, (path, answer.status)
        assert b"root:" not in answer.data


def test_a_file_removed_after_its_job_is_refused_too(
    world: Any, dashboard: Any, kit: Any, tmp_path: Path
) -> None:
    from voxhub import JobRequest, LocalFile

    gone = kit.write_wav(world.media / "gone.wav")
    outcome = world.orch.run(JobRequest(provider="echo", media=LocalFile(gone)))
    job_id = outcome.handle.job_id
    assert dashboard.get(f"jobs/{job_id}/audio").status == 200
    gone.unlink()
    assert dashboard.get(f"jobs/{job_id}/audio").status == 404


def test_only_the_dashboards_own_host_is_answered_and_headers_are_strict(
    world: Any, dashboard: Any
) -> None:
    rebound = dashboard.get("", Host="attacker.example")
    assert rebound.status == 421
    answer = dashboard.get("")
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert dashboard.get("api/batches/vb_nope").status == 404
    bad = dashboard.get(f"batches/{world.batches['nightly']}?state=bogus")
    assert bad.status == 400 and b"state must be one of" in bad.data
    assert dashboard.get(f"batches/{world.batches['nightly']}?page=0").status == 400
    assert dashboard.get("jobs/vx_nope").status == 404
