"""The ``tupu`` provider: Tupu (图普科技) live speech-stream moderation v3.

Lifecycle:

* ``submit`` / ``submit_batch``: one request carries one or many
  ``speechStream[]`` items; each item becomes its own voxhub job, keyed by the
  ``requestId`` Tupu returns (``handle.vendor_ids["requestId"]``);
* results arrive **only by callback** (``Capability.CALLBACK_ONLY``):
  :meth:`TupuProvider.parse_callback` verifies each one with Tupu's public key
  and returns its payload as the event data; :func:`voxhub_tupu.report.build_report`
  turns a job's stored payloads into a ModerationReport;
* ``status`` asks the stream search endpoint (its answer's shape is not
  documented, so it is read tolerantly; see the README);
* ``close`` calls the close endpoint for the job's ``requestId``.

Every request is signed (:mod:`voxhub_tupu.signing`) and every answer is
verified before it is read; there is no setting that skips verification.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

import attrs
from cryptography.hazmat.primitives.asymmetric import rsa
from voxhub.errors import (
    CallbackRejected,
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    PluginError,
    ProviderError,
    error_for_status,
)
from voxhub.models import (
    JobHandle,
    JobKind,
    JobRequest,
    JobState,
    JobStatus,
    ModerationReport,
    RemoteUrl,
    StreamUrl,
)
from voxhub.provider import (
    CallbackEvent,
    CallbackRequest,
    Capability,
    CredentialField,
    OptionSpec,
    PollingHints,
    Provider,
    ProviderContext,
    ProviderInfo,
    ProviderSettings,
    Submitted,
)
from voxhub.redact import redact_text
from voxhub.transport import Response

from .codes import (
    CALLBACK_RULE_NAMES,
    TASK_ALIASES,
    TASK_NAMES,
    CallbackRules,
    as_int,
    describe_code,
    error_for_code,
)
from .report import build_report, end_code, is_end_of_task, request_ids
from .signing import (
    KeyConfigurationError,
    VerificationError,
    load_private_key,
    load_public_key,
    make_auth_fields,
    verify_response,
)

__all__ = [
    "CLOSE_PATH",
    "DEFAULT_CALLBACK_RULES",
    "SEARCH_PATH",
    "SUBMIT_PATH",
    "TupuAuth",
    "TupuProvider",
]

NAME: Final = "tupu"
DEFAULT_BASE_URL: Final = "http://api.speech.tuputech.com"
SUBMIT_PATH: Final = "/v3/recognition/speech/stream"
CLOSE_PATH: Final = "/v3/recognition/speech/stream/close"
SEARCH_PATH: Final = "/v3/recognition/speech/stream/search"

#: voxhub's default rule: violations plus the end-of-task callback, so a job
#: learns that its stream ended (Tupu's own default, 0, never says so).
DEFAULT_CALLBACK_RULES: Final = "violations+end"

#: Body voxhub answers Tupu's callbacks with (Tupu documents none; any 2xx is
#: taken as delivered, as for its file-API callbacks).
CALLBACK_RESPONSE: Final = b'{"code":0,"message":"success"}'

_MAX_TAG = 256
# The ProviderContext default for callback_events: "no store behind this context".
_UNWIRED_CALLBACK_EVENTS: Final = attrs.fields(ProviderContext).callback_events.default
_STREAM_SCHEMES: Final = ("rtmp", "rtmps", "rtsp", "http", "https")

# Search answers are undocumented: these vendor words are mapped, others mean running.
_ENDED_WORDS: Final = frozenset({"end", "ended", "closed", "close", "finished", "finish",
                                 "stopped", "stop", "complete", "completed", "done"})
_QUEUED_WORDS: Final = frozenset({"pending", "waiting", "queued", "queue", "init", "created"})
_FAILED_WORDS: Final = frozenset({"failed", "fail", "error", "abnormal"})


@attrs.frozen
class TupuAuth:
    """What ``authenticate`` returns: the loaded keys. Its repr shows no key material."""

    secret_id: str = attrs.field(repr=False)
    private_key: rsa.RSAPrivateKey = attrs.field(repr=False)
    public_key: rsa.RSAPublicKey = attrs.field(repr=False)
    private_key_path: str = ""
    public_key_path: str = ""


def _options() -> tuple[OptionSpec, ...]:
    aliases = ", ".join(sorted(TASK_ALIASES))
    return (
        OptionSpec(
            "tasks", list, item_type=str, max_items=len(TASK_NAMES), max_length=64,
            help=f"task ids or names ({aliases}); default: the tasks configured on the secretId",
        ),
        OptionSpec(
            "callback_rules", str, choices=tuple(CALLBACK_RULE_NAMES),
            default=DEFAULT_CALLBACK_RULES,
            help="which callbacks Tupu sends: violations (0), all results (1), "
                 "violations+end (2: also the end-of-task status), all+end (3)",
        ),
        OptionSpec("room_id", str, max_length=_MAX_TAG, help="roomId tag, echoed in callbacks"),
        OptionSpec("user_id", str, max_length=_MAX_TAG, help="userId tag, echoed in callbacks"),
        OptionSpec("forum_id", str, max_length=_MAX_TAG, help="forumId tag, echoed in callbacks"),
        OptionSpec(
            "return_pre_speech", bool, default=False,
            help="evidence audio covers up to one minute ending with the violation",
        ),
    )


INFO: Final = ProviderInfo(
    name=NAME,
    kinds=frozenset({JobKind.STREAM_MODERATION}),
    description="Tupu (图普科技) live speech-stream moderation and transcription (v3)",
    capabilities=frozenset({
        Capability.URL,
        Capability.CALLBACKS,
        Capability.CALLBACK_ONLY,
        Capability.BATCH_SUBMIT,
        Capability.CANCEL,
    }),
    options=_options(),
    credentials=(
        CredentialField("secret_id", "the secretId Tupu opened for you", secret=True),
        CredentialField(
            "private_key",
            "path to your RSA private key PEM (PKCS#1 or PKCS#8); `voxhub tupu keygen DIR` "
            "makes one",
            secret=False,
        ),
        CredentialField(
            "private_key_passphrase", "passphrase of an encrypted private key",
            secret=True, required=False,
        ),
        CredentialField(
            "public_key",
            "path to Tupu's public key PEM (open_tuputech_com_public_key.pem from Tupu's SDKs); "
            "answers and callbacks are verified with it",
            secret=False,
        ),
    ),
    default_base_url=DEFAULT_BASE_URL,
    polling=PollingHints(first_poll=5.0, typical_duration=3600.0, max_interval=60.0),
    docs_url="http://cloud.doc.tuputech.com/zh/API/speech/stream/readme.html",
)


def _setting_path(settings: ProviderSettings, name: str) -> str:
    value = settings.require(name)
    return str(Path(value).expanduser())


class TupuProvider(Provider):
    """Tupu speech-stream moderation. See the module docstring and the README."""

    info = INFO

    def __init__(self) -> None:
        self._public_keys: dict[tuple[str, int], rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    # --- credentials --------------------------------------------------------------

    def authenticate(self, ctx: ProviderContext) -> TupuAuth:
        """Load the private key and Tupu's public key; a missing one is a ConfigurationError."""
        settings = ctx.settings
        secret_id = settings.require("secret_id")
        private_path = _setting_path(settings, "private_key")
        public_path = _setting_path(settings, "public_key")
        try:
            private_key = load_private_key(
                private_path, settings.secret("private_key_passphrase") or None
            )
        except KeyConfigurationError as exc:
            raise ConfigurationError(
                f"private_key of profile {settings.profile!r}: {exc}",
                provider=ctx.provider, operation="authenticate",
            ) from None
        public_key = self._load_public(ctx, public_path)
        ctx.log.debug("tupu.keys_loaded", private_key=private_path, public_key=public_path,
                      key_bits=private_key.key_size)
        return TupuAuth(secret_id, private_key, public_key, private_path, public_path)

    def _load_public(self, ctx: ProviderContext, path: str) -> rsa.RSAPublicKey:
        try:
            mtime = Path(path).stat().st_mtime_ns
        except OSError:
            mtime = -1
        with self._lock:
            cached = self._public_keys.get((path, mtime))
        if cached is not None:
            return cached
        try:
            key = load_public_key(path)
        except KeyConfigurationError as exc:
            raise ConfigurationError(
                f"public_key of profile {ctx.settings.profile!r} (Tupu's public key): {exc}",
                provider=ctx.provider, operation="authenticate",
            ) from None
        with self._lock:
            self._public_keys[(path, mtime)] = key
        return key

    def _auth(self, ctx: ProviderContext) -> TupuAuth:
        return ctx.auth if isinstance(ctx.auth, TupuAuth) else self.authenticate(ctx)

    # --- validation ---------------------------------------------------------------

    def validate(self, ctx: ProviderContext, request: JobRequest) -> JobRequest:
        """Check the stream URL and options; task names become task ids."""
        _stream_url(request, ctx.provider)
        options = dict(request.options)
        if "tasks" in options:
            options["tasks"] = _task_ids(options["tasks"], ctx.provider)
        if "callback_rules" in options:
            _rules(options, ctx.provider)
        if request.kind not in (None, JobKind.STREAM_MODERATION):
            raise InvalidInputError(
                f"tupu runs stream-moderation jobs, not {request.kind}",
                field="kind", provider=ctx.provider, operation="validate",
            )
        return attrs.evolve(request, options=options)

    # --- submit -------------------------------------------------------------------

    def submit(
        self, ctx: ProviderContext, request: JobRequest, handle: JobHandle
    ) -> JobHandle | Submitted:
        """Start moderating one stream; the handle gets Tupu's ``requestId``."""
        return self.submit_batch(ctx, [(request, handle)])[0]

    def submit_batch(
        self, ctx: ProviderContext, items: Sequence[tuple[JobRequest, JobHandle]]
    ) -> list[JobHandle | Submitted]:
        """Start several streams in one request (one ``speechStream[]`` item per job)."""
        if not items:
            return []
        auth = self._auth(ctx)
        streams = [self._stream_item(ctx, request, handle) for request, handle in items]
        task_lists = {tuple(_task_ids(r.options.get("tasks") or [], ctx.provider))
                      for r, _ in items}
        if len(task_lists) > 1:
            raise InvalidInputError(
                "streams submitted in one batch must ask for the same tasks "
                "(Tupu takes one tasks list per request)",
                field="tasks", provider=ctx.provider, operation="submit",
            )
        tasks = list(task_lists.pop())
        body: dict[str, Any] = {"speechStream": streams}
        if tasks:
            body["tasks"] = tasks
        payload = self._call(ctx, auth, "submit", SUBMIT_PATH, body, idempotent=False)
        results = payload.get("result")
        if not isinstance(results, list) or len(results) != len(items):
            count = len(results) if isinstance(results, list) else "no"
            raise ProviderError(
                f"Tupu accepted the submit but returned {count} result(s) for "
                f"{len(items)} stream(s); the streams may be running (close them in the console)",
                provider=ctx.provider, operation="submit", in_doubt=True,
            )
        handles: list[JobHandle | Submitted] = []
        for (_request, handle), stream, result in zip(items, streams, results, strict=True):
            rid = result.get("requestId") if isinstance(result, Mapping) else None
            if not isinstance(rid, str | int) or isinstance(rid, bool) or not str(rid):
                raise ProviderError(
                    "Tupu's submit answer has a result without requestId; the streams may be "
                    "running (close them in the console)",
                    provider=ctx.provider, operation="submit", in_doubt=True,
                )
            state = {"callback_rules": stream["callbackRules"]}
            if tasks:
                state["tasks"] = tasks
            handles.append(handle.with_vendor(ids={"requestId": str(rid)}, state=state))
            # The stream URL is not logged: RTMP paths often carry a stream key.
            ctx.log.info("tupu.stream_submitted", job_id=handle.job_id, request_id=str(rid),
                         callback_rules=stream["callbackRules"])
        return handles

    def _stream_item(
        self, ctx: ProviderContext, request: JobRequest, handle: JobHandle
    ) -> dict[str, Any]:
        url = _stream_url(request, ctx.provider)
        callback = request.callback_url or ctx.callback_url_for(handle.job_id)
        if not callback:
            raise InvalidInputError(
                "Tupu delivers stream results only by callback, and no callback URL is known "
                f"for job {handle.job_id}: run the voxhub callback receiver and set "
                "`[voxhub] callback_url` (VOXHUB_CALLBACK_URL) to its public URL, "
                "or pass a callback_url with the request",
                field="callback_url", provider=ctx.provider, operation="submit",
            )
        if urlsplit(callback).scheme not in ("http", "https"):
            raise InvalidInputError(
                "the callback URL must be http or https", field="callback_url",
                provider=ctx.provider, operation="submit",
            )
        options = request.options
        item: dict[str, Any] = {
            "url": url,
            "callback": callback,
            "callbackRules": int(_rules(options, ctx.provider)),
            "returnPreSpeech": bool(options.get("return_pre_speech", False)),
        }
        for option, field in (("room_id", "roomId"), ("user_id", "userId"),
                              ("forum_id", "forumId")):
            value = options.get(option)
            if value not in (None, ""):
                item[field] = str(value)
        return item

    # --- status, fetch, close -----------------------------------------------------

    def status(self, ctx: ProviderContext, handle: JobHandle) -> JobStatus:
        """Ask the search endpoint; undocumented answers read tolerantly (default RUNNING).

        The orchestrator keeps the stored status up to date from callbacks; this
        call is what ``voxhub status --refresh`` and recovery use.
        """
        rid = _request_id(handle, ctx.provider, "status")
        auth = self._auth(ctx)
        try:
            payload = self._call(ctx, auth, "status", SEARCH_PATH, {"requestId": rid},
                                 idempotent=True)
        except _Unsigned404:
            return JobStatus(JobState.RUNNING, detail="Tupu's search endpoint is unavailable; "
                             "the state follows callbacks")
        return _status_from_search(payload, rid)

    def fetch(self, ctx: ProviderContext, handle: JobHandle) -> ModerationReport:
        """Build the report from the job's stored callback payloads (``ctx.callback_events``).

        Tupu cannot be asked for results: they exist only in the callbacks the
        orchestrator stored. A context without access to them (the unwired
        default) is a PluginError rather than a silently empty report.
        """
        if ctx.callback_events is _UNWIRED_CALLBACK_EVENTS:
            raise PluginError(
                "Tupu results arrive only by callback: fetch needs the job's stored callback "
                "payloads (ProviderContext.callback_events, wired by the voxhub orchestrator); "
                "outside it, call voxhub_tupu.build_report(job_id, payloads)",
                provider=ctx.provider, operation="fetch",
            )
        payloads = ctx.callback_events(handle.job_id)
        return build_report(handle.job_id, payloads,
                            request_id=handle.vendor_ids.get("requestId"))

    def close(self, ctx: ProviderContext, handle: JobHandle) -> None:
        """Close the job's stream; closing an already closed or unknown stream is not an error."""
        rid = handle.vendor_ids.get("requestId")
        if not rid:
            return  # never reached Tupu
        auth = self._auth(ctx)
        body = {"speechStream": [{"requestId": rid}]}
        try:
            payload = self._call(ctx, auth, "close", CLOSE_PATH, body, idempotent=True)
        except NotFoundError:
            ctx.log.info("tupu.stream_already_gone", job_id=handle.job_id, request_id=rid)
            return
        statuses = [r.get("status") for r in payload.get("result") or ()
                    if isinstance(r, Mapping) and str(r.get("requestId", rid)) == rid]
        ctx.log.info("tupu.stream_closed", job_id=handle.job_id, request_id=rid,
                     vendor_status=statuses[0] if statuses else None)

    # --- callbacks ----------------------------------------------------------------

    def parse_callback(self, ctx: ProviderContext, request: CallbackRequest) -> CallbackEvent:
        """Verify a callback with Tupu's public key, then read its stream id and state.

        Anything that does not verify (unsigned, forged, tampered, malformed) is
        refused with ``CallbackRejected(http_status=401)`` before it is read.
        """
        if isinstance(ctx.auth, TupuAuth):
            public_key = ctx.auth.public_key
        else:
            public_key = self._load_public(ctx, _setting_path(ctx.settings, "public_key"))
        try:
            payload = verify_response(request.body, public_key)
        except VerificationError as exc:
            ctx.log.warning("tupu.callback_refused", reason=str(exc), bytes=len(request.body))
            raise CallbackRejected(
                f"callback refused: {exc}", http_status=401,
                provider=ctx.provider, operation="callback",
            ) from None
        ids = request_ids(payload)
        if not ids:
            raise CallbackRejected(
                "verified callback names no requestId", http_status=400,
                provider=ctx.provider, operation="callback",
            )
        if len(ids) > 1:
            ctx.log.warning("tupu.callback_many_streams", request_ids=ids)
        status = _callback_status(payload)
        ctx.log.debug("tupu.callback", request_id=ids[0], state=status.state.value,
                      tasks=[TASK_NAMES.get(k, k) for k, v in payload.items()
                             if isinstance(v, Mapping)])
        return CallbackEvent(
            vendor_id=ids[0],
            status=status,
            data=payload,
            response_status=200,
            response_body=CALLBACK_RESPONSE,
            response_content_type="application/json",
        )

    # --- the one place requests are made -----------------------------------------

    def _call(
        self,
        ctx: ProviderContext,
        auth: TupuAuth,
        operation: str,
        path: str,
        body: Mapping[str, Any],
        *,
        idempotent: bool,
    ) -> dict[str, Any]:
        base = ctx.base_url or DEFAULT_BASE_URL
        url = f"{base}{path}/{quote(auth.secret_id, safe='')}"
        fields = make_auth_fields(auth.secret_id, auth.private_key, now=ctx.clock.time())
        resp = ctx.http.request("POST", url, operation=operation, json={**body, **fields},
                                idempotent=idempotent)
        payload = _verified(ctx, auth, resp, operation)
        code = payload.get("code", 0)
        if as_int(code) != 0:
            raise error_for_code(code, payload.get("message"), operation=operation,
                                 provider=ctx.provider, http_status=resp.status)
        return payload


