"""Hostile vendor answers (issue 16): every sandbox's scripted answers never end in a traceback.

Each case scripts one answer on a sandbox (``Sandbox.script``, what ``POST
/_sandbox/script`` queues), then submits a job and reads its status through a real
:class:`~voxhub.Orchestrator`. The outcome must be a job or a typed
:class:`~voxhub.errors.VoxhubError`; anything else (KeyError, TypeError,
RecursionError...) fails the test, and short client timeouts keep an in-doubt
outcome's recovery from waiting long. Tupu signs its answers, so its cases are
unsigned garbage, forged or malformed envelopes, and *validly signed* garbage
payloads (which get past verification to the provider's own reading).
"""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from voxhub import JobRequest, LocalFile, Orchestrator
from voxhub.clock import SystemClock
from voxhub.errors import PluginError, VoxhubError
from voxhub.models import JobKind, RtcChannel, StreamUrl
from voxhub.sandbox import RunningSandbox
from voxhub.store import Store

pytest.importorskip("voxhub_agora", reason="the fuzz suite drives the plugins' sandboxes")
from voxhub_agora.stt import AgoraSttProvider

#: Generated cases per provider (printed at the end of the run by this folder's conftest).
CASES: Counter[str] = Counter()
SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "samples" / "hello.wav"
EXAMPLES = 25
#: How the cases ended, per provider (for a reader debugging coverage).
OUTCOMES: defaultdict[str, Counter[str]] = defaultdict(Counter)

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                      st.text(max_size=20))
json_values = st.recursive(json_leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)),
    max_leaves=12)
huge = "x" * 5_000

#: Answers any vendor might send: wrong types, malformed JSON, huge fields, no envelope.
answer_bodies = st.one_of(
    json_values,
    st.sampled_from(["{not json", "", "null", "[]", '{"id": 123}', '{"id": NaN}', "\x00",
                     '{"a": 1, "a": 2}', "\ufeff{}"]),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.just({"id": huge, "status": "in_progress"}),
    st.just({"job": None}), st.just({"code": "0"}), st.just({"data": {"id": [1]}}),
)

#: Agora's envelopes (builder tokens, task ids, statuses) with each member wrong.
agora_bodies = st.one_of(
    st.fixed_dictionaries({}, optional={
        "tokenName": st.one_of(json_leaf, st.just(huge), st.just([1])),
        "createTs": json_leaf, "instanceId": json_leaf,
        "taskId": st.one_of(json_leaf, st.just(huge), st.just({"a": 1})),
        "agent_id": st.one_of(json_leaf, st.just(huge)),
        "status": st.one_of(json_leaf, st.sampled_from(["IN_PROGRESS", "STARTED", "??"])),
        "sequenceId": json_leaf, "message": json_leaf,
    }),
    st.just({"taskId": "t" * 300_000, "status": "IN_PROGRESS", "createTs": 1}),
)

#: Tupu payloads to be signed with the sandbox's key: codes, results and ids of every type.
tupu_payloads = st.one_of(
    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    st.fixed_dictionaries({"code": st.one_of(json_leaf, st.just([0]))}, optional={
        "message": json_leaf,
        "result": st.one_of(json_values, st.lists(st.fixed_dictionaries({}, optional={
            "requestId": st.one_of(json_leaf, st.just(huge), st.just("r" * 300_000),
                                   st.just({"a": 1}))}), max_size=2)),
    }),
)

#: Envelopes that must fail verification: unsigned, forged, or not the envelope's shape.
tupu_forged = st.sampled_from([
    {"json": '{"code":0,"result":[{"requestId":"r1"}]}', "signature": "AAAA"},
    {"json": '{"code":0,"result":[{"requestId":"r1"}]}', "signature": "not base64!"},
    {"json": {"code": 0}, "signature": "AAAA"},
    {"json": '{"code":0}', "signature": 5},
    {"json": '{"code":0}'},
    {"signature": "AAAA"},
    {"error": "gateway says no"},
    {"json": "[" * 3000 + "]" * 3000, "signature": "AAAA"},
])

