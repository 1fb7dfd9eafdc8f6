"""``NhnSandbox``: an emulator of NHN Cloud Speech-to-Text v2.0 and v2.1 over HTTP.

What it reproduces (see ``README.md`` for the whole list):

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
* :meth:`NhnSandbox.force` (or ``POST /_sandbox/nhn/force``) answers the next
  request(s) with any result code, for codes no input can provoke;
* the core's fault injection, counters and control API (inherited).

Transcript text comes from ``voxhub_local.engine.transcribe`` when that
module exists, else from a sidecar ``<media>.txt``, else a fixed Korean
placeholder, and is split into time slots over the audio's duration.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import importlib
import ipaddress
import json
import os
import random
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import attrs
import urllib3
from voxhub.sandbox import FaultPlan, Sandbox, SandboxSpec
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .audio import AudioInfo, probe
from .codes import lookup
from .options import CURRENT_LIMITS, Limits
from .schema import (
    AsyncSubmitAnswer,
    Header,
    RetryAnswer,
    RetryResult,
    StatusAnswer,
    SttResult,
    SyncAnswer,
    Timeslot,
    unstructure,
)

__all__ = ["PLACEHOLDER_TEXT", "SANDBOX_SPEC", "NhnSandbox"]

VERSIONS = ("v2.0", "v2.1")
MB = 1024 * 1024
#: Said by the sandbox when neither an engine nor a sidecar gives text (NHN is Korean-only).
PLACEHOLDER_TEXT = "안녕하세요. 음성 인식 샌드박스의 예시 결과입니다. 오늘도 좋은 하루 보내세요."
#: Default credentials of the emulator (fake, accepted only by it).
SANDBOX_APP_KEY = "nhn-sandbox-appkey"
SANDBOX_SECRET_KEY = "nhn-sandbox-secret-key"  # noqa: S105 - a sandbox's fake credential
SANDBOX_UAK_TOKEN = "nhn-sandbox-uak-token"  # noqa: S105 - a sandbox's fake credential
#: Extra folders (``os.pathsep``-separated) searched for sidecars of sync uploads.
MEDIA_DIRS_ENV = "VOXHUB_NHN_SANDBOX_MEDIA_DIRS"
#: The documented failure message for an unknown route.
ROUTE_MESSAGE = "Please check your API Url, HTTP Method."

_URLS = Map(
    [
        Rule("/<version>/appkeys/<appkey>/stt", methods=["POST"], endpoint="sync"),
        Rule("/<version>/appkeys/<appkey>/stt/async", methods=["POST"], endpoint="async"),
        Rule("/<version>/appkeys/<appkey>/stt/async/<task_id>/status", methods=["GET"],
             endpoint="status"),
        Rule("/<version>/appkeys/<appkey>/stt/async/<task_id>/retry", methods=["GET"],
             endpoint="retry"),
    ],
    strict_slashes=False,
)

TaskState = Literal["PENDING", "IN_PROGRESS", "COMPLETED", "FAILED"]


@attrs.define
class _Task:
    task_id: str
    started: float
    result: SttResult
    fails: bool
    retried_from: str | None = None
    retried_to: str | None = None


@attrs.frozen
class _Forced:
    code: int
    endpoint: str | None
    message: str | None


class _Refused(Exception):
    """Raised inside a handler to answer with ``code`` (and an optional message)."""

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
        sync_limits: Limits = CURRENT_LIMITS,
        async_limits: Limits = CURRENT_LIMITS,
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
        self._forced: list[_Forced] = []
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
            self._forced.clear()

    def close(self) -> None:
        self._http.clear()

    def rate_limited_response(self, retry_after: float) -> Response:
        """NHN's gateway answers 429 with its envelope (code 4291000) and Retry-After."""
        response = self._envelope(4291000, "Too many requests")
        response.headers["Retry-After"] = (
            str(int(retry_after)) if float(retry_after).is_integer() else f"{retry_after:.3f}"
        )
        return response

    # --- test helpers ----------------------------------------------------------------

    def force(self, code: int, *, times: int = 1, endpoint: str | None = None,
              message: str | None = None) -> None:
        """Answer the next ``times`` matching requests with result ``code``.

        ``endpoint`` is one of ``sync``, ``async``, ``status``, ``retry`` (``None`` = any).
        """
        if endpoint not in (None, "sync", "async", "status", "retry"):
            raise ValueError(f"unknown endpoint {endpoint!r}")
        with self._lock:
            self._forced.extend(_Forced(int(code), endpoint, message) for _ in range(times))

    def task_state(self, task_id: str) -> str | None:
        """The current state of a task (``None`` if unknown), without an HTTP call."""
        with self._lock:
            task = self._tasks.get(task_id)
            return None if task is None else self._state(task)

    # --- dispatch --------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        """Route, authenticate, check, answer; any refusal becomes an envelope."""
        try:
            return self._dispatch(request)
        except _Refused as refused:
            return self._envelope(refused.code, refused.message)
        finally:
            _drain(request)

    def _dispatch(self, request: Request) -> Response:
        adapter = _URLS.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except MethodNotAllowed:
            raise _Refused(405, ROUTE_MESSAGE) from None
        except (NotFound, HTTPException):
            return self._route_missing()
        if args["version"] not in VERSIONS:
            return self._route_missing()
        forced = self._take_forced(str(endpoint))
        if forced is not None:
            self.counters.add(f"forced.{forced.code}")
            raise _Refused(forced.code, forced.message)
        if self.gateway and (request.content_length or 0) > self.gateway_max_bytes:
            raise _Refused(4131000, "Request Entity Too Large")
        self._authenticate(request, args["version"], args["appkey"])
        handler = getattr(self, f"_on_{endpoint}")
        response: Response = handler(request, **{k: v for k, v in args.items()
                                                 if k == "task_id"})
        return response

    def _route_missing(self) -> Response:
        if self.gateway:
            return self._envelope(4041007, "No route matched")
        return self._envelope(404, ROUTE_MESSAGE)

    def _take_forced(self, endpoint: str) -> _Forced | None:
        with self._lock:
            for i, forced in enumerate(self._forced):
                if forced.endpoint in (None, endpoint):
                    return self._forced.pop(i)
        return None

    def _authenticate(self, request: Request, version: str, appkey: str) -> None:
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

    def _on_sync(self, request: Request) -> Response:
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
        sidecars = self._dir_sidecars(name)
        result = self._recognise(info, data, sidecars, biasing, suffix=Path(name).suffix)
        body = SyncAnswer(Header(True, 0, "Success"), result)
        return _json(unstructure(body))

    def _on_async(self, request: Request) -> Response:
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
        result = self._recognise(info, data or b"", sidecars, biasing, suffix=suffix)
        task = _Task(str(uuid.uuid4()), self._now(), result, fails=self._roll_failure())
        with self._lock:
            self._tasks[task.task_id] = task
        self.counters.add("tasks.created")
        return _json(unstructure(AsyncSubmitAnswer(Header(True, 0, "SUCCESS"), task.task_id)))

    def _on_status(self, request: Request, task_id: str) -> Response:
        with self._lock:
            task = self._find(task_id)
            state = self._state(task)
        result = task.result if state == "COMPLETED" else None
        body = StatusAnswer(Header(True, 0, "success"), task.task_id, state, result)
        return _json(unstructure(body))

    def _on_retry(self, request: Request, task_id: str) -> Response:
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
        body = RetryAnswer(Header(True, 0, "SUCCESS"), RetryResult(fresh.task_id))
        return _json(unstructure(body))

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

    def _examine(self, data: bytes, limits: Limits) -> AudioInfo:
        """NHN's media checks, in the order a server would make them."""
        if not data:
            raise _Refused(4000004, "Uploaded file is empty.")
        if len(data) > limits.max_bytes:
            raise _Refused(4000002, "Maximum upload size exceeded.")
        info = probe(data, check_silence=True)
        if info.format is None:
            raise _Refused(4000003, "Invalid file type.")
        if info.decodable is False:
            raise _Refused(4000201, "Invalid audio file.")
        # Formats not readable here (WebM, AAC, AC3): estimate from size at 128 kbit/s.
        duration = info.duration if info.duration is not None else len(data) / 16_000
        if duration < limits.min_seconds:
            raise _Refused(4000203, "Audio length is too short.")
        if duration > limits.max_seconds:
            raise _Refused(4000202, "Audio length is too long.")
        if info.silent:
            raise _Refused(4000204, "Speech not detected.")
        return attrs.evolve(info, duration=duration)

    def _download(self, url: str) -> tuple[bytes | None, list[Callable[[], str | None]], str]:
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
            size = path.stat().st_size
            if size > self.async_limits.max_bytes:
                raise _Refused(4000002, "Maximum upload size exceeded.")
            return path.read_bytes(), _file_sidecars(path), suffix
        if parts.scheme not in ("http", "https"):
            raise _Refused(4000001, "audioUrl must be an http(s) URL.")
        if not _is_loopback(parts.hostname or ""):
            return None, [], suffix
        data = self._fetch(url, self.async_limits.max_bytes)
        if data is None:
            raise _Refused(4000001, "audioUrl could not be downloaded.")
        return data, [lambda: _decode(self._fetch(url + ".txt", MB))], suffix

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

    def _dir_sidecars(self, filename: str) -> list[Callable[[], str | None]]:
        stem = Path(filename).stem
        found: list[Callable[[], str | None]] = []
        for directory in self.media_dirs:
            for candidate in (directory / f"{filename}.txt", directory / f"{stem}.txt"):
                found.append(functools.partial(_read_text, candidate))
        return found

    # --- recognition -----------------------------------------------------------------

    def _recognise(self, info: AudioInfo, data: bytes, sidecars: Iterable[Callable[[], str | None]],
                   biasing: Sequence[tuple[str, str]], *, suffix: str) -> SttResult:
        text = (self._engine_text(data, suffix) if data else None)
        if not text:
            text = next((t for t in (s() for s in sidecars) if t), None)
        text = (text or PLACEHOLDER_TEXT).strip()
        for correct, recognised in biasing:  # what biasingList does on the real service
            text = text.replace(recognised, correct)
        duration = round(float(info.duration or 0.0), 2)
        chunks = _split(text)
        slots = _timeslots(chunks, duration)
        as_wire: Callable[[int], int | str] = str if self.timeslot_strings else int
        return SttResult(
            input_length=duration,
            file_type=info.file_type,
            text=chunks,
            timeslot=[Timeslot(as_wire(a), as_wire(b)) for a, b in slots],
            confidence=[round(0.86 + 0.01 * ((i * 7) % 10), 2) for i in range(len(chunks))],
        )

    def _engine_text(self, data: bytes, suffix: str) -> str | None:
        """Text from ``voxhub_local.engine.transcribe`` if that module exists (looked up lazily)."""
        if not self.use_engine:
            return None
        try:
            engine = importlib.import_module("voxhub_local.engine")
        except ImportError:
            return None
        transcribe = getattr(engine, "transcribe", None)
        if not callable(transcribe):
            return None
        with tempfile.TemporaryDirectory(prefix="nhn-sandbox-") as tmp:
            path = Path(tmp) / f"audio{suffix or '.wav'}"
            path.write_bytes(data)
            try:
                out = transcribe(path)
            except Exception:  # noqa: BLE001 - an engine failure must not break the emulator
                self.counters.add("engine.errors")
                return None
        text = out if isinstance(out, str) else getattr(out, "text", None)
        return text if isinstance(text, str) and text.strip() else None

    # --- answers ---------------------------------------------------------------------

    def _envelope(self, code: int, message: str | None = None) -> Response:
        """A failure (or success) envelope with the HTTP status NHN would send."""
        entry = lookup(code)
        if code == 0:
            status = 200
        elif entry.gateway:
            status = entry.http_status
        else:
            status = 200 if self.status_mode == "documented" else entry.natural_status
        header = Header(code == 0, code, message or entry.key)
        self.counters.add(f"codes.{code}")
        return _json({"header": unstructure(header)}, status=status)

    def _control(self, request: Request) -> Response:
        action = request.path.removeprefix("/_sandbox/")
        if action == "nhn/force" and request.method == "POST":
            try:
                spec = json.loads(request.get_data() or b"{}")
                self.force(int(spec["code"]), times=int(spec.get("times", 1)),
                           endpoint=spec.get("endpoint"), message=spec.get("message"))
            except (ValueError, KeyError, TypeError) as exc:
                return _json({"error": str(exc)}, status=400)
            return _json({"forced": spec})
        if action == "nhn/tasks" and request.method == "GET":
            with self._lock:
                tasks = {t.task_id: {"state": self._state(t), "retried_from": t.retried_from,
                                     "retried_to": t.retried_to} for t in self._tasks.values()}
            return _json(tasks)
        return super()._control(request)


