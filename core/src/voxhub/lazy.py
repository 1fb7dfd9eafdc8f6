"""Code named by a ``"module:attribute"`` string and imported on first use.

Plugins declare their providers, sandboxes and commands this way so that listing
them (``voxhub providers``, ``voxhub --help``) imports none of their code.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["check_entry", "lazy_exports", "load_entry"]

_ENTRY = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


def check_entry(entry: str, *, field: str) -> str:
    """``entry`` if it reads ``package.module:Name``; else a ``ValueError`` naming ``field``."""
    if not isinstance(entry, str) or not _ENTRY.fullmatch(entry):
        raise ValueError(f"{field} must read 'package.module:Name', got {entry!r}")
    return entry


def load_entry(entry: str) -> Any:
    """Import the module of ``entry`` and return the attribute it names.

    Raises whatever the import raises (``ImportError``, or the module's own error),
    and ``AttributeError`` for a missing attribute: callers name the plugin.
    """
    module_name, _, attribute = check_entry(entry, field="entry").partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def lazy_exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) importing each name from its module on first use.

    ``names`` maps an exported name to the module under ``package`` that defines it.
    A value found is kept in the module's globals, so later lookups skip the hook::

        __getattr__ = lazy_exports(__name__, {"Sandbox": "voxhub.sandbox_kit"})
    """
    import sys

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
