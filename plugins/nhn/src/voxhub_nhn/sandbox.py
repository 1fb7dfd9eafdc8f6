"""``NhnSandbox``: an emulator of NHN Cloud Speech-to-Text v2.0 and v2.1 over HTTP.

Built on :mod:`voxhub.sandbox_kit`. What it reproduces (see ``README.md``):

* the four endpoints (sync ``stt``, ``stt/async``, ``.../status`` and
  ``.../retry``, the last two with GET) under ``/v2.0/`` and ``/v2.1/``;
* auth per version: ``Authorization: {secretKey}`` (v2.0, else ``4010001``),
  ``X-NHN-Authorization: Bearer {UAK token}`` (v2.1, else ``4010007``);
* the envelope (``header.isSuccessful``/``resultCode``/``resultMessage``) with
  HTTP 200 for STT codes as documented (``status_mode="rfc9110"`` sends the
  status the code encodes instead), real statuses for API Gateway codes;
* size, format, duration and silence checks giving ``4000002``/``4000003``/
  ``4000004``/``4000201``/``4000202``/``4000203``/``4000204``;
* async tasks going PENDING -> IN_PROGRESS -> COMPLETED (or FAILED for a
  ``failure_rate`` share) over ``processing_seconds``; a retried task succeeds;
* ``gateway=True`` emulates the old host's API Gateway (10 MB body cap ->
  HTTP 413 ``4131000``; unknown paths -> HTTP 404 ``4041007``);
* any result code on demand through the kit's scripted answers
  (``POST /_sandbox/script``); :meth:`NhnSandbox.answer_code` builds NHN's
  envelope for one;
* the kit's fault injection, counters and control API.

Transcript text: see :mod:`voxhub_nhn.sandbox_text`.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import attrs
import urllib3
from voxhub.sandbox_kit import (
    FaultPlan,
    Request,
    Response,
    Rule,
    Sandbox,
    is_loopback_host,
    json_answer,
)
from werkzeug.exceptions import MethodNotAllowed, NotFound

from .audio import AudioInfo
from .sandbox_rules import (
    GATEWAY_STATUS,
    MB,
    NHN_LIMITS,
    SandboxLimits,
    examine_audio,
    http_status_of,
    result_key,
)
from .sandbox_text import (
    PLACEHOLDER_TEXT,
    Sidecar,
    decode,
    dir_sidecars,
    file_sidecars,
    recognise,
)
from .schema import (
    AsyncSubmitAnswer,
    Header,
    RetryAnswer,
    RetryResult,
    StatusAnswer,
    SttResult,
    SyncAnswer,
    unstructure,
)

__all__ = ["ENDPOINTS", "PLACEHOLDER_TEXT", "NhnSandbox"]

#: Default credentials of the emulator (fake, accepted only by it).
SANDBOX_APP_KEY = "nhn-sandbox-appkey"
SANDBOX_SECRET_KEY = "nhn-sandbox-secret-key"  # noqa: S105 - a sandbox's fake credential
SANDBOX_UAK_TOKEN = "nhn-sandbox-uak-token"  # noqa: S105 - a sandbox's fake credential
#: Extra folders (``os.pathsep``-separated) searched for sidecars of sync uploads.
MEDIA_DIRS_ENV = "VOXHUB_NHN_SANDBOX_MEDIA_DIRS"
#: The documented failure message for an unknown route.
ROUTE_MESSAGE = "Please check your API Url, HTTP Method."
#: NHN's content type (the envelope is UTF-8 JSON, Korean left unescaped).
CONTENT_TYPE = "application/json;charset=UTF-8"

_PREFIX = '/<any("v2.0", "v2.1"):version>/appkeys/<appkey>/stt'
#: The route names scripted answers match on (``endpoint`` of ``POST /_sandbox/script``).
ENDPOINTS = ("sync", "async", "status", "retry")

TaskState = Literal["PENDING", "IN_PROGRESS", "COMPLETED", "FAILED"]


@attrs.define
class _Task:
    task_id: str
    started: float
    result: SttResult
    fails: bool
    retried_from: str | None = None
    retried_to: str | None = None


class _Refused(Exception):
    """Raised inside a handler to answer with result ``code`` (and an optional message)."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


