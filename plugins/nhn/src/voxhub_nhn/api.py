"""Where NHN's API lives and how a request authenticates: :class:`NhnAuth` and :class:`NhnApi`.

:func:`resolve_auth` turns a profile into an :class:`NhnAuth` (host, API version,
credential) without a request; it is what the provider's ``authenticate`` returns,
so the core keeps it as ``ctx.auth``. :class:`NhnApi` is the :class:`ApiClient` for
one context: URLs under ``{root}/{version}/appkeys/{appKey}/``, the version's auth
header, and the envelope check every answer goes through (:meth:`NhnApi.request`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs
from voxhub.plugin import (
    ApiClient,
    ConfigurationError,
    ProviderContext,
    Response,
    Secret,
    VoxhubError,
    mask_url,
    path_segment,
)

from . import errors, schema
from .options import (
    API_VERSIONS,
    CURRENT_LIMITS,
    CURRENT_VERSION,
    DEFAULT_BASE_URL,
    LEGACY_HOST,
    LEGACY_SYNC_LIMITS,
    NAME,
    Limits,
)

__all__ = ["NhnApi", "NhnAuth", "resolve_auth"]

T = TypeVar("T")

#: Every HTTP status: the base class must not judge an answer by its status alone.
_EVERY_STATUS = range(100, 600)


@attrs.frozen
class NhnAuth:
    """What requests need: where to send them and how to authenticate (secrets masked).

    ``root`` is scheme + host (+ any path prefix), without the version.
    """

    root: str
    version: str
    app_key: Secret = attrs.field(repr=False)
    credential: Secret = attrs.field(repr=False)
    legacy_host: bool = False

    @property
    def sync_limits(self) -> Limits:
        """The sync API's limits: the old host sits behind the 10 MB API Gateway."""
        return LEGACY_SYNC_LIMITS if self.legacy_host else CURRENT_LIMITS

    @property
    def base_url(self) -> str:
        """``{root}/{version}/appkeys/{appKey}``: every path of the STT API hangs below it."""
        return f"{self.root}/{self.version}/appkeys/{path_segment(self.app_key.reveal())}"

    def url(self, *path: str) -> str:
        """:attr:`base_url` + ``path`` (each piece URL-quoted)."""
        return "/".join([self.base_url, *(path_segment(p) for p in path)])

    def headers(self) -> dict[str, str]:
        """The auth header of this version (revealed here only, where it is sent)."""
        if self.version == "v2.0":
            return {"Authorization": self.credential.reveal()}
        return {"X-NHN-Authorization": f"Bearer {self.credential.reveal()}"}


class NhnApi(ApiClient):
    """NHN STT as seen from one provider context (``ctx.auth`` is an :class:`NhnAuth`)."""

    name = "NHN Cloud Speech-to-Text"
    converter = schema.converter

    def __init__(self, ctx: ProviderContext) -> None:
        auth = ctx.auth
        if not isinstance(auth, NhnAuth):
            # The core runs authenticate before any other hook; anything else is a bug.
            raise TypeError("ctx.auth is not the NhnAuth that NhnProvider.authenticate returns")
        super().__init__(ctx, base_url=auth.base_url)
        self.auth = auth

    def auth_headers(self) -> Mapping[str, str]:
        return self.auth.headers()

    def parse_error(self, response: Response, operation: str) -> VoxhubError:
        return errors.parse_error(response, operation)

    def request(
        self, method: str, path: str, *, operation: str, ok: Collection[int] = (), **kw: Any,
    ) -> Response:
        """Send one request; any answer but a success envelope raises :meth:`parse_error`.

        NHN answers most failures with HTTP 200 and the verdict in ``header``, so the
        envelope is checked on every answer, whatever its status. ``ok`` lists non-2xx
        statuses accepted when the envelope says success.
        """
        response = super().request(method, path, operation=operation, ok=_EVERY_STATUS, **kw)
        header = errors.read_header(response)
        if header is None or not header.ok or not (response.ok or response.status in ok):
            raise self.parse_error(response, operation)
        return response

    def exchange(
        self, method: str, path: str, *, operation: str, into: type[T], **kw: Any,
    ) -> tuple[T, Any]:
        """:meth:`request`, then the answer read as ``into`` *and* as plain JSON (kept as raw)."""
        response = self.request(method, path, operation=operation, **kw)
        data = self.json(response, operation)
        return self.read(data, into, operation), data


