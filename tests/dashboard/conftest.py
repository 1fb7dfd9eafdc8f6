"""The dashboard's test world: a store filled by real sandbox runs, two real
``voxhub dashboard`` processes over it (read-only, and with actions), and Debian's
Chromium driven by Playwright.

There is a world on each store backend: a SQLite file, and a database on the session's
throwaway PostgreSQL server (its processes get the URL and the key file in their
environment, as an operator's would). A test runs on SQLite; one marked
``@pytest.mark.both_stores`` runs on both (``store_kind`` says which). Each world is
built once per session, on first use (the browser tests stay well under a minute):

* ``nightly`` (echo): four inputs done, two failed by the provider, one failed its
  check (a missing file);
* ``review`` (revai): ``docs/samples/hello.wav`` (real speech, with its text as the
  sandbox's sidecar), two speakers; and a URL whose query and auth header carry secrets;
* a job of ``echo-keyed`` (echo with an option the provider declares secret);
* ``live`` and ``to-resume`` (echo): recorded, not run; the tests run them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import urllib3
from voxhub import JobRequest, LocalFile, Orchestrator, RemoteUrl
from voxhub.batches import BatchSettings
from voxhub.clock import FakeClock
from voxhub.config import Config
from voxhub.pg_server import PostgresServer
from voxhub.plugin import OptionSpec, hookimpl
from voxhub.plugins import PluginManager
from voxhub.sandbox import RunningSandbox, serve
from voxhub_echo.provider import EchoProvider
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "docs" / "samples" / "hello.wav"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
POOL = urllib3.PoolManager()
VOXHUB = str(Path(sys.executable).with_name("voxhub"))

#: Values that must never appear in a page, an API answer or an export.
URL_SIGNATURE = "sig-SECRET-5b1f0c9e7d"
URL_CREDENTIAL = "cred-SECRET-77aa01"
MEDIA_KEY = "media-SECRET-31337"
OPTION_SECRET = "vocab-SECRET-4242abcd"
ECHO_API_KEY = "echo-test-key-0123456789"
REVAI_TOKEN = "revai-sandbox-token"
SECRETS = (URL_SIGNATURE, URL_CREDENTIAL, MEDIA_KEY, OPTION_SECRET, ECHO_API_KEY, REVAI_TOKEN)

#: The store backends a ``both_stores`` test runs on.
STORES = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_stores: run this dashboard test on a SQLite and a PostgreSQL store"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_stores"):
        metafunc.parametrize("store_kind", STORES)


@pytest.fixture
def store_kind() -> str:
    """The store backend of this test's world (``both_stores`` tests get each in turn)."""
    return "sqlite"


class KeyedEcho(EchoProvider):
    """Echo with ``vocabulary_key``: an option whose name looks harmless, declared secret."""

    info = attrs.evolve(
        EchoProvider.info,
        name="echo-keyed",
        options=(
            *EchoProvider.info.options,
            OptionSpec("vocabulary_key", str, "A key for a vocabulary service.", secret=True),
        ),
    )


class KeyedPlugin:
    @hookimpl
    def register_providers(self) -> list[EchoProvider]:
        return [KeyedEcho()]


