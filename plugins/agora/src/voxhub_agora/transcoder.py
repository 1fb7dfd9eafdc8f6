"""``agora-transcoder``: Agora Cloud Transcoder (``cloudTranscoderV2``).

Flow (spec 2.2): acquire a builder token with the services config, create the task
within 2 seconds of acquiring (Agora's advice; the token itself lives 5 minutes),
query, update by full-config replacement with a strictly increasing ``sequenceId``,
delete. The configuration comes from the ``config`` option (a mapping) or the
``config_file`` option (a JSON or TOML file) and is validated completely before any
request (:mod:`.transcoder_config`). RTC tokens missing from the configuration are
built from the app certificate: uid 0 for inputs (the transcoder joins with a random
uid) and the output's own ``rtcUid`` for outputs.

Agora allows 10 requests per second per account; ``requests_per_second=10`` makes the
core rate-limit every profile client-side.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from voxhub.plugin import (
    InvalidInputError,
    JobHandle,
    JobRequest,
    JobState,
    JobStatus,
    NotFoundError,
    ProviderContext,
    ProviderError,
    ProviderInfo,
    Submitted,
    TaskInfo,
    path_segment,
)

from ._checks import FieldError
from .accesstoken import RtcRole
from .api import TRANSCODER_HOSTS, AgoraApi
from .auth import AgoraAuth
from .errors import BuilderTokenError, TaskConflictError
from .locks import LockRecord
from .options import DEFAULT_TRANSCODER_TOKEN_EXPIRE, TRANSCODER_INFO
from .provider import (
    AgoraProvider,
    BuilderToken,
    as_mapping,
    next_sequence,
    send_sequenced,
    str_field,
)
from .schema import TaskAnswer
from .states import ended_status, normalize_transcoder_status
from .transcoder_config import RtcEndpoint, TranscoderConfig, load_config, transcoder_section

__all__ = ["AgoraTranscoderProvider", "normalize_transcoder_status"]

#: Agora's advice: create within this many seconds of acquiring (spec 2.2, seed).
CREATE_WINDOW = 2.0
#: A 404 this soon after create means "not visible yet", not "gone" (spec 2.10: poll
#: with 5/10/15 s back-off after a successful create).
NOT_VISIBLE_GRACE = 30.0
#: Creates refused for their builder token (expired, unknown) get a fresh one this often.
_CREATE_ATTEMPTS = 3
DEFAULT_TOKEN_EXPIRE = DEFAULT_TRANSCODER_TOKEN_EXPIRE
UPDATE_MASK = "services.cloudTranscoder.config"


class AgoraTranscoderProvider(AgoraProvider):
    """The ``agora-transcoder`` provider (see the module docstring)."""

    product = "Cloud Transcoder"
    info: ClassVar[ProviderInfo] = TRANSCODER_INFO
    # Seed 001 (the transcoder's reference) uses api.sd-rtn.com throughout.
    default_hosts = TRANSCODER_HOSTS

    # --- configuration ------------------------------------------------------------------

    def config_from(self, ctx: ProviderContext, options: Mapping[str, Any]) -> TranscoderConfig:
        """The validated configuration given by ``config`` or ``config_file`` (exactly one)."""
        inline, path = options.get("config"), options.get("config_file")
        if (inline is None) == (path is None):
            raise InvalidInputError(
                "give the transcoder configuration as exactly one of the options 'config' "
                "(a mapping) or 'config_file' (a JSON or TOML file)",
                field="config_file" if path is not None else "config",
                provider=ctx.provider, operation="validate",
            )
        try:
            document = load_config(path) if path is not None else inline
            return self.parse_config(ctx, document)
        except FieldError as exc:
            if exc.path == "config_file":
                raise InvalidInputError(exc.message, field="config_file", provider=ctx.provider,
                                        operation="validate") from None
            raise

    def parse_config(self, ctx: ProviderContext, document: Any) -> TranscoderConfig:
        """Validate a configuration document (any accepted shape) or a built config."""
        try:
            if isinstance(document, TranscoderConfig):
                config = document.validate()
            else:
                config = TranscoderConfig.from_dict(transcoder_section(document))
        except FieldError as exc:
            raise self.invalid(ctx, exc, label="transcoder config") from None
        for warning in config.warnings():
            ctx.log.warning("agora.transcoder.config_warning", warning=warning)
        missing = config.missing_tokens()
        if missing and not self.auth(ctx).can_sign:
            raise InvalidInputError(
                f"transcoder config: {missing[0]}: is required (give it, or set app_certificate "
                "so voxhub builds RTC tokens)", field=missing[0], provider=ctx.provider,
                operation="validate",
            )
        return config

    def _with_tokens(self, ctx: ProviderContext, config: TranscoderConfig,
                     expire: int) -> TranscoderConfig:
        auth = self.auth(ctx)
        if not auth.can_sign:
            return config
        now = ctx.clock.time()

        def make(_path: str, rtc: RtcEndpoint, is_input: bool) -> str:
            # Inputs: the transcoder's uid in the source channel is random -> uid 0 token.
            uid = 0 if is_input else rtc.uid
            role = RtcRole.SUBSCRIBER if is_input else RtcRole.PUBLISHER
            return auth.rtc_token(rtc.channel, uid, role=role, expire=expire, now=now)

        return config.with_tokens(make)

    def validate(self, ctx: ProviderContext, request: JobRequest) -> JobRequest:
        """Check the whole configuration before any request."""
        self.config_from(ctx, request.options)
        self._instance_id(ctx, request, None)
        return request

    def _instance_id(self, ctx: ProviderContext, request: JobRequest,
                     handle: JobHandle | None) -> str:
        try:
            return self.instance_id(request.options, handle, request.idempotency_key, "vxtc")
        except FieldError as exc:
            raise self.invalid(ctx, exc) from None

    # --- submit -----------------------------------------------------------------------

    @staticmethod
    def _base(auth: AgoraAuth) -> str:
        return f"/v1/projects/{auth.app_id}/rtsc/cloud-transcoder"

    def submit(self, ctx: ProviderContext, request: JobRequest, handle: JobHandle) -> Submitted:
        """Acquire and create the transcoding task (or find the one this input created)."""
        return self.create_task(ctx, request, handle)

    def create_task(self, ctx: ProviderContext, request: JobRequest, handle: JobHandle, *,
                    builder_token: BuilderToken | None = None) -> Submitted:
        """:meth:`submit` with an optional builder token acquired earlier."""
        options = request.options
        config = self.config_from(ctx, options)  # the body is built from it
        instance_id = self._instance_id(ctx, request, handle)
        expire = int(options.get("token_expire") or DEFAULT_TOKEN_EXPIRE)
        body = self._with_tokens(ctx, config, expire).services_body()
        channel = config.input_channel or config.output_channel or ""
        api = self.api(ctx, channel)
        lock_dir = options.get("lock_dir")
        with self.registry(ctx, lock_dir).locked(self._key(ctx, instance_id)) as slot:
            data = slot.data or {}
            if data.get("vendor_ids"):
                found = self._reuse(ctx, data, handle)
                if found is not None:
                    slot.data = {**data, "job_ids": [*self.registry_jobs(data), handle.job_id]}
                    return found
            slot.data = {"pending": data["pending"]} if data.get("pending") else None
            # An earlier attempt's token (its outcome unknown): reusing it makes Agora answer
            # with the task that attempt created (201) instead of creating a second one.
            pending = None if builder_token else self.pending_token(ctx, data, instance_id)
            task, token = self._create(ctx, api, instance_id, body, builder_token or pending,
                                       slot, check_window=pending is None)
            ids = {"task_id": api.read(task, TaskAnswer, "create").taskId,
                   "builder_token_name": token.name}
            state: dict[str, Any] = {
                "instance_id": instance_id, "channel": channel,
                "sequence_id": _int(task.get("sequenceId"), 0), "created_at": time.time(),
            }
            state.update(self.lock_state(lock_dir))
            slot.data = {"job_ids": [handle.job_id], "vendor_ids": ids, "vendor_state": state}
        return Submitted(handle.with_vendor(ids, state), status=self._status_of(task))

    def _key(self, ctx: ProviderContext, instance_id: str) -> str:
        return f"agora-transcoder|{self.auth(ctx).app_id.lower()}|{instance_id}"

    def _reuse(self, ctx: ProviderContext, data: Mapping[str, Any],
               handle: JobHandle) -> Submitted | None:
        ids, state = data.get("vendor_ids"), data.get("vendor_state")
        if not isinstance(ids, dict) or not isinstance(state, dict):
            return None
        found = handle.with_vendor({str(k): str(v) for k, v in ids.items()},
                                   {**state, "shared": True})
        status = self.status(ctx, found)
        if status.is_terminal:
            return None
        return Submitted(found, status=status)

    def acquire_builder_token(self, ctx: ProviderContext, instance_id: str,
                              body: Mapping[str, Any], channel: str = "") -> BuilderToken:
        """Acquire a builder token for ``instance_id``, sending the services config."""
        return self.acquire(ctx, f"{self._base(self.auth(ctx))}/builderTokens",
                            {"instanceId": instance_id, **body}, channel)

    def _create(self, ctx: ProviderContext, api: AgoraApi, instance_id: str,
                body: Mapping[str, Any], token: BuilderToken | None, slot: LockRecord | None, *,
                check_window: bool = True) -> tuple[Mapping[str, Any], BuilderToken]:
        # Only a create *refused* for its token is sent again here (with a new token): it
        # provably created nothing. An unknown outcome goes to the core (in_doubt).
        last: BuilderTokenError | None = None
        for _attempt in range(_CREATE_ATTEMPTS):
            age = 0.0 if token is None else token.age(ctx.clock.monotonic())
            if token is not None and check_window and age > CREATE_WINDOW:
                # Creating long after acquiring fails more often (seed): take a fresh token.
                ctx.log.info("agora.transcoder.token_stale", age=round(age, 3))
                token = None
            if token is None:
                token = self.acquire_builder_token(ctx, instance_id, body, api.channel)
                self.remember_token(slot, token)
                check_window = True
            try:
                response = api.request("POST", f"{self._base(api.auth)}/tasks",
                                       operation="create", params={"builderToken": token.name},
                                       json=body)
            except BuilderTokenError as exc:
                ctx.log.info("agora.transcoder.reacquire", reason=exc.message,
                             request_id=exc.request_id)
                last, token = exc, None
                continue
            except TaskConflictError as exc:
                raise TaskConflictError(
                    f"a transcoding task with instanceId {instance_id} already exists and is not "
                    "known to this machine's lock records; delete it or use another instance_id "
                    f"({exc.message})", provider=ctx.provider, operation="create",
                    status=exc.status, code=exc.code, request_id=exc.request_id,
                ) from None
            if response.status == 201:
                # 201: this builder token already runs a task (a repeated create whose first
                # answer was lost); the answer describes that task.
                ctx.log.info("agora.transcoder.existing_task",
                             request_id=api.request_id(response))
            return as_mapping(api.json(response, "create")), token
        assert last is not None
        raise last

    # --- status, fetch, close -----------------------------------------------------------

    def query(self, ctx: ProviderContext, handle: JobHandle) -> Mapping[str, Any]:
        """Agora's task object (raises :class:`NotFoundError` once the task is gone)."""
        task, token = self._ids(ctx, handle)
        api = self._handle_api(ctx, handle)
        return as_mapping(api.call("GET", f"{self._base(api.auth)}/tasks/{path_segment(task)}",
                                   operation="query", params={"builderToken": token}))

    def _handle_api(self, ctx: ProviderContext, handle: JobHandle) -> AgoraApi:
        return self.api(ctx, str(handle.vendor_state.get("channel") or ""))

    @staticmethod
    def _ids(ctx: ProviderContext, handle: JobHandle) -> tuple[str, str]:
        task = handle.vendor_ids.get("task_id")
        token = handle.vendor_ids.get("builder_token_name")
        if not task or not token:
            raise ProviderError(f"job {handle.job_id} has no task id / builder token (was it "
                                "created?)", provider=ctx.provider, operation="status")
        return task, token

    @staticmethod
    def _status_of(task: Mapping[str, Any]) -> JobStatus:
        service = as_mapping(as_mapping(task.get("services")).get("cloudTranscoder"))
        return normalize_transcoder_status(str_field(task, "status"),
                                           str_field(service, "status"), task)

    def status(self, ctx: ProviderContext, handle: JobHandle) -> JobStatus:
        """The normalized task state (see :func:`normalize_transcoder_status`)."""
        try:
            return self._status_of(self.query(ctx, handle))
        except NotFoundError as exc:
            return self._not_found_status(ctx, handle, exc)

    def _not_found_status(self, ctx: ProviderContext, handle: JobHandle,
                          exc: NotFoundError) -> JobStatus:
        created = handle.vendor_state.get("created_at")
        record = self.registry_of(ctx, handle).read(
            self._key(ctx, str(handle.vendor_state.get("instance_id") or "")))
        # Still recorded (not closed here) and created moments ago: Agora may not list it yet.
        recorded = record is not None and record.get("vendor_ids") == handle.vendor_ids
        if recorded and isinstance(created, int | float) and (
                time.time() - created < NOT_VISIBLE_GRACE):
            return JobStatus(JobState.QUEUED, vendor_state="NOT_VISIBLE_YET",
                             reason="created moments ago; Agora does not list it yet",
                             detail=exc.message)
        return ended_status(exc.message)

    def fetch(self, ctx: ProviderContext, handle: JobHandle) -> TaskInfo:
        """The task's facts as a :class:`TaskInfo` (statuses, sequenceId, service message)."""
        try:
            task = self.query(ctx, handle)
            status = self._status_of(task)
        except NotFoundError as exc:
            task, status = {}, self._not_found_status(ctx, handle, exc)
        service = as_mapping(as_mapping(task.get("services")).get("cloudTranscoder"))
        details = {
            "instance_id": handle.vendor_state.get("instance_id"),
            "builder_token_name": handle.vendor_ids.get("builder_token_name"),
            "create_ts": task.get("createTs"),
            "sequence_id": task.get("sequenceId", handle.vendor_state.get("sequence_id")),
            "service_status": service.get("status"),
            "service_message": service.get("message"),
            "shared": bool(handle.vendor_state.get("shared")),
        }
        return TaskInfo(provider=ctx.provider, job_id=handle.job_id,
                        task_id=handle.vendor_ids.get("task_id"), state=status.state,
                        vendor_state=status.vendor_state, details=details, raw=dict(task))

    def close(self, ctx: ProviderContext, handle: JobHandle) -> None:
        """Delete the task, unless other jobs still use it (then this job only lets go)."""
        registry = self.registry_of(ctx, handle)
        instance_id = str(handle.vendor_state.get("instance_id") or "")
        with registry.locked(self._key(ctx, instance_id)) as slot:
            if slot.data and slot.data.get("vendor_ids") == handle.vendor_ids:
                others = [j for j in self.registry_jobs(slot.data) if j != handle.job_id]
                if others:
                    slot.data = {**slot.data, "job_ids": others}
                    return
                slot.data = None
            task, token = self._ids(ctx, handle)
            api = self._handle_api(ctx, handle)
            try:
                api.request("DELETE", f"{self._base(api.auth)}/tasks/{path_segment(task)}",
                            operation="delete", params={"builderToken": token})
            except NotFoundError as exc:
                ctx.log.info("agora.transcoder.already_deleted", job_id=handle.job_id,
                             error=exc.message)

    # --- update -----------------------------------------------------------------------

    def update(self, ctx: ProviderContext, handle: JobHandle,
               config: TranscoderConfig | Mapping[str, Any] | str | Path, *,
               token_expire: int = DEFAULT_TOKEN_EXPIRE) -> JobHandle:
        """Replace the task's configuration (full replacement, next ``sequenceId``).

        ``config`` is a :class:`TranscoderConfig`, a document mapping or a path to a JSON
        / TOML file. Agora applies only some changes (RTC inputs added or removed, video
        regions, output audio/video options); the rest of the body must stay as created.
        Returns the handle to store: its ``vendor_state`` carries the sequenceId used.
        """
        if isinstance(config, str | Path):
            try:
                document: Any = load_config(config)
            except FieldError as exc:
                raise InvalidInputError(exc.message, field="config_file", provider=ctx.provider,
                                        operation="validate") from None
        else:
            document = config
        parsed = self.parse_config(ctx, document)
        body = self._with_tokens(ctx, parsed, token_expire).services_body()
        task, token = self._ids(ctx, handle)
        api = self.api(ctx, parsed.input_channel or parsed.output_channel or "")
        registry = self.registry_of(ctx, handle)
        instance_id = str(handle.vendor_state.get("instance_id") or "")
        with registry.locked(self._key(ctx, instance_id)) as slot:
            recorded = slot.data if slot.data and slot.data.get(
                "vendor_ids") == handle.vendor_ids else None
            sequence = send_sequenced(
                ctx, api, f"{self._base(api.auth)}/tasks/{path_segment(task)}",
                next_sequence(handle.vendor_state, recorded),
                params={"builderToken": token, "updateMask": UPDATE_MASK}, json=body,
            )
            if recorded is not None:
                slot.data = {**recorded, "vendor_state": {
                    **as_mapping(recorded.get("vendor_state")), "sequence_id": sequence}}
        return handle.with_vendor(state={"sequence_id": sequence})

    # --- recover ----------------------------------------------------------------------

    def recover(self, ctx: ProviderContext, request: JobRequest,
                handle: JobHandle) -> JobHandle | None:
        """The task of a create whose outcome is unknown, from the instanceId's lock record.

        Agora has no list API for transcoder tasks. Without a record, ``None`` lets the
        core send the create again; that resend reuses the recorded builder token, so
        Agora answers with the task the first attempt created (201) instead of creating
        a second one.
        """
        instance_id = self._instance_id(ctx, request, handle)
        data = self.registry(ctx, request.options.get("lock_dir")).read(
            self._key(ctx, instance_id))
        ids = data.get("vendor_ids") if data else None
        state = data.get("vendor_state") if data else None
        if isinstance(ids, dict) and isinstance(state, dict):
            return handle.with_vendor(ids, state)
        return None


def _int(value: Any, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default
