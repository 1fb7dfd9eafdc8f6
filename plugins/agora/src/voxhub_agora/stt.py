"""``agora-stt``: Agora Real-Time STT (live channel transcription and translation).

Two API generations are spoken (option ``api_version``):

``v7`` (default, current)
    ``POST .../join`` creates an *agent* named after the job's idempotency key; query
    ``GET .../agents/{id}``, ``POST .../agents/{id}/update``, stop ``POST .../agents/{id}/leave``,
    list ``GET .../agents``.
``v6`` / ``v5`` (builderToken API, deprecated by Agora, still selectable)
    acquire a builder token, start within its 5 minutes, then query / update / stop with
    the pair (builder token, task id) kept on the job handle.

Duplicate protection (seed: two starts within a second create two tasks): every start runs
under a lock for its channel shared by threads and processes (see :mod:`.locks`); a start
that finds a live task for the channel uses it instead of creating another, and the task
is stopped only when its last job is closed. Repeated starts of the *same* input also
collide at Agora: the agent name / instanceId is derived from the idempotency key, and a
repeated start with the same builder token names the first task (code 49).

A start is sent once. When its outcome is unknown (a lost answer, a 5xx) it fails with
``in_doubt=True``; the core then calls :meth:`AgoraSttProvider.recover` and sends it again
only when nothing was found — with the recorded builder token or the same agent name.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from typing import Any, ClassVar, cast

import attrs
from voxhub.plugin import (
    InvalidInputError,
    JobHandle,
    JobRequest,
    JobStatus,
    NotFoundError,
    ProviderContext,
    ProviderError,
    ProviderInfo,
    RtcChannel,
    Submitted,
    TaskInfo,
    path_segment,
)

from ._checks import FieldError
from .api import AgoraApi
from .auth import AgoraAuth
from .errors import BuilderTokenError, TaskConflictError
from .locks import LockRecord
from .options import DEFAULT_BOT_TOKEN_EXPIRE, STT_INFO
from .provider import (
    BUILDER_TOKEN_VALIDITY,
    AgoraProvider,
    BuilderToken,
    as_mapping,
    next_sequence,
    send_sequenced,
    str_field,
)
from .schema import AgentAnswer, TaskAnswer
from .states import ended_status, normalize_stt_status
from .stt_bots import check_bot_tokens, with_bot_tokens
from .stt_config import (
    API_VERSIONS,
    option_for_path,
    start_body,
    update_body,
    validate_start_body,
    validate_update_body,
)

__all__ = ["AgoraSttProvider", "normalize_stt_status"]

#: Re-acquire a builder token this long before its 5 minutes are up (the start request
#: itself takes time, and clocks differ).
_TOKEN_MARGIN = 15.0
#: Starts refused for their builder token (expired, unknown) get a fresh one this often.
_START_ATTEMPTS = 3


@attrs.frozen
class StartPlan:
    """What a start sends: API version, channel, body (without generated tokens), name."""

    version: str
    channel: str
    body: dict[str, Any] = attrs.field(repr=False)
    name: str
    dedupe: bool
    bot_token_expire: int
    lock_dir: str | None


class AgoraSttProvider(AgoraProvider):
    """The ``agora-stt`` provider (see the module docstring)."""

    product = "Real-Time STT"
    info: ClassVar[ProviderInfo] = STT_INFO
    #: Seconds between two starts (v5/v6 start, v7 join) of one App ID (seed 000).
    start_interval: float = 1.0

    # --- validation -------------------------------------------------------------------

    def validate(self, ctx: ProviderContext, request: JobRequest) -> JobRequest:
        """Check what the option specs cannot: media, languages and the whole start body."""
        if not isinstance(request.media, RtcChannel):
            raise InvalidInputError(
                "agora-stt transcribes a live RTC channel: give the media as rtc:CHANNEL",
                field="media", provider=ctx.provider, operation="validate",
            )
        if not request.options.get("languages") and not request.language:
            raise InvalidInputError(
                "option 'languages' is required (or give the request a language), "
                "e.g. languages=en-US", field="languages", provider=ctx.provider,
                operation="validate",
            )
        plan = self.plan(ctx, request, None)
        try:
            validate_start_body(plan.body, plan.version)
        except FieldError as exc:
            raise self._option_error(ctx, exc) from None
        check_bot_tokens(ctx, self.auth(ctx), plan.body)
        return request

    def plan(
        self, ctx: ProviderContext, request: JobRequest, handle: JobHandle | None
    ) -> StartPlan:
        """What a start of ``request`` sends (``validate`` has checked it)."""
        options = dict(request.options)
        version = str(options.get("api_version") or "v7")
        if not options.get("languages"):
            options["languages"] = [request.language]
        channel = cast(RtcChannel, request.media).channel
        try:
            name = self.instance_id(options, handle, request.idempotency_key, "vxstt")
            body = start_body(options, channel, version, name=name)
        except FieldError as exc:
            raise self._option_error(ctx, exc) from None
        dedupe = options.get("dedupe_channel")
        return StartPlan(version, channel, body, name, True if dedupe is None else bool(dedupe),
                         int(options.get("bot_token_expire") or DEFAULT_BOT_TOKEN_EXPIRE),
                         options.get("lock_dir"))

    @staticmethod
    def _option_error(ctx: ProviderContext, exc: FieldError) -> InvalidInputError:
        option = option_for_path(exc.path)
        detail = "" if option == exc.path else f" ({exc.path})"
        return InvalidInputError(f"option {option!r}{detail}: {exc.message}", field=option,
                                 provider=ctx.provider, operation="validate")

    # --- submit -----------------------------------------------------------------------

    def submit(self, ctx: ProviderContext, request: JobRequest, handle: JobHandle) -> Submitted:
        """Start transcription of the channel, or join the live task already serving it."""
        return self.start_task(ctx, request, handle)

    def start_task(
        self,
        ctx: ProviderContext,
        request: JobRequest,
        handle: JobHandle,
        *,
        builder_token: BuilderToken | None = None,
    ) -> Submitted:
        """:meth:`submit` with an optional builder token acquired earlier (v5/v6)."""
        plan = self.plan(ctx, request, handle)
        api = self.api(ctx, plan.channel)
        if not plan.dedupe:
            ids, state, status = self._start(ctx, api, plan, builder_token, None)
            return Submitted(handle.with_vendor(ids, state), status=status)
        with self.registry(ctx, plan.lock_dir).locked(self._channel_key(ctx, plan)) as slot:
            data = slot.data or {}
            if data.get("vendor_ids"):
                found = self._reuse(ctx, data, handle)
                if found is not None:
                    slot.data = {**data, "job_ids": [*self.registry_jobs(data), handle.job_id]}
                    return found
            # The recorded task (if any) has ended; an earlier attempt's token stays usable.
            slot.data = {"pending": data["pending"]} if data.get("pending") else None
            if builder_token is None and plan.version != "v7":
                builder_token = self.pending_token(ctx, data, plan.name)
            ids, state, status = self._start(ctx, api, plan, builder_token, slot)
            slot.data = {"job_ids": [handle.job_id], "vendor_ids": ids, "vendor_state": state,
                         "started_at": time.time()}
        return Submitted(handle.with_vendor(ids, state), status=status)

    def start_turn(self, ctx: ProviderContext, plan: StartPlan) -> ContextManager[float]:
        """Hold this App ID's start turn (seed 000: no more than one start a second).

        Shared by every thread, process and machine using the same job store, in
        addition to the channel lock (which only keeps one channel from being started twice).
        """
        return self.paced(ctx, "agora-stt", self.start_interval)

    def _channel_key(self, ctx: ProviderContext, plan: StartPlan | str) -> str:
        channel = plan if isinstance(plan, str) else plan.channel
        return f"agora-stt|{self.auth(ctx).app_id.lower()}|{channel}"

    def _reuse(self, ctx: ProviderContext, data: Mapping[str, Any],
               handle: JobHandle) -> Submitted | None:
        """The live task recorded for this channel, as this job's handle (else ``None``)."""
        ids = data.get("vendor_ids")
        state = data.get("vendor_state")
        if not isinstance(ids, dict) or not isinstance(state, dict):
            return None
        shared = handle.with_vendor({str(k): str(v) for k, v in ids.items()},
                                    {**state, "shared": True})
        try:
            status = self.status(ctx, shared)
        except NotFoundError:
            return None
        if status.is_terminal:
            return None
        ctx.log.info("agora.stt.reused", channel=state.get("channel"), job_id=handle.job_id,
                     vendor_ids=shared.vendor_ids)
        return Submitted(shared, status=status)

    def _start(
        self, ctx: ProviderContext, api: AgoraApi, plan: StartPlan,
        builder_token: BuilderToken | None, slot: LockRecord | None,
    ) -> tuple[dict[str, str], dict[str, Any], JobStatus]:
        body = with_bot_tokens(ctx, self.auth(ctx), plan.channel, plan.body,
                               plan.bot_token_expire)
        state: dict[str, Any] = {"api_version": plan.version, "channel": plan.channel,
                                 "instance_id": plan.name}
        state.update(self.lock_state(plan.lock_dir))
        if plan.version == "v7":
            agent_id, answer = self._join(ctx, api, plan, body)
            state["create_ts"] = answer.get("create_ts")
            status = normalize_stt_status("v7", str_field(answer, "status"), answer)
            return {"agent_id": agent_id}, state, status
        task_id, token, answer = self._start_v6(ctx, api, plan, body, builder_token, slot)
        state["sequence_id"] = 0  # updates send 1, 2, ... (strictly above anything used)
        state["create_ts"] = answer.get("createTs")
        status = normalize_stt_status(plan.version, str_field(answer, "status") or "STARTED",
                                      answer)
        return {"task_id": task_id, "builder_token_name": token.name}, state, status

    # --- v7 ---------------------------------------------------------------------------

    @staticmethod
    def _v7_base(auth: AgoraAuth) -> str:
        return f"/api/speech-to-text/v1/projects/{auth.app_id}"

    def _join(self, ctx: ProviderContext, api: AgoraApi, plan: StartPlan,
              body: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
        try:
            with self.start_turn(ctx, plan):
                data = api.call("POST", f"{self._v7_base(api.auth)}/join", operation="join",
                                json=body)
        except TaskConflictError as exc:
            # Same name = same input (idempotency key): the first join won; use its agent.
            found = self._find_agent(api, plan.name)
            if found is not None:
                return found.agent_id, _found_raw(found)
            if exc.task_id:
                return exc.task_id, {"agent_id": exc.task_id}
            raise
        return api.read(data, AgentAnswer, "join").agent_id, as_mapping(data)

    def _find_agent(self, api: AgoraApi, name: str) -> AgentAnswer | None:
        """The live agent called ``name`` (from the list API), if any."""
        body = as_mapping(api.call("GET", f"{self._v7_base(api.auth)}/agents", operation="list"))
        data = as_mapping(body.get("data")) if "data" in body else body
        items = data.get("list") or data.get("agents") or []
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, Mapping) or item.get("name") != name:
                continue
            agent = api.read(item, AgentAnswer, "list")
            if not normalize_stt_status("v7", agent.status).is_terminal:
                return agent
        return None

    # --- v5 / v6 ----------------------------------------------------------------------

    @staticmethod
    def _v6_base(auth: AgoraAuth) -> str:
        return f"/v1/projects/{auth.app_id}/rtsc/speech-to-text"

    def acquire_builder_token(self, ctx: ProviderContext, instance_id: str,
                              channel: str = "") -> BuilderToken:
        """Acquire a builder token (v5/v6); it must start a task within 5 minutes."""
        return self.acquire(ctx, f"{self._v6_base(self.auth(ctx))}/builderTokens",
                            {"instanceId": instance_id}, channel)

    def _start_v6(
        self, ctx: ProviderContext, api: AgoraApi, plan: StartPlan, body: Mapping[str, Any],
        token: BuilderToken | None, slot: LockRecord | None,
    ) -> tuple[str, BuilderToken, Mapping[str, Any]]:
        # Only a start *refused* for its token is sent again here (with a new token): it
        # provably started nothing. An unknown outcome goes to the core (in_doubt).
        last: ProviderError | None = None
        for _attempt in range(_START_ATTEMPTS):
            try:
                # The token is checked (and acquired) inside the turn: waiting for the
                # turn must not eat into its 5 minutes.
                with self.start_turn(ctx, plan):
                    age = 0.0 if token is None else token.age(ctx.clock.monotonic())
                    if token is None or age > BUILDER_TOKEN_VALIDITY - _TOKEN_MARGIN:
                        if token is not None:
                            ctx.log.info("agora.stt.token_expired_locally", age=age)
                        token = self.acquire_builder_token(ctx, plan.name, plan.channel)
                        self.remember_token(slot, token)
                    data = api.call("POST", f"{self._v6_base(api.auth)}/tasks",
                                    operation="start", params={"builderToken": token.name},
                                    json=body)
            except BuilderTokenError as exc:
                ctx.log.info("agora.stt.reacquire", reason=exc.message,
                             request_id=exc.request_id)
                last, token = exc, None
                continue
            except TaskConflictError as exc:
                # This token already started a task (an earlier attempt whose answer was
                # lost): that task is ours.
                if exc.task_id and token is not None:
                    return exc.task_id, token, {"taskId": exc.task_id}
                raise
            assert token is not None
            return api.read(data, TaskAnswer, "start").taskId, token, as_mapping(data)
        assert last is not None
        raise last

    # --- status, fetch, close -------------------------------------------------------------

    @staticmethod
    def _version(handle: JobHandle) -> str:
        version = str(handle.vendor_state.get("api_version") or "")
        if version in API_VERSIONS:
            return version
        return "v7" if "agent_id" in handle.vendor_ids else "v6"

    def _handle_api(self, ctx: ProviderContext, handle: JobHandle) -> AgoraApi:
        return self.api(ctx, str(handle.vendor_state.get("channel") or ""))

    def query(self, ctx: ProviderContext, handle: JobHandle) -> Mapping[str, Any]:
        """Agora's own answer about the task (raises :class:`NotFoundError` once it ended)."""
        api = self._handle_api(ctx, handle)
        if self._version(handle) == "v7":
            agent = path_segment(self._required_id(ctx, handle, "agent_id"))
            return as_mapping(api.call("GET", f"{self._v7_base(api.auth)}/agents/{agent}",
                                       operation="query"))
        task = path_segment(self._required_id(ctx, handle, "task_id"))
        token = self._required_id(ctx, handle, "builder_token_name")
        return as_mapping(api.call("GET", f"{self._v6_base(api.auth)}/tasks/{task}",
                                   operation="query", params={"builderToken": token}))

    @staticmethod
    def _required_id(ctx: ProviderContext, handle: JobHandle, name: str) -> str:
        value = handle.vendor_ids.get(name)
        if not value:
            raise ProviderError(f"job {handle.job_id} has no {name} (was it started?)",
                                provider=ctx.provider, operation="status")
        return value

    def status(self, ctx: ProviderContext, handle: JobHandle) -> JobStatus:
        """The normalized task state; a task Agora no longer knows has ended."""
        try:
            body = self.query(ctx, handle)
        except NotFoundError as exc:
            return ended_status(exc.message)
        return normalize_stt_status(self._version(handle), str_field(body, "status"), body)

    def fetch(self, ctx: ProviderContext, handle: JobHandle) -> TaskInfo:
        """The task's facts as a :class:`TaskInfo` (ids, state, channel, creation time)."""
        version = self._version(handle)
        try:
            body: Mapping[str, Any] = self.query(ctx, handle)
            status = normalize_stt_status(version, str_field(body, "status"), body)
        except NotFoundError as exc:
            body, status = {}, ended_status(exc.message)
        state = handle.vendor_state
        details: dict[str, Any] = {
            "api_version": version,
            "channel": state.get("channel"),
            "instance_id": state.get("instance_id"),
            "create_ts": body.get("createTs", body.get("create_ts", state.get("create_ts"))),
            "shared": bool(state.get("shared")),
        }
        if "builder_token_name" in handle.vendor_ids:
            details["builder_token_name"] = handle.vendor_ids["builder_token_name"]
        task_id = handle.vendor_ids.get("agent_id") or handle.vendor_ids.get("task_id")
        return TaskInfo(provider=ctx.provider, job_id=handle.job_id, task_id=task_id,
                        state=status.state, vendor_state=status.vendor_state, details=details,
                        raw=dict(body))

    def close(self, ctx: ProviderContext, handle: JobHandle) -> None:
        """Stop the task, unless other jobs still use it (then this job only lets go)."""
        channel = str(handle.vendor_state.get("channel") or "")
        registry = self.registry_of(ctx, handle)
        with registry.locked(self._channel_key(ctx, channel)) as slot:
            if slot.data and slot.data.get("vendor_ids") == handle.vendor_ids:
                others = [j for j in self.registry_jobs(slot.data) if j != handle.job_id]
                if others:
                    slot.data = {**slot.data, "job_ids": others}
                    ctx.log.info("agora.stt.detached", job_id=handle.job_id, still_used_by=others)
                    return
                slot.data = None
            self._stop(ctx, handle)

    def _stop(self, ctx: ProviderContext, handle: JobHandle) -> None:
        api = self._handle_api(ctx, handle)
        try:
            if self._version(handle) == "v7":
                agent = path_segment(self._required_id(ctx, handle, "agent_id"))
                api.request("POST", f"{self._v7_base(api.auth)}/agents/{agent}/leave",
                            operation="leave", idempotent=True)
            else:
                task = path_segment(self._required_id(ctx, handle, "task_id"))
                token = self._required_id(ctx, handle, "builder_token_name")
                api.request("DELETE", f"{self._v6_base(api.auth)}/tasks/{task}",
                            operation="stop", params={"builderToken": token})
        except (NotFoundError, TaskConflictError) as exc:
            # Already ended (404) or already stopped (code 49): closing is idempotent.
            ctx.log.info("agora.stt.already_stopped", job_id=handle.job_id, error=exc.message)

    # --- update -----------------------------------------------------------------------

    def update(
        self,
        ctx: ProviderContext,
        handle: JobHandle,
        *,
        languages: Sequence[str] | None = None,
        uid_languages: Mapping[str, Sequence[str]] | None = None,
        subscribe_audio_uids: Sequence[str] | None = None,
        translate: Mapping[str, Sequence[str]] | bool | None = None,
    ) -> JobHandle:
        """Change a running task's languages, subscribed uids or translation.

        Every version sends ``sequenceId`` (strictly increasing per task, kept in the
        handle's ``vendor_state`` and in the channel's lock record, so processes never
        reuse one) and ``updateMask`` as query parameters; v7 ``POST``s to
        ``.../agents/{id}/update``, v5/v6 ``PATCH`` the task. Returns the handle to store
        (it carries the new sequenceId).
        """
        version = self._version(handle)
        body, mask = update_body(languages=languages, uid_languages=uid_languages,
                                 subscribe_audio_uids=subscribe_audio_uids, translate=translate)
        try:
            validate_update_body(body, version, mask)
        except FieldError as exc:
            raise self.invalid(ctx, exc, label="update") from None
        api = self._handle_api(ctx, handle)
        params = {"updateMask": ",".join(mask)}
        if version == "v7":
            # v7 takes sequenceId and updateMask as query parameters too (its reference
            # lists both as required); the body alone is not enough.
            agent = path_segment(self._required_id(ctx, handle, "agent_id"))
            method, path = "POST", f"{self._v7_base(api.auth)}/agents/{agent}/update"
        else:
            task = path_segment(self._required_id(ctx, handle, "task_id"))
            params["builderToken"] = self._required_id(ctx, handle, "builder_token_name")
            method, path = "PATCH", f"{self._v6_base(api.auth)}/tasks/{task}"
        registry = self.registry_of(ctx, handle)
        channel = str(handle.vendor_state.get("channel") or "")
        with registry.locked(self._channel_key(ctx, channel)) as slot:
            recorded = slot.data if slot.data and slot.data.get(
                "vendor_ids") == handle.vendor_ids else None
            sequence = send_sequenced(ctx, api, path, next_sequence(handle.vendor_state, recorded),
                                      params=params, json=body, method=method)
            if recorded is not None:
                slot.data = {**recorded, "vendor_state": {
                    **as_mapping(recorded.get("vendor_state")), "sequence_id": sequence}}
        return handle.with_vendor(state={"sequence_id": sequence})

    # --- recover ----------------------------------------------------------------------

    def recover(self, ctx: ProviderContext, request: JobRequest,
                handle: JobHandle) -> JobHandle | None:
        """Find the task of a start whose outcome is unknown.

        First the channel's lock record (a start that completed there), then for v7 the
        agent list, by the name derived from the idempotency key. A v5/v6 task cannot be
        looked up without its id: ``None`` lets the core send the start again, and that
        resend reuses the recorded builder token, so Agora names the task the first
        attempt started (code 49) instead of starting another.
        """
        plan = self.plan(ctx, request, handle)
        registry = self.registry(ctx, plan.lock_dir)
        data = registry.read(self._channel_key(ctx, plan))
        if data and handle.job_id in self.registry_jobs(data):
            recorded_ids, recorded_state = data.get("vendor_ids"), data.get("vendor_state")
            if isinstance(recorded_ids, dict) and isinstance(recorded_state, dict):
                return handle.with_vendor(recorded_ids, recorded_state)
        if plan.version != "v7":
            return None
        found = self._find_agent(self.api(ctx, plan.channel), plan.name)
        if found is None:
            return None
        ids = {"agent_id": found.agent_id}
        state: dict[str, Any] = {"api_version": "v7", "channel": plan.channel,
                                 "instance_id": plan.name, "create_ts": found.create_ts}
        state.update(self.lock_state(plan.lock_dir))
        if plan.dedupe:
            # Record the found agent for its channel, so later starts join it and closing
            # the last job stops it.
            with registry.locked(self._channel_key(ctx, plan)) as slot:
                recorded = slot.data or {}
                if recorded.get("vendor_ids") == ids:
                    slot.data = {**recorded,
                                 "job_ids": [*self.registry_jobs(recorded), handle.job_id]}
                elif not recorded.get("vendor_ids"):
                    slot.data = {"job_ids": [handle.job_id], "vendor_ids": ids,
                                 "vendor_state": state, "started_at": time.time()}
        return handle.with_vendor(ids, state)


def _found_raw(agent: AgentAnswer) -> dict[str, Any]:
    """An agent found in the list, in the shape of a join answer (for the job's status)."""
    return {k: v for k, v in attrs.asdict(agent).items() if v is not None}
