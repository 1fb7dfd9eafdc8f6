"""The NHN Cloud Speech-to-Text provider (API v2.0 and v2.1).

* Local files go to the **synchronous** API (``POST .../stt``, multipart
  ``audio`` streamed from disk); the job completes at once and ``submit``
  returns :class:`~voxhub.provider.Submitted` with the transcript.
* URLs go to the **asynchronous** API (``POST .../stt/async`` with
  ``audioUrl``); ``status`` polls ``GET .../status``; a FAILED task can be
  run again with :meth:`NhnProvider.retry` (``GET .../retry``).

Every answer's envelope (``header.isSuccessful``/``resultCode``) is checked
whatever the HTTP status, and result codes become voxhub errors through
:mod:`voxhub_nhn.codes`.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import attrs
import cattrs
from voxhub.errors import (
    ConfigurationError,
    InvalidInputError,
    JobFailedError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    UnsupportedOptionError,
    VoxhubError,
    error_for_status,
)
from voxhub.models import (
    JobHandle,
    JobKind,
    JobRequest,
    JobState,
    JobStatus,
    LocalFile,
    RemoteUrl,
    Result,
    Segment,
    Transcript,
)
from voxhub.provider import (
    Capability,
    CredentialField,
    PollingHints,
    Provider,
    ProviderContext,
    ProviderInfo,
    Submitted,
)
from voxhub.redact import Secret, mask_url, redact, redact_text
from voxhub.transport import MultipartBody, Part, Response, RetryPolicy, parse_retry_after

from . import codes
from .audio import describe_formats, probe
from .options import (
    CURRENT_LIMITS,
    KOREAN,
    LEGACY_SYNC_LIMITS,
    OPTIONS,
    Limits,
    check_language,
    parse_biasing_list,
)
from .schema import (
    AsyncSubmitAnswer,
    Header,
    RetryAnswer,
    StatusAnswer,
    SttResult,
    SyncAnswer,
    structure,
)

__all__ = [
    "API_VERSIONS",
    "DEFAULT_BASE_URL",
    "LEGACY_HOST",
    "NEW_HOST",
    "NhnAuth",
    "NhnProvider",
    "resolve_auth",
    "to_transcript",
]

NAME = "nhn"
NEW_HOST = "api-speech.nhncloudservice.com"  # since the 2026-07 domain change
LEGACY_HOST = "speech.api.nhncloudservice.com"  # before it; still selectable
DEFAULT_BASE_URL = f"https://{NEW_HOST}"
#: v2.0 authenticates with ``Authorization: {secretKey}``, v2.1 with a User Access Key token.
API_VERSIONS = ("v2.0", "v2.1")
CURRENT_VERSION = "v2.1"

MODE_SYNC = "sync"
MODE_ASYNC = "async"

_STATES: Mapping[str, JobState] = {
    "PENDING": JobState.QUEUED,
    "IN_PROGRESS": JobState.RUNNING,
    "COMPLETED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
}

T = TypeVar("T")


# --- configuration ----------------------------------------------------------------


def _config_error(field: str, message: str) -> ConfigurationError:
    return ConfigurationError(message, provider=NAME, operation="authenticate",
                              details={"field": field})


def _norm_version(value: str, field: str) -> str:
    text = value.strip().lower()
    text = text if text.startswith("v") else f"v{text}"
    if text not in API_VERSIONS:
        raise _config_error(
            field, f"setting {field!r}: NHN API version {value!r} is not supported "
                   f"(choose {' or '.join(API_VERSIONS)}; v1.x returns a different result shape)",
        )
    return text


@attrs.frozen
class NhnAuth:
    """What requests need: where to send them and how to authenticate (secrets masked).

    ``root`` is scheme + host (+ any path prefix), without the version.
    """

    root: str
    version: str
    app_key: Secret = attrs.field(repr=False)
    credential: Secret = attrs.field(repr=False)
    legacy_host: bool = False

    @property
    def sync_limits(self) -> Limits:
        """The sync API's limits: the old host sits behind the 10 MB API Gateway."""
        return LEGACY_SYNC_LIMITS if self.legacy_host else CURRENT_LIMITS

    def url(self, *path: str) -> str:
        """``{root}/{version}/appkeys/{appKey}/`` + ``path`` (each piece URL-quoted)."""
        tail = "/".join(quote(p, safe="") for p in path)
        return f"{self.root}/{self.version}/appkeys/{quote(self.app_key.reveal(), safe='')}/{tail}"

    def headers(self) -> dict[str, str]:
        """The auth header of this version (revealed here only, where it is sent)."""
        if self.version == "v2.0":
            return {"Authorization": self.credential.reveal()}
        return {"X-NHN-Authorization": f"Bearer {self.credential.reveal()}"}


