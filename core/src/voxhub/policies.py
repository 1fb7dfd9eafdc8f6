"""How providers want their HTTP calls timed and retried: plain data, no HTTP library.

Kept apart from :mod:`voxhub.transport` so that provider metadata
(:class:`~voxhub.provider.ProviderInfo` holds a :class:`RetryPolicy`) can be
imported without importing urllib3.

Also here: :class:`Backoff`, the notice every retry wait sends, and
:func:`deadline_scope`, which caps the retry waits of every request made inside it.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import math
import random
import re
import time
from collections.abc import Iterator
from typing import Any

import attrs

__all__ = [
    "Backoff",
    "RetryPolicy",
    "Timeouts",
    "current_deadline",
    "deadline_scope",
    "parse_retry_after",
]


def _seconds(instance: Any, attribute: attrs.Attribute[float], value: object) -> None:
    # A zero or negative socket timeout would turn every call into an instant failure
    # (or make urllib3 block forever for None): reject it where it is written.
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(
            f"Timeouts.{attribute.name} must be a positive number of seconds, got {value!r}"
        )


@attrs.frozen
class Timeouts:
    """Connect, write and read timeouts in seconds, each a limit on *progress*, not on the call.

    * ``connect``: opening the TCP (and TLS) connection;
    * ``write``: how long the server may go without accepting any of the request
      (headers or body) while it is being sent. A slow upload is fine as long as
      the server keeps reading; one that reads nothing for ``write`` seconds fails
      as "upload stalled";
    * ``read``: how long the server may go without sending any of its answer, from
      the end of the request on.
    """

    connect: float = attrs.field(default=10.0, validator=_seconds)
    read: float = attrs.field(default=60.0, validator=_seconds)
    write: float = attrs.field(default=60.0, validator=_seconds)


@attrs.frozen
class RetryPolicy:
    """How a provider wants failed calls retried.

    ``max_attempts`` bounds attempts for server errors and transport failures;
    rate-limit answers have their own, larger bound (vendors such as Rev.ai ask
    to retry 429 beyond the 5xx cap).

    A readable ``Retry-After`` is waited for, at most ``retry_after_max`` seconds
    per wait; an unreadable one gets the normal :meth:`backoff`. Inside a
    :func:`deadline_scope`, a request stops retrying when its next wait would end
    past the deadline.
    """

    max_attempts: int = 5
    max_rate_limited_attempts: int = 30
    retry_statuses: frozenset[int] = frozenset({502, 503, 504})
    rate_limit_statuses: frozenset[int] = frozenset({429})
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 300.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Exponential back-off with full jitter for the ``attempt``-th retry (1-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return (rng or random).uniform(ceiling / 2, ceiling)


# RFC 9110: delta-seconds is 1*DIGIT. A decimal fraction is accepted too (harmless);
# signs, exponents, "nan", "inf" and digit separators are not.
_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or ``None`` when it can't be read.

    Accepts delta-seconds (``"120"``) and an HTTP date (RFC 9110: IMF-fixdate, the
    obsolete RFC 850 and asctime forms, read as GMT); a date in the past means 0.
    Anything else (``"abc"``, ``"-5"``, ``"nan"``, ``"1e9"``, a date that doesn't
    exist) is ``None``: the caller falls back to its normal back-off. The value is
    not capped here (see :attr:`RetryPolicy.retry_after_max`).
    """
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    from email.utils import parsedate_to_datetime  # an HTTP date is rare: import it late

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:  # asctime and "-0000" carry no zone: HTTP dates are GMT
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@attrs.frozen
class Backoff:
    """One retry wait of one request, told to back-off listeners before it starts.

    ``reason`` says what is waited out, for people: an HTTP status (``"429"``,
    ``"503"``), with how ``Retry-After`` was used when the answer had one
    (``"429 (Retry-After)"``, ``"429 (Retry-After capped)"``,
    ``"429 (Retry-After unreadable)"``), or a transport failure
    (``"connection refused"``, ``"read timed out"``). ``seconds`` is the wait about
    to start; ``attempt`` counts the request's attempts so far (the one that just
    failed included). ``method`` and ``path`` name the request without its host,
    query or anything secret.
    """

    provider: str
    reason: str
    seconds: float
    attempt: int
    method: str
    path: str
    operation: str | None = None


# The monotonic time (on the HttpClient's clock) by which retry waits must be over.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "voxhub_deadline", default=None
)


def current_deadline() -> float | None:
    """The deadline in scope (see :func:`deadline_scope`), or ``None``."""
    return _DEADLINE.get()


@contextlib.contextmanager
def deadline_scope(deadline: float | None) -> Iterator[float | None]:
    """Cap the retry waits of every request made in this block (this thread or task).

    ``deadline`` is a time on the monotonic clock of the orchestrator's
    :class:`~voxhub.clock.Clock` (``clock.monotonic() + timeout``); ``None`` adds
    no limit. Scopes nest: the earliest deadline wins, so an inner block can
    shorten the time left but never extend it. When a request's next back-off
    would end past the deadline, the request stops retrying at once and fails with
    the error its last answer means (e.g. :class:`~voxhub.errors.RateLimitedError`),
    whose message says it gave up because of the deadline. Yields the deadline in
    force.
    """
    outer = _DEADLINE.get()
    if deadline is not None and math.isnan(deadline):
        raise ValueError("deadline must be a number, got nan")
    inner = outer if deadline is None else deadline if outer is None else min(outer, deadline)
    token = _DEADLINE.set(inner)
    try:
        yield inner
    finally:
        _DEADLINE.reset(token)
