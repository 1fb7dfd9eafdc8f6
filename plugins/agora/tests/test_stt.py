"""agora-stt against its sandbox on a real socket: lifecycle, validation, duplicates.

Failures, back-off and exactly-once starts: ``test_stt_errors.py``."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from voxhub.errors import (
    InvalidInputError,
)
from voxhub.models import JobState
from voxhub.provider import Submitted
from voxhub.sandbox import RunningSandbox
from voxhub_agora.locks import StoreRegistry
from voxhub_agora.provider import BuilderToken
from voxhub_agora.sandbox_stt import AgoraSttSandbox
from voxhub_agora.stt import AgoraSttProvider, normalize_stt_status

VERSIONS = ("v7", "v6", "v5")
AUTHS = ("basic", "token")


@pytest.mark.parametrize("auth", AUTHS)
@pytest.mark.parametrize("version", VERSIONS)
def test_lifecycle(version: str, auth: str, stt: AgoraSttProvider, stt_sandbox: RunningSandbox,
                   make_ctx: Any, h: Any) -> None:
    ctx = make_ctx(stt, stt_sandbox, auth=auth)
    request = h.stt_request(f"room-{version}-{auth}", api_version=version,
                            languages=["en-US", "ja-JP"], translate={"en-US": ["fr-FR"]},
                            max_idle_time=60)
    submitted = stt.submit(ctx, request, h.handle_for(request))
    handle = submitted.handle
    if version == "v7":
        assert set(handle.vendor_ids) == {"agent_id"}
    else:
        # The pair query/update/stop need is kept on the handle.
        assert set(handle.vendor_ids) == {"task_id", "builder_token_name"}
    assert handle.vendor_state["api_version"] == version
    time.sleep(0.25)  # v7 agents go STARTING -> RUNNING after 0.2 s in the sandbox
    assert stt.status(ctx, handle).state is JobState.RUNNING

    updated = stt.update(ctx, handle, languages=["en-US"], subscribe_audio_uids=["42"],
                         translate=False)
    if version != "v7":
        assert updated.vendor_state["sequence_id"] == 1
        updated = stt.update(ctx, updated, translate={"en-US": ["de-DE"]})
        assert updated.vendor_state["sequence_id"] == 2
    sandbox = stt_sandbox.sandbox
    assert isinstance(sandbox, AgoraSttSandbox)
    task = next(iter(sandbox.tasks.values()))
    assert task.body["languages"] == ["en-US"]
    assert task.body["rtcConfig"]["subscribeAudioUids"] == ["42"]

    info = stt.fetch(ctx, updated)
    assert info.task_id == (handle.vendor_ids.get("agent_id") or handle.vendor_ids["task_id"])
    assert info.state is JobState.RUNNING and info.details["channel"] == f"room-{version}-{auth}"

    stt.close(ctx, updated)
    stt.close(ctx, updated)  # idempotent
    assert stt.status(ctx, updated).state is JobState.SUCCEEDED
    counters = sandbox.counters.snapshot()
    assert counters["tasks.created"] == 1 and counters["tasks.stopped"] == 1
    assert counters.get("rtc_tokens.invalid", 0) == 0  # the generated bot tokens verified
    assert counters.get("auth.refused", 0) == 0


@pytest.mark.parametrize(("options", "field", "needle"), [
    ({"max_idle_time": 4}, "max_idle_time", "5..2592000"),
    ({"max_idle_time": 2592001}, "max_idle_time", "5..2592000"),
    ({"languages": ["en-US", "ja-JP", "fr-FR"], "api_version": "v5"}, "languages", "1..2"),
    ({"languages": ["en-US"] * 5}, "languages", "at most 4"),
    ({"languages": ["english"]}, "languages", "language code"),
    ({"encryption_mode": 9}, "encryption_mode", "0..8"),
    ({"encryption_mode": 2}, "encryption_secret", "required when cryptionMode is 2"),
    ({"encryption_secret": "abcdefgh"}, "encryption_secret", "only used with cryptionMode"),
    ({"encryption_mode": 7, "encryption_secret": "k" * 16}, "encryption_salt", "required"),
    ({"encryption_mode": 8, "encryption_secret": "k" * 16, "encryption_salt": "c2FsdA=="},
     "encryption_salt", "exactly 32"),
    ({"encryption_mode": 1, "encryption_secret": "k" * 16, "encryption_salt": "A" * 44},
     "encryption_salt", "only used with cryptionMode 7 or 8"),
    ({"subscribe_audio_uids": ["1", "2"], "unsubscribe_audio_uids": ["3"]},
     "unsubscribe_audio_uids", "cannot be combined"),
    ({"subscribe_audio_uids": ["1", "2", "3", "4"], "api_version": "v5"},
     "subscribe_audio_uids", "1..3"),
    ({"subscribe_audio_uids": ["all", "1"]}, "subscribe_audio_uids", '"all" must be the only'),
    ({"subscribe_audio_uids": ["abc"]}, "subscribe_audio_uids", "numeric uid"),
    ({"unsubscribe_audio_uids": ["1"], "api_version": "v5"}, "unsubscribe_audio_uids",
     "not available in API v5"),
    ({"uid_languages": {"7": ["en-US"]}, "api_version": "v5"}, "uid_languages", "v6 and v7"),
    ({"uid_languages": {str(i): ["en-US"] for i in range(1, 7)}}, "uid_languages", "at most 5"),
    ({"uid_languages": {"7": ["en-US", "ja-JP", "fr-FR", "de-DE", "es-ES"]}}, "uid_languages",
     "1..4"),
    ({"sub_bot_uid": "0"}, "sub_bot_uid", "1..4294967295"),
    ({"sub_bot_uid": "77", "pub_bot_uid": "77"}, "pub_bot_uid", "must differ"),
    ({"translate": {"en-US": ["en-US"]}}, "translate", "must not contain the source"),
    ({"translate": {"en-US": ["a-b"]}}, "translate", "language code"),
    ({"translate": {"en-US": ["fr-FR", "de-DE", "es-ES", "it-IT", "ja-JP", "ko-KR"]}},
     "translate", "1..5"),
    ({"translate": {s: ["fr-FR"] for s in ("en-US", "ja-JP", "ko-KR")}, "api_version": "v5"},
     "translate", "1..2"),
    ({"force_translate_interval": 3}, "force_translate_interval", "only available in API v5"),
    ({"force_translate_interval": 6, "api_version": "v5"}, "force_translate_interval", "2..5"),
    ({"transfer_mode": ["RTC"], "api_version": "v6"}, "transfer_mode", "only available in API v5"),
    ({"transfer_mode": ["SMS"], "api_version": "v5"}, "transfer_mode", "RTC, RTM"),
    ({"caption_bucket": "b"}, "caption_access_key", "required"),
    ({"caption_bucket": "b", "caption_access_key": "ak", "caption_secret_key": "sk",
      "caption_vendor": 9, "caption_region": 0}, "caption_vendor", "1..8"),
    ({"caption_bucket": "b", "caption_access_key": "ak", "caption_secret_key": "sk",
      "caption_vendor": 1, "caption_region": 0, "caption_slice_duration": 4},
     "caption_slice_duration", "5..28800"),
    ({"caption_bucket": "b", "caption_access_key": "ak", "caption_secret_key": "sk",
      "caption_vendor": 1, "caption_region": 0, "caption_file_name_prefix": ["a/b"]},
     "caption_file_name_prefix", "letters and digits"),
    ({"caption_bucket": "b", "caption_access_key": "ak", "caption_secret_key": "sk",
      "caption_vendor": 1, "caption_region": 0, "caption_file_name_prefix": ["a" * 129]},
     "caption_file_name_prefix", "at most 128"),
    ({"instance_id": "has space"}, "instance_id", "a-z, A-Z"),
    ({"api_version": "v8"}, "api_version", "v7, v6, v5"),
    ({"bogus": 1}, "bogus", "unknown option"),
])
def test_invalid_start_refused_locally(options: dict[str, Any], field: str, needle: str,
                                       stt_sandbox: RunningSandbox, orchestrator: Any,
                                       h: Any) -> None:
    # The core's checks (option specs, then the provider's validate) run before any request.
    orch = orchestrator(stt_sandbox)
    with pytest.raises(InvalidInputError) as info:
        orch.submit(h.stt_request("room", **options))
    assert info.value.field == field, info.value
    assert needle in str(info.value)
    assert stt_sandbox.sandbox.counters.get("requests") == 0


def test_media_and_languages_are_required(stt: AgoraSttProvider, make_ctx: Any, h: Any,
                                          stt_sandbox: RunningSandbox) -> None:
    ctx = make_ctx(stt, stt_sandbox)
    request = h.stt_request("room")
    no_media = type(request)(provider="agora-stt", options={"languages": ["en-US"]})
    with pytest.raises(InvalidInputError, match="rtc:CHANNEL"):
        stt.validate(ctx, no_media)
    no_language = type(request)(provider="agora-stt", media=request.media)
    with pytest.raises(InvalidInputError, match="'languages' is required"):
        stt.validate(ctx, no_language)
    with_language = type(request)(provider="agora-stt", media=request.media, language="en-US")
    stt.validate(ctx, with_language)


def test_invalid_update_refused_locally(stt: AgoraSttProvider, stt_sandbox: RunningSandbox,
                                        make_ctx: Any, h: Any) -> None:
    ctx = make_ctx(stt, stt_sandbox)
    request = h.stt_request("room", api_version="v6")
    handle = stt.submit(ctx, request, h.handle_for(request)).handle
    before = stt_sandbox.sandbox.counters.get("requests")
    with pytest.raises(InvalidInputError, match=r"1\.\.2"):  # updates allow 2 sources
        stt.update(ctx, handle, translate={s: ["fr-FR"] for s in ("en-US", "ja-JP", "ko-KR")})
    with pytest.raises(InvalidInputError, match="names no field"):
        stt.update(ctx, handle)
    assert stt_sandbox.sandbox.counters.get("requests") == before


def _start_many(stt: AgoraSttProvider, make_ctx: Any, running: RunningSandbox, h: Any,
                channel: str, count: int, version: str) -> list[Submitted]:
    barrier = threading.Barrier(count)
    results: list[Submitted] = []
    errors: list[BaseException] = []

    def one(index: int) -> None:
        ctx = make_ctx(stt, running)
        # Different idempotency keys: two different apps enabling STT for one channel.
        request = h.stt_request(channel, key=f"app-{index}", api_version=version)
        barrier.wait()
        try:
            results.append(stt.submit(ctx, request, h.handle_for(request)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


@pytest.mark.parametrize("version", ["v7", "v6"])
def test_concurrent_starts_in_threads_create_one_task(version: str, stt: AgoraSttProvider,
                                                      stt_sandbox: RunningSandbox,
                                                      make_ctx: Any, h: Any) -> None:
    results = _start_many(stt, make_ctx, stt_sandbox, h, "busy", 6, version)
    sandbox = stt_sandbox.sandbox
    assert sandbox.counters.get("tasks.created") == 1
    assert len({tuple(sorted(r.handle.vendor_ids.items())) for r in results}) == 1
    assert sum(1 for r in results if r.handle.vendor_state.get("shared")) == 5
    # The task is stopped only when its last job is closed.
    ctx = make_ctx(stt, stt_sandbox)
    for submitted in results[:-1]:
        stt.close(ctx, submitted.handle)
    assert sandbox.counters.get("tasks.stopped") == 0
    stt.close(ctx, results[-1].handle)
    assert sandbox.counters.get("tasks.stopped") == 1
    # After that, a new start creates a new task.
    request = h.stt_request("busy", api_version=version)
    stt.submit(ctx, request, h.handle_for(request))
    assert sandbox.counters.get("tasks.created") == 2



@pytest.mark.parametrize("version", ["v7", "v6"])
def test_the_channel_locks_live_in_the_store_by_default(version: str, make_ctx: Any,
                                                        stt_sandbox: RunningSandbox,
                                                        tmp_path: Path, h: Any) -> None:
    stt = AgoraSttProvider()  # no lock_dir: the context's limits (here its limits.db)
    results = _start_many(stt, make_ctx, stt_sandbox, h, "store-room", 4, version)
    sandbox = stt_sandbox.sandbox
    assert sandbox.counters.get("tasks.created") == 1
    assert all(r.handle.vendor_state["locks"] == "store" for r in results)
    assert not list(tmp_path.rglob("agora-locks"))
    ctx = make_ctx(stt, stt_sandbox)
    record = StoreRegistry(ctx).read(stt._channel_key(ctx, "store-room"))
    assert record is not None and len(record["job_ids"]) == 4
    for submitted in results[:-1]:
        stt.close(ctx, submitted.handle)
    assert sandbox.counters.get("tasks.stopped") == 0
    stt.close(ctx, results[-1].handle)
    assert sandbox.counters.get("tasks.stopped") == 1


def test_a_job_started_with_file_locks_closes_through_them(make_ctx: Any, tmp_path: Path,
                                                           stt_sandbox: RunningSandbox,
                                                           h: Any) -> None:
    # Started by a voxhub that kept the locks as files beside the store: the handle names
    # no lock place, and its channel's record (two jobs) is in <state_dir>/agora-locks.
    ctx = make_ctx(AgoraSttProvider(), stt_sandbox)
    assert ctx.state_dir is not None
    earlier = AgoraSttProvider(lock_dir=ctx.state_dir)
    results = [earlier.submit(ctx, request, h.handle_for(request)) for request in (
        h.stt_request("old-room", key="a"), h.stt_request("old-room", key="b"))]
    assert stt_sandbox.sandbox.counters.get("tasks.created") == 1
    now = AgoraSttProvider()  # after the upgrade
    for submitted in results:
        assert not {"locks", "lock_dir"} & set(submitted.handle.vendor_state)
        now.close(ctx, submitted.handle)
        stopped = stt_sandbox.sandbox.counters.get("tasks.stopped")
        # The first close only lets go (the file record names the other job).
        assert stopped == (1 if submitted is results[-1] else 0)


@pytest.mark.parametrize("version", ["v7", "v5"])
def test_concurrent_starts_in_processes_create_one_task(version: str, tmp_path: Path,
                                                        stt_sandbox: RunningSandbox,
                                                        h: Any) -> None:
    store = tmp_path / "shared" / "jobs.db"
    # Two inputs for one channel, from two processes at the same instant.
    outputs = h.submit_in_processes(
        stt_sandbox, [(store, "shared-room", f"p{i}") for i in range(2)], version, lead=1.2)
    assert outputs[0] == outputs[1]
    assert stt_sandbox.sandbox.counters.get("tasks.created") == 1
    # A context built by hand keeps its locks in a limits file in its state_dir (under the
    # orchestrator: in the job store itself); no lock files.
    assert (store.parent / "limits.db").is_file()
    assert not (store.parent / "agora-locks").exists()


def test_same_input_started_twice_collides_at_agora(stt: AgoraSttProvider, make_ctx: Any,
                                                    stt_sandbox: RunningSandbox, h: Any) -> None:
    # Without the channel lock (dedupe off), the derived agent name still de-duplicates.
    ctx = make_ctx(stt, stt_sandbox)
    request = h.stt_request("same", key="one-input", dedupe_channel=False)
    first = stt.submit(ctx, request, h.handle_for(request))
    second = stt.submit(ctx, request, h.handle_for(request))
    assert first.handle.vendor_ids == second.handle.vendor_ids
    counters = stt_sandbox.sandbox.counters
    assert counters.get("tasks.created") == 1 and counters.get("tasks.repeated_start") == 1


def test_repeated_start_with_same_builder_token_finds_first_task(
        stt: AgoraSttProvider, make_ctx: Any, stt_sandbox: RunningSandbox, h: Any) -> None:
    ctx = make_ctx(stt, stt_sandbox)
    token = stt.acquire_builder_token(ctx, "inst-1", "same")
    request = h.stt_request("same", api_version="v6", dedupe_channel=False)
    first = stt.start_task(ctx, request, h.handle_for(request), builder_token=token)
    # A retry whose first answer was lost uses the same token: Agora names the first task.
    again = stt.start_task(ctx, request, h.handle_for(request), builder_token=token)
    assert first.handle.vendor_ids == again.handle.vendor_ids
    assert stt_sandbox.sandbox.counters.get("tasks.created") == 1


def test_expired_builder_token_is_reacquired(stt: AgoraSttProvider, make_ctx: Any,
                                             stt_sandbox: RunningSandbox, h: Any) -> None:
    running = stt_sandbox
    running.sandbox.builder_token_ttl = 0.2  # type: ignore[attr-defined]
    ctx = make_ctx(stt, running)
    token = stt.acquire_builder_token(ctx, "inst-1", "late")
    time.sleep(0.3)  # the server now refuses it ("resourceId reaches out ...")
    request = h.stt_request("late", api_version="v6")
    submitted = stt.start_task(ctx, request, h.handle_for(request), builder_token=token)
    assert submitted.handle.vendor_ids["builder_token_name"] != token.name
    counters = running.sandbox.counters
    assert counters.get("tokens.acquired") == 2 and counters.get("tasks.created") == 1


def test_old_builder_token_is_replaced_before_sending(stt: AgoraSttProvider, make_ctx: Any,
                                                      stt_sandbox: RunningSandbox,
                                                      h: Any) -> None:
    ctx = make_ctx(stt, stt_sandbox)
    fresh = stt.acquire_builder_token(ctx, "inst-1", "late")
    old = BuilderToken(fresh.name, fresh.instance_id, ctx.clock.monotonic() - 301)
    request = h.stt_request("late", api_version="v6")
    submitted = stt.start_task(ctx, request, h.handle_for(request), builder_token=old)
    assert submitted.handle.vendor_ids["builder_token_name"] != fresh.name
    assert stt_sandbox.sandbox.counters.get("POST /v1/projects/" + ctx.auth.app_id
                                            + "/rtsc/speech-to-text/tasks") == 1



def test_bad_bot_token_fails_the_task(stt: AgoraSttProvider, stt_sandbox: RunningSandbox,
                                      make_ctx: Any, h: Any) -> None:
    ctx = make_ctx(stt, stt_sandbox)
    request = h.stt_request("badbot", api_version="v6", sub_bot_token="007eJxnotatoken")
    handle = stt.submit(ctx, request, h.handle_for(request)).handle
    status = stt.status(ctx, handle)
    assert status.state is JobState.FAILED and status.vendor_state == "FAILURE_STOP"
    assert stt_sandbox.sandbox.counters.get("rtc_tokens.invalid") == 1


def test_task_that_ends_itself(stt: AgoraSttProvider, make_ctx: Any, h: Any,
                               stt_sandbox: RunningSandbox) -> None:
    running = stt_sandbox
    running.sandbox.task_lifetime = 0.2  # type: ignore[attr-defined]
    ctx = make_ctx(stt, running)
    for version in ("v7", "v6"):
        request = h.stt_request(f"idle-{version}", api_version=version)
        handle = stt.submit(ctx, request, h.handle_for(request)).handle
        time.sleep(0.25)
        assert stt.status(ctx, handle).state is JobState.SUCCEEDED
        stt.close(ctx, handle)  # closing an ended task is not an error


@pytest.mark.parametrize(("version", "vendor", "state"), [
    ("v6", "IDLE", JobState.QUEUED), ("v6", "PREPARING", JobState.QUEUED),
    ("v6", "PREPARED", JobState.QUEUED), ("v6", "STARTING", JobState.QUEUED),
    ("v6", "CREATED", JobState.QUEUED), ("v6", "STARTED", JobState.RUNNING),
    ("v6", "IN_PROGRESS", JobState.RUNNING), ("v6", "STOPPING", JobState.RUNNING),
    ("v6", "STOPPED", JobState.SUCCEEDED), ("v6", "FAILURE_STOP", JobState.FAILED),
    ("v7", "IDLE", JobState.QUEUED), ("v7", "STARTING", JobState.QUEUED),
    ("v7", "RUNNING", JobState.RUNNING), ("v7", "RECOVERING", JobState.RUNNING),
    ("v7", "STOPPING", JobState.RUNNING), ("v7", "STOPPED", JobState.SUCCEEDED),
    ("v7", "FAILED", JobState.FAILED), ("v7", "SOMETHING_NEW", JobState.RUNNING),
])
def test_status_strings_normalized(version: str, vendor: str, state: JobState) -> None:
    status = normalize_stt_status(version, vendor)
    assert status.state is state and status.vendor_state == vendor


def test_sandbox_refuses_bad_bodies_in_agora_shapes(stt_sandbox: RunningSandbox,
                                                    make_ctx: Any, stt: AgoraSttProvider) -> None:
    import urllib3

    ctx = make_ctx(stt, stt_sandbox)
    auth = ctx.auth.header(now=time.time())
    base = f"{stt_sandbox.base_url}/v1/projects/{ctx.auth.app_id}/rtsc/speech-to-text"
    pool = urllib3.PoolManager()
    token = json.loads(pool.request("POST", f"{base}/builderTokens",
                                    json={"instanceId": "raw"},
                                    headers={"Authorization": auth}).data)["tokenName"]
    answer = pool.request("POST", f"{base}/tasks?builderToken={token}",
                          json={"languages": ["en-US"], "maxIdleTime": 1,
                                "rtcConfig": {"channelName": "c", "subBotUid": "1",
                                              "pubBotUid": "2"}},
                          headers={"Authorization": auth})
    assert answer.status == 400
    body = json.loads(answer.data)
    assert body["code"] == 2 and "maxIdleTime" in body["reason"] and "5..2592000" in body["reason"]
    assert answer.headers.get("X-Request-ID")
    v7 = f"{stt_sandbox.base_url}/api/speech-to-text/v1/projects/{ctx.auth.app_id}/join"
    answer = pool.request("POST", v7, json={"languages": ["en-US"]},
                          headers={"Authorization": auth})
    assert answer.status == 400 and set(json.loads(answer.data)) == {"reason", "detail"}
    answer = pool.request("POST", f"{base}/builderTokens".replace(ctx.auth.app_id, "0" * 32),
                          json={"instanceId": "x"}, headers={"Authorization": auth})
    assert answer.status == 400 and json.loads(answer.data) == {"message": "invalid_appid!"}
