"""Tupu v3 request signing and response/callback verification.

Tupu authenticates both directions with RSA:

* **Requests** carry ``timestamp``, ``nonce`` and ``signature``, where
  ``signature`` is standard base64 (with padding) of an RSASSA-PKCS1-v1_5 /
  SHA-256 signature, made with the *customer's* private key, over the UTF-8
  bytes of ``"{secretId},{timestamp},{nonce}"``.
* **Answers and callbacks** arrive as the envelope
  ``{"json": "<payload as a JSON string>", "signature": "<base64>"}``, signed
  the same way with *Tupu's* key over the exact ``json`` string.

How ``timestamp`` and ``nonce`` are rendered into the signed string
------------------------------------------------------------------
The server rebuilds the signed string from the values it receives, and the
official SDKs send them variously as JSON numbers or JSON strings. The only
renderings every plausible server agrees on are used here:

* ``int`` (not ``bool``): decimal digits, ``str(value)``, e.g. ``1541499770``
  is signed as ``"1541499770"``. Send it as a JSON number (or the same digits
  as a string).
* ``str``: verbatim, character for character. Send exactly that string (as a
  JSON string) in the body.
* ``float``, ``bool`` and anything else are rejected with ``TypeError``:
  float-to-text differs between languages (Python ``1.0``/``1e-07`` versus
  JavaScript ``1``/``1e-7``), so a float could be signed one way and rebuilt
  another. Pass a float nonce as the text you send, e.g. ``"0.8469537531104208"``.

:func:`make_auth_fields` returns fresh values together with their signature,
ready to merge into a request body unchanged.

Keys
----
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
import json
import os
import re
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "PRIVATE_KEY_FILENAME",
    "PUBLIC_KEY_FILENAME",
    "KeyConfigurationError",
    "SigningError",
    "VerificationError",
    "generate_key_pair",
    "load_private_key",
    "load_public_key",
    "make_auth_fields",
    "sign_payload",
    "sign_request",
    "signing_string",
    "verify_request",
    "verify_response",
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
    """Base class for every error raised by this module."""


class KeyConfigurationError(SigningError):
    """A key is missing, unreadable, of the wrong kind, or the passphrase is wrong.

    ``key_name`` says where the key came from (a path or a caller-supplied
    label); the message never contains key material.
    """

    def __init__(self, message: str, *, key_name: str | None = None) -> None:
        super().__init__(message)
        self.key_name = key_name


class VerificationError(SigningError):
    """A signed answer or callback (or a request signature) is not authentic.

    Raised for unsigned, forged, tampered and malformed envelopes alike; the
    message never contains the signature or the body.
    """


# --------------------------------------------------------------------------
# Rendering of the signed string
# --------------------------------------------------------------------------


def _render(field: str, value: object) -> str:
    # bool is an int subclass but renders "True" in Python and "true" in JS.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(
            f"{field} must be int or str, not {type(value).__name__}; "
            "pass other numbers as the exact text sent in the body"
        )
    text = str(value)
    if not text:
        raise ValueError(f"{field} must not be empty")
    return text


def signing_string(secret_id: str, timestamp: int | str, nonce: int | str) -> str:
    """Return ``"{secretId},{timestamp},{nonce}"`` as Tupu signs it.

    ``timestamp`` and ``nonce`` are rendered as described in the module
    docstring (``int`` as decimal, ``str`` verbatim; other types are a
    ``TypeError``).
    """
    if not isinstance(secret_id, str):
        raise TypeError(f"secret_id must be str, not {type(secret_id).__name__}")
    if not secret_id:
        raise ValueError("secret_id must not be empty")
    return f"{secret_id},{_render('timestamp', timestamp)},{_render('nonce', nonce)}"


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


def _private_key(
    key: PrivateKeyInput, passphrase: Passphrase, key_name: str | None
) -> rsa.RSAPrivateKey:
    if isinstance(key, rsa.RSAPrivateKey):
        return key
    if isinstance(key, str | bytes):
        label = key_name or "<inline private key>"
        return _parse_private_key(_as_bytes(key), passphrase, label)
    raise TypeError(f"private key must be PEM str/bytes or RSAPrivateKey, not {type(key).__name__}")


def _public_key(key: PublicKeyInput, key_name: str | None) -> rsa.RSAPublicKey:
    if isinstance(key, rsa.RSAPublicKey):
        return key
    if isinstance(key, str | bytes):
        return _parse_public_key(_as_bytes(key), key_name or "<inline public key>")
    raise TypeError(f"public key must be PEM str/bytes or RSAPublicKey, not {type(key).__name__}")


# --------------------------------------------------------------------------
# Signing and verifying
# --------------------------------------------------------------------------


def _sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    raw = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def _decode_signature(signature: object) -> bytes:
    if not isinstance(signature, str):
        raise VerificationError(f"signature must be a string, not {type(signature).__name__}")
    # Tolerate MIME-style line wrapping; everything else must be strict base64.
    compact = _ASCII_WHITESPACE.sub(b"", signature.encode("utf-8", "replace"))
    if not compact:
        raise VerificationError("signature is empty")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError("signature is not valid base64") from None


def _check(key: rsa.RSAPublicKey, raw_signature: bytes, message: bytes, what: str) -> None:
    try:
        key.verify(raw_signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise VerificationError(f"{what} signature does not verify") from None


def sign_request(
    secret_id: str,
    timestamp: int | str,
    nonce: int | str,
    private_key_pem: PrivateKeyInput,
    *,
    passphrase: Passphrase = None,
    key_name: str | None = None,
) -> str:
    """Sign a Tupu request and return the ``signature`` field (base64).

    The signed text is :func:`signing_string` of the arguments, so
    ``timestamp`` and ``nonce`` must be the very values placed in the body
    (``int`` signed as decimal, ``str`` verbatim). ``private_key_pem`` is PEM
    text (``str``/``bytes``) or an already loaded key (preferred when signing
    often: loading an encrypted key is deliberately slow). ``key_name`` labels
    the key in errors, e.g. the path it was read from.

    Raises:
        KeyConfigurationError: the key cannot be loaded (see :func:`load_private_key`).
        TypeError, ValueError: a field has an unsupported type or is empty.
    """
    message = signing_string(secret_id, timestamp, nonce).encode("utf-8")
    key = _private_key(private_key_pem, passphrase, key_name)
    return _sign(key, message)


def make_auth_fields(
    secret_id: str,
    private_key_pem: PrivateKeyInput,
    *,
    passphrase: Passphrase = None,
    key_name: str | None = None,
    now: float | None = None,
) -> dict[str, int | str]:
    """Return fresh ``{"timestamp", "nonce", "signature"}`` for a request body.

    ``timestamp`` is integer Unix seconds (a JSON number, as the docs show);
    ``nonce`` is a decimal string of a random 32-bit value (as the Go SDK
    sends). Merge the dict into the body as is, so the values sent are the
    values signed. ``now`` overrides the clock (tests).
    """
    timestamp = int(time.time() if now is None else now)
    nonce = str(secrets.randbits(32))
    signature = sign_request(
        secret_id, timestamp, nonce, private_key_pem, passphrase=passphrase, key_name=key_name
    )
    return {"timestamp": timestamp, "nonce": nonce, "signature": signature}


def verify_request(
    secret_id: str,
    timestamp: int | str,
    nonce: int | str,
    signature: str,
    public_key_pem: PublicKeyInput,
) -> None:
    """Check a request signature the way Tupu's server would (for the sandbox).

    Pass ``timestamp``/``nonce`` in their textual form as received: parse the
    body with ``json.loads(body, parse_float=str)`` so a number such as
    ``0.8469537531104208`` keeps its exact text.

    Raises:
        VerificationError: bad base64 or a signature that does not verify, or
            a field of an unsupported type.
    """
    try:
        message = signing_string(secret_id, timestamp, nonce).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise VerificationError(f"cannot rebuild the signed string: {exc}") from None
    key = _public_key(public_key_pem, None)
    _check(key, _decode_signature(signature), message, "request")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate "json"/"signature" keys would let two parsers disagree on what
    # was verified; an honest envelope never has them.
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise VerificationError(f"envelope has a duplicate {name!r} field")
        result[name] = value
    return result


def _parse_envelope(body: bytes | bytearray | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    if isinstance(body, bytes | bytearray):
        try:
            text = bytes(body).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise VerificationError("body is not UTF-8") from None
    elif isinstance(body, str):
        text = body
    else:
        raise VerificationError(f"body must be bytes, str or a mapping, not {type(body).__name__}")
    try:
        envelope = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except (ValueError, RecursionError):
        raise VerificationError("body is not valid JSON") from None
    if not isinstance(envelope, dict):
        raise VerificationError("body is not a JSON object")
    return envelope


def verify_response(
    body: bytes | bytearray | str | Mapping[str, Any],
    public_key_pem: PublicKeyInput,
) -> dict[str, Any]:
    """Verify a signed Tupu answer or callback and return its payload.

    ``body`` is the raw HTTP body (``bytes``/``str``) of the envelope
    ``{"json": "<string>", "signature": "<base64>"}``, or that envelope already
    parsed into a mapping. The signature is checked over the UTF-8 bytes of the
    ``json`` string exactly as carried, then that string is parsed; it must be
    a JSON object. Extra envelope fields are ignored.

    Raises:
        VerificationError: unsigned (e.g. a bare ``{"error": ...}`` gateway
            answer), forged, tampered or malformed in any way.
        KeyConfigurationError: ``public_key_pem`` is not a usable RSA public key.
    """
    key = _public_key(public_key_pem, None)
    envelope = _parse_envelope(body)
    if "signature" not in envelope:
        hint = " (an unsigned error answer)" if "error" in envelope else ""
        raise VerificationError(f"response is not signed: no 'signature' field{hint}")
    if "json" not in envelope:
        raise VerificationError("response has no 'json' field")
    payload_text = envelope["json"]
    if not isinstance(payload_text, str):
        # An already-decoded object cannot be checked: its exact bytes are gone.
        raise VerificationError(f"'json' field must be a string, not {type(payload_text).__name__}")
    raw_signature = _decode_signature(envelope["signature"])
    try:
        message = payload_text.encode("utf-8")
    except UnicodeEncodeError:
        raise VerificationError("'json' field is not encodable as UTF-8") from None
    _check(key, raw_signature, message, "response")
    try:
        payload = json.loads(payload_text)
    except (ValueError, RecursionError):
        raise VerificationError("signed 'json' field is not valid JSON") from None
    if not isinstance(payload, dict):
        raise VerificationError("signed payload is not a JSON object")
    return payload


def sign_payload(
    payload: Mapping[str, Any] | str,
    private_key_pem: PrivateKeyInput,
    *,
    passphrase: Passphrase = None,
    key_name: str | None = None,
) -> dict[str, str]:
    """Build a signed ``{"json": ..., "signature": ...}`` envelope (sandbox side).

    A mapping is serialised once, compactly and without ASCII escaping (like
    JavaScript's ``JSON.stringify``); a ``str`` is taken verbatim. The
    signature covers the UTF-8 bytes of that exact string, which is what the
    envelope carries.

    Raises:
        SigningError: the payload cannot be serialised or encoded.
        KeyConfigurationError: the key cannot be loaded.
    """
    if isinstance(payload, str):
        text = payload
    elif isinstance(payload, Mapping):
        try:
            text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SigningError(f"payload is not JSON-serialisable: {exc}") from None
    else:
        raise TypeError(f"payload must be a mapping or str, not {type(payload).__name__}")
    try:
        message = text.encode("utf-8")
    except UnicodeEncodeError:
        raise SigningError("payload is not encodable as UTF-8") from None
    key = _private_key(private_key_pem, passphrase, key_name)
    return {"json": text, "signature": _sign(key, message)}


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
