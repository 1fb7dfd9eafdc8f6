"""Multipart uploads to the Rev.ai emulator, streamed to disk (or nowhere) in constant memory.

Part of ``voxhub sandbox revai`` (:mod:`voxhub_revai.sandbox`). Each file part of a
``POST /jobs`` goes into a :class:`Sink` as it arrives: a file in the sandbox's
directory, or nothing at all when uploads are not kept (benchmarks send gigabytes).
Bytes past the upload limit end the request with a 413, even without a
``Content-Length`` to check up front.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import attrs
import structlog
from voxhub.sandbox_kit import Counters, Request, Response
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from .sandbox_jobs import check_options, safe_suffix
from .sandbox_render import invalid, problem, too_large

log = structlog.get_logger("voxhub_revai.sandbox")

__all__ = ["Sink", "Upload", "UploadDesk", "discard", "read_upload"]


class Sink:
    """Where an upload's bytes go: a file, or nowhere (counted, then forgotten)."""

    def __init__(self, path: Path | None, limit: int) -> None:
        self.path = path
        self.size = 0
        self._limit = limit
        self._fh: IO[bytes] | None = path.open("wb") if path is not None else None

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self._limit:
            raise RequestEntityTooLarge()  # chunked uploads have no Content-Length to check
        if self._fh is not None:
            self._fh.write(data)
        return len(data)

    # werkzeug's form parser seeks and reads the stream it wrote; a sink has nothing to give.
    def seek(self, offset: int, whence: int = 0) -> int:
        if self._fh is not None:
            self._fh.flush()
        return 0

    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""

    def tell(self) -> int:
        return self.size

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@attrs.frozen
class Upload:
    """A multipart submission read: the media part, the options, and what is wrong with them."""

    media: FileStorage | None
    sink: Sink | None  # the media part's sink
    options: dict[str, Any]
    problems: dict[str, list[str]]
    sinks: tuple[Sink, ...]  # every part's, to discard on refusal


def read_upload(request: Request, *, limit: int, path_for: Callable[[str | None], Path | None]
                ) -> Upload:
    """Read a multipart ``POST /jobs`` through :class:`Sink` objects.

    ``path_for(filename)`` says where a file part is kept (``None``: not kept).
    Raises ``RequestEntityTooLarge`` past ``limit`` bytes, after closing and removing
    what was received. The request's own stream is read, so nothing is left unread.
    """
    sinks: list[Sink] = []

    def factory(total_content_length: int | None, content_type: str | None,
                filename: str | None, content_length: int | None = None) -> IO[bytes]:
        sink = Sink(path_for(filename), limit)
        sinks.append(sink)
        return sink  # type: ignore[return-value]  # file-like enough for the parser

    parser = FormDataParser(stream_factory=factory,
                            max_form_memory_size=request.max_form_memory_size,
                            max_form_parts=request.max_form_parts)
    try:
        _, form, files = parser.parse(request.stream, request.mimetype, request.content_length,
                                      request.mimetype_params)
    except RequestEntityTooLarge:
        discard(sinks)
        raise
    finally:
        for sink in sinks:
            sink.close()
    media = files.get("media")
    kept = media.stream if media is not None else None
    problems: dict[str, list[str]] = {}
    if not isinstance(kept, Sink):
        problems["media"] = ["The media field is required"]
    options: dict[str, Any] = {}
    raw_options = form.get("options")
    if raw_options:
        try:
            parsed = json.loads(raw_options)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            options = parsed
        else:
            problems["options"] = ["options must be a JSON object"]
    for key in ("media_url", "source_config"):
        if key in options:
            problems[key] = [f"{key} cannot be used with a file upload"]
    problems.update(check_options(options))
    return Upload(media=media, sink=kept if isinstance(kept, Sink) else None, options=options,
                  problems=problems, sinks=tuple(sinks))


def discard(sinks: Sequence[Sink]) -> None:
    """Close ``sinks`` and remove the files they kept."""
    for sink in sinks:
        sink.close()
        if sink.path is not None:
            sink.path.unlink(missing_ok=True)


class UploadDesk:
    """Receives the emulator's uploads as Rev does: a size limit and a concurrency limit.

    ``directory`` is where uploads are kept (``None``: streamed through, not kept).
    """

    def __init__(
        self, *, limit: int, concurrent: int, directory: Path | None, counters: Counters
    ) -> None:
        self.limit = limit
        self.concurrent = concurrent
        self.directory = directory
        self.counters = counters
        self._lock = threading.Lock()
        self._busy = 0
        self._count = 0

    @property
    def busy(self) -> int:
        """How many multipart uploads are being received right now."""
        with self._lock:
            return self._busy

    def receive(self, request: Request, drain: Callable[[Request], None]) -> Upload | Response:
        """The upload of a multipart ``POST /jobs``, or Rev's refusal (413, 429, 400).

        ``drain`` reads what the client still sends before a refusal is answered.
        """
        if request.content_length is not None and request.content_length > self.limit:
            self.counters.add("uploads.too_large")
            drain(request)
            return too_large(self.limit)
        with self._lock:
            busy = self._busy >= self.concurrent
            if not busy:
                self._busy += 1
        if busy:
            self.counters.add("uploads.concurrency_limited")
            drain(request)
            return problem(429, "Too many concurrent multipart requests",
                           kind="too-many-requests",
                           detail=f"at most {self.concurrent} concurrent uploads")
        started = time.monotonic()
        try:
            upload = read_upload(request, limit=self.limit, path_for=self._path_for)
        except RequestEntityTooLarge:
            self.counters.add("uploads.too_large")
            drain(request)
            return too_large(self.limit)
        finally:
            with self._lock:
                self._busy -= 1
        if upload.problems:
            self.counters.add("jobs.rejected")
            discard(upload.sinks)
            return invalid(upload.problems)
        kept = upload.sink
        assert kept is not None  # no problems: the media part is there
        self.counters.add("uploads.bytes", kept.size)
        log.debug("sandbox.upload", bytes=kept.size,
                  seconds=round(time.monotonic() - started, 3), stored=kept.path is not None)
        discard([s for s in upload.sinks if s is not kept])
        return upload

    def _path_for(self, filename: str | None) -> Path | None:
        if self.directory is None:
            return None
        with self._lock:
            self._count += 1
            index = self._count
        return self.directory / f"upload-{index}{safe_suffix(filename)}"
