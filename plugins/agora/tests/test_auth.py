"""Shared Agora auth: tokens built here verify in the sandbox; bad ones get the seed's 401s."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
import urllib3
from voxhub.errors import AuthenticationError, ConfigurationError
from voxhub.sandbox import RunningSandbox
from voxhub_agora.accesstoken import AccessToken2, RtcPrivilege, ServiceRtc, ServiceRtm
from voxhub_agora.auth import (
    MSG_BAD_CREDENTIALS,
    MSG_INVALID_TOKEN,
    MSG_TOKEN_EXPIRED,
    AgoraAuth,
    AuthChecker,
    AuthMode,
    parse_authorization,
)
from voxhub_agora.stt import AgoraSttProvider
from voxhub_agora.transcoder import AgoraTranscoderProvider


def _acquire(running: RunningSandbox, app_id: str, authorization: str) -> urllib3.BaseHTTPResponse:
    url = f"{running.base_url}/v1/projects/{app_id}/rtsc/speech-to-text/builderTokens"
    return urllib3.PoolManager().request(
        "POST", url, json={"instanceId": "auth-test"}, headers={"Authorization": authorization})


def _tamper(token: str) -> str:
    # Flip one character of the base64 body: decoding or the HMAC must fail.
    body = token[3:]
    index = len(body) // 2
    flipped = "A" if body[index] != "A" else "B"
    return "007" + body[:index] + flipped + body[index + 1:]


def test_token_built_here_is_accepted(stt_sandbox: RunningSandbox) -> None:
    creds = stt_sandbox.sandbox.credentials()
    token = AccessToken2(creds["app_id"], creds["app_certificate"], expire=600).add_service(
        ServiceRtc("room", 0).add_privilege(RtcPrivilege.JOIN_CHANNEL, 600)).build()
    for header in (f'agora token="{token}"', f"agora token={token}"):
        answer = _acquire(stt_sandbox, creds["app_id"], header)
        assert answer.status == 200, answer.data
        assert json.loads(answer.data)["tokenName"]
    # The seed's own example decodes to an RTM token: any service is accepted for REST auth.
    rtm = AccessToken2(creds["app_id"], creds["app_certificate"], expire=600).add_service(
        ServiceRtm("user").add_privilege(1, 600)).build()
    assert _acquire(stt_sandbox, creds["app_id"], f'agora token="{rtm}"').status == 200


@pytest.mark.parametrize(("case", "message"), [
    ("tampered", MSG_INVALID_TOKEN),
    ("expired", MSG_TOKEN_EXPIRED),
    ("other-certificate", MSG_INVALID_TOKEN),
    ("other-app-id", MSG_INVALID_TOKEN),
    ("garbage", MSG_INVALID_TOKEN),
    ("basic-wrong", MSG_BAD_CREDENTIALS),
    ("no-header", MSG_BAD_CREDENTIALS),
])
def test_bad_credentials_get_the_seeds_401(case: str, message: str,
                                           stt_sandbox: RunningSandbox) -> None:
    creds = stt_sandbox.sandbox.credentials()
    app_id, cert = creds["app_id"], creds["app_certificate"]

    def token(app: str = app_id, certificate: str = cert, issue_ts: int | None = None) -> str:
        built = AccessToken2(app, certificate, issue_ts=issue_ts, expire=60)
        return built.add_service(ServiceRtc("room", 0).add_privilege(1, 60)).build()

    headers = {
        "tampered": f'agora token="{_tamper(token())}"',
        "expired": f'agora token="{token(issue_ts=int(time.time()) - 3600)}"',
        "other-certificate": f'agora token="{token(certificate="f" * 32)}"',
        "other-app-id": f'agora token="{token(app="e" * 32)}"',
        "garbage": 'agora token="not-a-token"',
        "basic-wrong": "Basic " + base64.b64encode(
            f"{creds['customer_id']}:wrong".encode()).decode(),
        "no-header": "",
    }
    answer = _acquire(stt_sandbox, app_id, headers[case])
    assert answer.status == 401
    assert json.loads(answer.data) == {"message": message}
    assert stt_sandbox.sandbox.counters.get("auth.refused") == 1


@pytest.mark.parametrize(("overrides", "needle"), [
    ({"customer_secret": "wrong-secret"}, "customer ID / customer secret"),
    ({"auth": "token", "app_certificate": "a" * 32}, "not signed with this App ID"),
    ({"auth": "token", "auth_token": "007eJxstale"}, "not signed with this App ID"),
])
@pytest.mark.parametrize("provider_cls", [AgoraSttProvider, AgoraTranscoderProvider])
def test_refusals_become_authentication_errors(
        overrides: dict[str, str], needle: str, provider_cls: type[Any], make_ctx: Any,
        stt_sandbox: RunningSandbox, tc_sandbox: RunningSandbox, h: Any, lock_dir: Any) -> None:
    provider = provider_cls(lock_dir=lock_dir)
    running = stt_sandbox if provider_cls is AgoraSttProvider else tc_sandbox
    ctx = make_ctx(provider, running, **overrides)
    if provider_cls is AgoraSttProvider:
        request = h.stt_request("auth", api_version="v6")
    else:
        request = h.tc_request(config=h.transcoder_doc())
    with pytest.raises(AuthenticationError) as info:
        provider.submit(ctx, request, h.handle_for(request))
    error = info.value
    assert needle in error.message and error.status == 401
    assert error.request_id  # the answer's X-Request-ID is kept
    for value in overrides.values():
        if len(value) > 6 and value not in ("token",):
            assert value not in str(error) and value not in repr(error)


def test_expired_configured_token_is_reported_as_expired(stt: AgoraSttProvider, make_ctx: Any,
                                                         stt_sandbox: RunningSandbox,
                                                         h: Any) -> None:
    creds = stt_sandbox.sandbox.credentials()
    old = AccessToken2(creds["app_id"], creds["app_certificate"],
                       issue_ts=int(time.time()) - 7200, expire=60).add_service(
        ServiceRtc("", 0).add_privilege(1, 60)).build()
    ctx = make_ctx(stt, stt_sandbox, auth="token", auth_token=old, app_certificate=None)
    request = h.stt_request("auth", sub_bot_token="x" * 10, pub_bot_token="y" * 10)
    with pytest.raises(AuthenticationError, match="expired"):
        stt.submit(ctx, request, h.handle_for(request))


@pytest.mark.parametrize(("values", "needle"), [
    ({"app_id": "xyz"}, "app_id must be the 32-hex"),
    ({"app_id": "a" * 32}, "no credentials"),
    ({"app_id": "a" * 32, "auth": "basic", "app_certificate": "b" * 32}, "needs customer_id"),
    ({"app_id": "a" * 32, "auth": "token", "customer_id": "c", "customer_secret": "s" * 12},
     "needs app_certificate"),
    ({"app_id": "a" * 32, "auth": "oauth", "app_certificate": "b" * 32}, "'basic' or 'token'"),
    ({"app_id": "a" * 32, "app_certificate": "not-hex-certificate-value-xxxxxxx"},
     "32 hexadecimal"),
    ({"app_id": "a" * 32, "app_certificate": "b" * 32, "auth_lifetime": "5"}, "60..86400"),
])
def test_settings_are_checked_locally(values: dict[str, str], needle: str, make_ctx: Any,
                                      stt: AgoraSttProvider) -> None:
    values = dict(values)
    with pytest.raises(ConfigurationError) as info:
        make_ctx(stt, None, auth=values.pop("auth", None), **values)
    assert needle in str(info.value)
    assert "not-hex-certificate" not in str(info.value)


def test_mode_defaults() -> None:
    from voxhub.config import Config

    info = AgoraSttProvider.info
    both = Config.from_profiles({"agora-stt": {
        "app_id": "a" * 32, "customer_id": "cid", "customer_secret": "secret-value",
        "app_certificate": "b" * 32,
    }}).settings(info, "agora-stt")
    assert AgoraAuth.from_settings(both).mode is AuthMode.BASIC
    cert_only = Config.from_profiles({"agora-stt": {"app_id": "a" * 32,
                                                    "app_certificate": "b" * 32}})
    auth = AgoraAuth.from_settings(cert_only.settings(info, "agora-stt"))
    assert auth.mode is AuthMode.TOKEN
    header = auth.header(channel="room", now=time.time())
    assert header.startswith('agora token="007')
    assert "b" * 32 not in repr(auth) and "secret-value" not in repr(
        AgoraAuth.from_settings(both))


def test_parse_authorization_forms() -> None:
    encoded = base64.b64encode(b"id:secret").decode()
    assert parse_authorization(f"Basic {encoded}") == (AuthMode.BASIC, "id:secret")
    assert parse_authorization('agora token="007abc"') == (AuthMode.TOKEN, "007abc")
    assert parse_authorization("agora token=007abc") == (AuthMode.TOKEN, "007abc")
    assert parse_authorization("Bearer x") is None
    assert parse_authorization("Basic !!!") is None
    assert parse_authorization(None) is None
    checker = AuthChecker("a" * 32, "b" * 32, "id", "secret")
    assert checker.check(f"Basic {encoded}", now=time.time()) is None
    assert "secret" not in repr(checker) and "b" * 32 not in repr(checker)