# --- configuration ----------------------------------------------------------------


def _config_error(field: str, message: str) -> ConfigurationError:
    return ConfigurationError(message, provider=NAME, operation="authenticate",
                              details={"field": field})


def _norm_version(value: str, field: str) -> str:
    text = value.strip().lower()
    text = text if text.startswith("v") else f"v{text}"
    if text not in API_VERSIONS:
        raise _config_error(
            field, f"setting {field!r}: NHN API version {value!r} is not supported "
                   f"(choose {' or '.join(API_VERSIONS)}; v1.x returns a different result shape)",
        )
    return text


def _split_base(base_url: str) -> tuple[str, str | None]:
    """A base URL without a trailing version segment, and that version if there was one."""
    base = base_url.rstrip("/")
    head, _, last = base.rpartition("/")
    if "://" in head and last.lower().lstrip("v").replace(".", "").isdigit():
        return head, _norm_version(last, "base_url")
    return base, None


def _secret(ctx: ProviderContext, name: str) -> Secret | None:
    value = ctx.settings.get(name)
    if value is None or value == "":
        return None
    secret = value if isinstance(value, Secret) else Secret(str(value))
    return secret if secret.reveal().strip() else None


def _root(ctx: ProviderContext) -> tuple[str, str | None]:
    """The API root (an explicit non-default ``base_url`` or ``host``) and a pinned version."""
    host = ctx.settings.get("host")
    base_setting = (ctx.settings.base_url or "").strip()
    root, base_version = _split_base(base_setting) if base_setting else (DEFAULT_BASE_URL, None)
    if host:
        host_text = str(host).strip().rstrip("/")
        host_root = host_text if "://" in host_text else f"https://{host_text}"
        if base_setting and root.rstrip("/") not in (DEFAULT_BASE_URL, host_root):
            raise _config_error(
                "host", f"settings 'host' ({host_text}) and 'base_url' ({mask_url(root)}) "
                        "disagree; set only one",
            )
        root = host_root
    parts = urlsplit(root)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _config_error("base_url", f"base URL {mask_url(root)!r} is not an http(s) URL")
    return root.rstrip("/"), base_version


def resolve_auth(ctx: ProviderContext) -> NhnAuth:
    """Check the profile's settings locally and decide host, version and credential.

    Raises :class:`ConfigurationError` naming the field (``details["field"]``) for
    anything missing, malformed or ambiguous.
    """
    env = f"VOXHUB_{ctx.profile.upper().replace('-', '_')}_"
    root, base_version = _root(ctx)
    version_setting = ctx.settings.get("api_version")
    version = _norm_version(str(version_setting), "api_version") if version_setting else None
    if version and base_version and version != base_version:
        raise _config_error(
            "api_version", f"setting 'api_version' ({version}) disagrees with the version in "
                           f"base_url ({base_version})",
        )
    version = version or base_version

    app_key = _secret(ctx, "app_key")
    if app_key is None:
        raise _config_error("app_key", f"missing setting 'app_key' for profile {ctx.profile!r} "
                                       f"(set {env}APP_KEY or add it to the config file)")
    secret_key = _secret(ctx, "secret_key")
    token = _secret(ctx, "uak_token")
    if version is None:
        if secret_key is not None and token is not None:
            raise _config_error(
                "api_version", "both 'secret_key' (API v2.0) and 'uak_token' (API v2.1) are set: "
                               "set 'api_version' to v2.0 or v2.1 to choose",
            )
        if secret_key is None and token is None:
            raise _config_error(
                "uak_token", f"missing credentials for profile {ctx.profile!r}: set 'uak_token' "
                             f"(User Access Key token, API v2.1; {env}UAK_TOKEN) or 'secret_key' "
                             f"(API v2.0; {env}SECRET_KEY)",
            )
        version = "v2.0" if secret_key is not None else CURRENT_VERSION
    if version == "v2.0":
        if secret_key is None:
            raise _config_error("secret_key", "API v2.0 needs setting 'secret_key' "
                                              f"({env}SECRET_KEY)")
        credential = secret_key
    else:
        if token is None:
            raise _config_error("uak_token", "API v2.1 needs setting 'uak_token', a User Access "
                                             f"Key token ({env}UAK_TOKEN)")
        credential = token
    return NhnAuth(
        root=root,
        version=version,
        app_key=app_key,
        credential=credential,
        legacy_host=urlsplit(root).hostname == LEGACY_HOST,
    )
