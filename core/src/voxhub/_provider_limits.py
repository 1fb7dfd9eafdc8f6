"""``ctx.limits``: the shared limits (:mod:`voxhub.shared_limits`) of one provider profile.

A vendor counts its limits per account, so a limit's key names the provider, the
account and the limit: ``revai:c3b1...e0:submit``. The account is a hash of the
profile's base URL and credential values, keyed with the store's key (identical on
every machine of a store), never the credentials themselves: a key is shown to
operators, and a low-entropy password cannot be guessed back from a keyed hash.

The core builds one :class:`ProviderLimits` per context on the store; a context built by
hand (a test, a script) gets one on a small SQLite file in its ``state_dir``, or one of
its process alone without one (:func:`limits_beside`).

A profile may change a declared limit with a ``limit_<name>`` setting, for an account whose
limit the vendor raised, or a test server that has none (:func:`parse_limit_setting`)::

    [revai]
    limit_submit = "20000/600"       # count/seconds, optionally "burst B"
    limit_uploads = 10               # a concurrency: how many at once
    # limit_submit = "off"           # no limit: the vendor's, or the server's, own
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidInputError
from .policies import deadline_scope
from .redact import Secret
from .shared_limits import WAIT_TIMEOUT, Limit, LockedRecord, SharedLimits

if TYPE_CHECKING:
    from .clock import Clock
    from .provider import ProviderContext, ProviderInfo, ProviderSettings
    from .store import Store

__all__ = [
    "LIMIT_PREFIX",
    "ProviderLimits",
    "account_identity",
    "configured_limits",
    "limits_beside",
    "parse_limit_setting",
    "store_limits",
]

#: A profile setting ``limit_<name>`` replaces the declared limit ``<name>``.
LIMIT_PREFIX = "limit_"
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s?(?:\s+burst\s+(\d+))?\s*")


def parse_limit_setting(declared: Limit, value: object) -> Limit | None:
    """The limit a ``limit_<name>`` setting gives in place of ``declared``; ``None`` for
    ``"off"``. A rate takes ``"COUNT/SECONDS"`` (optionally ``" burst B"``; else the
    declared burst, capped at the count), a concurrency a whole number. Raises
    :class:`~voxhub.errors.InvalidInputError` naming the setting on anything else."""
    field = LIMIT_PREFIX + declared.name
    if isinstance(value, str) and value.strip().lower() == "off":
        return None
    if declared.is_rate:
        match = _RATE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise InvalidInputError(
                f"{field}: a rate like \"{declared.count}/{declared.per:g}\" (count/seconds, "
                f"optionally \"burst N\") or \"off\", got {value!r}", field=field)
        count = int(match[1])
        burst = int(match[3]) if match[3] else min(declared.burst, max(count, 1))
        return _limit(declared.name, field, count, float(match[2]), burst)
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number is None:
        raise InvalidInputError(
            f"{field}: how many at once, a whole number (declared: {declared.count}), "
            f"or \"off\", got {value!r}", field=field)
    return _limit(declared.name, field, number, None, 1)


def _limit(name: str, field: str, count: int, per: float | None, burst: int) -> Limit:
    try:
        return Limit(name, count, per, burst)
    except InvalidInputError as exc:  # re-named after the setting the user wrote
        raise InvalidInputError(f"{field}: {exc.message}", field=field) from None


def configured_limits(declared: Sequence[Limit],
                      values: Mapping[str, object]) -> dict[str, Limit | None]:
    """The limits of a profile by name: each declared one, or what its ``limit_<name>``
    setting in ``values`` makes of it (``None``: turned off)."""
    out: dict[str, Limit | None] = {}
    for limit in declared:
        setting = values.get(LIMIT_PREFIX + limit.name)
        out[limit.name] = limit if setting is None else parse_limit_setting(limit, setting)
    return out


def account_identity(settings: ProviderSettings, fields: Iterable[str] | None = None, *,
                     key: bytes = b"") -> str:
    """A short keyed hash naming the account of a profile (base URL and the values of
    ``fields``, every value without it): equal for the same account, revealing nothing."""
    names = sorted(settings.values if fields is None else fields)
    values = {}
    for name in names:
        value = settings.values.get(name)
        values[name] = value.reveal() if isinstance(value, Secret) else value
    text = json.dumps([settings.base_url, values], sort_keys=True, default=str)
    return hmac.new(key or b"voxhub account", text.encode(), hashlib.sha256).hexdigest()[:16]


class ProviderLimits:
    """What a provider's hooks use as ``ctx.limits``: limits shared by every worker of
    the store that uses the same account.

    ``scope`` replaces the account in a key when the vendor counts by something else
    (Agora paces starts per App ID, not per customer key). ``settings`` (the profile's
    values) may change or turn off a declared limit (``limit_<name>``, see the module):
    :meth:`take` and :meth:`hold` of a declared limit use what the profile made of it.
    """

    def __init__(self, shared: SharedLimits, provider: str, account: str,
                 declared: Sequence[Limit] = (),
                 settings: Mapping[str, object] | None = None) -> None:
        self.shared = shared
        self.provider = provider
        self.account = account
        self._configured = configured_limits(declared, settings or {})
        #: The limits in force: declared, as the profile changed them, minus those off.
        self.declared = tuple(limit for limit in self._configured.values() if limit)

    def _in_force(self, limit: Limit) -> Limit | None:
        """``limit`` as the profile set it (``None``: off); an undeclared one as is."""
        return self._configured.get(limit.name, limit)

    def key(self, name: str, scope: str | None = None) -> str:
        """The store key of limit ``name``: ``provider:account-or-scope:name``."""
        return f"{self.provider}:{scope or self.account}:{name}"

    def take(self, limit: Limit, *, scope: str | None = None,
             operation: str | None = None) -> float:
        """Wait for the rate ``limit`` (``per`` set); returns the seconds waited."""
        if limit.per is not None and (found := self._in_force(limit)) is not limit:
            if found is None:
                return 0.0
            limit = found
        if limit.per is None:
            raise InvalidInputError(f"limit {limit.name!r} is a concurrency: use hold()",
                                    field="limit", provider=self.provider)
        return self.shared.take(self.key(limit.name, scope), count=limit.count, per=limit.per,
                                burst=limit.burst, provider=self.provider,
                                operation=operation or limit.name)

    @contextlib.contextmanager
    def hold(self, limit: Limit, *, scope: str | None = None,
             operation: str | None = None) -> Iterator[float]:
        """Hold one of the ``limit.count`` places of a concurrency ``limit`` (no ``per``)."""
        if limit.per is None and (found := self._in_force(limit)) is not limit:
            if found is None:
                yield 0.0
                return
            limit = found
        if limit.per is not None:
            raise InvalidInputError(f"limit {limit.name!r} is a rate: use take()",
                                    field="limit", provider=self.provider)
        with self.shared.slot(self.key(limit.name, scope), limit.count, provider=self.provider,
                              operation=operation or limit.name) as waited:
            yield waited

    @contextlib.contextmanager
    def turn(self, name: str, interval: float, *, scope: str | None = None,
             operation: str | None = None) -> Iterator[float]:
        """Hold the turn ``name``: one at a time, each starting ``interval`` seconds
        after the previous one ended (see :meth:`SharedLimits.turn`)."""
        with self.shared.turn(self.key(name, scope), interval, provider=self.provider,
                              operation=operation or name) as waited:
            yield waited

    @contextlib.contextmanager
    def locked(self, name: str, *, scope: str | None = None, operation: str | None = None,
               timeout: float = WAIT_TIMEOUT) -> Iterator[LockedRecord]:
        """Hold the lock ``name`` alone, in every process and machine of the store, and
        yield its record (see :meth:`SharedLimits.locked`). ``name`` is shown to
        operators: name what it guards by a hash when that may be private (a channel)."""
        with self.shared.locked(self.key(name, scope), provider=self.provider,
                                operation=operation, timeout=timeout) as record:
            yield record

    def record(self, name: str, *, scope: str | None = None) -> dict[str, Any] | None:
        """The record of the lock ``name`` without taking it (a snapshot)."""
        return self.shared.record(self.key(name, scope))

    @contextlib.contextmanager
    def around(self, operation: str, *, times: int = 1,
               max_wait: float | None = None) -> Iterator[None]:
        """Apply the declared limits named ``operation`` around one hook call: wait for
        each rate (``times`` events: a batch request counts each of its jobs), hold each
        concurrency until the call returns. Waiting longer than ``max_wait`` seconds (or
        past the deadline in scope) raises :class:`~voxhub.errors.RateLimitedError`
        before anything is sent; the call itself keeps the deadline in scope."""
        declared = [limit for limit in self.declared if limit.name == operation]
        with contextlib.ExitStack() as stack:
            if declared:
                cap = None if max_wait is None else self.shared.clock.monotonic() + max_wait
                with deadline_scope(cap):
                    for limit in declared:
                        if limit.is_rate:
                            for _ in range(times):
                                self.take(limit, operation=operation)
                        else:
                            stack.enter_context(self.hold(limit, operation=operation))
            yield


def limits_beside(ctx: ProviderContext) -> ProviderLimits:
    """The limits of a context built without a store (see the module's docstring)."""
    state_dir = None if ctx.state_dir is None else Path(ctx.state_dir)
    return ProviderLimits(SharedLimits.beside(state_dir), ctx.provider,
                          account_identity(ctx.settings))


_BY_STORE: weakref.WeakKeyDictionary[Store, SharedLimits] = weakref.WeakKeyDictionary()
_BY_STORE_LOCK = threading.Lock()


def store_limits(store: Store, clock: Clock, info: ProviderInfo,
                 settings: ProviderSettings) -> ProviderLimits:
    """The limits of a profile on ``store`` (what the orchestrator gives its contexts):
    the account is named by its credential fields, keyed with the store's key."""
    with _BY_STORE_LOCK:
        shared = _BY_STORE.get(store)
        if shared is None:
            shared = _BY_STORE[store] = SharedLimits(store._db, clock=clock)
    account = account_identity(settings, (f.name for f in info.credentials),
                               key=store.callback_key())
    return ProviderLimits(shared, info.name, account, info.limits, settings.values)
