"""Agora AccessToken2 ("007" tokens): build, parse and verify.

The byte layout follows Agora's public reference implementation (``AgoraIO/Tools``,
``DynamicKey/AgoraDynamicKey``); see ``shared/specs/agora.md`` section 3::

    signing_info = str(app_id) u32(issue_ts) u32(expire) u32(salt) u16(count) service...
    content      = str(signature) signing_info
    token        = "007" + base64(zlib(content))

All integers are little-endian, ``str`` is a ``u16`` byte length followed by UTF-8 bytes and a
service is ``u16(type) map_u32(privileges)`` followed by its type-specific fields.

Building::

    token = AccessToken2(app_id, app_certificate, expire=3600)
    token.add_service(ServiceRtc("channel", 42).add_privilege(RtcPrivilege.JOIN_CHANNEL, 3600))
    token.build()  # "007eJx..."

Checking a token the way Agora's REST gateway answers (a sandbox maps
:class:`TokenExpiredError` to ``"Token is expired"`` and any other :class:`TokenError` to
``"Invalid token"``)::

    parsed = check_token(token, app_id=app_id, app_certificate=app_certificate)

Token strings are not canonical (other zlib implementations compress the same content
differently), so tokens are only ever verified by recomputing the HMAC over the decoded bytes,
never by comparing strings.

The code is in three modules: the byte layer and errors (:mod:`.accesstoken_codec`), the
services (:mod:`.accesstoken_services`) and tokens (this one); every public name is
importable from here.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
import zlib
from dataclasses import dataclass, field
from typing import Self

from .accesstoken_codec import (
    MAX_TOKEN_CHARS,
    SALT_MAX,
    SALT_MIN,
    SIGNATURE_LENGTH,
    U32_MAX,
    Reader,
    TokenAppIdError,
    TokenCredentialError,
    TokenError,
    TokenExpiredError,
    TokenFormatError,
    TokenSignatureError,
    Writer,
    check_credential,
    check_int,
    uid_to_account,
)
from .accesstoken_codec import inflate as _inflate
from .accesstoken_codec import sign as _sign
from .accesstoken_services import (
    SERVICE_CLASSES,
    ApaasPrivilege,
    ChatPrivilege,
    FcdnPrivilege,
    FpaPrivilege,
    RtcPrivilege,
    RtcRole,
    Rtm2Permission,
    Rtm2Privilege,
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
    StreamingPrivilege,
)

__all__ = [
    "DEFAULT_EXPIRE",
    "VERSION",
    "AccessToken2",
    "ApaasPrivilege",
    "ChatPrivilege",
    "FcdnPrivilege",
    "FpaPrivilege",
    "ParsedToken",
    "RtcPrivilege",
    "RtcRole",
    "Rtm2Permission",
    "Rtm2Privilege",
    "Rtm2ResourceType",
    "RtmPrivilege",
    "Service",
    "ServiceApaas",
    "ServiceChat",
    "ServiceConvoAi",
    "ServiceFcdn",
    "ServiceFpa",
    "ServiceRtc",
    "ServiceRtm",
    "ServiceRtm2",
    "ServiceStreaming",
    "ServiceStt",
    "ServiceType",
    "StreamingPrivilege",
    "TokenAppIdError",
    "TokenCredentialError",
    "TokenError",
    "TokenExpiredError",
    "TokenFormatError",
    "TokenSignatureError",
    "build_rtc_token",
    "build_rtc_token_with_privileges",
    "build_rtm_token",
    "check_token",
    "uid_to_account",
]

VERSION = "007"
"""Version prefix of every AccessToken2 string."""

DEFAULT_EXPIRE = 900
"""Token lifetime (seconds) used by :class:`AccessToken2` when none is given (as upstream)."""


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


class AccessToken2:
    """An AccessToken2 under construction.

    Args:
        app_id: the project's App ID (32 hex characters, packed as given).
        app_certificate: the App Certificate (32 hex characters); kept private, never shown.
        issue_ts: Unix seconds of issue; defaults to now.
        expire: token lifetime in seconds relative to ``issue_ts``.
        salt: random uint32; defaults to a random value in 1..99999999 like upstream.

    Raises:
        TokenCredentialError: if ``app_id`` or ``app_certificate`` is not 32 hex characters.
    """

    def __init__(
        self,
        app_id: str,
        app_certificate: str,
        issue_ts: int | None = None,
        expire: int = DEFAULT_EXPIRE,
        salt: int | None = None,
    ) -> None:
        self.app_id = check_credential(app_id, "app_id")
        self._app_certificate = check_credential(app_certificate, "app_certificate")
        self.issue_ts = (
            int(time.time()) if issue_ts is None else check_int(issue_ts, 0, U32_MAX, "issue_ts")
        )
        self.expire = check_int(expire, 0, U32_MAX, "expire")
        self.salt = (
            secrets.SystemRandom().randint(SALT_MIN, SALT_MAX)
            if salt is None
            else check_int(salt, 0, U32_MAX, "salt")
        )
        self.services: list[Service] = []

    def add_service(self, service: Service) -> Self:
        """Append a service; chainable.

        Several services of one type are allowed and kept in insertion order within their type
        (the 2025+ upstream behaviour; older versions kept only the last one per type).
        """
        if not isinstance(service, Service):
            raise TypeError("service must be a Service instance")
        self.services.append(service)
        return self

    def signing_info(self) -> bytes:
        """The signed part of the token (section 3.3) for the current fields."""
        writer = Writer()
        writer.text(self.app_id, "app_id")
        writer.u32(self.issue_ts, "issue_ts")
        writer.u32(self.expire, "expire")
        writer.u32(self.salt, "salt")
        writer.u16(len(self.services), "number of services")
        # Stable sort: ascending type, insertion order among services of the same type.
        for service in sorted(self.services, key=lambda s: int(s.SERVICE_TYPE)):
            service._pack(writer)
        return writer.getvalue()

    def build(self) -> str:
        """Serialise, sign and encode the token (``"007"`` + base64(zlib(content))).

        Uses Python's standard zlib at the default level, so the output matches the
        upstream Python/C++ test vectors byte for byte.

        Raises:
            TokenError: if no service was added or a field does not fit its encoding.
        """
        if not self.services:
            raise TokenError("a token needs at least one service")
        signing_info = self.signing_info()
        writer = Writer()
        writer.raw_string(
            _sign(self._app_certificate, self.issue_ts, self.salt, signing_info), "signature"
        )
        content = writer.getvalue() + signing_info
        return VERSION + base64.b64encode(zlib.compress(content)).decode("ascii")

    @staticmethod
    def parse(token: str, *, strict: bool = True) -> ParsedToken:
        """Decode a ``"007"`` token without checking its signature (see :meth:`ParsedToken.verify`).

        Any zlib compression variant is accepted. With ``strict`` (default) an unknown service
        type or bytes after the last service are errors; with ``strict=False`` parsing stops at
        an unknown service type like the 2026 upstream parser (the signature still covers every
        byte) and records it in :attr:`ParsedToken.unknown_service_type`.

        Raises:
            TokenFormatError: on anything malformed.
        """
        return _parse(token, strict=strict)

    def __repr__(self) -> str:
        return (
            f"AccessToken2(app_id={self.app_id!r}, app_certificate=<redacted>, "
            f"issue_ts={self.issue_ts}, expire={self.expire}, salt={self.salt}, "
            f"services={self.services!r})"
        )


@dataclass(frozen=True)
class ParsedToken:
    """A decoded AccessToken2. Its signature is unchecked until :meth:`verify` is called.

    ``signing_info`` is the exact signed byte string as received, so verification never
    depends on re-encoding. ``signature`` and ``signing_info`` are hidden from ``repr``.
    """

    app_id: str
    issue_ts: int
    expire: int
    salt: int
    service_count: int
    """Number of services the token declares (may exceed ``len(services)`` if not strict)."""
    services: tuple[Service, ...]
    signature: bytes = field(repr=False)
    signing_info: bytes = field(repr=False)
    unknown_service_type: int | None = None
    """First unsupported service type met by a non-strict parse (parsing stopped there)."""

    @property
    def expires_at(self) -> int:
        """Unix seconds after which the token is expired (``issue_ts + expire``)."""
        return self.issue_ts + self.expire

    def is_expired(self, now: float | None = None) -> bool:
        """True if ``now`` (default: current time) is past :attr:`expires_at`.

        Only meaningful for a token whose signature verified: an unverified ``issue_ts`` can
        be anything, and such a token must be reported as invalid, not as expired.
        """
        current = time.time() if now is None else now
        return current > self.expires_at

    def verify(self, app_certificate: str) -> bool:
        """Recompute the HMAC over the received bytes and compare in constant time.

        Returns False when the token was not signed with ``app_certificate``.

        Raises:
            TokenCredentialError: if ``app_certificate`` is not 32 hex characters (a
                configuration error, reported rather than folded into False).
        """
        certificate = check_credential(app_certificate, "app_certificate")
        expected = _sign(certificate, self.issue_ts, self.salt, self.signing_info)
        return hmac.compare_digest(expected, self.signature)

    def find_services(self, service_type: int) -> list[Service]:
        """All services of ``service_type``, in token order."""
        return [s for s in self.services if s.service_type == service_type]

    def has_privilege(self, service_type: int, privilege: int, now: float | None = None) -> bool:
        """True if some service of ``service_type`` grants ``privilege`` and it is unexpired.

        A privilege value is seconds after ``issue_ts``; 0 means it never expires.
        """
        current = time.time() if now is None else now
        for service in self.find_services(service_type):
            lifetime = service.privileges.get(privilege)
            if lifetime is not None and (lifetime == 0 or current <= self.issue_ts + lifetime):
                return True
        return False

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description (without the signature)."""
        return {
            "app_id": self.app_id,
            "issue_ts": self.issue_ts,
            "expire": self.expire,
            "salt": self.salt,
            "service_count": self.service_count,
            "services": [service.to_dict() for service in self.services],
        }