class _Unsigned404(ProviderError):
    """The endpoint does not exist (an unsigned 404): used to soften ``status``."""


def _verified(
    ctx: ProviderContext, auth: TupuAuth, resp: Response, operation: str
) -> dict[str, Any]:
    try:
        return verify_response(resp.data, auth.public_key)
    except VerificationError as exc:
        reason = str(exc)
    snippet = redact_text(resp.text[:200])
    if resp.status == 404 and operation == "status":
        raise _Unsigned404("search endpoint not found", provider=ctx.provider,
                           operation=operation, status=404)
    if not resp.ok or "unsigned error" in reason:
        raise error_for_status(
            resp.status, f"Tupu answered HTTP {resp.status} without a signed body: {snippet}",
            provider=ctx.provider, operation=operation,
        )
    maybe = " The streams may have been created." if operation == "submit" else ""
    raise ProviderError(
        f"Tupu's answer failed signature verification ({reason}); check that public_key is "
        f"Tupu's public key (not yours) and base_url is Tupu's.{maybe}",
        provider=ctx.provider, operation=operation, status=resp.status,
        code="unverified", in_doubt=operation == "submit",
    )


def _stream_url(request: JobRequest, provider: str) -> str:
    media = request.media
    if isinstance(media, RemoteUrl) and media.auth_headers:
        raise InvalidInputError(
            "Tupu pulls streams itself and cannot send auth headers; put credentials in the "
            "stream URL if the origin supports it", field="media", provider=provider,
            operation="validate",
        )
    if not isinstance(media, StreamUrl | RemoteUrl):
        raise InvalidInputError(
            "Tupu moderates live streams: give a stream URL (rtmp://, rtsp://, HLS or "
            "HTTP-FLV), not a local file or channel", field="media", provider=provider,
            operation="validate",
        )
    scheme = urlsplit(media.url).scheme.lower()
    if scheme not in _STREAM_SCHEMES:
        raise InvalidInputError(
            f"unsupported stream URL scheme {scheme or '(none)'!r} "
            f"(Tupu pulls {', '.join(_STREAM_SCHEMES)})",
            field="media", provider=provider, operation="validate",
        )
    return media.url


