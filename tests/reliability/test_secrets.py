"""Secrets: no credential, token, signature or private key ever shows, for any provider.

For every provider with credentials (``local`` has none), a whole job runs against
its sandbox with debug logging in JSON and in console format: submit, wait (Rev.ai
and Tupu through voxhub's callback receiver, with Rev.ai's webhook Authorization),
fetch, every export format, close — plus the errors a wrong credential and an
unknown job give. The secrets are the sandbox profile's secret settings, Tupu's
private key PEM (whole and line by line), Agora's certificate, a secret job option
(Agora's ``encryption_secret``) and whatever the client *built* from them and
sent: Authorization values (Basic pairs, AccessToken2 REST tokens, bearer tokens),
RTC bot tokens and Tupu request signatures, captured on the wire. None may appear
in the logs, the results and exports, error messages, or the job store's bytes;
nor in the output of one ``voxhub --log-level debug`` command per provider.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import attrs
import pytest
import structlog
from reliability_support import SAMPLE_WAV, background_server, cli_env, voxhub_cli
from voxhub import (
    Config,
    JobKind,
    JobRequest,
    LocalFile,
    Orchestrator,
    RemoteUrl,
    RtcChannel,
    StreamUrl,
    VoxhubError,
    WaitPolicy,
    configure_logging,
)
from voxhub.callbacks import CallbackHandler, wsgi_app
from voxhub.logging_setup import ensure_default_logging
from voxhub.plugins import PluginManager
from voxhub.redact import is_secret_key
from voxhub.sandbox import RunningSandbox, serve
from voxhub.transport import HttpClient, HttpRequest, Response, Urllib3Transport

FAST = WaitPolicy(first_poll=0.05, max_interval=0.2)
PROVIDERS = ["revai", "nhn", "agora-stt", "agora-transcoder", "tupu"]
WEBHOOK_AUTH = "Bearer revai-webhook-secret-7f3a9c"
ENCRYPTION_SECRET = "agora-channel-encryption-secret-51d2"
TRANSCODER_DOC: dict[str, Any] = {
    "idleTimeout": 300,
    "audioInputs": [{"rtc": {"rtcChannel": "show", "rtcUid": 1001}}],
    "outputs": [{"rtc": {"rtcChannel": "show-mixed", "rtcUid": 2002}}],
}


# --- what leaves the process ---------------------------------------------------------------


#: The per-job token at the end of a voxhub callback URL (``/callbacks/<provider>/<job>/``).
CALLBACK_TOKEN = re.compile(r"/callbacks/[^/\"]+/vx_\w+/([\w-]{16,})")


def _secret_strings(data: Any) -> Iterator[str]:
    """String values under secret-looking keys, anywhere in a JSON document."""
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and is_secret_key(str(key)):
                yield value
            else:
                yield from _secret_strings(value)
    elif isinstance(data, list):
        for item in data:
            yield from _secret_strings(item)


class _CapturingTransport(Urllib3Transport):
    """The real transport, writing down every credential it puts on the wire."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: set[str] = set()
        self.callback_tokens: set[str] = set()
        self._lock = threading.Lock()

    def handle(self, request: HttpRequest) -> Response:
        found: list[str] = []
        for name, value in request.headers.items():
            if is_secret_key(name):
                found.append(value)
                # "Basic <b64>", 'agora token="<token>"', "Bearer <token>": the credential.
                found.append(value.split(" ", 1)[-1].removeprefix('token="').strip('"'))
        if isinstance(request.body, bytes):
            with contextlib.suppress(ValueError):
                found.extend(_secret_strings(json.loads(request.body)))
            tokens = CALLBACK_TOKEN.findall(request.body.decode("utf-8", "replace"))
            found.extend(tokens)
            with self._lock:
                self.callback_tokens.update(tokens)
        with self._lock:
            self.sent.update(v for v in found if len(v) >= 8)
        return super().handle(request)


