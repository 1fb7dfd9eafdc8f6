"""What both Agora providers share: auth, hosts, the lock directory, builder tokens, ids."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from voxhub.clock import Clock
from voxhub.errors import InvalidInputError
from voxhub.models import JobHandle
from voxhub.provider import Provider, ProviderContext
from voxhub.store import default_store_path

from ._checks import INSTANCE_ID_RE, FieldError
from .api import DEFAULT_HOSTS, AgoraApi, HostPreference
from .auth import AgoraAuth
from .locks import Slot, TaskRegistry

__all__ = ["AgoraProvider", "BuilderToken", "derive_instance_id"]

#: How long a builder token may be used to start a task (spec 1.2 and 2.3).
BUILDER_TOKEN_VALIDITY = 300.0
#: A recorded token is reused only with this much of its validity left.
PENDING_TOKEN_MARGIN = 30.0


@attrs.frozen
class BuilderToken:
    """An acquired builder token (``tokenName``) and when it was acquired (local monotonic s)."""

    name: str
    instance_id: str
    acquired_at: float
    create_ts: int | None = None

    def age(self, clock: Clock) -> float:
        """Seconds since it was acquired."""
        return clock.monotonic() - self.acquired_at


def derive_instance_id(prefix: str, key: str) -> str:
    """A stable ``instanceId`` / agent ``name`` for an idempotency key.

    Why derived: the same input always uses the same id, so a repeated start (a retry
    whose first answer was lost, a second process) collides with the first instead of
    creating a second task. The key itself may be long or contain any character, so
    only its hash is used (``prefix-<40 hex>``, well within 64 ``[a-zA-Z0-9_-]``).
    """
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:40]}"


class AgoraProvider(Provider):
    """Base of the Agora providers.

    Args:
        hosts: REST hosts tried in order when the profile sets no ``base_url``.
        lock_dir: where duplicate-start locks live (default: the job store's directory,
            so processes sharing a store share the locks).
    """

    product: str = "Agora"

    def __init__(
        self, *, hosts: Sequence[str] = DEFAULT_HOSTS, lock_dir: str | Path | None = None
    ) -> None:
        self.hosts = tuple(h.rstrip("/") for h in hosts)
        self.lock_dir = None if lock_dir is None else Path(lock_dir)
        self._preference = HostPreference()

    def authenticate(self, ctx: ProviderContext) -> AgoraAuth:
        """Check the profile's credentials locally and pick Basic or token auth."""
        return AgoraAuth.from_settings(ctx.settings)

    # --- helpers for subclasses -----------------------------------------------------

    def auth(self, ctx: ProviderContext) -> AgoraAuth:
        """The context's resolved auth (``authenticate``'s result, or resolved now)."""
        if isinstance(ctx.auth, AgoraAuth):
            return ctx.auth
        auth = AgoraAuth.from_settings(ctx.settings)
        ctx.auth = auth
        return auth

    def api(self, ctx: ProviderContext) -> AgoraApi:
        """An :class:`AgoraApi` for one call."""
        return AgoraApi(ctx, self.auth(ctx), hosts=self.hosts, preference=self._preference,
                        product=self.product)

    def registry(self, ctx: ProviderContext, lock_dir: str | None = None) -> TaskRegistry:
        """The lock registry: option ``lock_dir``, else the provider's, else the store's dir."""
        if lock_dir:
            base = Path(lock_dir).expanduser()
        elif self.lock_dir is not None:
            base = self.lock_dir
        else:
            # ``state_dir`` is what the orchestrator should pass (the store's directory);
            # until it does, the default store location stands in for it.
            state_dir = getattr(ctx, "state_dir", None)
            base = Path(state_dir) if state_dir else default_store_path().parent
        return TaskRegistry(base / "agora-locks")

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

    @staticmethod
    def remember_token(slot: Slot | None, token: BuilderToken) -> None:
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

    @staticmethod
    def registry_jobs(data: Mapping[str, Any] | None) -> list[str]:
        """The job ids recorded as using a registry entry's task."""
        if not data:
            return []
        jobs = data.get("job_ids")
        return [str(j) for j in jobs] if isinstance(jobs, list) else []
