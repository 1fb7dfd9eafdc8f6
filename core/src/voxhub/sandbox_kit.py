"""The kit every vendor emulator ("sandbox") is built from.

A plugin's ``sandbox.py`` subclasses :class:`Sandbox`, declares its vendor's routes
with werkzeug :class:`~werkzeug.routing.Rule` objects and answers each in an
``on_<endpoint>`` method. This module adds what all emulators share, so each is
only about its vendor:

* **routing** — :attr:`Sandbox.rules` (werkzeug ``Map``): ``Rule("/v1/jobs/<job_id>",
  endpoint="get_job", methods=["GET"])`` calls ``on_get_job(request, job_id=...)``;
  unknown paths answer 404 and wrong methods 405, as a real server does;
* **JSON answers** — :func:`json_answer`;
* **fault injection** (:class:`FaultPlan`): a share of requests answered 429 with
  ``Retry-After``, 502/503/504, slowed down, or dropped without an answer;
* **scripted answers** (:class:`ScriptedAnswer`): "answer the next N requests to
  this endpoint with exactly this", or "act on the next request, then lose its
  answer" — one mechanism for every emulator, driven from tests in-process
  (:meth:`Sandbox.script`) or over HTTP (``POST /_sandbox/script``);
* **counters** of what was received (:class:`Counters`), to prove "no duplicates";
* a **control API** on every sandbox: ``GET /_sandbox/counters``,
  ``POST /_sandbox/faults`` (a JSON FaultPlan), ``POST /_sandbox/script``,
  ``POST /_sandbox/reset``;
* **job timers** (:class:`JobTimers`): finish a vendor job after its processing
  time, cancelled on reset and close;
* **media facts** — :func:`wav_info` (duration, channels, rate) and
  :func:`is_loopback_url` (sandboxes fetch media from loopback only);
* **text for media** — :func:`media_text`: what the speech in a file says, from a
  *recognizer* an installed plugin declares in the ``voxhub.recognizers``
  entry-point group (``voxhub-local`` declares one). This is the one, documented
  dependency of transcription emulators on a recognizer; without one installed,
  they answer a fixed, documented text;
* :class:`CallbackSender`, webhook delivery with retries.

Running an emulator (loopback server, child process) is :mod:`voxhub.sandbox`.
Nothing here reaches the outside world.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .sandbox_callbacks import CallbackSender
from .sandbox_media import (
    NO_RECOGNIZER_TEXT,
    WavInfo,
    is_loopback_host,
    is_loopback_url,
    media_text,
    wav_info,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "NO_RECOGNIZER_TEXT",
    "CallbackSender",
    "Counters",
    "FaultPlan",
    "JobTimers",
    "Request",
    "Response",
    "Rule",
    "Sandbox",
    "ScriptedAnswer",
    "WavInfo",
    "drop_connection",
    "is_loopback_host",
    "is_loopback_url",
    "json_answer",
    "media_text",
    "wav_info",
]


@attrs.frozen
class FaultPlan:
    """Which faults to inject, as shares of requests in [0, 1] (checked in this order).

    ``only_paths`` limits faults to paths starting with one of these prefixes
    (``None`` = every vendor path; the control API is never faulted).
    ``drop`` closes the connection without an answer; ``slow`` delays the answer
    by ``slow_seconds`` (longer than a client's read timeout makes a timeout).
    ``drop_after`` is the share of creating requests (POST, PATCH) that are handled
    as usual and then lose their answer: the vendor acted (a job exists) but the
    client never hears of it — the case exactly-once submission must survive. Other
    methods are left alone by it (for them a lost answer is just a ``drop``).
    """

    rate_limited: float = 0.0
    retry_after: float = 1.0
    server_error: float = 0.0
    server_error_statuses: tuple[int, ...] = (502, 503, 504)
    drop: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 2.0
    seed: int | None = None
    only_paths: tuple[str, ...] | None = None
    drop_after: float = 0.0

    #: The methods ``drop_after`` applies to: those a client never repeats blindly.
    DROP_AFTER_METHODS: ClassVar[frozenset[str]] = frozenset({"POST", "PATCH"})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultPlan:
        fields = {f.name for f in attrs.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        clean = dict(data)
        for key in ("server_error_statuses", "only_paths"):
            if clean.get(key) is not None:
                clean[key] = tuple(clean[key])
        return cls(**clean)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Counters:
    """Thread-safe named counters (``requests``, ``faults``, plus any the vendor code adds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


@attrs.frozen
class ScriptedAnswer:
    """One scripted reaction to the next ``times`` requests that match.

    A request matches when its route's endpoint is ``endpoint`` (the name in the
    sandbox's :class:`Rule`), or — for ``path`` — when its path starts with it;
    ``method`` narrows either. ``action`` is what happens:

    * ``"answer"`` — reply ``status`` with ``body`` (JSON unless it is a string) and
      ``headers``; the vendor logic never sees the request;
    * ``"drop"`` — close the connection without an answer; the request is never handled;
    * ``"drop_after"`` — handle the request as usual (the vendor acts: a job is
      created), then close the connection: the answer is lost on its way back.
    """

    endpoint: str | None = None
    path: str | None = None
    method: str | None = None
    action: str = "answer"
    status: int = 500
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    times: int = 1

    ACTIONS: ClassVar[frozenset[str]] = frozenset({"answer", "drop", "drop_after"})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScriptedAnswer:
        """Read a ``POST /_sandbox/script`` body; a ``ValueError`` says what is wrong."""
        fields = {f.name for f in attrs.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown script fields: {', '.join(sorted(unknown))}")
        answer = cls(**dict(data))
        if answer.action not in cls.ACTIONS:
            raise ValueError(f"action must be one of {', '.join(sorted(cls.ACTIONS))}")
        if answer.endpoint is None and answer.path is None:
            raise ValueError("a script needs an endpoint or a path to match")
        if not isinstance(answer.times, int) or answer.times < 1:
            raise ValueError("times must be a positive integer")
        if not isinstance(answer.status, int) or not 100 <= answer.status <= 599:
            raise ValueError("status must be an HTTP status (100-599)")
        return answer

    def matches(self, request: Request, endpoint: str | None) -> bool:
        if self.method is not None and request.method != self.method.upper():
            return False
        if self.endpoint is not None:
            return endpoint == self.endpoint
        return self.path is not None and request.path.startswith(self.path)

    def response(self) -> Response:
        if isinstance(self.body, str | bytes):
            return Response(self.body, status=self.status, headers=dict(self.headers))
        return json_answer(self.body, self.status, headers=self.headers)


class Sandbox:
    """Base class of a vendor emulator: a WSGI application with routes, faults and scripts.

    Subclasses set :attr:`provider` and :attr:`rules`, write one ``on_<endpoint>``
    method per rule (or override :meth:`dispatch` entirely), implement
    :meth:`credentials`, and may override :meth:`settings` (what a client profile
    needs: ``base_url`` plus credentials).
    """

    provider: ClassVar[str] = ""
    #: The vendor's routes; each rule's endpoint names the ``on_<endpoint>`` handler.
    rules: ClassVar[tuple[Rule, ...]] = ()

    def __init__(self, *, faults: FaultPlan | None = None) -> None:
        self.faults = faults or FaultPlan()
        self.counters = Counters()
        self.timers = JobTimers()
        self._rng = random.Random(self.faults.seed)
        self._rng_lock = threading.Lock()
        self._scripts: list[list[Any]] = []  # [ScriptedAnswer, remaining uses]
        self._url_map = Map([rule.empty() for rule in self.rules], strict_slashes=False)
        self.root_url = ""  # set by serve(); used for absolute URLs in answers

    # --- for subclasses -----------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        """Answer one vendor API request: the ``on_<endpoint>`` method of its route."""
        endpoint, values = self._url_map.bind_to_environ(request.environ).match()
        handler: Callable[..., Response] = getattr(self, f"on_{endpoint}")
        return handler(request, **values)

    def credentials(self) -> dict[str, str]:
        """The credentials this sandbox accepts (as a client profile names them)."""
        return {}

    def settings(self, root_url: str) -> dict[str, str]:
        """A complete client profile for this sandbox (``base_url`` + credentials)."""
        return {"base_url": root_url, **self.credentials()}

    def reset(self) -> None:
        """Forget all vendor state (jobs, tasks...). Subclasses extend it."""
        self.counters.reset()
        self.timers.cancel_all()
        with self._rng_lock:
            self._scripts.clear()

    def close(self) -> None:
        """Stop background work (timers, callback senders). Subclasses extend it."""
        self.timers.cancel_all()

    def rate_limited_response(self, retry_after: float) -> Response:
        """The vendor's 429 answer (subclasses may give it the vendor's body)."""
        return json_answer(
            {"title": "Too Many Requests", "status": 429},
            429,
            headers={"Retry-After": _fmt_seconds(retry_after)},
        )

    # --- faults and scripts -------------------------------------------------

    def set_faults(self, plan: FaultPlan) -> None:
        self.faults = plan
        with self._rng_lock:
            self._rng = random.Random(plan.seed)

    def script(self, answer: ScriptedAnswer | None = None, /, **fields: Any) -> None:
        """Queue a scripted reaction (a :class:`ScriptedAnswer` or its fields)."""
        scripted = answer if answer is not None else ScriptedAnswer.from_dict(fields)
        with self._rng_lock:
            self._scripts.append([scripted, scripted.times])

    def _take_script(self, request: Request, endpoint: str | None) -> ScriptedAnswer | None:
        with self._rng_lock:
            for entry in self._scripts:
                scripted, _left = entry
                if scripted.matches(request, endpoint):
                    entry[1] -= 1
                    if entry[1] <= 0:
                        self._scripts.remove(entry)
                    return scripted  # type: ignore[no-any-return]
        return None

    def _endpoint(self, request: Request) -> str | None:
        try:
            endpoint, _ = self._url_map.bind_to_environ(request.environ).match()
        except HTTPException:
            return None
        return str(endpoint)

    # --- WSGI ---------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/_sandbox/"):
            return self._control(request)(environ, start_response)
        self.counters.add("requests")
        self.counters.add(f"{request.method} {request.path}")
        fault = self._pick_fault(request.path, request.method)
        lose_answer = fault == "drop_after"
        if lose_answer:
            self.counters.add("faults.drop_after")
            fault = None
        if fault == "drop":
            self.counters.add("faults.drop")
            _lose_answer(request)
            raise ConnectionResetError("sandbox dropped the connection on purpose")
        if fault == "slow":
            self.counters.add("faults.slow")
            time.sleep(self.faults.slow_seconds)
        elif fault == "rate_limited":
            self.counters.add("faults.rate_limited")
            return self.rate_limited_response(self.faults.retry_after)(environ, start_response)
        elif fault is not None:
            status = int(fault)
            self.counters.add(f"faults.{status}")
            return Response(f"sandbox injected {status}", status=status)(environ, start_response)
        scripted = self._take_script(request, self._endpoint(request)) if self._scripts else None
        if scripted is not None:
            self.counters.add(f"scripted.{scripted.action}")
            if scripted.action == "answer":
                return scripted.response()(environ, start_response)
            if scripted.action == "drop":
                _lose_answer(request)
                raise ConnectionResetError("sandbox dropped the request on purpose (scripted)")
        try:
            response = self.dispatch(request)
        except HTTPException as exc:
            return exc(environ, start_response)
        if scripted is not None or lose_answer:  # drop_after: the vendor acted, its answer is lost
            _lose_answer(request)
            raise ConnectionResetError("sandbox dropped the answer on purpose")
        return response(environ, start_response)

    def _pick_fault(self, path: str, method: str = "GET") -> str | None:
        plan = self.faults
        if plan.only_paths is not None and not path.startswith(plan.only_paths):
            return None
        with self._rng_lock:
            roll = self._rng.random()
            choice = self._rng.choice(plan.server_error_statuses or (503,))
        for name, share in (
            ("rate_limited", plan.rate_limited),
            (str(choice), plan.server_error),
            ("drop", plan.drop),
            ("slow", plan.slow),
            # Last, so that plans without it draw exactly the faults they always did.
            ("drop_after", plan.drop_after),
        ):
            if roll < share:
                if name == "drop_after" and method.upper() not in plan.DROP_AFTER_METHODS:
                    return None
                return name
            roll -= share
        return None

    def _control(self, request: Request) -> Response:
        action = request.path.removeprefix("/_sandbox/")
        if action == "counters" and request.method == "GET":
            return json_answer(self.counters.snapshot())
        if action in ("faults", "script") and request.method == "POST":
            try:
                data = json.loads(request.get_data() or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("expected a JSON object")
                if action == "faults":
                    self.set_faults(FaultPlan.from_dict(data))
                    return json_answer(self.faults.to_dict())
                self.script(ScriptedAnswer.from_dict(data))
            except (ValueError, TypeError) as exc:
                return json_answer({"error": str(exc)}, 400)
            return json_answer({"scripted": data})
        if action == "faults" and request.method == "GET":
            return json_answer(self.faults.to_dict())
        if action == "reset" and request.method == "POST":
            self.reset()
            return json_answer({"reset": True})
        return json_answer({"error": "unknown sandbox control"}, 404)


def json_answer(
    data: Any, status: int = 200, *, headers: Mapping[str, str] | None = None,
    content_type: str = "application/json",
) -> Response:
    """A JSON answer (``data`` ``None`` gives an empty body) with ``Content-Length`` set."""
    body = b"" if data is None else json.dumps(data, ensure_ascii=False).encode()
    return Response(body, status=status, headers=dict(headers or {}), content_type=content_type)


def _lose_answer(request: Request) -> None:
    """Receive the whole request, then reset the connection: no answer comes back.

    Reading the body first makes every drop look the same to the client — its
    request arrived and the answer was lost — instead of racing the reset against
    the client's last bytes (a reset mid-send would tell it the request never left).
    """
    stream = request.stream
    while stream.read(1 << 16):
        pass
    drop_connection(request.environ)


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def drop_connection(environ: WSGIEnvironment) -> None:
    """Reset the client's connection (RST, not a clean close): an answer lost on the way."""
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        try:
            # SO_LINGER 0 makes close send a RST: the client sees a reset, not a clean EOF.
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# --- job timers ------------------------------------------------------------------


class JobTimers:
    """Runs vendor work "later" (a job finishing after its processing time).

    Every pending timer is cancelled by :meth:`cancel_all` (reset, close), so a
    stopped sandbox leaves no thread behind.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timers: set[threading.Timer] = set()

    def after(self, seconds: float, action: Callable[[], None]) -> None:
        """Call ``action`` in ``seconds`` (at once, in this thread, when ``seconds <= 0``)."""
        if seconds <= 0:
            action()
            return

        def run() -> None:
            with self._lock:
                self._timers.discard(timer)
            action()

        timer = threading.Timer(seconds, run)
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def cancel_all(self) -> None:
        with self._lock:
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()

    def __len__(self) -> int:
        with self._lock:
            return len(self._timers)