def write_wav(path: Path, seconds: float = 1.0, rate: int = 8000) -> Path:
    """A real (silent) mono 16-bit WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(rate * seconds))
    return path


@attrs.define
class Dashboard:
    """A running ``voxhub dashboard`` process."""

    proc: subprocess.Popen[str]
    url: str
    token: str | None
    lines: list[str]

    def get(self, path: str, **headers: str) -> urllib3.BaseHTTPResponse:
        return POOL.request("GET", self.url + path.lstrip("/"), headers=headers,
                            redirect=False, retries=False)  # fmt: skip

    def post(
        self, path: str, fields: dict[str, str] | None = None, **headers: str
    ) -> urllib3.BaseHTTPResponse:
        return POOL.request("POST", self.url + path.lstrip("/"), fields=fields or {},
                            encode_multipart=False, headers=headers, redirect=False,
                            retries=False)  # fmt: skip

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def start_dashboard(world: World, *args: str, store_option: bool = False) -> Dashboard:
    """``voxhub --config C dashboard --port 0 ARGS`` on the world's store (``$VOXHUB_STORE``,
    or the dashboard's own ``--store`` with ``store_option``), once its URL is printed."""
    store = ["--store", world.store] if store_option else []
    proc = subprocess.Popen(
        [VOXHUB, "--config", str(world.config), "dashboard", *store, "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=world.process_env(),
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    url = token = None
    timer = threading.Timer(30, proc.kill)  # never hang the suite on a dashboard that fails
    timer.start()
    try:
        for line in proc.stdout:
            lines.append(line)
            found = re.search(r"voxhub dashboard on (http://\S+/)", line)
            if found:
                url = found.group(1)
            tok = re.search(r"with the token (\S+)", line)
            if tok:
                token = tok.group(1)
            if url and ("read-only" in line or token):
                break
    finally:
        timer.cancel()
    assert url, "".join(lines)
    return Dashboard(proc=proc, url=url, token=token, lines=lines)


@attrs.define
class World:
    """A store filled by real runs (on ``kind``), and what its processes need."""

    kind: str
    root: Path
    #: The SQLite file, or the PostgreSQL URL (password included: never print it).
    store: str
    config: Path
    media: Path
    orch: Orchestrator
    echo: RunningSandbox
    revai: RunningSandbox
    #: What every process on this store needs in its environment.
    store_env: dict[str, str]
    #: Values that must show nowhere (the database's password too, on PostgreSQL).
    secrets: tuple[str, ...] = SECRETS
    batches: dict[str, str] = attrs.Factory(dict)
    jobs: dict[str, str] = attrs.Factory(dict)

    def process_env(self) -> dict[str, str]:
        """The environment of a ``voxhub`` process on this store: none of the test run's
        own ``VOXHUB_*`` variables, the world's XDG folders, the store and its key."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOXHUB_")}
        env["XDG_CONFIG_HOME"] = str(self.root / "xdg-config")
        env["XDG_DATA_HOME"] = str(self.root / "xdg-data")
        return {**env, **self.store_env}


class _Quiet(WSGIRequestHandler):
    """No access log: the signed URLs it serves must not reach the test log either."""

    def log_request(self, *args: Any) -> None:
        pass


def _media_server(media: Path) -> tuple[str, Callable[[], None]]:
    """Serves ``media`` files to whoever sends ``Authorization: Bearer MEDIA_KEY``."""

    def app(environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        if request.headers.get("Authorization") != f"Bearer {MEDIA_KEY}":
            return Response("no", status=401)(environ, start_response)
        target = media / request.path.lstrip("/")
        if request.query_string.endswith(b".txt"):
            # Rev's sandbox asks for ``URL + ".txt"``: its sidecar text, after the query.
            target = Path(f"{target}.txt")
        if not target.is_file():
            return Response("not found", status=404)(environ, start_response)
        return Response(target.read_bytes(), mimetype="audio/wav")(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_port}", stop


def _toml(profiles: dict[str, dict[str, str]]) -> str:
    out = []
    for name, settings in profiles.items():
        out.append(f"[{name}]")
        out += [f"{k} = {json.dumps(str(v))}" for k, v in settings.items()]
    return "\n".join(out) + "\n"


def _world(
    root: Path, kind: str, store: str, voxhub_plugins: PluginManager, secrets: tuple[str, ...]
) -> Iterator[World]:
    store_env = {"VOXHUB_STORE": store}
    if kind == "postgresql":
        # The key that seals the store's secrets, shared by every process on the store.
        store_env["VOXHUB_STORE_KEY_FILE"] = str(root / "store.key")
    media = root / "media"
    media.mkdir()
    hello = media / "hello.wav"
    shutil.copyfile(SAMPLE, hello)
    spoken = (ROOT / "docs" / "samples" / "hello.txt").read_text(encoding="utf-8").strip()
    Path(f"{hello}.txt").write_text(spoken, encoding="utf-8")
    echo = serve(voxhub_plugins.sandboxes["echo"].create())
    revai = serve(voxhub_plugins.sandboxes["revai"].create(
        processing_seconds=0, use_engine=False, sidecar_dirs=[media]))  # fmt: skip
    media_url, stop_media = _media_server(media)
    profiles = {
        "echo": {"provider": "echo", **echo.settings()},
        "echo-keyed": {"provider": "echo-keyed", **echo.settings()},
        "revai": {"provider": "revai", **revai.settings()},
    }
    config = root / "config.toml"
    # The dashboard's own process loads no test plugin: echo-keyed is read, never run.
    config.write_text(_toml({k: v for k, v in profiles.items() if k != "echo-keyed"}))
    plugins = PluginManager.load(env={}, extra=[("keyed", KeyedPlugin())])
    with pytest.MonkeyPatch.context() as env:
        # The key file is read when the store opens and on its first record (then kept):
        # both here, while this process has the variables its dashboards will have.
        for name, value in store_env.items():
            env.setenv(name, value)
        orch = Orchestrator(store=store, config=Config.from_profiles(profiles),
                            plugins=plugins, clock=FakeClock())  # fmt: skip
        orch.store.callback_key()
    w = World(kind=kind, root=root, store=store, config=config, media=media, orch=orch,
              echo=echo, revai=revai, store_env=store_env, secrets=secrets)  # fmt: skip

    files = [write_wav(media / f"call-{i}.wav") for i in range(6)]
    nightly = [JobRequest(provider="echo", media=LocalFile(p)) for p in files[:4]]
    nightly += [JobRequest(provider="echo", media=LocalFile(p), options={"fail": True})
                for p in files[4:]]  # fmt: skip
    nightly.append(JobRequest(provider="echo", media=LocalFile(media / "missing.wav")))
    run = orch.run_many(nightly, batch="nightly", concurrency=3)
    list(run)
    w.batches["nightly"] = run.batch_id

    review = [
        JobRequest(provider="revai", media=LocalFile(hello), options={"speakers_count": 2}),
        JobRequest(
            provider="revai",
            media=RemoteUrl(
                f"{media_url}/hello.wav?X-Amz-Signature={URL_SIGNATURE}"
                f"&X-Amz-Credential={URL_CREDENTIAL}&part=1",
                auth_headers={"Authorization": f"Bearer {MEDIA_KEY}"},
            ),
        ),
    ]
    run = orch.run_many(review, batch="review", concurrency=2)
    outcomes = sorted(run, key=lambda o: o.seq or 0)
    assert all(o.ok for o in outcomes), [str(o.error) for o in outcomes]
    w.batches["review"] = run.batch_id
    w.jobs["transcript"] = outcomes[0].handle.job_id  # type: ignore[union-attr]
    w.jobs["secret_url"] = outcomes[1].handle.job_id  # type: ignore[union-attr]

    keyed = orch.run(JobRequest(provider="echo-keyed", media=LocalFile(files[0]),
                                options={"vocabulary_key": OPTION_SECRET, "speed": 3}))  # fmt: skip
    w.jobs["keyed"] = keyed.handle.job_id  # type: ignore[union-attr]
    closable = orch.run(JobRequest(provider="echo", media=RemoteUrl("http://media.example/c.wav")))
    w.jobs["closable"] = closable.handle.job_id  # type: ignore[union-attr]

    live = [JobRequest(provider="echo", media=RemoteUrl(f"http://media.example/live-{i}.wav"))
            for i in range(60)]  # fmt: skip
    w.batches["live"] = orch.record_batch(
        live, settings=BatchSettings(name="live", concurrency=6)).batch_id  # fmt: skip
    resume = [JobRequest(provider="echo", media=RemoteUrl(f"http://media.example/r-{i}.wav"))
              for i in range(3)]  # fmt: skip
    w.batches["to-resume"] = orch.record_batch(
        resume, settings=BatchSettings(name="to-resume")).batch_id  # fmt: skip
    try:
        yield w
    finally:
        orch.close_resources()
        stop_media()
        echo.stop()
        revai.stop()


@pytest.fixture(scope="session")
def sqlite_world(
    tmp_path_factory: pytest.TempPathFactory, voxhub_plugins: PluginManager
) -> Iterator[World]:
    root = tmp_path_factory.mktemp("dashboard")
    yield from _world(root, "sqlite", str(root / "jobs.db"), voxhub_plugins, SECRETS)


@pytest.fixture(scope="session")
def postgresql_world(
    tmp_path_factory: pytest.TempPathFactory,
    voxhub_plugins: PluginManager,
    voxhub_postgres: PostgresServer,
) -> Iterator[World]:
    root = tmp_path_factory.mktemp("dashboard-pg")
    url = voxhub_postgres.new_database()
    try:
        secrets = (*SECRETS, voxhub_postgres.password)
        yield from _world(root, "postgresql", url, voxhub_plugins, secrets)
    finally:
        voxhub_postgres.drop_database(url)


@pytest.fixture
def world(store_kind: str, request: pytest.FixtureRequest) -> World:
    """This test's world, on its store backend."""
    found: World = request.getfixturevalue(f"{store_kind}_world")
    return found


def _serving(world: World, *args: str) -> Iterator[Dashboard]:
    running = start_dashboard(world, *args)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def sqlite_dashboard(sqlite_world: World) -> Iterator[Dashboard]:
    yield from _serving(sqlite_world)


@pytest.fixture(scope="session")
def postgresql_dashboard(postgresql_world: World) -> Iterator[Dashboard]:
    yield from _serving(postgresql_world)


@pytest.fixture(scope="session")
def sqlite_acting(sqlite_world: World) -> Iterator[Dashboard]:
    yield from _serving(sqlite_world, "--allow-actions")


@pytest.fixture(scope="session")
def postgresql_acting(postgresql_world: World) -> Iterator[Dashboard]:
    yield from _serving(postgresql_world, "--allow-actions")


@pytest.fixture
def dashboard(store_kind: str, request: pytest.FixtureRequest) -> Dashboard:
    """The read-only dashboard on this test's world."""
    found: Dashboard = request.getfixturevalue(f"{store_kind}_dashboard")
    return found


@pytest.fixture
def acting(store_kind: str, request: pytest.FixtureRequest) -> Dashboard:
    """A dashboard started with ``--allow-actions`` on this test's world."""
    found: Dashboard = request.getfixturevalue(f"{store_kind}_acting")
    assert found.token
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    context.close()


@pytest.fixture
def shots(store_kind: str) -> Path:
    """Where screenshots go: ``$TMPDIR/voxhub-dashboard`` (CI keeps it as an artefact),
    those of the PostgreSQL world in its ``postgresql`` folder."""
    folder = Path(tempfile.gettempdir()) / "voxhub-dashboard"
    if store_kind != "sqlite":
        folder /= store_kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def assert_no_secret(text: str, where: str, secrets: tuple[str, ...] = SECRETS) -> None:
    for secret in secrets:
        assert secret not in text, f"a secret shows in {where}"


@pytest.fixture(scope="session")
def kit() -> Any:
    """This module's helpers, for test modules (importlib mode cannot import a conftest)."""
    import types

    return types.SimpleNamespace(
        SECRETS=SECRETS, assert_no_secret=assert_no_secret, start_dashboard=start_dashboard,
        write_wav=write_wav,
    )  # fmt: skip