#: What each provider submits, and the sandbox endpoints a scripted answer may target
#: (``None``: the first request of any kind).
REQUESTS: dict[str, Callable[[Path], JobRequest]] = {
    "revai": lambda _: JobRequest(provider="revai", media=LocalFile(SAMPLE)),
    "nhn": lambda _: JobRequest(provider="nhn", media=LocalFile(SAMPLE)),
    "tupu": lambda _: JobRequest(provider="tupu", media=StreamUrl("rtmp://live.example.com/a/9"),
                                 options={"tasks": ["transcription"], "room_id": "9"}),
    "agora-stt": lambda _: JobRequest(provider="agora-stt", media=RtcChannel("fuzz"),
                                      options={"languages": ["en-US"], "api_version": "v6"}),
    "agora-transcoder": lambda tmp: JobRequest(
        provider="agora-transcoder", kind=JobKind.TRANSCODING,
        options={"config_file": str(tmp / "mix.json")}),
}
TARGETS: dict[str, tuple[str | None, ...]] = {
    "revai": (None,),
    "nhn": (None,),
    "tupu": ("submit", "search"),
    "agora-stt": ("acquire", "start", "query"),
    "agora-transcoder": ("acquire", "create", "query"),
}
TRANSCODER_DOC = {
    "idleTimeout": 300,
    "audioInputs": [{"rtc": {"rtcChannel": "show", "rtcUid": 1001}}],
    "outputs": [{"rtc": {"rtcChannel": "show-mixed", "rtcUid": 2002},
                 "audioOption": {"profileType": "AUDIO_PROFILE_MUSIC_STANDARD"}}],
}


class FastClock(SystemClock):
    """Real time, but back-off sleeps are cut to a millisecond (retries stay, waiting does not)."""

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        return super().sleep(min(seconds, 0.001), wake)


def _bodies(provider: str, running: RunningSandbox) -> st.SearchStrategy[Any]:
    if provider == "tupu":
        sign: Callable[[Mapping[str, Any]], bytes] = running.sandbox.sign  # type: ignore[attr-defined]
        # Signed as the vendor would: these get past verification to the provider's reading.
        signed = tupu_payloads.map(lambda payload: json.loads(sign(payload)))
        return st.one_of(answer_bodies, tupu_forged, signed)
    if provider.startswith("agora"):
        return st.one_of(answer_bodies, agora_bodies)
    return answer_bodies


@pytest.mark.parametrize("provider", list(REQUESTS))
def test_any_vendor_answer_ends_in_a_typed_error_or_a_job(
    provider: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    voxhub_sandbox: Callable[..., RunningSandbox],
    voxhub_orchestrator: Callable[..., Orchestrator],
) -> None:
    # Agora's one-start-a-second pacing would turn 25 starts into 25 s.
    monkeypatch.setattr(AgoraSttProvider, "start_interval", 0.0)
    (tmp_path / "mix.json").write_text(json.dumps(TRANSCODER_DOC), encoding="utf-8")
    sandbox = voxhub_sandbox(provider)
    # Short timeouts: an in-doubt answer waits out connect + read before it is looked up again.
    orch = voxhub_orchestrator({provider: sandbox.settings()}, store=Store(tmp_path / "f.db"),
                               callback_url="http://127.0.0.1:9/hooks", clock=FastClock(),
                               connect_timeout=0.05, read_timeout=0.1)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(body=_bodies(provider, sandbox), status=st.sampled_from([200, 201, 400, 404, 422]),
           target=st.sampled_from(TARGETS[provider]))
    def one(body: Any, status: int, target: str | None) -> None:
        answer(body, status, target)

    def answer(body: Any, status: int, target: str | None) -> None:
        CASES[provider] += 1
        where = {"path": "/"} if target is None else {"endpoint": target}
        sandbox.sandbox.script(status=status, body=body, times=1, **where)
        request = REQUESTS[provider](tmp_path)
        try:
            handle = orch.submit(attrs.evolve(request, idempotency_key=f"k{CASES[provider]}"))
            orch.status(handle)
        except VoxhubError as exc:
            OUTCOMES[provider][type(exc).__name__] += 1
            # The core wraps a plugin's stray KeyError/TypeError in PluginError: that is
            # the traceback this suite hunts, so it fails here.
            assert not (isinstance(exc, PluginError) and exc.__cause__ is not None), exc
        else:
            OUTCOMES[provider]["job"] += 1
        finally:
            sandbox.sandbox.reset()  # an unused scripted answer must not leak into the next case

    one()
    # Chance may not pair the deepest nesting with every status and endpoint: do so here
    # (json.loads raises RecursionError, not ValueError, on these).
    for target in TARGETS[provider]:
        for status in (200, 400, 503):
            answer("[" * 3000 + "]" * 3000, status, target)