def _split_base(base_url: str) -> tuple[str, str | None]:
    """A base URL without a trailing version segment, and that version if there was one."""
    base = base_url.rstrip("/")
    head, _, last = base.rpartition("/")
    if "://" in head and last.lower().lstrip("v").replace(".", "").isdigit():
        return head, _norm_version(last, "base_url")
    return base, None


def _secret(settings: Any, name: str) -> Secret | None:
    value = settings.get(name)
    if value is None or value == "":
        return None
    secret = value if isinstance(value, Secret) else Secret(str(value))
    return secret if secret.reveal().strip() else None


def resolve_auth(ctx: ProviderContext) -> NhnAuth:
    """Check the profile's settings locally and decide host, version and credential.

    Raises :class:`~voxhub.errors.ConfigurationError` naming the field
    (``details["field"]``) for anything missing, malformed or ambiguous.
    """
    settings = ctx.settings
    env = f"VOXHUB_{ctx.profile.upper().replace('-', '_')}_"

    # Host: an explicit non-default base_url wins; ``host`` picks the API host otherwise.
    host = settings.get("host")
    base_setting = (settings.base_url or "").strip()
    root, base_version = _split_base(base_setting) if base_setting else (DEFAULT_BASE_URL, None)
    if host:
        host_text = str(host).strip().rstrip("/")
        host_root = host_text if "://" in host_text else f"https://{host_text}"
        if base_setting and root.rstrip("/") not in (DEFAULT_BASE_URL, host_root):
            raise _config_error(
                "host", f"settings 'host' ({host_text}) and 'base_url' ({mask_url(root)}) "
                        "disagree; set only one",
            )
        root = host_root
    parts = urlsplit(root)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _config_error("base_url", f"base URL {mask_url(root)!r} is not an http(s) URL")

    version_setting = settings.get("api_version")
    version = _norm_version(str(version_setting), "api_version") if version_setting else None
    if version and base_version and version != base_version:
        raise _config_error(
            "api_version", f"setting 'api_version' ({version}) disagrees with the version in "
                           f"base_url ({base_version})",
        )
    version = version or base_version

    app_key = _secret(settings, "app_key")
    if app_key is None:
        raise _config_error("app_key", f"missing setting 'app_key' for profile {ctx.profile!r} "
                                       f"(set {env}APP_KEY or add it to the config file)")
    secret_key = _secret(settings, "secret_key")
    token = _secret(settings, "uak_token")
    if version is None:
        if secret_key is not None and token is not None:
            raise _config_error(
                "api_version", "both 'secret_key' (API v2.0) and 'uak_token' (API v2.1) are set: "
                               "set 'api_version' to v2.0 or v2.1 to choose",
            )
        if secret_key is None and token is None:
            raise _config_error(
                "uak_token", f"missing credentials for profile {ctx.profile!r}: set 'uak_token' "
                             f"(User Access Key token, API v2.1; {env}UAK_TOKEN) or 'secret_key' "
                             f"(API v2.0; {env}SECRET_KEY)",
            )
        version = "v2.0" if secret_key is not None else CURRENT_VERSION
    if version == "v2.0":
        if secret_key is None:
            raise _config_error("secret_key", "API v2.0 needs setting 'secret_key' "
                                              f"({env}SECRET_KEY)")
        credential = secret_key
    else:
        if token is None:
            raise _config_error("uak_token", "API v2.1 needs setting 'uak_token', a User Access "
                                             f"Key token ({env}UAK_TOKEN)")
        credential = token
    return NhnAuth(
        root=root.rstrip("/"),
        version=version,
        app_key=app_key,
        credential=credential,
        legacy_host=parts.hostname == LEGACY_HOST,
    )


# --- results ----------------------------------------------------------------------


def _seconds(value: Any) -> float | None:
    try:
        return float(value) / 1000.0
    except (TypeError, ValueError):
        return None


