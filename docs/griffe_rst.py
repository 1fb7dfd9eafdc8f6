"""A Griffe extension for the API reference: reads voxhub's reStructuredText-flavoured docstrings.

voxhub's docstrings use a few Sphinx conventions that Markdown does not know.
This extension rewrites them, only for the documentation site (the code is
untouched), before mkdocstrings renders them:

* roles — ``:class:`~voxhub.redact.Secret``` becomes ```Secret``` (a code span; the
  ``~`` keeps the last name only, as in Sphinx);
* literal-block markers — a paragraph ending in ``::`` ends in ``:``, and the indented
  block after it stays a code block;
* field lists written as a name in double backticks followed by an indented
  description become bullet items.

Loaded from ``mkdocs.yml`` (``extensions: [docs/griffe_rst.py]``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|data|mod|exc|obj|const):`(~?)([^`]+)`")
_LITERAL = re.compile(r"(?<=\S)::$", re.MULTILINE)
_TERM = re.compile(r"^``([^`]+)``$")


def _role(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def _terms(text: str) -> str:
    """``term`` + indented description lines -> ``- ``term``: description``."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _TERM.match(lines[i])
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if match and following.startswith("    ") and following.strip():
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].startswith("    ") and lines[i].strip():
                body.append(lines[i].strip())
                i += 1
            out.append(f"- ``{match.group(1)}``: " + " ".join(body))
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def markdownify(text: str) -> str:
    """The docstring ``text`` with its reStructuredText conventions turned into Markdown."""
    text = _ROLE.sub(_role, text)
    text = _LITERAL.sub(":", text)
    return _terms(text)


class RstToMarkdown(griffe.Extension):
    """Rewrites every loaded object's docstring with :func:`markdownify`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdownify(obj.docstring.value)
