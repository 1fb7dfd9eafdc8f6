"""Tests for voxhub_agora.accesstoken (Agora AccessToken2, "007" tokens): building rules,
credentials and secrets, checking and expiry, parsing robustness, properties.

The published vectors are checked in ``test_accesstoken_vectors.py``.
"""

from __future__ import annotations

import base64
import time
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from voxhub_agora.accesstoken import (
    DEFAULT_EXPIRE,
    AccessToken2,
    ApaasPrivilege,
    ChatPrivilege,
    FpaPrivilege,
    RtcPrivilege,
    RtcRole,
    Rtm2Permission,
    Rtm2ResourceType,
    RtmPrivilege,
    Service,
    ServiceApaas,
    ServiceChat,
    ServiceConvoAi,
    ServiceFcdn,
    ServiceFpa,
    ServiceRtc,
    ServiceRtm,
    ServiceRtm2,
    ServiceStreaming,
    ServiceStt,
    ServiceType,
    TokenAppIdError,
    TokenCredentialError,
    TokenError,
    TokenExpiredError,
    TokenFormatError,
    TokenSignatureError,
    build_rtc_token,
    build_rtc_token_with_privileges,
    build_rtm_token,
    check_token,
    uid_to_account,
)

APP_ID = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"
OTHER_CERT = "a" * 32
CHANNEL = "7d72365eb983485397e3e3f9d460bdda"
UID = 2882341273
ISSUE_TS = 1111111
SALT = 1
EXPIRE = 600


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
# Building details
# ---------------------------------------------------------------------------------------------


def test_uid_rules() -> None:
    assert uid_to_account(0) == ""
    assert uid_to_account("0") == "0"
    assert uid_to_account(UID) == str(UID)
    assert uid_to_account(2**32 - 1) == "4294967295"
    assert uid_to_account("alice") == "alice"
    assert ServiceRtc(CHANNEL, 0).uid == ""
    for bad in (-1, 2**32):
        with pytest.raises(TokenError):
            ServiceRtc(CHANNEL, bad)
    with pytest.raises(TypeError):
        ServiceRtc(CHANNEL, True)
    a = fixture_token(ServiceRtc(CHANNEL, UID).add_privilege(1, 600)).build()
    b = fixture_token(ServiceRtc(CHANNEL, str(UID)).add_privilege(1, 600)).build()
    assert a == b


def test_privilege_constants_are_plain_ints() -> None:
    assert int(RtcPrivilege.JOIN_CHANNEL) == 1 and int(RtcPrivilege.PUBLISH_DATA_STREAM) == 4
    assert ServiceRtc.Privilege is RtcPrivilege
    assert ServiceApaas.Privilege.APP is ApaasPrivilege.APP and int(ApaasPrivilege.APP) == 3
    a = ServiceChat("u").add_privilege(ChatPrivilege.USER, 10)
    b = ServiceChat("u").add_privilege(1, 10)
    assert a == b and list(a.privileges) == [1] and type(next(iter(a.privileges))) is int
    assert fixture_token(a).build() == fixture_token(b).build()
    with pytest.raises(TokenError):
        ServiceFpa().add_privilege(FpaPrivilege.LOGIN, -1)
    with pytest.raises(TokenError):
        ServiceFpa().add_privilege(0x10000, 1)


def test_services_sorted_by_type_and_repeats_keep_order() -> None:
    rtm = ServiceRtm("x").add_privilege(RtmPrivilege.LOGIN, 5)
    rtc = ServiceRtc("c", 1).add_privilege(RtcPrivilege.JOIN_CHANNEL, 5)
    rtc2 = ServiceRtc("c", 2).add_privilege(RtcPrivilege.JOIN_CHANNEL, 5)
    parsed = AccessToken2.parse(fixture_token(rtm, rtc, rtc2).build())
    assert parsed.services == (rtc, rtc2, rtm)
    assert parsed.find_services(ServiceType.RTC) == [rtc, rtc2]


def test_defaults_for_salt_issue_ts_and_expire() -> None:
    before = int(time.time())
    token = AccessToken2(APP_ID, CERT)
    assert before <= token.issue_ts <= int(time.time())
    assert 1 <= token.salt <= 99_999_999
    assert token.expire == DEFAULT_EXPIRE == 900
    parsed = AccessToken2.parse(token.add_service(ServiceFpa().add_privilege(1, 0)).build())
    assert parsed.verify(CERT)
    assert (parsed.issue_ts, parsed.salt, parsed.expire) == (token.issue_ts, token.salt, 900)


