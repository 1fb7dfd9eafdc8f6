"""Secrets (the API token, media and webhook Authorization values) never reach logs or errors."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs
from voxhub.plugin import RemoteUrl, TransportError, VoxhubError

TOKEN = "tok-SECRET-0123456789"
MEDIA_KEY = "Bearer media-key"
HOOK = "Bearer hook-SECRET-987"


def _assert_clean(text: str) -> None:
    for secret in (TOKEN, "media-key", "hook-SECRET-987"):
        assert secret not in text


def test_token_never_logged_nor_in_errors(kit, make_sandbox, provider, wav, media_server):
    run = make_sandbox(token=TOKEN, processing_seconds=0)
    run.sandbox.script(endpoint="create_job", action="drop_after")  # a lost answer
    errors: list[VoxhubError] = []
    saved = structlog.get_config()
    with capture_logs() as logs:
        # Every level, so debug lines (request headers, upload progress) are inspected too.
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(0),
                            cache_logger_on_first_use=False)
        ctx = kit.make_ctx(run, webhook_authorization=HOOK)
        request, handle = kit.new_job(wav, callback_url="http://127.0.0.1:9/cb")
        try:
            provider.submit(ctx, request, handle)
        except TransportError as exc:  # the answer was dropped...
            errors.append(exc)
        found = provider.recover(ctx, request, handle)  # ...and the job found by its key
        assert found is not None
        handle = found
        provider.status(ctx, handle)
        provider.fetch(ctx, handle)
        provider.export(ctx, handle, "srt")
        url_request, url_handle = kit.new_job(
            RemoteUrl(f"{media_server.url}/private/hello.wav",
                      auth_headers={"Authorization": MEDIA_KEY}))
        provider.submit(ctx, url_request, url_handle)
        list(provider.list_jobs(ctx))
        provider.close(ctx, handle)
        for bad in ("wrong-token-xyz", run.sandbox.other_region_token):
            try:
                provider.account(kit.make_ctx(run, token=bad))
            except VoxhubError as exc:
                errors.append(exc)
        try:
            provider.validate(ctx, kit.new_job(wav, options={"rush": True})[0])
        except VoxhubError as exc:
            errors.append(exc)
        _assert_clean(repr(ctx.settings))
        _assert_clean(repr(request) + repr(url_request) + repr(handle))
    structlog.configure(**saved)
    assert logs, "expected log entries to inspect"
    events = {e.get("event") for e in logs}
    assert {"revai.recovered", "http.response", "revai.uploading"} <= events, events
    _assert_clean(repr(logs))
    assert len(errors) == 4
    for exc in errors:
        _assert_clean(str(exc) + repr(exc) + repr(exc.details))


def test_secret_settings_are_declared_secret(provider):
    fields = {f.name: f for f in provider.info.credentials}
    assert fields["token"].secret and fields["webhook_authorization"].secret
    assert not fields["region"].secret
    # no job option carries a secret: options are stored with the job
    assert not any(o.secret for o in provider.info.options)


@pytest.mark.parametrize("where", ["message", "details"])
def test_vendor_echo_of_token_is_masked(where: str) -> None:
    # If a (misbehaving) server echoed the token, the error would still not show it.
    import json

    from voxhub.plugin import Response, Secret
    from voxhub_revai.errors import error_from_response

    Secret(TOKEN)  # registered, as the profile's token is
    body: dict[str, Any] = {"title": f"bad token {TOKEN}", "status": 401}
    if where == "details":
        body = {"title": "denied", "status": 401, "echo": {"Authorization": f"Bearer {TOKEN}"}}
    err = error_from_response(Response(401, {}, json.dumps(body).encode(), "http://x"), "status")
    _assert_clean(str(err) + repr(err.details))
