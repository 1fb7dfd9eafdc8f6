"""Request bodies streamed in constant memory: multipart forms and raw uploads.

Both kinds know their length before the first byte is sent (vendors expect a
``Content-Length``), report upload progress after each chunk, and send exactly
the bytes they announced: a file that shrinks or grows while it is being sent
fails the request with :class:`BodyLengthError` instead of corrupting the
connection.

Public names are re-exported by :mod:`voxhub.transport`.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import mimetypes
import os
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

import attrs

__all__ = [
    "CHUNK_SIZE",
    "BodyLengthError",
    "MultipartBody",
    "Part",
    "ProgressFn",
    "RawBody",
    "StreamBody",
    "current_progress",
    "upload_progress",
]

#: Size of the pieces a file is streamed in. Constant memory whatever the file size.
CHUNK_SIZE = 256 * 1024

ProgressFn = Callable[[int, int], None]

# Set by the orchestrator around a submit, so uploads report progress without every
# provider having to pass a callback through.
_UPLOAD_PROGRESS: contextvars.ContextVar[ProgressFn | None] = contextvars.ContextVar(
    "voxhub_upload_progress", default=None
)


@contextlib.contextmanager
def upload_progress(callback: ProgressFn | None) -> Generator[None, None, None]:
    """Report the progress of uploads made inside this block to ``callback(sent, total)``."""
    token = _UPLOAD_PROGRESS.set(callback)
    try:
        yield
    finally:
        _UPLOAD_PROGRESS.reset(token)


def current_progress() -> ProgressFn | None:
    """The callback set by the innermost :func:`upload_progress` block, if any."""
    return _UPLOAD_PROGRESS.get()


class BodyLengthError(ValueError):
    """A streamed body produced more or fewer bytes than the length it announced."""


@runtime_checkable
class StreamBody(Protocol):
    """What the transport needs from a streamed body (:class:`MultipartBody`, :class:`RawBody`)."""

    @property
    def content_type(self) -> str: ...

    @property
    def content_length(self) -> int: ...

    @property
    def replayable(self) -> bool:
        """Whether the body can be produced again (for a retry)."""
        ...

    def iter_chunks(self, progress: ProgressFn | None = None) -> Iterator[bytes]: ...


def _read_exactly(fh: IO[bytes], size: int, what: str, *, to_end: bool) -> Iterator[bytes]:
    """``size`` bytes of ``fh`` in chunks.

    With ``to_end`` (the body is meant to be the whole rest of the file) it fails
    *before* the last chunk if ``fh`` holds more. Checking before the last byte goes
    out matters: once the server has the whole announced body it may act on it, so a
    later error would leave the request in doubt.
    """
    left = size
    while left > 0:
        last = left <= CHUNK_SIZE
        chunk = fh.read(left + 1 if last and to_end else min(left, CHUNK_SIZE))
        if not chunk:
            raise BodyLengthError(
                f"{what} ended after {size - left} of its {size} bytes (changed while sending?)"
            )
        if len(chunk) > left:
            raise BodyLengthError(f"{what} holds more than its {size} bytes (grew while sending?)")
        left -= len(chunk)
        yield chunk


# --- multipart ------------------------------------------------------------------


@attrs.frozen
class Part:
    """One part of a multipart form: inline ``value`` or a file ``path`` streamed from disk."""

    name: str
    value: bytes | str | None = None
    path: Path | None = None
    filename: str | None = None
    content_type: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.value is None) == (self.path is None):
            raise ValueError("a Part needs exactly one of value or path")


class MultipartBody:
    """A ``multipart/form-data`` body whose file parts are streamed in chunks.

    The length is computed up front (so the request has a ``Content-Length``, as
    vendors expect) and the body can be produced again for a retry. A file part
    sends only the file's base name, never its directory. File sizes are taken
    once, the first time the length is needed, and every attempt sends exactly them.
    """

    replayable = True

    def __init__(self, parts: Sequence[Part]) -> None:
        self.parts = tuple(parts)
        self.boundary = "voxhub-" + uuid.uuid4().hex
        self._heads = [self._head(p) for p in self.parts]
        self._sizes: list[int] | None = None

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header, boundary included."""
        return f"multipart/form-data; boundary={self.boundary}"

    def _head(self, part: Part) -> bytes:
        disposition = f'form-data; name="{_quote(part.name)}"'
        content_type = part.content_type
        if part.path is not None:
            filename = part.filename or part.path.name
            disposition += f'; filename="{_quote(Path(filename).name)}"'
            content_type = content_type or (
                mimetypes.guess_type(filename)[0] or "application/octet-stream"
            )
        lines = [f"--{self.boundary}", f"Content-Disposition: {disposition}"]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    @staticmethod
    def _value(part: Part) -> bytes:
        return part.value.encode() if isinstance(part.value, str) else (part.value or b"")

    def _part_sizes(self) -> list[int]:
        if self._sizes is None:
            self._sizes = [
                p.path.stat().st_size if p.path is not None else len(self._value(p))
                for p in self.parts
            ]
        return self._sizes

    @property
    def file_size(self) -> int:
        """Total bytes of the file parts (what progress reports count)."""
        sizes = self._part_sizes()
        return sum(s for p, s in zip(self.parts, sizes, strict=True) if p.path is not None)

    @property
    def content_length(self) -> int:
        """Bytes of the whole body, boundaries included."""
        total = len(f"--{self.boundary}--\r\n")
        for head, size in zip(self._heads, self._part_sizes(), strict=True):
            total += len(head) + size + 2
        return total

    def iter_chunks(self, progress: ProgressFn | None = None) -> Iterator[bytes]:
        """Yield the body; ``progress(sent_file_bytes, total_file_bytes)`` after each chunk."""
        total = self.file_size
        sent = 0
        for head, part, size in zip(self._heads, self.parts, self._part_sizes(), strict=True):
            yield head
            if part.path is None:
                yield self._value(part)
            else:
                with part.path.open("rb") as fh:
                    for chunk in _read_exactly(fh, size, f"file part {part.name!r}", to_end=True):
                        sent += len(chunk)
                        yield chunk
                        if progress is not None:
                            progress(sent, total)
            yield b"\r\n"
        yield f"--{self.boundary}--\r\n".encode()


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