def test_build_rtc_token_roles_and_privileges() -> None:
    pub = AccessToken2.parse(build_rtc_token(APP_ID, CERT, "ch", 7, RtcRole.PUBLISHER, 3600, 60))
    (service,) = pub.services
    assert service.privileges == {1: 60, 2: 60, 3: 60, 4: 60}
    assert pub.expire == 3600 and pub.verify(CERT)
    sub = AccessToken2.parse(build_rtc_token(APP_ID, CERT, "ch", "bob", RtcRole.SUBSCRIBER, 300))
    assert sub.services[0].privileges == {1: 300}  # privilege_expire defaults to token_expire
    assert sub.services[0].fields() == {"channel_name": "ch", "uid": "bob"}
    with_rtm = AccessToken2.parse(build_rtc_token(APP_ID, CERT, "ch", 7, 1, 300, rtm_user_id="bob"))
    assert [s.service_type for s in with_rtm.services] == [ServiceType.RTC, ServiceType.RTM]
    for bad_role in (0, 3, True):
        with pytest.raises(TokenError, match="role"):
            build_rtc_token(APP_ID, CERT, "ch", 7, bad_role, 300)
    custom = AccessToken2.parse(
        build_rtc_token_with_privileges(APP_ID, CERT, "ch", 0, 900, 1, 2, 3, 4)
    )
    assert custom.services[0].privileges == {1: 1, 2: 2, 3: 3, 4: 4}
    assert custom.services[0].fields()["uid"] == ""
    rtm = AccessToken2.parse(build_rtm_token(APP_ID, CERT, "u", 120))
    assert rtm.expire == 120 and rtm.services[0].privileges == {1: 120}


def test_field_limits() -> None:
    with pytest.raises(TokenError, match="channel_name"):
        ServiceRtc("x" * 65536, 1)
    with pytest.raises(TokenError, match="role"):
        ServiceApaas(role=40000)
    with pytest.raises(TokenError, match="expire"):
        AccessToken2(APP_ID, CERT, expire=2**32)
    with pytest.raises(TokenError, match="salt"):
        AccessToken2(APP_ID, CERT, salt=-1)
    with pytest.raises(TypeError):
        AccessToken2(APP_ID, CERT).add_service("rtc")  # type: ignore[arg-type]
    # Multi-byte UTF-8 is length-prefixed in bytes, not characters.
    parsed = AccessToken2.parse(fixture_token(ServiceRtm("é東").add_privilege(1, 1)).build())
    assert parsed.services[0].fields() == {"user_id": "é東"}


# ---------------------------------------------------------------------------------------------
# Credentials and secrets
# ---------------------------------------------------------------------------------------------

BAD_CREDENTIALS = [
    "invalid",
    "z" * 32,
    "",
    "a" * 31,
    "a" * 33,
    "\uff11" * 32,  # FULLWIDTH DIGIT ONE: a digit, but not hex
    " " + "a" * 31,
    "a" * 32 + "\n",
    "g0b1ec0de5ec4e7v4lue_not_hex!!!!",
]


@pytest.mark.parametrize("bad", BAD_CREDENTIALS)
def test_bad_app_id_refused_naming_field(bad: str) -> None:
    with pytest.raises(TokenCredentialError) as info:
        AccessToken2(bad, CERT)
    assert info.value.field == "app_id"
    assert "app_id" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad", BAD_CREDENTIALS)
def test_bad_certificate_refused_without_echo(bad: str) -> None:
    for call in (
        lambda: AccessToken2(APP_ID, bad),
        lambda: build_rtc_token(APP_ID, bad, "ch", 1, 1, 60),
        lambda: build_rtm_token(APP_ID, bad, "u", 60),
        lambda: check_token("007x", app_id=APP_ID, app_certificate=bad),
    ):
        with pytest.raises(TokenCredentialError) as info:
            call()
        assert info.value.field == "app_certificate"
        assert "app_certificate" in str(info.value)
        if bad.strip():
            assert bad.strip() not in str(info.value)


def test_non_string_credentials_refused() -> None:
    with pytest.raises(TokenCredentialError):
        AccessToken2(None, CERT)  # type: ignore[arg-type]
    with pytest.raises(TokenCredentialError):
        AccessToken2(APP_ID, 12345678901234567890123456789012)  # type: ignore[arg-type]


