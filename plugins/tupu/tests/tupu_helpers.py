"""Helpers shared by the Tupu plugin tests (a uniquely named module; conftest loads it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from voxhub.models import new_job_id
from voxhub.plugin import JobHandle, JobKind, JobRequest, ProviderContext, StreamUrl
from voxhub.sandbox import RunningSandbox
from voxhub_tupu.provider import TupuProvider
from voxhub_tupu.sandbox import TupuSandbox

ALL_TASKS = ["transcription", "moderation", "vulgar"]
Start = Callable[..., RunningSandbox]
MakeCtx = Callable[..., ProviderContext]


def request(url: str = "rtmp://live.example.com/app/room1", **options: Any) -> JobRequest:
    """A stream-moderation request (not validated)."""
    return JobRequest(provider="tupu", media=StreamUrl(url), kind=JobKind.STREAM_MODERATION,
                      options=options)


def new_handle() -> JobHandle:
    """A fresh handle, as the orchestrator records one before submitting."""
    return JobHandle(job_id=new_job_id(), provider="tupu", kind=JobKind.STREAM_MODERATION,
                     profile="tupu")


def setup(
    start: Start, receiver: Any, make_context: MakeCtx, **options: Any
) -> tuple[TupuSandbox, ProviderContext, TupuProvider]:
    """A sandbox with ``options``, an authenticated context whose callbacks go to ``receiver``."""
    server = start(**options)
    ctx = make_context(server, receiver=receiver)
    return server.sandbox, ctx, TupuProvider()  # type: ignore[return-value]


def submit(ctx: ProviderContext, provider: TupuProvider, **options: Any) -> JobHandle:
    """Validate then submit one stream, as the core does."""
    checked = provider.validate(ctx, request(**options))
    handle = provider.submit(ctx, checked, new_handle())
    assert isinstance(handle, JobHandle)
    return handle


def count(receiver: Any, job_id: str, task: str) -> int:
    """How many of a job's callbacks carry ``task``."""
    return sum(task in p for p in receiver.payloads(job_id))


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``check()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


def terminal(receiver: Any, job_id: str) -> Any:
    """The one final-state callback event of a job."""
    ends = [e for e in receiver.for_job(job_id) if e.status is not None and e.status.is_terminal]
    assert len(ends) == 1
    return ends[0]
