"""Rev.ai's HTTP API as one provider context sees it: where it lives, and a method per endpoint.

:class:`RevApi` is the :class:`~voxhub.plugin.ApiClient` for Rev's async API v1:
the deployment's root (US, EU, or the profile's ``base_url``), the bearer token
``authenticate`` returned (the base class sends ``ctx.auth``), Rev's error answers
(:func:`voxhub_revai.errors.error_from_response`) and Rev's documents read with
:data:`voxhub_revai.schema.converter`. Sending, retries and redaction are the core's.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from voxhub.plugin import (
    ApiClient,
    ConfigurationError,
    LocalFile,
    Media,
    MultipartBody,
    Part,
    ProviderContext,
    ProviderError,
    RemoteUrl,
    Response,
    VoxhubError,
    path_segment,
)

from .errors import error_from_response
from .options import UPLOADS
from .schema import TRANSCRIPT_JSON, Account, RevJob, RevTranscript, converter

__all__ = ["API_PATH", "EU_URL", "US_URL", "RevApi", "region"]

US_URL = "https://api.rev.ai"
EU_URL = "https://ec1.api.rev.ai"
API_PATH = "/speechtotext/v1"

#: Least read timeout for uploads: Rev may take a while to answer after a big file's last byte.
UPLOAD_READ_TIMEOUT = 300.0
#: ``Accept`` values of the caption renderings ``export`` asks for. Rev's ``text/plain``
#: transcript is not one of them: its speaker and time columns are not voxhub's ``txt``,
#: which every provider renders the same (from the JSON transcript).
EXPORT_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt"}
# Containers mimetypes does not know (or knows under a video type Rev does not care about).
_AUDIO_TYPES = {
    ".m4a": "audio/mp4", ".opus": "audio/ogg", ".oga": "audio/ogg", ".amr": "audio/amr",
    ".wma": "audio/x-ms-wma", ".aac": "audio/aac", ".flac": "audio/flac", ".wav": "audio/wav",
    ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".webm": "audio/webm", ".pcm": "audio/L16",
}


def region(ctx: ProviderContext) -> str:
    """The profile's deployment, ``us`` or ``eu`` (an EU ``base_url`` means ``eu``)."""
    value = str(ctx.settings.get("region") or "").strip().lower()
    if not value:
        return "eu" if "ec1." in (ctx.settings.base_url or "") else "us"
    if value not in ("us", "eu"):
        raise ConfigurationError(f"region must be 'us' or 'eu', not {value!r}",
                                 provider="revai", operation="authenticate")
    return value


def _root(ctx: ProviderContext) -> str:
    # The US host is also the declared default base_url, so region=eu must win over it;
    # any other base_url (a sandbox, a proxy) is used as it is.
    base = ctx.base_url
    if not base or base == US_URL:
        return EU_URL if region(ctx) == "eu" else US_URL
    return base


def _content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    return (_AUDIO_TYPES.get(suffix) or mimetypes.guess_type(path.name)[0]
            or "application/octet-stream")


