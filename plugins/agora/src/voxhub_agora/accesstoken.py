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
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import struct
import time
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, Self

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

_SIGNATURE_LENGTH = 32  # HMAC-SHA256 digest size
_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFF_FFFF
_I16_MIN, _I16_MAX = -0x8000, 0x7FFF
# Upstream draws salts from 1..99999999 (C++ uses any uint32, which parsing accepts).
_SALT_MIN, _SALT_MAX = 1, 99_999_999
# Caps keep a hostile token from making us inflate or decode unbounded data; real tokens are
# a few hundred bytes, and a single str field can never exceed 64 KiB anyway.
_MAX_TOKEN_CHARS = 1 << 20
_MAX_CONTENT_BYTES = 1 << 20
_HEX_DIGITS = frozenset(string.hexdigits)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class TokenError(ValueError):
    """A token (or the inputs for building one) is malformed, invalid or unusable.

    Messages never contain the app certificate, the token string or signature bytes.
    """


class TokenFormatError(TokenError):
    """The token string cannot be decoded: wrong version, bad base64/zlib, truncated layout."""


class TokenSignatureError(TokenError):
    """The token decodes, but its signature does not match the app certificate."""


class TokenAppIdError(TokenError):
    """The token was issued for a different App ID than the one expected."""


class TokenExpiredError(TokenError):
    """The token is authentic but its lifetime (``issue_ts + expire``) has passed."""


class TokenCredentialError(TokenError):
    """An App ID or app certificate is not exactly 32 hexadecimal characters.

    ``field`` names the offending input; the value itself is never included.
    """

    def __init__(self, field_name: str) -> None:
        self.field = field_name
        super().__init__(f"{field_name} must be exactly 32 hexadecimal characters")


# --------------------------------------------------------------------------------------------
# Enumerations
# --------------------------------------------------------------------------------------------


class ServiceType(IntEnum):
    """Service type ids. 3, 6, 8 are 2025+ additions; 9 and 10 are low-confidence (see spec)."""

    RTC = 1
    RTM = 2
    STREAMING = 3
    FPA = 4
    CHAT = 5
    FCDN = 6
    APAAS = 7
    RTM2 = 8
    CONVOAI = 9
    STT = 10


class RtcPrivilege(IntEnum):
    """Privileges of the RTC service."""

    JOIN_CHANNEL = 1
    PUBLISH_AUDIO_STREAM = 2
    PUBLISH_VIDEO_STREAM = 3
    PUBLISH_DATA_STREAM = 4


class RtmPrivilege(IntEnum):
    """Privileges of the RTM service."""

    LOGIN = 1


class StreamingPrivilege(IntEnum):
    """Privileges of the Streaming service."""

    PUBLISH_MIX_STREAM = 1
    PUBLISH_RAW_STREAM = 2


class FpaPrivilege(IntEnum):
    """Privileges of the FPA service."""

    LOGIN = 1


class ChatPrivilege(IntEnum):
    """Privileges of the Chat service (user token or app token)."""

    USER = 1
    APP = 2


class FcdnPrivilege(IntEnum):
    """Privileges of the FCDN service."""

    PUBLISH = 1
    PLAY = 2


class ApaasPrivilege(IntEnum):
    """Privileges of the APaaS (formerly "education") service."""

    ROOM_USER = 1
    USER = 2
    APP = 3


class Rtm2Privilege(IntEnum):
    """Privileges of the RTM2 service."""

    LOGIN = 1


class _NoPrivilege(IntEnum):
    """Services whose builders add no privileges (ConvoAI, STT)."""


class Rtm2ResourceType(IntEnum):
    """Resource types of RTM2 permissions."""

    MESSAGE_CHANNEL = 0
    STREAM_CHANNEL = 1
    GROUP_CHANNEL = 2
    SERVER_GROUP = 3
    USER = 4


class Rtm2Permission(IntEnum):
    """Permission types of RTM2 permissions."""

    READ = 0
    WRITE = 1


class RtcRole(IntEnum):
    """Role for :func:`build_rtc_token`: publisher gets join + publish, subscriber join only."""

    PUBLISHER = 1
    SUBSCRIBER = 2


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _check_int(value: int, low: int, high: int, what: str) -> int:
    # bool is an int subclass; True as a uid or expiry is always a bug.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int")
    if not low <= value <= high:
        raise TokenError(f"{what} must be between {low} and {high}")
    return int(value)


