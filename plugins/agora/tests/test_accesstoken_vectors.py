"""AccessToken2 against the published vectors and the worked example.

The vectors are this plugin's own test data (``tests/data``, copied from
``shared/specs``), so every test runs in any checkout.
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from voxhub_agora.accesstoken import (
    AccessToken2,
    ParsedToken,
    RtcPrivilege,
    RtcRole,
    Service,
    ServiceApaas,
    ServiceChat,
    ServiceFcdn,
    ServiceFpa,
    ServiceRtc,
    ServiceRtm,
    ServiceRtm2,
    ServiceStreaming,
    ServiceType,
    TokenCredentialError,
    TokenError,
    TokenFormatError,
    TokenSignatureError,
    build_rtc_token,
    build_rtm_token,
    check_token,
)
from voxhub_agora.accesstoken_codec import signing_key

DATA_DIR = Path(__file__).resolve().parent / "data"
EXAMPLE_PATH = DATA_DIR / "agora-token-example.json"
VECTORS_PATH = DATA_DIR / "agora-token-vectors.json"

APP_ID = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"
OTHER_CERT = "a" * 32
CHANNEL = "7d72365eb983485397e3e3f9d460bdda"
UID = 2882341273
ISSUE_TS = 1111111
SALT = 1
EXPIRE = 600


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


EXAMPLE = _load(EXAMPLE_PATH)
VECTORS = _load(VECTORS_PATH)


def _params(section: str) -> list[Any]:
    """One pytest.param per vector of ``section``."""
    entries = VECTORS[section]["vectors"] if section == "compression_variants" else VECTORS[section]
    return [pytest.param(e, id=e.get("id") or e.get("input", "")[:40]) for e in entries]


def _vector(vector_id: str) -> dict[str, Any]:
    for section in ("token_vectors", "historical_python3_vectors"):
        for entry in VECTORS[section]:
            if entry["id"] == vector_id:
                return dict(entry)
    raise AssertionError(f"vector {vector_id} not in {VECTORS_PATH}")



def service_from_decoded(data: dict[str, Any]) -> Service | None:
    """Build a service from a vector's decoded description with the public API only."""
    kind = data["type"]
    service: Service
    if kind == ServiceType.RTC:
        service = ServiceRtc(data["channel_name"], data["uid"])
    elif kind == ServiceType.RTM:
        service = ServiceRtm(data["user_id"])
    elif kind == ServiceType.STREAMING:
        service = ServiceStreaming(data["channel_name"], data["account"])
    elif kind == ServiceType.FPA:
        service = ServiceFpa()
    elif kind == ServiceType.CHAT:
        service = ServiceChat(data["user_id"])
    elif kind == ServiceType.FCDN:
        service = ServiceFcdn(data["channel_name"], data["account"])
    elif kind == ServiceType.APAAS:
        service = ServiceApaas(data["room_uuid"], data["user_uuid"], data["role"])
    elif kind == ServiceType.RTM2:
        rtm2 = ServiceRtm2(data["user_id"])
        for resource_type, perms in data["permissions"].items():
            for permission, resources in perms.items():
                for resource in resources:
                    rtm2.add_permission(int(resource_type), int(permission), resource)
        service = rtm2
    else:
        return None
    for privilege, expire in data["privileges"].items():
        service.add_privilege(int(privilege), expire)
    return service


def token_from_decoded(decoded: dict[str, Any], certificate: str) -> AccessToken2:
    token = AccessToken2(
        decoded["app_id"],
        certificate,
        issue_ts=decoded["issue_ts"],
        expire=decoded["expire"],
        salt=decoded["salt"],
    )
    for data in decoded["services"]:
        service = service_from_decoded(data)
        assert service is not None, f"service type {data['type']} has no builder here"
        token.add_service(service)
    return token


def assert_decoded(parsed: ParsedToken, decoded: dict[str, Any]) -> None:
    expected = {k: v for k, v in decoded.items() if k != "signature_hex"}
    assert parsed.to_dict() == expected
    assert parsed.signature.hex() == decoded["signature_hex"]



def content_of(token: str) -> bytes:
    return zlib.decompress(base64.b64decode(token[3:]))


