"""Emulator of Agora Real-Time STT: the v5/v6 builderToken API and the v7 agents API.

See :mod:`.sandbox` for what every Agora emulator enforces and how answers are
scripted; the endpoint names are those of :attr:`AgoraSttSandbox.rules`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from voxhub.sandbox_kit import Request, Response, Rule

from .sandbox import AgoraSandbox, SandboxTask, SandboxToken, Schedule
from .sandbox_schema import Refusal
from .sandbox_stt_rules import check_join, check_start, check_update, check_update_query

__all__ = ["AgoraSttSandbox"]

_INSTANCE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class AgoraSttSandbox(AgoraSandbox):
    """Real-Time STT: v5/v6 builderToken API and v7 agents API.

    Args:
        schedule: v5/v6 task statuses over time since start (default: ``IN_PROGRESS`` at
            once, as the docs' examples show).
        agent_schedule: v7 agent statuses over time (default ``STARTING`` then ``RUNNING``
            after 0.2 s).
    """

    provider = "agora-stt"

    def __init__(
        self,
        *,
        schedule: Schedule = ((0.0, "IN_PROGRESS"),),
        agent_schedule: Schedule = ((0.0, "STARTING"), (0.2, "RUNNING")),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.schedule = tuple(schedule)
        self.agent_schedule = tuple(agent_schedule)
        #: When each start / join request reached the emulator (wall clock, for pacing
        #: checks across processes).
        self.start_times: list[float] = []

    def reset(self) -> None:
        """Forget tokens, tasks and start times."""
        super().reset()
        with self.lock:
            self.start_times.clear()

    _V6 = "/v1/projects/<app_id>/rtsc/speech-to-text"
    _V7 = "/api/speech-to-text/v1/projects/<app_id>"
    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(f"{_V6}/builderTokens", methods=["POST"], endpoint="acquire"),
        Rule(f"{_V6}/tasks", methods=["POST"], endpoint="start"),
        Rule(f"{_V6}/tasks/<task_id>", methods=["GET"], endpoint="query"),
        Rule(f"{_V6}/tasks/<task_id>", methods=["PATCH"], endpoint="update"),
        Rule(f"{_V6}/tasks/<task_id>", methods=["DELETE"], endpoint="stop"),
        Rule(f"{_V7}/join", methods=["POST"], endpoint="join"),
        Rule(f"{_V7}/agents", methods=["GET"], endpoint="agents"),
        Rule(f"{_V7}/agents/<agent_id>", methods=["GET"], endpoint="agent"),
        Rule(f"{_V7}/agents/<agent_id>/leave", methods=["POST"], endpoint="leave"),
        Rule(f"{_V7}/agents/<agent_id>/update", methods=["POST"], endpoint="agent_update"),
    )

    # --- status -----------------------------------------------------------------------

    def status_of(self, task: SandboxTask) -> str:
        """The task's or agent's current status string."""
        ended = self.lifetime_over(task)
        if task.kind == "v7":
            if ended:
                return "STOPPED"
            status = self.scheduled(self.agent_schedule, self.elapsed(task))
            return "FAILED" if task.bad_tokens and status != "STARTING" else status
        if ended:
            return "STOPPED"
        status = self.scheduled(self.schedule, self.elapsed(task))
        return "FAILURE_STOP" if task.bad_tokens and status in ("STARTED", "IN_PROGRESS") else (
            status)

    def live_channel_tasks(self) -> int:
        """Tasks and agents currently running (for "no duplicates" assertions)."""
        return self.live_count(("v5", "v6", "v7"))

    def _task_view(self, task: SandboxTask) -> dict[str, Any]:
        return {"taskId": task.task_id, "createTs": task.create_ts, "status": self.status_of(task)}

    @staticmethod
    def code_error(code: int, reason: str, status: int = 400) -> Response:
        """An error in the ``{"code", "reason"}`` shape."""
        return AgoraSandbox.answer({"code": code, "reason": reason}, status)

    def content_type_refusal(self, mimetype: str) -> Response:
        """A non-JSON body: Agora's "body schema check fail" (code 2)."""
        return self.code_error(2, f"body schema check fail, Content-Type {mimetype} is not "
                                  "application/json")

    def _check_bots(self, task: SandboxTask, rtc: Mapping[str, Any]) -> None:
        channel = str(rtc.get("channelName"))
        ok_sub = self.rtc_token_ok(rtc.get("subBotToken"), channel, str(rtc.get("subBotUid")))
        ok_pub = self.rtc_token_ok(rtc.get("pubBotToken"), channel, str(rtc.get("pubBotUid")))
        task.bad_tokens = not (ok_sub and ok_pub)

    # --- v5 / v6 -----------------------------------------------------------------------

    def on_acquire(self, request: Request) -> Response:
        """Acquire a builder token."""
        body = self.body_of(request)
        if not isinstance(body, dict) or body.get("instanceId") is None:
            return self.code_error(2, "body schema check fail, instanceId: is required")
        instance_id = body["instanceId"]
        if set(body) != {"instanceId"}:
            return self.code_error(2, "body schema check fail, only instanceId is accepted")
        if not isinstance(instance_id, str) or not _INSTANCE_ID.fullmatch(instance_id):
            return self.code_error(2, "body schema check fail, instanceId: at most 64 "
                                      "characters of a-z, A-Z, 0-9, - and _")
        return self.token_answer(self.new_token(instance_id))

    def _token(self, request: Request) -> tuple[SandboxToken | None, Response | None]:
        name = request.args.get("builderToken", "")
        token = self.tokens.get(name)
        if token is None:
            return None, self.code_error(1001, "builderToken can not be parsed")
        return token, None

    def on_start(self, request: Request) -> Response:
        """Start a task with a builder token (v5/v6)."""
        self.start_times.append(time.time())
        token, refusal = self._token(request)
        if token is None:
            assert refusal is not None
            return refusal
        if token.task_id is not None:
            task = self.tasks[token.task_id]
            self.counters.add("tasks.repeated_start")
            return self.code_error(
                49, f"The task has been started, current status is {self.status_of(task)}, "
                f"taskId is {task.task_id}", 409)
        if self.token_expired(token):
            return self.answer({"message": "resourceId reaches out the limited time interval!"},
                               400)
        body = self.body_of(request)
        if not isinstance(body, dict):
            return self.code_error(2, "body schema check fail, the body must be a JSON object")
        version = "v5" if _uses_v5_fields(body) else "v6"
        try:
            check_start(body, version)
        except Refusal as exc:
            return self.code_error(2, f"body schema check fail, {exc}")
        rtc = body["rtcConfig"]
        task = SandboxTask(task_id=uuid.uuid4().hex, kind=version, channel=rtc["channelName"],
                           body=body, created=time.monotonic(), create_ts=int(time.time()),
                           token=token.name, name=token.instance_id)
        self._check_bots(task, rtc)
        token.task_id = task.task_id
        self.tasks[task.task_id] = task
        self.counters.add("tasks.created")
        return self.answer(self._task_view(task))

    def _owned_task(self, request: Request,
                    task_id: str) -> tuple[SandboxTask | None, Response | None]:
        token, refusal = self._token(request)
        if token is None:
            return None, refusal
        task = self.tasks.get(task_id)
        if task is not None and task.token != token.name:
            return None, self.code_error(53, "The taskId does not match with builderToken.")
        if task is None or task.kind == "v7":
            return None, self.code_error(404, "The task is not found", 404)
        return task, None

    def on_query(self, request: Request, task_id: str) -> Response:
        """Query a task."""
        task, refusal = self._owned_task(request, task_id)
        if task is None:
            assert refusal is not None
            return refusal
        if self.lifetime_over(task):
            return self.code_error(404, "The task is not found", 404)
        return self.answer(self._task_view(task))

    def on_update(self, request: Request, task_id: str) -> Response:
        """Update a task (``sequenceId`` must grow)."""
        task, refusal = self._owned_task(request, task_id)
        if task is None:
            assert refusal is not None
            return refusal
        if self.lifetime_over(task):
            return self.code_error(404, "The task is not found", 404)
        try:
            sequence, mask = check_update_query(request.args)
        except Refusal as exc:
            return self.code_error(2, f"body schema check fail, {exc}")
        if sequence <= task.sequence:
            self.counters.add("updates.stale")
            return self.code_error(2, f"invalid sequenceId: {sequence} is not greater than "
                                      f"{task.sequence}, the last one applied")
        body = self.body_of(request)
        try:
            check_update(body, task.kind, mask)
        except Refusal as exc:
            return self.code_error(2, f"body schema check fail, {exc}")
        task.sequence = sequence
        _apply_update(task.body, body)
        self.counters.add("tasks.updated")
        return self.answer(self._task_view(task))

    def on_stop(self, request: Request, task_id: str) -> Response:
        """Stop a task (v5/v6)."""
        token, refusal = self._token(request)
        if token is None:
            assert refusal is not None
            return refusal
        task = self.tasks.get(task_id)
        if task is not None and task.token != token.name:
            return self.code_error(53, "The taskId does not match with builderToken.")
        if task is None:
            return self.code_error(404, "The task is not found", 404)
        if task.stopped:
            return self.code_error(49, "repeated stop with the same builderToken and taskId")
        task.stopped = True
        self.counters.add("tasks.stopped")
        return self.answer({})

    # --- v7 ----------------------------------------------------------------------------

    @staticmethod
    def v7_error(status: int, reason: str, detail: str, **extra: Any) -> Response:
        """An error in the v7 ``{"reason", "detail"}`` shape."""
        return AgoraSandbox.answer({"reason": reason, "detail": detail, **extra}, status)

    def _agent_view(self, task: SandboxTask) -> dict[str, Any]:
        return {"agent_id": task.task_id, "create_ts": task.create_ts,
                "status": self.status_of(task), "name": task.name, "channel": task.channel}

    def on_join(self, request: Request) -> Response:
        """Create an agent (v7); a live agent with the same name is a 409."""
        self.start_times.append(time.time())
        body = self.body_of(request)
        try:
            check_join(body)
        except Refusal as exc:
            return self.v7_error(400, "InvalidParameter", str(exc))
        for task in self.tasks.values():
            if task.kind == "v7" and task.name == body["name"] and not self.lifetime_over(task):
                self.counters.add("tasks.repeated_start")
                return self.v7_error(409, "TaskConflict",
                                     f"an agent named {task.name} is already running",
                                     agent_id=task.task_id)
        rtc = body["rtcConfig"]
        task = SandboxTask(task_id=uuid.uuid4().hex, kind="v7", channel=rtc["channelName"],
                           body=body, created=time.monotonic(), create_ts=int(time.time()),
                           name=body["name"])
        self._check_bots(task, rtc)
        self.tasks[task.task_id] = task
        self.counters.add("tasks.created")
        return self.answer({"agent_id": task.task_id, "create_ts": task.create_ts,
                            "status": self.status_of(task)})

    def _agent(self, agent_id: str) -> SandboxTask | None:
        task = self.tasks.get(agent_id)
        return task if task is not None and task.kind == "v7" else None

    def on_agent(self, request: Request, agent_id: str) -> Response:
        """Query an agent (v7)."""
        task = self._agent(agent_id)
        if task is None:
            return self.v7_error(404, "TaskNotFound", f"no agent {agent_id}")
        return self.answer(self._agent_view(task))

    def on_agents(self, request: Request) -> Response:
        """List agents (v7)."""
        items = [self._agent_view(t) for t in self.tasks.values() if t.kind == "v7"]
        return self.answer({"data": {"count": len(items), "list": items}})

    def on_leave(self, request: Request, agent_id: str) -> Response:
        """Stop an agent (v7)."""
        task = self._agent(agent_id)
        if task is None or self.lifetime_over(task):
            return self.v7_error(404, "TaskNotFound", f"agent {agent_id} is not running")
        task.stopped = True
        self.counters.add("tasks.stopped")
        return self.answer({})

    def on_agent_update(self, request: Request, agent_id: str) -> Response:
        """Update an agent (v7): ``sequenceId`` and ``updateMask`` query parameters required."""
        task = self._agent(agent_id)
        if task is None or self.lifetime_over(task):
            return self.v7_error(404, "TaskNotFound", f"agent {agent_id} is not running")
        body = self.body_of(request)
        try:
            sequence, mask = check_update_query(request.args)
            check_update(body, "v7", mask)
        except Refusal as exc:
            return self.v7_error(400, "InvalidParameter", str(exc))
        if sequence <= task.sequence:
            self.counters.add("updates.stale")
            return self.v7_error(400, "InvalidParameter", f"sequenceId {sequence} is not "
                                 f"greater than {task.sequence}, the last one applied")
        task.sequence = sequence
        _apply_update(task.body, body)
        self.counters.add("tasks.updated")
        return self.answer(self._agent_view(task))


def _uses_v5_fields(body: Mapping[str, Any]) -> bool:
    rtc = body.get("rtcConfig")
    translate = body.get("translateConfig")
    return (isinstance(rtc, Mapping) and "transferMode" in rtc) or (
        isinstance(translate, Mapping) and "forceTranslateInterval" in translate)


def _apply_update(current: dict[str, Any], change: Mapping[str, Any]) -> None:
    for key, value in change.items():
        if isinstance(value, Mapping) and isinstance(current.get(key), dict):
            _apply_update(current[key], value)
        else:
            current[key] = value
