"""``TupuSandbox``: a loopback emulator of Tupu's speech-stream API v3.

What it does, as Tupu does (see the README for what is inferred):

* ``POST /v3/recognition/speech/stream/{secretId}`` starts streams,
  ``.../stream/close/{secretId}`` closes them, ``.../stream/search/{secretId}``
  reports their state. Every request's signature is checked against the
  client public key registered for the secretId (wrong signature: ``code``
  1; unknown secretId: 6; timestamp outside ``max_clock_skew``: 12). Every
  answer is the signed envelope ``{"json": ..., "signature": ...}``.
* For each stream, a background thread "listens" to it: every
  ``slice_interval`` seconds one slice of the simulated content is processed
  and signed callbacks are POSTed to the stream's callback URL (through
  :class:`voxhub.sandbox.CallbackSender`, which retries failed deliveries):
  a transcript slice (transcription task), a moderation entry (violations, or
  every slice when ``callbackRules`` asks for all) and a vulgar-speech entry.
  When the content runs out (or the stream is closed) the stream ends, and an
  end-of-task callback ``{code, requestId, status: "end"}`` is sent when
  ``callbackRules`` asks for it.
* Content comes from a script of slices (``script=``), from a local audio file
  (``audio=``: transcribed with ``voxhub_local.engine.transcribe`` when that
  package is installed, else cut into silent-text slices by length, WAV only),
  or from a small built-in script with one moderation and one vulgar violation.
* Evidence audio (``speechUrl``) is served by the sandbox itself under
  ``/media/{requestId}/{n}.wav``.

The sandbox makes its own "Tupu" key pair and a client key pair at start;
:meth:`TupuSandbox.settings` is a complete client profile (``secret_id``,
``private_key`` and ``public_key`` paths in a private temporary directory).
"""

from __future__ import annotations

import importlib
import io
import json
import re
import secrets
import shutil
import tempfile
import threading
import time
import wave
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from voxhub.sandbox import CallbackSender, FaultPlan, Sandbox, SandboxSpec
from werkzeug.wrappers import Request, Response

from .codes import (
    TASK_NAMES,
    TASK_SPEECH_MODERATION,
    TASK_TRANSCRIPTION,
    TASK_VULGAR_SPEECH,
    CallbackRules,
    as_int,
)
from .report import TUPU_TZ
from .signing import (
    VerificationError,
    load_public_key,
    sign_payload,
    verify_request,
    write_key_pair,
)

__all__ = ["DEFAULT_SCRIPT", "SANDBOX_SPEC", "ScriptSlice", "TupuSandbox", "slices_from_audio"]

_ROUTE: Final = re.compile(r"/v3/recognition/speech/stream(?:/(close|search))?/([^/]+)")
_MEDIA_ROUTE: Final = re.compile(r"/media/([^/]+)/(\d+)\.wav")
TUPU_PUBLIC_KEY_FILENAME: Final = "open_tuputech_com_public_key.pem"
_DEFAULT_TASKS: Final = (TASK_VULGAR_SPEECH, TASK_TRANSCRIPTION, TASK_SPEECH_MODERATION)
_VARIANTS: Final = ("documented", "alternate")


