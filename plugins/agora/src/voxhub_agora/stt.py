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
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
from voxhub.errors import (
    InvalidInputError,
    NotFoundError,
    ProviderError,
    VoxhubError,
)
from voxhub.models import JobHandle, JobKind, JobRequest, JobState, JobStatus, RtcChannel, TaskInfo
from voxhub.provider import (
    Capability,
    OptionSpec,
    PollingHints,
    ProviderContext,
    ProviderInfo,
    Submitted,
)
from voxhub.redact import Secret
from voxhub.transport import RetryPolicy

from ._base import BUILDER_TOKEN_VALIDITY, AgoraProvider, BuilderToken
from ._checks import FieldError
from .accesstoken import RtcRole
from .api import AgoraApi
from .auth import CREDENTIALS, MAX_TOKEN_EXPIRE, AgoraAuth
from .errors import BuilderTokenError, TaskConflictError, retry_delays
from .locks import Slot
from .stt_config import (
    API_VERSIONS,
    MAX_IDLE_TIME,
    MAX_UNSUBSCRIBE,
    SLICE_DURATION,
    option_for_path,
    start_body,
    update_body,
    validate_start_body,
    validate_update_body,
)

__all__ = ["AgoraSttProvider", "normalize_stt_status"]

# v5/v6 task statuses (spec 1.8) and v7 agent statuses (1.10).
_V6_STATES: dict[str, JobState] = {
    "IDLE": JobState.QUEUED,
    "PREPARING": JobState.QUEUED,
    "PREPARED": JobState.QUEUED,
    "STARTING": JobState.QUEUED,
    "CREATED": JobState.QUEUED,
    "STARTED": JobState.RUNNING,
    "IN_PROGRESS": JobState.RUNNING,
    "STOPPING": JobState.RUNNING,  # not over until STOPPED
    "STOPPED": JobState.SUCCEEDED,
    "FAILURE_STOP": JobState.FAILED,
}
_V7_STATES: dict[str, JobState] = {
    "IDLE": JobState.QUEUED,
    "STARTING": JobState.QUEUED,
    "RUNNING": JobState.RUNNING,
    "RECOVERING": JobState.RUNNING,
    "STOPPING": JobState.RUNNING,
    "STOPPED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
}

#: Re-acquire a builder token this long before its 5 minutes are up (the start request
#: itself takes time, and clocks differ).
_TOKEN_MARGIN = 15.0
_START_ATTEMPTS = 3
DEFAULT_BOT_TOKEN_EXPIRE = 86_400


def normalize_stt_status(version: str, vendor: str | None, raw: Any = None) -> JobStatus:
    """The normalized status for an STT task/agent status string of ``version``.

    An unknown string is reported as running (keeping the vendor's word): a new
    intermediate state must not end a live transcription early.
    """
    table = _V7_STATES if version == "v7" else _V6_STATES
    text = (vendor or "").strip()
    state = table.get(text.upper(), JobState.RUNNING)
    reason = None
    if state is JobState.FAILED:
        reason = "stopping the task failed" if text.upper() == "FAILURE_STOP" else "agent failed"
    return JobStatus(state, vendor_state=text or None, reason=reason, raw=raw)


def _ended_status(message: str, raw: Any = None) -> JobStatus:
    return JobStatus(JobState.SUCCEEDED, vendor_state="ENDED",
                     reason="the task has ended (Agora no longer lists it)", detail=message,
                     raw=raw)


def _plain(value: Any) -> Any:
    return value.reveal() if isinstance(value, Secret) else value


