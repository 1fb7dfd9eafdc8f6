"""``TupuSandbox``: a loopback emulator of Tupu's speech-stream API v3.

What it does, as Tupu does (see the README for what is inferred):

* ``POST /v3/recognition/speech/stream/{secretId}`` starts streams,
  ``.../stream/close/{secretId}`` closes them, ``.../stream/search/{secretId}``
  reports their state. Every request's signature is checked against the
  client public key registered for the secretId (wrong signature: ``code``
  1; unknown secretId: 6; timestamp outside ``max_clock_skew``: 12). Every
  answer is the signed envelope ``{"json": ..., "signature": ...}``.
* Each stream "listens" on a job timer (:class:`voxhub.sandbox_kit.JobTimers`):
  every ``slice_interval`` seconds one slice of the simulated content is processed
  and signed callbacks are POSTed to the stream's callback URL (through
  :class:`voxhub.sandbox_kit.CallbackSender`, which retries failed deliveries):
  under ``callbackRules`` 0 and 2 only violations (a moderation or vulgar-speech
  hit); under 1 and 3 every result, transcript slices included (seed 003).
  When the content runs out (or the stream is closed) the stream ends, and an
  end-of-task callback ``{code, requestId, status: "end"}`` is sent when
  ``callbackRules`` asks for it.
* Content comes from a script of slices (``script=``), from a local audio file
  (``audio=``: cut into slices by length, its words from the recognizer the
  sandbox kit finds, see :mod:`voxhub_tupu.sandbox_content`), or from a small
  built-in script with one moderation and one vulgar violation.
* Evidence audio (``speechUrl``) is served by the sandbox itself under
  ``/media/{requestId}/{n}.wav``.

The sandbox makes its own "Tupu" key pair and a client key pair at start;
:meth:`TupuSandbox.settings` is a complete client profile (``secret_id``,
``private_key`` and ``public_key`` paths in a private temporary directory).

Routes are werkzeug rules (:attr:`TupuSandbox.rules`); scripted answers, faults,
counters and ``/_sandbox/*`` control come from :class:`voxhub.sandbox_kit.Sandbox`.
Note that the ``script`` option is stream *content*; scripting the next HTTP
answers is the kit's ``POST /_sandbox/script``.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Final

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from voxhub.plugin import SandboxSpec
from voxhub.sandbox_kit import (
    CallbackSender,
    FaultPlan,
    Request,
    Response,
    Rule,
    Sandbox,
    json_answer,
)

from .sandbox_content import (
    DEFAULT_SCRIPT,
    ScriptSlice,
    evidence_clip,
    slice_results,
    slices_from_audio,
)
from .sandbox_rules import (
    BEIJING,
    TASK_SPEECH_MODERATION,
    TASK_TRANSCRIPTION,
    TASK_VULGAR_SPEECH,
    envelope,
    field_text,
    new_client_keys,
    read_public_key,
    rule_sends_all,
    rule_sends_end,
    signature_matches,
    stream_url_problem,
)

__all__ = ["DEFAULT_SCRIPT", "SANDBOX_SPEC", "ScriptSlice", "TupuSandbox", "slices_from_audio"]

TUPU_PUBLIC_KEY_FILENAME: Final = "open_tuputech_com_public_key.pem"
_DEFAULT_TASKS: Final = (TASK_VULGAR_SPEECH, TASK_TRANSCRIPTION, TASK_SPEECH_MODERATION)
_VARIANTS: Final = ("documented", "alternate")
_STREAM: Final = "/v3/recognition/speech/stream"
#: The timestamp window, an assumption: Tupu documents none (only error code 12,
#: "time parameter error"). ``max_clock_skew=None`` turns it off, which the seed's own
#: example (timestamp 1541499770, from 2018) needs.
DEFAULT_CLOCK_SKEW: Final = 300.0


@attrs.define
class _Stream:
    request_id: str
    url: str
    callback: str
    tags: dict[str, str]
    rules: int
    return_pre_speech: bool
    tasks: tuple[str, ...]
    started: float
    status: str = "running"
    end_code: int = 0
    elapsed: float = 0.0
    slices_sent: int = 0
    next_slice: int = 0
    media: dict[int, tuple[float | None, float]] = attrs.field(factory=dict)


class TupuSandbox(Sandbox):
    """Emulator of Tupu's speech-stream API (see the module docstring).

    Keyword options: ``script`` (the content: slices as strings or mappings, see
    :class:`ScriptSlice`; kept in :attr:`content`), ``audio`` (a local WAV file, cut
    into ``audio_slice_seconds`` slices), ``slice_interval``
    (seconds between slices), ``loop`` (repeat the content until closed),
    ``natural_end_code`` (the end callback's code when the content runs out),
    ``max_clock_skew`` (seconds, ``None``: no window; an assumption), ``variant``
    (``documented`` or ``alternate``: the second emits the other plausible shape
    of every inferred field),
    ``configured_tasks`` (what runs when a request names no tasks),
    ``flag_words`` (word -> label: transcript slices containing the word
    become moderation violations), ``callback_schedule`` (retry delays).
    """

    provider = "tupu"
    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(f"{_STREAM}/<secret_id>", endpoint="submit", methods=["POST"]),
        Rule(f"{_STREAM}/close/<secret_id>", endpoint="close", methods=["POST"]),
        Rule(f"{_STREAM}/search/<secret_id>", endpoint="search", methods=["POST"]),
        Rule("/media/<request_id>/<int:index>.wav", endpoint="media", methods=["GET"]),
    )

    def __init__(
        self,
        *,
        faults: FaultPlan | None = None,
        script: Sequence[ScriptSlice | str | Mapping[str, Any]] | None = None,
        audio: str | Path | None = None,
        audio_slice_seconds: float = 10.0,
        slice_interval: float = 0.5,
        loop: bool = False,
        natural_end_code: int = 0,
        max_clock_skew: float | None = DEFAULT_CLOCK_SKEW,
        variant: str = "documented",
        configured_tasks: Sequence[str] = _DEFAULT_TASKS,
        flag_words: Mapping[str, str] | None = None,
        callback_schedule: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0),
        end_callback_delay: float = 0.2,
        secret_id: str | None = None,
    ) -> None:
        super().__init__(faults=faults)
        if variant not in _VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(_VARIANTS)}")
        if slice_interval <= 0:
            raise ValueError("slice_interval must be positive")
        if script is not None and audio is not None:
            raise ValueError("give a script or an audio file, not both")
        # Not self.script: that name is the kit's scripted-answer method.
        self.content: tuple[ScriptSlice, ...]
        if audio is not None:
            self.content = tuple(slices_from_audio(audio, slice_seconds=audio_slice_seconds))
        elif script is not None:
            self.content = tuple(ScriptSlice.from_value(s) for s in script)
        else:
            self.content = DEFAULT_SCRIPT
        self.audio = Path(audio) if audio is not None else None
        self.slice_interval = float(slice_interval)
        self.loop = loop
        self.natural_end_code = natural_end_code
        self.max_clock_skew = None if max_clock_skew is None else float(max_clock_skew)
        self.variant = variant
        self.configured_tasks = tuple(configured_tasks)
        self.flag_words = dict(flag_words or {})
        self.end_callback_delay = end_callback_delay
        self.secret_id = secret_id or "sbx" + secrets.token_hex(8)
        self.submissions: list[dict[str, Any]] = []

        # "Tupu's" own key pair: answers and callbacks are signed with it.
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._clients: dict[str, rsa.RSAPublicKey] = {}
        self._streams: dict[str, _Stream] = {}
        self._lock = threading.Lock()
        self._closed = False

        self._dir = Path(tempfile.mkdtemp(prefix="voxhub-tupu-sandbox-"))
        # Removed by close(); also when a sandbox that was never closed is collected or at exit.
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, True)
        self.client_private_key_path, client_public = new_client_keys(self._dir / "client")
        self.tupu_public_key_path = self._dir / TUPU_PUBLIC_KEY_FILENAME
        self.tupu_public_key_path.write_bytes(self.public_key_pem)
        self.register_client(self.secret_id, client_public)
        self.sender = CallbackSender(self.counters, schedule=callback_schedule)

    # --- keys and credentials ---------------------------------------------------------

    @property
    def public_key_pem(self) -> bytes:
        """The sandbox's ("Tupu's") public key, SubjectPublicKeyInfo PEM."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def register_client(self, secret_id: str, public_key: bytes | str | rsa.RSAPublicKey) -> None:
        """Accept requests for ``secret_id`` signed by the private half of ``public_key``.

        This is the sandbox's "upload your public key in the console".
        """
        key = public_key if isinstance(public_key, rsa.RSAPublicKey) else read_public_key(
            public_key.encode() if isinstance(public_key, str) else public_key
        )
        with self._lock:
            self._clients[secret_id] = key

    def credentials(self) -> dict[str, str]:
        """``secret_id`` and the paths of the client private key and the sandbox public key."""
        return {
            "secret_id": self.secret_id,
            "private_key": str(self.client_private_key_path),
            "public_key": str(self.tupu_public_key_path),
        }

    def sign(self, payload: Mapping[str, Any]) -> bytes:
        """A signed envelope body for ``payload``, as Tupu sends answers and callbacks."""
        return envelope(payload, self._key)

    # --- lifecycle ----------------------------------------------------------------------

    def reset(self) -> None:
        """Stop and forget every stream (no end callbacks are sent for them)."""
        with self._lock:
            for stream in self._streams.values():
                stream.status = "reset"  # a timer already running sees it and stops
            self._streams.clear()
            self.submissions.clear()
        super().reset()

    def close(self) -> None:
        """Stop streams, the callback sender, and remove the key directory."""
        if self._closed:
            return
        self._closed = True
        super().close()
        self.sender.close()
        self._cleanup()

    def stream(self, request_id: str) -> dict[str, Any] | None:
        """A snapshot of one stream's state (for tests), or ``None`` if unknown."""
        with self._lock:
            stream = self._streams.get(request_id)
            if stream is None:
                return None
            return {
                "requestId": stream.request_id, "status": stream.status, "code": stream.end_code,
                "callbackRules": stream.rules, "slices_sent": stream.slices_sent,
                "tasks": list(stream.tasks), "callback": stream.callback,
            }

    # --- HTTP ---------------------------------------------------------------------------

    def on_submit(self, request: Request, secret_id: str) -> Response:
        """Start the streams of ``speechStream[]``; each gets a requestId and a timer."""
        body = self._signed_body(request, secret_id)
        if isinstance(body, Response):
            return body
        items = body.get("speechStream")
        if not isinstance(items, list) or not items:
            return self._answer(15, "speechStream must be a non-empty array")
        tasks_value = body.get("tasks")
        if tasks_value is None:
            tasks = self.configured_tasks
        elif isinstance(tasks_value, list) and all(isinstance(t, str) for t in tasks_value):
            tasks = tuple(tasks_value)
        else:
            return self._answer(15, "tasks must be an array of task ids")
        if not tasks:
            return self._answer(13, "no task configured")
        for task in tasks:
            if task not in self.configured_tasks:
                return self._answer(7, f"task {task} not allowed for this secretId")
        streams: list[_Stream] = []
        for item in items:
            stream_or_refusal = self._new_stream(item, tasks)
            if isinstance(stream_or_refusal, Response):
                return stream_or_refusal
            streams.append(stream_or_refusal)
        with self._lock:
            self.submissions.append(dict(body))
            for stream in streams:
                self._streams[stream.request_id] = stream
        results = []
        for stream in streams:
            self.counters.add("streams.submitted")
            self._next_tick(stream)
            results.append({"requestId": stream.request_id, "url": stream.url,
                            "callback": stream.callback, **stream.tags})
        return self._answer(0, "success", result=results)

    def on_close(self, request: Request, secret_id: str) -> Response:
        """Close streams by requestId (code 16 when none of them is known)."""
        body = self._signed_body(request, secret_id)
        if isinstance(body, Response):
            return body
        items = body.get("speechStream")
        if not isinstance(items, list) or not items:
            return self._answer(15, "speechStream must be a non-empty array")
        results = []
        found = 0
        for item in items:
            rid = str(item.get("requestId", "")) if isinstance(item, Mapping) else ""
            with self._lock:
                stream = self._streams.get(rid)
            if stream is None:
                results.append({"requestId": rid, "status": "notFound"})
                continue
            found += 1
            self._end(stream, code=0, status="closed")
            results.append({"requestId": rid, "status": "closed"})
        if not found:
            return self._answer(16, "no data found", result=results)
        return self._answer(0, "success", result=results)

    def on_search(self, request: Request, secret_id: str) -> Response:
        """A stream's state (``result`` a list, or an object in the alternate variant)."""
        body = self._signed_body(request, secret_id)
        if isinstance(body, Response):
            return body
        rid = str(body.get("requestId", ""))
        with self._lock:
            stream = self._streams.get(rid)
        if stream is None:
            return self._answer(16, "no data found")
        record = {"requestId": rid, "status": stream.status, "code": stream.end_code,
                  "url": stream.url, **stream.tags}
        if self.variant == "alternate":
            return self._answer(0, "success", result=record)
        return self._answer(0, "success", result=[record])

    def on_media(self, request: Request, request_id: str, index: int) -> Response:
        """The evidence clip of one slice (unsigned audio, as Tupu serves it)."""
        with self._lock:
            stream = self._streams.get(request_id)
            clip = stream.media.get(index) if stream is not None else None
        if clip is None:
            return json_answer({"error": "not found"}, 404)
        self.counters.add("media.served")
        return Response(evidence_clip(self.audio, *clip), content_type="audio/wav")

    def _answer(self, code: int, message: str, **extra: Any) -> Response:
        payload: dict[str, Any] = {"code": code, "message": message, **extra}
        payload.update(self._stamp())
        self.counters.add(f"answers.code.{code}")
        return Response(self.sign(payload), status=200, content_type="application/json")

    def _stamp(self) -> dict[str, Any]:
        ms = int(time.time() * 1000)
        nonce = secrets.randbelow(10**16) / 10**16
        if self.variant == "alternate":
            return {"timestamp": str(ms), "nonce": nonce}
        return {"timestamp": ms, "nonce": f"{nonce}"}

    def _signed_body(self, request: Request, secret_id: str) -> dict[str, Any] | Response:
        """The request's JSON body if its form, signature and timestamp pass, else Tupu's refusal.

        Seed 003 documents ``Content-type: application/json`` and the three signed
        fields; anything else is refused with code 15 (illegal parameter).
        """
        if request.mimetype != "application/json":
            self.counters.add("requests.bad_content_type")
            return self._answer(15, "illegal parameter: Content-Type must be application/json")
        try:
            # parse_float=str: a nonce such as 0.8469537531104208 is signed as its exact text.
            body = json.loads(request.get_data(), parse_float=str)
        except ValueError:
            return self._answer(15, "request body is not valid JSON")
        if not isinstance(body, dict):
            return self._answer(15, "request body is not a JSON object")
        with self._lock:
            public_key = self._clients.get(secret_id)
        if public_key is None:
            return self._answer(6, "secretId error")
        timestamp = field_text(body.get("timestamp"))
        if timestamp is None:
            return self._answer(12, "time parameter error: no timestamp")
        nonce, signature = field_text(body.get("nonce")), body.get("signature")
        if (nonce is None or not isinstance(signature, str)
                or not signature_matches(secret_id, timestamp, nonce, signature, public_key)):
            self.counters.add("requests.bad_signature")
            return self._answer(1, "authentication failed")
        try:
            sent = float(timestamp)
        except ValueError:
            return self._answer(12, "time parameter error")
        # An assumption (Tupu documents no window; code 12 suggests one): see the README.
        if self.max_clock_skew is not None and abs(time.time() - sent) > self.max_clock_skew:
            self.counters.add("requests.stale")
            return self._answer(12, "time parameter error")
        return body

    def _new_stream(self, item: Any, tasks: tuple[str, ...]) -> _Stream | Response:
        if not isinstance(item, Mapping):
            return self._answer(15, "speechStream items must be objects")
        url, callback = item.get("url"), item.get("callback")
        if not isinstance(url, str) or not url:
            return self._answer(3, "no stream url")
        problem = stream_url_problem(url)
        if problem is not None:
            self.counters.add("streams.bad_url")
            return self._answer(15, f"illegal parameter: {problem}")
        if not isinstance(callback, str) or not callback.startswith(("http://", "https://")):
            return self._answer(11, "callback parameter missing")
        rule = item.get("callbackRules", 0)
        if isinstance(rule, bool) or rule not in (0, 1, 2, 3):
            return self._answer(15, "illegal parameter: callbackRules must be 0, 1, 2 or 3")
        pre = item.get("returnPreSpeech", False)
        if not isinstance(pre, bool):
            return self._answer(15, "returnPreSpeech must be a boolean")
        tags = {k: str(item[k]) for k in ("roomId", "userId", "forumId") if k in item}
        return _Stream(
            request_id=secrets.token_hex(12), url=url, callback=callback, tags=tags,
            rules=int(rule), return_pre_speech=pre, tasks=tasks, started=time.time(),
        )

    # --- the simulated streams -----------------------------------------------------------

    def _next_tick(self, stream: _Stream) -> None:
        self.timers.after(self.slice_interval, lambda: self._tick(stream))

    def _tick(self, stream: _Stream) -> None:
        """One slice of a stream's content, or its natural end when the content ran out."""
        count = len(self.content)
        with self._lock:
            if self._closed or stream.status != "running":
                return
            index = stream.next_slice
            stream.next_slice += 1
        if index >= count and not (self.loop and count):
            self._end(stream, code=self.natural_end_code, status="end")
            return
        self._emit(stream, index, self.content[index % count])
        self._next_tick(stream)

    def _emit(self, stream: _Stream, index: int, piece: ScriptSlice) -> None:
        start = stream.started + stream.elapsed
        stream.elapsed += piece.duration
        with self._lock:
            stream.media[index] = (piece.media_start, min(piece.duration, 60.0))
            stream.slices_sent += 1
        url = f"{self.root_url}/media/{stream.request_id}/{index}.wav"
        base = {
            "requestId": stream.request_id, **stream.tags,
            "sliceStartTime": _wall(start), "sliceEndTime": _wall(start + piece.duration),
        }
        results = slice_results(
            piece, base, tasks=stream.tasks, sends_all=rule_sends_all(stream.rules),
            alternate=self.variant == "alternate", speech_url=url,
            evidence_url=f"{url}?pre=60" if stream.return_pre_speech else url,
            moderation=piece.moderation or self._flagged(piece.text),
        )
        if results:
            self._send(stream, {"code": 0, "message": "success", **self._stamp(), **results})

    def _flagged(self, text: str) -> dict[str, Any] | None:
        for word, label in self.flag_words.items():
            if word and word in text:
                return {"label": label, "action": "block", "rate": 0.9, "keyword": word,
                        "hint": text}
        return None

    def _end(self, stream: _Stream, *, code: int, status: str) -> None:
        with self._lock:
            if stream.status != "running":
                return
            stream.status = status
            stream.end_code = code
        self.counters.add(f"streams.{status}")
        if not rule_sends_end(stream.rules):
            return
        payload: dict[str, Any] = {"code": str(code) if self.variant == "alternate" else code,
                                   "requestId": stream.request_id, "status": "end",
                                   **self._stamp()}
        if code:
            payload["message"] = "stream ended abnormally"
        self.timers.after(self.end_callback_delay, lambda: self._send(stream, payload))

    def _send(self, stream: _Stream, payload: Mapping[str, Any]) -> None:
        if self._closed:
            return
        self.counters.add("callbacks.queued")
        self.sender.send(stream.callback, self.sign(payload))


def _wall(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


SANDBOX_SPEC: Final = SandboxSpec(
    "tupu", TupuSandbox, "Tupu speech-stream moderation: signed API, signed callbacks"
)
