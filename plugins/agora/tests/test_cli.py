"""``voxhub agora token rtc|rtm|inspect`` through the plugin's registered click commands."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from voxhub.plugins import PluginManager
from voxhub_agora.accesstoken import (
    AccessToken2,
    RtcPrivilege,
    ServiceRtc,
    ServiceRtm,
    ServiceType,
    check_token,
)

APP_ID = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"


@pytest.fixture
def cli() -> click.Group:
    group = click.Group("voxhub")
    manager = PluginManager.load(env={"VOXHUB_LOAD_PLUGINS": "voxhub-agora"})
    manager.register_commands(group)
    assert not manager.failures
    return group


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[agora-stt]\napp_id = "{APP_ID}"\napp_certificate = "{CERT}"\n')
    return path


def _run(cli: click.Group, args: list[str], **env: str) -> str:
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_rtc_token_roles_and_expiry(cli: click.Group, config: Path) -> None:
    out = _run(cli, ["agora", "token", "rtc", "--channel", "room", "--uid", "42",
                     "--role", "subscriber", "--expire", "600"], VOXHUB_CONFIG=str(config))
    token = out.strip()
    parsed = check_token(token, app_id=APP_ID, app_certificate=CERT)
    (rtc,) = parsed.find_services(ServiceType.RTC)
    assert isinstance(rtc, ServiceRtc) and (rtc.channel_name, rtc.uid) == ("room", "42")
    assert rtc.privileges == {RtcPrivilege.JOIN_CHANNEL: 600} and parsed.expire == 600
    out = _run(cli, ["agora", "token", "rtc", "--channel", "room", "--uid", "alice"],
               VOXHUB_CONFIG=str(config))
    parsed = check_token(out.strip(), app_id=APP_ID, app_certificate=CERT)
    (rtc,) = parsed.find_services(ServiceType.RTC)
    assert rtc.uid == "alice" and len(rtc.privileges) == 4  # publisher by default
    assert CERT not in out


def test_rtm_token_from_environment(cli: click.Group, tmp_path: Path) -> None:
    out = _run(cli, ["agora", "token", "rtm", "--user", "bob"],
               VOXHUB_CONFIG=str(tmp_path / "none.toml"), VOXHUB_AGORA_STT_APP_ID=APP_ID,
               VOXHUB_AGORA_STT_APP_CERTIFICATE=CERT)
    parsed = check_token(out.strip(), app_id=APP_ID, app_certificate=CERT)
    (rtm,) = parsed.find_services(ServiceType.RTM)
    assert isinstance(rtm, ServiceRtm) and rtm.user_id == "bob"


def test_transcoder_profile_is_used_when_stt_is_not_configured(cli: click.Group,
                                                               tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[agora-transcoder]\napp_id = "{APP_ID}"\napp_certificate = "{CERT}"\n')
    out = _run(cli, ["agora", "token", "rtm", "--user", "x", "--config", str(path)])
    check_token(out.strip(), app_id=APP_ID, app_certificate=CERT)


def test_missing_configuration_is_explained(cli: click.Group, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["agora", "token", "rtc", "--channel", "c", "--uid", "1"],
                                env={"VOXHUB_CONFIG": str(tmp_path / "none.toml")})
    assert result.exit_code != 0
    assert "app_certificate" in result.output and "VOXHUB_AGORA_STT_APP_ID" in result.output


def test_inspect_prints_fields_never_the_certificate(cli: click.Group, config: Path) -> None:
    token = AccessToken2(APP_ID, CERT, issue_ts=int(time.time()), expire=900).add_service(
        ServiceRtc("room", 7).add_privilege(RtcPrivilege.JOIN_CHANNEL, 900)
        .add_privilege(RtcPrivilege.PUBLISH_AUDIO_STREAM, 0)).build()
    out = _run(cli, ["agora", "token", "inspect", token], VOXHUB_CONFIG=str(config))
    data = json.loads(out)
    assert data["app_id"] == APP_ID and data["expire"] == 900 and data["expired"] is False
    service = data["services"][0]
    assert service["name"] == "RTC" and service["channel_name"] == "room"
    assert service["privileges"]["join_channel"]["seconds"] == 900
    assert service["privileges"]["publish_audio_stream"]["expires_at"] == "never"
    assert data["signature"].startswith("***") and data["signature_valid"] is True
    assert CERT not in out and CERT.lower() not in out.lower()
    parsed = AccessToken2.parse(token)
    assert parsed.signature.hex() not in out


def test_inspect_without_configuration_and_bad_tokens(cli: click.Group, tmp_path: Path) -> None:
    token = AccessToken2(APP_ID, CERT, expire=60).add_service(
        ServiceRtm("u").add_privilege(1, 60)).build()
    out = _run(cli, ["agora", "token", "inspect", token],
               VOXHUB_CONFIG=str(tmp_path / "none.toml"))
    assert json.loads(out)["signature_valid"] is None
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(f'[agora-stt]\napp_id = "{APP_ID}"\napp_certificate = "{"0" * 32}"\n')
    out = _run(cli, ["agora", "token", "inspect", token, "--config", str(wrong)])
    assert json.loads(out)["signature_valid"] is False
    result = CliRunner().invoke(cli, ["agora", "token", "inspect", "007garbage"],
                                env={"VOXHUB_CONFIG": str(tmp_path / "none.toml")})
    assert result.exit_code != 0 and "not a valid AccessToken2" in result.output