def _parse(token: str, *, strict: bool) -> ParsedToken:
    if not isinstance(token, str):
        raise TokenFormatError("token must be a string")
    if len(token) < len(VERSION):
        raise TokenFormatError("token is too short")
    if not token.startswith(VERSION):
        raise TokenFormatError(f"unsupported token version (expected {VERSION!r})")
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenFormatError("token is too long")
    # A '+' becomes ' ' when a token travels unencoded in a URL query; base64 has no spaces,
    # so mapping them back is unambiguous (the HMAC still guards every byte).
    body = token[len(VERSION) :].replace(" ", "+")
    try:
        compressed = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TokenFormatError("token is not valid base64") from exc
    reader = Reader(_inflate(compressed))
    signature = reader.raw_string("signature")
    if len(signature) != SIGNATURE_LENGTH:
        raise TokenFormatError("token signature has the wrong length")
    signing_info = reader.rest()

    reader = Reader(signing_info)
    app_id = reader.text("app_id")
    issue_ts = reader.u32("issue_ts")
    expire = reader.u32("expire")
    salt = reader.u32("salt")
    count = reader.u16("number of services")
    services: list[Service] = []
    unknown: int | None = None
    for _ in range(count):
        service_type = reader.u16("service type")
        service_class = SERVICE_CLASSES.get(service_type)
        if service_class is None:
            # The layout of an unknown service is not length-prefixed, so nothing after it
            # can be decoded.
            if strict:
                raise TokenFormatError(f"unsupported service type {service_type}")
            unknown = service_type
            break
        privileges = reader.map_u32("privilege")
        service = service_class._unpack_fields(reader)
        service.privileges = privileges
        services.append(service)
    if strict and not reader.at_end:
        raise TokenFormatError("token has unexpected bytes after the last service")
    return ParsedToken(
        app_id=app_id,
        issue_ts=issue_ts,
        expire=expire,
        salt=salt,
        service_count=count,
        services=tuple(services),
        signature=signature,
        signing_info=signing_info,
        unknown_service_type=unknown,
    )


