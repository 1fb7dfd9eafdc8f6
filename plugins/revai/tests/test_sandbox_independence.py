"""The Rev.ai sandbox judges raw HTTP on its own, as Rev's API reference says Rev does.

Requests are built by hand (urllib3, http.client), never by the provider, so a
client that misread Rev's documents cannot make its own mistakes pass here.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import urllib3
from werkzeug.wrappers import Request, Response

API = "/speechtotext/v1"
URL_JOB = {"source_config": {"url": "https://media.example.com/a.mp3"}}


def _send(run: Any, method: str, path: str, *, auth: str | None = "bearer",
          **kw: Any) -> urllib3.BaseHTTPResponse:
    headers = dict(kw.pop("headers", {}))
    if auth == "bearer":
        headers["Authorization"] = f"Bearer {run.sandbox.token}"
    elif auth is not None:
        headers["Authorization"] = auth
    return urllib3.request(method, run.base_url + API + path, headers=headers,
                           retries=False, **kw)


@pytest.mark.parametrize("header", [
    None,                                   # no Authorization at all
    "revai-sandbox-token",                  # the token without its scheme
    "Basic cmV2YWktc2FuZGJveC10b2tlbg==",   # another scheme
    "Bearer",                               # the scheme without a token
])
def test_wrong_auth_format_is_401(sandbox, header):
    resp = _send(sandbox, "POST", "/jobs", auth=header, json=URL_JOB)
    assert resp.status == 401
    assert resp.json() == {"title": "Authorization has been denied for this request",
                           "status": 401}
    assert sandbox.sandbox.counters.get("jobs.created") == 0


def test_missing_media_uses_the_seed_example_body(sandbox):
    # Seed 004, "Bad Submit Job Request": the map is named ``parameter``.
    resp = _send(sandbox, "POST", "/jobs", json={"metadata": "no media"})
    assert resp.status == 400
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = resp.json()
    assert body["parameter"] == {"media_url": ["The media_url field is required"]}
    assert "parameters" not in body
    assert body["type"] == "https://www.rev.ai/api/v1/errors/invalid-parameters"
    assert body["title"] == "Your request parameters didn't validate"
    assert body["status"] == 400


@pytest.mark.parametrize(("option", "value"), [
    ("speaker_channels_count", 9),
    ("delete_after_seconds", -1),
    ("metadata", "m" * 513),
    ("speakers_count", 0),
])
def test_out_of_range_values_are_400(sandbox, option, value):
    resp = _send(sandbox, "POST", "/jobs", json={**URL_JOB, option: value})
    assert resp.status == 400
    assert option in resp.json()["parameter"]


@pytest.mark.parametrize(("method", "path"), [("PUT", "/jobs"), ("PATCH", "/jobs/abc"),
                                              ("POST", "/account")])
def test_wrong_method_is_405(sandbox, method, path):
    resp = _send(sandbox, method, path, body=b"{}",
                 headers={"Content-Type": "application/json"})
    assert resp.status == 405
    assert resp.json()["status"] == 405


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_400(sandbox, content_type):
    resp = _send(sandbox, "POST", "/jobs", body=json.dumps(URL_JOB).encode(),
                 headers={"Content-Type": content_type})
    assert resp.status == 400
    assert "body" in resp.json()["parameter"]
    assert sandbox.sandbox.counters.get("jobs.created") == 0


_BOUNDARY = "voxhubboundary"


def _open_upload(run: Any) -> http.client.HTTPConnection:
    """A multipart POST /jobs whose media part is still arriving (the upload is in flight)."""
    head = (f"--{_BOUNDARY}\r\nContent-Disposition: form-data; name=\"media\"; "
            f"filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n").encode()
    tail = f"\r\n--{_BOUNDARY}--\r\n".encode()
    payload = b"x" * 1000
    where = urlsplit(run.base_url)
    conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=10)
    conn.putrequest("POST", API + "/jobs")
    conn.putheader("Authorization", f"Bearer {run.sandbox.token}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={_BOUNDARY}")
    conn.putheader("Content-Length", str(len(head) + len(payload) + len(tail)))
    conn.endheaders()
    conn.send(head + payload[:10])
    conn._voxhub_rest = payload[10:] + tail  # type: ignore[attr-defined]
    return conn


def _finish_upload(conn: http.client.HTTPConnection) -> int:
    conn.send(conn._voxhub_rest)  # type: ignore[attr-defined]
    status = conn.getresponse().status
    conn.close()
    return status


def test_ten_concurrent_multipart_uploads_are_served_the_eleventh_is_429(make_sandbox):
    run = make_sandbox(processing_seconds=60)
    desk = run.sandbox.uploads
    uploads = [_open_upload(run) for _ in range(10)]
    try:
        deadline = time.monotonic() + 5
        while desk.busy < 10:
            assert time.monotonic() < deadline, f"only {desk.busy} uploads in flight"
            time.sleep(0.01)
        eleventh = _send(run, "POST", "/jobs", fields={"media": ("b.wav", b"x", "audio/wav")})
        assert eleventh.status == 429
        assert eleventh.json()["type"].endswith("/too-many-requests")
    finally:
        statuses = [_finish_upload(conn) for conn in uploads]
    assert statuses == [200] * 10
    assert run.sandbox.counters.get("jobs.created") == 10


@pytest.mark.parametrize("ack", [201, 202, 204])
def test_only_a_200_acknowledges_a_webhook(make_sandbox, loopback, ack):
    answers = iter([ack, 200])

    def receiver_app(_request: Request) -> Response:
        return Response("", status=next(answers, 200))

    receiver = loopback(receiver_app)
    run = make_sandbox(processing_seconds=0.05, callback_schedule=(0.05, 0.05))
    created = _send(run, "POST", "/jobs",
                    json={**URL_JOB, "notification_config": {"url": f"{receiver.url}/cb"}})
    assert created.status == 200
    counters = run.sandbox.counters
    deadline = time.monotonic() + 5
    while counters.get("callbacks.delivered") < 1:
        assert time.monotonic() < deadline, "webhook never acknowledged"
        time.sleep(0.02)
    # The first answer was a 2xx other than 200: Rev retries it.
    assert counters.get("callbacks.failed") == 1
    assert len(receiver.requests) == 2
