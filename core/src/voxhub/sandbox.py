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

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

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

_LAZY = {
    "CallbackSender": "sandbox_kit",
    "Counters": "sandbox_kit",
    "FaultPlan": "sandbox_kit",
    "Sandbox": "sandbox_kit",
    "ScriptedAnswer": "sandbox_kit",
    "QuietRequestHandler": "sandbox_server",
    "RunningSandbox": "sandbox_server",
    "SandboxProcess": "sandbox_server",
    "serve": "sandbox_server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'voxhub.sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(f"voxhub.{module}"), name)


@attrs.frozen
class SandboxSpec:
    """How a plugin offers a sandbox: the provider it emulates and a factory."""

    provider: str
    factory: Callable[..., Sandbox]
    description: str = ""
