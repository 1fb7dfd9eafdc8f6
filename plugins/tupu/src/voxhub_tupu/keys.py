"""Tupu RSA keys: loading the customer's private key and Tupu's public key, making new ones.

Private keys may be PKCS#1 (``BEGIN RSA PRIVATE KEY``, optionally with
OpenSSL ``Proc-Type`` encryption) or PKCS#8 (``BEGIN PRIVATE KEY`` /
``BEGIN ENCRYPTED PRIVATE KEY``) PEM; DER and header-less base64 DER (the
form the Java SDK accepts) also work. Public keys may be SubjectPublicKeyInfo
or PKCS#1 PEM/DER, or an X.509 certificate. Every key problem raises
:class:`KeyConfigurationError` naming where the key came from, never quoting
the key itself.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "PRIVATE_KEY_FILENAME",
    "PUBLIC_KEY_FILENAME",
    "KeyConfigurationError",
    "KeySource",
    "Passphrase",
    "PrivateKeyInput",
    "PublicKeyInput",
    "SigningError",
    "as_private_key",
    "as_public_key",
    "generate_key_pair",
    "load_private_key",
    "load_public_key",
    "write_key_pair",
]

PRIVATE_KEY_FILENAME: Final = "tupu_private.pem"
PUBLIC_KEY_FILENAME: Final = "tupu_public.pem"

# A PEM key is a few KiB; anything far larger is a misconfigured path
# (a log file, /dev/zero, ...) and must not be slurped into memory.
_MAX_KEY_FILE_BYTES: Final = 1 << 20

# Standard base64 alphabet plus ASCII whitespace (line-wrapped key text).
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/=\s]+")
_ASCII_WHITESPACE = re.compile(rb"\s+")

PrivateKeyInput = str | bytes | rsa.RSAPrivateKey
PublicKeyInput = str | bytes | rsa.RSAPublicKey
KeySource = str | bytes | os.PathLike[str]
Passphrase = str | bytes | None


class SigningError(Exception):
    """Base class of the errors of :mod:`voxhub_tupu.keys` and :mod:`voxhub_tupu.signing`."""


class KeyConfigurationError(SigningError):
    """A key is missing, unreadable, of the wrong kind, or the passphrase is wrong.

    ``key_name`` says where the key came from (a path or a caller-supplied
    label); the message never contains key material.
    """

    def __init__(self, message: str, *, key_name: str | None = None) -> None:
        super().__init__(message)
        self.key_name = key_name


# --------------------------------------------------------------------------
# Key loading
# --------------------------------------------------------------------------


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _looks_like_inline_key(text: str) -> bool:
    # Header-less base64 key text: long, and only base64 characters.
    return len(text) >= 100 and _BASE64_TEXT.fullmatch(text.encode("utf-8", "replace")) is not None


def _safe_path_label(text: str) -> str:
    # A non-existent "path" might really be key text the caller mangled;
    # never echo something that could be key material.
    if "\n" in text or len(text) > 255 or _looks_like_inline_key(text):
        return "<inline value that is neither key text nor an existing file>"
    return text


def _read_source(source: KeySource, kind: str, key_name: str | None) -> tuple[bytes, str]:
    """Resolve ``source`` to (key bytes, label used in error messages)."""
    if isinstance(source, bytes):
        return source, key_name or f"<inline {kind} key>"
    if isinstance(source, str) and ("-----BEGIN" in source or _looks_like_inline_key(source)):
        return source.encode("utf-8"), key_name or f"<inline {kind} key>"
    path = Path(source)
    label = key_name or (_safe_path_label(source) if isinstance(source, str) else os.fspath(path))
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise KeyConfigurationError(
            f"cannot read {kind} key file {label}: {reason}", key_name=label
        ) from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise KeyConfigurationError(
            f"{kind} key file {label} is too large to be a key", key_name=label
        )
    return data, label


def _der_from_text(data: bytes) -> bytes:
    """Decode header-less base64 key text; return ``data`` itself if it is DER."""
    if _BASE64_TEXT.fullmatch(data):
        try:
            return base64.b64decode(_ASCII_WHITESPACE.sub(b"", data), validate=True)
        except (binascii.Error, ValueError):
            return data
    return data


def _normalise_passphrase(passphrase: Passphrase) -> bytes | None:
    # An empty passphrase (e.g. an unset-but-present env var) means "none".
    if passphrase is None or passphrase in ("", b""):
        return None
    return _as_bytes(passphrase)


def _parse_private_key(data: bytes, passphrase: Passphrase, label: str) -> rsa.RSAPrivateKey:
    password = _normalise_passphrase(passphrase)
    is_pem = b"-----BEGIN" in data
    if is_pem and b"PRIVATE KEY-----" not in data:
        raise KeyConfigurationError(
            f"{label} holds no PEM private key block (a public key or certificate?)",
            key_name=label,
        )
    encrypted = is_pem and b"ENCRYPTED" in data
    try:
        if is_pem:
            key = serialization.load_pem_private_key(data, password)
        else:
            key = serialization.load_der_private_key(_der_from_text(data), password)
    except TypeError:
        # cryptography signals a passphrase mismatch in either direction this way.
        if password is None:
            message = f"private key {label} is encrypted but no passphrase was given"
        else:
            message = f"private key {label} is not encrypted but a passphrase was given"
        raise KeyConfigurationError(message, key_name=label) from None
    except UnsupportedAlgorithm:
        raise KeyConfigurationError(
            f"private key {label} uses an unsupported algorithm or encryption",
            key_name=label,
        ) from None
    except ValueError:
        if encrypted and password is not None:
            message = f"cannot decrypt private key {label}: wrong passphrase or corrupt key"
        else:
            message = (
                f"{label} is not a valid RSA private key "
                "(expected PKCS#1 or PKCS#8 PEM; to read a file use load_private_key(path))"
            )
        raise KeyConfigurationError(message, key_name=label) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyConfigurationError(
            f"private key {label} is not an RSA key; Tupu requires RSA", key_name=label
        )
    return key


def _parse_public_key(data: bytes, label: str) -> rsa.RSAPublicKey:
    if b"PRIVATE KEY-----" in data:
        # Refuse rather than derive: a private key here means the wrong file
        # was configured, and it should not be sitting in this setting.
        raise KeyConfigurationError(
            f"{label} contains a private key where a public key was expected",
            key_name=label,
        )
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key: object = x509.load_pem_x509_certificate(data).public_key()
        elif b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(_der_from_text(data))
    except (ValueError, UnsupportedAlgorithm):
        raise KeyConfigurationError(
            f"{label} is not a valid RSA public key "
            "(expected SubjectPublicKeyInfo or PKCS#1 PEM, or a certificate)",
            key_name=label,
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyConfigurationError(
            f"public key {label} is not an RSA key; Tupu requires RSA", key_name=label
        )
    return key


def load_private_key(
    path_or_pem: KeySource,
    passphrase: Passphrase = None,
    *,
    key_name: str | None = None,
) -> rsa.RSAPrivateKey:
    """Load an RSA private key from a file path or from key text.

    ``bytes`` are always key content; a ``str`` is key content when it holds a
    ``-----BEGIN`` block (or long header-less base64), otherwise it is a path,
    as is any ``os.PathLike``. ``passphrase`` decrypts encrypted keys; an empty
    one counts as none. ``key_name`` overrides the label used in errors
    (default: the path, or ``<inline private key>``).

    Raises:
        KeyConfigurationError: unreadable file, not an RSA private key, missing
            or wrong passphrase. The message names the key, never its content.
    """
    data, label = _read_source(path_or_pem, "private", key_name)
    return _parse_private_key(data, passphrase, label)


def load_public_key(
    path_or_pem: KeySource,
    *,
    key_name: str | None = None,
) -> rsa.RSAPublicKey:
    """Load an RSA public key (SPKI/PKCS#1 PEM or DER, or a certificate).

    Path/content rules and errors are the same as for :func:`load_private_key`.
    A private key is refused rather than silently reduced to its public half.
    """
    data, label = _read_source(path_or_pem, "public", key_name)
    return _parse_public_key(data, label)


def as_private_key(
    key: PrivateKeyInput, passphrase: Passphrase, key_name: str | None
) -> rsa.RSAPrivateKey:
    """``key`` itself when already loaded, else parsed from its PEM/DER text."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key
    if isinstance(key, str | bytes):
        label = key_name or "<inline private key>"
        return _parse_private_key(_as_bytes(key), passphrase, label)
    raise TypeError(f"private key must be PEM str/bytes or RSAPrivateKey, not {type(key).__name__}")


def as_public_key(key: PublicKeyInput, key_name: str | None) -> rsa.RSAPublicKey:
    """``key`` itself when already loaded, else parsed from its PEM/DER text."""
    if isinstance(key, rsa.RSAPublicKey):
        return key
    if isinstance(key, str | bytes):
        return _parse_public_key(_as_bytes(key), key_name or "<inline public key>")
    raise TypeError(f"public key must be PEM str/bytes or RSAPublicKey, not {type(key).__name__}")


# --------------------------------------------------------------------------
# Key generation
# --------------------------------------------------------------------------


def generate_key_pair(bits: int = 2048) -> tuple[bytes, bytes]:
    """Generate an RSA key pair for a Tupu account.

    Returns ``(private_pem, public_pem)``: the private key as unencrypted
    PKCS#8 PEM, the public key as SubjectPublicKeyInfo PEM (the form to upload
    in the Tupu console).
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 2048:
        # Tupu's own key is 1024-bit, but new customer keys should not be.
        raise ValueError("bits must be an int of at least 2048")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_key_pair(directory: str | os.PathLike[str], *, bits: int = 2048) -> tuple[Path, Path]:
    """Generate a key pair and write it as ``tupu_private.pem``/``tupu_public.pem``.

    The directory is created (mode 0700) if missing. The private key file is
    created with mode 0600 from the start, so it is never readable by others,
    not even briefly. Existing files are never overwritten.

    Returns ``(private_path, public_path)``.

    Raises:
        KeyConfigurationError: either file already exists (nothing is written).
        OSError: the directory or files cannot be created.
    """
    target = Path(directory)
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_path = target / PRIVATE_KEY_FILENAME
    public_path = target / PUBLIC_KEY_FILENAME
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise KeyConfigurationError(
                f"refusing to overwrite existing key file {path}", key_name=str(path)
            )
    private_pem, public_pem = generate_key_pair(bits)

    # O_EXCL makes creation atomic (and refuses symlinks), closing the race
    # between the existence check above and the write.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    created: list[Path] = []
    try:
        for path, data, mode in (
            (private_path, private_pem, 0o600),
            (public_path, public_pem, 0o644),
        ):
            try:
                fd = os.open(path, flags, mode)
            except FileExistsError:
                raise KeyConfigurationError(
                    f"refusing to overwrite existing key file {path}", key_name=str(path)
                ) from None
            created.append(path)
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
    except BaseException:
        # Leave no half-written pair behind; only remove files we created.
        for path in created:
            path.unlink(missing_ok=True)
        raise
    return private_path, public_path