class CapturingHttp(HttpClient):
    """voxhub's client, recording every credential it puts on the wire (headers, bodies)."""

    def __init__(self) -> None:
        self._capture = _CapturingTransport()
        super().__init__(transport=self._capture)
        self.sent = self._capture.sent
        self.callback_tokens = self._capture.callback_tokens


# --- per-provider jobs ---------------------------------------------------------------------


@attrs.define
class Setup:
    server: RunningSandbox
    settings: dict[str, str]
    secrets: set[str]


def _sandbox(provider: str, tmp_path: Path) -> Setup:
    plugins = PluginManager.load(env={})
    options: dict[str, Any] = {
        "revai": {"processing_seconds": 0.1, "use_engine": False},
        "nhn": {"processing_seconds": 0.1, "use_engine": False},
        "agora-stt": {"task_lifetime": 0.4},
        "agora-transcoder": {},
        "tupu": {"slice_interval": 0.05, "end_callback_delay": 0.05},
    }[provider]
    server = serve(plugins.sandboxes[provider].create(**options))
    settings = dict(server.settings())
    info = plugins.provider(provider).info
    secret_fields = {f.name for f in info.credentials if f.secret}
    secrets = {v for k, v in settings.items() if k in secret_fields and len(v) >= 8}
    if provider == "revai":
        settings["webhook_authorization"] = WEBHOOK_AUTH
        secrets.add(WEBHOOK_AUTH)
    if provider == "agora-stt":
        settings["auth"] = "token"  # REST tokens built from the certificate, per request
        secrets.add(ENCRYPTION_SECRET)
    if provider == "tupu":
        pem = Path(settings["private_key"]).read_text()
        secrets.add(pem)
        secrets.update(line for line in pem.splitlines() if len(line) >= 16 and "-" not in line)
    return Setup(server, settings, secrets)


def _request(provider: str) -> JobRequest:
    return {
        "revai": JobRequest(provider="revai", media=RemoteUrl("https://media.voxhub.invalid/s.wav")),
        "nhn": JobRequest(provider="nhn", media=RemoteUrl("https://media.voxhub.invalid/s.mp3")),
        "agora-stt": JobRequest(provider="agora-stt", media=RtcChannel("secrets"), options={
            "languages": ["en-US"], "encryption_mode": 2,
            "encryption_secret": ENCRYPTION_SECRET}),
        "agora-transcoder": JobRequest(provider="agora-transcoder", kind=JobKind.TRANSCODING,
                                       options={"config": TRANSCODER_DOC}),
        "tupu": JobRequest(provider="tupu", media=StreamUrl("rtmp://live.voxhub.invalid/app/7"),
                           options={"callback_rules": "all+end"}),
    }[provider]


@contextlib.contextmanager
def _receiver(holder: dict[str, Orchestrator]) -> Iterator[str]:
    """voxhub's own callback receiver, writing into the orchestrator's store."""

    def app(environ: Any, start_response: Any) -> Any:
        return wsgi_app(CallbackHandler(holder["orch"]))(environ, start_response)

    with background_server(app) as url:
        yield url


def _full_job(orch: Orchestrator, provider: str) -> list[str]:
    """Submit, wait, fetch, export every format, close; returns what a user gets to see."""
    seen: list[str] = []
    requests = [_request(provider)]
    if provider == "nhn":
        requests.append(JobRequest(provider="nhn", media=LocalFile(SAMPLE_WAV)))  # sync API
    for request in requests:
        handle = orch.submit(request)
        if provider == "agora-transcoder":
            # A transcoder runs until stopped: read it while it runs, then close it.
            seen.append(repr(orch.status(handle)))
            ctx = orch.context(provider)
            seen.append(repr(orch.plugins.calls(provider).fetch(ctx, handle)))
        else:
            orch.wait(handle, timeout=20, policy=FAST)
            seen.append(repr(orch.fetch(handle)))
        for fmt in ("json", "txt", "srt", "vtt"):
            with contextlib.suppress(VoxhubError):  # task-like results have no captions
                seen.append(orch.export(handle, fmt))
        seen.append(repr(orch.record(handle)))
        orch.close(handle)
    return seen