def to_transcript(result: SttResult, job_id: str, raw: Any = None) -> Transcript:
    """An NHN result as a voxhub transcript: one segment per ``text[i]``, times in seconds."""
    segments: list[Segment] = []
    for i, text in enumerate(result.text):
        slot = result.timeslot[i] if i < len(result.timeslot) else None
        confidence = result.confidence[i] if i < len(result.confidence) else None
        segments.append(Segment(
            start=_seconds(slot.start_time) if slot else None,
            end=_seconds(slot.end_time) if slot else None,
            text=text.strip(),
            confidence=confidence,
        ))
    return Transcript(
        provider=NAME,
        job_id=job_id,
        text=" ".join(s.text for s in segments if s.text),
        language=KOREAN,
        duration=result.input_length,
        segments=tuple(segments),
        raw=raw,
    )


# --- the provider -----------------------------------------------------------------


class NhnProvider(Provider):
    """NHN Cloud Speech-to-Text v2: sync uploads, async URLs, retry of failed tasks."""

    info = ProviderInfo(
        name=NAME,
        kinds=frozenset({JobKind.TRANSCRIPTION}),
        description="NHN Cloud Speech-to-Text v2.0/v2.1 (Korean): sync file upload, async URL",
        capabilities=frozenset({Capability.UPLOAD, Capability.URL, Capability.RETRY}),
        options=OPTIONS,
        credentials=(
            CredentialField("app_key", "Appkey from the console's URL & Appkey menu"),
            CredentialField("secret_key", "Secret key (API v2.0: 'Authorization' header)",
                            required=False),
            CredentialField("uak_token", "User Access Key token (API v2.1: "
                            "'X-NHN-Authorization: Bearer ...')", required=False),
            CredentialField("host", f"API host: {NEW_HOST} (default) or {LEGACY_HOST}",
                            secret=False, required=False),
            CredentialField("api_version", "v2.1 (token) or v2.0 (secret key); chosen from "
                            "the credentials when unset", secret=False, required=False),
        ),
        default_base_url=DEFAULT_BASE_URL,
        # Gateway 5xx and 429 are retried by the transport; submits (POST) and retry (GET
        # that starts work) are sent with idempotent=False, so never retried ambiguously.
        retry=RetryPolicy(),
        polling=PollingHints(first_poll=2.0, typical_duration=60.0, max_interval=15.0),
        export_formats=frozenset(),
        docs_url="https://docs.nhncloud.com/en/AI%20Service/Speech%20to%20Text/en/api-guide-v2.0/",
    )

    #: How many synchronous results are kept in memory for direct ``fetch`` calls.
    SYNC_CACHE_SIZE = 64

    def __init__(self) -> None:
        self._sync_results: OrderedDict[str, Transcript] = OrderedDict()
        self._lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------

    def authenticate(self, ctx: ProviderContext) -> NhnAuth:
        """Resolve host, API version and credential from the profile (no request)."""
        return resolve_auth(ctx)

    def validate(self, ctx: ProviderContext, request: JobRequest) -> JobRequest:
        """Check media, language and options before any request; normalize ``biasing_list``."""
        auth = self._auth(ctx)
        self._check_request(auth, request)
        options = dict(request.options)
        if "biasing_list" in options:
            entries = parse_biasing_list(options["biasing_list"])
            options["biasing_list"] = [e.wire for e in entries]
        return attrs.evolve(request, options=options, language=KOREAN)

    def submit(self, ctx: ProviderContext, request: JobRequest,
               handle: JobHandle) -> JobHandle | Submitted:
        """Local file: sync recognition, finished at once. URL: an async task."""
        auth = self._auth(ctx)
        self._check_request(auth, request)  # again: submit may be called without validate
        biasing = [e.wire for e in parse_biasing_list(request.options.get("biasing_list"))]
        media = request.media
        if isinstance(media, LocalFile):
            return self._submit_sync(ctx, auth, media, biasing, handle)
        assert isinstance(media, RemoteUrl)  # guaranteed by _check_request
        return self._submit_async(ctx, auth, media, biasing, handle)

    def status(self, ctx: ProviderContext, handle: JobHandle) -> JobStatus:
        """Sync jobs are SUCCEEDED without a request; async tasks are polled."""
        if _mode(handle) == MODE_SYNC:
            return JobStatus(JobState.SUCCEEDED, vendor_state=None,
                             detail="synchronous recognition (finished at submit)")
        answer, data = self._poll(ctx, handle)
        return _status_of(answer, data)

    def fetch(self, ctx: ProviderContext, handle: JobHandle) -> Result:
        """The transcript: from memory for sync jobs, from the status call for async ones."""
        if _mode(handle) == MODE_SYNC:
            with self._lock:
                cached = self._sync_results.get(handle.job_id)
            if cached is not None:
                return cached
            raise NotFoundError(
                "NHN's synchronous API keeps no copy of results; this job's transcript is "
                "served from voxhub's job store", provider=NAME, operation="fetch",
            )
        answer, data = self._poll(ctx, handle)
        state = (answer.task_status or "").upper()
        if state == "COMPLETED" and answer.result is not None:
            return to_transcript(answer.result, handle.job_id, raw=data)
        if state == "FAILED":
            raise JobFailedError(
                f"NHN task {answer.task_id or handle.vendor_id} FAILED "
                f"(run it again with: voxhub nhn retry {handle.job_id})",
                reason="FAILED", provider=NAME, operation="fetch", handle=handle,
            )
        raise ProviderError(
            f"NHN task is not finished yet (taskStatus {state or 'unknown'})",
            provider=NAME, operation="fetch", details={"task_status": state},
        )

    def close(self, ctx: ProviderContext, handle: JobHandle) -> None:
        """NHN has no cancel or delete call: forget the cached sync result, nothing else."""
        with self._lock:
            self._sync_results.pop(handle.job_id, None)

    def retry(self, ctx: ProviderContext, handle: JobHandle) -> JobHandle:
        """Ask NHN to run a FAILED async task again; the handle follows the id NHN returns.

        Whether NHN returns the same task id or a new one is undocumented: either
        way ``vendor_ids["task_id"]`` becomes the returned id and the previous ids
        are kept in ``vendor_state["task_history"]``.
        """
        if _mode(handle) == MODE_SYNC:
            raise InvalidInputError(
                "a synchronous NHN job cannot be retried by NHN; submit the file again",
                field="job", provider=NAME, operation="retry",
            )
        task_id = handle.vendor_ids.get("task_id")
        if not task_id:
            raise NotFoundError("this job has no NHN task id", provider=NAME, operation="retry")
        auth = self._auth(ctx)
        # A GET that starts work: not idempotent, so an ambiguous failure is not resent.
        resp = ctx.http.request(
            "GET", auth.url("stt", "async", task_id, "retry"), operation="retry",
            headers=auth.headers(), idempotent=False,
        )
        answer, data = _read(resp, RetryAnswer, "retry")
        top = data.get("taskId") if isinstance(data, dict) else None
        new_id = (answer.result.task_id if answer.result else None) or top or task_id
        history = [*handle.vendor_state.get("task_history", []), task_id]
        ctx.log.info("nhn.retry", job_id=handle.job_id, task_id=task_id, new_task_id=new_id,
                     same_id=new_id == task_id)
        return handle.with_vendor({"task_id": str(new_id)},
                                  {"task_history": history, "retries": len(history)})

    # --- internals ---------------------------------------------------------------

    def _auth(self, ctx: ProviderContext) -> NhnAuth:
        return ctx.auth if isinstance(ctx.auth, NhnAuth) else resolve_auth(ctx)

    def _check_request(self, auth: NhnAuth, request: JobRequest) -> None:
        if request.kind not in (None, JobKind.TRANSCRIPTION):
            raise UnsupportedOptionError(f"NHN does only transcription, not {request.kind}",
                                         field="kind", provider=NAME, operation="validate")
        if request.callback_url:
            raise UnsupportedOptionError("NHN Speech-to-Text has no callbacks; voxhub polls",
                                         field="callback_url", provider=NAME,
                                         operation="validate")
        check_language(request.language)
        self.info.validate_options(request.options)
        parse_biasing_list(request.options.get("biasing_list"))
        media = request.media
        if isinstance(media, LocalFile):
            check_local_media(media, auth.sync_limits)
        elif isinstance(media, RemoteUrl):
            scheme = urlsplit(media.url).scheme.lower()
            if scheme not in ("http", "https"):
                raise InvalidInputError(f"NHN downloads audioUrl over http(s), not {scheme!r}",
                                        field="media", provider=NAME, operation="validate")
            if media.auth_headers:
                raise UnsupportedOptionError(
                    "NHN downloads audioUrl itself and cannot send headers; use a URL that "
                    "needs none (e.g. a presigned URL)",
                    field="media", provider=NAME, operation="validate",
                )
        else:
            what = "no media" if media is None else type(media).__name__
            raise InvalidInputError(
                f"NHN transcribes a local file or an http(s) URL, got {what}",
                field="media", provider=NAME, operation="validate",
            )

    def _submit_sync(self, ctx: ProviderContext, auth: NhnAuth, media: LocalFile,
                     biasing: list[str], handle: JobHandle) -> Submitted:
        parts = [Part("audio", path=media.path)]
        parts += [Part("biasingList", value=item) for item in biasing]
        body = MultipartBody(parts)
        ctx.log.info("nhn.submit", job_id=handle.job_id, mode=MODE_SYNC, version=auth.version,
                     bytes=body.file_size, biasing_items=len(biasing))
        # Sync recognition is a POST: the transport retries only provably unsent requests
        # and 429s, never one the server may have processed.
        resp = ctx.http.request("POST", auth.url("stt"), operation="submit",
                                headers=auth.headers(), body=body, idempotent=False)
        answer, data = _read(resp, SyncAnswer, "submit")
        if answer.result is None:
            raise ProviderError("NHN answered success without a result", provider=NAME,
                                operation="submit", status=resp.status)
        transcript = to_transcript(answer.result, handle.job_id, raw=data)
        with self._lock:
            self._sync_results[handle.job_id] = transcript
            while len(self._sync_results) > self.SYNC_CACHE_SIZE:
                self._sync_results.popitem(last=False)
        done = handle.with_vendor(state={"mode": MODE_SYNC, "api_version": auth.version})
        status = JobStatus(JobState.SUCCEEDED, vendor_state=None,
                           detail="synchronous recognition", raw=redact(data))
        return Submitted(done, status, transcript)

    def _submit_async(self, ctx: ProviderContext, auth: NhnAuth, media: RemoteUrl,
                      biasing: list[str], handle: JobHandle) -> JobHandle:
        payload: dict[str, Any] = {"audioUrl": media.url}
        if biasing:
            payload["biasingList"] = biasing
        ctx.log.info("nhn.submit", job_id=handle.job_id, mode=MODE_ASYNC, version=auth.version,
                     media=media.describe(), biasing_items=len(biasing))
        resp = ctx.http.request("POST", auth.url("stt", "async"), operation="submit",
                                headers=auth.headers(), json=payload, idempotent=False)
        answer, _data = _read(resp, AsyncSubmitAnswer, "submit")
        if not answer.task_id:
            raise ProviderError("NHN accepted the task but returned no taskId", provider=NAME,
                                operation="submit", status=resp.status)
        return handle.with_vendor({"task_id": answer.task_id},
                                  {"mode": MODE_ASYNC, "api_version": auth.version})

    def _poll(self, ctx: ProviderContext, handle: JobHandle) -> tuple[StatusAnswer, Any]:
        task_id = handle.vendor_ids.get("task_id")
        if not task_id:
            raise NotFoundError("this job has no NHN task id", provider=NAME,
                                operation="status")
        auth = self._auth(ctx)
        resp = ctx.http.request("GET", auth.url("stt", "async", task_id, "status"),
                                operation="status", headers=auth.headers(), idempotent=True)
        return _read(resp, StatusAnswer, "status")