_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("api_version", str, "v7 (agents API, default) or v6 / v5 (builderToken API)",
               choices=API_VERSIONS, default="v7"),
    OptionSpec("languages", list, "languages to recognise, e.g. en-US,ja-JP (v6/v7: up to 4, "
               "v5: 2); defaults to the request's language", item_type=str, max_items=4),
    OptionSpec("uid_languages", dict, "per-speaker languages (v6/v7), uid -> list of languages, "
               "up to 5 uids with up to 4 languages each"),
    OptionSpec("max_idle_time", int, "seconds without a host before the task ends itself "
               "(default 30)", min=MAX_IDLE_TIME[0], max=MAX_IDLE_TIME[1]),
    OptionSpec("sub_bot_uid", str, "uid of the bot that subscribes to the audio (default: "
               "derived from the channel)"),
    OptionSpec("pub_bot_uid", str, "uid of the bot that publishes captions (default: derived "
               "from the channel)"),
    OptionSpec("sub_bot_token", str, "RTC token of the subscribing bot (default: built from "
               "app_certificate)", secret=True),
    OptionSpec("pub_bot_token", str, "RTC token of the publishing bot (default: built from "
               "app_certificate)", secret=True),
    OptionSpec("bot_token_expire", int, "lifetime of the bot tokens built here, seconds",
               min=60, max=MAX_TOKEN_EXPIRE, default=DEFAULT_BOT_TOKEN_EXPIRE),
    OptionSpec("subscribe_audio_uids", list, 'only transcribe these uids (v5: 3, v6/v7: 32, '
               'or ["all"])', item_type=str, max_items=32),
    OptionSpec("unsubscribe_audio_uids", list, "uids not to transcribe (v6/v7, up to 5)",
               item_type=str, max_items=MAX_UNSUBSCRIBE),
    OptionSpec("encryption_mode", int, "the channel's encryption: 0 none, 1 AES_128_XTS, "
               "2 AES_128_ECB, 3 AES_256_XTS, 4 SM4_128_ECB, 5 AES_128_GCM, 6 AES_256_GCM, "
               "7 AES_128_GCM2, 8 AES_256_GCM2", min=0, max=8),
    OptionSpec("encryption_secret", str, "encryption key (required when encryption_mode is "
               "1..8)", secret=True),
    OptionSpec("encryption_salt", str, "base64 of a 32-byte salt (modes 7 and 8)", secret=True),
    OptionSpec("enable_json_protocol", bool, "push captions as gzip JSON instead of Protobuf"),
    OptionSpec("transfer_mode", list, "v5 only: channels captions are pushed on (RTC, RTM)",
               item_type=str, max_items=2),
    OptionSpec("translate", dict, "translation: source language -> list of up to 5 targets "
               "(v6/v7: up to 4 sources, v5: 2)"),
    OptionSpec("force_translate_interval", int, "v5 only: seconds between forced translations",
               min=2, max=5),
    OptionSpec("caption_bucket", str, "caption files: storage bucket"),
    OptionSpec("caption_vendor", int, "caption files: storage vendor (1 Amazon S3, 5 Azure, "
               "6 Google Cloud; 1..8)", min=1, max=8),
    OptionSpec("caption_region", int, "caption files: storage region code", min=0),
    OptionSpec("caption_access_key", str, "caption files: storage access key", secret=True),
    OptionSpec("caption_secret_key", str, "caption files: storage secret key", secret=True),
    OptionSpec("caption_file_name_prefix", list, "caption files: path segments (letters and "
               "digits, 128 characters in total)", item_type=str),
    OptionSpec("caption_slice_duration", int, "caption files: seconds per file (default 60)",
               min=SLICE_DURATION[0], max=SLICE_DURATION[1]),
    OptionSpec("instance_id", str, "instanceId (v5/v6) / agent name (v7); default: derived "
               "from the idempotency key", max_length=64),
    OptionSpec("dedupe_channel", bool, "reuse a live task of this channel instead of starting "
               "another (default true)", default=True),
    OptionSpec("lock_dir", str, "directory of the duplicate-start locks (default: the job "
               "store's directory)"),
)


