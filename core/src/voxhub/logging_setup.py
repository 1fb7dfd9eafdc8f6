"""structlog set-up for voxhub: console lines or JSON lines, with secrets redacted.

Who configures what:

* ``import voxhub`` configures nothing.
* The ``voxhub`` CLI configures structlog from ``--log-level`` / ``--log-format``
  (:func:`configure_logging`); commands that normally log nothing (``voxhub
  providers``, ``voxhub config``) only :func:`request_logging`, so that they never
  import structlog unless something does log.
* A library user who configured structlog keeps that configuration. One who did
  not gets voxhub's quiet default — warnings and errors, redacted, on stderr —
  installed by :func:`ensure_default_logging` when the first
  :class:`~voxhub.Orchestrator` is built (or a plugin fails to load).

Every event passes through :func:`redact_processor` before it is rendered, so a
secret logged by mistake by a plugin (or a vendor echoing one back) is still masked.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import MutableMapping
from typing import Any, TextIO

from .redact import redact

__all__ = [
    "configure_logging",
    "ensure_default_logging",
    "redact_processor",
    "request_logging",
]

# logging's numeric levels, spelled out so this module does not import logging.
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_FORMATS = ("console", "json")

_lock = threading.Lock()
_requested: dict[str, Any] | None = None


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask secret-looking keys and every registered secret value in a log event."""
    return redact(dict(event_dict))  # type: ignore[no-any-return]


def _console_line(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """``time [level] event key=value ...``: readable, and no rich/pygments needed."""
    event = dict(event_dict)
    head = [
        str(event.pop("timestamp", "")),
        f"[{event.pop('level', '?'):<7}]",
        str(event.pop("event", "")),
    ]
    tail = event.pop("exception", None)
    line = " ".join([*filter(None, head), *(f"{k}={v!r}" for k, v in event.items())])
    return f"{line}\n{tail}" if tail else line


def _check(level: str, fmt: str) -> int:
    numeric = _LEVELS.get(level.lower())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r} (choose from {', '.join(_LEVELS)})")
    if fmt not in _FORMATS:
        raise ValueError(f"unknown log format {fmt!r} (choose console or json)")
    return numeric


def configure_logging(
    level: str = "warning",
    fmt: str = "console",
    stream: TextIO | None = None,
    *,
    debug: bool = False,
) -> None:
    """Configure structlog for the CLI or an embedding app (``fmt``: console or json).

    ``debug`` with a console format on a terminal uses structlog's colourful
    development renderer (which loads rich); otherwise lines are plain text.
    """
    global _requested
    numeric = _check(level, fmt)
    import structlog  # here, not at module level: it costs ~80 ms with rich installed

    out = stream or sys.stderr
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    elif debug and out.isatty():
        renderer = structlog.dev.ConsoleRenderer(colors=True)
    else:
        renderer = _console_line
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if not isinstance(renderer, structlog.dev.ConsoleRenderer):
        # The development renderer draws tracebacks itself; the others need them as text.
        processors.append(structlog.processors.format_exc_info)
    structlog.configure(
        processors=[*processors, redact_processor, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    with _lock:
        _requested = None  # an explicit configuration replaces a pending request


def request_logging(
    level: str = "warning",
    fmt: str = "console",
    stream: TextIO | None = None,
    *,
    debug: bool = False,
) -> None:
    """Ask for :func:`configure_logging` with these settings the first time voxhub logs.

    Checks the settings now (a bad level is an error at once) but imports nothing:
    a command that logs nothing stays free of structlog's import cost.
    """
    global _requested
    _check(level, fmt)
    with _lock:
        _requested = {"level": level, "fmt": fmt, "stream": stream, "debug": debug}


def ensure_default_logging() -> None:
    """Make sure voxhub's log events go somewhere sane; called before voxhub first logs.

    Applies a configuration asked for with :func:`request_logging`; else keeps the
    application's structlog configuration if it made one; else installs voxhub's
    quiet default: warnings and errors, redacted, as plain lines on stderr.
    """
    global _requested
    with _lock:
        requested, _requested = _requested, None
    if requested is not None:
        configure_logging(**requested)
        return
    import structlog

    if not structlog.is_configured():
        configure_logging("warning", "console")