def _mode(handle: JobHandle) -> str:
    mode = handle.vendor_state.get("mode")
    if mode in (MODE_SYNC, MODE_ASYNC):
        return str(mode)
    # A handle without bookkeeping: a task id means async, none means a sync job.
    return MODE_ASYNC if handle.vendor_ids.get("task_id") else MODE_SYNC


def _status_of(answer: StatusAnswer, data: Any) -> JobStatus:
    vendor = (answer.task_status or "").upper()
    state = _STATES.get(vendor)
    raw = redact(data)
    if state is None:
        # An unknown word is not an end: keep polling, but say what NHN said.
        return JobStatus(JobState.RUNNING, vendor_state=answer.task_status,
                         detail="unrecognised NHN taskStatus", raw=raw)
    if state is JobState.FAILED:
        return JobStatus(state, vendor_state=vendor, reason="FAILED",
                         detail="NHN reported the task as failed; it can be run again "
                                "(voxhub nhn retry JOB)", raw=raw)
    progress = 1.0 if state is JobState.SUCCEEDED else None
    return JobStatus(state, vendor_state=vendor, progress=progress, raw=raw)


def check_local_media(media: LocalFile, limits: Limits) -> None:
    """NHN's limits for an upload, checked on this machine (``field="media"`` when broken)."""
    path = media.path

    def bad(msg: str) -> InvalidInputError:
        return InvalidInputError(f"{path.name}: {msg}", field="media", provider=NAME,
                                 operation="validate", details={"limits": limits.describe()})

    if not path.is_file():
        raise bad("no such file")
    size = path.stat().st_size
    if size == 0:
        raise bad("the file is empty")
    if size > limits.max_bytes:
        raise bad(f"{size / (1024 * 1024):.1f} MB is over NHN's limit of "
                  f"{limits.max_bytes // (1024 * 1024)} MB")
    info = probe(path)
    if info.format is None:
        raise bad(f"not a format NHN accepts ({describe_formats()})")
    if info.duration is not None:
        if info.duration < limits.min_seconds:
            raise bad(f"{info.duration:.2f} s is shorter than NHN's minimum of "
                      f"{limits.min_seconds:g} s")
        if info.duration > limits.max_seconds:
            raise bad(f"{info.duration:.1f} s is longer than NHN's maximum of "
                      f"{limits.max_seconds:g} s")


