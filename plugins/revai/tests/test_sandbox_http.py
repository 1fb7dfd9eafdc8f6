"""The emulator's HTTP surface, spoken to directly: bodies and statuses as Rev sends them."""

from __future__ import annotations

import json
from typing import Any

import pytest
import urllib3
from voxhub.sandbox_kit import FaultPlan
from voxhub_revai import plugin
from voxhub_revai.sandbox import PLACEHOLDER_TEXT, RevaiSandbox
from voxhub_revai.schema import TRANSCRIPT_JSON

API = "/speechtotext/v1"


class Client:
    def __init__(self, run: Any, token: str | None = None) -> None:
        self.base = run.base_url + API
        self.token = token or run.sandbox.token
        self.pool = urllib3.PoolManager(retries=False)

    def __call__(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                 **kw: Any) -> urllib3.BaseHTTPResponse:
        hdrs = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        return self.pool.request(method, self.base + path, headers=hdrs, **kw)

    def url_job(self, **options: Any) -> dict[str, Any]:
        resp = self("POST", "/jobs", json={
            "source_config": {"url": "https://media.example.com/a.mp3"}, **options})
        assert resp.status == 200, resp.data
        return resp.json()  # type: ignore[no-any-return]


def test_auth_401_body_is_exactly_revs(sandbox):
    resp = Client(sandbox, token="nope")("GET", "/jobs")
    assert resp.status == 401
    assert resp.json() == {"title": "Authorization has been denied for this request",
                           "status": 401}
    no_header = urllib3.request("GET", sandbox.base_url + API + "/account")
    assert no_header.status == 401


def test_other_region_token_403(sandbox):
    resp = Client(sandbox, token=sandbox.sandbox.other_region_token)("GET", "/account")
    assert resp.status == 403
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert resp.json()["status"] == 403


def test_submit_json_shapes(sandbox):
    c = Client(sandbox)
    job = c.url_job(metadata="hello", verbatim=False, delete_after_seconds=0)
    assert set(job) >= {"id", "created_on", "status", "type", "language"}
    assert job["status"] == "in_progress" and job["type"] == "async"
    assert job["metadata"] == "hello" and job["verbatim"] is False
    assert job["delete_after_seconds"] == 0
    assert job["created_on"].endswith("Z")
    legacy = c("POST", "/jobs", json={"media_url": "https://media.example.com/b.mp3"}).json()
    assert legacy["media_url"] == "https://media.example.com/b.mp3"
    assert legacy["name"] == "b.mp3"


@pytest.mark.parametrize(("body", "param"), [
    ({}, "media_url"),
    ({"media_url": "https://a.example/a.mp3", "source_config": {"url": "https://a.example/b"}},
     "media_url"),
    ({"source_config": {"url": "https://a.example/a.mp3", "auth_headers": {"X": "y"}}},
     "source_config.auth_headers"),
    ({"media_url": "https://a.example/a.mp3", "metadata": "m" * 513}, "metadata"),
    ({"media_url": "https://a.example/a.mp3", "rush": True}, "rush"),
    ({"media_url": "https://a.example/a.mp3", "transcriber": "human",
      "speakers_count": 2}, "speakers_count"),
    ({"media_url": "https://a.example/a.mp3", "custom_vocabulary_id": "cv_sandbox",
      "custom_vocabularies": [{"phrases": ["x"]}]}, "custom_vocabularies"),
    ({"media_url": "https://a.example/a.mp3", "callback_url": "https://h.example/",
      "notification_config": {"url": "https://h.example/"}}, "notification_config"),
    ({"media_url": "https://a.example/a.mp3", "skip_diarization": "yes"}, "skip_diarization"),
    ({"media_url": "https://a.example/a.mp3", "delete_after_seconds": 2_592_001},
     "delete_after_seconds"),
])
def test_submit_400_problem_per_parameter(sandbox, body, param):
    resp = Client(sandbox)("POST", "/jobs", json=body)
    assert resp.status == 400
    problem = resp.json()
    assert problem["type"] == "https://www.rev.ai/api/v1/errors/invalid-parameters"
    assert problem["title"] == "Your request parameters didn't validate"
    assert param in problem["parameter"]
    assert all(isinstance(r, list) and r for r in problem["parameter"].values())
    assert sandbox.sandbox.counters.get("jobs.created") == 0


