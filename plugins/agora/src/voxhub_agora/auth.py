"""Agora REST authentication of both providers.

Two modes (spec 1.1, seed "enable Real-Time STT from the client side"):

``basic``
    ``Authorization: Basic base64(customer_id:customer_secret)`` — the server-side way.
``token``
    ``Authorization: agora token="<AccessToken2>"`` — an end-user app need not hold the
    customer secret. The token is either configured ready-made (``auth_token``, e.g. handed
    out by the app's token server) or built here from the app certificate for each request.

:class:`AuthChecker` checks a header the way Agora's gateway does (for tools and tests);
the sandboxes use their own :mod:`.sandbox_auth` instead, so they do not share the
client's reading of the token format.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
from collections.abc import Mapping

import attrs
from voxhub.plugin import ConfigurationError, ProviderSettings, Secret

from .accesstoken import (
    AccessToken2,
    RtcPrivilege,
    RtcRole,
    ServiceRtc,
    TokenCredentialError,
    TokenError,
    TokenExpiredError,
    build_rtc_token,
    check_token,
)
from .options import DEFAULT_AUTH_TOKEN_EXPIRE, MAX_TOKEN_EXPIRE

__all__ = [
    "MSG_BAD_CREDENTIALS",
    "MSG_INVALID_TOKEN",
    "MSG_TOKEN_EXPIRED",
    "AgoraAuth",
    "AuthChecker",
    "AuthMode",
    "parse_authorization",
]

#: The 401 bodies' messages, exactly as Agora writes them (seed and spec 1.1).
MSG_BAD_CREDENTIALS = "Invalid authentication credentials"
MSG_TOKEN_EXPIRED = "Token is expired"  # noqa: S105 - a message, not a secret
MSG_INVALID_TOKEN = "Invalid token"  # noqa: S105 - a message, not a secret


class AuthMode(enum.StrEnum):
    """How requests authenticate."""

    BASIC = "basic"
    TOKEN = "token"  # noqa: S105 - a mode name


def _secret(settings: ProviderSettings, name: str) -> Secret | None:
    value = settings.secret(name)
    return Secret(value) if value else None


@attrs.frozen
class AgoraAuth:
    """Resolved credentials of one profile; secrets stay :class:`Secret` (masked in reprs)."""

    app_id: str
    mode: AuthMode
    customer_id: Secret | None = None
    customer_secret: Secret | None = None
    app_certificate: Secret | None = None
    auth_token: Secret | None = None
    token_expire: int = DEFAULT_AUTH_TOKEN_EXPIRE

    @classmethod
    def from_settings(cls, settings: ProviderSettings) -> AgoraAuth:
        """Check a profile's settings locally (no request) and pick the auth mode.

        Raises:
            ConfigurationError: naming the missing or malformed setting (never its value).
        """
        provider = settings.provider

        def bad(message: str) -> ConfigurationError:
            return ConfigurationError(
                f"{message} (profile {settings.profile!r})", provider=provider,
                operation="authenticate",
            )

        app_id = settings.require("app_id").strip()
        if not _is_hex32(app_id):
            raise bad("app_id must be the 32-hex-character App ID of the Agora project")
        certificate = _secret(settings, "app_certificate")
        if certificate is not None and not _is_hex32(certificate.reveal()):
            raise bad("app_certificate must be 32 hexadecimal characters")
        customer_id = _secret(settings, "customer_id")
        customer_secret = _secret(settings, "customer_secret")
        auth_token = _secret(settings, "auth_token")
        raw_expire = settings.get("auth_lifetime")
        expire = DEFAULT_AUTH_TOKEN_EXPIRE
        if raw_expire not in (None, ""):
            try:
                expire = int(str(raw_expire))
            except ValueError:
                raise bad("auth_lifetime must be a whole number of seconds") from None
            if not 60 <= expire <= MAX_TOKEN_EXPIRE:
                raise bad(f"auth_lifetime must be within 60..{MAX_TOKEN_EXPIRE} seconds")
        raw_mode = str(settings.get("auth") or "").strip().lower()
        if raw_mode:
            try:
                mode = AuthMode(raw_mode)
            except ValueError:
                raise bad(f"auth must be 'basic' or 'token', not {raw_mode!r}") from None
        elif customer_id and customer_secret:
            mode = AuthMode.BASIC
        elif certificate or auth_token:
            mode = AuthMode.TOKEN
        else:
            raise bad(
                "no credentials: set customer_id and customer_secret (Basic auth), or "
                "app_certificate / auth_token (token auth)"
            )
        if mode is AuthMode.BASIC and not (customer_id and customer_secret):
            raise bad("auth = basic needs customer_id and customer_secret")
        if mode is AuthMode.TOKEN and not (certificate or auth_token):
            raise bad("auth = token needs app_certificate (to build tokens) or auth_token")
        return cls(
            app_id=app_id, mode=mode, customer_id=customer_id, customer_secret=customer_secret,
            app_certificate=certificate, auth_token=auth_token, token_expire=expire,
        )

    def header(self, *, channel: str = "", now: float) -> str:
        """The ``Authorization`` value for one request.

        In token mode without a configured ``auth_token`` a fresh AccessToken2 is built:
        an RTC service for ``channel`` (the channel the request is about; empty when none)
        with uid 0 (any uid) and the join privilege, valid ``token_expire`` seconds.
        """
        if self.mode is AuthMode.BASIC:
            assert self.customer_id is not None and self.customer_secret is not None
            pair = f"{self.customer_id.reveal()}:{self.customer_secret.reveal()}"
            return "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        if self.auth_token is not None:
            token = self.auth_token.reveal()
        else:
            assert self.app_certificate is not None
            token = (
                AccessToken2(self.app_id, self.app_certificate.reveal(), issue_ts=int(now),
                             expire=self.token_expire)
                .add_service(ServiceRtc(channel, 0).add_privilege(
                    RtcPrivilege.JOIN_CHANNEL, self.token_expire))
                .build()
            )
        # The seed's client-side page puts the token in double quotes.
        return f'agora token="{token}"'

    @property
    def can_sign(self) -> bool:
        """Whether RTC tokens for bots / transcoders can be built (an app certificate is set)."""
        return self.app_certificate is not None

    def rtc_token(
        self, channel: str, uid: int | str, *, role: RtcRole, expire: int, now: float
    ) -> str:
        """An RTC token for ``uid`` in ``channel`` signed with the app certificate."""
        if self.app_certificate is None:
            raise ConfigurationError(
                "building RTC tokens needs app_certificate in the profile",
                operation="authenticate",
            )
        return build_rtc_token(
            self.app_id, self.app_certificate.reveal(), channel, uid, role, expire,
            issue_ts=int(now),
        )


def _is_hex32(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdefABCDEF" for c in value)


def parse_authorization(header: str | None) -> tuple[AuthMode, str] | None:
    """Split an ``Authorization`` value into its mode and credential.

    Accepts ``Basic <b64>`` and ``agora token="<t>"`` as well as the unquoted
    ``agora token=<t>`` other Agora products document. Returns ``None`` for anything else.
    """
    if not header:
        return None
    text = header.strip()
    scheme, _, rest = text.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        return AuthMode.BASIC, decoded
    if scheme.lower() == "agora":
        key, sep, value = rest.strip().partition("=")
        if key.strip().lower() != "token" or not sep:
            return None
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        return AuthMode.TOKEN, value
    return None


@attrs.frozen
class AuthChecker:
    """Server-side check of an ``Authorization`` header, as Agora's gateway does it.

    Returns ``None`` when accepted, else the 401 message to answer with.
    """

    app_id: str
    app_certificate: str = attrs.field(repr=False)
    customer_id: str = attrs.field(repr=False)
    customer_secret: str = attrs.field(repr=False)

    def check(self, header: str | None, *, now: float) -> str | None:
        """Verify Basic credentials or an AccessToken2 (signature, App ID, expiry)."""
        parsed = parse_authorization(header)
        if parsed is None:
            return MSG_BAD_CREDENTIALS
        mode, value = parsed
        if mode is AuthMode.BASIC:
            user, sep, password = value.partition(":")
            # Constant-time comparison: the sandbox should not teach timing attacks.
            ok = sep == ":" and hmac.compare_digest(user, self.customer_id) and (
                hmac.compare_digest(password, self.customer_secret))
            return None if ok else MSG_BAD_CREDENTIALS
        try:
            check_token(value, app_id=self.app_id, app_certificate=self.app_certificate, now=now)
        except TokenExpiredError:
            return MSG_TOKEN_EXPIRED
        except (TokenError, TokenCredentialError):
            return MSG_INVALID_TOKEN
        return None

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> AuthChecker:
        """Build from a ``credentials()`` mapping."""
        return cls(values["app_id"], values["app_certificate"], values["customer_id"],
                   values["customer_secret"])