def _task_ids(values: Any, provider: str) -> list[str]:
    if not isinstance(values, list):
        raise InvalidInputError("tasks must be a list", field="tasks", provider=provider,
                                operation="validate")
    ids: list[str] = []
    for value in values:
        text = str(value).strip()
        task = TASK_ALIASES.get(text.lower(), text)
        if task not in TASK_NAMES and not _looks_like_task_id(task):
            known = ", ".join(sorted(TASK_ALIASES))
            raise InvalidInputError(
                f"unknown task {text!r}: give a 24-hex task id or one of {known}",
                field="tasks", provider=provider, operation="validate",
            )
        if task not in ids:
            ids.append(task)
    return ids


def _looks_like_task_id(text: str) -> bool:
    return len(text) == 24 and all(c in "0123456789abcdef" for c in text.lower())


def _rules(options: Mapping[str, Any], provider: str) -> CallbackRules:
    try:
        return CallbackRules.from_option(options.get("callback_rules", DEFAULT_CALLBACK_RULES))
    except ValueError as exc:
        raise InvalidInputError(str(exc), field="callback_rules", provider=provider,
                                operation="validate") from None


def _request_id(handle: JobHandle, provider: str, operation: str) -> str:
    rid = handle.vendor_ids.get("requestId")
    if not rid:
        raise NotFoundError(f"job {handle.job_id} has no Tupu requestId (never submitted)",
                            provider=provider, operation=operation)
    return rid