def test_repr_hides_certificate_and_signature() -> None:
    token = fixture_token(ServiceRtc(CHANNEL, UID).add_privilege(1, 600))
    text = repr(token)
    assert CERT not in text and CERT.lower() not in text and "<redacted>" in text
    assert APP_ID in text
    parsed = AccessToken2.parse(token.build())
    shown = repr(parsed) + str(parsed)
    assert parsed.signature.hex() not in shown
    assert repr(parsed.signature) not in shown
    assert "signature=" not in shown and "signing_info" not in shown
    assert CHANNEL in shown


def test_error_messages_never_contain_secrets() -> None:
    token = fixture_token(ServiceRtc(CHANNEL, UID).add_privilege(1, 600)).build()
    signature = AccessToken2.parse(token).signature
    forged = AccessToken2(APP_ID, OTHER_CERT, issue_ts=ISSUE_TS, salt=SALT, expire=EXPIRE)
    forged_token = forged.add_service(ServiceRtc(CHANNEL, UID).add_privilege(1, 600)).build()
    errors: list[TokenError] = []
    for candidate, now in ((forged_token, ISSUE_TS), (token, ISSUE_TS + 10_000), (token[:-8], 0)):
        with pytest.raises(TokenError) as info:
            check_token(candidate, app_id=APP_ID, app_certificate=CERT, now=now)
        errors.append(info.value)
    for error in errors:
        message = str(error)
        for secret in (CERT, OTHER_CERT, signature.hex(), repr(signature), token[3:20]):
            assert secret not in message


# ---------------------------------------------------------------------------------------------
# Checking and expiry
# ---------------------------------------------------------------------------------------------


def test_check_token_outcomes() -> None:
    service = ServiceRtc(CHANNEL, UID).add_privilege(RtcPrivilege.JOIN_CHANNEL, 300)
    token = fixture_token(service).build()
    ok = check_token(token, app_id=APP_ID, app_certificate=CERT, now=ISSUE_TS + 600)
    assert ok.expires_at == ISSUE_TS + 600 and not ok.is_expired(ISSUE_TS + 600)
    # App IDs are hex: compare case-insensitively.
    check_token(token, app_id=APP_ID.lower(), app_certificate=CERT, now=ISSUE_TS)
    with pytest.raises(TokenExpiredError):
        check_token(token, app_id=APP_ID, app_certificate=CERT, now=ISSUE_TS + 601)
    with pytest.raises(TokenExpiredError):
        check_token(token, app_id=APP_ID, app_certificate=CERT)  # real clock: 1970 + 13 days
    with pytest.raises(TokenSignatureError):
        check_token(token, app_id=APP_ID, app_certificate=OTHER_CERT, now=ISSUE_TS)
    with pytest.raises(TokenAppIdError):
        check_token(token, app_id="b" * 32, app_certificate=CERT, now=ISSUE_TS)
    with pytest.raises(TokenFormatError):
        check_token("007" + token[4:], app_id=APP_ID, app_certificate=CERT, now=ISSUE_TS)
    # A forged (wrongly signed) expired token must be "invalid", never "expired".
    with pytest.raises(TokenSignatureError):
        check_token(token, app_id=APP_ID, app_certificate=OTHER_CERT, now=ISSUE_TS + 10**6)


def test_privilege_expiry() -> None:
    service = ServiceRtc(CHANNEL, 0).add_privilege(RtcPrivilege.JOIN_CHANNEL, 300)
    service.add_privilege(RtcPrivilege.PUBLISH_AUDIO_STREAM, 0)  # 0 = never expires
    parsed = AccessToken2.parse(fixture_token(service, expire=86400).build())
    join, audio = RtcPrivilege.JOIN_CHANNEL, RtcPrivilege.PUBLISH_AUDIO_STREAM
    assert parsed.has_privilege(ServiceType.RTC, join, now=ISSUE_TS + 300)
    assert not parsed.has_privilege(ServiceType.RTC, join, now=ISSUE_TS + 301)
    assert parsed.has_privilege(ServiceType.RTC, audio, now=ISSUE_TS + 10**6)
    assert not parsed.has_privilege(ServiceType.RTC, RtcPrivilege.PUBLISH_VIDEO_STREAM, ISSUE_TS)
    assert not parsed.has_privilege(ServiceType.RTM, 1, now=ISSUE_TS)
    assert parsed.is_expired() and not parsed.is_expired(ISSUE_TS + 86400)
    assert parsed.is_expired(ISSUE_TS + 86401)


