"""Configuration: a TOML file with a section per provider profile, overridden by the environment.

Example ``config.toml`` (``$VOXHUB_CONFIG``, default ``$XDG_CONFIG_HOME/voxhub/config.toml``)::

    [voxhub]
    default_provider = "revai"
    callback_url = "https://hooks.example.com"   # public base URL of the callback receiver
    connect_timeout = 10                         # seconds (VOXHUB_CONNECT_TIMEOUT)
    read_timeout = 60                            # seconds between bytes (VOXHUB_READ_TIMEOUT)
    write_timeout = 60                           # upload stall limit (VOXHUB_WRITE_TIMEOUT)

    [revai]                 # profile "revai" of provider revai
    token = "..."

    [revai-eu]              # a second profile of the same provider
    limit_submit = "20000/600"   # a declared vendor limit, raised for this account
    provider = "revai"
    region = "eu"
    token = "..."

Environment variables ``VOXHUB_<PROFILE>_<FIELD>`` (upper case, ``-`` becomes
``_``) override the file, e.g. ``VOXHUB_REVAI_TOKEN``,
``VOXHUB_AGORA_STT_APP_ID``. Every provider accepts ``base_url``, and ``limit_<name>``
for each limit it declares (``"COUNT/SECONDS"``, a count, or ``"off"``; see
:mod:`voxhub._provider_limits`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .errors import ConfigurationError
from .provider import ProviderInfo, ProviderSettings
from .redact import MASK, Secret, is_secret_key, mask_url

__all__ = ["Config", "default_config_path", "env_name"]

_GLOBAL = "voxhub"
_GLOBAL_KEYS = {"default_provider", "callback_url", "store", "connect_timeout", "read_timeout",
                "write_timeout"}


def default_config_path() -> Path:
    """``$VOXHUB_CONFIG``, else ``$XDG_CONFIG_HOME/voxhub/config.toml`` (``~/.config``)."""
    env = os.environ.get("VOXHUB_CONFIG")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "voxhub" / "config.toml"


def env_name(profile: str, field: str) -> str:
    """The environment variable that sets ``field`` of ``profile``."""
    return f"VOXHUB_{profile.upper().replace('-', '_')}_{field.upper().replace('-', '_')}"


@attrs.frozen
class Config:
    """Loaded configuration. ``profiles`` maps a profile name to its raw settings."""

    path: Path | None = None
    globals: Mapping[str, Any] = attrs.field(factory=dict)
    profiles: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
        """Read the file (if it exists) and remember the environment for overrides."""
        env = dict(os.environ if env is None else env)
        explicit = path is not None
        file = Path(path) if path is not None else default_config_path()
        data: dict[str, Any] = {}
        if file.exists():
            try:
                data = tomllib.loads(file.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                # tomllib's message names line and column, never the value.
                raise ConfigurationError(f"cannot read config file {file}: {exc}") from None
            except RecursionError:
                raise ConfigurationError(
                    f"cannot read config file {file}: tables or arrays nested too deeply"
                ) from None
        elif explicit:
            raise ConfigurationError(f"config file {file} does not exist")
        globals_ = data.pop(_GLOBAL, {})
        if not isinstance(globals_, dict):
            raise ConfigurationError(f"{file}: {_GLOBAL!r} must be a table ([{_GLOBAL}])")
        unknown = set(globals_) - _GLOBAL_KEYS
        if unknown:
            raise ConfigurationError(
                f"unknown setting(s) in [{_GLOBAL}] of {file}: {', '.join(sorted(unknown))}"
            )
        for key, value in globals_.items():
            _check_global(key, value, f"[{_GLOBAL}] {key} in {file}")
        profiles: dict[str, dict[str, Any]] = {}
        for name, section in data.items():
            if not isinstance(section, dict):
                raise ConfigurationError(f"{file}: {name!r} must be a table ([{name}])")
            for key, value in section.items():
                if isinstance(value, dict | list) or (key == "provider" and
                                                      not isinstance(value, str)):
                    # Profile settings are text or numbers; the value itself is never echoed.
                    raise ConfigurationError(
                        f"{file}: [{name}] {key} must be a string or a number, "
                        f"not {_type_name(value)}",
                        details={"field": key},
                    )
            profiles[name] = dict(section)
        return cls(path=file, globals=globals_, profiles=profiles, env=env)

    @classmethod
    def from_profiles(cls, profiles: Mapping[str, Mapping[str, Any]], **globals_: Any) -> Config:
        """A configuration built in code (tests, embedding), ignoring the environment."""
        return cls(path=None, globals=globals_, profiles={k: dict(v) for k, v in profiles.items()})

    def get(self, key: str, default: Any = None) -> Any:
        """A global setting: ``VOXHUB_<KEY>`` in the environment wins over ``[voxhub]``."""
        env_value = self.env.get(f"VOXHUB_{key.upper()}")
        if env_value is not None:
            if key in _NUMBER_KEYS:
                _check_global(key, _number(env_value), f"VOXHUB_{key.upper()}")
            return env_value
        return self.globals.get(key, default)

    def provider_of(self, profile: str) -> str:
        """The provider a profile belongs to (its ``provider`` key, else its own name)."""
        section = self.profiles.get(profile, {})
        return str(section.get("provider", profile))

    def profiles_for(self, provider: str) -> list[str]:
        names = [p for p in self.profiles if self.provider_of(p) == provider]
        return names or [provider]

    def settings(self, info: ProviderInfo, profile: str | None = None) -> ProviderSettings:
        """Resolve a profile of ``info``'s provider: file, then environment, secrets wrapped."""
        profile = profile or info.name
        section = dict(self.profiles.get(profile, {}))
        owner = section.pop("provider", info.name)
        if owner != info.name:
            raise ConfigurationError(
                f"profile {profile!r} belongs to provider {owner!r}, not {info.name!r}"
            )
        known = {f.name: f for f in info.credentials}
        limits = {_LIMIT_PREFIX + limit.name: limit for limit in info.limits}
        for key in section:
            if key != "base_url" and key not in known and key not in limits:
                raise ConfigurationError(
                    f"unknown setting {key!r} in profile [{profile}] "
                    f"(accepted: {', '.join(['base_url', *sorted(known), *sorted(limits)])})",
                    provider=info.name,
                )
        values: dict[str, Any] = dict(section)
        for name in ("base_url", *known, *limits):
            env_value = self.env.get(env_name(profile, name))
            if env_value is not None:
                values[name] = env_value
        for name, value in values.items():
            field_ = known.get(name)
            secret = name == "base_url" or (field_.secret if field_ else name not in limits) \
                or is_secret_key(name)
            # Credentials and URLs are text: a number or table given for a token would be
            # sent as is. Other settings may be numbers (lifetimes, intervals).
            if not isinstance(value, str | Secret) and (
                secret or not isinstance(value, int | float) or isinstance(value, bool)
            ):
                raise ConfigurationError(
                    f"setting {name!r} of profile [{profile}] must be a string, "
                    f"not {_type_name(value)}",
                    provider=info.name,
                    details={"field": name},
                )
        for name in limits.keys() & values.keys():
            _check_limit(info, limits[name], values[name], profile)
        for name, field in known.items():
            if name in values and (field.secret or is_secret_key(name)):
                values[name] = Secret(str(values[name]))
        base_url = values.pop("base_url", None) or info.default_base_url
        return ProviderSettings(
            provider=info.name, profile=profile, base_url=base_url, values=values
        )

    def masked(self, providers: Mapping[str, ProviderInfo] | None = None) -> dict[str, Any]:
        """The whole configuration with secrets masked (``voxhub config show``).

        For a profile of an installed provider (``providers`` maps names to their
        info), exactly the fields that provider declares secret are masked. A
        profile whose provider is not installed has no declarations to go by: its
        values are masked when their names look secret. URLs are shown with their
        user info and secret query parameters masked.
        """
        out: dict[str, Any] = {}
        if self.globals:
            out[_GLOBAL] = {k: _show(v) for k, v in self.globals.items()}
        declared = {
            name: {f.name: f.secret for f in info.credentials}
            for name, info in (providers or {}).items()
        }
        for name, section in self.profiles.items():
            fields = declared.get(self.provider_of(name))
            out[name] = {k: _mask_field(fields, k, v) for k, v in section.items()}
        by_env = {
            env_name(profile, field): (provider, field)
            for provider, fields in declared.items()
            for profile in {*self.profiles_for(provider), *self.profiles}
            if self.provider_of(profile) == provider
            for field in (*fields, "base_url")
        }
        for key, value in sorted(self.env.items()):
            if not key.startswith("VOXHUB_") or key in {"VOXHUB_CONFIG", "VOXHUB_STORE"}:
                continue
            if key in by_env:
                provider, field = by_env[key]
                shown = _mask_field(declared[provider], field, value)
            elif key[len("VOXHUB_"):].lower() in _GLOBAL_KEYS:
                shown = _show(value)
            else:  # names no installed provider's field: go by the name
                shown = MASK if is_secret_key(key) else _show(value)
            out.setdefault("environment", {})[key] = shown
        return out


