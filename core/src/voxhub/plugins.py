"""Finding, loading and routing to plugins.

Plugins are distributions with an entry point in the ``voxhub`` group, e.g.::

    [project.entry-points.voxhub]
    revai = "voxhub_revai.plugin"

Loading is cheap: a provider declared by ``ProviderInfo.entry`` is imported, built
and registered with pluggy only on its first use (:meth:`PluginManager.calls`,
:attr:`ProviderEntry.provider`), so ``voxhub providers`` imports no provider code.

Loading rules:

* ``VOXHUB_LOAD_PLUGINS`` (comma list of distribution names) limits what is
  loaded; set but empty means none. Unset means every installed plugin.
* A plugin that fails to import, or whose hook implementations match no
  specification (a misspelt hook), is skipped and reported in
  :attr:`PluginManager.failures` (shown by ``voxhub providers``); the others load.
* ``VOXHUB_TRACE_PLUGINS=1`` logs every hook call with its arguments and result.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .calls import ProviderCalls
from .discovery import entry_points
from .errors import ConfigurationError, PluginError
from .lazy import load_entry
from .provider import ProviderInfo
from .sandbox import SandboxSpec

__all__ = ["PluginFailure", "PluginManager", "ProviderEntry"]

ENTRY_POINT_GROUP = "voxhub"


def _log() -> Any:
    # structlog is imported only when something is logged: listing providers logs
    # nothing, and importing structlog costs more than the rest of the listing.
    import structlog

    from .logging_setup import ensure_default_logging

    ensure_default_logging()
    return structlog.get_logger("voxhub.plugins")


@attrs.frozen
class PluginFailure:
    """A plugin that could not be loaded, and why (shown to users, never raised)."""

    name: str
    distribution: str | None
    error: str


class ProviderEntry:
    """A provider a plugin offers: its metadata at once, its code on first use.

    :attr:`provider` is the provider object (a :class:`~voxhub.provider.Provider`
    or any object with the same hook implementations). For a provider declared by
    ``ProviderInfo.entry`` it is imported, built and registered with pluggy the
    first time it is read; a failure is a :class:`PluginError` naming the provider
    and the entry, raised on every later use too.
    """

    __slots__ = ("_error", "_load", "_provider", "distribution", "info", "plugin", "version")

    def __init__(
        self,
        info: ProviderInfo,
        plugin: str,
        distribution: str | None,
        version: str | None,
        *,
        provider: Any = None,
        load: Callable[[ProviderEntry], Any] | None = None,
    ) -> None:
        self.info = info
        self.plugin = plugin
        self.distribution = distribution
        self.version = version
        self._provider = provider
        self._load = load
        self._error: str | None = None

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def loaded(self) -> bool:
        """Whether the provider's code has been imported and registered."""
        return self._provider is not None

    @property
    def provider(self) -> Any:
        """The provider object, imported and registered now if it was not yet."""
        if self._provider is None:
            if self._load is None:
                raise PluginError(
                    f"provider {self.name!r} has no code to load",
                    provider=self.name,
                    operation="load",
                )
            self._load(self)
        return self._provider

    def __repr__(self) -> str:
        where = self.distribution or self.plugin
        state = "loaded" if self.loaded else f"lazy {self.info.entry}"
        return f"<ProviderEntry {self.name} from {where} ({state})>"


