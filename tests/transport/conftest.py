"""Transport tests: real HTTP over 127.0.0.1 (ephemeral ports), and MockTransport above the seam.

Every server here stops by itself: at the end of its test, or after 30 s at most.
"""

from __future__ import annotations

import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request

# Test modules import the shared helpers by name (importlib mode cannot import a conftest).
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from transport_support import Handler, RawHandler, RawServer  # noqa: E402


@pytest.fixture
def server() -> Iterator[Callable[[Handler], str]]:
    """Start a WSGI app (a function of the request) on an ephemeral loopback port."""
    servers = []

    def start(handler: Handler) -> str:
        def app(environ, start_response):  # type: ignore[no-untyped-def]
            return handler(Request(environ))(environ, start_response)

        srv = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(
            target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_port}"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def raw_server() -> Iterator[Callable[..., str]]:
    """Start a :class:`RawServer` (``handle``, optional ``tls`` context); returns its URL."""
    started: list[RawServer] = []

    def start(handle: RawHandler, tls: ssl.SSLContext | None = None) -> str:
        started.append(RawServer(handle, tls))
        return started[-1].url

    yield start
    for srv in started:
        srv.close()