def test_multipart_errors(make_sandbox, wav):
    run = make_sandbox(max_upload_bytes=1000)
    c = Client(run)
    too_big = c("POST", "/jobs", fields={"media": ("a.wav", b"x" * 5000, "audio/wav")})
    assert too_big.status == 413
    assert "type" not in too_big.json() and too_big.json()["status"] == 413
    no_media = c("POST", "/jobs", fields={"options": "{}"})
    assert no_media.status == 400 and "media" in no_media.json()["parameter"]
    bad_options = c("POST", "/jobs", fields={"media": ("a.wav", b"x", "audio/wav"),
                                              "options": "not json"})
    assert bad_options.status == 400 and "options" in bad_options.json()["parameter"]
    url_in_upload = c("POST", "/jobs", fields={
        "media": ("a.wav", b"x", "audio/wav"),
        "options": json.dumps({"media_url": "https://a.example/a.mp3"})})
    assert url_in_upload.status == 400
    assert run.sandbox.counters.get("jobs.created") == 0


def test_concurrent_upload_limit(make_sandbox):
    run = make_sandbox(max_concurrent_uploads=0)
    resp = Client(run)("POST", "/jobs", fields={"media": ("a.wav", b"x", "audio/wav")})
    assert resp.status == 429
    assert resp.json()["type"].endswith("/too-many-requests")


def test_eu_deployment_refuses_human_with_404(make_sandbox):
    run = make_sandbox(region="eu")
    assert run.settings()["region"] == "eu"
    resp = Client(run)("POST", "/jobs", json={"media_url": "https://a.example/a.mp3",
                                               "transcriber": "human"})
    assert resp.status == 404


def test_list_limits_and_pages(sandbox):
    c = Client(sandbox)
    ids = [c.url_job()["id"] for _ in range(3)]
    assert [j["id"] for j in c("GET", "/jobs").json()] == ids[::-1]
    assert c("GET", "/jobs?limit=0").json() == []
    over = c("GET", "/jobs?limit=1001")
    assert over.status == 400 and "limit" in over.json()["parameter"]
    assert c("GET", "/jobs?limit=abc").status == 400
    assert c("GET", "/jobs?starting_after=unknown").status == 400
    assert [j["id"] for j in c("GET", f"/jobs?starting_after={ids[2]}&limit=1").json()] == [
        ids[1]]
    # A deleted job still anchors the next page.
    assert c("DELETE", f"/jobs/{ids[1]}").status == 204
    assert [j["id"] for j in c("GET", f"/jobs?starting_after={ids[1]}").json()] == [ids[0]]


def test_transcript_accept_variants(make_sandbox):
    run = make_sandbox(processing_seconds=0)
    c = Client(run)
    job_id = c.url_job()["id"]
    path = f"/jobs/{job_id}/transcript"
    as_json = c("GET", path, headers={"Accept": TRANSCRIPT_JSON})
    assert as_json.status == 200
    assert as_json.headers["Content-Type"].startswith(TRANSCRIPT_JSON)
    text = "".join(e["value"] for m in as_json.json()["monologues"] for e in m["elements"])
    assert text == PLACEHOLDER_TEXT
    plain = c("GET", path, headers={"Accept": "text/plain"})
    assert plain.status == 200 and plain.data.decode().startswith("Speaker 0    00:00:00    ")
    wrong = c("GET", path, headers={"Accept": "*/*"})
    assert wrong.status == 406
    problem = wrong.json()
    assert problem["allowed_values"] == [TRANSCRIPT_JSON, "text/plain"]
    assert problem["current_value"] == "*/*"
    assert problem["type"].endswith("/unsupported-output-format")
    bad_caption = c("GET", f"/jobs/{job_id}/captions", headers={"Accept": "application/json"})
    assert bad_caption.status == 406
    default_caption = c("GET", f"/jobs/{job_id}/captions")
    assert default_caption.headers["Content-Type"].startswith("application/x-subrip")
    vtt = c("GET", f"/jobs/{job_id}/captions", headers={"Accept": "text/vtt"})
    assert vtt.data.startswith(b"WEBVTT")