class NhnSandbox(Sandbox):
    """A faithful WSGI emulator of NHN Cloud STT v2.0/v2.1 (sync, async, status, retry).

    Every constructor argument has a default that mirrors the real service;
    tests shrink the limits and ``processing_seconds`` to stay fast.
    """

    provider = "nhn"
    rules = (
        Rule(_PREFIX, endpoint="sync", methods=["POST"]),
        Rule(f"{_PREFIX}/async", endpoint="async", methods=["POST"]),
        Rule(f"{_PREFIX}/async/<task_id>/status", endpoint="status", methods=["GET"]),
        Rule(f"{_PREFIX}/async/<task_id>/retry", endpoint="retry", methods=["GET"]),
    )

    def __init__(
        self,
        *,
        faults: FaultPlan | None = None,
        app_key: str = SANDBOX_APP_KEY,
        secret_key: str = SANDBOX_SECRET_KEY,
        uak_token: str = SANDBOX_UAK_TOKEN,
        processing_seconds: float = 3.0,
        failure_rate: float = 0.0,
        seed: int | None = None,
        retry_new_id: bool = True,
        sync_limits: SandboxLimits = NHN_LIMITS,
        async_limits: SandboxLimits = NHN_LIMITS,
        gateway: bool = False,
        gateway_max_bytes: int = 10 * MB,
        status_mode: Literal["documented", "rfc9110"] = "documented",
        timeslot_strings: bool = True,
        media_dirs: Sequence[str | Path] | None = None,
        remote_duration: float = 12.0,
        use_engine: bool = True,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(faults=faults)
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate is a share in [0, 1]")
        self.app_key = app_key
        self.secret_key = secret_key
        self.uak_token = uak_token
        self.processing_seconds = processing_seconds
        self.failure_rate = failure_rate
        self.retry_new_id = retry_new_id
        self.sync_limits = sync_limits
        self.async_limits = async_limits
        self.gateway = gateway
        self.gateway_max_bytes = gateway_max_bytes
        self.status_mode = status_mode
        self.timeslot_strings = timeslot_strings
        if media_dirs is None:
            # Where a sync upload's sidecar is looked for (the upload carries only a file name).
            env = os.environ.get(MEDIA_DIRS_ENV, "")
            media_dirs = [Path.cwd(), *(p for p in env.split(os.pathsep) if p)]
        self.media_dirs = [Path(d) for d in media_dirs]
        self.remote_duration = remote_duration
        self.use_engine = use_engine
        self._now = now
        self._tasks: dict[str, _Task] = {}
        self._lock = threading.Lock()
        self._fail_rng = random.Random(seed)
        self._http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(5.0))

    # --- the Sandbox contract ------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        """App key plus both credentials (secret key for v2.0, UAK token for v2.1)."""
        return {"app_key": self.app_key, "secret_key": self.secret_key,
                "uak_token": self.uak_token}

    def settings(self, root_url: str) -> dict[str, str]:
        """A complete profile: both credentials are present, so the version is named."""
        return {"base_url": root_url, **self.credentials(), "api_version": "v2.1"}

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._tasks.clear()

    def close(self) -> None:
        super().close()
        self._http.clear()

    def rate_limited_response(self, retry_after: float) -> Response:
        """NHN's gateway answers 429 with its envelope (code 4291000) and Retry-After."""
        response = self._envelope(4291000, "Too many requests")
        response.headers["Retry-After"] = (
            str(int(retry_after)) if float(retry_after).is_integer() else f"{retry_after:.3f}"
        )
        return response

    # --- test helpers ----------------------------------------------------------------

    def answer_code(self, code: int, *, times: int = 1, endpoint: str | None = None,
                    message: str | None = None) -> None:
        """Answer the next ``times`` matching requests with result ``code``, as NHN would.

        A scripted answer (:meth:`Sandbox.script`) carrying NHN's envelope and HTTP
        status; ``endpoint`` is one of :data:`ENDPOINTS` (``None``: any vendor path).
        """
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r} (one of {', '.join(ENDPOINTS)})")
        status, body = self._envelope_parts(int(code), message)
        where: dict[str, Any] = {"endpoint": endpoint} if endpoint else {"path": "/"}
        self.script(action="answer", status=status, body=body,
                    headers={"Content-Type": CONTENT_TYPE}, times=times, **where)

    def task_state(self, task_id: str) -> str | None:
        """The current state of a task (``None`` if unknown), without an HTTP call."""
        with self._lock:
            task = self._tasks.get(task_id)
            return None if task is None else self._state(task)

    # --- dispatch --------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        """Route (the kit), check, answer; any refusal becomes NHN's envelope."""
        try:
            return super().dispatch(request)
        except MethodNotAllowed:
            return self._envelope(405, ROUTE_MESSAGE)
        except NotFound:
            if self.gateway:
                return self._envelope(4041007, "No route matched")
            return self._envelope(404, ROUTE_MESSAGE)
        except _Refused as refused:
            return self._envelope(refused.code, refused.message)
        finally:
            _drain(request)

    def _admit(self, request: Request, version: str, appkey: str) -> None:
        """The gateway's body cap, then the version's authentication."""
        if self.gateway and (request.content_length or 0) > self.gateway_max_bytes:
            raise _Refused(4131000, "Request Entity Too Large")
        if version == "v2.0":
            given = request.headers.get("Authorization", "")
            if not (_same(given, self.secret_key) and _same(appkey, self.app_key)):
                raise _Refused(4010001, "Invalid appkey or secretkey.")
            return
        scheme, _, token = request.headers.get("X-NHN-Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not _same(token.strip(), self.uak_token):
            raise _Refused(4010007, "Invalid token.")
        if not _same(appkey, self.app_key):
            raise _Refused(4010001, "Invalid appkey.")

    # --- endpoints -------------------------------------------------------------------

    def on_sync(self, request: Request, version: str, appkey: str) -> Response:
        self._admit(request, version, appkey)
        if request.mimetype != "multipart/form-data":
            raise _Refused(415, "Content type must be multipart/form-data.")
        limits = self.sync_limits
        # Refuse an obviously oversized body before parsing it (the form would be spooled).
        if (request.content_length or 0) > limits.max_bytes + MB:
            raise _Refused(4000002, "Maximum upload size exceeded.")
        upload = request.files.get("audio")
        if upload is None:
            raise _Refused(4000001, "Required part 'audio' is not present.")
        biasing = _check_biasing(request.form.getlist("biasingList"))
        data = upload.read()
        name = Path(upload.filename or "audio").name
        self.counters.add("sync.recognitions")
        info = self._examine(data, limits)
        result = self._recognise(info, data, dir_sidecars(name, self.media_dirs), biasing,
                                 Path(name).suffix)
        return _answer(SyncAnswer(Header(True, 0, "Success"), result))

    def on_async(self, request: Request, version: str, appkey: str) -> Response:
        self._admit(request, version, appkey)
        if request.mimetype != "application/json":
            raise _Refused(415, "Content type must be application/json.")
        try:
            payload = json.loads(request.get_data() or b"null")
        except (ValueError, UnicodeDecodeError):
            raise _Refused(400, "Malformed JSON body.") from None
        if not isinstance(payload, dict):
            raise _Refused(400, "The body must be a JSON object.")
        url = payload.get("audioUrl")
        if not isinstance(url, str) or not url.strip():
            raise _Refused(4000001, "audioUrl is required.")
        raw_biasing = payload.get("biasingList") or []
        if not isinstance(raw_biasing, list) or not all(isinstance(x, str) for x in raw_biasing):
            raise _Refused(4000001, "biasingList must be a list of strings.")
        biasing = _check_biasing(raw_biasing)
        data, sidecars, suffix = self._download(url.strip())
        if data is None:  # a host the sandbox may not reach: a placeholder recording
            info = AudioInfo("mp3", 0, self.remote_duration, silent=False, decodable=True)
        else:
            info = self._examine(data, self.async_limits)
        result = self._recognise(info, data or b"", sidecars, biasing, suffix)
        task = _Task(str(uuid.uuid4()), self._now(), result, fails=self._roll_failure())
        with self._lock:
            self._tasks[task.task_id] = task
        self.counters.add("tasks.created")
        return _answer(AsyncSubmitAnswer(Header(True, 0, "SUCCESS"), task.task_id))

    def on_status(self, request: Request, version: str, appkey: str, task_id: str) -> Response:
        self._admit(request, version, appkey)
        with self._lock:
            task = self._find(task_id)
            state = self._state(task)
        result = task.result if state == "COMPLETED" else None
        return _answer(StatusAnswer(Header(True, 0, "success"), task.task_id, state, result))

    def on_retry(self, request: Request, version: str, appkey: str, task_id: str) -> Response:
        self._admit(request, version, appkey)
        with self._lock:
            task = self._find(task_id)
            if self._state(task) != "FAILED":
                raise _Refused(4000001, "Only a FAILED task can be retried.")
            if self.retry_new_id:
                fresh = _Task(str(uuid.uuid4()), self._now(), task.result, fails=False,
                              retried_from=task.task_id)
                task.retried_to = fresh.task_id
                self._tasks[fresh.task_id] = fresh
            else:
                task.started, task.fails, fresh = self._now(), False, task
        self.counters.add("tasks.retried")
        return _answer(RetryAnswer(Header(True, 0, "SUCCESS"), RetryResult(fresh.task_id)))

    # --- tasks -----------------------------------------------------------------------

    def _find(self, task_id: str) -> _Task:
        try:
            uuid.UUID(task_id)
        except ValueError:
            raise _Refused(4010002, "Invalid UUID.") from None
        task = self._tasks.get(task_id)
        if task is None:
            raise _Refused(4010006, "Invalid async id.")
        return task

    def _state(self, task: _Task) -> TaskState:
        elapsed = self._now() - task.started
        if elapsed < self.processing_seconds / 3:
            return "PENDING"
        if elapsed < self.processing_seconds:
            return "IN_PROGRESS"
        return "FAILED" if task.fails else "COMPLETED"

    def _roll_failure(self) -> bool:
        with self._lock:
            return self._fail_rng.random() < self.failure_rate

    # --- media -----------------------------------------------------------------------

    def _examine(self, data: bytes, limits: SandboxLimits) -> AudioInfo:
        """NHN's media checks, in the order a server would make them (own code: sandbox_rules)."""
        if not data:
            raise _Refused(4000004, "Uploaded file is empty.")
        if len(data) > limits.max_bytes:
            raise _Refused(4000002, "Maximum upload size exceeded.")
        info = examine_audio(data)
        if info == "type":
            raise _Refused(4000003, "Invalid file type.")
        if not isinstance(info, AudioInfo):
            raise _Refused(4000201, "Invalid audio file.")
        duration = info.duration if info.duration is not None else len(data) / 16_000
        if duration < limits.min_seconds:
            raise _Refused(4000203, "Audio length is too short.")
        if duration > limits.max_seconds:
            raise _Refused(4000202, "Audio length is too long.")
        if info.silent:
            raise _Refused(4000204, "Speech not detected.")
        return attrs.evolve(info, duration=duration)

    def _recognise(self, info: AudioInfo, data: bytes, sidecars: list[Sidecar],
                   biasing: Sequence[tuple[str, str]], suffix: str) -> SttResult:
        return recognise(info, data, sidecars, biasing, suffix=suffix,
                         use_engine=self.use_engine, timeslot_strings=self.timeslot_strings)

    def _download(self, url: str) -> tuple[bytes | None, list[Sidecar], str]:
        """The audio behind ``audioUrl``: file:// and loopback http(s) are fetched.

        Other hosts are never contacted (the sandbox stays on this machine):
        ``None`` means "treat as a reachable placeholder recording".
        """
        parts = urlsplit(url)
        suffix = Path(unquote(parts.path)).suffix
        if parts.scheme == "file":
            path = Path(unquote(parts.path))
            if not path.is_file():
                raise _Refused(4000001, "audioUrl could not be downloaded.")
            if path.stat().st_size > self.async_limits.max_bytes:
                raise _Refused(4000002, "Maximum upload size exceeded.")
            return path.read_bytes(), file_sidecars(path), suffix
        if parts.scheme not in ("http", "https"):
            raise _Refused(4000001, "audioUrl must be an http(s) URL.")
        if not is_loopback_host(parts.hostname or ""):
            return None, [], suffix
        data = self._fetch(url, self.async_limits.max_bytes)
        if data is None:
            raise _Refused(4000001, "audioUrl could not be downloaded.")
        return data, [lambda: decode(self._fetch(url + ".txt", MB))], suffix

    def _fetch(self, url: str, cap: int) -> bytes | None:
        try:
            resp = self._http.request("GET", url, preload_content=False)
        except (urllib3.exceptions.HTTPError, OSError):
            return None
        try:
            if resp.status != 200:
                return None
            data = resp.read(cap + 1)
            if len(data) > cap:
                raise _Refused(4000002, "Maximum upload size exceeded.")
            return bytes(data)
        finally:
            resp.release_conn()

    # --- answers ---------------------------------------------------------------------

    def _envelope_parts(self, code: int, message: str | None) -> tuple[int, dict[str, Any]]:
        """The HTTP status NHN sends ``code`` with, and the envelope body."""
        if code == 0:
            status = 200
        elif code in GATEWAY_STATUS:
            status = GATEWAY_STATUS[code]
        else:
            status = 200 if self.status_mode == "documented" else http_status_of(code)
        header = Header(code == 0, code, message or result_key(code))
        return status, {"header": unstructure(header)}

    def _envelope(self, code: int, message: str | None = None) -> Response:
        status, body = self._envelope_parts(code, message)
        self.counters.add(f"codes.{code}")
        return json_answer(body, status, content_type=CONTENT_TYPE)

    def _control(self, request: Request) -> Response:
        # Inspection only (answers are scripted through the kit's /_sandbox/script).
        if request.path == "/_sandbox/nhn/tasks" and request.method == "GET":
            with self._lock:
                tasks = {t.task_id: {"state": self._state(t), "retried_from": t.retried_from,
                                     "retried_to": t.retried_to} for t in self._tasks.values()}
            return json_answer(tasks)
        return super()._control(request)


# --- helpers -----------------------------------------------------------------------


def _answer(body: Any) -> Response:
    return json_answer(unstructure(body), content_type=CONTENT_TYPE)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _drain(request: Request) -> None:
    """Read what the client sent but was not used, so it always gets the answer."""
    with contextlib.suppress(OSError, ValueError):
        stream = request.stream
        while stream.read(1024 * 1024):
            pass


def _check_biasing(items: Sequence[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for item in items:
        text = item.strip()
        if len(text) >= 2 and text[0] == text[-1] == '"':  # the docs' curl example quotes them
            text = text[1:-1]
        correct, sep, recognised = text.partition("_")
        if not sep or not correct.strip() or not recognised.strip() or "_" in recognised:
            raise _Refused(4000001, f"Invalid biasingList item: {item!r}")
        pairs.append((correct.strip(), recognised.strip()))
    return pairs