def _check_text(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise TokenError(f"{what} must be encodable as UTF-8") from exc
    if len(encoded) > _U16_MAX:
        raise TokenError(f"{what} must be at most {_U16_MAX} bytes of UTF-8")
    return value


def _check_credential(value: str, field_name: str) -> str:
    # Never echo the value: for the certificate it is the secret itself.
    if not (isinstance(value, str) and len(value) == 32 and _HEX_DIGITS.issuperset(value)):
        raise TokenCredentialError(field_name)
    return value


def uid_to_account(uid: int | str) -> str:
    """Return the account string an RTC uid is packed as.

    The integer 0 becomes ``""`` (wildcard: any uid may use the token), any other integer its
    decimal text, and a string is kept as is (so ``"0"`` stays ``"0"``).
    """
    if isinstance(uid, str):
        return _check_text(uid, "uid")
    value = _check_int(uid, 0, _U32_MAX, "uid")
    return "" if value == 0 else str(value)


# --------------------------------------------------------------------------------------------
# Byte packing
# --------------------------------------------------------------------------------------------


class _Writer:
    """Little-endian packer for the primitives of section 3.1."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u16(self, value: int, what: str) -> None:
        self._parts.append(struct.pack("<H", _check_int(value, 0, _U16_MAX, what)))

    def u32(self, value: int, what: str) -> None:
        self._parts.append(struct.pack("<I", _check_int(value, 0, _U32_MAX, what)))

    def i16(self, value: int, what: str) -> None:
        self._parts.append(struct.pack("<h", _check_int(value, _I16_MIN, _I16_MAX, what)))

    def raw_string(self, value: bytes, what: str) -> None:
        self.u16(len(value), f"length of {what}")
        self._parts.append(value)

    def text(self, value: str, what: str) -> None:
        self.raw_string(_check_text(value, what).encode("utf-8"), what)

    def map_u32(self, mapping: dict[int, int], what: str) -> None:
        self.u16(len(mapping), f"number of {what}")
        # Ascending key order is part of the signed layout (upstream sorts explicitly).
        for key in sorted(mapping):
            self.u16(key, f"{what} id")
            self.u32(mapping[key], f"{what} value")

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class _Reader:
    """Bounds-checked unpacker; every short read is a :class:`TokenFormatError`."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, size: int, what: str) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise TokenFormatError(f"token is truncated (while reading {what})")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u16(self, what: str) -> int:
        value: int = struct.unpack("<H", self._take(2, what))[0]
        return value

    def u32(self, what: str) -> int:
        value: int = struct.unpack("<I", self._take(4, what))[0]
        return value

    def i16(self, what: str) -> int:
        value: int = struct.unpack("<h", self._take(2, what))[0]
        return value

    def raw_string(self, what: str) -> bytes:
        return self._take(self.u16(f"length of {what}"), what)

    def text(self, what: str) -> str:
        try:
            return self.raw_string(what).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TokenFormatError(f"{what} is not valid UTF-8") from exc

    def map_u32(self, what: str) -> dict[int, int]:
        result: dict[int, int] = {}
        for _ in range(self.u16(f"number of {what}")):
            key = self.u16(f"{what} id")
            if key in result:
                # A builder never emits this; accepting it would silently drop an entry.
                raise TokenFormatError(f"duplicate {what} id {key}")
            result[key] = self.u32(f"{what} value")
        return result

    def rest(self) -> bytes:
        chunk = self._data[self._pos :]
        self._pos = len(self._data)
        return chunk

    @property
    def at_end(self) -> bool:
        return self._pos == len(self._data)


# --------------------------------------------------------------------------------------------
# Services
# --------------------------------------------------------------------------------------------


class Service:
    """Base class of all services: a type id, a privilege map and type-specific fields.

    Privilege values are lifetimes in seconds relative to the token's ``issue_ts``
    (0 means "never expires" per Agora's token documentation).
    """

    SERVICE_TYPE: ClassVar[ServiceType]
    Privilege: ClassVar[type[IntEnum]]

    def __init__(self) -> None:
        self.privileges: dict[int, int] = {}

    @property
    def service_type(self) -> ServiceType:
        """The service type id."""
        return self.SERVICE_TYPE

    def add_privilege(self, privilege: int, expire: int) -> Self:
        """Grant ``privilege`` (an enum member or plain id) for ``expire`` seconds; chainable.

        Adding the same privilege again replaces its lifetime.
        """
        key = _check_int(privilege, 0, _U16_MAX, "privilege")
        self.privileges[key] = _check_int(expire, 0, _U32_MAX, "privilege expire")
        return self

    def fields(self) -> dict[str, object]:
        """The type-specific fields as JSON-ready values (empty for field-less services)."""
        return {}

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description: ``type``, ``name``, ``privileges`` (str keys) and fields."""
        return {
            "type": int(self.SERVICE_TYPE),
            "name": self.SERVICE_TYPE.name,
            "privileges": {str(key): self.privileges[key] for key in sorted(self.privileges)},
            **self.fields(),
        }

    def _pack(self, writer: _Writer) -> None:
        writer.u16(self.SERVICE_TYPE, "service type")
        writer.map_u32(self.privileges, "privilege")
        self._pack_fields(writer)

    def _pack_fields(self, writer: _Writer) -> None:
        """Write the type-specific fields (none by default)."""

    @classmethod
    def _unpack_fields(cls, reader: _Reader) -> Self:
        """Read the type-specific fields and return a service without privileges."""
        return cls()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Service)
        return self.privileges == other.privileges and self.fields() == other.fields()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        args = [f"{name}={value!r}" for name, value in self.fields().items()]
        args.append(f"privileges={dict(sorted(self.privileges.items()))!r}")
        return f"{type(self).__name__}({', '.join(args)})"


class ServiceRtc(Service):
    """RTC service: ``str(channel_name) str(uid)``.

    ``uid`` may be an int (0 packs as ``""``, the any-uid wildcard) or a string user account;
    it is stored in its packed string form.
    """

    SERVICE_TYPE = ServiceType.RTC
    Privilege = RtcPrivilege

    def __init__(self, channel_name: str = "", uid: int | str = 0) -> None:
        super().__init__()
        self.channel_name = _check_text(channel_name, "channel_name")
        self.uid: str = uid_to_account(uid)

    def fields(self) -> dict[str, object]:
        """Channel name and packed uid."""
        return {"channel_name": self.channel_name, "uid": self.uid}

    def _pack_fields(self, writer: _Writer) -> None:
        writer.text(self.channel_name, "channel_name")
        writer.text(self.uid, "uid")

    @classmethod
    def _unpack_fields(cls, reader: _Reader) -> Self:
        channel_name = reader.text("channel_name")
        return cls(channel_name, reader.text("uid"))


class ServiceRtm(Service):
    """RTM service: ``str(user_id)``."""

    SERVICE_TYPE = ServiceType.RTM
    Privilege = RtmPrivilege

    def __init__(self, user_id: str = "") -> None:
        super().__init__()
        self.user_id = _check_text(user_id, "user_id")

    def fields(self) -> dict[str, object]:
        """The RTM user id."""
        return {"user_id": self.user_id}

    def _pack_fields(self, writer: _Writer) -> None:
        writer.text(self.user_id, "user_id")

    @classmethod
    def _unpack_fields(cls, reader: _Reader) -> Self:
        return cls(reader.text("user_id"))


class _ChannelAccountService(Service):
    """Shared layout of Streaming and FCDN: ``str(channel_name) str(account)``."""

    def __init__(self, channel_name: str = "", account: int | str = 0) -> None:
        super().__init__()
        self.channel_name = _check_text(channel_name, "channel_name")
        # Same uid -> string rule as RTC (upstream shares the helper).
        self.account: str = uid_to_account(account)

    def fields(self) -> dict[str, object]:
        """Channel name and packed account."""
        return {"channel_name": self.channel_name, "account": self.account}

    def _pack_fields(self, writer: _Writer) -> None:
        writer.text(self.channel_name, "channel_name")
        writer.text(self.account, "account")

    @classmethod
    def _unpack_fields(cls, reader: _Reader) -> Self:
        channel_name = reader.text("channel_name")
        return cls(channel_name, reader.text("account"))


class ServiceStreaming(_ChannelAccountService):
    """Streaming service (type 3): ``str(channel_name) str(account)``."""

    SERVICE_TYPE = ServiceType.STREAMING
    Privilege = StreamingPrivilege


class ServiceFpa(Service):
    """FPA service: no fields."""

    SERVICE_TYPE = ServiceType.FPA
    Privilege = FpaPrivilege


class ServiceChat(Service):
    """Chat service: ``str(user_id)`` (empty for app tokens)."""

    SERVICE_TYPE = ServiceType.CHAT
    Privilege = ChatPrivilege

    def __init__(self, user_id: str = "") -> None:
        super().__init__()
        self.user_id = _check_text(user_id, "user_id")

    def fields(self) -> dict[str, object]:
        """The chat user id."""
        return {"user_id": self.user_id}

    def _pack_fields(self, writer: _Writer) -> None:
        writer.text(self.user_id, "user_id")

    @classmethod
    def _unpack_fields(cls, reader: _Reader) -> Self:
        return cls(reader.text("user_id"))


class ServiceFcdn(_ChannelAccountService):
    """FCDN service (type 6): ``str(channel_name) str(account)``."""

    SERVICE_TYPE = ServiceType.FCDN
    Privilege = FcdnPrivilege


class ServiceApaas(Service):
    """APaaS service: ``str(room_uuid) str(user_uuid) i16(role)``."""

    SERVICE_TYPE = ServiceType.APAAS
    Privilege = ApaasPrivilege

    def __init__(self, room_uuid: str = "", user_uuid: str = "", role: int = -1) -> None:
        super().__init__()
        self.room_uuid = _check_text(room_uuid, "room_uuid")
        self.user_uuid = _check_text(user_uuid, "user_uuid")
        self.role = _check_int(role, _I16_MIN, _I16_MAX, "role")

    def fields(self) -> dict[str, object]:
        """Room uuid, user uuid and role."""
        return {"room_uuid": self.room_uuid, "user_uuid": self.user_uuid, "role": self.role}

    def _pack_fields(self, writer: _Writer) -> None:
        writer.text(self.room_uuid, "room_uuid")
        writer.text(self.user_uuid, "user_uuid")
        writer.i16(self.role, "role")

    @classmethod
    def _unpack_fields(cls, reader: _Reader) -> Self:
        room_uuid = reader.text("room_uuid")
        user_uuid = reader.text("user_uuid")
        return cls(room_uuid, user_uuid, reader.i16("role"))


class ServiceRtm2(Service):
    """RTM2 service (type 8): ``str(user_id)`` then resource permissions.

    Permissions: ``u16(n_types)``; per resource type ascending ``u16(type) u16(n_perms)``; per
    permission ascending ``u16(perm) u16(n) str(resource)*n`` (resources in insertion order).
    """

    SERVICE_TYPE = ServiceType.RTM2
    Privilege = Rtm2Privilege

    def __init__(self, user_id: str = "") -> None:
        super().__init__()
        self.user_id = _check_text(user_id, "user_id")
        self.permissions: dict[int, dict[int, list[str]]] = {}

    def add_permission(self, resource_type: int, permission: int, resource: str) -> Self:
        """Allow ``permission`` (read/write) on ``resource`` of ``resource_type``; chainable."""
        kind = _check_int(resource_type, 0, _U16_MAX, "resource type")
        perm = _check_int(permission, 0, _U16_MAX, "permission")
        name = _check_text(resource, "resource")
        self.permissions.setdefault(kind, {}).setdefault(perm, []).append(name)
        return self

    def fields(self) -> dict[str, object]:
        """User id and permissions (str keys, ascending)."""
        return {
            "user_id": self.user_id,
            "permissions": {
                str(kind): {
                    str(perm): list(self.permissions[kind][perm])
                    for perm in sorted(self.permissions[kind])
                }
                for kind in sorted(self.permissions)
            },
        }

    def _pack_fields(self, writer: _Writer) -> None:
        writer.text(self.user_id, "user_id")
        writer.u16(len(self.permissions), "number of resource types")
        for kind in sorted(self.permissions):
            perms = self.permissions[kind]
            writer.u16(kind, "resource type")
            writer.u16(len(perms), "number of permissions")
            for perm in sorted(perms):
                writer.u16(perm, "permission")
                writer.u16(len(perms[perm]), "number of resources")
                for resource in perms[perm]:
                    writer.text(resource, "resource")

    @classmethod
    def _unpack_fields(cls, reader: _Reader) -> Self:
        service = cls(reader.text("user_id"))
        for _ in range(reader.u16("number of resource types")):
            kind = reader.u16("resource type")
            if kind in service.permissions:
                raise TokenFormatError(f"duplicate RTM2 resource type {kind}")
            perms: dict[int, list[str]] = {}
            for _ in range(reader.u16("number of permissions")):
                perm = reader.u16("permission")
                if perm in perms:
                    raise TokenFormatError(f"duplicate RTM2 permission {perm}")
                count = reader.u16("number of resources")
                perms[perm] = [reader.text("resource") for _ in range(count)]
            service.permissions[kind] = perms
        return service


class ServiceConvoAi(Service):
    """ConvoAI service (type 9): no fields. Low confidence: seen only in 2026 code."""

    SERVICE_TYPE = ServiceType.CONVOAI
    Privilege = _NoPrivilege


class ServiceStt(Service):
    """STT service (type 10): no fields. Low confidence: seen only in 2026 code."""

    SERVICE_TYPE = ServiceType.STT
    Privilege = _NoPrivilege


_SERVICE_CLASSES: dict[int, type[Service]] = {
    cls.SERVICE_TYPE: cls
    for cls in (
        ServiceRtc,
        ServiceRtm,
        ServiceStreaming,
        ServiceFpa,
        ServiceChat,
        ServiceFcdn,
        ServiceApaas,
        ServiceRtm2,
        ServiceConvoAi,
        ServiceStt,
    )
}


# --------------------------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------------------------


def _signing_key(app_certificate: str, issue_ts: int, salt: int) -> bytes:
    # The certificate is used as its 32 ASCII characters, not hex-decoded (upstream behaviour).
    key = hmac.new(struct.pack("<I", issue_ts), app_certificate.encode("ascii"), hashlib.sha256)
    return hmac.new(struct.pack("<I", salt), key.digest(), hashlib.sha256).digest()


def _sign(app_certificate: str, issue_ts: int, salt: int, signing_info: bytes) -> bytes:
    key = _signing_key(app_certificate, issue_ts, salt)
    return hmac.new(key, signing_info, hashlib.sha256).digest()


def _inflate(compressed: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        content = inflater.decompress(compressed, _MAX_CONTENT_BYTES)
    except zlib.error as exc:
        raise TokenFormatError("token payload is not a valid zlib stream") from exc
    if inflater.unconsumed_tail:
        raise TokenFormatError("token payload is too large")
    if not inflater.eof:
        raise TokenFormatError("token payload is a truncated zlib stream")
    if inflater.unused_data:
        raise TokenFormatError("token payload has data after the zlib stream")
    return content


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
        self.app_id = _check_credential(app_id, "app_id")
        self._app_certificate = _check_credential(app_certificate, "app_certificate")
        self.issue_ts = (
            int(time.time()) if issue_ts is None else _check_int(issue_ts, 0, _U32_MAX, "issue_ts")
        )
        self.expire = _check_int(expire, 0, _U32_MAX, "expire")
        self.salt = (
            secrets.SystemRandom().randint(_SALT_MIN, _SALT_MAX)
            if salt is None
            else _check_int(salt, 0, _U32_MAX, "salt")
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
        writer = _Writer()
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
        writer = _Writer()
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
        certificate = _check_credential(app_certificate, "app_certificate")
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
    if len(token) > _MAX_TOKEN_CHARS:
        raise TokenFormatError("token is too long")
    # A '+' becomes ' ' when a token travels unencoded in a URL query; base64 has no spaces,
    # so mapping them back is unambiguous (the HMAC still guards every byte).
    body = token[len(VERSION) :].replace(" ", "+")
    try:
        compressed = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TokenFormatError("token is not valid base64") from exc
    reader = _Reader(_inflate(compressed))
    signature = reader.raw_string("signature")
    if len(signature) != _SIGNATURE_LENGTH:
        raise TokenFormatError("token signature has the wrong length")
    signing_info = reader.rest()

    reader = _Reader(signing_info)
    app_id = reader.text("app_id")
    issue_ts = reader.u32("issue_ts")
    expire = reader.u32("expire")
    salt = reader.u32("salt")
    count = reader.u16("number of services")
    services: list[Service] = []
    unknown: int | None = None
    for _ in range(count):
        service_type = reader.u16("service type")
        service_class = _SERVICE_CLASSES.get(service_type)
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
    expected_app_id = _check_credential(app_id, "app_id")
    _check_credential(app_certificate, "app_certificate")
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