def test_states_409_and_404(make_sandbox):
    run = make_sandbox(processing_seconds=30)
    c = Client(run)
    job_id = c.url_job()["id"]
    for path in (f"/jobs/{job_id}/transcript", f"/jobs/{job_id}/captions"):
        resp = c("GET", path, headers={"Accept": "text/plain" if "transcript" in path
                                       else "text/vtt"})
        assert resp.status == 409
        assert resp.json()["allowed_values"] == ["transcribed"]
        assert resp.json()["current_value"] == "in_progress"
    delete = c("DELETE", f"/jobs/{job_id}")
    assert delete.status == 409
    assert delete.json()["type"] == "https://rev.ai/api/v1/errors/invalid-job-state"
    missing = c("GET", "/jobs/nosuchjob")
    assert missing.status == 404 and missing.json()["type"].endswith("/job-not-found")
    assert c("DELETE", "/jobs/nosuchjob").status == 404
    assert c("GET", "/nothing-here").status == 404
    assert c("PUT", "/jobs").status == 405


def test_skip_punctuation_and_profanity_and_disfluencies(make_sandbox, media_dir, kit):
    path = kit.write_wav(media_dir / "rude.wav", seconds=2)
    (media_dir / "rude.wav.txt").write_text("Um well, damn it.")
    run = make_sandbox()
    c = Client(run)
    data = path.read_bytes()
    resp = c("POST", "/jobs", fields={
        "media": ("rude.wav", data, "audio/wav"),
        "options": json.dumps({"skip_punctuation": True, "filter_profanity": True,
                               "remove_disfluencies": True})})
    job_id = resp.json()["id"]
    mono = c("GET", f"/jobs/{job_id}/transcript", headers={"Accept": TRANSCRIPT_JSON}).json()
    values = [e["value"] for m in mono["monologues"] for e in m["elements"]]
    assert values == ["well", "d**n", "it"]
    plain = c("GET", f"/jobs/{job_id}/transcript", headers={"Accept": "text/plain"})
    assert plain.data.decode().strip().endswith("well d**n it")


def test_store_uploads_false_discards_the_body(make_sandbox, wav):
    run = make_sandbox(store_uploads=False)
    c = Client(run)
    resp = c("POST", "/jobs", fields={"media": ("hello.wav", wav.read_bytes(), "audio/wav")})
    assert resp.status == 200
    assert run.sandbox.counters.get("uploads.bytes") == wav.stat().st_size
    assert not list(run.sandbox._dir.glob("upload-*"))
    text = c("GET", f"/jobs/{resp.json()['id']}/transcript",
             headers={"Accept": "text/plain"}).data.decode()
    assert "Hello there." in text  # found by name in the sidecar dirs


def test_control_api_and_rate_limit_body(make_sandbox):
    run = make_sandbox(faults=FaultPlan(rate_limited=1.0, retry_after=3))
    c = Client(run)
    resp = c("GET", "/account")
    assert resp.status == 429 and resp.headers["Retry-After"] == "3"
    assert resp.json()["status"] == 429
    counters = urllib3.request("GET", run.base_url + "/_sandbox/counters").json()
    assert counters["faults.rate_limited"] == 1
    reset = urllib3.request("POST", run.base_url + "/_sandbox/reset")
    assert reset.status == 200


def test_plugin_registration():
    providers = plugin.register_providers()
    sandboxes = plugin.register_sandboxes()
    assert [p.name for p in providers] == ["revai"]
    assert sandboxes[0].provider == "revai"
    sb = sandboxes[0].create()
    assert isinstance(sb, RevaiSandbox)
    sb.close()
    sb = RevaiSandbox()
    try:
        assert sb.credentials() == {"token": sb.token}
        assert sb.settings("http://127.0.0.1:1") == {"base_url": "http://127.0.0.1:1",
                                                     "token": sb.token}
    finally:
        sb.close()
    with pytest.raises(ValueError, match="region"):
        RevaiSandbox(region="mars")
    with pytest.raises(ValueError, match="failure_rate"):
        RevaiSandbox(failure_rate=2)