def _read(resp: Response, cls: type[T], operation: str) -> tuple[T, Any]:
    """Check the envelope (whatever the HTTP status) and read the answer as ``cls``."""
    try:
        data: Any = json.loads(resp.data) if resp.data else None
    except (ValueError, UnicodeDecodeError):
        data = None
    header: Header | None = None
    if isinstance(data, dict) and isinstance(data.get("header"), dict):
        try:
            header = structure(data["header"], Header)
        except (cattrs.BaseValidationError, ValueError, TypeError, KeyError):
            header = None
    if header is not None and not header.ok:
        raise _envelope_error(header, resp, operation)
    if not resp.ok:
        raise _status_error(resp, operation)
    if header is None:
        raise ProviderError(
            f"NHN answered HTTP {resp.status} without the result envelope ('header')",
            provider=NAME, operation=operation, status=resp.status,
        )
    try:
        return structure(data, cls), data
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        raise ProviderError(f"NHN's answer could not be read: {type(exc).__name__}",
                            provider=NAME, operation=operation, status=resp.status) from None


def _retry_after(resp: Response) -> float | None:
    return parse_retry_after(resp.header("Retry-After"))


def _envelope_error(header: Header, resp: Response, operation: str) -> VoxhubError:
    entry = codes.lookup(header.result_code)
    vendor_message = redact_text(header.result_message or "")
    message = f"NHN result {entry.code} {entry.key}: {vendor_message or entry.meaning}"
    hint = _HINTS.get(entry.category)
    if entry.code in (404, 4041007):
        hint = "check base_url/host and api_version"
    if hint:
        message += f" ({hint})"
    # An STT code is the service's own verdict: nothing was created, a resubmit is safe.
    # A gateway 5xx only says the upstream failed, which may be after it acted.
    in_doubt = entry.gateway and entry.category is codes.Category.UNAVAILABLE
    return codes.error_for(
        entry, message, operation=operation, http_status=resp.status,
        retry_after=_retry_after(resp),
        details={"result_message": vendor_message, "http_status": resp.status},
        in_doubt=in_doubt,
    )


_HINTS: Mapping[codes.Category, str] = {
    codes.Category.AUTH: "check app_key and secret_key / uak_token",
    codes.Category.PERMISSION: "the credentials lack permission for Speech-to-Text",
}


def _status_error(resp: Response, operation: str) -> VoxhubError:
    """An error answer without an envelope (a proxy page, an injected fault...)."""
    snippet = redact_text(resp.text[:200]).strip()
    message = f"NHN answered HTTP {resp.status}" + (f": {snippet}" if snippet else "")
    if resp.status in (400, 413, 415):
        return InvalidInputError(message, field="media" if resp.status != 400 else None,
                                 provider=NAME, operation=operation,
                                 details={"http_status": resp.status})
    if resp.status == 429:
        return RateLimitedError(message, retry_after=_retry_after(resp), status=429,
                                provider=NAME, operation=operation)
    return error_for_status(resp.status, message, provider=NAME, operation=operation)
