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
    provider = "revai"
    region = "eu"
    token = "..."

Environment variables ``VOXHUB_<PROFILE>_<FIELD>`` (upper case, ``-`` becomes
``_``) override the file, e.g. ``VOXHUB_REVAI_TOKEN``,
``VOXHUB_AGORA_STT_APP_ID``. Every provider accepts ``base_url``.
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
from .redact import MASK, Secret, is_secret_key

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
        elif explicit:
            raise ConfigurationError(f"config file {file} does not exist")
        globals_ = data.pop(_GLOBAL, {})
        unknown = set(globals_) - _GLOBAL_KEYS
        if unknown:
            raise ConfigurationError(
                f"unknown setting(s) in [{_GLOBAL}] of {file}: {', '.join(sorted(unknown))}"
            )
        profiles: dict[str, dict[str, Any]] = {}
        for name, section in data.items():
            if not isinstance(section, dict):
                raise ConfigurationError(f"{file}: {name!r} must be a table ([{name}])")
            profiles[name] = dict(section)
        return cls(path=file, globals=globals_, profiles=profiles, env=env)

    @classmethod
    def from_profiles(cls, profiles: Mapping[str, Mapping[str, Any]], **globals_: Any) -> Config:
        """A configuration built in code (tests, embedding), ignoring the environment."""
        return cls(path=None, globals=globals_, profiles={k: dict(v) for k, v in profiles.items()})

    def get(self, key: str, default: Any = None) -> Any:
        """A global setting: ``VOXHUB_<KEY>`` in the environment wins over ``[voxhub]``."""
        return self.env.get(f"VOXHUB_{key.upper()}", self.globals.get(key, default))

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
        for key in section:
            if key != "base_url" and key not in known:
                raise ConfigurationError(
                    f"unknown setting {key!r} in profile [{profile}] "
                    f"(accepted: {', '.join(['base_url', *sorted(known)])})",
                    provider=info.name,
                )
        values: dict[str, Any] = dict(section)
        for name in ("base_url", *known):
            env_value = self.env.get(env_name(profile, name))
            if env_value is not None:
                values[name] = env_value
        for name, field in known.items():
            if name in values and (field.secret or is_secret_key(name)):
                values[name] = Secret(str(values[name]))
        base_url = values.pop("base_url", None) or info.default_base_url
        return ProviderSettings(
            provider=info.name, profile=profile, base_url=base_url, values=values
        )

    def masked(self, providers: Mapping[str, ProviderInfo] | None = None) -> dict[str, Any]:
        """The whole configuration with secrets masked (``voxhub config show``).

        A value is masked when its name looks secret or when the provider of its
        profile declares that field secret (``providers`` maps names to their info).
        """
        out: dict[str, Any] = {_GLOBAL: dict(self.globals)} if self.globals else {}
        declared = {
            name: {f.name for f in info.credentials if f.secret}
            for name, info in (providers or {}).items()
        }
        for name, section in self.profiles.items():
            secret_fields = declared.get(self.provider_of(name), set())
            out[name] = {
                k: (MASK if is_secret_key(k) or k in secret_fields else v)
                for k, v in section.items()
            }
        env_secret = {
            env_name(profile, field)
            for provider, fields in declared.items()
            for profile in self.profiles_for(provider)
            for field in fields
        }
        for key, value in sorted(self.env.items()):
            if key.startswith("VOXHUB_") and key not in {"VOXHUB_CONFIG", "VOXHUB_STORE"}:
                secret = is_secret_key(key) or key in env_secret
                out.setdefault("environment", {})[key] = MASK if secret else value
        return out
