"""AccessToken2 services: service and privilege ids, and one class per service type.

A service is ``u16(type) map_u32(privileges)`` followed by its type-specific fields
(section 3.2 of ``shared/specs/agora.md``). The public names are re-exported by
:mod:`.accesstoken`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar, Self

from .accesstoken_codec import (
    I16_MAX,
    I16_MIN,
    U16_MAX,
    U32_MAX,
    Reader,
    TokenFormatError,
    Writer,
    check_int,
    check_text,
    uid_to_account,
)

__all__ = [
    "SERVICE_CLASSES",
    "ApaasPrivilege",
    "ChatPrivilege",
    "FcdnPrivilege",
    "FpaPrivilege",
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
]


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
        key = check_int(privilege, 0, U16_MAX, "privilege")
        self.privileges[key] = check_int(expire, 0, U32_MAX, "privilege expire")
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

    def _pack(self, writer: Writer) -> None:
        writer.u16(self.SERVICE_TYPE, "service type")
        writer.map_u32(self.privileges, "privilege")
        self._pack_fields(writer)

    def _pack_fields(self, writer: Writer) -> None:
        """Write the type-specific fields (none by default)."""

    @classmethod
    def _unpack_fields(cls, reader: Reader) -> Self:
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
        self.channel_name = check_text(channel_name, "channel_name")
        self.uid: str = uid_to_account(uid)

    def fields(self) -> dict[str, object]:
        """Channel name and packed uid."""
        return {"channel_name": self.channel_name, "uid": self.uid}

    def _pack_fields(self, writer: Writer) -> None:
        writer.text(self.channel_name, "channel_name")
        writer.text(self.uid, "uid")

    @classmethod
    def _unpack_fields(cls, reader: Reader) -> Self:
        channel_name = reader.text("channel_name")
        return cls(channel_name, reader.text("uid"))


class ServiceRtm(Service):
    """RTM service: ``str(user_id)``."""

    SERVICE_TYPE = ServiceType.RTM
    Privilege = RtmPrivilege

    def __init__(self, user_id: str = "") -> None:
        super().__init__()
        self.user_id = check_text(user_id, "user_id")

    def fields(self) -> dict[str, object]:
        """The RTM user id."""
        return {"user_id": self.user_id}

    def _pack_fields(self, writer: Writer) -> None:
        writer.text(self.user_id, "user_id")

    @classmethod
    def _unpack_fields(cls, reader: Reader) -> Self:
        return cls(reader.text("user_id"))


class _ChannelAccountService(Service):
    """Shared layout of Streaming and FCDN: ``str(channel_name) str(account)``."""

    def __init__(self, channel_name: str = "", account: int | str = 0) -> None:
        super().__init__()
        self.channel_name = check_text(channel_name, "channel_name")
        # Same uid -> string rule as RTC (upstream shares the helper).
        self.account: str = uid_to_account(account)

    def fields(self) -> dict[str, object]:
        """Channel name and packed account."""
        return {"channel_name": self.channel_name, "account": self.account}

    def _pack_fields(self, writer: Writer) -> None:
        writer.text(self.channel_name, "channel_name")
        writer.text(self.account, "account")

    @classmethod
    def _unpack_fields(cls, reader: Reader) -> Self:
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
        self.user_id = check_text(user_id, "user_id")

    def fields(self) -> dict[str, object]:
        """The chat user id."""
        return {"user_id": self.user_id}

    def _pack_fields(self, writer: Writer) -> None:
        writer.text(self.user_id, "user_id")

    @classmethod
    def _unpack_fields(cls, reader: Reader) -> Self:
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
        self.room_uuid = check_text(room_uuid, "room_uuid")
        self.user_uuid = check_text(user_uuid, "user_uuid")
        self.role = check_int(role, I16_MIN, I16_MAX, "role")

    def fields(self) -> dict[str, object]:
        """Room uuid, user uuid and role."""
        return {"room_uuid": self.room_uuid, "user_uuid": self.user_uuid, "role": self.role}

    def _pack_fields(self, writer: Writer) -> None:
        writer.text(self.room_uuid, "room_uuid")
        writer.text(self.user_uuid, "user_uuid")
        writer.i16(self.role, "role")

    @classmethod
    def _unpack_fields(cls, reader: Reader) -> Self:
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
        self.user_id = check_text(user_id, "user_id")
        self.permissions: dict[int, dict[int, list[str]]] = {}

    def add_permission(self, resource_type: int, permission: int, resource: str) -> Self:
        """Allow ``permission`` (read/write) on ``resource`` of ``resource_type``; chainable."""
        kind = check_int(resource_type, 0, U16_MAX, "resource type")
        perm = check_int(permission, 0, U16_MAX, "permission")
        name = check_text(resource, "resource")
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

    def _pack_fields(self, writer: Writer) -> None:
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
    def _unpack_fields(cls, reader: Reader) -> Self:
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


SERVICE_CLASSES: dict[int, type[Service]] = {
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
