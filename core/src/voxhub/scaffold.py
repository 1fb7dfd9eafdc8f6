"""``voxhub plugin new NAME``: generate a provider plugin distribution to edit.

The generated ``voxhub-NAME/`` is a complete, working plugin — packaging with the
``voxhub`` entry point, a provider of a small fictional job API, the sandbox that
emulates that API, and tests (voxhub's conformance suite plus vendor-specific
ones) that pass straight away. A plugin author replaces the fictional API with
their vendor's, keeping the tests green.

The template lives in ``voxhub/templates/plugin/`` as ``*.tmpl`` files (package
data, so tools never mistake them for code). Their text is filled in with
:class:`string.Template` (``$name``, ``${cls}``...: see :meth:`PluginNames.values`;
a literal dollar is ``$$``). In paths, a ``__module__`` directory becomes the
module name, ``.tmpl`` is dropped and a ``dot-`` prefix becomes ``.``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

import attrs

from . import __version__
from .errors import VoxhubError

__all__ = [
    "MAX_NAME_LENGTH",
    "PluginNames",
    "ScaffoldError",
    "new_plugin",
    "next_steps",
    "plugin_names",
    "render_plugin",
]

TEMPLATE_SUFFIX = ".tmpl"
MODULE_PLACEHOLDER = "__module__"
DOT_PREFIX = "dot-"
#: Longest accepted plugin name (keeps generated lines within the linters' limit).
MAX_NAME_LENGTH = 32
_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


class ScaffoldError(VoxhubError):
    """A plugin cannot be generated as asked: an invalid name or an existing directory."""

    exit_code = 2


@attrs.frozen
class PluginNames:
    """Every name derived from a plugin name such as ``acme-speech``."""

    name: str

    @property
    def distribution(self) -> str:
        """``voxhub-acme-speech``: the package name on PyPI."""
        return f"voxhub-{self.name}"

    @property
    def module(self) -> str:
        """``voxhub_acme_speech``: the import name."""
        return "voxhub_" + self.name.replace("-", "_")

    @property
    def class_prefix(self) -> str:
        """``AcmeSpeech``: the start of the generated class names."""
        return "".join(part.capitalize() for part in self.name.split("-"))

    @property
    def title(self) -> str:
        """``Acme Speech``: the vendor's name in prose."""
        return " ".join(part.capitalize() for part in self.name.split("-"))

    @property
    def env(self) -> str:
        """``ACME_SPEECH``: the profile part of ``VOXHUB_ACME_SPEECH_API_KEY``."""
        return self.name.upper().replace("-", "_")

    def values(self) -> dict[str, str]:
        """The template variables."""
        major_minor = ".".join(__version__.split(".")[:2])
        return {
            "name": self.name,
            "dist": self.distribution,
            "module": self.module,
            "cls": self.class_prefix,
            "title": self.title,
            "env": self.env,
            "voxhub_requirement": f">={major_minor}",
        }


def plugin_names(name: str) -> PluginNames:
    """Check a plugin name (the provider's name, e.g. ``acme``) and derive the others."""
    if not name:
        raise ScaffoldError("the plugin name is empty: give the provider's name, e.g. acme")
    lowered = name.lower()
    for prefix in ("voxhub-", "voxhub_"):
        if lowered.startswith(prefix) and len(name) > len(prefix):
            rest = name[len(prefix) :]
            raise ScaffoldError(
                f"give the name without the {prefix!r} prefix: {rest!r} "
                f"generates the distribution voxhub-{rest}"
            )
    if len(name) > MAX_NAME_LENGTH:
        raise ScaffoldError(
            f"the plugin name {name!r} is {len(name)} characters long; "
            f"at most {MAX_NAME_LENGTH} are allowed"
        )
    if not _NAME.fullmatch(name):
        suggestion = re.sub(r"[^a-z0-9]+", "-", lowered).strip("-").lstrip("0123456789-")
        hint = f" (try {suggestion!r})" if _NAME.fullmatch(suggestion) else ""
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use lower-case letters, digits and single "
            f"dashes, starting with a letter, e.g. acme or acme-speech{hint}"
        )
    return PluginNames(name)


def _templates() -> Traversable:
    return files("voxhub") / "templates" / "plugin"


def _walk(node: Traversable, where: PurePosixPath) -> Iterator[tuple[PurePosixPath, Traversable]]:
    for child in sorted(node.iterdir(), key=lambda t: t.name):
        if child.is_dir():
            if child.name != "__pycache__":
                yield from _walk(child, where / child.name)
        elif child.name.endswith(TEMPLATE_SUFFIX):
            yield where / child.name, child


def _output_path(template: PurePosixPath, names: PluginNames) -> PurePosixPath:
    parts = [names.module if part == MODULE_PLACEHOLDER else part for part in template.parts]
    last = parts[-1].removesuffix(TEMPLATE_SUFFIX)
    if last.startswith(DOT_PREFIX):
        last = "." + last.removeprefix(DOT_PREFIX)
    return PurePosixPath(*parts[:-1], last)


def render_plugin(name: str) -> dict[PurePosixPath, str]:
    """The generated files of plugin ``name``: relative path -> text."""
    names = plugin_names(name)
    values = names.values()
    rendered: dict[PurePosixPath, str] = {}
    for template, node in _walk(_templates(), PurePosixPath()):
        try:
            text = string.Template(node.read_text(encoding="utf-8")).substitute(values)
        except (KeyError, ValueError) as exc:  # a broken template is a bug in voxhub
            raise RuntimeError(f"plugin template {template}: bad placeholder {exc}") from exc
        rendered[_output_path(template, names)] = text
    if not rendered:
        raise RuntimeError("the plugin template is missing from this voxhub installation")
    return rendered


def new_plugin(name: str, directory: str | Path = ".", *, force: bool = False) -> Path:
    """Write ``DIRECTORY/voxhub-NAME/`` and return its path.

    An existing target is refused unless ``force``, which overwrites the generated
    files and leaves any other file in place.
    """
    names = plugin_names(name)
    rendered = render_plugin(name)
    target = Path(directory) / names.distribution
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise ScaffoldError(f"{target} exists and is not a directory")
        if not force:
            raise ScaffoldError(
                f"{target} already exists: choose another --dir, or use --force "
                "to overwrite the generated files in it"
            )
    for relative, text in rendered.items():
        path = target.joinpath(*relative.parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
        except OSError as exc:
            raise ScaffoldError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return target


def _shell_path(path: Path) -> str:
    text = path.as_posix()
    return text if path.is_absolute() else f"./{text}"


def next_steps(target: Path, name: str) -> str:
    """What ``voxhub plugin new`` prints after writing ``target``."""
    names = plugin_names(name)
    where = _shell_path(target)
    src = f"src/{names.module}"
    return "\n".join(
        [
            f"created {where}/ (provider {names.name!r}, module {names.module})",
            "",
            "next:",
            f'  pip install -e "{where}[test]"',
            f"  cd {where} && pytest            # the conformance suite, against the sandbox",
            f"  voxhub sandbox {names.name}",
            "",
            f"then replace the fictional API in {src}/provider.py and {src}/sandbox.py",
            "with your vendor's, keeping the tests green (README.md says what to edit).",
        ]
    )