_NUMBER_KEYS = frozenset({"connect_timeout", "read_timeout", "write_timeout"})
#: ``limit_<name>`` changes the declared limit ``<name>`` (see ``voxhub._provider_limits``).
_LIMIT_PREFIX = "limit_"


def _check_limit(info: ProviderInfo, limit: Any, value: Any, profile: str) -> None:
    """A ``limit_<name>`` setting the limits will accept, else a one-line error naming it."""
    from ._provider_limits import parse_limit_setting  # here: most profiles set none
    from .errors import InvalidInputError

    try:
        parse_limit_setting(limit, value)
    except InvalidInputError as exc:
        raise ConfigurationError(f"profile [{profile}] {exc.message}", provider=info.name,
                                 details={"field": exc.field}) from None


def _type_name(value: object) -> str:
    return {dict: "a table", list: "an array", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _check_global(key: str, value: Any, where: str) -> None:
    """A ``[voxhub]`` setting of the right type: text, or a positive number of seconds."""
    if key in _NUMBER_KEYS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigurationError(
                f"{where} must be a number of seconds, not {_type_name(value)}",
                details={"field": key},
            )
        if not 0 < value < float("inf"):
            raise ConfigurationError(
                f"{where} must be a positive number of seconds", details={"field": key}
            )
    elif not isinstance(value, str):
        raise ConfigurationError(
            f"{where} must be a string, not {_type_name(value)}", details={"field": key}
        )


def _show(value: Any) -> Any:
    """A non-secret value as ``config show`` prints it (URLs lose their credentials)."""
    return mask_url(value) if isinstance(value, str) and "://" in value else value


def _mask_field(fields: Mapping[str, bool] | None, key: str, value: Any) -> Any:
    # A provider that is not installed declares nothing: only the name can tell.
    secret = is_secret_key(key) if fields is None else fields.get(key, False)
    return MASK if secret and value not in (None, "") else _show(value)
