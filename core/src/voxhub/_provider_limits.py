"""``ctx.limits``: the shared limits (:mod:`voxhub.shared_limits`) of one provider profile.

A vendor counts its limits per account, so a limit's key names the provider, the
account and the limit: ``revai:c3b1...e0:submit``. The account is a hash of the
profile's base URL and credential values, keyed with the store's key (identical on
every machine of a store), never the credentials themselves: a key is shown to
operators, and a low-entropy password cannot be guessed back from a keyed hash.

The core builds one :class:`ProviderLimits` per context on the store; a context built by
hand (a test, a script) gets one on a small SQLite file in its ``state_dir``, or one of
its process alone without one (:func:`limits_beside`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InvalidInputError
from .policies import deadline_scope
from .redact import Secret
from .shared_limits import Limit, SharedLimits

if TYPE_CHECKING:
    from .clock import Clock
    from .provider import ProviderContext, ProviderInfo, ProviderSettings
    from .store import Store

__all__ = ["ProviderLimits", "account_identity", "limits_beside", "store_limits"]


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
    (Agora paces starts per App ID, not per customer key).
    """

    def __init__(self, shared: SharedLimits, provider: str, account: str,
                 declared: Sequence[Limit] = ()) -> None:
        self.shared = shared
        self.provider = provider
        self.account = account
        self.declared = tuple(declared)

    def key(self, name: str, scope: str | None = None) -> str:
        """The store key of limit ``name``: ``provider:account-or-scope:name``."""
        return f"{self.provider}:{scope or self.account}:{name}"

    def take(self, limit: Limit, *, scope: str | None = None,
             operation: str | None = None) -> float:
        """Wait for the rate ``limit`` (``per`` set); returns the seconds waited."""
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
    return ProviderLimits(shared, info.name, account, info.limits)