@attrs.frozen
class ScriptSlice:
    """One slice of simulated stream content.

    ``moderation`` makes the slice a text-moderation violation (keys ``label``,
    ``action``, ``rate``, ``review``, ``keyword``, ``hint``, ``subLabel``);
    ``vulgar`` a vulgar-speech one (keys ``rate``, ``review``, ``label``).
    ``media_start`` is where the slice starts in the ``audio`` file, for the
    evidence clip.
    """

    text: str = ""
    duration: float = 10.0
    moderation: Mapping[str, Any] | None = None
    vulgar: Mapping[str, Any] | None = None
    media_start: float | None = None

    @classmethod
    def from_value(cls, value: ScriptSlice | str | Mapping[str, Any]) -> ScriptSlice:
        """A slice from a string (its text) or a mapping of the fields above."""
        if isinstance(value, ScriptSlice):
            return value
        if isinstance(value, str):
            return cls(text=value)
        if not isinstance(value, Mapping):
            raise TypeError(f"a script slice is a str or a mapping, not {type(value).__name__}")
        unknown = set(value) - {"text", "duration", "moderation", "vulgar", "media_start"}
        if unknown:
            raise ValueError(f"unknown script slice fields: {', '.join(sorted(unknown))}")
        duration = float(value.get("duration", 10.0))
        if duration <= 0:
            raise ValueError("a script slice's duration must be positive")
        moderation = value.get("moderation")
        vulgar = value.get("vulgar")
        if vulgar is True:
            vulgar = {}
        return cls(
            text=str(value.get("text", "")),
            duration=duration,
            moderation=dict(moderation) if moderation else None,
            vulgar=dict(vulgar) if isinstance(vulgar, Mapping) else None,
            media_start=value.get("media_start"),
        )


#: Content used when neither a script nor an audio file is given.
DEFAULT_SCRIPT: Final = (
    ScriptSlice("大家好 欢迎来到直播间"),
    ScriptSlice(
        "加微信买便宜货",
        moderation={"label": "ADs", "action": "block", "rate": 0.97, "review": False,
                    "keyword": "加微信", "hint": "加微信买便宜货", "subLabel": "contact"},
    ),
    ScriptSlice("", vulgar={"rate": 0.91, "review": True}),
    ScriptSlice("今天就到这里 谢谢大家"),
)


def _wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate())


