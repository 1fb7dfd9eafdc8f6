"""How providers want their HTTP calls timed and retried: plain data, no HTTP library.

Kept apart from :mod:`voxhub.transport` so that provider metadata
(:class:`~voxhub.provider.ProviderInfo` holds a :class:`RetryPolicy`) can be
imported without importing urllib3.
"""

from __future__ import annotations

import random
import time
from typing import Any

import attrs

__all__ = ["RetryPolicy", "Timeouts", "parse_retry_after"]


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


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # an HTTP date is rare: import it late

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
