"""The Tupu sandbox judges raw HTTP on its own, as Tupu's stream page (seed 003) describes.

Requests are built and signed here by hand (urllib3 and ``cryptography``), never by
the provider or the client's ``signing`` module, so a client that misread Tupu's
documents cannot make its own mistakes pass.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from tupu_helpers import Start

STREAM = "/v3/recognition/speech/stream"
TRANSCRIPTION = "5ca1bd6b3872ecc9afb99132"
VULGAR = "5c8213b9bc807806aab0a574"
#: Seed 003's own example values.
SEED_TIMESTAMP = 1541499770
SEED_NONCE = "0.8469537531104208"


class Raw:
    """Signs and posts Tupu requests by hand, and reads the signed answers."""

    def __init__(self, server: Any) -> None:
        settings = server.settings()
        self.server = server
        self.sid = settings["secret_id"]
        key = serialization.load_pem_private_key(Path(settings["private_key"]).read_bytes(),
                                                 password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self.key = key
        tupu = serialization.load_pem_public_key(Path(settings["public_key"]).read_bytes())
        assert isinstance(tupu, rsa.RSAPublicKey)
        self.tupu = tupu

    def signature(self, timestamp: str, nonce: str, key: rsa.RSAPrivateKey | None = None) -> str:
        message = f"{self.sid},{timestamp},{nonce}".encode()
        raw = (key or self.key).sign(message, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(raw).decode()

    def body(self, fields: dict[str, Any], *, timestamp: int | None = None,
             nonce: str = "0.5") -> str:
        """JSON text with the signed fields; ``nonce`` is written as a bare number."""
        ts = int(time.time()) if timestamp is None else timestamp
        signed = (f'"timestamp": {ts}, "nonce": {nonce}, '
                  f'"signature": "{self.signature(str(ts), nonce)}"')
        extra = json.dumps(fields)[1:-1]
        return "{" + signed + (", " + extra if extra else "") + "}"

    def post(self, path: str, text: str | bytes, *,
             content_type: str | None = "application/json",
             method: str = "POST") -> urllib3.BaseHTTPResponse:
        headers = {"Content-Type": content_type} if content_type else {}
        data = text.encode() if isinstance(text, str) else text
        return urllib3.request(method, f"{self.server.base_url}{STREAM}{path}/{self.sid}",
                               body=data, headers=headers, retries=False)

    def code(self, response: urllib3.BaseHTTPResponse) -> int:
        """The ``code`` of a signed answer, after checking Tupu's signature on it."""
        assert response.status == 200
        envelope = json.loads(response.data)
        raw = base64.b64decode(envelope["signature"])
        self.tupu.verify(raw, envelope["json"].encode(), padding.PKCS1v15(), hashes.SHA256())
        return int(json.loads(envelope["json"])["code"])


def _stream(**extra: Any) -> dict[str, Any]:
    return {"url": "rtmp://live.example.com/app/room1",
            "callback": "http://127.0.0.1:9/cb", **extra}


def test_a_well_formed_request_is_accepted(tupu_sandbox: Start) -> None:
    raw = Raw(tupu_sandbox())
    assert raw.code(raw.post("", raw.body({"speechStream": [_stream()]}))) == 0


def test_wrong_auth_format_is_code_1(tupu_sandbox: Start) -> None:
    raw = Raw(tupu_sandbox())
    now = str(int(time.time()))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bodies = [
        # not base64
        f'{{"timestamp": {now}, "nonce": 0.5, "signature": "not base64!", "speechStream": []}}',
        # signed by a key that was never uploaded
        f'{{"timestamp": {now}, "nonce": 0.5, '
        f'"signature": "{raw.signature(now, "0.5", stranger)}"}}',
        # the signed text in another order (nonce before timestamp)
        f'{{"timestamp": {now}, "nonce": 0.5, '
        f'"signature": "{raw.signature("0.5", now)}"}}',
        # no nonce
        f'{{"timestamp": {now}, "signature": "{raw.signature(now, "0.5")}"}}',
    ]
    for text in bodies:
        assert raw.code(raw.post("", text)) == 1, text
    assert raw.server.sandbox.counters.get("streams.submitted") == 0


def test_unknown_secret_id_is_code_6(tupu_sandbox: Start) -> None:
    raw = Raw(tupu_sandbox())
    raw.sid = "nosuchsecretid"
    assert raw.code(raw.post("", raw.body({"speechStream": [_stream()]}))) == 6


