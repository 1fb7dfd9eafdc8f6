"""Tupu's speech-stream API as seen from one provider context: signed requests, verified answers.

Tupu authenticates in the body, not in headers: every request carries
``timestamp``, ``nonce`` and ``signature`` (:func:`~voxhub_tupu.signing.make_auth_fields`)
and goes to ``{path}/{secretId}``. Every answer is a signed envelope that is
verified with Tupu's public key before anything in it is read; a non-zero
``code`` inside, an unsigned answer, or one that does not verify becomes the
error :func:`voxhub_tupu.errors.parse_error` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs
from cryptography.hazmat.primitives.asymmetric import rsa
from voxhub.plugin import (
    ApiClient,
    PluginError,
    ProviderContext,
    Response,
    VoxhubError,
    path_segment,
)

from .codes import as_int
from .errors import parse_error
from .options import DEFAULT_BASE_URL
from .signing import VerificationError, make_auth_fields, verify_response

__all__ = ["CLOSE_PATH", "SEARCH_PATH", "SUBMIT_PATH", "TupuApi", "TupuAuth"]

SUBMIT_PATH: Final = "/v3/recognition/speech/stream"
CLOSE_PATH: Final = "/v3/recognition/speech/stream/close"
SEARCH_PATH: Final = "/v3/recognition/speech/stream/search"


@attrs.frozen
class TupuAuth:
    """What ``authenticate`` returns: the loaded keys. Its repr shows no key material."""

    secret_id: str = attrs.field(repr=False)
    private_key: rsa.RSAPrivateKey = attrs.field(repr=False)
    public_key: rsa.RSAPublicKey = attrs.field(repr=False)
    private_key_path: str = ""
    public_key_path: str = ""


class TupuApi(ApiClient):
    """One context's view of Tupu: sign each body, verify each answer, map failures."""

    name = "Tupu"

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx, base_url=ctx.base_url or DEFAULT_BASE_URL)
        if not isinstance(ctx.auth, TupuAuth):
            # The core runs authenticate before any call; this is a caller building
            # contexts by hand without it.
            raise PluginError(
                "Tupu calls need the keys authenticate loads (ctx.auth is not a TupuAuth)",
                provider=ctx.provider, operation="request",
            )
        self.auth: TupuAuth = ctx.auth

    def auth_headers(self) -> Mapping[str, str]:
        """None: Tupu authenticates by the signature inside the body."""
        return {}

    def parse_error(self, response: Response, operation: str) -> VoxhubError:
        """The error for a failed answer (signed with a code, unsigned, or unverifiable)."""
        return parse_error(response, operation, public_key=self.auth.public_key,
                           provider=self.ctx.provider)

    def post(
        self, path: str, body: Mapping[str, Any], *, operation: str, idempotent: bool
    ) -> dict[str, Any]:
        """POST ``body``, signed, to ``{path}/{secretId}``: the verified payload of a code 0."""
        signed = {**body, **make_auth_fields(self.auth.secret_id, self.auth.private_key,
                                             now=self.ctx.clock.time())}
        response = self.request("POST", f"{path}/{path_segment(self.auth.secret_id)}",
                                operation=operation, json=signed, idempotent=idempotent)
        try:
            payload = verify_response(response.data, self.auth.public_key)
        except VerificationError:
            raise self.parse_error(response, operation) from None
        if as_int(payload.get("code", 0)) != 0:
            raise parse_error(response, operation, public_key=self.auth.public_key,
                              provider=self.ctx.provider, payload=payload)
        return payload
