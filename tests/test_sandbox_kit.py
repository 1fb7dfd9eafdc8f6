"""The sandbox kit over real loopback HTTP: routing, scripted answers, keep-alive, media facts."""

from __future__ import annotations

import http.client
import json
import threading
import time
import wave
from pathlib import Path
from typing import Any

import pytest
import urllib3
from voxhub.sandbox_kit import (
    NO_RECOGNIZER_TEXT,
    JobTimers,
    Request,
    Response,
    Rule,
    Sandbox,
    ScriptedAnswer,
    is_loopback_host,
    is_loopback_url,
    json_answer,
    wav_info,
)
from voxhub.sandbox_server import RunningSandbox, serve


class JobsSandbox(Sandbox):
    """A tiny vendor: create a job, read it back."""

    provider = "kit-test"
    rules = (
        Rule("/v1/jobs", endpoint="create_job", methods=["POST"]),
        Rule("/v1/jobs/<job_id>", endpoint="get_job", methods=["GET"]),
    )

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.jobs: dict[str, dict[str, Any]] = {}

    def on_create_job(self, request: Request) -> Response:
        job_id = f"job{len(self.jobs) + 1}"
        self.jobs[job_id] = {"id": job_id, "name": (request.get_json() or {}).get("name")}
        return json_answer(self.jobs[job_id], 201)

    def on_get_job(self, request: Request, job_id: str) -> Response:
        if job_id not in self.jobs:
            return json_answer({"error": "no such job"}, 404)
        return json_answer(self.jobs[job_id])


@pytest.fixture
def server() -> Any:
    with serve(JobsSandbox()) as running:
        yield running


def _call(server: RunningSandbox, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    pool = urllib3.PoolManager(retries=False)
    try:
        answer = pool.request(
            method, server.base_url + path,
            body=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
    finally:
        pool.clear()
    try:
        return answer.status, json.loads(answer.data) if answer.data else None
    except ValueError:
        return answer.status, answer.data.decode()


def test_routes_dispatch_to_handlers_and_unknown_paths_and_methods_are_refused(server):
    assert _call(server, "POST", "/v1/jobs", {"name": "a"}) == (201, {"id": "job1", "name": "a"})
    assert _call(server, "GET", "/v1/jobs/job1") == (200, {"id": "job1", "name": "a"})
    assert _call(server, "GET", "/v1/jobs/nope")[0] == 404
    assert _call(server, "GET", "/v2/other")[0] == 404
    assert _call(server, "DELETE", "/v1/jobs/job1")[0] == 405


def test_scripted_answer_replaces_the_next_n_answers_of_one_endpoint(server):
    status, _ = _call(server, "POST", "/_sandbox/script",
                      {"endpoint": "create_job", "status": 503, "body": {"e": 1}, "times": 2})
    assert status == 200
    assert _call(server, "GET", "/v1/jobs/job1")[0] == 404  # other endpoints are untouched
    assert _call(server, "POST", "/v1/jobs", {}) == (503, {"e": 1})
    assert _call(server, "POST", "/v1/jobs", {}) == (503, {"e": 1})
    assert _call(server, "POST", "/v1/jobs", {})[0] == 201
    assert server.sandbox.jobs.keys() == {"job1"}  # scripted answers never reached the vendor
    assert server.sandbox.counters.get("scripted.answer") == 2


def test_drop_after_acts_then_loses_the_answer_and_drop_never_acts(server):
    sandbox = server.sandbox
    sandbox.script(endpoint="create_job", action="drop_after")
    with pytest.raises(urllib3.exceptions.HTTPError):
        _call(server, "POST", "/v1/jobs", {"name": "lost"})
    assert [j["name"] for j in sandbox.jobs.values()] == ["lost"]  # created, answer lost
    sandbox.script(ScriptedAnswer(path="/v1/jobs", method="POST", action="drop"))
    with pytest.raises(urllib3.exceptions.HTTPError):
        _call(server, "POST", "/v1/jobs", {"name": "never"})
    assert len(sandbox.jobs) == 1


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"status": 500}, "endpoint or a path"),
        ({"endpoint": "x", "action": "explode"}, "action must be one of"),
        ({"endpoint": "x", "times": 0}, "times must be"),
        ({"endpoint": "x", "status": 42}, "status must be"),
        ({"endpoint": "x", "colour": "red"}, "unknown script fields: colour"),
        (["not", "an", "object"], "expected a JSON object"),
    ],
)
def test_bad_scripts_are_refused_with_a_reason(server, body, error):
    status, answer = _call(server, "POST", "/_sandbox/script", body)
    assert status == 400
    assert error in answer["error"]


