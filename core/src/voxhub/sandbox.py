"""Vendor emulators ("sandboxes"): how a plugin offers one, and where the rest lives.

* :class:`SandboxSpec` (here) — what ``register_sandboxes`` returns; the emulator
  class is named by a ``"module:Class"`` string and imported only when it starts,
  so listing sandboxes costs no import of werkzeug or of the plugin's emulator;
* :mod:`voxhub.sandbox_kit` — building an emulator (routes, faults, scripted
  answers, counters, timers, media facts, callbacks);
* :mod:`voxhub.sandbox_server` — running one (:func:`serve`, :class:`SandboxProcess`).

The names of those two modules are also importable from here, loaded on first use.
Sandboxes listen on loopback only; nothing here reaches the outside world.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from .errors import PluginError
from .lazy import check_entry, lazy_exports, load_entry

if TYPE_CHECKING:
    from .sandbox_kit import CallbackSender, Counters, FaultPlan, Sandbox, ScriptedAnswer
    from .sandbox_server import QuietRequestHandler, RunningSandbox, SandboxProcess, serve

__all__ = [
    "CallbackSender",
    "Counters",
    "FaultPlan",
    "QuietRequestHandler",
    "RunningSandbox",
    "Sandbox",
    "SandboxProcess",
    "SandboxSpec",
    "ScriptedAnswer",
    "serve",
]

__getattr__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(
            ("CallbackSender", "Counters", "FaultPlan", "Sandbox", "ScriptedAnswer"),
            "voxhub.sandbox_kit",
        ),
        **dict.fromkeys(
            ("QuietRequestHandler", "RunningSandbox", "SandboxProcess", "serve"),
            "voxhub.sandbox_server",
        ),
    },
)


def _check_factory(_instance: Any, _attribute: Any, value: Any) -> None:
    if isinstance(value, str):
        check_entry(value, field="SandboxSpec.factory")
    elif not callable(value):
        raise ValueError(
            f"SandboxSpec.factory must be a 'module:Class' string or a callable, got {value!r}"
        )


@attrs.frozen
class SandboxSpec:
    """How a plugin offers a sandbox: the provider it emulates and its emulator class.

    ``factory`` is preferably a ``"package.module:Class"`` string, imported only by
    :meth:`create`; a class or callable works too (imported with the plugin). It is
    called with ``faults=`` (a :class:`FaultPlan` or ``None``) and the emulator's
    own settings as keywords (``voxhub sandbox --option``).
    """

    provider: str
    factory: Callable[..., Sandbox] | str = attrs.field(validator=_check_factory)
    description: str = ""

    def create(self, *, faults: FaultPlan | None = None, **options: Any) -> Sandbox:
        """Import the emulator class if it is named by a string, and build one.

        A broken plugin (the import fails, or the factory builds no
        :class:`Sandbox`) is a :class:`~voxhub.errors.PluginError` naming the sandbox.
        """
        from .logging_setup import ensure_default_logging
        from .sandbox_kit import Sandbox

        factory = self.factory
        if isinstance(factory, str):
            try:
                factory = load_entry(factory)
            except Exception as exc:
                raise PluginError(
                    f"sandbox {self.provider!r} failed to load from {self.factory!r}: "
                    f"{type(exc).__name__}: {exc}",
                    provider=self.provider,
                    operation="sandbox",
                ) from exc
        sandbox = factory(faults=faults, **options)
        if not isinstance(sandbox, Sandbox):
            raise PluginError(
                f"sandbox {self.provider!r}: {self.factory!r} built "
                f"{type(sandbox).__name__}, not a voxhub Sandbox",
                provider=self.provider,
                operation="sandbox",
            )
        ensure_default_logging()  # the server logs each request (at debug level)
        return sandbox