# --- helpers -----------------------------------------------------------------------


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, ensure_ascii=False), status=status,
                    content_type="application/json;charset=UTF-8")


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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _decode(data: bytes | None) -> str | None:
    if not data:
        return None
    text = data.decode("utf-8-sig", "replace").strip()
    return text or None


def _read_text(path: Path) -> str | None:
    try:
        return _decode(path.read_bytes()) if path.is_file() else None
    except OSError:
        return None


def _file_sidecars(path: Path) -> list[Callable[[], str | None]]:
    return [lambda: _read_text(path.with_name(path.name + ".txt")),
            lambda: _read_text(path.with_suffix(".txt"))]


_SENTENCE = re.compile(r"(?<=[.!?\u3002\uff1f\uff01])\s+|\n+")
_MAX_WORDS = 12


def _split(text: str) -> list[str]:
    """Sentences, and long sentences cut every dozen words: NHN's segment granularity."""
    chunks: list[str] = []
    for sentence in _SENTENCE.split(text):
        words = sentence.split()
        for i in range(0, len(words), _MAX_WORDS):
            chunks.append(" ".join(words[i:i + _MAX_WORDS]))
    return chunks or [text]


def _timeslots(chunks: Sequence[str], duration: float) -> list[tuple[int, int]]:
    """Spread the chunks over the audio in proportion to their length (milliseconds)."""
    total_ms = max(1, int(duration * 1000))
    weights = [max(1, len(c)) for c in chunks]
    scale = total_ms / sum(weights)
    slots: list[tuple[int, int]] = []
    start = 0.0
    for weight in weights:
        end = start + weight * scale
        slots.append((round(start), round(end)))
        start = end
    return slots


#: How the plugin offers the sandbox (``voxhub sandbox nhn``).
SANDBOX_SPEC = SandboxSpec(
    "nhn", NhnSandbox,
    "NHN Cloud Speech-to-Text v2.0/v2.1: sync, async, status and retry, with result codes",
)