def check_token(
    token: str,
    *,
    app_id: str,
    app_certificate: str,
    now: float | None = None,
    strict: bool = True,
) -> ParsedToken:
    """Parse and fully check a token the way a server should; return it if usable.

    Checks, in this order: decoding, App ID (case-insensitive, hex), signature, then lifetime.
    Expiry is checked last on purpose: only an authentic token may be called "expired".

    Raises:
        TokenFormatError: malformed token.
        TokenAppIdError: token issued for another App ID.
        TokenSignatureError: not signed with ``app_certificate``.
        TokenExpiredError: authentic but ``now > issue_ts + expire``.
        TokenCredentialError: ``app_id`` or ``app_certificate`` argument is not 32 hex chars.
    """
    expected_app_id = check_credential(app_id, "app_id")
    check_credential(app_certificate, "app_certificate")
    parsed = _parse(token, strict=strict)
    if parsed.app_id.lower() != expected_app_id.lower():
        raise TokenAppIdError("token was issued for a different App ID")
    if not parsed.verify(app_certificate):
        raise TokenSignatureError("token signature does not match the app certificate")
    if parsed.is_expired(now):
        raise TokenExpiredError("token is expired")
    return parsed


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def build_rtc_token_with_privileges(
    app_id: str,
    app_certificate: str,
    channel_name: str,
    uid: int | str,
    token_expire: int,
    join_channel_expire: int,
    publish_audio_expire: int,
    publish_video_expire: int,
    publish_data_expire: int,
    *,
    issue_ts: int | None = None,
    salt: int | None = None,
) -> str:
    """RTC token with a separate lifetime (seconds from issue) for each of the four privileges.

    ``uid`` is an int (0 = any uid) or a string user account (see :func:`uid_to_account`).
    """
    service = ServiceRtc(channel_name, uid)
    service.add_privilege(RtcPrivilege.JOIN_CHANNEL, join_channel_expire)
    service.add_privilege(RtcPrivilege.PUBLISH_AUDIO_STREAM, publish_audio_expire)
    service.add_privilege(RtcPrivilege.PUBLISH_VIDEO_STREAM, publish_video_expire)
    service.add_privilege(RtcPrivilege.PUBLISH_DATA_STREAM, publish_data_expire)
    token = AccessToken2(app_id, app_certificate, issue_ts=issue_ts, expire=token_expire, salt=salt)
    return token.add_service(service).build()