def _callback_status(payload: Mapping[str, Any]) -> JobStatus:
    """RUNNING for result callbacks; SUCCEEDED/FAILED for the end-of-task callback."""
    if not is_end_of_task(payload):
        return JobStatus(JobState.RUNNING, vendor_state="running")
    code = end_code(payload)
    vendor_state = str(payload.get("status"))
    if code == 0:
        return JobStatus(JobState.SUCCEEDED, vendor_state=vendor_state, raw=dict(payload))
    message = payload.get("message")
    detail = describe_code(code)
    if message not in (None, ""):
        detail = f"{detail} ({redact_text(str(message))[:300]})"
    return JobStatus(JobState.FAILED, vendor_state=vendor_state, reason=f"code {code}",
                     detail=detail, raw=dict(payload))


def _status_from_search(payload: Mapping[str, Any], rid: str) -> JobStatus:
    """Read a search answer: ``result`` as a list or an object, or the payload itself."""
    result = payload.get("result")
    record: Mapping[str, Any] = payload
    if isinstance(result, list):
        matches = [r for r in result if isinstance(r, Mapping)]
        record = next((r for r in matches if str(r.get("requestId")) == rid),
                      matches[0] if matches else payload)
    elif isinstance(result, Mapping):
        record = result
    word = record.get("status", record.get("state"))
    if word in (None, ""):
        return JobStatus(JobState.RUNNING, detail="search answer states no status",
                         raw=dict(payload))
    text = str(word).strip().lower()
    code = as_int(record.get("code", 0))
    if text in _ENDED_WORDS:
        if code not in (None, 0):
            return JobStatus(JobState.FAILED, vendor_state=str(word), reason=f"code {code}",
                             detail=describe_code(code), raw=dict(payload))
        return JobStatus(JobState.SUCCEEDED, vendor_state=str(word), raw=dict(payload))
    if text in _FAILED_WORDS:
        return JobStatus(JobState.FAILED, vendor_state=str(word),
                         reason=f"code {code}" if code else None, raw=dict(payload))
    if text in _QUEUED_WORDS:
        return JobStatus(JobState.QUEUED, vendor_state=str(word), raw=dict(payload))
    return JobStatus(JobState.RUNNING, vendor_state=str(word), raw=dict(payload))

