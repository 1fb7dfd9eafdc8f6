"""The emulators' own check of Agora REST auth and of RTC tokens (AccessToken2 "007").

Written from the vendor documents (spec 1.1 and 3.5, seed ``000``), independently of
the client's :mod:`.auth` / :mod:`.accesstoken` code: a client that builds a token
wrongly must be refused here, not approved by the same mistake. Nothing here is
imported by the client.

Answers (seed ``000``): a header that is neither ``Basic <b64>`` nor ``agora token=...``,
or a wrong Basic pair -> ``Invalid authentication credentials``; a token that does not
decode, names another App ID or is not signed with the certificate -> ``Invalid
token``; an authentic token past ``issue_ts + expire`` -> ``Token is expired``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import zlib

import attrs

__all__ = ["SandboxAuth", "TokenService", "decode_token"]

BAD_CREDENTIALS = "Invalid authentication credentials"
INVALID_TOKEN = "Invalid token"  # noqa: S105 - a message, not a secret
TOKEN_EXPIRED = "Token is expired"  # noqa: S105 - a message, not a secret

_RTC = 1
_JOIN_CHANNEL = 1


class _Malformed(ValueError):
    """The token's bytes do not follow the documented layout."""


@attrs.frozen
class TokenService:
    """One service of a decoded token: type, privileges and (RTC) channel / uid text."""

    type: int
    privileges: dict[int, int]
    channel: str = ""
    uid: str = ""


@attrs.frozen
class DecodedToken:
    """What a token carries (spec 3.3), plus the bytes its signature covers."""

    app_id: str
    issue_ts: int
    expire: int
    salt: int
    services: tuple[TokenService, ...]
    signature: bytes = attrs.field(repr=False)
    signed: bytes = attrs.field(repr=False)

    def signed_by(self, certificate: str) -> bool:
        """Spec 3.4 step 3 and 5: the signing key comes from issue_ts, salt and certificate."""
        k1 = hmac.new(struct.pack("<I", self.issue_ts), certificate.encode(), hashlib.sha256)
        key = hmac.new(struct.pack("<I", self.salt), k1.digest(), hashlib.sha256).digest()
        expected = hmac.new(key, self.signed, hashlib.sha256).digest()
        return hmac.compare_digest(expected, self.signature)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise _Malformed("truncated")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def u16(self) -> int:
        return int(struct.unpack("<H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def text(self) -> bytes:
        return self.take(self.u16())

    def rest(self) -> bytes:
        return self.data[self.pos:]


# Extra string fields after the privilege map, per service type (spec 3.2); 7 also
# carries an i16 role, 8 a permission table.
_STRINGS = {1: 2, 2: 1, 3: 2, 4: 0, 5: 1, 6: 2, 7: 2, 8: 1, 9: 0, 10: 0}


def _service(reader: _Reader, kind: int) -> TokenService:
    privileges = {reader.u16(): reader.u32() for _ in range(reader.u16())}
    fields = [reader.text().decode("utf-8", "replace") for _ in range(_STRINGS[kind])]
    if kind == 7:
        reader.take(2)
    if kind == 8:
        for _ in range(reader.u16()):
            reader.u16()
            for _ in range(reader.u16()):
                reader.u16()
                for _ in range(reader.u16()):
                    reader.text()
    if kind == _RTC:
        return TokenService(kind, privileges, channel=fields[0], uid=fields[1])
    return TokenService(kind, privileges)


def decode_token(token: str) -> DecodedToken:
    """Decode a ``007`` token (spec 3.5 steps 1-4); raise ``ValueError`` when malformed."""
    if not token.startswith("007"):
        raise _Malformed("no 007 prefix")
    # A '+' that travelled unencoded in a URL arrives as a space (spec 3.5 step 2).
    try:
        raw = zlib.decompress(base64.b64decode(token[3:].replace(" ", "+"), validate=True))
    except (binascii.Error, ValueError, zlib.error) as exc:
        raise _Malformed(str(exc)) from None
    reader = _Reader(raw)
    signature = reader.text()
    signed = reader.rest()
    info = _Reader(signed)
    app_id = info.text().decode("ascii", "replace")
    issue_ts, expire, salt = info.u32(), info.u32(), info.u32()
    services = []
    for _ in range(info.u16()):
        kind = info.u16()
        if kind not in _STRINGS:
            break  # its length is not encoded: stop, keeping what was read (spec 3.5 step 4)
        services.append(_service(info, kind))
    return DecodedToken(app_id, issue_ts, expire, salt, tuple(services), signature, signed)


@attrs.frozen
class SandboxAuth:
    """The emulated gateway's credentials and checks."""

    app_id: str
    app_certificate: str = attrs.field(repr=False)
    customer_id: str = attrs.field(repr=False)
    customer_secret: str = attrs.field(repr=False)

    def _token(self, token: str) -> DecodedToken | None:
        try:
            decoded = decode_token(token)
        except ValueError:
            return None
        if decoded.app_id.lower() != self.app_id.lower():
            return None
        return decoded if decoded.signed_by(self.app_certificate) else None

    def refusal(self, header: str | None, *, now: float) -> str | None:
        """``None`` when ``header`` is accepted, else the 401 message Agora answers."""
        scheme, _, rest = (header or "").strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                return BAD_CREDENTIALS
            user, sep, password = pair.partition(":")
            ok = sep == ":" and hmac.compare_digest(user, self.customer_id) and (
                hmac.compare_digest(password, self.customer_secret))
            return None if ok else BAD_CREDENTIALS
        key, sep, value = rest.strip().partition("=")
        if scheme.lower() != "agora" or key.strip().lower() != "token" or not sep:
            return BAD_CREDENTIALS
        # The seed quotes the token; other Agora products document it unquoted.
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        decoded = self._token(value)
        if decoded is None:
            return INVALID_TOKEN
        if now > decoded.issue_ts + decoded.expire:
            return TOKEN_EXPIRED
        return None

    def rtc_join_ok(self, token: str, channel: str, uid: str, *, now: float) -> bool:
        """Whether ``token`` lets ``uid`` join ``channel`` (spec 3.5 step 6)."""
        decoded = self._token(token)
        if decoded is None or now > decoded.issue_ts + decoded.expire:
            return False
        account = "" if uid == "0" else uid
        for service in decoded.services:
            if service.type != _RTC or service.channel != channel:
                continue
            if service.uid not in ("", account):
                continue
            lifetime = service.privileges.get(_JOIN_CHANNEL)
            if lifetime is not None and (lifetime == 0 or now <= decoded.issue_ts + lifetime):
                return True
        return False
