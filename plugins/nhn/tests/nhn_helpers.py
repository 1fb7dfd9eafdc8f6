"""Helpers shared by the NHN plugin tests (a uniquely named module, imported by tests)."""

from __future__ import annotations

import math
import struct
import time
import wave
from pathlib import Path

from voxhub.models import JobHandle, JobKind, JobStatus
from voxhub.provider import ProviderContext
from voxhub.sandbox import Sandbox
from voxhub.transport import RetryPolicy
from voxhub_nhn.provider import NhnProvider
from werkzeug.wrappers import Request, Response

#: Retry policy for tests: same rules as the provider's, with a fake clock the waits are free.
FAST_RETRY = RetryPolicy(max_attempts=4, max_rate_limited_attempts=4, backoff_base=0.01,
                         backoff_max=0.05, retry_after_max=0.05)


def write_wav(path: Path, seconds: float, *, rate: int = 16_000, silent: bool = False,
              width: int = 2) -> Path:
    """A mono PCM WAV: a 440 Hz tone (or silence) of ``seconds``."""
    frames = int(seconds * rate)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        if width == 1:
            data = bytes(128 if silent else 128 + int(100 * math.sin(i * 0.3))
                         for i in range(frames))
        else:
            step = 2 * math.pi * 440 / rate
            data = b"".join(
                struct.pack("<h", 0 if silent else int(8000 * math.sin(step * i)))
                for i in range(frames)
            )
        wav.writeframes(data)
    return path


class MediaServer(Sandbox):
    """A loopback file server standing in for "a downloadable URL" of the async API."""

    provider = "media"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def dispatch(self, request: Request) -> Response:
        path = self.root / request.path.lstrip("/")
        if not path.is_file():
            return Response("not found", status=404)
        return Response(path.read_bytes(), content_type="application/octet-stream")


def new_handle(job_id: str = "vx_test0000000000000001") -> JobHandle:
    return JobHandle(job_id=job_id, provider="nhn", kind=JobKind.TRANSCRIPTION, profile="nhn")


def wait_terminal(provider: NhnProvider, ctx: ProviderContext, handle: JobHandle,
                  timeout: float = 10.0) -> list[JobStatus]:
    """Poll until the job is final; returns every status seen."""
    seen: list[JobStatus] = []
    deadline = time.monotonic() + timeout
    while True:
        status = provider.status(ctx, handle)
        seen.append(status)
        if status.is_terminal:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"job not final after {timeout}s: {seen[-1]}")
        time.sleep(0.05)