@attrs.frozen
class StartPlan:
    """A validated start: API version, channel, body (without generated tokens), name."""

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
    info: ClassVar[ProviderInfo] = ProviderInfo(
        name="agora-stt",
        kinds=frozenset({JobKind.CHANNEL_TRANSCRIPTION}),
        description="Agora Real-Time STT: live transcription and translation of an RTC "
                    "channel (v7 agents API; v5/v6 builderToken API selectable)",
        capabilities=frozenset({Capability.CANCEL, Capability.RECOVER}),
        options=_OPTIONS,
        credentials=CREDENTIALS,
        # No default: an unset base_url means "api.agora.io, then api.sd-rtn.com".
        default_base_url=None,
        retry=RetryPolicy(max_attempts=4, backoff_base=1.0, backoff_max=6.0),
        polling=PollingHints(first_poll=2.0, typical_duration=3600.0, max_interval=30.0),
        docs_url="https://docs.agora.io/en/real-time-stt/overview/product-overview",
    )

    # --- validation -------------------------------------------------------------------

    def validate(self, ctx: ProviderContext, request: JobRequest) -> JobRequest:
        """Check every start field before any request (raises :class:`InvalidInputError`)."""
        self.plan(ctx, request, None)
        return request

    def plan(
        self, ctx: ProviderContext, request: JobRequest, handle: JobHandle | None
    ) -> StartPlan:
        """Validate ``request`` completely and return what a start sends."""
        if not isinstance(request.media, RtcChannel):
            raise InvalidInputError(
                "agora-stt transcribes a live RTC channel: give the media as rtc:CHANNEL",
                field="media", provider=ctx.provider, operation="validate",
            )
        options = self.info.validate_options(request.options)
        version = str(options.get("api_version") or "v7")
        if not options.get("languages"):
            if not request.language:
                raise InvalidInputError(
                    "option 'languages' is required (or give the request a language), "
                    "e.g. languages=en-US", field="languages", provider=ctx.provider,
                    operation="validate",
                )
            options["languages"] = [request.language]
        try:
            name = self.instance_id(options, handle, request.idempotency_key, "vxstt")
            body = start_body(options, request.media.channel, version, name=name)
            validate_start_body(body, version)
        except FieldError as exc:
            option = option_for_path(exc.path)
            detail = "" if option == exc.path else f" ({exc.path})"
            raise InvalidInputError(
                f"option {option!r}{detail}: {exc.message}", field=option,
                provider=ctx.provider, operation="validate",
            ) from None
        expire = int(options.get("bot_token_expire") or DEFAULT_BOT_TOKEN_EXPIRE)
        dedupe = options.get("dedupe_channel")
        return StartPlan(version, request.media.channel, body, name,
                         True if dedupe is None else bool(dedupe), expire,
                         options.get("lock_dir"))

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
        auth = self.auth(ctx)
        api = self.api(ctx)
        if not plan.dedupe:
            ids, state, status = self._start(ctx, api, auth, plan, builder_token, None)
            return Submitted(handle.with_vendor(ids, state), status=status)
        registry = self.registry(ctx, plan.lock_dir)
        with registry.locked(self._channel_key(auth, plan.channel)) as slot:
            data = slot.data or {}
            if data.get("vendor_ids"):
                found = self._reuse(ctx, api, data, handle)
                if found is not None:
                    slot.data = {**data, "job_ids": [*self.registry_jobs(data), handle.job_id]}
                    return found
            # The recorded task (if any) has ended; an earlier attempt's token stays usable.
            slot.data = {"pending": data["pending"]} if data.get("pending") else None
            if builder_token is None and plan.version != "v7":
                builder_token = self.pending_token(ctx, data, plan.name)
            ids, state, status = self._start(ctx, api, auth, plan, builder_token, slot)
            slot.data = {"job_ids": [handle.job_id], "vendor_ids": ids, "vendor_state": state,
                         "started_at": time.time()}
        return Submitted(handle.with_vendor(ids, state), status=status)

    @staticmethod
    def _channel_key(auth: AgoraAuth, channel: str) -> str:
        return f"agora-stt|{auth.app_id.lower()}|{channel}"

    def _reuse(self, ctx: ProviderContext, api: AgoraApi, data: Mapping[str, Any],
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
        self, ctx: ProviderContext, api: AgoraApi, auth: AgoraAuth, plan: StartPlan,
        builder_token: BuilderToken | None, slot: Slot | None,
    ) -> tuple[dict[str, str], dict[str, Any], JobStatus]:
        body = self._with_bot_tokens(ctx, auth, plan)
        state: dict[str, Any] = {"api_version": plan.version, "channel": plan.channel,
                                 "instance_id": plan.name}
        if plan.lock_dir:
            state["lock_dir"] = plan.lock_dir
        if plan.version == "v7":
            agent_id, answer = self._join(ctx, api, auth, plan, body)
            status = normalize_stt_status("v7", _str(answer, "status"), answer)
            state["create_ts"] = answer.get("create_ts") if answer else None
            return {"agent_id": agent_id}, state, status
        task_id, token, answer = self._start_v6(ctx, api, auth, plan, body, builder_token, slot)
        state["sequence_id"] = 0  # updates send 1, 2, ... (strictly above anything used)
        state["create_ts"] = answer.get("createTs") if answer else None
        status = normalize_stt_status(plan.version, _str(answer, "status") or "STARTED", answer)
        return {"task_id": task_id, "builder_token_name": token.name}, state, status

    def _with_bot_tokens(self, ctx: ProviderContext, auth: AgoraAuth,
                         plan: StartPlan) -> dict[str, Any]:
        """The body with bot RTC tokens built from the app certificate where none was given.

        Without a certificate nothing is added (a project without one needs no tokens).
        """
        body = dict(plan.body)
        rtc = dict(body["rtcConfig"])
        if auth.can_sign:
            now = ctx.clock.time()
            for uid_key, token_key, role in (("subBotUid", "subBotToken", RtcRole.SUBSCRIBER),
                                             ("pubBotUid", "pubBotToken", RtcRole.PUBLISHER)):
                if not rtc.get(token_key):
                    rtc[token_key] = auth.rtc_token(
                        plan.channel, int(rtc[uid_key]), role=role,
                        expire=plan.bot_token_expire, now=now,
                    )
        body["rtcConfig"] = rtc
        return body

    # --- v7 ---------------------------------------------------------------------------

    def _v7_base(self, auth: AgoraAuth) -> str:
        return f"/api/speech-to-text/v1/projects/{auth.app_id}"

    def _join(self, ctx: ProviderContext, api: AgoraApi, auth: AgoraAuth, plan: StartPlan,
              body: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
        try:
            answer = api.call("POST", f"{self._v7_base(auth)}/join", operation="join", json=body,
                              channel=plan.channel)
        except TaskConflictError as exc:
            # Same name = same input (idempotency key): the first join won; use its agent.
            agent = exc.task_id
            found = self._find_agent(ctx, api, auth, plan.name, plan.channel)
            if found is not None:
                return _str(found, "agent_id") or agent or "", found
            if agent:
                return agent, {"agent_id": agent}
            raise
        data = _mapping(answer.body)
        agent_id = _str(data, "agent_id")
        if not agent_id:
            raise ProviderError("Agora's join answer has no agent_id", provider=ctx.provider,
                                operation="join", request_id=answer.request_id)
        return agent_id, data

    def _find_agent(self, ctx: ProviderContext, api: AgoraApi, auth: AgoraAuth, name: str,
                    channel: str) -> Mapping[str, Any] | None:
        """The live agent called ``name`` (from the list API), if any."""
        answer = api.call("GET", f"{self._v7_base(auth)}/agents", operation="list",
                          channel=channel)
        body = _mapping(answer.body)
        data = _mapping(body.get("data")) if "data" in body else body
        items = data.get("list") or data.get("agents") or []
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, Mapping) or item.get("name") != name:
                continue
            state = normalize_stt_status("v7", _str(item, "status"))
            if not state.is_terminal:
                return item
        return None

    # --- v5 / v6 ----------------------------------------------------------------------

    def _v6_base(self, auth: AgoraAuth) -> str:
        return f"/v1/projects/{auth.app_id}/rtsc/speech-to-text"

    def acquire_builder_token(self, ctx: ProviderContext, instance_id: str,
                              channel: str = "") -> BuilderToken:
        """Acquire a builder token (v5/v6); it must start a task within 5 minutes."""
        auth = self.auth(ctx)
        answer = self.api(ctx).call(
            "POST", f"{self._v6_base(auth)}/builderTokens", operation="acquire",
            json={"instanceId": instance_id}, channel=channel,
        )
        data = _mapping(answer.body)
        name = _str(data, "tokenName")
        if not name:
            raise ProviderError("Agora's acquire answer has no tokenName", provider=ctx.provider,
                                operation="acquire", request_id=answer.request_id)
        create_ts = data.get("createTs")
        return BuilderToken(name, instance_id, ctx.clock.monotonic(),
                            create_ts if isinstance(create_ts, int) else None)

    def _start_v6(
        self, ctx: ProviderContext, api: AgoraApi, auth: AgoraAuth, plan: StartPlan,
        body: Mapping[str, Any], token: BuilderToken | None, slot: Slot | None,
    ) -> tuple[str, BuilderToken, Mapping[str, Any]]:
        last: VoxhubError | None = None
        for _attempt in range(_START_ATTEMPTS):
            if token is None or token.age(ctx.clock) > BUILDER_TOKEN_VALIDITY - _TOKEN_MARGIN:
                if token is not None:
                    ctx.log.info("agora.stt.token_expired_locally", age=token.age(ctx.clock))
                token = self.acquire_builder_token(ctx, plan.name, plan.channel)
                self.remember_token(slot, token)
            try:
                answer = api.call("POST", f"{self._v6_base(auth)}/tasks", operation="start",
                                  params={"builderToken": token.name}, json=body,
                                  channel=plan.channel)
            except BuilderTokenError as exc:
                # Expired or mismatched token: a new one is allowed to start the task.
                ctx.log.info("agora.stt.reacquire", reason=exc.message,
                             request_id=exc.request_id)
                last, token = exc, None
                continue
            except TaskConflictError as exc:
                # This token already started a task (an earlier attempt whose answer was
                # lost): that task is ours.
                if exc.task_id:
                    return exc.task_id, token, {"taskId": exc.task_id}
                raise
            data = _mapping(answer.body)
            task_id = _str(data, "taskId")
            if not task_id:
                raise ProviderError("Agora's start answer has no taskId",
                                    provider=ctx.provider, operation="start",
                                    request_id=answer.request_id)
            return task_id, token, data
        assert last is not None
        raise last

    # --- status, fetch, close -------------------------------------------------------------

    @staticmethod
    def _version(handle: JobHandle) -> str:
        version = str(handle.vendor_state.get("api_version") or "")
        if version in API_VERSIONS:
            return version
        return "v7" if "agent_id" in handle.vendor_ids else "v6"

    def query(self, ctx: ProviderContext, handle: JobHandle) -> Mapping[str, Any]:
        """Agora's own answer about the task (raises :class:`NotFoundError` once it ended)."""
        auth = self.auth(ctx)
        api = self.api(ctx)
        channel = str(handle.vendor_state.get("channel") or "")
        if self._version(handle) == "v7":
            agent = self._required_id(ctx, handle, "agent_id")
            answer = api.call("GET", f"{self._v7_base(auth)}/agents/{agent}", operation="query",
                              channel=channel)
        else:
            task = self._required_id(ctx, handle, "task_id")
            token = self._required_id(ctx, handle, "builder_token_name")
            answer = api.call("GET", f"{self._v6_base(auth)}/tasks/{task}", operation="query",
                              params={"builderToken": token}, channel=channel)
        return _mapping(answer.body)

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
            return _ended_status(exc.message)
        return normalize_stt_status(self._version(handle), _str(body, "status"), body)

    def fetch(self, ctx: ProviderContext, handle: JobHandle) -> TaskInfo:
        """The task's facts as a :class:`TaskInfo` (ids, state, channel, creation time)."""
        version = self._version(handle)
        try:
            body: Mapping[str, Any] = self.query(ctx, handle)
            status = normalize_stt_status(version, _str(body, "status"), body)
        except NotFoundError as exc:
            body, status = {}, _ended_status(exc.message)
        details: dict[str, Any] = {
            "api_version": version,
            "channel": handle.vendor_state.get("channel"),
            "instance_id": handle.vendor_state.get("instance_id"),
            "create_ts": body.get("createTs", body.get("create_ts",
                                                       handle.vendor_state.get("create_ts"))),
            "shared": bool(handle.vendor_state.get("shared")),
        }
        if "builder_token_name" in handle.vendor_ids:
            details["builder_token_name"] = handle.vendor_ids["builder_token_name"]
        task_id = handle.vendor_ids.get("agent_id") or handle.vendor_ids.get("task_id")
        return TaskInfo(provider=ctx.provider, job_id=handle.job_id, task_id=task_id,
                        state=status.state, vendor_state=status.vendor_state, details=details,
                        raw=dict(body))

    def close(self, ctx: ProviderContext, handle: JobHandle) -> None:
        """Stop the task, unless other jobs still use it (then this job only lets go)."""
        auth = self.auth(ctx)
        channel = str(handle.vendor_state.get("channel") or "")
        lock_dir = handle.vendor_state.get("lock_dir")
        registry = self.registry(ctx, str(lock_dir) if lock_dir else None)
        with registry.locked(self._channel_key(auth, channel)) as slot:
            if slot.data and slot.data.get("vendor_ids") == handle.vendor_ids:
                others = [j for j in self.registry_jobs(slot.data) if j != handle.job_id]
                if others:
                    slot.data = {**slot.data, "job_ids": others}
                    ctx.log.info("agora.stt.detached", job_id=handle.job_id, still_used_by=others)
                    return
                slot.data = None
            self._stop(ctx, handle)

    def _stop(self, ctx: ProviderContext, handle: JobHandle) -> None:
        auth = self.auth(ctx)
        api = self.api(ctx)
        channel = str(handle.vendor_state.get("channel") or "")
        try:
            if self._version(handle) == "v7":
                agent = self._required_id(ctx, handle, "agent_id")
                api.call("POST", f"{self._v7_base(auth)}/agents/{agent}/leave",
                         operation="leave", channel=channel)
            else:
                task = self._required_id(ctx, handle, "task_id")
                token = self._required_id(ctx, handle, "builder_token_name")
                api.call("DELETE", f"{self._v6_base(auth)}/tasks/{task}", operation="stop",
                         params={"builderToken": token}, channel=channel)
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

        v5/v6 send ``sequenceId`` (strictly increasing per task, kept in the handle's
        ``vendor_state`` and in the channel's lock record, so processes never reuse one)
        and ``updateMask``. Returns the handle to store (it carries the new sequenceId).
        """
        version = self._version(handle)
        body, mask = update_body(languages=languages, uid_languages=uid_languages,
                                 subscribe_audio_uids=subscribe_audio_uids, translate=translate)
        try:
            validate_update_body(body, version, mask)
        except FieldError as exc:
            raise self.invalid(ctx, exc, label="update") from None
        auth = self.auth(ctx)
        api = self.api(ctx)
        channel = str(handle.vendor_state.get("channel") or "")
        if version == "v7":
            agent = self._required_id(ctx, handle, "agent_id")
            api.call("POST", f"{self._v7_base(auth)}/agents/{agent}/update", operation="update",
                     json=body, channel=channel)
            return handle
        task = self._required_id(ctx, handle, "task_id")
        token = self._required_id(ctx, handle, "builder_token_name")
        lock_dir = handle.vendor_state.get("lock_dir")
        registry = self.registry(ctx, str(lock_dir) if lock_dir else None)
        with registry.locked(self._channel_key(auth, channel)) as slot:
            recorded = slot.data if slot.data and slot.data.get(
                "vendor_ids") == handle.vendor_ids else None
            sequence = _next_sequence(handle.vendor_state, recorded)
            sequence = _send_sequenced(
                ctx, api, "PATCH", f"{self._v6_base(auth)}/tasks/{task}", sequence,
                params={"builderToken": token, "updateMask": ",".join(mask)}, json=body,
                channel=channel,
            )
            if recorded is not None:
                slot.data = {**recorded, "vendor_state": {**recorded.get("vendor_state", {}),
                                                          "sequence_id": sequence}}
        return handle.with_vendor(state={"sequence_id": sequence})

    # --- recover ----------------------------------------------------------------------

    def recover(self, ctx: ProviderContext, request: JobRequest,
                handle: JobHandle) -> JobHandle | None:
        """Find the task of a start whose answer was lost: the channel's lock record, then
        (v7) the agent list by the name derived from the idempotency key."""
        plan = self.plan(ctx, request, handle)
        auth = self.auth(ctx)
        data = self.registry(ctx, plan.lock_dir).read(self._channel_key(auth, plan.channel))
        if data and handle.job_id in self.registry_jobs(data):
            ids, state = data.get("vendor_ids"), data.get("vendor_state")
            if isinstance(ids, dict) and isinstance(state, dict):
                return handle.with_vendor(ids, state)
        if plan.version != "v7":
            return None
        found = self._find_agent(ctx, self.api(ctx), auth, plan.name, plan.channel)
        if found is None or not _str(found, "agent_id"):
            return None
        return handle.with_vendor(
            {"agent_id": _str(found, "agent_id") or ""},
            {"api_version": "v7", "channel": plan.channel, "instance_id": plan.name},
        )


def _next_sequence(state: Mapping[str, Any], recorded: Mapping[str, Any] | None) -> int:
    """One above the highest sequenceId known to this handle or to the lock record."""
    known = [state.get("sequence_id")]
    if recorded is not None:
        known.append(_mapping(recorded.get("vendor_state")).get("sequence_id"))
    numbers = [int(v) for v in known if isinstance(v, int | str) and str(v).lstrip("-").isdigit()]
    return max(numbers, default=-1) + 1


def _send_sequenced(
    ctx: ProviderContext, api: AgoraApi, method: str, path: str, sequence: int, *,
    params: Mapping[str, Any], json: Any, channel: str,
) -> int:
    """Send a sequenced update; a retry uses the next sequenceId. Returns the one applied.

    Why a new id per attempt: an attempt whose answer was lost may have been applied,
    and the server refuses an id it has already seen; the full replacement makes
    applying the same change twice harmless.
    """
    attempt = 0
    while True:
        try:
            api.call(method, path, operation="update", params={**params, "sequenceId": sequence},
                     json=json, channel=channel, retry=False, idempotent=False)
            return sequence
        except VoxhubError as exc:
            delays = retry_delays(exc) or (
                (1.0, 3.0, 6.0) if getattr(exc, "in_doubt", False) else ())
            if attempt >= len(delays):
                raise
            ctx.log.warning("agora.update_retry", sequence_id=sequence, error=str(exc),
                            delay=delays[attempt])
            ctx.clock.sleep(delays[attempt])
            attempt += 1
            sequence += 1


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(data: Mapping[str, Any] | None, key: str) -> str | None:
    if not data:
        return None
    value = data.get(key)
    return str(value) if value is not None and value != "" else None