def _errors(orch: Orchestrator, setup: Setup, provider: str, tmp_path: Path) -> list[str]:
    """The messages of the errors a wrong credential and an unknown job produce."""
    messages: list[str] = []
    wrong = {k: ("wrong-" + v if k in {"token", "uak_token", "customer_secret", "secret_id"}
                 else v) for k, v in setup.settings.items()}
    other = Orchestrator(store=tmp_path / "errors.db", config=Config.from_profiles(
        {provider: wrong}), plugins=orch.plugins)
    try:
        for action in (lambda: other.submit(_request(provider)),
                       lambda: orch.status("vx_00000000000000000000")):
            try:
                action()
            except (VoxhubError, KeyError) as exc:
                messages += [str(exc), repr(exc), json.dumps(getattr(exc, "details", {}),
                                                             default=str)]
    finally:
        other.close_resources()
    return messages


def _leaks(secrets: set[str], **texts: str | bytes) -> list[str]:
    found = []
    for secret in secrets:
        forms = {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}
        for where, text in texts.items():
            data = text.encode() if isinstance(text, str) else text
            if any(form.encode() in data for form in forms):
                found.append(f"{secret[:6]}... in {where}")
    return found


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_secret_in_logs_results_errors_or_store(
    provider: str, fmt: str, tmp_path: Path
) -> None:
    setup = _sandbox(provider, tmp_path)
    logs = io.StringIO()
    holder: dict[str, Orchestrator] = {}
    configure_logging("debug", fmt, stream=logs)
    try:
        with _receiver(holder) as receiver:
            http = CapturingHttp()
            orch = Orchestrator(store=tmp_path / "jobs.db", plugins=PluginManager.load(env={}),
                                config=Config.from_profiles({provider: setup.settings}),
                                http=http, callback_url=receiver)
            holder["orch"] = orch
            try:
                shown = _full_job(orch, provider)
                shown += _errors(orch, setup, provider, tmp_path)
            finally:
                orch.close_resources()
    finally:
        structlog.reset_defaults()
        ensure_default_logging()
        setup.server.stop()

    secrets = setup.secrets | http.sent
    assert http.sent, "no credential was captured on the wire"
    if provider in ("revai", "tupu"):
        assert http.callback_tokens, "no callback URL was sent"
    if provider == "tupu":
        assert any(len(s) > 100 for s in http.sent), "no request signature captured"
    assert logs.getvalue(), "debug logging produced nothing"
    store = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("*.db*")))
    assert _leaks(secrets, logs=logs.getvalue(), results="\n".join(shown), store=store) == []


# --- the CLI -----------------------------------------------------------------------------


