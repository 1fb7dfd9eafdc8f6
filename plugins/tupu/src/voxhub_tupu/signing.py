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

Key loading and generation live in :mod:`voxhub_tupu.keys`; their names are
also importable from here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .keys import (
    PRIVATE_KEY_FILENAME,
    PUBLIC_KEY_FILENAME,
    KeyConfigurationError,
    Passphrase,
    PrivateKeyInput,
    PublicKeyInput,
    SigningError,
    as_private_key,
    as_public_key,
    generate_key_pair,
    load_private_key,
    load_public_key,
    write_key_pair,
)

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

_ASCII_WHITESPACE = re.compile(rb"\s+")


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
    key = as_private_key(private_key_pem, passphrase, key_name)
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
    key = as_public_key(public_key_pem, None)
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
    key = as_public_key(public_key_pem, None)
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
    key = as_private_key(private_key_pem, passphrase, key_name)
    return {"json": text, "signature": _sign(key, message)}
