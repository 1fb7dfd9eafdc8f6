"""Emulator of Agora Cloud Transcoder (``cloudTranscoderV2``).

See :mod:`.sandbox` for what every Agora emulator enforces and how answers are
scripted; the endpoint names are those of :attr:`AgoraTranscoderSandbox.rules`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from voxhub.sandbox_kit import Request, Response, Rule

from .sandbox import AgoraSandbox, SandboxTask
from .sandbox_schema import Refusal
from .sandbox_transcoder_rules import UPDATE_MASK, check_acquire, check_services

__all__ = ["AgoraTranscoderSandbox"]


class AgoraTranscoderSandbox(AgoraSandbox):
    """Cloud Transcoder (``cloudTranscoderV2``).

    Args:
        schedule: (seconds since create, task status, service status) steps; default
            ``STARTED``/``serviceReady`` at once, ``IN_PROGRESS``/``serviceInProgress``
            after 0.2 s (the docs' examples).
        visible_after: a created task answers 404 to queries for this long (Agora's
            "poll Query with back-off after a successful create").
    """

    provider = "agora-transcoder"
    app_id_refusal = "appid is invalid"

    def __init__(
        self,
        *,
        schedule: tuple[tuple[float, str, str], ...] = (
            (0.0, "STARTED", "serviceReady"), (0.2, "IN_PROGRESS", "serviceInProgress")),
        visible_after: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.schedule = tuple(schedule)
        self.visible_after = visible_after

    _BASE = "/v1/projects/<app_id>/rtsc/cloud-transcoder"
    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(f"{_BASE}/builderTokens", methods=["POST"], endpoint="acquire"),
        Rule(f"{_BASE}/tasks", methods=["POST"], endpoint="create"),
        Rule(f"{_BASE}/tasks/<task_id>", methods=["GET"], endpoint="query"),
        Rule(f"{_BASE}/tasks/<task_id>", methods=["PATCH"], endpoint="update"),
        Rule(f"{_BASE}/tasks/<task_id>", methods=["DELETE"], endpoint="delete"),
    )

    def live_tasks(self) -> int:
        """Transcoding tasks currently running."""
        return self.live_count(("transcoder",))

    @staticmethod
    def message(status: int, text: str) -> Response:
        """An error in the ``{"message"}`` shape."""
        return AgoraSandbox.answer({"message": text}, status)

    def _statuses(self, task: SandboxTask) -> tuple[str, str]:
        if self.lifetime_over(task):
            return "STOPPED", "serviceCompleted"
        elapsed = self.elapsed(task)
        current = self.schedule[0]
        for step in self.schedule:
            if elapsed >= step[0]:
                current = step
        if task.bad_tokens and current[1] != "IDLE":
            return "FAILURE_STOP", "serviceAbnormal"
        return current[1], current[2]

    def _view(self, task: SandboxTask, *, status: tuple[str, str] | None = None,
              message: str = "OnSlaveServiceQueryUpdated") -> dict[str, Any]:
        task_status, service_status = status or self._statuses(task)
        return {
            "taskId": task.task_id,
            "createTs": task.create_ts,
            "status": task_status,
            "sequenceId": str(max(task.sequence, 0)),
            "services": {"cloudTranscoder": {
                "config": task.body["services"]["cloudTranscoder"]["config"],
                "createTs": task.create_ts,
                "details": {},
                "message": message,
                "serviceType": "cloudTranscoderV2",
                "status": service_status,
            }},
            "eventHandlers": {},
            "execution": {"workflows": {}},
            "properties": {},
            "variables": {},
            "workflows": {},
        }

    def _config(self, body: Any) -> tuple[Mapping[str, Any] | None, Response | None]:
        try:
            return check_services(body), None
        except Refusal as exc:
            return None, self.message(400, f"body schema check fail, {exc}")

    @staticmethod
    def _endpoints(transcoder: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
        found = []
        for key in ("audioInputs", "videoInputs", "outputs"):
            for item in transcoder.get(key) or []:
                if item.get("rtc") is not None:
                    found.append((key, item["rtc"]))
        return found

    def _check_tokens(self, task: SandboxTask, transcoder: Mapping[str, Any]) -> None:
        ok = True
        for key, rtc in self._endpoints(transcoder):
            # Inputs are joined with a random uid (seed: build with uid 0); outputs with rtcUid.
            uid = rtc["rtcUid"] if key == "outputs" else 0
            ok = self.rtc_token_ok(rtc["rtcToken"], rtc["rtcChannel"], uid) and ok
        task.bad_tokens = not ok

    def on_acquire(self, request: Request) -> Response:
        """Acquire a builder token."""
        body = self.body_of(request)
        try:
            check_acquire(body)
        except Refusal as exc:
            return self.message(400, f"body schema check fail, {exc}")
        return self.token_answer(self.new_token(body["instanceId"]))

    def on_create(self, request: Request) -> Response:
        """Create a transcoding task (one per token, one live task per instanceId)."""
        token = self.tokens.get(request.args.get("builderToken", ""))
        if token is None:
            return self.message(400, "builderToken is invalid: it can not be parsed")
        if token.task_id is not None:
            # The deprecated 201: this builder token already runs a task.
            self.counters.add("tasks.repeated_create")
            task = self.tasks[token.task_id]
            return self.answer(self._view(task), 201)
        if self.token_expired(token):
            return self.message(400, "resourceId reaches out the limited time interval!")
        for task in self.tasks.values():
            if task.name == token.instance_id and not self.lifetime_over(task):
                self.counters.add("tasks.instance_conflict")
                return self.message(409, f"a task with instanceId {token.instance_id} already "
                                         "exists")
        body = self.body_of(request)
        config, refusal = self._config(body)
        if config is None:
            assert refusal is not None
            return refusal
        if time.monotonic() - token.created > 2.0:
            self.counters.add("tasks.late_create")  # Agora advises creating within 2 s
        channel = next((rtc["rtcChannel"] for key, rtc in self._endpoints(config)
                        if key != "outputs"), "")
        task = SandboxTask(task_id=str(uuid.uuid4()), kind="transcoder", channel=channel,
                           body=body,
                           created=time.monotonic(), create_ts=int(time.time()),
                           token=token.name, name=token.instance_id)
        self._check_tokens(task, config)
        token.task_id = task.task_id
        self.tasks[task.task_id] = task
        self.counters.add("tasks.created")
        return self.answer(self._view(task))

    def _owned(self, request: Request, task_id: str) -> tuple[SandboxTask | None, Response | None]:
        token = self.tokens.get(request.args.get("builderToken", ""))
        task = self.tasks.get(task_id)
        if token is None:
            return None, self.message(400, "builderToken is invalid: it can not be parsed")
        if task is not None and task.token != token.name:
            return None, self.message(400, "The taskId does not match with builderToken.")
        if task is None or self.lifetime_over(task):
            return None, self.message(404, "task not found")
        if self.elapsed(task) < self.visible_after:
            return None, self.message(404, "task not found")
        return task, None

    def on_query(self, request: Request, task_id: str) -> Response:
        """Query a task."""
        task, refusal = self._owned(request, task_id)
        if task is None:
            assert refusal is not None
            return refusal
        return self.answer(self._view(task))

    def on_update(self, request: Request, task_id: str) -> Response:
        """Update a task (``sequenceId`` must grow)."""
        task, refusal = self._owned(request, task_id)
        if task is None:
            assert refusal is not None
            return refusal
        raw = request.args.get("sequenceId", "")
        if not raw.isdigit():
            return self.message(400, "invalid sequenceId: required, an integer >= 0")
        sequence = int(raw)
        if sequence <= task.sequence:
            self.counters.add("updates.stale")
            return self.message(400, f"invalid sequenceId: {sequence} is not greater than "
                                     f"{task.sequence}, the last one applied")
        if request.args.get("updateMask") != UPDATE_MASK:
            return self.message(400, "body schema check fail, updateMask: must be "
                                     "services.cloudTranscoder.config")
        body = self.body_of(request)
        config, refusal = self._config(body)
        if config is None:
            assert refusal is not None
            return refusal
        task.sequence = sequence
        task.body = body
        self._check_tokens(task, config)
        self.counters.add("tasks.updated")
        return self.answer(None)  # Agora answers an update with an empty 2xx

    def on_delete(self, request: Request, task_id: str) -> Response:
        """Delete (stop) a transcoding task."""
        task, refusal = self._owned(request, task_id)
        if task is None:
            assert refusal is not None
            return refusal
        task.stopped = True
        self.counters.add("tasks.stopped")
        return self.answer(self._view(task, status=("STOPPED", "serviceCompleted"),
                                      message="OnSlaveServiceStopped"))