def build_rtc_token(
    app_id: str,
    app_certificate: str,
    channel_name: str,
    uid: int | str,
    role: int,
    token_expire: int,
    privilege_expire: int | None = None,
    *,
    rtm_user_id: str | None = None,
    issue_ts: int | None = None,
    salt: int | None = None,
) -> str:
    """RTC token for ``uid`` (int; 0 = any uid) or a string user account.

    Args:
        role: :attr:`RtcRole.PUBLISHER` (join + publish audio/video/data) or
            :attr:`RtcRole.SUBSCRIBER` (join only).
        token_expire: token lifetime, seconds from issue.
        privilege_expire: lifetime of the granted privileges, seconds from issue; defaults to
            ``token_expire`` (upstream defaults to 0, "never", which the token lifetime caps).
        rtm_user_id: also add an RTM service with LOGIN = ``token_expire`` (upstream
            ``build_token_with_rtm``).
        issue_ts, salt: fixed values for reproducible tokens (default: now / random).

    Raises:
        TokenCredentialError: invalid ``app_id`` / ``app_certificate``.
        TokenError: unknown role or out-of-range values.
    """
    if isinstance(role, bool) or role not in (RtcRole.PUBLISHER, RtcRole.SUBSCRIBER):
        raise TokenError("role must be 1 (publisher) or 2 (subscriber)")
    lifetime = token_expire if privilege_expire is None else privilege_expire
    service = ServiceRtc(channel_name, uid).add_privilege(RtcPrivilege.JOIN_CHANNEL, lifetime)
    if role == RtcRole.PUBLISHER:
        service.add_privilege(RtcPrivilege.PUBLISH_AUDIO_STREAM, lifetime)
        service.add_privilege(RtcPrivilege.PUBLISH_VIDEO_STREAM, lifetime)
        service.add_privilege(RtcPrivilege.PUBLISH_DATA_STREAM, lifetime)
    token = AccessToken2(app_id, app_certificate, issue_ts=issue_ts, expire=token_expire, salt=salt)
    token.add_service(service)
    if rtm_user_id is not None:
        token.add_service(ServiceRtm(rtm_user_id).add_privilege(RtmPrivilege.LOGIN, token_expire))
    return token.build()


def build_rtm_token(
    app_id: str,
    app_certificate: str,
    user_id: str,
    expire: int,
    *,
    issue_ts: int | None = None,
    salt: int | None = None,
) -> str:
    """RTM login token for ``user_id``: token lifetime and LOGIN privilege both ``expire``."""
    token = AccessToken2(app_id, app_certificate, issue_ts=issue_ts, expire=expire, salt=salt)
    token.add_service(ServiceRtm(user_id).add_privilege(RtmPrivilege.LOGIN, expire))
    return token.build()
