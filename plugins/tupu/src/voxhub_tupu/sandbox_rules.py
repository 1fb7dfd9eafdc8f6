"""How the Tupu sandbox judges a request, written from Tupu's own pages, not the client's code.

Part of the Tupu sandbox (:mod:`voxhub_tupu.sandbox`). Nothing here imports the
client's ``signing``, ``codes``, ``options`` or ``provider`` modules: a client
that misreads Tupu's documents must not pass its own tests because the emulator
shares its reading. The sources are seed ``003_5f90bba48ed6ecb6.txt`` (the stream
submit/close page) and the SDKs' signing code summarised in ``specs/tupu.md`` B.2.

Signature checking uses the ``cryptography`` package's RSA primitive directly,
the way Tupu documents it: the text ``"{secretId},{timestamp},{nonce}"`` (the
values as they appear in the body), RSA-SHA256 (PKCS#1 v1.5), standard base64.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "BEIJING",
    "STREAM_SCHEMES",
    "TASK_SPEECH_MODERATION",
    "TASK_TRANSCRIPTION",
    "TASK_VULGAR_SPEECH",
    "envelope",
    "field_text",
    "new_client_keys",
    "read_public_key",
    "rule_sends_all",
    "rule_sends_end",
    "signature_matches",
    "stream_url_problem",
]

#: Task ids of the three stream tasks (the seed's "tasks" example and Tupu's task pages).
TASK_VULGAR_SPEECH: Final = "5c8213b9bc807806aab0a574"  # 低俗语音
TASK_TRANSCRIPTION: Final = "5ca1bd6b3872ecc9afb99132"  # 语音转译
TASK_SPEECH_MODERATION: Final = "5caee6b2a76925c55a09a6d2"  # 语音转译审核

#: Tupu reports slice times as Beijing wall-clock text (``YYYY-MM-DD HH:mm:ss``).
BEIJING: Final = timezone(timedelta(hours=8), "Asia/Shanghai")

#: Seed 003: "支持的协议: RTMP、HLS、HTTP-FLV、RTSP" (HLS and HTTP-FLV travel over http(s)).
STREAM_SCHEMES: Final = ("rtmp", "rtsp", "http", "https")

#: Seed 003, callbackRules: 0 (default) violations only; 1 every result; 2 adds the
#: end-of-task status callback; 3 is rules 1 and 2 together.
_SENDS_ALL: Final = frozenset({1, 3})
_SENDS_END: Final = frozenset({2, 3})


def rule_sends_all(rule: int) -> bool:
    """Whether ``callbackRules`` asks for every result (1, 3) rather than violations only."""
    return rule in _SENDS_ALL


def rule_sends_end(rule: int) -> bool:
    """Whether ``callbackRules`` asks for the end-of-task status callback (2, 3)."""
    return rule in _SENDS_END


def stream_url_problem(url: object) -> str | None:
    """Why Tupu would not pull ``url`` (``None``: it would)."""
    if not isinstance(url, str) or not url.strip():
        return "no stream url"
    scheme = urlsplit(url.strip()).scheme.lower()
    if scheme not in STREAM_SCHEMES:
        return (f"unsupported stream protocol {scheme or '(none)'!r}: Tupu pulls RTMP, HLS, "
                "HTTP-FLV and RTSP")
    return None


def field_text(value: object) -> str | None:
    """A signed field's text as it was sent, or ``None`` when it cannot be one.

    The body must be parsed with ``parse_float=str``, so a number such as
    ``0.8469537531104208`` arrives as its exact text; integers print in decimal.
    JSON ``true``/``false``/``null``, objects and arrays are not timestamps or nonces.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value:
        return value
    return None


def signature_matches(
    secret_id: str, timestamp: str, nonce: str, signature: str, key: rsa.RSAPublicKey
) -> bool:
    """Whether ``signature`` (base64) signs ``"{secret_id},{timestamp},{nonce}"`` with ``key``."""
    try:
        raw = base64.b64decode(signature.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False
    message = f"{secret_id},{timestamp},{nonce}".encode()
    try:
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def envelope(payload: Mapping[str, Any], key: rsa.RSAPrivateKey) -> bytes:
    """Tupu's answer body ``{"json": <text>, "signature": <base64>}`` for ``payload``.

    The signature covers the UTF-8 bytes of the exact ``json`` text sent.
    """
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    raw = key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
    body = {"json": text, "signature": base64.b64encode(raw).decode("ascii")}
    return json.dumps(body, ensure_ascii=False).encode()


def read_public_key(pem: bytes) -> rsa.RSAPublicKey:
    """A client's uploaded public key (PEM SubjectPublicKeyInfo or PKCS#1)."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("Tupu signatures are RSA: the public key must be an RSA key")
    return key


def new_client_keys(directory: Path) -> tuple[Path, bytes]:
    """A client key pair as a customer makes one: PKCS#1 private key file, public PEM.

    Returns the private key's path (mode 0600) and the public key's PEM.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / "private_key.pem"
    private.touch(mode=0o600)
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    (directory / "public_key.pem").write_bytes(public)
    return private, public
