"""Bad input, part 2: every provider's response parsers survive garbage from the vendor.

Each provider talks to its real sandbox through a small loopback proxy (werkzeug)
that, for every answer, applies a hypothesis-chosen corruption: truncated JSON,
values of the wrong type anywhere in the document, dropped or extra fields, a
whole different document, ~5 MB bodies, wrong content types, HTML error pages and
unexpected statuses. (Tupu signs its answers: structural corruptions are signed
again with the sandbox's key, so they reach the parser behind the signature check.)

Whatever arrives, ``status``/``fetch`` (and Rev.ai's ``export``, Tupu's ``close``)
either return a well-formed value or raise a :class:`~voxhub.errors.VoxhubError`
naming the provider — never an unhandled ``KeyError``/``TypeError``/``AttributeError``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import background_server
from voxhub import (
    Config,
    JobHandle,
    JobKind,
    JobRequest,
    JobStatus,
    Orchestrator,
    RemoteUrl,
    Result,
    RtcChannel,
    StreamUrl,
    VoxhubError,
)
from voxhub.clock import SystemClock
from voxhub.plugins import PluginManager
from voxhub.sandbox import RunningSandbox, serve
from werkzeug.wrappers import Request, Response

HUGE = 5 * 1024 * 1024
HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>{status} Error</title></head><body>"
    "<h1>{status}</h1><p>The upstream server returned an invalid response.</p></body></html>"
)


class FastClock(SystemClock):
    """Real time (signatures and tokens carry timestamps) but back-offs of a millisecond."""

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        return super().sleep(min(seconds, 0.001), wake)


# --- corruptions -----------------------------------------------------------------------------


@attrs.frozen
class Mutation:
    """One way of corrupting an answer; applied to every answer during one example."""

    kind: str
    frac: float = 0.0
    path: tuple[int, ...] = ()
    value: Any = None
    status: int | None = None
    content_type: str | None = None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
_STATUSES = [200, 201, 202, 204, 400, 401, 403, 404, 405, 409, 410, 413, 418, 422, 429,
             500, 501, 502, 503, 504]
_CTYPES = ["text/html; charset=utf-8", "application/xml", "text/plain", "",
           "application/octet-stream", "application/json"]
_PATH = st.lists(st.integers(0, 40), min_size=1, max_size=4).map(tuple)

MUTATIONS = st.one_of(
    st.builds(Mutation, kind=st.just("truncate"), frac=st.floats(0, 0.97)),
    st.builds(Mutation, kind=st.just("replace"), path=_PATH, value=_JSON),
    st.builds(Mutation, kind=st.just("drop"), path=_PATH),
    st.builds(Mutation, kind=st.just("extra"), path=_PATH,
              value=st.dictionaries(st.text(min_size=1, max_size=10), _JSON, min_size=1,
                                    max_size=4)),
    st.builds(Mutation, kind=st.just("root"), value=_JSON),
    st.builds(Mutation, kind=st.sampled_from(["huge-string", "huge-bytes", "huge-array"])),
    st.builds(Mutation, kind=st.just("html"), status=st.sampled_from(_STATUSES)),
    st.builds(Mutation, kind=st.just("status"), status=st.sampled_from(_STATUSES)),
    st.builds(Mutation, kind=st.just("ctype"), content_type=st.sampled_from(_CTYPES)),
)


def _walk(doc: Any, path: tuple[int, ...]) -> tuple[Any, Any] | None:
    """The container and key reached by following ``path`` (indices modulo each size)."""
    parent: Any = None
    key: Any = None
    node = doc
    for step in path:
        if isinstance(node, dict) and node:
            keys = list(node)
            parent, key = node, keys[step % len(keys)]
        elif isinstance(node, list) and node:
            parent, key = node, step % len(node)
        else:
            break
        node = parent[key]
    return None if parent is None else (parent, key)


def corrupt_document(doc: Any, m: Mutation) -> Any:
    """A structurally corrupted copy of a JSON document."""
    doc = json.loads(json.dumps(doc))
    if m.kind == "root":
        return m.value
    spot = _walk(doc, m.path)
    if spot is None:
        return m.value if m.kind == "replace" else doc
    parent, key = spot
    if m.kind == "replace":
        parent[key] = m.value
    elif m.kind == "drop":
        del parent[key]
    elif m.kind == "extra":
        target = parent[key] if isinstance(parent[key], dict) else parent
        if isinstance(target, dict):
            target.update(m.value)
    return doc


def corrupt(
    m: Mutation, status: int, ctype: str, body: bytes, sign: Callable[[Any], bytes] | None
) -> tuple[int, str, bytes]:
    """Apply ``m`` to one answer (``sign`` re-signs a payload for signed APIs)."""
    if m.kind == "truncate":
        return status, ctype, body[: int(len(body) * m.frac)]
    if m.kind == "huge-string":
        return 200, "application/json", b'{"id": "' + b"x" * HUGE + b'"}'
    if m.kind == "huge-bytes":
        return 200, ctype, bytes(range(256)) * (HUGE // 256)
    if m.kind == "huge-array":
        return 200, "application/json", b"[" + b"0," * (HUGE // 2) + b"0]"
    if m.kind == "html":
        return m.status or 502, "text/html", HTML_PAGE.format(status=m.status).encode()
    if m.kind == "status":
        return m.status or 500, ctype, body
    if m.kind == "ctype":
        return status, m.content_type or "", body
    try:
        doc = json.loads(body)
    except ValueError:
        return status, ctype, body[: len(body) // 2]
    if sign is not None and isinstance(doc, dict) and isinstance(doc.get("json"), str):
        # A signed envelope: corrupt the payload, then sign it again so the parser sees it.
        corrupted = corrupt_document(json.loads(doc["json"]), m)
        if isinstance(corrupted, dict):
            return status, ctype, sign(corrupted)
        return status, ctype, json.dumps({"json": corrupted, "signature": "AAAA"}).encode()
    return status, ctype, json.dumps(corrupt_document(doc, m)).encode()


class CorruptingProxy:
    """A WSGI proxy in front of a sandbox; corrupts every answer while ``mutation`` is set."""

    def __init__(self, upstream: str, sign: Callable[[Any], bytes] | None = None) -> None:
        self.upstream = upstream
        self.sign = sign
        self.mutation: Mutation | None = None
        self.answers = 0
        self._pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(10))

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in {"host", "content-length", "connection"}}
        upstream = self._pool.request(
            request.method, self.upstream + request.full_path.rstrip("?"),
            body=request.get_data(), headers=headers, redirect=False,
        )
        status, body = upstream.status, upstream.data
        ctype = upstream.headers.get("Content-Type", "")
        if self.mutation is not None:
            status, ctype, body = corrupt(self.mutation, status, ctype, body, self.sign)
            self.answers += 1
        response = Response(body, status=status)
        if ctype:
            response.headers["Content-Type"] = ctype
        else:
            response.headers.pop("Content-Type", None)
        return response(environ, start_response)

    def close(self) -> None:
        self._pool.clear()


# --- providers and their calls -----------------------------------------------------------


@attrs.frozen
class Target:
    """A provider, the request that creates a real job on its sandbox, and calls to fuzz."""

    provider: str
    sandbox: str
    request: Callable[[], JobRequest]
    operations: tuple[str, ...]


TARGETS = [
    Target("revai", "revai", lambda: JobRequest(
        provider="revai", media=RemoteUrl("https://media.voxhub.invalid/a.wav")),
        ("status", "fetch", "export")),
    Target("nhn", "nhn", lambda: JobRequest(
        provider="nhn", media=RemoteUrl("https://media.voxhub.invalid/a.mp3")),
        ("status", "fetch")),
    Target("agora-stt", "agora-stt", lambda: JobRequest(
        provider="agora-stt", media=RtcChannel("garbage-v7"),
        options={"languages": ["en-US"]}), ("status", "fetch", "close")),
    Target("agora-stt", "agora-stt", lambda: JobRequest(
        provider="agora-stt", media=RtcChannel("garbage-v6"),
        options={"languages": ["en-US"], "api_version": "v6"}), ("status", "fetch", "close")),
    Target("agora-transcoder", "agora-transcoder", lambda: JobRequest(
        provider="agora-transcoder", kind=JobKind.TRANSCODING, options={"config": {
            "idleTimeout": 300,
            "audioInputs": [{"rtc": {"rtcChannel": "show", "rtcUid": 1001}}],
            "outputs": [{"rtc": {"rtcChannel": "show-mixed", "rtcUid": 2002}}],
        }}), ("status", "fetch", "close")),
    Target("tupu", "tupu", lambda: JobRequest(
        provider="tupu", media=StreamUrl("rtmp://live.voxhub.invalid/app/1"),
        callback_url="http://127.0.0.1:9/callbacks", options={"callback_rules": "all"}),
        ("status", "close")),
]
# Not here: ``local`` (no vendor, nothing to parse) and the test-only ``echo`` plugin, whose
# deliberately minimal parser indexes answers directly (a test double, not a vendor).
_IDS = [
    f"{t.provider}-{t.request().options.get('api_version', 'default')}-{op}"
    for t in TARGETS for op in t.operations
]


@contextlib.contextmanager
def _through_proxy(
    target: Target, tmp_path: Path
) -> Iterator[tuple[Orchestrator, CorruptingProxy, JobHandle]]:
    plugins = PluginManager.load(env={})
    sandbox = plugins.sandboxes[target.sandbox].create()
    running: RunningSandbox = serve(sandbox)
    sign = getattr(sandbox, "sign", None) if target.provider == "tupu" else None
    proxy = CorruptingProxy(running.base_url, sign)
    try:
        with background_server(proxy) as proxy_url:
            settings_ = {**running.settings(), "base_url": proxy_url}
            orch = Orchestrator(store=tmp_path / "jobs.db", plugins=plugins, clock=FastClock(),
                                config=Config.from_profiles({target.provider: settings_}))
            try:
                handle = orch.submit(target.request())
                yield orch, proxy, handle
            finally:
                orch.close_resources()
    finally:
        proxy.close()
        running.stop()


@pytest.mark.parametrize(
    ("target", "operation"),
    [(t, op) for t in TARGETS for op in t.operations],
    ids=_IDS,
)
def test_garbage_answers_raise_voxhub_errors_naming_the_provider(
    target: Target, operation: str, tmp_path: Path
) -> None:
    with _through_proxy(target, tmp_path) as (orch, proxy, handle):
        time.sleep(0.05)  # let sandboxes that finish jobs on a timer get there
        ctx = orch.context(target.provider)
        hooks = orch.plugins.calls(target.provider)
        call: Callable[[], Any] = {
            "status": lambda: hooks.status(ctx, handle),
            "fetch": lambda: hooks.fetch(ctx, handle),
            "export": lambda: hooks.export(ctx, handle, "srt"),
            "close": lambda: hooks.close(ctx, handle),
        }[operation]
        expected_types: dict[str, Any] = {
            "status": JobStatus, "fetch": Result, "export": (str, type(None)),
            "close": (bool, type(None), list),
        }
        expected = expected_types[operation]
        with contextlib.suppress(VoxhubError):
            call()  # the untouched answer works (a vendor error is fine too: e.g. not ready)

        @settings(max_examples=40, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(mutation=MUTATIONS)
        def check(mutation: Mutation) -> None:
            proxy.mutation = mutation
            try:
                value = call()
            except VoxhubError as exc:
                assert exc.provider == target.provider, f"{exc!r} does not name the provider"
            else:
                assert isinstance(value, expected), f"{operation} returned {value!r}"
            finally:
                proxy.mutation = None

        check()
        assert proxy.answers > 0, "no corrupted answer was ever served"