def slices_from_audio(path: str | Path, *, slice_seconds: float = 10.0) -> list[ScriptSlice]:
    """Stream content from a local audio file.

    With ``voxhub_local`` installed, its ``engine.transcribe(path)`` gives the
    text (one slice per segment it returns). Without it, a WAV file is cut
    into ``slice_seconds`` slices with empty text (Tupu sends empty content for
    silence too).

    Raises:
        ValueError: the file cannot be read or transcribed.
    """
    audio = Path(path)
    if not audio.is_file():
        raise ValueError(f"audio file {audio} does not exist")
    try:
        engine = importlib.import_module("voxhub_local.engine")
    except ImportError:
        engine = None
    transcribe = getattr(engine, "transcribe", None)
    if callable(transcribe):
        try:
            result = transcribe(audio)
        except Exception as exc:  # noqa: BLE001 - any engine failure is a bad input here
            raise ValueError(f"cannot transcribe {audio}: {type(exc).__name__}: {exc}") from None
        slices = _slices_from_transcript(result)
        if slices:
            return slices
    try:
        total = _wav_duration(audio)
    except (wave.Error, EOFError, OSError) as exc:
        raise ValueError(
            f"cannot read {audio} as WAV ({exc}); install voxhub-local to simulate "
            "other audio formats"
        ) from None
    count = max(1, int(-(-total // slice_seconds)))
    return [
        ScriptSlice(text="", duration=min(slice_seconds, total - i * slice_seconds) or 0.1,
                    media_start=i * slice_seconds)
        for i in range(count)
    ]


def _slices_from_transcript(result: Any) -> list[ScriptSlice]:
    segments = getattr(result, "segments", None)
    if segments is None and isinstance(result, list | tuple):
        segments = result
    slices: list[ScriptSlice] = []
    for seg in segments or ():
        text = str(getattr(seg, "text", seg if isinstance(seg, str) else "") or "").strip()
        start = getattr(seg, "start", None)
        end = getattr(seg, "end", None)
        duration = (float(end) - float(start)) if start is not None and end is not None else 10.0
        slices.append(ScriptSlice(text=text, duration=max(duration, 0.1),
                                  media_start=float(start) if start is not None else None))
    if not slices:
        whole = getattr(result, "text", result if isinstance(result, str) else None)
        if isinstance(whole, str) and whole.strip():
            slices.append(ScriptSlice(text=whole.strip(), media_start=0.0))
    return slices


@attrs.define
class _Stream:
    request_id: str
    url: str
    callback: str
    tags: dict[str, str]
    rules: CallbackRules
    return_pre_speech: bool
    tasks: tuple[str, ...]
    started: float
    stop: threading.Event = attrs.field(factory=threading.Event)
    status: str = "running"
    end_code: int = 0
    elapsed: float = 0.0
    slices_sent: int = 0
    media: dict[int, tuple[float | None, float]] = attrs.field(factory=dict)
    thread: threading.Thread | None = None


class TupuSandbox(Sandbox):
    """Emulator of Tupu's speech-stream API (see the module docstring).

    Keyword options: ``script`` (slices: strings or mappings, see
    :class:`ScriptSlice`), ``audio`` (a local file, cut into
    ``audio_slice_seconds`` slices when it cannot be transcribed), ``slice_interval``
    (seconds between slices), ``loop`` (repeat the content until closed),
    ``natural_end_code`` (the end callback's code when the content runs out),
    ``max_clock_skew`` (seconds), ``variant`` (``documented`` or ``alternate``:
    the second emits the other plausible shape of every inferred field),
    ``configured_tasks`` (what runs when a request names no tasks),
    ``flag_words`` (word -> label: transcript slices containing the word
    become moderation violations), ``callback_schedule`` (retry delays).
    """

    provider = "tupu"

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
        max_clock_skew: float = 300.0,
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
        if audio is not None:
            self.script = tuple(slices_from_audio(audio, slice_seconds=audio_slice_seconds))
        elif script is not None:
            self.script = tuple(ScriptSlice.from_value(s) for s in script)
        else:
            self.script = DEFAULT_SCRIPT
        self.audio = Path(audio) if audio is not None else None
        self.slice_interval = float(slice_interval)
        self.loop = loop
        self.natural_end_code = natural_end_code
        self.max_clock_skew = float(max_clock_skew)
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
        self.client_private_key_path, client_public = write_key_pair(self._dir / "client")
        self.tupu_public_key_path = self._dir / TUPU_PUBLIC_KEY_FILENAME
        self.tupu_public_key_path.write_bytes(self.public_key_pem)
        self.register_client(self.secret_id, client_public.read_bytes())
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
        key = public_key if isinstance(public_key, rsa.RSAPublicKey) else load_public_key(
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
        return json.dumps(sign_payload(payload, self._key), ensure_ascii=False).encode("utf-8")

    # --- lifecycle ----------------------------------------------------------------------

    def reset(self) -> None:
        """Stop and forget every stream."""
        self._stop_streams()
        with self._lock:
            self._streams.clear()
            self.submissions.clear()
        super().reset()

    def close(self) -> None:
        """Stop streams, the callback sender, and remove the key directory."""
        if self._closed:
            return
        self._closed = True
        self._stop_streams()
        self.sender.close()
        self._cleanup()

    def _stop_streams(self) -> None:
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            stream.stop.set()
        for stream in streams:
            if stream.thread is not None and stream.thread is not threading.current_thread():
                stream.thread.join(timeout=2)

    def stream(self, request_id: str) -> dict[str, Any] | None:
        """A snapshot of one stream's state (for tests), or ``None`` if unknown."""
        with self._lock:
            stream = self._streams.get(request_id)
            if stream is None:
                return None
            return {
                "requestId": stream.request_id, "status": stream.status, "code": stream.end_code,
                "callbackRules": int(stream.rules), "slices_sent": stream.slices_sent,
                "tasks": list(stream.tasks), "callback": stream.callback,
            }

    # --- HTTP ---------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        """Route one request: the three stream endpoints and evidence audio."""
        media = _MEDIA_ROUTE.fullmatch(request.path)
        if media is not None and request.method == "GET":
            return self._media(media.group(1), int(media.group(2)))
        route = _ROUTE.fullmatch(request.path)
        if route is None:
            return _unsigned({"error": "not found"}, 404)
        if request.method != "POST":
            return _unsigned({"error": "method not allowed"}, 405)
        action, secret_id = route.group(1) or "submit", route.group(2)
        try:
            body = json.loads(request.get_data(), parse_float=str)
        except ValueError:
            return self._answer(15, "request body is not valid JSON")
        if not isinstance(body, dict):
            return self._answer(15, "request body is not a JSON object")
        refused = self._authenticate(secret_id, body)
        if refused is not None:
            return refused
        if action == "submit":
            return self._submit(body)
        if action == "close":
            return self._close(body)
        return self._search(body)

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

    def _authenticate(self, secret_id: str, body: Mapping[str, Any]) -> Response | None:
        with self._lock:
            public_key = self._clients.get(secret_id)
        if public_key is None:
            return self._answer(6, "secretId error")
        timestamp, nonce, signature = (body.get(k) for k in ("timestamp", "nonce", "signature"))
        if timestamp is None:
            return self._answer(12, "time parameter error: no timestamp")
        try:
            if not isinstance(nonce, int | str) or not isinstance(signature, str):
                raise VerificationError("nonce or signature missing")
            verify_request(secret_id, timestamp, nonce, signature, public_key)
        except VerificationError:
            self.counters.add("requests.bad_signature")
            return self._answer(1, "authentication failed")
        try:
            sent = float(timestamp)
        except (TypeError, ValueError):
            return self._answer(12, "time parameter error")
        if abs(time.time() - sent) > self.max_clock_skew:
            self.counters.add("requests.stale")
            return self._answer(12, "time parameter error")
        return None

    def _submit(self, body: Mapping[str, Any]) -> Response:
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
            if not isinstance(item, Mapping):
                return self._answer(15, "speechStream items must be objects")
            url, callback = item.get("url"), item.get("callback")
            if not isinstance(url, str) or not url:
                return self._answer(3, "no stream url")
            if not isinstance(callback, str) or not callback.startswith(("http://", "https://")):
                return self._answer(11, "callback parameter missing")
            rules_value = as_int(item.get("callbackRules", 0))
            if rules_value not in (0, 1, 2, 3):
                return self._answer(15, "callbackRules must be 0..3")
            pre = item.get("returnPreSpeech", False)
            if not isinstance(pre, bool):
                return self._answer(15, "returnPreSpeech must be a boolean")
            tags = {k: str(item[k]) for k in ("roomId", "userId", "forumId") if k in item}
            streams.append(_Stream(
                request_id=secrets.token_hex(12), url=url, callback=callback, tags=tags,
                rules=CallbackRules(rules_value), return_pre_speech=pre, tasks=tasks,
                started=time.time(),
            ))
        with self._lock:
            self.submissions.append(dict(body))
            for stream in streams:
                self._streams[stream.request_id] = stream
        results = []
        for stream in streams:
            self.counters.add("streams.submitted")
            stream.thread = threading.Thread(
                target=self._run, args=(stream,), name=f"tupu-stream-{stream.request_id[:6]}",
                daemon=True,
            )
            stream.thread.start()
            results.append({"requestId": stream.request_id, "url": stream.url,
                            "callback": stream.callback, **stream.tags})
        return self._answer(0, "success", result=results)

    def _close(self, body: Mapping[str, Any]) -> Response:
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

    def _search(self, body: Mapping[str, Any]) -> Response:
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

    def _media(self, request_id: str, index: int) -> Response:
        with self._lock:
            stream = self._streams.get(request_id)
            clip = stream.media.get(index) if stream is not None else None
        if clip is None:
            return _unsigned({"error": "not found"}, 404)
        self.counters.add("media.served")
        return Response(self._clip(*clip), content_type="audio/wav")

    def _clip(self, start: float | None, duration: float) -> bytes:
        if self.audio is not None and start is not None:
            try:
                with wave.open(str(self.audio), "rb") as src:
                    rate = src.getframerate()
                    src.setpos(min(int(start * rate), src.getnframes()))
                    frames = src.readframes(int(duration * rate))
                    return _wav_bytes(frames, rate, src.getnchannels(), src.getsampwidth())
            except (wave.Error, EOFError, OSError):
                pass
        return _wav_bytes(b"\x00\x00" * 4000, 8000, 1, 2)

    # --- the simulated streams -----------------------------------------------------------

    def _run(self, stream: _Stream) -> None:
        index = 0
        count = len(self.script)
        while not stream.stop.wait(self.slice_interval):
            if index >= count and not (self.loop and count):
                self._end(stream, code=self.natural_end_code, status="end")
                return
            self._emit(stream, index, self.script[index % count])
            index += 1

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
        alternate = self.variant == "alternate"
        payload: dict[str, Any] = {"code": 0, "message": "success", **self._stamp()}
        evidence = f"{url}?pre=60" if stream.return_pre_speech else url
        if TASK_TRANSCRIPTION in stream.tasks:
            payload[TASK_TRANSCRIPTION] = {
                "texts": [{**base, "content": piece.text, "speechUrl": url}]
            }
        moderation = piece.moderation or self._flagged(piece.text)
        if TASK_SPEECH_MODERATION in stream.tasks and (moderation or stream.rules.sends_all):
            entry = {**base, "content": piece.text, "speechUrl": evidence if moderation else url,
                     **_moderation_entry(moderation, alternate)}
            payload[TASK_SPEECH_MODERATION] = {"violations" if alternate else "texts": [entry]}
        vulgar = piece.vulgar
        if TASK_VULGAR_SPEECH in stream.tasks and (vulgar is not None or stream.rules.sends_all):
            label = vulgar.get("label", 1) if vulgar is not None else 0
            rate = (vulgar or {}).get("rate", 0.9 if vulgar is not None else 0.02)
            review = (vulgar or {}).get("review", False)
            entry = {**base, "speechUrl": evidence if vulgar is not None else url,
                     "label": str(label) if alternate else label,
                     "rate": str(rate) if alternate else rate,
                     "review": ("true" if review else "false") if alternate else review}
            payload[TASK_VULGAR_SPEECH] = {"speechs" if alternate else "texts": [entry]}
        if any(task in payload for task in TASK_NAMES):
            self._send(stream, payload)

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
        stream.stop.set()
        self.counters.add(f"streams.{status}")
        if not stream.rules.sends_end:
            return
        payload: dict[str, Any] = {"code": str(code) if self.variant == "alternate" else code,
                                   "requestId": stream.request_id, "status": "end",
                                   **self._stamp()}
        if code:
            payload["message"] = "stream ended abnormally"
        timer = threading.Timer(self.end_callback_delay, self._send, args=(stream, payload))
        timer.daemon = True
        timer.start()

    def _send(self, stream: _Stream, payload: Mapping[str, Any]) -> None:
        if self._closed:
            return
        self.counters.add("callbacks.queued")
        self.sender.send(stream.callback, self.sign(payload))


def _moderation_entry(moderation: Mapping[str, Any] | None, alternate: bool) -> dict[str, Any]:
    if not moderation:
        return {"action": "pass", "label": "Normal", "review": False,
                "rate": "0.99" if alternate else 0.99, "details": []}
    keyword_key = "key" if alternate else "keyword"
    detail = {keyword_key: moderation.get("keyword", ""), "hint": moderation.get("hint", ""),
              "mainLabel": moderation.get("label", "UserDefine"),
              "subLabel": moderation.get("subLabel", "")}
    rate = moderation.get("rate", 0.9)
    return {
        "action": moderation.get("action", "block"),
        "label": moderation.get("label", "UserDefine"),
        "review": bool(moderation.get("review", False)),
        "rate": str(rate) if alternate else rate,
        "details": [detail],
    }


def _wall(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, TUPU_TZ).strftime("%Y-%m-%d %H:%M:%S")


def _wav_bytes(frames: bytes, rate: int, channels: int, width: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return out.getvalue()


def _unsigned(data: Mapping[str, Any], status: int) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


SANDBOX_SPEC: Final = SandboxSpec(
    "tupu", TupuSandbox, "Tupu speech-stream moderation: signed API, signed callbacks"
)