class PluginManager:
    """The pluggy manager plus the registry of providers and sandboxes.

    Lifecycle calls go through :meth:`calls`, which invokes the hook with every
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
        self._load_lock = threading.Lock()
        # Bumped whenever a provider object is registered or removed: routed hook
        # callers built before then rebuild, so a provider loaded later never
        # answers for another one.
        self._generation = 0

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
        for ep in entry_points(ENTRY_POINT_GROUP):
            dist, version = ep.distribution, ep.version
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
        _log().warning("plugin.failed", plugin=name, distribution=dist, error=error)

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
                for offered in result or ():
                    added.append(self._add_provider(offered, name, distribution, version))
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
        self, offered: Any, plugin: str, dist: str | None, version: str | None
    ) -> str:
        """Record one item ``register_providers`` returned; returns its provider name."""
        if isinstance(offered, ProviderInfo):
            if offered.entry is None:
                raise PluginError(
                    f"register_providers returned ProviderInfo {offered.name!r} without "
                    "entry='package.module:Class' (or return a provider instance)",
                    provider=offered.name,
                    operation="load",
                )
            info, provider = offered, None
        else:
            declared = getattr(offered, "info", None)
            if not isinstance(declared, ProviderInfo):
                raise PluginError(f"{offered!r} has no ProviderInfo in .info", operation="load")
            info, provider = declared, offered
        if info.name in self.providers:
            other = self.providers[info.name]
            raise PluginError(
                f"provider {info.name!r} is already offered by "
                f"{other.distribution or other.plugin}",
                provider=info.name,
                operation="load",
            )
        if provider is not None:
            self._register_provider(provider, info.name)
        self.providers[info.name] = ProviderEntry(
            info, plugin, dist, version, provider=provider, load=self._load_provider
        )
        return info.name

    def _register_provider(self, provider: Any, name: str) -> None:
        self.pm.register(provider, name=f"provider:{name}")
        self._generation += 1
        try:
            _check_names(self.pm, provider, name)
        except PluginError:
            self._unregister(provider)
            raise

    def _load_provider(self, entry: ProviderEntry) -> None:
        """Import, build and register a provider declared by ``ProviderInfo.entry``."""
        name, target = entry.info.name, entry.info.entry
        with self._load_lock:  # two threads' first calls build one provider
            if entry._provider is not None:
                return
            if entry._error is None:
                try:
                    provider = load_entry(str(target))()
                    _check_declared(provider, entry.info)
                    self._register_provider(provider, name)
                except Exception as exc:  # noqa: BLE001 - named below, raised on every use
                    entry._error = f"{type(exc).__name__}: {exc}"
                else:
                    entry._provider = provider
                    return
        raise PluginError(
            f"provider {name!r} failed to load from {target!r}: {entry._error}",
            provider=name,
            operation="load",
        )

    def _remove_provider(self, name: str) -> None:
        entry = self.providers.pop(name, None)
        if entry is not None and entry.loaded:
            self._unregister(entry._provider)
            self._generation += 1

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
            # Unknown or failed providers are named here; a lazy one is loaded now.
            _loaded = self.provider(provider).provider
            calls = self._calls[provider] = ProviderCalls(
                provider, lambda hook: self._hook_caller(provider, hook)
            )
        return calls

    def _hook_caller(self, provider: str, hook: str) -> Callable[..., Any]:
        return _RoutedCaller(self, provider, hook)

    def _route(self, provider: str, hook: str) -> Any:
        """pluggy's caller of ``hook`` with every other *loaded* provider removed."""
        target = self.provider(provider).provider  # loads the provider on first use
        others = [e._provider for n, e in self.providers.items() if n != provider and e.loaded]
        caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
        if not any(impl.plugin is target for impl in caller.get_hookimpls()):
            raise PluginError(
                f"provider {provider!r} does not implement {hook!r}",
                provider=provider,
                operation=hook,
            )
        return caller

    def implements(self, provider: str, hook: str) -> bool:
        """Whether ``provider`` has its own implementation of lifecycle ``hook``."""
        target = self.provider(provider).provider
        return any(impl.plugin is target for impl in getattr(self.pm.hook, hook).get_hookimpls())

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Broadcast an event hook; an observer's exception is logged, never raised."""
        try:
            getattr(self.pm.hook, hook)(**kwargs)
        except Exception as exc:  # noqa: BLE001 - observers must not break jobs
            _log().warning("plugin.event_failed", hook=hook, error=f"{type(exc).__name__}: {exc}")

    def sandbox(self, name: str) -> SandboxSpec:
        """The sandbox offered for provider ``name`` (its class is not imported yet)."""
        spec = self.sandboxes.get(name)
        if spec is None:
            known = ", ".join(sorted(self.sandboxes)) or "none installed"
            raise ConfigurationError(f"no sandbox for {name!r} (installed: {known})")
        return spec

    def register_commands(self, cli: Any) -> None:
        """Let every plugin add CLI subcommands; a failing one is reported, not fatal.

        Plugins add :class:`voxhub.cli.LazyCommand` objects, so this imports no
        command code (see :func:`voxhub.hookspecs.register_commands`).
        """
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
        import structlog

        from .logging_setup import ensure_default_logging
        from .redact import redact

        ensure_default_logging()
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


def _check_declared(provider: object, declared: ProviderInfo) -> None:
    """A lazily loaded provider must be the one its metadata announced."""
    info = getattr(provider, "info", None)
    if not isinstance(info, ProviderInfo):
        raise TypeError(f"{type(provider).__name__} has no ProviderInfo in .info")
    if attrs.evolve(info, entry=declared.entry) != declared:
        raise TypeError(
            f"{type(provider).__name__}.info ({info.name!r}) differs from the ProviderInfo "
            "register_providers declared: declare one object and use it in both places"
        )


class _RoutedCaller:
    """One provider's caller of one hook (what :class:`ProviderCalls` calls).

    pluggy's subset caller is built against the providers registered at the time;
    when another provider is loaded later it is rebuilt, so that one can never
    answer for this one.
    """

    __slots__ = ("_caller", "_generation", "_hook", "_manager", "_provider")

    def __init__(self, manager: PluginManager, provider: str, hook: str) -> None:
        self._manager, self._provider, self._hook = manager, provider, hook
        self._caller = manager._route(provider, hook)
        self._generation = manager._generation

    def __call__(self, **kwargs: Any) -> Any:
        manager = self._manager
        if self._generation != manager._generation:
            self._caller = manager._route(self._provider, self._hook)
            self._generation = manager._generation
        return self._caller(**kwargs)
