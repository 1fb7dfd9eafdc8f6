"""``voxhub agora ...``: AccessToken2 tools on the command line.

``voxhub agora token rtc --channel C --uid U [--role publisher|subscriber] [--expire S]``
and ``voxhub agora token rtm --user U`` build tokens with the App ID and app certificate
of a configured profile (``[agora-stt]`` by default, else ``[agora-transcoder]``; file or
``VOXHUB_<PROFILE>_APP_ID`` / ``..._APP_CERTIFICATE``). ``voxhub agora token inspect TOKEN``
decodes a token and prints its fields; the certificate is never printed and the signature
is shown masked.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from voxhub.config import Config
from voxhub.plugin import ConfigurationError, ProviderInfo

from .accesstoken import (
    AccessToken2,
    RtcRole,
    ServiceType,
    TokenError,
    build_rtc_token,
    build_rtm_token,
)
from .options import MAX_TOKEN_EXPIRE, STT_INFO, TRANSCODER_INFO

__all__ = ["agora"]

_INFOS: dict[str, ProviderInfo] = {info.name: info for info in (STT_INFO, TRANSCODER_INFO)}

_PRIVILEGE_NAMES: dict[int, dict[int, str]] = {
    ServiceType.RTC: {1: "join_channel", 2: "publish_audio_stream", 3: "publish_video_stream",
                      4: "publish_data_stream"},
    ServiceType.RTM: {1: "login"},
    ServiceType.RTM2: {1: "login"},
    ServiceType.FPA: {1: "login"},
    ServiceType.CHAT: {1: "user", 2: "app"},
}


def _credentials(profile: str | None, config_path: str | None,
                 *, need_certificate: bool = True) -> tuple[str, str | None]:
    """App ID and certificate of ``profile`` (default: agora-stt, then agora-transcoder)."""
    try:
        config = Config.load(config_path)
        candidates = [profile] if profile else ["agora-stt", "agora-transcoder"]
        problems: list[str] = []
        for name in candidates:
            info = _INFOS.get(config.provider_of(name))
            if info is None:
                raise ConfigurationError(
                    f"profile {name!r} is not an Agora profile (provider "
                    f"{config.provider_of(name)!r})")
            settings = config.settings(info, name)
            app_id = settings.secret("app_id")
            certificate = settings.secret("app_certificate")
            if app_id and (certificate or not need_certificate):
                return app_id, certificate
            problems.append(name)
        raise ConfigurationError(
            "no App ID and app certificate configured for profile "
            f"{' or '.join(repr(p) for p in problems)} (set app_id and app_certificate in the "
            "config file, or VOXHUB_AGORA_STT_APP_ID / VOXHUB_AGORA_STT_APP_CERTIFICATE)")
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


def _uid(text: str) -> int | str:
    # Digits are a numeric uid (0 = any uid); anything else is a string user account.
    return int(text) if text.isdigit() and int(text) <= 0xFFFF_FFFF else text


_profile_option = click.option(
    "--profile", default=None,
    help="config profile holding app_id and app_certificate (default: agora-stt, then "
         "agora-transcoder)")
_config_option = click.option("--config", "config_path", default=None,
                              type=click.Path(dir_okay=False),
                              help="config file (default: $VOXHUB_CONFIG or the user's)")


@click.group("agora")
def agora() -> None:
    """Agora tools (AccessToken2 tokens)."""


@agora.group("token")
def token() -> None:
    """Build and inspect AccessToken2 ("007") tokens."""


@token.command("rtc")
@click.option("--channel", required=True, help="channel name")
@click.option("--uid", required=True, help="numeric uid (0 = any uid) or a string user account")
@click.option("--role", type=click.Choice(["publisher", "subscriber"]), default="publisher",
              show_default=True, help="publisher: join + publish; subscriber: join only")
@click.option("--expire", type=click.IntRange(1, MAX_TOKEN_EXPIRE), default=3600,
              show_default=True, help="lifetime in seconds (at most 24 h)")
@_profile_option
@_config_option
def rtc_token(channel: str, uid: str, role: str, expire: int, profile: str | None,
              config_path: str | None) -> None:
    """Print an RTC token for UID in CHANNEL."""
    app_id, certificate = _credentials(profile, config_path)
    assert certificate is not None
    role_value = RtcRole.PUBLISHER if role == "publisher" else RtcRole.SUBSCRIBER
    try:
        click.echo(build_rtc_token(app_id, certificate, channel, _uid(uid), role_value, expire))
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None


@token.command("rtm")
@click.option("--user", required=True, help="RTM user id")
@click.option("--expire", type=click.IntRange(1, MAX_TOKEN_EXPIRE), default=3600,
              show_default=True, help="lifetime in seconds (at most 24 h)")
@_profile_option
@_config_option
def rtm_token(user: str, expire: int, profile: str | None, config_path: str | None) -> None:
    """Print an RTM login token for USER."""
    app_id, certificate = _credentials(profile, config_path)
    assert certificate is not None
    try:
        click.echo(build_rtm_token(app_id, certificate, user, expire))
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def describe_token(token_text: str, certificate: str | None = None,
                   app_id: str | None = None) -> dict[str, Any]:
    """The decoded fields of a token as JSON-ready data (signature masked).

    With ``certificate`` the signature is checked (``signature_valid``); the certificate
    itself never appears in the output.
    """
    parsed = AccessToken2.parse(token_text.strip(), strict=False)
    out: dict[str, Any] = parsed.to_dict()
    out["issued_at"] = _iso(parsed.issue_ts)
    out["expires_at"] = _iso(parsed.expires_at)
    out["expired"] = parsed.is_expired()
    out["signature"] = f"*** ({len(parsed.signature)} bytes, hidden)"
    for service in out["services"]:
        names = _PRIVILEGE_NAMES.get(service["type"], {})
        service["privileges"] = {
            names.get(int(key), key): {
                "seconds": value,
                "expires_at": "never" if value == 0 else _iso(parsed.issue_ts + value),
            }
            for key, value in service["privileges"].items()
        }
    if parsed.unknown_service_type is not None:
        out["unknown_service_type"] = parsed.unknown_service_type
    if certificate:
        out["signature_valid"] = parsed.verify(certificate)
        if app_id:
            out["app_id_matches"] = parsed.app_id.lower() == app_id.lower()
    else:
        out["signature_valid"] = None
    return out


@token.command("inspect")
@click.argument("token_text", metavar="TOKEN")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="check the signature with the configured app certificate when there is one")
@_profile_option
@_config_option
def inspect_token(token_text: str, verify: bool, profile: str | None,
                  config_path: str | None) -> None:
    """Decode TOKEN and print its fields (never the certificate; signature masked)."""
    certificate = app_id = None
    if verify:
        try:
            app_id, certificate = _credentials(profile, config_path)
        except click.ClickException:
            certificate = None  # decoding needs no configuration
    try:
        data = describe_token(token_text, certificate, app_id)
    except TokenError as exc:
        raise click.ClickException(f"not a valid AccessToken2: {exc}") from None
    click.echo(json.dumps(data, indent=2))
