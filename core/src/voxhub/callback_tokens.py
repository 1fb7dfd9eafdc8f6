"""Per-job callback URLs and the tokens that make them unguessable.

Each job submitted with callbacks gets the URL
``{public_url}/callbacks/{provider}/{job_id}/{token}``. The token is an HMAC of
the job id under the store's callback key (a file beside the store, shared by
every process using it), so any process can rebuild the URL of a job it resumes,
while the database keeps only the token's SHA-256: reading the store is not
enough to forge a callback. :mod:`voxhub.callbacks` checks tokens with
:meth:`CallbackTokens.matches`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import ConfigurationError
from .provider import Capability

if TYPE_CHECKING:
    from .store import Store

__all__ = ["CallbackTokens", "token_hash"]


def token_hash(token: str) -> str:
    """What the store keeps of a callback token: its SHA-256, hex-encoded."""
    return hashlib.sha256(token.encode()).hexdigest()


class CallbackTokens:
    """Arms jobs for callbacks and builds and checks their callback URLs.

    ``public_url`` is the callback receiver's public base URL (``None`` when
    no receiver is configured: no job can then ask for callbacks).
    """

    def __init__(self, store: Store, public_url: str | None) -> None:
        self.store = store
        self.public_url = (public_url or "").rstrip("/") or None

    def token(self, job_id: str) -> str:
        """The job's callback token (derived, never stored)."""
        digest = hmac.new(self.store.callback_key(), job_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def armed(self, job_id: str) -> bool:
        """Whether the job was submitted with a callback URL."""
        return self.store.callback_token_hash(job_id) is not None

    def matches(self, job_id: str, token: str) -> bool:
        """Whether ``token`` is the job's token (constant-time; ``False`` if the job has none)."""
        expected = self.store.callback_token_hash(job_id)
        return expected is not None and hmac.compare_digest(expected, token_hash(token))

    def url(self, provider: str, job_id: str) -> str | None:
        """The job's callback URL, or ``None`` when it has none or no receiver is configured."""
        if self.public_url is None or not self.armed(job_id):
            return None
        return f"{self.public_url}/callbacks/{provider}/{job_id}/{self.token(job_id)}"

    def url_builder(self, provider: str) -> Callable[[str], str | None]:
        """``ProviderContext.callback_url_for`` for one provider."""
        return lambda job_id: self.url(provider, job_id)

    def arm(
        self,
        job_id: str,
        provider: str,
        capabilities: frozenset[Capability],
        requested: bool | None,
    ) -> None:
        """Give a job its callback token when it should get callbacks.

        ``requested`` is the caller's choice; ``None`` means "when a receiver is
        configured and the provider can call back". Providers whose results only
        arrive by callback always get one, and then a receiver is required.
        """
        wants = (
            requested
            if requested is not None
            else (self.public_url is not None and Capability.CALLBACKS in capabilities)
        )
        if Capability.CALLBACK_ONLY in capabilities:
            wants = True
        if not wants:
            return
        if self.public_url is None:
            raise ConfigurationError(
                "callbacks need the public URL of a callback receiver: run `voxhub callbacks "
                "serve --public-url URL` and set [voxhub] callback_url (or VOXHUB_CALLBACK_URL)",
                provider=provider,
                operation="submit",
            )
        self.store.set_callback_token_hash(job_id, token_hash(self.token(job_id)))
