"""Checking a job request completely before anything is sent.

:meth:`RequestChecks.prepare` is the one way a request becomes sendable: it
resolves the provider, profile and job kind, checks the media against the
provider's capabilities, converts the options to their declared types, builds
(and so authenticates) the provider context, and runs the provider's
``validate`` hook. :mod:`voxhub.submission` never calls a provider's
``submit`` with a request that did not go through it in the same process.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from .errors import ConfigurationError, InvalidInputError
from .media_checks import check_local_media
from .models import JobKind, JobRequest, LocalFile, Media, RemoteUrl
from .provider import Capability

if TYPE_CHECKING:
    from .config import Config
    from .plugins import PluginManager
    from .provider import ProviderContext

__all__ = ["RequestChecks", "check_timeout"]


class RequestChecks:
    """The local checks of job requests for one orchestrator (no network)."""

    def __init__(
        self,
        *,
        plugins: PluginManager,
        config: Config,
        contexts: Callable[[str, str], ProviderContext],
    ) -> None:
        self._plugins = plugins
        self._config = config
        self._contexts = contexts

    def default_provider(self) -> str:
        """The configured default provider, else ``local`` when installed, else the only one."""
        configured = self._config.get("default_provider")
        if configured:
            return str(configured)
        providers = self._plugins.providers
        if "local" in providers:
            return "local"
        if len(providers) == 1:
            return next(iter(providers))
        raise ConfigurationError(
            "no provider given and no default configured: pass -p PROVIDER or set "
            "[voxhub] default_provider (installed: "
            f"{', '.join(sorted(providers)) or 'none'})"
        )

    def prepare(self, request: JobRequest) -> JobRequest:
        """Validate ``request`` completely without sending anything; return it normalized.

        Afterwards the provider's ``authenticate`` (through the context) and
        ``validate`` hooks have run for it.
        """
        provider = request.provider or self.default_provider()
        info = self._plugins.provider(provider).info
        kind = _kind(request.kind, info.kinds, provider)
        _check_media(request.media, info.capabilities, info.media_types, provider)
        options = info.validate_options(request.options)
        profile = request.profile or provider
        request = attrs.evolve(
            request, provider=provider, kind=kind, options=options, profile=profile
        )
        ctx = self._contexts(provider, profile)
        return self._plugins.calls(provider).validate(ctx, request)


def _kind(kind: JobKind | None, kinds: frozenset[JobKind], provider: str) -> JobKind:
    if kind is None:
        if len(kinds) != 1:
            raise InvalidInputError(
                f"provider {provider!r} runs several job kinds "
                f"({', '.join(sorted(kinds))}): say which with kind=",
                field="kind",
                provider=provider,
                operation="validate",
            )
        return next(iter(kinds))
    if kind not in kinds:
        raise InvalidInputError(
            f"provider {provider!r} does not run {kind.value!r} jobs "
            f"(it runs: {', '.join(sorted(kinds))})",
            field="kind",
            provider=provider,
            operation="validate",
        )
    return JobKind(kind)


def check_timeout(value: float | None, *, field: str = "timeout") -> float | None:
    """``value`` as a timeout in seconds: ``None`` (no limit) or a finite number above 0.

    Raises :class:`~voxhub.errors.InvalidInputError` naming ``field`` otherwise
    (``-5``, ``0``, ``nan`` and ``inf`` are all refused: none of them is a time limit).
    """
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"{field} must be a number of seconds, got {str(value)[:20]!r}", field=field
        ) from None
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise InvalidInputError(
            f"{field} must be a finite number of seconds above 0, got {value!r}", field=field
        )
    return seconds


def _check_media(
    media: Media | None, caps: frozenset[Capability], types: Iterable[str], provider: str
) -> None:
    if isinstance(media, LocalFile):
        if Capability.UPLOAD not in caps:
            raise InvalidInputError(
                f"provider {provider!r} does not accept local files; give a URL",
                field="media",
                provider=provider,
                operation="validate",
            )
        # Exists, is a readable non-empty regular file, and its bytes are a media type
        # the provider takes: nothing unfit is recorded, uploaded or billed.
        check_local_media(media.path, types, provider=provider)
    elif isinstance(media, RemoteUrl) and Capability.URL not in caps:
        raise InvalidInputError(
            f"provider {provider!r} does not accept URLs; give a local file",
            field="media",
            provider=provider,
            operation="validate",
        )