# ---------------------------------------------------------------------------------------------
# Parsing robustness
# ---------------------------------------------------------------------------------------------


def _rtc_content() -> bytes:
    token = fixture_token(
        ServiceRtc(CHANNEL, UID).add_privilege(1, 600),
        ServiceApaas("r", "u", 1).add_privilege(ApaasPrivilege.ROOM_USER, 600),
    ).build()
    return content_of(token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "0",
        "00",
        "007",
        "006eJxTYBBbsMMnKq7p9Hf",
        "007!!!!",
        "007eJx",  # bad padding
        "007" + base64.urlsafe_b64encode(zlib.compress(b"\x20\x00" + b"\xff" * 40)).decode(),
        "007" + base64.b64encode(zlib.compress(b"")).decode(),
        "007" + base64.b64encode(zlib.compress(b"\x10\x00" + b"x" * 16)).decode(),  # short sig
        "007" + base64.b64encode(zlib.compress(b"\x20\x00" + b"x" * 32)).decode(),  # no info
        "007" + base64.b64encode(zlib.compress(b"\x20\x00" + b"x" * 32) + b"junk").decode(),
        "007" + base64.b64encode(zlib.compress(b"a" * ((1 << 20) + 1))).decode(),
        "007" + "A" * ((1 << 20) + 4),
    ],
)
def test_malformed_tokens_refused(token: str) -> None:
    with pytest.raises(TokenFormatError):
        AccessToken2.parse(token)


def test_non_string_token_refused() -> None:
    with pytest.raises(TokenFormatError):
        AccessToken2.parse(b"007abc")  # type: ignore[arg-type]


def test_every_truncation_and_byte_flip_is_caught() -> None:
    content = _rtc_content()
    assert AccessToken2.parse(token_of(content)).verify(CERT)
    for size in range(len(content)):
        with pytest.raises(TokenFormatError):
            AccessToken2.parse(token_of(content[:size]))
    for index in range(len(content)):
        for mask in (0x01, 0x80, 0xFF):
            tampered = bytearray(content)
            tampered[index] ^= mask
            try:
                parsed = AccessToken2.parse(token_of(bytes(tampered)))
            except TokenFormatError:
                continue
            assert not parsed.verify(CERT), (index, mask)


def test_trailing_bytes_and_duplicates() -> None:
    content = _rtc_content()
    with pytest.raises(TokenFormatError, match="after the last service"):
        AccessToken2.parse(token_of(content + b"\x00"))
    # Non-strict parsing ignores them; the signature covers them, so verification fails.
    lenient = AccessToken2.parse(token_of(content + b"\x00"), strict=False)
    assert not lenient.verify(CERT)


def test_unknown_service_type_strict_and_lenient() -> None:
    class FutureService(Service):
        SERVICE_TYPE = 99  # type: ignore[assignment]

    rtc = ServiceRtc(CHANNEL, UID).add_privilege(1, 600)
    token = fixture_token(rtc, FutureService().add_privilege(1, 600)).build()
    with pytest.raises(TokenFormatError, match="unsupported service type 99"):
        AccessToken2.parse(token)
    parsed = AccessToken2.parse(token, strict=False)
    assert parsed.services == (rtc,)
    assert parsed.service_count == 2 and parsed.unknown_service_type == 99
    assert parsed.verify(CERT)  # the signature covers the undecoded bytes too


def test_convoai_and_stt_services_round_trip() -> None:
    token = fixture_token(ServiceRtc(CHANNEL, 0), ServiceStt(), ServiceConvoAi()).build()
    parsed = AccessToken2.parse(token)
    assert [s.service_type for s in parsed.services] == [1, 9, 10]
    assert parsed.verify(CERT)


def test_plus_turned_into_space_still_parses() -> None:
    for salt in range(1, 500):
        token = AccessToken2(APP_ID, CERT, issue_ts=ISSUE_TS, salt=salt)
        built = token.add_service(ServiceRtm("u").add_privilege(1, 60)).build()
        if "+" in built:
            break
    else:
        pytest.fail("no token with '+' found")
    parsed = AccessToken2.parse(built.replace("+", " "))
    assert parsed.verify(CERT) and parsed.salt == salt