def _cli_argv(provider: str, tmp_path: Path) -> list[str]:
    if provider in ("revai", "nhn"):
        url = f"https://media.voxhub.invalid/cli.{'wav' if provider == 'revai' else 'mp3'}"
        return ["transcribe", url, "-p", provider, "-f", "json"]
    if provider == "agora-stt":
        return ["submit", "rtc:cli-secrets", "-p", provider, "--option", "languages=en-US"]
    if provider == "agora-transcoder":
        path = tmp_path / "mix.json"
        path.write_text(json.dumps(TRANSCODER_DOC))
        return ["submit", "-p", provider, "--config", str(path)]
    return ["moderate", "rtmp://live.voxhub.invalid/app/cli", "-p", provider]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_secret_in_debug_cli_output(provider: str, tmp_path: Path) -> None:
    setup = _sandbox(provider, tmp_path)
    prefix = f"VOXHUB_{provider.upper().replace('-', '_')}_"
    extra = {prefix + k.upper(): v for k, v in setup.settings.items()}
    if provider == "tupu":
        # Callbacks go nowhere here: this checks what the CLI itself prints.
        extra["VOXHUB_CALLBACK_URL"] = "http://127.0.0.1:9"
    env = cli_env(tmp_path, VOXHUB_STORE=str(tmp_path / "cli.db"), **extra)
    base = [*voxhub_cli(), "--log-level", "debug"]
    outputs: list[str] = []
    try:
        for argv in (
            [*base, "--log-format", "json", *_cli_argv(provider, tmp_path)],
            [*base, "jobs", "--json"],
        ):
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr[-2000:]
            outputs += [done.stdout, done.stderr]
        job = json.loads(outputs[2])[0]["job_id"]
        done = subprocess.run([*base, "jobs", "show", job], env=env, capture_output=True,
                              text=True, timeout=60, check=True)
        outputs += [done.stdout, done.stderr]
    finally:
        setup.server.stop()
    assert "debug" in outputs[1].lower(), "the CLI logged nothing at debug level"
    store = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("cli.db*")))
    assert _leaks(setup.secrets, output="\n".join(outputs), store=store) == []


def test_callback_receiver_never_prints_callback_tokens(
    tmp_path: Path, store_at: Path | str
) -> None:
    """``voxhub callbacks serve`` (debug logs) receiving Rev.ai's webhook for a CLI job,
    on each store backend (a PostgreSQL URL's password is a secret too)."""
    setup = _sandbox("revai", tmp_path)
    if isinstance(store_at, str):
        setup.secrets.add(urlsplit(store_at).password or "")
    env = cli_env(tmp_path, VOXHUB_STORE=str(store_at),
                  VOXHUB_REVAI_BASE_URL=setup.settings["base_url"],
                  VOXHUB_REVAI_TOKEN=setup.settings["token"])
    receiver = subprocess.Popen(
        [*voxhub_cli(), "--log-level", "debug", "callbacks", "serve", "--port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        env["VOXHUB_CALLBACK_URL"] = json.loads(receiver.stdout.readline())["listening"]
        done = subprocess.run([*voxhub_cli(), "--log-level", "debug", "transcribe",
                               "https://media.voxhub.invalid/cb.wav", "-p", "revai",
                               "--callback"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        receiver.terminate()
        out, err = receiver.communicate(timeout=20)
        setup.server.stop()
    assert setup.server.sandbox.counters.get("callbacks.delivered") >= 1
    assert "callback.recorded" in err, "the receiver logged nothing about the webhook"
    text = out + err + done.stdout + done.stderr
    assert not CALLBACK_TOKEN.search(text), "a callback token leaked"
    assert _leaks(setup.secrets, output=text) == []


def test_config_show_masks_every_secret_a_provider_declares(tmp_path: Path) -> None:
    plugins = PluginManager.load(env={})
    env_values: dict[str, str] = {}
    lines: list[str] = []
    for name, entry in sorted(plugins.providers.items()):
        secret_fields = [f.name for f in entry.info.credentials if f.secret]
        if secret_fields:
            lines.append(f"[{name}]")
        for field in secret_fields:
            # One value in the config file, another in the environment: both must be masked.
            lines.append(f'{field} = "file-{name}-{field}-0123456789"')
            env_values[f"VOXHUB_{name.upper().replace('-', '_')}_{field.upper()}"] = (
                f"env-{name}-{field}-0123456789")
    config = tmp_path / "config.toml"
    config.write_text("\n".join(lines) + "\n")
    shown = subprocess.run([*voxhub_cli(), "--config", str(config), "config", "show"],
                           env=cli_env(tmp_path, **env_values), capture_output=True, text=True,
                           timeout=60, check=True).stdout
    leaked = sorted(line.strip() for line in shown.splitlines() if "0123456789" in line)
    assert leaked == []
