"""structlog set-up for voxhub: console or JSON lines, with secrets redacted.

Every event passes through :func:`redact_processor` last, so a secret logged
by mistake by a plugin (or a vendor echoing one back) is still masked.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from .redact import redact

__all__ = ["configure_logging", "ensure_default_logging", "redact_processor"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask secret-looking keys and every registered secret value in a log event."""
    return redact(dict(event_dict))  # type: ignore[no-any-return]


def configure_logging(
    level: str = "warning", fmt: str = "console", stream: TextIO | None = None
) -> None:
    """Configure structlog for the CLI or an embedding app (``fmt``: console or json)."""
    numeric = _LEVELS.get(level.lower())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r} (choose from {', '.join(_LEVELS)})")
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    elif fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        raise ValueError(f"unknown log format {fmt!r} (choose console or json)")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def ensure_default_logging() -> None:
    """Give voxhub quiet defaults (warnings and up, redacted, on stderr) unless the
    application already configured structlog — then its configuration is kept."""
    if not structlog.is_configured():
        configure_logging("warning", "console")
