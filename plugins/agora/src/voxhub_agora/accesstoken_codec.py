"""The byte layer of AccessToken2: errors, input checks, the little-endian packer, signing.

Section 3.1 of ``shared/specs/agora.md``: integers are little-endian, ``str`` is a
``u16`` byte length followed by UTF-8 bytes, a map is a ``u16`` count of
``u16 -> u32`` pairs. Used by :mod:`.accesstoken_services` and :mod:`.accesstoken`;
the public names are re-exported by :mod:`.accesstoken`.
"""

from __future__ import annotations

import hashlib
import hmac
import string
import struct
import zlib

__all__ = [
    "HEX_DIGITS",
    "I16_MAX",
    "I16_MIN",
    "MAX_CONTENT_BYTES",
    "MAX_TOKEN_CHARS",
    "SALT_MAX",
    "SALT_MIN",
    "SIGNATURE_LENGTH",
    "U16_MAX",
    "U32_MAX",
    "Reader",
    "TokenAppIdError",
    "TokenCredentialError",
    "TokenError",
    "TokenExpiredError",
    "TokenFormatError",
    "TokenSignatureError",
    "Writer",
    "check_credential",
    "check_int",
    "check_text",
    "inflate",
    "sign",
    "signing_key",
    "uid_to_account",
]

SIGNATURE_LENGTH = 32  # HMAC-SHA256 digest size
U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
I16_MIN, I16_MAX = -0x8000, 0x7FFF
# Upstream draws salts from 1..99999999 (C++ uses any uint32, which parsing accepts).
SALT_MIN, SALT_MAX = 1, 99_999_999
# Caps keep a hostile token from making us inflate or decode unbounded data; real tokens are
# a few hundred bytes, and a single str field can never exceed 64 KiB anyway.
MAX_TOKEN_CHARS = 1 << 20
MAX_CONTENT_BYTES = 1 << 20
HEX_DIGITS = frozenset(string.hexdigits)


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
# Validation helpers
# --------------------------------------------------------------------------------------------


def check_int(value: int, low: int, high: int, what: str) -> int:
    # bool is an int subclass; True as a uid or expiry is always a bug.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int")
    if not low <= value <= high:
        raise TokenError(f"{what} must be between {low} and {high}")
    return int(value)


def check_text(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise TokenError(f"{what} must be encodable as UTF-8") from exc
    if len(encoded) > U16_MAX:
        raise TokenError(f"{what} must be at most {U16_MAX} bytes of UTF-8")
    return value


def check_credential(value: str, field_name: str) -> str:
    # Never echo the value: for the certificate it is the secret itself.
    if not (isinstance(value, str) and len(value) == 32 and HEX_DIGITS.issuperset(value)):
        raise TokenCredentialError(field_name)
    return value


def uid_to_account(uid: int | str) -> str:
    """Return the account string an RTC uid is packed as.

    The integer 0 becomes ``""`` (wildcard: any uid may use the token), any other integer its
    decimal text, and a string is kept as is (so ``"0"`` stays ``"0"``).
    """
    if isinstance(uid, str):
        return check_text(uid, "uid")
    value = check_int(uid, 0, U32_MAX, "uid")
    return "" if value == 0 else str(value)


# --------------------------------------------------------------------------------------------
# Byte packing
# --------------------------------------------------------------------------------------------


class Writer:
    """Little-endian packer for the primitives of section 3.1."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u16(self, value: int, what: str) -> None:
        self._parts.append(struct.pack("<H", check_int(value, 0, U16_MAX, what)))

    def u32(self, value: int, what: str) -> None:
        self._parts.append(struct.pack("<I", check_int(value, 0, U32_MAX, what)))

    def i16(self, value: int, what: str) -> None:
        self._parts.append(struct.pack("<h", check_int(value, I16_MIN, I16_MAX, what)))

    def raw_string(self, value: bytes, what: str) -> None:
        self.u16(len(value), f"length of {what}")
        self._parts.append(value)

    def text(self, value: str, what: str) -> None:
        self.raw_string(check_text(value, what).encode("utf-8"), what)

    def map_u32(self, mapping: dict[int, int], what: str) -> None:
        self.u16(len(mapping), f"number of {what}")
        # Ascending key order is part of the signed layout (upstream sorts explicitly).
        for key in sorted(mapping):
            self.u16(key, f"{what} id")
            self.u32(mapping[key], f"{what} value")

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class Reader:
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
# Signing
# --------------------------------------------------------------------------------------------


def signing_key(app_certificate: str, issue_ts: int, salt: int) -> bytes:
    """The HMAC key of a token issued at ``issue_ts`` with ``salt`` (section 3.3)."""
    # The certificate is used as its 32 ASCII characters, not hex-decoded (upstream behaviour).
    key = hmac.new(struct.pack("<I", issue_ts), app_certificate.encode("ascii"), hashlib.sha256)
    return hmac.new(struct.pack("<I", salt), key.digest(), hashlib.sha256).digest()


def sign(app_certificate: str, issue_ts: int, salt: int, signing_info: bytes) -> bytes:
    """The signature of ``signing_info``: HMAC-SHA256 with :func:`signing_key`."""
    key = signing_key(app_certificate, issue_ts, salt)
    return hmac.new(key, signing_info, hashlib.sha256).digest()


def inflate(compressed: bytes) -> bytes:
    """A token's zlib payload, decompressed within :data:`MAX_CONTENT_BYTES`."""
    inflater = zlib.decompressobj()
    try:
        content = inflater.decompress(compressed, MAX_CONTENT_BYTES)
    except zlib.error as exc:
        raise TokenFormatError("token payload is not a valid zlib stream") from exc
    if inflater.unconsumed_tail:
        raise TokenFormatError("token payload is too large")
    if not inflater.eof:
        raise TokenFormatError("token payload is a truncated zlib stream")
    if inflater.unused_data:
        raise TokenFormatError("token payload has data after the zlib stream")
    return content
