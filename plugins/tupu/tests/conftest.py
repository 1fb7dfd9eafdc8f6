"""Fixtures: the Tupu sandbox, a small callback receiver, and provider contexts.

The receiver is a real werkzeug server on loopback. For every POST to
``/callbacks/tupu/{job_id}[/{token}]`` it does what voxhub's callback receiver
does: call the provider's ``parse_callback``, answer ``CallbackRejected`` with
its HTTP status, and otherwise record the event (and hand it to ``on_event``,
which the orchestrator test uses to write the store).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from voxhub.plugin import CallbackEvent, CallbackRejected, CallbackRequest, ProviderContext
from voxhub.plugins import PluginManager
from voxhub.sandbox import RunningSandbox, serve
from voxhub_tupu.provider import TupuProvider
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def _load_helpers() -> None:
    # pytest runs in importlib mode (test folders are not on sys.path): load the
    # uniquely named helper module so that test modules can import it.
    name = "tupu_helpers"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


_load_helpers()

_ROUTES = Map([
    Rule("/callbacks/tupu/<job_id>", endpoint="callback", methods=["POST"]),
    Rule("/callbacks/tupu/<job_id>/<token>", endpoint="callback", methods=["POST"]),
])


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
        try:
            _, values = _ROUTES.bind_to_environ(environ).match()
        except HTTPException as exc:
            return exc(environ, start_response)
        job_id = values["job_id"]
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
            token=values.get("token"),
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
def tupu_sandbox(voxhub_plugins: PluginManager) -> Iterator[Callable[..., RunningSandbox]]:
    """``tupu_sandbox(**options)``: the installed ``tupu`` sandbox, fast defaults, on loopback."""
    running: list[RunningSandbox] = []

    def start(**options: Any) -> RunningSandbox:
        server = serve(voxhub_plugins.sandboxes["tupu"].create(**{**FAST, **options}))
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def make_context(
    voxhub_context: Callable[..., ProviderContext],
) -> Callable[..., ProviderContext]:
    """``make_context(sandbox_or_settings, receiver=..., **overrides)``: a tupu ``voxhub_context``.

    The only Tupu defaults it adds: callbacks go to ``receiver`` (unless
    ``callback=False``), and the receiver verifies them with the first context made.
    Everything else (``clock``, ``authenticate``, setting overrides, ``None`` to
    remove a setting) is ``voxhub_context``'s.
    """

    def make(
        settings: RunningSandbox | Mapping[str, Any],
        *,
        receiver: Receiver | None = None,
        callback: bool = True,
        **kw: Any,
    ) -> ProviderContext:
        if receiver is not None and callback:
            kw["callback_url_for"] = receiver.url_for
        ctx = voxhub_context("tupu", settings, **kw)
        if receiver is not None and receiver.ctx is None and ctx.auth is not None:
            receiver.ctx = ctx
        return ctx

    return make
