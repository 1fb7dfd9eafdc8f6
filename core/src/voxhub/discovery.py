"""Finding the installed plugins: the ``voxhub`` entry points of the distributions on ``sys.path``.

Why not :func:`importlib.metadata.entry_points`: importing :mod:`importlib.metadata`
(with the email parser it needs for metadata) and reading every distribution's
metadata cost about 25 ms, a fifth of ``voxhub --help``. This module reads the
same files directly — each ``*.dist-info``/``*.egg-info`` directory's
``entry_points.txt``, and the name and version headers of the few distributions
that declare the group — following importlib.metadata's rules: ``sys.path`` in
order, the first distribution of a (normalized) name wins.

Where those rules are not enough — an archive on ``sys.path``, or a custom
metadata finder on ``sys.meta_path`` — it asks :mod:`importlib.metadata` instead.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

__all__ = ["EntryPoint", "entry_points"]

_SEPARATORS = re.compile(r"[-_.]+")


@attrs.frozen
class EntryPoint:
    """One entry point: ``name = value`` in ``group``, offered by ``distribution``."""

    name: str
    value: str
    distribution: str | None = None
    version: str | None = None

    def load(self) -> Any:
        """Import the module the value names (``module`` or ``module:attribute``)."""
        target, _, attribute = self.value.partition(":")
        loaded: Any = importlib.import_module(target.strip())
        # "module:attr [extra]" names extras after the attribute; they do not matter here.
        for part in attribute.split("[", 1)[0].strip().split(".") if attribute else ():
            loaded = getattr(loaded, part)
        return loaded


def entry_points(group: str, path: Sequence[str] | None = None) -> list[EntryPoint]:
    """Every entry point of ``group`` in the distributions found on ``path`` (``sys.path``)."""
    search = list(sys.path if path is None else path)
    if _needs_importlib(search):
        return _from_importlib(group, search)
    found: list[EntryPoint] = []
    seen: set[str] = set()
    for entry in search:
        try:
            children = list(Path(entry or ".").iterdir())
        except OSError:
            continue
        for meta in children:
            stem, _, suffix = meta.name.rpartition(".")
            if suffix not in ("dist-info", "egg-info") or not stem:
                continue
            key = _SEPARATORS.sub("_", stem.partition("-")[0]).lower()
            if key in seen:  # shadowed by an earlier path entry, as importlib.metadata does
                continue
            seen.add(key)
            declared = _section(_read(meta / "entry_points.txt"), group)
            if declared:
                name, version = _name_and_version(meta, suffix, stem)
                found += [EntryPoint(n, v, name, version) for n, v in declared]
    return found


def _needs_importlib(search: Iterable[str]) -> bool:
    if any(Path(entry).is_file() for entry in search if entry):  # zip archives
        return True
    return any(
        finder is not importlib.machinery.PathFinder
        and callable(getattr(finder, "find_distributions", None))
        for finder in sys.meta_path
    )


def _from_importlib(group: str, search: list[str]) -> list[EntryPoint]:
    import importlib.metadata

    found: list[EntryPoint] = []
    seen: set[str] = set()
    # The same path as the fast scan (not always sys.path); an earlier distribution of a
    # name shadows later ones, as importlib.metadata.entry_points does.
    for dist in importlib.metadata.distributions(path=search):
        name = dist.metadata["Name"] or ""
        key = _SEPARATORS.sub("_", name).lower()
        if key in seen:
            continue
        seen.add(key)
        found += [
            EntryPoint(ep.name, ep.value, dist.name, dist.version)
            for ep in dist.entry_points
            if ep.group == group
        ]
    return found


def _read(file: Path) -> str | None:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _section(text: str | None, group: str) -> list[tuple[str, str]]:
    """``name = value`` pairs of ``[group]`` in an ``entry_points.txt``."""
    pairs: list[tuple[str, str]] = []
    current = None
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == group and "=" in line:
            name, _, value = line.partition("=")
            pairs.append((name.strip(), value.strip()))
    return pairs


def _name_and_version(meta: Path, suffix: str, stem: str) -> tuple[str, str | None]:
    """The ``Name`` and ``Version`` headers of the distribution's metadata file."""
    name, _, version = stem.partition("-")
    headers: dict[str, str] = {}
    text = _read(meta / ("METADATA" if suffix == "dist-info" else "PKG-INFO"))
    for line in (text or "").splitlines():
        if not line.strip():
            break  # the headers end at the first empty line
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version") and key not in headers:
            headers[key] = value.strip()
    return headers.get("Name", name), headers.get("Version", version or None)
