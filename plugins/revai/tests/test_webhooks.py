"""Webhooks: the sandbox posts ``{"job": ...}`` on completion; the provider parses them."""

from __future__ import annotations

import json

import pytest
from voxhub.plugin import CallbackRejected, CallbackRequest, JobState, RemoteUrl
from werkzeug.wrappers import Request, Response


def _ok(_request: Request) -> Response:
    return Response("ok")


def test_webhook_with_auth_header_on_success(kit, make_sandbox, loopback, provider, wav):
    receiver = loopback(_ok)
    run = make_sandbox(processing_seconds=0.05)
    ctx = kit.make_ctx(run, webhook_authorization="Bearer hook-secret")
    request, handle = kit.new_job(wav, callback_url=f"{receiver.url}/hooks/revai")
    handle = provider.submit(ctx, request, handle)
    kit.wait_until(lambda: receiver.requests)
    path, headers, body = receiver.requests[0]
    assert path == "/hooks/revai"
    assert headers["Authorization"] == "Bearer hook-secret"
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert payload["job"]["id"] == handle.vendor_ids["job"]
    assert payload["job"]["status"] == "transcribed"
    assert "notification_config" not in payload["job"]

    event = provider.parse_callback(ctx, CallbackRequest(
        headers={k.lower(): v for k, v in headers.items()}, body=body))
    assert event.vendor_id == handle.vendor_ids["job"]
    assert event.status is not None and event.status.state is JobState.SUCCEEDED
    assert event.confirm is True  # unsigned: the orchestrator checks with a GET first
    assert event.response_status == 200


def test_legacy_callback_url_and_failed_job(kit, make_sandbox, loopback, provider, wav):
    receiver = loopback(_ok)
    run = make_sandbox(failure_rate=1.0)
    ctx = kit.make_ctx(run)
    request, handle = kit.new_job(RemoteUrl("https://media.example.com/a.mp3"),
                                  callback_url=f"{receiver.url}/cb",
                                  options={"callback_style": "callback_url"})
    provider.submit(ctx, request, handle)
    kit.wait_until(lambda: receiver.requests)
    payload = json.loads(receiver.requests[0][2])
    assert payload["job"]["callback_url"] == f"{receiver.url}/cb"  # the legacy form is echoed
    assert payload["job"]["status"] == "failed"
    assert payload["job"]["failure"]
    event = provider.parse_callback(ctx, CallbackRequest(headers={}, body=receiver.requests[0][2]))
    assert event.status is not None and event.status.state is JobState.FAILED
    assert event.status.reason == payload["job"]["failure"]


def test_webhook_delivery_is_retried_until_200(kit, make_sandbox, loopback, provider, wav):
    answers = iter([500, 503, 200])

    def flaky(_request: Request) -> Response:
        return Response("x", status=next(answers, 200))

    receiver = loopback(flaky)
    run = make_sandbox(callback_schedule=(0.05, 0.05, 0.05))
    ctx = kit.make_ctx(run)
    request, handle = kit.new_job(wav, callback_url=f"{receiver.url}/cb")
    provider.submit(ctx, request, handle)
    counters = run.sandbox.counters
    kit.wait_until(lambda: counters.get("callbacks.delivered") == 1)
    assert counters.get("callbacks.failed") == 2
    assert len(receiver.requests) == 3


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"job": {}}', b'{"nojob": 1}'])
def test_bad_webhook_bodies_are_rejected(kit, provider, body):
    ctx = kit.make_ctx(base_url="http://127.0.0.1:9")
    with pytest.raises(CallbackRejected) as info:
        provider.parse_callback(ctx, CallbackRequest(headers={}, body=body))
    assert info.value.http_status == 400


def test_unknown_status_in_webhook_is_running(kit, provider):
    ctx = kit.make_ctx(base_url="http://127.0.0.1:9")
    body = json.dumps({"job": {"id": "abc", "status": "queued_for_review"}}).encode()
    event = provider.parse_callback(ctx, CallbackRequest(headers={}, body=body))
    assert event.status is not None and event.status.state is JobState.RUNNING
    assert event.status.vendor_state == "queued_for_review"