# --- raw uploads ----------------------------------------------------------------


RawSource = os.PathLike[str] | bytes | bytearray | IO[bytes] | Iterable[bytes]


class RawBody:
    """A raw upload: the request body is the bytes themselves (``application/octet-stream``).

    ``source`` is one of:

    * a path (:class:`~pathlib.Path` or any ``os.PathLike``): streamed from disk, its
      size taken now; a plain ``str`` is refused, as it is ambiguous (path or text?);
    * ``bytes`` / ``bytearray``: sent in chunks like a file;
    * a binary file object: read from its current position. A seekable one gets its
      length from the file and is rewound for a retry; an unseekable one needs ``length``
      and is sent once;
    * an iterable of ``bytes`` with ``length``: a re-iterable collection (list, tuple,
      an object whose ``__iter__`` starts afresh) can be retried, an iterator or
      generator is sent once (the transport then does not retry the request).

    ``length`` (bytes to send) is required where it cannot be known; for a file it
    may send only the first ``length`` bytes. ``progress(sent, total)`` is called
    after each chunk, like a multipart upload's.
    """

    def __init__(
        self,
        source: RawSource,
        *,
        length: int | None = None,
        content_type: str = "application/octet-stream",
    ) -> None:
        if length is not None and (
            isinstance(length, bool) or not isinstance(length, int) or length < 0
        ):
            raise ValueError(f"RawBody length must be a non-negative int, got {length!r}")
        self._content_type = content_type
        self._path: Path | None = None
        self._data: bytes | None = None
        self._file: IO[bytes] | None = None
        self._start = 0
        self._iterable: Iterable[bytes] | None = None
        self._one_shot = False
        self._started = False
        # Whether the body is the whole (rest of the) file, so extra bytes mean it grew.
        self._to_end = length is None
        if isinstance(source, str):
            raise TypeError("RawBody source: pass a pathlib.Path for a file, or bytes for data")
        if isinstance(source, os.PathLike):
            self._path = Path(source)
            available = self._path.stat().st_size
        elif isinstance(source, bytes | bytearray):
            self._data = bytes(source)
            available = len(self._data)
        elif hasattr(source, "read"):
            available = self._init_file(source, length)
        elif isinstance(source, Iterable):
            if length is None:
                raise ValueError("RawBody length is required for an iterable source")
            self._iterable = source
            self._one_shot = iter(source) is source
            available = length
        else:
            raise TypeError(f"RawBody source: cannot send a {type(source).__name__}")
        if length is not None and length > available:
            raise ValueError(f"RawBody length {length} is more than the {available} bytes there")
        self._length = available if length is None else length

    def _init_file(self, fh: Any, length: int | None) -> int:
        if isinstance(fh, io.TextIOBase):
            raise TypeError("RawBody source: open the file in binary mode ('rb')")
        self._file = fh
        try:
            seekable = fh.seekable()
        except (AttributeError, OSError, ValueError):
            seekable = False
        if seekable:
            self._start = int(fh.tell())
            end = int(fh.seek(0, io.SEEK_END))
            fh.seek(self._start)
            return end - self._start
        if length is None:
            raise ValueError("RawBody length is required for an unseekable file")
        self._one_shot = True
        return length

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` sent unless the caller's headers name one."""
        return self._content_type

    @property
    def content_length(self) -> int:
        """Bytes that will be sent."""
        return self._length

    @property
    def replayable(self) -> bool:
        """False once a one-shot source (iterator, unseekable file) has started sending."""
        return not (self._one_shot and self._started)

    def iter_chunks(self, progress: ProgressFn | None = None) -> Iterator[bytes]:
        """Yield the body in chunks; ``progress(sent, total)`` after each."""
        if not self.replayable:
            raise BodyLengthError("this RawBody reads a one-shot source that was already sent")
        self._started = True
        sent = 0
        for chunk in self._chunks():
            sent += len(chunk)
            yield chunk
            if progress is not None:
                progress(sent, self._length)

    def _chunks(self) -> Iterator[bytes]:
        if self._data is not None:
            view = memoryview(self._data)
            for at in range(0, self._length, CHUNK_SIZE):
                yield bytes(view[at : min(at + CHUNK_SIZE, self._length)])
        elif self._path is not None:
            with self._path.open("rb") as fh:
                yield from _read_exactly(
                    fh, self._length, f"file {self._path.name!r}", to_end=self._to_end
                )
        elif self._file is not None:
            if not self._one_shot:
                self._file.seek(self._start)
            yield from _read_exactly(
                self._file, self._length, "the file object", to_end=self._to_end
            )
        else:
            assert self._iterable is not None
            yield from self._checked(self._iterable)

    def _checked(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        sent = 0
        for chunk in chunks:
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise TypeError(f"RawBody iterable gave a {type(chunk).__name__}, not bytes")
            data = bytes(chunk)
            if not data:
                continue
            # Checked before the chunk goes out: more bytes than Content-Length would
            # be read by the server as the start of the next request.
            if sent + len(data) > self._length:
                raise BodyLengthError(f"RawBody iterable gave more than its {self._length} bytes")
            sent += len(data)
            yield data
        if sent != self._length:
            raise BodyLengthError(
                f"RawBody iterable ended after {sent} of its {self._length} bytes"
            )