def token_of(content: bytes) -> str:
    return "007" + base64.b64encode(zlib.compress(content)).decode("ascii")


def fixture_token(*services: Service, expire: int = EXPIRE) -> AccessToken2:
    token = AccessToken2(APP_ID, CERT, issue_ts=ISSUE_TS, expire=expire, salt=SALT)
    for service in services:
        token.add_service(service)
    return token



# ---------------------------------------------------------------------------------------------
# Worked example (agora-token-example.json)
# ---------------------------------------------------------------------------------------------


def _hex_after_equals(text: str) -> str:
    return text.rsplit("= ", 1)[-1]


def test_worked_example_reproduces_every_step() -> None:
    fx, steps = EXAMPLE["fixture"], EXAMPLE["steps"]
    token = AccessToken2(
        fx["app_id"], fx["app_certificate"], issue_ts=fx["issue_ts"], expire=fx["expire"]
    )
    token.salt = fx["salt"]  # as upstream tests do: overwrite the random salt
    service = ServiceRtc(fx["channel_name"], fx["uid"])  # numeric uid
    service.add_privilege(RtcPrivilege.JOIN_CHANNEL, EXAMPLE["privileges"]["join_channel(1)"])
    token.add_service(service)

    key = signing_key(fx["app_certificate"], fx["issue_ts"], fx["salt"])
    assert key.hex() == _hex_after_equals(steps["step2_signing_key_hex"])
    assert token.signing_info().hex() == steps["step3_signing_info_hex"]

    built = token.build()
    assert built == EXAMPLE["expected_token"]
    assert built == _hex_after_equals(steps["step7_token"])
    assert base64.b64decode(built[3:]).hex() == steps["step6_zlib_compressed_hex"]
    assert content_of(built).hex() == _hex_after_equals(steps["step5_content_hex"])
    parsed = AccessToken2.parse(built)
    assert parsed.signature.hex() == _hex_after_equals(steps["step4_signature_hex"])
    assert parsed.verify(fx["app_certificate"])


# ---------------------------------------------------------------------------------------------
# Published vectors (agora-token-vectors.json)
# ---------------------------------------------------------------------------------------------


def _signed_params() -> list[Any]:
    return _params("token_vectors") + _params("historical_python3_vectors")


@pytest.mark.parametrize("entry", _signed_params())
def test_vector_reproduces_byte_for_byte(entry: dict[str, Any]) -> None:
    if "decoded" not in entry:
        # rtc_account_equals_rtc_uid: same token from a string account as from the number.
        twin = _vector(entry["same_as"])
        decoded = twin["decoded"]
        token = token_from_decoded(decoded, twin["signature_verifies_with_app_certificate"])
        for data in decoded["services"]:
            assert isinstance(data["uid"], str)  # built from the string account
        assert token.build() == entry["token"] == twin["token"]
        return
    token = token_from_decoded(entry["decoded"], entry["signature_verifies_with_app_certificate"])
    if entry["python_zlib_default_recompression_reproduces_token"]:
        assert token.build() == entry["token"]
    else:
        # Another zlib deflated this one: the strings differ, the payload must not.
        assert content_of(token.build()) == content_of(entry["token"])


@pytest.mark.parametrize("entry", _signed_params())
def test_vector_parses_and_verifies(entry: dict[str, Any]) -> None:
    if "decoded" not in entry:
        entry = {**_vector(entry["same_as"]), "token": entry["token"]}
    parsed = AccessToken2.parse(entry["token"])
    assert_decoded(parsed, entry["decoded"])
    assert (
        parsed.verify(entry["signature_verifies_with_app_certificate"]) is entry["signature_valid"]
    )
    assert parsed.verify(OTHER_CERT) is False
    assert parsed.unknown_service_type is None