@pytest.mark.parametrize(("fields", "code"), [
    ({}, 15),                                                    # no speechStream
    ({"speechStream": []}, 15),                                  # empty speechStream
    ({"speechStream": [{"callback": "http://127.0.0.1:9/cb"}]}, 3),  # no url
    ({"speechStream": [{"url": "rtmp://live.example.com/a"}]}, 11),  # no callback
])
def test_missing_required_fields(tupu_sandbox: Start, fields: dict[str, Any], code: int) -> None:
    raw = Raw(tupu_sandbox())
    assert raw.code(raw.post("", raw.body(fields))) == code


def test_missing_timestamp_is_code_12(tupu_sandbox: Start) -> None:
    raw = Raw(tupu_sandbox())
    text = f'{{"nonce": 0.5, "signature": "{raw.signature("", "0.5")}", "speechStream": []}}'
    assert raw.code(raw.post("", text)) == 12


@pytest.mark.parametrize("item", [
    _stream(callbackRules=4),
    _stream(callbackRules=-1),
    _stream(callbackRules=True),
    _stream(returnPreSpeech="yes"),
    _stream(url="ftp://media.example.com/live.flv"),   # seed: RTMP, HLS, HTTP-FLV, RTSP
    _stream(url="file:///etc/passwd"),
])
def test_out_of_range_values_are_code_15(tupu_sandbox: Start, item: dict[str, Any]) -> None:
    raw = Raw(tupu_sandbox())
    assert raw.code(raw.post("", raw.body({"speechStream": [item]}))) == 15
    assert raw.server.sandbox.counters.get("streams.submitted") == 0


@pytest.mark.parametrize("path", ["", "/close", "/search"])
def test_wrong_method_is_405(tupu_sandbox: Start, path: str) -> None:
    raw = Raw(tupu_sandbox())
    assert raw.post(path, b"", method="GET").status == 405
    assert raw.post(path, b"{}", method="PUT").status == 405


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_non_json_content_type_is_refused(tupu_sandbox: Start, content_type: str | None) -> None:
    raw = Raw(tupu_sandbox())
    # A body that would otherwise be accepted: only the Content-Type is wrong.
    text = raw.body({"speechStream": [_stream()]})
    assert raw.code(raw.post("", text, content_type=content_type)) == 15
    assert raw.server.sandbox.counters.get("streams.submitted") == 0


def test_the_seed_example_timestamp_needs_the_window_turned_off(tupu_sandbox: Start) -> None:
    fields = {"speechStream": [_stream(roomId="111111", userId="23231", forumId="321313")]}
    strict = Raw(tupu_sandbox())
    text = strict.body(fields, timestamp=SEED_TIMESTAMP, nonce=SEED_NONCE)
    assert strict.code(strict.post("", text)) == 12  # the assumed 300 s window refuses 2018
    lenient = Raw(tupu_sandbox(max_clock_skew=None))
    text = lenient.body(fields, timestamp=SEED_TIMESTAMP, nonce=SEED_NONCE)
    assert lenient.code(lenient.post("", text)) == 0


def _finished(server: Any, raw: Raw, rules: int, tasks: list[str]) -> int:
    """Run one four-slice stream under ``rules``; the number of callbacks it queued."""
    text = raw.body({"speechStream": [_stream(callbackRules=rules)], "tasks": tasks})
    assert raw.code(raw.post("", text)) == 0
    counters = server.sandbox.counters
    deadline = time.monotonic() + 5
    while counters.get("streams.end") < 1:
        assert time.monotonic() < deadline, "the stream never ended"
        time.sleep(0.02)
    time.sleep(0.1)  # let an end-of-task callback (rules 2, 3) be queued
    return counters.get("callbacks.queued")


@pytest.mark.parametrize(("rules", "expected"), [(0, 0), (2, 1), (1, 4), (3, 5)])
def test_transcripts_only_when_every_result_is_asked_for(
    tupu_sandbox: Start, rules: int, expected: int
) -> None:
    # Seed 003: rule 0 "calls back violation results only, nothing else"; a transcript
    # is not a violation. 2 adds the end-of-task callback; 1 and 3 send every slice.
    server = tupu_sandbox()
    assert _finished(server, Raw(server), rules, [TRANSCRIPTION]) == expected


def test_rule_0_still_sends_violations(tupu_sandbox: Start) -> None:
    server = tupu_sandbox()
    # The built-in script has one vulgar slice among four.
    assert _finished(server, Raw(server), 0, [TRANSCRIPTION, VULGAR]) == 1
