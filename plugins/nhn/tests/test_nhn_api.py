"""``NhnApi``: every answer goes through the envelope check, whatever its HTTP status."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import urllib3
from nhn_helpers import new_handle
from voxhub.plugin import (
    JobHandle,
    JobRequest,
    ProviderContext,
    ProviderError,
    RemoteUrl,
    VoxhubError,
)
from voxhub.sandbox import RunningSandbox
from voxhub_nhn.api import NhnApi
from voxhub_nhn.provider import NhnProvider

URL = "https://media.example.com/call.mp3"
OK_HEADER = {"isSuccessful": True, "resultCode": 0, "resultMessage": "success"}


def _async_job(provider: NhnProvider, ctx: ProviderContext) -> JobHandle:
    handle = provider.submit(ctx, JobRequest("nhn", media=RemoteUrl(URL)), new_handle())
    assert isinstance(handle, JobHandle)
    return handle


def test_a_2xx_answer_without_the_envelope_is_an_error(
    provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext],
) -> None:
    server = nhn_sandbox(processing_seconds=0.0)
    ctx = nhn_ctx(server)
    handle = _async_job(provider, ctx)
    server.sandbox.script(endpoint="status", status=200,
                          body={"taskId": handle.vendor_ids["task_id"], "taskStatus": "COMPLETED"})
    with pytest.raises(ProviderError, match="without the result envelope") as info:
        provider.status(ctx, handle)
    assert info.value.status == 200 and info.value.provider == "nhn"


def test_a_success_envelope_on_an_error_status_is_still_an_error(
    provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext],
) -> None:
    server = nhn_sandbox(processing_seconds=0.0)
    ctx = nhn_ctx(server)
    handle = _async_job(provider, ctx)
    server.sandbox.script(endpoint="status", status=418,
                          body={"header": OK_HEADER, "taskStatus": "COMPLETED"})
    with pytest.raises(VoxhubError, match="HTTP 418") as info:
        provider.status(ctx, handle)
    assert getattr(info.value, "status", None) == 418
    # The next answer is the sandbox's own again: the job did finish.
    assert provider.status(ctx, handle).is_terminal


def test_a_failure_envelope_on_a_2xx_status_is_an_error(
    provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext],
) -> None:
    """An inconsistent header (flag true, code not 0) is read as the failure it names."""
    server = nhn_sandbox(processing_seconds=0.0)
    ctx = nhn_ctx(server)
    handle = _async_job(provider, ctx)
    header = {"isSuccessful": True, "resultCode": 4010006, "resultMessage": "Invalid async id."}
    server.sandbox.script(endpoint="status", status=200, body={"header": header})
    with pytest.raises(VoxhubError) as info:
        provider.status(ctx, handle)
    assert info.value.details["code"] == 4010006


def test_the_client_needs_what_authenticate_returned(
    nhn_sandbox: Callable[..., RunningSandbox], nhn_ctx: Callable[..., ProviderContext],
) -> None:
    server = nhn_sandbox()
    ctx = nhn_ctx(server, authenticate=False)
    with pytest.raises(TypeError, match="authenticate"):
        NhnApi(ctx)
    api = NhnApi(nhn_ctx(server))
    assert api.base_url == f"{server.base_url}/v2.1/appkeys/{server.sandbox.app_key}"  # type: ignore[attr-defined]
    assert api.auth_headers() == {
        "X-NHN-Authorization": f"Bearer {server.sandbox.uak_token}"}  # type: ignore[attr-defined]


def test_tasks_are_listed_by_the_control_api(
    provider: NhnProvider, nhn_sandbox: Callable[..., RunningSandbox],
    nhn_ctx: Callable[..., ProviderContext],
) -> None:
    server = nhn_sandbox(processing_seconds=0.0, failure_rate=1.0)
    handle = _async_job(provider, nhn_ctx(server))
    resp = urllib3.request("GET", f"{server.base_url}/_sandbox/nhn/tasks")
    assert resp.status == 200
    assert json.loads(resp.data) == {handle.vendor_ids["task_id"]: {
        "state": "FAILED", "retried_from": None, "retried_to": None}}
