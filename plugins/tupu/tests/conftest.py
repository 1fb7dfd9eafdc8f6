"""Fixtures: the Tupu sandbox, a small callback receiver, and provider contexts.

The receiver is a real werkzeug server on loopback. For every POST to
``/callbacks/tupu/{job_id}[/{token}]`` it does what voxhub's callback receiver
does: call the provider's ``parse_callback``, answer ``CallbackRejected`` with
its HTTP status, and otherwise record the event (and hand it to ``on_event``,
which the orchestrator test uses to write the store).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest
import structlog
import urllib3
from voxhub.clock import Clock, SystemClock
from voxhub.config import Config
from voxhub.errors import CallbackRejected
from voxhub.provider import CallbackEvent, CallbackRequest, ProviderContext
from voxhub.sandbox import RunningSandbox, serve
from voxhub.transport import HttpClient
from voxhub_tupu.provider import TupuProvider
from voxhub_tupu.sandbox import TupuSandbox
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_ROUTE = re.compile(r"/callbacks/tupu/([^/]+)(?:/([^/]+))?")


class Receiver:
    """A callback receiver calling ``TupuProvider.parse_callback`` (see the module doc)."""

    def __init__(self) -> None:
        self.provider = TupuProvider()
        self.ctx: ProviderContext | None = None
        self.events: list[tuple[str, CallbackEvent]] = []
        self.refused: list[tuple[str, int, str]] = []
        self.fail_next = 0
        self.failures = 0
        self.on_event: Callable[[str, CallbackEvent], None] | None = None
        self._cond = threading.Condition()
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def url_for(self, job_id: str) -> str:
        return f"{self.url}/callbacks/tupu/{job_id}"

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        match = _ROUTE.fullmatch(request.path)
        if match is None or request.method != "POST":
            return Response("not found", status=404)(environ, start_response)
        job_id = match.group(1)
        with self._cond:
            if self.fail_next > 0:
                self.fail_next -= 1
                self.failures += 1
                self._cond.notify_all()
                return Response("try later", status=503)(environ, start_response)
        assert self.ctx is not None, "set receiver.ctx first"
        callback = CallbackRequest(
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.get_data(),
            query=dict(request.args),
            token=match.group(2),
        )
        try:
            event = self.provider.parse_callback(self.ctx, callback)
        except CallbackRejected as exc:
            with self._cond:
                self.refused.append((job_id, exc.http_status, str(exc)))
                self._cond.notify_all()
            return Response(str(exc), status=exc.http_status)(environ, start_response)
        if self.on_event is not None:
            self.on_event(job_id, event)
        with self._cond:
            self.events.append((job_id, event))
            self._cond.notify_all()
        return Response(event.response_body, status=event.response_status,
                        content_type=event.response_content_type)(environ, start_response)

    def wait_for(self, predicate: Callable[[Receiver], bool], timeout: float = 10.0) -> None:
        """Block until ``predicate(self)`` holds; fail the test after ``timeout`` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(
                    f"timed out; events={[(j, e.status) for j, e in self.events]} "
                    f"refused={self.refused}"
                )

    def for_job(self, job_id: str) -> list[CallbackEvent]:
        with self._cond:
            return [e for j, e in self.events if j == job_id]

    def payloads(self, job_id: str) -> list[Mapping[str, Any]]:
        return [e.data for e in self.for_job(job_id)]

    def ended(self, job_id: str) -> bool:
        return any(e.status is not None and e.status.is_terminal for e in self.for_job(job_id))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    recv = Receiver()
    yield recv
    recv.stop()


#: Fast sandbox settings for tests: slices every 50 ms, quick retries.
FAST: dict[str, Any] = {
    "slice_interval": 0.05,
    "callback_schedule": (0.05, 0.1, 0.2, 0.4),
    "end_callback_delay": 0.05,
}


@pytest.fixture
def tupu_sandbox() -> Iterator[Callable[..., RunningSandbox]]:
    """``tupu_sandbox(**options)`` starts a TupuSandbox (fast defaults); stopped after the test."""
    running: list[RunningSandbox] = []

    def start(**options: Any) -> RunningSandbox:
        server = serve(TupuSandbox(**{**FAST, **options}))
        running.append(server)
        return server

    yield start
    for server in running:
        _stop_quickly(server)


def _stop_quickly(server: RunningSandbox) -> None:
    # RunningSandbox.stop waits for serve_forever's 0.5 s poll; a request wakes it at once.
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    while stopper.is_alive():
        with contextlib.suppress(urllib3.exceptions.HTTPError, OSError):
            urllib3.request("GET", f"{server.base_url}/_sandbox/counters", timeout=0.2,
                            retries=False)
        stopper.join(0.02)


def make_ctx(
    values: Mapping[str, Any],
    *,
    receiver: Receiver | None = None,
    clock: Clock | None = None,
    callback: bool = True,
    log: Any = None,
) -> ProviderContext:
    """A provider context as the orchestrator builds it, from profile values."""
    info = TupuProvider.info
    settings = Config.from_profiles({"tupu": dict(values)}).settings(info)
    clock = clock or SystemClock()

    def callback_url_for(job_id: str) -> str | None:
        return receiver.url_for(job_id) if receiver is not None and callback else None

    ctx = ProviderContext(
        provider="tupu",
        profile="tupu",
        settings=settings,
        http=HttpClient(clock=clock).bind("tupu", retry=info.retry),
        clock=clock,
        log=log or structlog.get_logger(),
        callback_url_for=callback_url_for,
    )
    if receiver is not None and receiver.ctx is None:
        receiver.ctx = ctx
    return ctx


@pytest.fixture
def make_context() -> Callable[..., ProviderContext]:
    """The :func:`make_ctx` helper, as a fixture (test modules cannot import conftest)."""
    return make_ctx
