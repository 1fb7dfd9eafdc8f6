"""What both Agora providers share: auth, hosts, the lock directory, builder tokens, updates.

The providers themselves are :mod:`.stt` (``agora-stt``) and :mod:`.transcoder`
(``agora-transcoder``); their metadata is in :mod:`.options`.

Exactly-once starts rest on Agora's own rules, which make a repeated creating request
name the first task instead of starting a second: one task per builder token (STT
code 49, the transcoder's 201), one live agent per name (v7, 409) and one live
transcoder per ``instanceId`` (409). The name and ``instanceId`` are derived from the
job's idempotency key, and a builder token is written to the lock record *before* it
is used, so the core's resend of an in-doubt start (after ``recover`` found nothing)
reuses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import attrs
from voxhub.plugin import (
    InvalidInputError,
    JobHandle,
    Provider,
    ProviderContext,
    ProviderError,
)

from ._checks import INSTANCE_ID_RE, FieldError
from .api import DEFAULT_HOSTS, AgoraApi, HostPreference
from .auth import AgoraAuth
from .errors import retry_delays
from .locks import LockRecord, Registry, StoreRegistry, TaskRegistry
from .schema import BuilderTokenAnswer

__all__ = [
    "BUILDER_TOKEN_VALIDITY",
    "AgoraProvider",
    "BuilderToken",
    "as_mapping",
    "derive_instance_id",
    "next_sequence",
    "send_sequenced",
    "str_field",
]

#: How long a builder token may be used to start a task (spec 1.2 and 2.3).
BUILDER_TOKEN_VALIDITY = 300.0
#: A recorded token is reused only with this much of its validity left.
PENDING_TOKEN_MARGIN = 30.0
#: Agora's back-off for an update whose answer was lost (its own codes have their own).
_UPDATE_IN_DOUBT_DELAYS = (1.0, 3.0, 6.0)
#: What an option lock_dir may hold: a path, never free text.
_SAFE_PATH = re.compile(r"[\w./~+@-]{1,1024}")


@attrs.frozen
class BuilderToken:
    """An acquired builder token (``tokenName``) and when it was acquired (local monotonic s)."""

    name: str
    instance_id: str
    acquired_at: float
    create_ts: int | None = None

    def age(self, now: float) -> float:
        """Seconds since it was acquired, at monotonic time ``now``."""
        return now - self.acquired_at


def derive_instance_id(prefix: str, key: str) -> str:
    """A stable ``instanceId`` / agent ``name`` for an idempotency key.

    Why derived: the same input always uses the same id, so a repeated start (a resend
    whose first answer was lost, a second process) collides with the first instead of
    creating a second task. The key itself may be long or contain any character, so
    only its hash is used (``prefix-<40 hex>``, well within 64 ``[a-zA-Z0-9_-]``).
    """
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:40]}"


class AgoraProvider(Provider):
    """Base of the Agora providers.

    Args:
        hosts: REST hosts tried in order when the profile sets no ``base_url`` (default
            :attr:`default_hosts`).
        lock_dir: keep the duplicate-start locks as files in this directory (default: in
            the job store, so that every process and machine sharing the store shares them).
    """

    product: str = "Agora"
    #: Hosts tried in order when neither ``hosts`` nor a ``base_url`` is given.
    default_hosts: tuple[str, ...] = DEFAULT_HOSTS

    def __init__(
        self, *, hosts: Sequence[str] | None = None, lock_dir: str | Path | None = None
    ) -> None:
        self.hosts = tuple(h.rstrip("/") for h in (hosts or self.default_hosts))
        self.lock_dir = None if lock_dir is None else Path(lock_dir)
        self._preference = HostPreference()

    def authenticate(self, ctx: ProviderContext) -> AgoraAuth:
        """Check the profile's credentials locally and pick Basic or token auth."""
        return AgoraAuth.from_settings(ctx.settings)

    # --- helpers for subclasses -----------------------------------------------------

    @staticmethod
    def auth(ctx: ProviderContext) -> AgoraAuth:
        """What :meth:`authenticate` returned (the core runs it before any other call)."""
        return cast(AgoraAuth, ctx.auth)

    def api(self, ctx: ProviderContext, channel: str = "") -> AgoraApi:
        """An :class:`AgoraApi` for one call about ``channel`` (token mode signs for it)."""
        return AgoraApi(ctx, self.auth(ctx), hosts=self.hosts, preference=self._preference,
                        product=self.product, channel=channel)

    def registry(self, ctx: ProviderContext, lock_dir: str | None = None) -> Registry:
        """Where a new start's lock lives: in the directory of the option ``lock_dir``,
        else the provider's, else in the job store (shared by all its machines)."""
        if lock_dir:
            # A path, never free text: quotes, spaces or control characters are refused
            # before a directory of that name is created (issue 16).
            if not _SAFE_PATH.fullmatch(lock_dir):
                raise InvalidInputError(
                    "option 'lock_dir': a directory path of letters, digits and ._~/+@- only",
                    field="lock_dir", provider=ctx.provider, operation="validate")
            return TaskRegistry(Path(lock_dir).expanduser() / "agora-locks")
        if self.lock_dir is not None:
            return TaskRegistry(self.lock_dir / "agora-locks")
        return StoreRegistry(ctx)

    def lock_state(self, lock_dir: str | None) -> dict[str, str]:
        """What a started job's vendor state says of where its lock lives (for
        :meth:`registry_of`)."""
        if lock_dir:
            return {"lock_dir": lock_dir}
        return {} if self.lock_dir is not None else {"locks": "store"}

    def registry_of(self, ctx: ProviderContext, handle: JobHandle) -> Registry:
        """Where the lock of a started job lives, as its handle says."""
        state = handle.vendor_state
        lock_dir = state.get("lock_dir")
        if lock_dir or self.lock_dir is not None or state.get("locks") == "store":
            return self.registry(ctx, str(lock_dir) if lock_dir else None)
        if ctx.state_dir is None:
            return StoreRegistry(ctx)
        # Started by a voxhub that kept the locks as files beside the job store.
        return TaskRegistry(Path(ctx.state_dir) / "agora-locks")

    def invalid(self, ctx: ProviderContext, exc: FieldError, *, label: str = "",
                field: str | None = None) -> InvalidInputError:
        """The :class:`InvalidInputError` for a :class:`FieldError`."""
        prefix = f"{label}: " if label else ""
        return InvalidInputError(
            f"{prefix}{exc.path}: {exc.message}", field=field or exc.path,
            provider=ctx.provider, operation="validate",
        )

    @staticmethod
    def instance_id(options: Mapping[str, Any], handle: JobHandle | None, key: str | None,
                    prefix: str) -> str:
        """The explicit ``instance_id`` option, else one derived from the idempotency key."""
        explicit = options.get("instance_id")
        if explicit:
            if not INSTANCE_ID_RE.match(str(explicit)):
                raise FieldError("instance_id",
                                 "must be 1..64 characters of a-z, A-Z, 0-9, '_' and '-'")
            return str(explicit)
        if key:
            return derive_instance_id(prefix, key)
        # No key (a direct call without the orchestrator): the job id is unique, so no
        # cross-job de-duplication happens through the id — the channel lock still applies.
        return derive_instance_id(prefix, handle.job_id if handle is not None else "validate")

    def acquire(self, ctx: ProviderContext, path: str, body: Mapping[str, Any],
                channel: str) -> BuilderToken:
        """Acquire a builder token at ``path`` (``body`` holds the ``instanceId``).

        Repeating an acquire is harmless (an unused token just expires), so it is sent
        as idempotent: retried on Agora's back-off, never a reason for doubt.
        """
        answer = self.api(ctx, channel).call("POST", path, operation="acquire", json=body,
                                             idempotent=True, into=BuilderTokenAnswer)
        return BuilderToken(answer.tokenName, str(body["instanceId"]), ctx.clock.monotonic(),
                            answer.createTs)

    @staticmethod
    def remember_token(slot: LockRecord | None, token: BuilderToken) -> None:
        """Record ``token`` in the lock record *before* it is used, and write it at once.

        Why: if the start/create answer is lost (or the process dies), the next attempt for
        the same input reuses this token, and Agora's one-task-per-token rule then names the
        task the first attempt created instead of creating a second one.
        """
        if slot is None:
            return
        slot.data = {**(slot.data or {}), "pending": {
            "instance_id": token.instance_id, "token": token.name,
            "acquired_at": time.time(),
        }}
        slot.save()

    @staticmethod
    def pending_token(ctx: ProviderContext, data: Mapping[str, Any] | None,
                      instance_id: str) -> BuilderToken | None:
        """The recorded, still valid builder token of an earlier attempt for ``instance_id``."""
        pending = data.get("pending") if data else None
        if not isinstance(pending, Mapping) or pending.get("instance_id") != instance_id:
            return None
        acquired = pending.get("acquired_at")
        name = pending.get("token")
        if not isinstance(acquired, int | float) or not isinstance(name, str):
            return None
        age = max(0.0, time.time() - acquired)
        if age > BUILDER_TOKEN_VALIDITY - PENDING_TOKEN_MARGIN:
            return None
        return BuilderToken(name, instance_id, ctx.clock.monotonic() - age)

    @contextlib.contextmanager
    def paced(self, ctx: ProviderContext, product: str, interval: float) -> Iterator[float]:
        """Hold the start turn of this App ID: one start at a time, each sent ``interval``
        seconds after the previous one's answer (or failure).

        The turn lives in the job store (``ctx.limits``, see :mod:`voxhub.shared_limits`),
        so it holds across every thread, process and machine sharing the store. Yields
        the seconds waited for it; logged when a start had to wait.
        """
        scope = f"app-{self.auth(ctx).app_id.lower()}"
        with ctx.limits.turn("start", interval, scope=scope, operation="submit") as waited:
            if waited:
                ctx.log.info("agora.stt.start_paced" if product == "agora-stt"
                             else "agora.start_paced", waited=round(waited, 3))
            yield waited

    @staticmethod
    def registry_jobs(data: Mapping[str, Any] | None) -> list[str]:
        """The job ids recorded as using a registry entry's task."""
        if not data:
            return []
        jobs = data.get("job_ids")
        return [str(j) for j in jobs] if isinstance(jobs, list) else []


