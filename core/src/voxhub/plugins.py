"""Finding, loading and routing to plugins.

Plugins are distributions with an entry point in the ``voxhub`` group, e.g.::

    [project.entry-points.voxhub]
    revai = "voxhub_revai.plugin"

Loading rules:

* ``VOXHUB_LOAD_PLUGINS`` (comma list of distribution names) limits what is
  loaded; set but empty means none. Unset means every installed plugin.
* A plugin that fails to import, or whose hook implementations match no
  specification (a misspelt hook), is skipped and reported in
  :attr:`PluginManager.failures` (shown by ``voxhub providers``); the others load.
* ``VOXHUB_TRACE_PLUGINS=1`` logs every hook call with its arguments and result.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import pluggy
import structlog

from . import hookspecs
from .calls import ProviderCalls
from .errors import ConfigurationError, PluginError
from .provider import Provider, ProviderInfo
from .sandbox import SandboxSpec

__all__ = ["PluginFailure", "PluginManager", "ProviderEntry"]

log = structlog.get_logger("voxhub.plugins")

ENTRY_POINT_GROUP = "voxhub"


@attrs.frozen
class PluginFailure:
    """A plugin that could not be loaded, and why (shown to users, never raised)."""

    name: str
    distribution: str | None
    error: str


@attrs.frozen
class ProviderEntry:
    """A loaded provider with where it came from."""

    provider: Any  # a voxhub.Provider (or an object with the same hook implementations)
    info: ProviderInfo
    plugin: str
    distribution: str | None
    version: str | None


class PluginManager:
    """The pluggy manager plus the registry of providers and sandboxes.

    Lifecycle calls go through :meth:`call`, which invokes the hook with every
    *other* provider removed: exactly one provider answers, and observer
    wrappers registered by any plugin see the call.
    """

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.providers: dict[str, ProviderEntry] = {}
        self.sandboxes: dict[str, SandboxSpec] = {}
        self.failures: list[PluginFailure] = []
        self._calls: dict[str, ProviderCalls] = {}
        self._undo_trace: Any = None

    # --- loading --------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        *,
        env: Mapping[str, str] | None = None,
        extra: Iterable[tuple[str, object]] = (),
    ) -> PluginManager:
        """Load installed plugins (as limited by the environment) plus ``extra`` objects."""
        env = os.environ if env is None else env
        manager = cls()
        allowed: set[str] | None = None
        raw = env.get("VOXHUB_LOAD_PLUGINS")
        if raw is not None:
            allowed = {_norm(p) for p in raw.split(",") if p.strip()}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            if allowed is not None and _norm(dist or ep.name) not in allowed:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the others
                manager._fail(ep.name, dist, f"import failed: {type(exc).__name__}: {exc}")
                continue
            manager.add_plugin(module, name=ep.name, distribution=dist, version=version)
        for name, obj in extra:
            manager.add_plugin(obj, name=name, distribution=None, version=None)
        if env.get("VOXHUB_TRACE_PLUGINS", "") not in {"", "0", "false"}:
            manager.enable_tracing()
        return manager

    def _fail(self, name: str, dist: str | None, error: str) -> None:
        self.failures.append(PluginFailure(name, dist, error))
        log.warning("plugin.failed", plugin=name, distribution=dist, error=error)

    def add_plugin(
        self,
        plugin: object,
        *,
        name: str,
        distribution: str | None = None,
        version: str | None = None,
    ) -> bool:
        """Register one plugin object (module or instance) and the providers it declares.

        Returns False (and records a failure) when the plugin breaks the contract.
        """
        if self.pm.has_plugin(name):
            self._fail(name, distribution, "a plugin with this name is already loaded")
            return False
        try:
            self.pm.register(plugin, name=name)
            _check_names(self.pm, plugin, name)
        except (pluggy.PluginValidationError, PluginError) as exc:
            self._unregister(plugin)
            self._fail(name, distribution, f"invalid hook implementation: {exc}")
            return False
        added: list[str] = []
        try:
            for result in _call_registration(self.pm, plugin, "register_providers"):
                for provider in result or ():
                    self._add_provider(provider, name, distribution, version)
                    added.append(provider.info.name)
            for result in _call_registration(self.pm, plugin, "register_sandboxes"):
                for spec in result or ():
                    self.sandboxes[spec.provider] = spec
        except (PluginError, pluggy.PluginValidationError) as exc:
            for pname in added:
                self._remove_provider(pname)
            self._unregister(plugin)
            self._fail(name, distribution, str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the others
            for pname in added:
                self._remove_provider(pname)
            self._unregister(plugin)
            self._fail(name, distribution, f"registration failed: {type(exc).__name__}: {exc}")
            return False
        self._calls.clear()
        return True

    def _add_provider(
        self, provider: Any, plugin: str, dist: str | None, version: str | None
    ) -> None:
        info = getattr(provider, "info", None)
        if not isinstance(info, ProviderInfo):
            raise PluginError(f"{provider!r} has no ProviderInfo in .info", operation="load")
        if info.name in self.providers:
            other = self.providers[info.name]
            raise PluginError(
                f"provider {info.name!r} is already offered by "
                f"{other.distribution or other.plugin}",
                provider=info.name,
                operation="load",
            )
        self.pm.register(provider, name=f"provider:{info.name}")
        _check_names(self.pm, provider, info.name)
        self.providers[info.name] = ProviderEntry(provider, info, plugin, dist, version)

    def _remove_provider(self, name: str) -> None:
        entry = self.providers.pop(name, None)
        if entry is not None:
            self._unregister(entry.provider)

    def _unregister(self, plugin: object) -> None:
        if self.pm.is_registered(plugin):
            self.pm.unregister(plugin)

    # --- lookup and routing -----------------------------------------------------------

    def provider(self, name: str) -> ProviderEntry:
        try:
            return self.providers[name]
        except KeyError:
            failed = next((f for f in self.failures if f.name == name), None)
            if failed is not None:
                raise ConfigurationError(
                    f"provider {name!r} failed to load: {failed.error}"
                ) from None
            known = ", ".join(sorted(self.providers)) or "none installed"
            raise ConfigurationError(
                f"unknown provider {name!r} (installed: {known}); "
                f"install the plugin, e.g. pip install voxhub-{name.split('-')[0]}"
            ) from None

    def calls(self, provider: str) -> ProviderCalls:
        """The typed caller of ``provider``'s lifecycle hooks (observer wrappers included)."""
        calls = self._calls.get(provider)
        if calls is None:
            self.provider(provider)  # unknown or failed providers are named here
            calls = self._calls[provider] = ProviderCalls(
                provider, lambda hook: self._hook_caller(provider, hook)
            )
        return calls

    def _hook_caller(self, provider: str, hook: str) -> Any:
        target = self.provider(provider).provider
        others = [e.provider for n, e in self.providers.items() if n != provider]
        caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
        if not any(impl.plugin is target for impl in caller.get_hookimpls()):
            raise PluginError(
                f"provider {provider!r} does not implement {hook!r}",
                provider=provider,
                operation=hook,
            )
        return caller

    def call(self, provider: str, hook: str, **kwargs: Any) -> Any:
        """Call lifecycle ``hook`` on ``provider`` by name (prefer the typed :meth:`calls`)."""
        return self.calls(provider)._call(hook, **kwargs)

    def implements(self, provider: str, hook: str) -> bool:
        """Whether ``provider`` has its own implementation of lifecycle ``hook``."""
        target = self.provider(provider).provider
        return any(impl.plugin is target for impl in getattr(self.pm.hook, hook).get_hookimpls())

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Broadcast an event hook; an observer's exception is logged, never raised."""
        try:
            getattr(self.pm.hook, hook)(**kwargs)
        except Exception as exc:  # noqa: BLE001 - observers must not break jobs
            log.warning("plugin.event_failed", hook=hook, error=f"{type(exc).__name__}: {exc}")

    def register_commands(self, cli: Any) -> None:
        """Let every plugin add CLI subcommands; a failing one is reported, not fatal."""
        for name, plugin in list(self.pm.list_name_plugin()):
            impls = [
                i for i in self.pm.hook.register_commands.get_hookimpls() if i.plugin is plugin
            ]
            for impl in impls:
                try:
                    impl.function(cli=cli)
                except Exception as exc:  # noqa: BLE001
                    self._fail(name, None, f"register_commands failed: {exc}")

    def enable_tracing(self) -> None:
        """Log every hook call (``VOXHUB_TRACE_PLUGINS=1``); arguments are redacted."""
        from .redact import redact

        tracer = structlog.get_logger("voxhub.trace")

        def before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
            tracer.info(
                "hook.call",
                hook=hook_name,
                impls=[i.plugin_name for i in impls],
                kwargs={k: redact(repr(v)) for k, v in kwargs.items()},
            )

        def after(outcome: Any, hook_name: str, impls: Sequence[Any], kwargs: Any) -> None:
            exc = outcome.exception
            tracer.info(
                "hook.return",
                hook=hook_name,
                result=None if exc else redact(repr(outcome.get_result())[:200]),
                error=None if exc is None else type(exc).__name__,
            )

        self._undo_trace = self.pm.add_hookcall_monitoring(before, after)

    def list_plugins(self) -> list[dict[str, Any]]:
        """Every loaded provider and every failure, for ``voxhub providers``."""
        rows: list[dict[str, Any]] = []
        for name, entry in sorted(self.providers.items()):
            rows.append(
                {
                    "provider": name,
                    "distribution": entry.distribution,
                    "version": entry.version,
                    "kinds": sorted(k.value for k in entry.info.kinds),
                    "capabilities": sorted(c.value for c in entry.info.capabilities),
                    "sandbox": name in self.sandboxes,
                    "description": entry.info.description,
                    "error": None,
                }
            )
        for failure in self.failures:
            rows.append(
                {
                    "provider": None,
                    "plugin": failure.name,
                    "distribution": failure.distribution,
                    "version": None,
                    "kinds": [],
                    "capabilities": [],
                    "sandbox": False,
                    "description": "",
                    "error": failure.error,
                }
            )
        return rows


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _check_names(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Refuse hook implementations whose names match no specification (misspellings)."""
    for hook_caller in pm.get_hookcallers(plugin) or []:
        if hook_caller.spec is None:
            raise PluginError(
                f"{name}: {hook_caller.name!r} is not a voxhub hook "
                f"(known: {', '.join(sorted(_spec_names()))})",
                operation="load",
            )


def _spec_names() -> list[str]:
    return [n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "voxhub_spec")]


def _call_registration(pm: pluggy.PluginManager, plugin: object, hook: str) -> list[Any]:
    impls = [i for i in getattr(pm.hook, hook).get_hookimpls() if i.plugin is plugin]
    return [impl.function() for impl in impls]


__all__ += ["Provider"]