class RevApi(ApiClient):
    """Rev.ai's async speech-to-text API v1 for one provider context."""

    name = "Rev.ai"
    path_prefix = API_PATH
    converter = converter

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx, base_url=_root(ctx))
        #: The options object of the ``POST /jobs`` being sent: a 404 then names its field.
        self.sent: Mapping[str, Any] | None = None

    def parse_error(self, response: Response, operation: str) -> VoxhubError:
        """Rev's problem details as a voxhub error (see :mod:`voxhub_revai.errors`)."""
        return error_from_response(response, operation, sent=self.sent)

    # --- jobs ----------------------------------------------------------------------------

    def create_job(self, media: Media | None, options: Mapping[str, Any]) -> RevJob:
        """``POST /jobs``: a URL job as JSON (``source_config``), a local file as multipart.

        One request, never repeated by the transport once it may have been received.
        """
        self.sent = options
        if isinstance(media, RemoteUrl):
            source: dict[str, Any] = {"url": media.url}
            if media.auth_headers:
                source["auth_headers"] = {k: v.reveal() for k, v in media.auth_headers.items()}
            response = self.request("POST", "/jobs", operation="submit",
                                    json={**options, "source_config": source})
            return self._created(response)
        if not isinstance(media, LocalFile):  # the provider's validate refused anything else
            raise TypeError(f"Rev.ai takes files and URLs, not {type(media).__name__}")
        path = media.path
        multipart = MultipartBody([
            Part("media", path=path, filename=path.name, content_type=_content_type(path)),
            Part("options", value=json.dumps(options, ensure_ascii=False),
                 content_type="application/json"),
        ])
        # Progress goes to whatever the caller set up with upload_progress (the CLI's
        # progress bar): no callback of our own, which would replace it.
        self.ctx.log.debug("revai.uploading", bytes=multipart.content_length,
                           content_type=multipart.parts[0].content_type)
        timeouts = self.ctx.http.timeouts
        # Rev serves a few uploads per user at once: a place among them is held for the
        # whole upload, by every worker of the store using this token.
        with self.ctx.limits.hold(UPLOADS, operation="submit"):
            response = self.request(
                "POST", "/jobs", operation="submit", body=multipart,
                timeouts=attrs.evolve(timeouts, read=max(timeouts.read, UPLOAD_READ_TIMEOUT)),
            )
        return self._created(response)

    def job(self, vendor_id: str, *, operation: str = "status") -> RevJob:
        """``GET /jobs/{id}``."""
        return self._job(self.request("GET", _job_path(vendor_id), operation=operation),
                         operation)

    def jobs_page(
        self, *, limit: int, starting_after: str | None, operation: str
    ) -> list[RevJob]:
        """``GET /jobs``: at most ``limit`` jobs, newest first, older than ``starting_after``."""
        response = self.request("GET", "/jobs", operation=operation,
                                params={"limit": limit, "starting_after": starting_after})
        items = self.json(response, operation)
        if not isinstance(items, list):
            raise ProviderError("unexpected answer from Rev.ai: the job list is not a list",
                                provider="revai", operation=operation, status=response.status)
        return [self.read(item, RevJob, operation) for item in items]

    def delete_job(self, vendor_id: str) -> None:
        """``DELETE /jobs/{id}``; a job already gone (404) is fine."""
        self.request("DELETE", _job_path(vendor_id), operation="close", ok=(404,))

    def transcript(self, vendor_id: str) -> tuple[RevTranscript, Any]:
        """``GET /jobs/{id}/transcript`` as Rev JSON: the document read, and as it came."""
        response = self.request("GET", _job_path(vendor_id, "/transcript"), operation="fetch",
                                accept=TRANSCRIPT_JSON)
        data = self.json(response, "fetch")
        return self.read(data, RevTranscript, "fetch"), data

    def rendering(self, vendor_id: str, fmt: str) -> str:
        """Captions: ``srt`` or ``vtt``."""
        response = self.request("GET", _job_path(vendor_id, "/captions"), operation="export",
                                accept=EXPORT_TYPES[fmt])
        return response.data.decode("utf-8", "replace")

    def account(self) -> Account:
        """``GET /account``."""
        return self.call("GET", "/account", operation="account", into=Account)

    def _created(self, response: Response) -> RevJob:
        try:
            return self._job(response, "submit")
        except ProviderError as exc:
            exc.in_doubt = True  # Rev said 2xx: the job exists, only its answer is unreadable
            raise

    def _job(self, response: Response, operation: str) -> RevJob:
        job = self.read(self.json(response, operation), RevJob, operation)
        if not job.id:
            raise ProviderError("unexpected answer from Rev.ai: the job has no id",
                                provider="revai", operation=operation, status=response.status)
        return job


def _job_path(vendor_id: str, suffix: str = "") -> str:
    return f"/jobs/{path_segment(vendor_id)}{suffix}"
