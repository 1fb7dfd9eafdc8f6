"""Emulators of Agora's Real-Time STT and Cloud Transcoder REST APIs: what both share.

The two emulators are :class:`~.sandbox_stt.AgoraSttSandbox` (``voxhub sandbox
agora-stt``) and :class:`~.sandbox_transcoder.AgoraTranscoderSandbox` (``voxhub sandbox
agora-transcoder``). Both are built on :mod:`voxhub.sandbox_kit` and share
:class:`AgoraSandbox`: routing (werkzeug ``rules`` whose endpoints name ``on_<endpoint>``
handlers), Agora's authentication (Basic credentials, or an AccessToken2 checked by the
emulators' own :mod:`.sandbox_auth`, answering the seed's 401 messages), the App ID in the
path, ``Content-Type: application/json`` on bodies, and Agora's JSON answers with an
``X-Request-ID``. What they enforce:

* builder tokens are valid ``builder_token_ttl`` seconds (5 minutes) for starting a task,
  and one token starts one task (a repeat names the first task: code 49 for STT, the
  deprecated 201 answer for the transcoder);
* the transcoder refuses a second live task with the same ``instanceId`` (409), STT v7 a
  second live agent with the same ``name`` (409);
* ``sequenceId`` must grow with every update;
* request bodies are checked by the emulators' own rules, written from the vendor
  documents (:mod:`.sandbox_stt_rules`, :mod:`.sandbox_transcoder_rules`; no validator of
  the client is imported), errors answered in Agora's shapes (``{"code": 2, "reason":
  ...}``, ``{"reason", "detail"}``, ``{"message"}``);
* bot / transcoder RTC tokens are verified (App ID, signature, expiry, channel, uid):
  a task joined with a bad one fails (FAILURE_STOP / FAILED / serviceAbnormal);
* task states progress over configurable time (``schedule``), and tasks can end on their
  own after ``task_lifetime`` seconds (Agora's idle timeout).

Scripted answers use the kit's one mechanism: ``POST /_sandbox/script`` with
``{"endpoint": "start", "status": 500, "body": {"code": 501}, "times": 2}`` (or
``sandbox.script(...)`` in-process) answers the next ``times`` calls of that endpoint
with that answer; ``"action": "drop_after"`` lets the vendor act and loses its answer.
The endpoint names are those of each emulator's ``rules``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
from voxhub.sandbox_kit import FaultPlan, Request, Response, Sandbox, json_answer
from werkzeug.exceptions import MethodNotAllowed, NotFound

from .sandbox_auth import SandboxAuth

__all__ = ["AgoraSandbox", "SandboxTask", "SandboxToken", "Schedule"]


@attrs.define
class SandboxToken:
    """A builder token the emulator issued (and the task it started, once it did)."""

    name: str
    instance_id: str
    created: float  # monotonic
    task_id: str | None = None


@attrs.define
class SandboxTask:
    """A task (or v7 agent) the emulator runs."""

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


#: (seconds since start, status) steps.
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
        self.checker = SandboxAuth(self.app_id, self.app_certificate, self.customer_id,
                                   self.customer_secret)
        self.builder_token_ttl = builder_token_ttl
        self.task_lifetime = task_lifetime
        self.require_rtc_tokens = require_rtc_tokens
        self.lock = threading.RLock()
        self.tokens: dict[str, SandboxToken] = {}
        self.tasks: dict[str, SandboxTask] = {}

    def credentials(self) -> dict[str, str]:
        """app_id, app_certificate, customer_id and customer_secret."""
        return {
            "app_id": self.app_id,
            "app_certificate": self.app_certificate,
            "customer_id": self.customer_id,
            "customer_secret": self.customer_secret,
        }

    def reset(self) -> None:
        """Forget tokens and tasks (and the kit's counters and scripts)."""
        super().reset()
        with self.lock:
            self.tokens.clear()
            self.tasks.clear()

    def rate_limited_response(self, retry_after: float) -> Response:
        """Agora's 429 answer (``{"message": ...}``)."""
        return json_answer({"message": "Too Many Requests"}, 429, headers={
            "Retry-After": str(max(0, round(retry_after, 3))),
            "X-Request-ID": str(uuid.uuid4()),
        })

    @staticmethod
    def answer(body: Any, status: int = 200) -> Response:
        """A JSON answer with an ``X-Request-ID`` header, as Agora sends (``None``: empty)."""
        return json_answer(body, status, headers={"X-Request-ID": str(uuid.uuid4())})

    # --- dispatch -------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        """Route one request: auth, App ID, then the ``on_<endpoint>`` handler.

        Unknown paths and methods are answered in Agora's ``{"message"}`` shape rather
        than werkzeug's HTML pages.
        """
        try:
            endpoint, matched = self._url_map.bind_to_environ(request.environ).match()
        except NotFound:
            return self.answer({"message": "resource not found"}, 404)
        except MethodNotAllowed:
            return self.answer({"message": "method not allowed"}, 405)
        refusal = self.checker.refusal(request.headers.get("Authorization"), now=time.time())
        if refusal is not None:
            self.counters.add("auth.refused")
            return self.answer({"message": refusal}, 401)
        args = dict(matched)
        app_id = str(args.pop("app_id", ""))
        if app_id.lower() != self.app_id.lower():
            return self.answer({"message": self.app_id_refusal}, 400)
        if request.get_data() and request.mimetype.lower() != "application/json":
            # The references send JSON only (the seed's curl writes "Application/json":
            # the media type is case-insensitive). The status is not documented: 400.
            self.counters.add("content_type.refused")
            return self.content_type_refusal(request.mimetype or "none")
        handler: Callable[..., Response] = getattr(self, f"on_{endpoint}")
        with self.lock:
            return handler(request, **args)

    def content_type_refusal(self, mimetype: str) -> Response:
        """The answer to a body that is not ``application/json`` (each emulator's shape)."""
        return self.answer({"message": f"Content-Type {mimetype} is not supported, "
                                       "use application/json"}, 400)

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

    def new_token(self, instance_id: str) -> SandboxToken:
        """Issue a builder token for ``instance_id``."""
        token = SandboxToken(name=secrets.token_urlsafe(24), instance_id=instance_id,
                             created=time.monotonic())
        self.tokens[token.name] = token
        self.counters.add("tokens.acquired")
        return token

    def token_answer(self, token: SandboxToken) -> Response:
        """Acquire's answer for ``token``."""
        return self.answer({"tokenName": token.name, "createTs": int(time.time()),
                            "instanceId": token.instance_id})

    def token_expired(self, token: SandboxToken) -> bool:
        """Whether ``token`` is past its validity for starting a task."""
        return time.monotonic() - token.created > self.builder_token_ttl

    def rtc_token_ok(self, token: Any, channel: str, uid: str | int) -> bool:
        """Whether ``token`` lets ``uid`` join ``channel`` (App ID, signature, expiry, fields)."""
        if not isinstance(token, str) or not token:
            ok = not self.require_rtc_tokens
        else:
            ok = self.checker.rtc_join_ok(token, channel, str(uid), now=time.time())
        self.counters.add("rtc_tokens.valid" if ok else "rtc_tokens.invalid")
        return ok

    @staticmethod
    def elapsed(task: SandboxTask) -> float:
        """Seconds since ``task`` was created."""
        return time.monotonic() - task.created

    def lifetime_over(self, task: SandboxTask) -> bool:
        """Whether ``task`` has ended (stopped, or ended itself after ``task_lifetime``)."""
        if not task.stopped and self.task_lifetime is not None and (
                self.elapsed(task) >= self.task_lifetime):
            task.stopped = True
            self.counters.add("tasks.idle_ended")
        return task.stopped

    def live_count(self, kinds: tuple[str, ...]) -> int:
        """Tasks of these kinds still running (for "no duplicates" assertions)."""
        with self.lock:
            return sum(1 for t in self.tasks.values()
                       if t.kind in kinds and not self.lifetime_over(t))

    @staticmethod
    def scheduled(schedule: Schedule, elapsed: float) -> str:
        """The status ``schedule`` gives after ``elapsed`` seconds."""
        current = schedule[0][1]
        for after, status in schedule:
            if elapsed >= after:
                current = status
        return current