# --- sequenced updates (STT and the transcoder) --------------------------------------


def next_sequence(state: Mapping[str, Any], recorded: Mapping[str, Any] | None) -> int:
    """One above the highest sequenceId known to this handle or to the lock record."""
    known = [state.get("sequence_id")]
    if recorded is not None:
        known.append(as_mapping(recorded.get("vendor_state")).get("sequence_id"))
    numbers = [int(v) for v in known if isinstance(v, int | str) and str(v).lstrip("-").isdigit()]
    return max(numbers, default=-1) + 1


def send_sequenced(
    ctx: ProviderContext, api: AgoraApi, path: str, sequence: int, *,
    params: Mapping[str, Any], json: Any, method: str = "PATCH",
) -> int:
    """Send a sequenced update (``PATCH``, or v7's ``POST``); a retry uses the next
    sequenceId. Returns the one applied.

    This is an update of an existing task, not a submission, so it keeps its own bounded
    retry: Agora's back-off for its codes, and 1/3/6 s when the answer was lost
    (``in_doubt``). Why a new id per attempt: an attempt whose answer was lost may have
    been applied, and the server refuses an id it has already seen; the full
    replacement makes applying the same change twice harmless.
    """
    attempt = 0
    while True:
        try:
            api.request(method, path, operation="update", idempotent=False, json=json,
                        params={**params, "sequenceId": sequence})
            return sequence
        except ProviderError as exc:
            delays = retry_delays(exc) or (_UPDATE_IN_DOUBT_DELAYS if exc.in_doubt else ())
            if attempt >= len(delays):
                raise
            ctx.log.warning("agora.update_retry", sequence_id=sequence, error=str(exc),
                            delay=delays[attempt])
            ctx.clock.sleep(delays[attempt])
            attempt += 1
            sequence += 1


def as_mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one (Agora answers vary in shape)."""
    return value if isinstance(value, Mapping) else {}


def str_field(data: Mapping[str, Any] | None, key: str) -> str | None:
    """``data[key]`` as text, ``None`` when absent or empty."""
    if not data:
        return None
    value = data.get(key)
    return str(value) if value is not None and value != "" else None