def test_reset_forgets_scripts(server):
    server.sandbox.script(endpoint="create_job", status=500)
    _call(server, "POST", "/_sandbox/reset", {})
    assert _call(server, "POST", "/v1/jobs", {})[0] == 201


def test_connections_are_kept_alive(server):
    host, port = server.server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        for n in range(3):
            conn.request("POST", "/v1/jobs", body=b'{"name": "k"}',
                         headers={"Content-Type": "application/json"})
            answer = conn.getresponse()
            assert answer.status == 201 and answer.version == 11
            assert answer.getheader("Connection") != "close"
            assert json.loads(answer.read())["id"] == f"job{n + 1}"
        # An upload the vendor refuses without reading it is drained: the next request
        # on the same connection still parses.
        conn.request("GET", "/v1/jobs/nope", body=b"x" * 100_000)
        assert conn.getresponse().read() == b'{"error": "no such job"}'
        conn.request("GET", "/v1/jobs/job1")
        assert json.loads(conn.getresponse().read())["id"] == "job1"
    finally:
        conn.close()
    assert server.server.connections_accepted == 1


def test_stop_closes_idle_keep_alive_connections():
    running = serve(JobsSandbox())
    host, port = running.server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request("GET", "/v1/jobs/x")
    conn.getresponse().read()
    running.stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("GET", "/v1/jobs/x")
        conn.getresponse()
    conn.close()


def test_chunked_request_bodies_are_read(server):
    host, port = server.server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("POST", "/v1/jobs", body=iter([b'{"name":', b' "chunked"}']),
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
        assert json.loads(conn.getresponse().read())["name"] == "chunked"
    finally:
        conn.close()


def test_job_timers_run_later_and_are_cancelled_on_reset():
    timers = JobTimers()
    done = threading.Event()
    ran: list[str] = []
    timers.after(0, lambda: ran.append("now"))
    assert ran == ["now"]  # no delay: at once, in this thread
    timers.after(0.05, done.set)
    timers.after(30, lambda: ran.append("never"))
    assert done.wait(5)
    time.sleep(0.01)
    assert len(timers) == 1
    timers.cancel_all()
    assert len(timers) == 0 and ran == ["now"]


def test_wav_info_reads_headers_from_paths_and_bytes(tmp_path: Path):
    path = tmp_path / "a.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0\0\0" * 4000)
    info = wav_info(path)
    assert info is not None and (info.duration, info.channels, info.rate) == (0.5, 2, 8000)
    assert wav_info(path.read_bytes()) == info
    assert wav_info(b"not a wav") is None
    assert wav_info(tmp_path / "missing.wav") is None


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000/a.wav", True),
        ("http://127.8.9.1/a", True),
        ("http://[::1]:9/a", True),
        ("http://localhost/a", True),
        ("https://example.com/a.wav", False),
        ("http://loopback.example.org/a", False),
        ("http://[not-an-ip/a", False),
        ("no scheme at all", False),
    ],
)
def test_loopback_urls(url, loopback):
    assert is_loopback_url(url) is loopback


def test_loopback_hosts():
    assert is_loopback_host("[::1]") and not is_loopback_host("example.org")


def test_no_recognizer_text_is_documented_in_plain_words():
    assert "voxhub-local" in NO_RECOGNIZER_TEXT


def test_fault_plan_drop_after_loses_answers_of_creating_requests_only(server):
    from voxhub.sandbox_kit import FaultPlan

    sandbox = server.sandbox
    sandbox.set_faults(FaultPlan(drop_after=1.0, seed=1))
    with pytest.raises(urllib3.exceptions.HTTPError):
        _call(server, "POST", "/v1/jobs", {"name": "made"})
    assert [j["name"] for j in sandbox.jobs.values()] == ["made"]  # acted, answer lost
    assert _call(server, "GET", "/v1/jobs/job1")[0] == 200  # reads are never dropped
    assert sandbox.counters.get("faults.drop_after") == 1