@pytest.mark.parametrize("entry", _params("compression_variants"))
def test_compression_variant_parses_and_verifies(entry: dict[str, Any]) -> None:
    parsed = AccessToken2.parse(entry["token"])
    assert_decoded(parsed, entry["decoded"])
    assert (
        parsed.verify(entry["signature_verifies_with_app_certificate"]) is entry["signature_valid"]
    )
    assert parsed.verify(OTHER_CERT) is False
    rebuilt = token_from_decoded(
        entry["decoded"], entry["signature_verifies_with_app_certificate"]
    ).build()
    # Same content, different deflate output: strings differ, payloads do not.
    reproduces = entry["python_zlib_default_recompression_reproduces_token"]
    assert (rebuilt == entry["token"]) is reproduces
    assert content_of(rebuilt) == content_of(entry["token"])
    if entry.get("payload_identical_to"):
        twin = _vector(entry["payload_identical_to"])
        assert rebuilt == twin["token"]
        twin_parsed = AccessToken2.parse(twin["token"])
        assert twin_parsed.signing_info == parsed.signing_info
        assert twin_parsed.signature == parsed.signature


@pytest.mark.parametrize("entry", _params("parse_only_vectors"))
def test_parse_only_vector(entry: dict[str, Any]) -> None:
    parsed = AccessToken2.parse(entry["token"])
    assert_decoded(parsed, entry["decoded"])
    assert parsed.verify(CERT) is False  # its certificate is not published


@pytest.mark.parametrize("entry", _params("invalid_token_vectors"))
def test_invalid_vector_is_refused(entry: dict[str, Any]) -> None:
    text: str = entry["input"]
    if " " not in text:  # a literal token string
        with pytest.raises(TokenFormatError):
            AccessToken2.parse(text)
        with pytest.raises(TokenFormatError):
            check_token(text, app_id=APP_ID, app_certificate=CERT)
        return
    valid = fixture_token(ServiceRtc(CHANNEL, UID).add_privilege(1, 600)).build()
    if text.startswith('verify_signature with certificate "a"*32'):
        assert AccessToken2.parse(valid).verify("a" * 32) is False
        with pytest.raises(TokenSignatureError):
            check_token(valid, app_id=APP_ID, app_certificate="a" * 32, now=ISSUE_TS)
    elif text.startswith('verify_signature with certificate "invalid"'):
        # Refused loudly instead of returning False: a malformed certificate is a config error.
        for bad in ("invalid", "z" * 32):
            with pytest.raises(TokenCredentialError):
                AccessToken2.parse(valid).verify(bad)
    elif text.startswith("build() with"):
        for app_id, cert in (("invalid", CERT), ("z" * 32, CERT), (APP_ID, "invalid")):
            with pytest.raises(TokenCredentialError):
                AccessToken2(app_id, cert, issue_ts=ISSUE_TS, salt=SALT)
        with pytest.raises(TokenError, match="at least one service"):
            fixture_token().build()
    else:
        pytest.fail(f"unhandled invalid vector: {text!r}")


def test_builders_reproduce_vectors() -> None:
    fixed: dict[str, Any] = {"issue_ts": ISSUE_TS, "salt": SALT}
    rtc_uid = _vector("rtc_uid")["token"]
    subscriber = RtcRole.SUBSCRIBER
    assert build_rtc_token(APP_ID, CERT, CHANNEL, UID, subscriber, EXPIRE, **fixed) == rtc_uid
    assert build_rtc_token(APP_ID, CERT, CHANNEL, str(UID), 2, 600, 600, **fixed) == rtc_uid
    rtc_uid_0 = _vector("rtc_uid_0")["token"]
    assert build_rtc_token(APP_ID, CERT, CHANNEL, 0, subscriber, EXPIRE, **fixed) == rtc_uid_0
    publisher_rtm = build_rtc_token(
        APP_ID, CERT, CHANNEL, UID, RtcRole.PUBLISHER, EXPIRE, rtm_user_id="test_user", **fixed
    )
    assert publisher_rtm == _vector("rtc_publisher_plus_rtm")["token"]
    rtm = build_rtm_token(APP_ID, CERT, "test_user", EXPIRE, **fixed)
    assert rtm == _vector("rtm_user")["token"]
    rtm_cpp = build_rtm_token(APP_ID, CERT, str(UID), EXPIRE, **fixed)
    assert rtm_cpp == _vector("rtm_user_cpp")["token"]