def test_decoder_accepts_other_zlib_settings() -> None:
    content = _rtc_content()
    for level in (0, 1, 9):
        variant = "007" + base64.b64encode(zlib.compress(content, level)).decode()
        parsed = AccessToken2.parse(variant)
        assert parsed.verify(CERT)
        assert parsed == AccessToken2.parse(token_of(content))


# ---------------------------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------------------------

hex32 = st.text(alphabet="0123456789abcdefABCDEF", min_size=32, max_size=32)
u32 = st.integers(0, 2**32 - 1)
texts = st.text(max_size=24)
privilege_maps = st.dictionaries(st.integers(0, 0xFFFF), u32, max_size=6)


def _with_privileges(pair: tuple[Service, dict[int, int]]) -> Service:
    service, privileges = pair
    for privilege, expire in privileges.items():
        service.add_privilege(privilege, expire)
    return service


@st.composite
def rtm2_services(draw: st.DrawFn) -> ServiceRtm2:
    service = ServiceRtm2(draw(texts))
    for kind, perm, resource in draw(
        st.lists(
            st.tuples(st.sampled_from(Rtm2ResourceType), st.sampled_from(Rtm2Permission), texts),
            max_size=5,
        )
    ):
        service.add_permission(kind, perm, resource)
    return service


bare_services = st.one_of(
    st.builds(ServiceRtc, texts, st.one_of(u32, texts)),
    st.builds(ServiceRtm, texts),
    st.builds(ServiceFpa),
    st.builds(ServiceChat, texts),
    st.builds(ServiceApaas, texts, texts, st.integers(-0x8000, 0x7FFF)),
    st.builds(ServiceStreaming, texts, st.one_of(u32, texts)),
    st.builds(ServiceFcdn, texts, st.one_of(u32, texts)),
    rtm2_services(),
)
services = st.tuples(bare_services, privilege_maps).map(_with_privileges)


@st.composite
def built_tokens(draw: st.DrawFn) -> tuple[AccessToken2, str, str]:
    cert = draw(hex32)
    token = AccessToken2(draw(hex32), cert, issue_ts=draw(u32), expire=draw(u32), salt=draw(u32))
    for service in draw(st.lists(services, min_size=1, max_size=5)):
        token.add_service(service)
    return token, cert, token.build()


@settings(max_examples=200, deadline=None)
@given(built=built_tokens(), other=hex32)
def test_round_trip_build_parse_verify(built: tuple[AccessToken2, str, str], other: str) -> None:
    token, cert, text = built
    parsed = AccessToken2.parse(text)
    assert parsed.app_id == token.app_id
    assert (parsed.issue_ts, parsed.expire, parsed.salt) == (
        token.issue_ts,
        token.expire,
        token.salt,
    )
    assert parsed.services == tuple(sorted(token.services, key=lambda s: int(s.service_type)))
    assert parsed.service_count == len(token.services)
    assert parsed.signing_info == token.signing_info()
    assert parsed.verify(cert)
    assert parsed.signature.hex() not in repr(parsed)
    if token.app_id != cert:  # both are random hex; only then can repr be checked for it
        assert cert not in repr(token)
    assume(other != cert)
    assert not parsed.verify(other)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(built=built_tokens(), data=st.data())
def test_tampering_fails_verification(built: tuple[AccessToken2, str, str], data: Any) -> None:
    _, cert, text = built
    content = bytearray(content_of(text))
    # Half of the draws target the signature itself (bytes 2..33).
    index = data.draw(
        st.one_of(st.integers(2, 33), st.integers(0, len(content) - 1)), label="index"
    )
    content[index] ^= data.draw(st.integers(1, 255), label="mask")
    try:
        parsed = AccessToken2.parse(token_of(bytes(content)))
    except TokenFormatError:
        return
    assert not parsed.verify(cert)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=300), raw=st.text(max_size=60))
def test_garbage_only_raises_token_errors(payload: bytes, raw: str) -> None:
    for candidate in ("007" + base64.b64encode(zlib.compress(payload)).decode(), raw, "007" + raw):
        try:
            parsed = AccessToken2.parse(candidate, strict=bool(len(payload) % 2))
        except TokenFormatError:
            continue
        assert parsed.verify(CERT) in (True, False)
