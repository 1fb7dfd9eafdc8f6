"""Emulators of Agora's Real-Time STT and Cloud Transcoder REST APIs.

Both sandboxes share :class:`AgoraSandbox`: werkzeug routing, Agora's authentication
(Basic credentials, or an AccessToken2 checked with the very ``accesstoken`` code the
client uses, answering the seed's 401 messages), the App ID in the path, injected
vendor errors and the JSON error shapes. What they enforce:

* builder tokens are valid ``builder_token_ttl`` seconds (5 minutes) for starting a task,
  and one token starts one task (a repeat names the first task: code 49 for STT, the
  deprecated 201 answer for the transcoder);
* the transcoder refuses a second live task with the same ``instanceId`` (409), STT v7 a
  second live agent with the same ``name`` (409);
* ``sequenceId`` must grow with every update;
* request bodies are checked with the same validators the client runs, errors answered
  in Agora's shapes (``{"code": 2, "reason": ...}``, ``{"reason", "detail"}``, ``{"message"}``);
* bot / transcoder RTC tokens are verified (App ID, signature, expiry, channel, uid):
  a task joined with a bad one fails (FAILURE_STOP / FAILED / serviceAbnormal);
* task states progress over configurable time (``schedule``), and tasks can end on their
  own after ``task_lifetime`` seconds (Agora's idle timeout).

Extra control endpoint (besides the core's ``/_sandbox/*``):
``POST /_sandbox/agora/errors`` with ``{"endpoint": "start", "status": 500, "body":
{"code": 501}, "times": 2}`` answers the next ``times`` calls of that endpoint with that
error (endpoints: see :meth:`AgoraSttSandbox.rules` / :meth:`AgoraTranscoderSandbox.rules`).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs
from voxhub.sandbox import FaultPlan, Sandbox
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from ._checks import FieldError, check_instance_id
from .accesstoken import RtcPrivilege, ServiceRtc, ServiceType, TokenError, check_token
from .auth import AuthChecker
from .stt_config import validate_start_body, validate_update_body
from .transcoder_config import TranscoderConfig, transcoder_section

__all__ = ["AgoraSandbox", "AgoraSttSandbox", "AgoraTranscoderSandbox"]


@attrs.define
class _Injected:
    endpoint: str
    status: int
    body: Any
    times: int


@attrs.define
class _Token:
    name: str
    instance_id: str
    created: float  # monotonic
    task_id: str | None = None


@attrs.define
class _Task:
    task_id: str
    kind: str  # "v6", "v5", "v7" or "transcoder"
    channel: str
    body: dict[str, Any]
    created: float  # monotonic
    create_ts: int
    token: str | None = None
    name: str | None = None
    sequence: int = -1
    bad_tokens: bool = False
    stopped: bool = False


Schedule = tuple[tuple[float, str], ...]


class AgoraSandbox(Sandbox):
    """Shared machinery of the Agora emulators (see the module docstring)."""

    app_id_refusal: ClassVar[str] = "invalid_appid!"

    def __init__(
        self,
        *,
        faults: FaultPlan | None = None,
        app_id: str | None = None,
        app_certificate: str | None = None,
        customer_id: str | None = None,
        customer_secret: str | None = None,
        builder_token_ttl: float = 300.0,
        task_lifetime: float | None = None,
        require_rtc_tokens: bool = True,
    ) -> None:
        super().__init__(faults=faults)
        # Random credentials per instance: nothing fixed that could leak into real configs.
        self.app_id = app_id or secrets.token_hex(16)
        self.app_certificate = app_certificate or secrets.token_hex(16)
        self.customer_id = customer_id or secrets.token_hex(16)
        self.customer_secret = customer_secret or secrets.token_hex(16)
        self.checker = AuthChecker(self.app_id, self.app_certificate, self.customer_id,
                                   self.customer_secret)
        self.builder_token_ttl = builder_token_ttl
        self.task_lifetime = task_lifetime
        self.require_rtc_tokens = require_rtc_tokens
        self.lock = threading.RLock()
        self.tokens: dict[str, _Token] = {}
        self.tasks: dict[str, _Task] = {}
        self._injected: list[_Injected] = []
        self.url_map = Map(self.rules(), strict_slashes=False)

    # --- for subclasses -----------------------------------------------------------

    def rules(self) -> list[Rule]:
        """werkzeug rules whose endpoints name ``on_<endpoint>`` methods."""
        raise NotImplementedError

    def credentials(self) -> dict[str, str]:
        """app_id, app_certificate, customer_id and customer_secret."""
        return {
            "app_id": self.app_id,
            "app_certificate": self.app_certificate,
            "customer_id": self.customer_id,
            "customer_secret": self.customer_secret,
        }

    def reset(self) -> None:
        """Forget tokens, tasks and injected errors (and the counters)."""
        super().reset()
        with self.lock:
            self.tokens.clear()
            self.tasks.clear()
            self._injected.clear()

    # --- errors ---------------------------------------------------------------------

    def inject_error(self, endpoint: str, status: int, body: Any, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``endpoint`` with ``status`` and ``body``."""
        with self.lock:
            self._injected.append(_Injected(endpoint, status, body, times))

    def _take_injected(self, endpoint: str) -> _Injected | None:
        with self.lock:
            for item in self._injected:
                if item.endpoint == endpoint and item.times > 0:
                    item.times -= 1
                    if item.times == 0:
                        self._injected.remove(item)
                    return item
        return None

    def _control(self, request: Request) -> Response:
        if request.path == "/_sandbox/agora/errors" and request.method == "POST":
            data = request.get_json(silent=True) or {}
            try:
                self.inject_error(str(data["endpoint"]), int(data["status"]), data.get("body"),
                                  int(data.get("times", 1)))
            except (KeyError, TypeError, ValueError) as exc:
                return self.answer({"error": f"bad error injection: {exc}"}, 400)
            return self.answer({"queued": True})
        return super()._control(request)

    def rate_limited_response(self, retry_after: float) -> Response:
        """Agora's 429 answer (``{"message": ...}``)."""
        response = self.answer({"message": "Too Many Requests"}, 429)
        response.headers["Retry-After"] = str(max(0, round(retry_after, 3)))
        return response

    @staticmethod
    def answer(body: Any, status: int = 200) -> Response:
        """A JSON answer with an ``X-Request-ID`` header, as Agora sends."""
        data = b"" if body is None else json.dumps(body).encode()
        return Response(data, status=status, content_type="application/json",
                        headers={"X-Request-ID": str(uuid.uuid4())})

    # --- dispatch -------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        """Route one request: auth, App ID, injected errors, then the endpoint handler."""
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, matched = adapter.match()
        except NotFound:
            return self.answer({"message": "resource not found"}, 404)
        except MethodNotAllowed:
            return self.answer({"message": "method not allowed"}, 405)
        refusal = self.checker.check(request.headers.get("Authorization"), now=time.time())
        if refusal is not None:
            self.counters.add("auth.refused")
            return self.answer({"message": refusal}, 401)
        args = dict(matched)
        app_id = str(args.pop("app_id", ""))
        if app_id.lower() != self.app_id.lower():
            return self.answer({"message": self.app_id_refusal}, 400)
        injected = self._take_injected(str(endpoint))
        if injected is not None:
            self.counters.add(f"injected.{endpoint}")
            return self.answer(injected.body, injected.status)
        handler: Callable[..., Response] = getattr(self, f"on_{endpoint}")
        with self.lock:
            return handler(request, **args)

    @staticmethod
    def body_of(request: Request) -> Any:
        """The JSON body, or ``None`` when absent / not JSON."""
        data = request.get_data()
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return None

    # --- shared rules ---------------------------------------------------------------

    def new_token(self, instance_id: str) -> _Token:
        """Issue a builder token for ``instance_id``."""
        token = _Token(name=secrets.token_urlsafe(24), instance_id=instance_id,
                       created=time.monotonic())
        self.tokens[token.name] = token
        self.counters.add("tokens.acquired")
        return token

    def token_expired(self, token: _Token) -> bool:
        """Whether ``token`` is past its validity for starting a task."""
        return time.monotonic() - token.created > self.builder_token_ttl

    def rtc_token_ok(self, token: Any, channel: str, uid: str | int) -> bool:
        """Whether ``token`` lets ``uid`` join ``channel`` (App ID, signature, expiry, fields)."""
        if not isinstance(token, str) or not token:
            ok = not self.require_rtc_tokens
        else:
            try:
                parsed = check_token(token, app_id=self.app_id,
                                     app_certificate=self.app_certificate)
            except TokenError:
                ok = False
            else:
                account = "" if str(uid) == "0" else str(uid)
                ok = any(
                    isinstance(s, ServiceRtc) and s.channel_name == channel
                    and s.uid in ("", account)
                    for s in parsed.find_services(ServiceType.RTC)
                ) and parsed.has_privilege(ServiceType.RTC, RtcPrivilege.JOIN_CHANNEL)
        self.counters.add("rtc_tokens.valid" if ok else "rtc_tokens.invalid")
        return ok

    def elapsed(self, task: _Task) -> float:
        """Seconds since ``task`` was created."""
        return time.monotonic() - task.created

    def lifetime_over(self, task: _Task) -> bool:
        """Whether ``task`` has ended (stopped, or ended itself after ``task_lifetime``)."""
        if not task.stopped and self.task_lifetime is not None and (
                self.elapsed(task) >= self.task_lifetime):
            task.stopped = True
            self.counters.add("tasks.idle_ended")
        return task.stopped

    @staticmethod
    def scheduled(schedule: Schedule, elapsed: float) -> str:
        """The status ``schedule`` gives after ``elapsed`` seconds."""
        current = schedule[0][1]
        for after, status in schedule:
            if elapsed >= after:
                current = status
        return current


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

    def rules(self) -> list[Rule]:
        """The URL rules of this API (endpoint names match ``on_<endpoint>``)."""
        v6 = "/v1/projects/<app_id>/rtsc/speech-to-text"
        v7 = "/api/speech-to-text/v1/projects/<app_id>"
        return [
            Rule(f"{v6}/builderTokens", methods=["POST"], endpoint="acquire"),
            Rule(f"{v6}/tasks", methods=["POST"], endpoint="start"),
            Rule(f"{v6}/tasks/<task_id>", methods=["GET"], endpoint="query"),
            Rule(f"{v6}/tasks/<task_id>", methods=["PATCH"], endpoint="update"),
            Rule(f"{v6}/tasks/<task_id>", methods=["DELETE"], endpoint="stop"),
            Rule(f"{v7}/join", methods=["POST"], endpoint="join"),
            Rule(f"{v7}/agents", methods=["GET"], endpoint="agents"),
            Rule(f"{v7}/agents/<agent_id>", methods=["GET"], endpoint="agent"),
            Rule(f"{v7}/agents/<agent_id>/leave", methods=["POST"], endpoint="leave"),
            Rule(f"{v7}/agents/<agent_id>/update", methods=["POST"], endpoint="agent_update"),
        ]

    # --- status -----------------------------------------------------------------------

    def status_of(self, task: _Task) -> str:
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
        with self.lock:
            return sum(1 for t in self.tasks.values() if not self.lifetime_over(t))

    def _task_view(self, task: _Task) -> dict[str, Any]:
        return {"taskId": task.task_id, "createTs": task.create_ts, "status": self.status_of(task)}

    @staticmethod
    def code_error(code: int, reason: str, status: int = 400) -> Response:
        """An error in the ``{"code", "reason"}`` shape."""
        return AgoraSandbox.answer({"code": code, "reason": reason}, status)

    def _check_bots(self, task: _Task, rtc: Mapping[str, Any]) -> None:
        channel = str(rtc.get("channelName"))
        ok_sub = self.rtc_token_ok(rtc.get("subBotToken"), channel, str(rtc.get("subBotUid")))
        ok_pub = self.rtc_token_ok(rtc.get("pubBotToken"), channel, str(rtc.get("pubBotUid")))
        task.bad_tokens = not (ok_sub and ok_pub)

    # --- v5 / v6 -----------------------------------------------------------------------

    def on_acquire(self, request: Request) -> Response:
        """Acquire a builder token."""
        body = self.body_of(request)
        if not isinstance(body, dict):
            return self.code_error(2, "body schema check fail, instanceId: is required")
        try:
            check_keys_only(body, ("instanceId",))
            instance_id = check_instance_id(body.get("instanceId"), "instanceId")
        except FieldError as exc:
            return self.code_error(2, f"body schema check fail, {exc}")
        token = self.new_token(instance_id)
        return self.answer({"tokenName": token.name, "createTs": int(time.time()),
                            "instanceId": instance_id})

    def _token(self, request: Request) -> tuple[_Token | None, Response | None]:
        name = request.args.get("builderToken", "")
        token = self.tokens.get(name)
        if token is None:
            return None, self.code_error(1001, "builderToken can not be parsed")
        return token, None

    def on_start(self, request: Request) -> Response:
        """Start a task with a builder token (v5/v6)."""
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
            validate_start_body(body, version)
        except FieldError as exc:
            return self.code_error(2, f"body schema check fail, {exc}")
        rtc = body["rtcConfig"]
        task = _Task(task_id=uuid.uuid4().hex, kind=version, channel=rtc["channelName"],
                     body=body, created=time.monotonic(), create_ts=int(time.time()),
                     token=token.name, name=token.instance_id)
        self._check_bots(task, rtc)
        token.task_id = task.task_id
        self.tasks[task.task_id] = task
        self.counters.add("tasks.created")
        return self.answer(self._task_view(task))

    def _owned_task(self, request: Request, task_id: str) -> tuple[_Task | None, Response | None]:
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
        raw_seq = request.args.get("sequenceId", "")
        if not raw_seq.isdigit():
            return self.code_error(2, "body schema check fail, sequenceId: is required "
                                      "(an integer >= 0)")
        sequence = int(raw_seq)
        if sequence <= task.sequence:
            self.counters.add("updates.stale")
            return self.code_error(2, f"invalid sequenceId: {sequence} is not greater than "
                                      f"{task.sequence}, the last one applied")
        mask = [m for m in request.args.get("updateMask", "").split(",") if m]
        body = self.body_of(request)
        if not isinstance(body, dict):
            return self.code_error(2, "body schema check fail, the body must be a JSON object")
        try:
            validate_update_body(body, task.kind, mask)
        except FieldError as exc:
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

    def _agent_view(self, task: _Task) -> dict[str, Any]:
        return {"agent_id": task.task_id, "create_ts": task.create_ts,
                "status": self.status_of(task), "name": task.name, "channel": task.channel}

    def on_join(self, request: Request) -> Response:
        """Create an agent (v7); a live agent with the same name is a 409."""
        body = self.body_of(request)
        if not isinstance(body, dict):
            return self.v7_error(400, "InvalidParameter", "the body must be a JSON object")
        try:
            validate_start_body(body, "v7")
        except FieldError as exc:
            return self.v7_error(400, "InvalidParameter", str(exc))
        for task in self.tasks.values():
            if task.kind == "v7" and task.name == body["name"] and not self.lifetime_over(task):
                self.counters.add("tasks.repeated_start")
                return self.v7_error(409, "TaskConflict",
                                     f"an agent named {task.name} is already running",
                                     agent_id=task.task_id)
        rtc = body["rtcConfig"]
        task = _Task(task_id=uuid.uuid4().hex, kind="v7", channel=rtc["channelName"], body=body,
                     created=time.monotonic(), create_ts=int(time.time()), name=body["name"])
        self._check_bots(task, rtc)
        self.tasks[task.task_id] = task
        self.counters.add("tasks.created")
        return self.answer({"agent_id": task.task_id, "create_ts": task.create_ts,
                            "status": self.status_of(task)})

    def _agent(self, agent_id: str) -> _Task | None:
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
        """Update an agent (v7)."""
        task = self._agent(agent_id)
        if task is None or self.lifetime_over(task):
            return self.v7_error(404, "TaskNotFound", f"agent {agent_id} is not running")
        body = self.body_of(request)
        if not isinstance(body, dict):
            return self.v7_error(400, "InvalidParameter", "the body must be a JSON object")
        try:
            validate_update_body(body, "v7", _mask_of(body))
        except FieldError as exc:
            return self.v7_error(400, "InvalidParameter", str(exc))
        _apply_update(task.body, body)
        self.counters.add("tasks.updated")
        return self.answer(self._agent_view(task))


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

    def rules(self) -> list[Rule]:
        """The URL rules of this API (endpoint names match ``on_<endpoint>``)."""
        base = "/v1/projects/<app_id>/rtsc/cloud-transcoder"
        return [
            Rule(f"{base}/builderTokens", methods=["POST"], endpoint="acquire"),
            Rule(f"{base}/tasks", methods=["POST"], endpoint="create"),
            Rule(f"{base}/tasks/<task_id>", methods=["GET"], endpoint="query"),
            Rule(f"{base}/tasks/<task_id>", methods=["PATCH"], endpoint="update"),
            Rule(f"{base}/tasks/<task_id>", methods=["DELETE"], endpoint="delete"),
        ]

    def live_tasks(self) -> int:
        """Transcoding tasks currently running."""
        with self.lock:
            return sum(1 for t in self.tasks.values() if not self.lifetime_over(t))

    @staticmethod
    def message(status: int, text: str) -> Response:
        """An error in the ``{"message"}`` shape."""
        return AgoraSandbox.answer({"message": text}, status)

    def _statuses(self, task: _Task) -> tuple[str, str]:
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

    def _view(self, task: _Task, *, status: tuple[str, str] | None = None,
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

    def _config(self, body: Any) -> tuple[TranscoderConfig | None, Response | None]:
        if not isinstance(body, dict) or "services" not in body:
            return None, self.message(400, "body schema check fail, services: is required")
        try:
            return TranscoderConfig.from_dict(transcoder_section(body)), None
        except FieldError as exc:
            return None, self.message(400, f"body schema check fail, {exc}")

    def _check_tokens(self, task: _Task, config: TranscoderConfig) -> None:
        ok = True
        for path, rtc in config.endpoints():
            uid = 0 if not path.startswith("outputs") else rtc.uid
            ok = self.rtc_token_ok(rtc.token, rtc.channel, uid) and ok
        task.bad_tokens = not ok

    def on_acquire(self, request: Request) -> Response:
        """Acquire a builder token."""
        body = self.body_of(request)
        if not isinstance(body, dict):
            return self.message(400, "body schema check fail, instanceId: is required")
        try:
            instance_id = check_instance_id(body.get("instanceId"), "instanceId")
        except FieldError as exc:
            return self.message(400, f"body schema check fail, {exc}")
        if "services" in body:
            _config, refusal = self._config({"services": body["services"]})
            if refusal is not None:
                return refusal
        token = self.new_token(instance_id)
        return self.answer({"tokenName": token.name, "createTs": int(time.time()),
                            "instanceId": instance_id})

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
        task = _Task(task_id=str(uuid.uuid4()), kind="transcoder",
                     channel=config.input_channel or "", body=body, created=time.monotonic(),
                     create_ts=int(time.time()), token=token.name, name=token.instance_id)
        self._check_tokens(task, config)
        token.task_id = task.task_id
        self.tasks[task.task_id] = task
        self.counters.add("tasks.created")
        return self.answer(self._view(task))

    def _owned(self, request: Request, task_id: str) -> tuple[_Task | None, Response | None]:
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
        if request.args.get("updateMask") != "services.cloudTranscoder.config":
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
        return Response(b"", status=200, headers={"X-Request-ID": str(uuid.uuid4())})

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


def check_keys_only(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Refuse unknown top-level keys (Agora's "body schema check fail")."""
    for key in body:
        if key not in allowed:
            raise FieldError(key, f"unknown field (accepted: {', '.join(allowed)})")


def _uses_v5_fields(body: Mapping[str, Any]) -> bool:
    rtc = body.get("rtcConfig")
    translate = body.get("translateConfig")
    return (isinstance(rtc, Mapping) and "transferMode" in rtc) or (
        isinstance(translate, Mapping) and "forceTranslateInterval" in translate)


def _mask_of(body: Mapping[str, Any]) -> list[str]:
    mask = [k for k in ("languages", "uidLanguagesConfig") if k in body]
    rtc = body.get("rtcConfig")
    if isinstance(rtc, Mapping) and "subscribeAudioUids" in rtc:
        mask.append("rtcConfig.subscribeAudioUids")
    translate = body.get("translateConfig")
    if isinstance(translate, Mapping):
        mask += [f"translateConfig.{k}" for k in ("enable", "languages") if k in translate]
    return mask


def _apply_update(current: dict[str, Any], change: Mapping[str, Any]) -> None:
    for key, value in change.items():
        if isinstance(value, Mapping) and isinstance(current.get(key), dict):
            _apply_update(current[key], value)
        else:
            current[key] = value

