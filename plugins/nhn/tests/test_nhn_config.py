"""Credentials, host and API version: resolved locally, errors before any request."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from voxhub.plugin import ConfigurationError, ProviderContext
from voxhub.sandbox import RunningSandbox
from voxhub_nhn.api import NhnAuth, resolve_auth
from voxhub_nhn.options import DEFAULT_BASE_URL, LEGACY_HOST
from voxhub_nhn.provider import NhnProvider


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"secret_key": "s3cret-value"}, "app_key"),
        ({"app_key": "appkey-1"}, "uak_token"),
        ({"app_key": "appkey-1", "secret_key": "s3cret-value", "uak_token": "tok-value"},
         "api_version"),
        ({"app_key": "appkey-1", "uak_token": "tok-value", "api_version": "v2.0"}, "secret_key"),
        ({"app_key": "appkey-1", "secret_key": "s3cret-value", "api_version": "2.1"},
         "uak_token"),
        ({"app_key": "appkey-1", "secret_key": "s3cret-value", "api_version": "v1.0"},
         "api_version"),
        ({"app_key": "appkey-1", "secret_key": "  "}, "uak_token"),
    ],
)
def test_missing_or_ambiguous_credentials_name_the_field(
    values: dict[str, str], field: str, nhn_ctx: Callable[..., ProviderContext],
    nhn_sandbox: Callable[..., RunningSandbox], provider: NhnProvider,
) -> None:
    server = nhn_sandbox()
    ctx = nhn_ctx(None, authenticate=False, base_url=server.base_url, **values)
    with pytest.raises(ConfigurationError) as info:
        provider.authenticate(ctx)
    assert info.value.details["field"] == field
    assert repr(field) in str(info.value) or field in str(info.value)
    assert server.sandbox.counters.get("requests") == 0
    for secret in ("s3cret-value", "tok-value"):
        assert secret not in str(info.value)


def _auth(nhn_ctx: Callable[..., ProviderContext], **settings: str) -> NhnAuth:
    """What ``authenticate`` decides for a profile of only these settings."""
    return resolve_auth(nhn_ctx(None, authenticate=False, **settings))


def test_version_chosen_from_the_credential(nhn_ctx: Callable[..., ProviderContext]) -> None:
    v20 = _auth(nhn_ctx, app_key="appkey-1", secret_key="sk-123456")
    assert (v20.version, v20.headers()) == ("v2.0", {"Authorization": "sk-123456"})
    v21 = _auth(nhn_ctx, app_key="appkey-1", uak_token="tok-123456")
    assert (v21.version, v21.headers()) == ("v2.1", {"X-NHN-Authorization": "Bearer tok-123456"})
    # Both credentials and an explicit version: that version's credential is used.
    both = _auth(nhn_ctx, app_key="appkey-1", secret_key="sk-123456", uak_token="tok-123456",
                 api_version="v2.0")
    assert both.version == "v2.0" and both.credential.reveal() == "sk-123456"


def test_hosts_and_base_urls(nhn_ctx: Callable[..., ProviderContext]) -> None:
    creds = {"app_key": "appkey-1", "uak_token": "tok-123456"}
    current = _auth(nhn_ctx, **creds)
    assert current.root == DEFAULT_BASE_URL == "https://api-speech.nhncloudservice.com"
    assert current.url("stt") == "https://api-speech.nhncloudservice.com/v2.1/appkeys/appkey-1/stt"
    assert not current.legacy_host
    old = _auth(nhn_ctx, host=LEGACY_HOST, base_url=DEFAULT_BASE_URL, **creds)
    assert old.root == "https://speech.api.nhncloudservice.com" and old.legacy_host
    assert old.sync_limits.max_bytes == 10_000_000  # decimal MB, the safe reading
    pinned = _auth(nhn_ctx, base_url="https://speech.api.nhncloudservice.com/v2.0/",
                   app_key="appkey-1", secret_key="sk-123456")
    assert (pinned.root, pinned.version, pinned.legacy_host) == (
        "https://speech.api.nhncloudservice.com", "v2.0", True)
    with pytest.raises(ConfigurationError) as info:
        _auth(nhn_ctx, base_url=f"{DEFAULT_BASE_URL}/v2.0", api_version="v2.1", **creds)
    assert info.value.details["field"] == "api_version"
    with pytest.raises(ConfigurationError) as info:
        _auth(nhn_ctx, base_url="http://127.0.0.1:9", host=LEGACY_HOST, **creds)
    assert info.value.details["field"] == "host"
    with pytest.raises(ConfigurationError) as info:
        _auth(nhn_ctx, base_url="ftp://example", **creds)
    assert info.value.details["field"] == "base_url"


def test_auth_repr_hides_secrets(nhn_ctx: Callable[..., ProviderContext]) -> None:
    auth = _auth(nhn_ctx, app_key="appkey-1", secret_key="sk-123456")
    assert isinstance(auth, NhnAuth)
    assert "sk-123456" not in repr(auth) and "appkey-1" not in repr(auth)
