"""Secrets kept in the job store encrypted with the store's key (AES-256-GCM).

A job must be resumable from its stored request, yet a media URL with
``user:password@`` or a ``?token=`` query, a ``RemoteUrl``'s auth headers and
secret provider options must never sit in the database in clear. They are
stored *sealed*: encrypted and authenticated with a key derived (HKDF-SHA256)
from the store's key file, the 0600 file beside the database that callback
tokens also come from. Reading the database alone reveals nothing; a process
that can open the key file (the store's owner) can resume the job.

A sealed value is the text ``vxs1.<key id>.<base64url(nonce + ciphertext)>``.
The key id (a hash of the derived key) says which store's key sealed it: each
:class:`Sealer` registers itself when created, and :func:`unseal` finds it.
When the key is not known (the key file was removed or belongs to another
store), the value stays masked and a resumed job asks for it again.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["PREFIX", "Sealer", "is_sealed", "sealer_for", "unseal"]

PREFIX = "vxs1."
_INFO = b"voxhub secrets at rest v1"
_NONCE = 12

_lock = threading.Lock()
_by_id: dict[str, Sealer] = {}
_by_material: dict[bytes, Sealer] = {}


class Sealer:
    """Seals and opens text with one store's key (derived from its key file's bytes)."""

    __slots__ = ("_aead", "key_id")

    def __init__(self, material: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(material)
        self._aead = AESGCM(key)
        # Not secret: a hash of the derived key, only to find the right key again.
        self.key_id = hashlib.sha256(b"voxhub key id" + key).hexdigest()[:16]

    def seal(self, text: str) -> str:
        """``text`` encrypted and authenticated; the key id is bound as associated data."""
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, text.encode("utf-8"), self.key_id.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{PREFIX}{self.key_id}.{body}"

    def open(self, token: str) -> str | None:
        """The text sealed in ``token``, or ``None`` if it was not sealed by this key."""
        try:
            _, key_id, body = token.split(".", 2)
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            if key_id != self.key_id or len(raw) <= _NONCE:
                return None
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], key_id.encode()).decode()
        except (ValueError, InvalidTag, UnicodeDecodeError):
            return None

    def __repr__(self) -> str:
        return f"Sealer(key_id={self.key_id!r})"


def sealer_for(material: bytes) -> Sealer:
    """The sealer of a store's key file bytes (one per key, registered for :func:`unseal`)."""
    with _lock:
        found = _by_material.get(material)
        if found is None:
            found = Sealer(material)
            _by_material[material] = found
            _by_id[found.key_id] = found
        return found


def is_sealed(value: object) -> bool:
    """Whether ``value`` is a sealed secret as :meth:`Sealer.seal` writes it."""
    return isinstance(value, str) and value.startswith(PREFIX)


def unseal(token: str) -> str | None:
    """The text sealed in ``token`` by any store key this process opened, else ``None``."""
    parts = token.split(".", 2)
    if len(parts) != 3:
        return None
    with _lock:
        sealer = _by_id.get(parts[1])
    return None if sealer is None else sealer.open(token)
