"""Limits kept in the job store hold across threads, processes and machines (issue 13.3).

"Machines" are processes that share nothing but the store: each has its own data folder
(``XDG_DATA_HOME``, so its own ``state_dir``) and the store's key file, as on real
machines. Nothing here asserts how long something took: rates are checked on the times
the store reserved, turns on when the vendor's emulator saw the starts.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from voxhub import Orchestrator
from voxhub._database import open_database, store_target
from voxhub.config import Config
from voxhub.errors import (
    ConfigurationError,
    InvalidInputError,
    ProviderUnavailableError,
    RateLimitedError,
)
from voxhub.models import JobKind, JobRequest, RemoteUrl
from voxhub.plugin import Limit, hookimpl
from voxhub.plugins import PluginManager
from voxhub.policies import deadline_scope
from voxhub.redact import register_secret
from voxhub.sandbox import RunningSandbox, serve
from voxhub.shared_limits import SharedLimits
from voxhub.store import SCHEMA_VERSION, Store
from voxhub_echo.provider import EchoProvider

# A worker process: reserves ``n`` events of one rate, prints the store's times for them.
_RESERVE = r"""
import json, os, sys
from voxhub._database import open_database, store_target
from voxhub.shared_limits import SharedLimits
args = json.loads(sys.argv[1])
limits = SharedLimits(open_database(store_target(os.environ["LIMITS_STORE"])))
print(json.dumps([limits.reserve(args["key"], count=args["count"], per=args["per"],
                                 burst=args["burst"]) for _ in range(args["n"])]))
"""

# A "machine": its own orchestrator (own data folder) on the shared store, starting one
# Agora STT task at an agreed instant.
_START = r"""
import json, os, sys, time
from voxhub import Orchestrator
from voxhub.config import Config
from voxhub.models import JobKind, JobRequest, RtcChannel
args = json.loads(sys.argv[1])
orch = Orchestrator(store=os.environ["LIMITS_STORE"],
                    config=Config.from_profiles({"agora-stt": args["settings"]}))
request = JobRequest(provider="agora-stt", media=RtcChannel(args["channel"]),
                     kind=JobKind.CHANNEL_TRANSCRIPTION,
                     options={"languages": ["en-US"], "api_version": "v7"},
                     idempotency_key=args.get("key"))
time.sleep(max(0.0, args["at"] - time.time()))
print(json.dumps(orch.submit(request).vendor_ids))
"""


def _run_workers(script: str, args: list[dict[str, Any]], env: list[dict[str, str]]) -> list[Any]:
    procs = [
        subprocess.Popen([sys.executable, "-c", script, json.dumps(a)],
                         env={**os.environ, **e}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for a, e in zip(args, env, strict=True)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    return outputs


def _limits_rows(store_at: Path | str) -> list[tuple[str, float, str]]:
    db = open_database(store_target(store_at))
    try:
        rows = db.reader().execute("SELECT key, next_at, holders FROM limits ORDER BY key")
        return [(str(r[0]), float(r[1]), str(r[2])) for r in rows]
    finally:
        db.close()


def test_migrations_6_and_7_add_the_limits_table_and_lock_records(store_at: Path | str) -> None:
    store = Store(store_at)
    assert store.schema_version == SCHEMA_VERSION == 7
    store.close()
    assert _limits_rows(store_at) == []
    db = open_database(store_target(store_at))
    try:
        assert db.reader().execute("SELECT record FROM limits").fetchall() == []
    finally:
        db.close()


def test_a_rate_holds_across_processes(store_at: Path | str) -> None:
    Store(store_at).close()  # the schema, as the first worker of a store would make it
    count, per, burst = 10, 1.0, 3
    args = {"key": "test:acct:submit", "count": count, "per": per, "burst": burst, "n": 15}
    times = sorted(itertools.chain.from_iterable(
        _run_workers(_RESERVE, [args] * 4, [{"LIMITS_STORE": str(store_at)}] * 4)))
    assert len(times) == 60
    # At most `count` events in any `per` seconds, whichever process reserved them...
    windows = [b - a for a, b in zip(times, times[count:], strict=False)]
    assert min(windows) >= per - 1e-6, min(windows)
    # ...and the limit is used, not just respected: `count` fit in less than `per`.
    assert min(b - a for a, b in zip(times, times[count - 1:], strict=False)) < per
    [(key, next_at, holders)] = _limits_rows(store_at)
    assert key == "test:acct:submit" and holders == "{}" and next_at > times[-1]


def _start_on_machines(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch,
                       starts: list[dict[str, str]]) -> tuple[list[Any], Any]:
    """Each of ``starts`` (a channel, maybe a key) from its own "machine" on the store,
    all at the same instant; each machine's vendor ids, and the STT emulator."""
    from voxhub_agora.sandbox_stt import AgoraSttSandbox

    # Every machine of a store has the store's key file (copied there); nothing else.
    key_file = tmp_path / "store.key"
    monkeypatch.setenv("VOXHUB_STORE_KEY_FILE", str(key_file))
    Store(store_url).close()
    running = serve(AgoraSttSandbox())
    try:
        start_at = time.time() + 2.0  # every worker imported voxhub by then
        args = [{"settings": running.settings(), "at": start_at, **start} for start in starts]
        env = [{"LIMITS_STORE": store_url, "XDG_DATA_HOME": str(tmp_path / f"m{i}"),
                "VOXHUB_STORE_KEY_FILE": str(key_file)} for i in range(len(starts))]
        return _run_workers(_START, args, env), running.sandbox
    finally:
        running.stop()


def test_one_start_a_second_per_app_id_across_machines(
    tmp_path: Path, voxhub_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids, sandbox = _start_on_machines(tmp_path, voxhub_postgres_url, monkeypatch,
                                      [{"channel": f"room-{i}"} for i in range(3)])
    times = sorted(sandbox.start_times)
    assert len({json.dumps(i, sort_keys=True) for i in ids}) == 3 and len(times) == 3
    # Each start is sent a second after the previous one's answer: >= 1 s apart as the
    # vendor saw them (a few ms for the processes' clocks).
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.995, gaps
    # Three data folders, one turn: kept in the store under the App ID, not in any folder
    # (beside it, each channel's lock: three of them, all free).
    rows = _limits_rows(voxhub_postgres_url)
    [(key, _next_at, holders)] = [row for row in rows if row[0].endswith(":start")]
    assert key.startswith("agora-stt:app-") and holders == "{}"
    assert sorted(row[2] for row in rows if ":lock." in row[0]) == ["{}"] * 3
    assert list(tmp_path.rglob("limits.db")) == []


def test_one_task_per_channel_across_machines(
    tmp_path: Path, voxhub_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two machines start two jobs (their own keys, so Agora's agent names differ) for the
    # same channel at once.
    ids, sandbox = _start_on_machines(tmp_path, voxhub_postgres_url, monkeypatch,
                                      [{"channel": "all-hands", "key": f"input-{i}"}
                                       for i in range(2)])
    # One task, which the second start joined instead of starting another (and paying twice).
    assert ids[0] == ids[1] and sandbox.counters.get("tasks.created") == 1
    locks = [row for row in _limits_rows(voxhub_postgres_url) if ":lock." in row[0]]
    [(key, _next_at, holders)] = locks
    assert key.startswith("agora-stt:app-") and holders == "{}" and "all-hands" not in key
    assert list(tmp_path.rglob("agora-locks")) == []


class _LimitedEcho(EchoProvider):
    info = attrs.evolve(EchoProvider.info, name="echo-limited",
                        limits=(Limit("submit", 2, per=3600.0, burst=2),))


class _LimitedPlugin:
    @hookimpl
    def register_providers(self) -> list[Any]:
        return [_LimitedEcho()]


def test_declared_limits_apply_before_submit_per_account(
    store_at: Path | str, voxhub_sandbox: Callable[..., RunningSandbox]
) -> None:
    first, second = voxhub_sandbox("echo"), voxhub_sandbox("echo")
    plugins = PluginManager.load(env={"VOXHUB_LOAD_PLUGINS": "none"},
                                 extra=[("limited", _LimitedPlugin())])
    config = Config.from_profiles({
        "a": {"provider": "echo-limited", **first.settings()},
        "b": {"provider": "echo-limited", **second.settings()},
    })
    orch = Orchestrator(store=store_at, config=config, plugins=plugins)
    try:
        def request(profile: str, n: int) -> JobRequest:
            return JobRequest(provider="echo-limited", profile=profile,
                              media=RemoteUrl(f"https://example.com/{profile}-{n}.wav"),
                              kind=JobKind.TRANSCRIPTION)

        for n in range(2):  # the burst
            orch.submit(request("a", n))
        # The third would wait half an hour, longer than a claim's lease allows: refused
        # before anything is sent, and the job stays unsent (resumable).
        with pytest.raises(RateLimitedError, match="shared limit"):
            orch.submit(request("a", 2))
        assert len(first.sandbox.jobs) == 2  # type: ignore[attr-defined]
        # The same limit, another account (other endpoint): its own bucket.
        orch.submit(request("b", 0))
        with deadline_scope(orch.clock.monotonic() + 5.0), pytest.raises(RateLimitedError):
            orch.submit(request("a", 3))
        assert len(first.sandbox.jobs) == 2  # type: ignore[attr-defined]
        assert len(second.sandbox.jobs) == 1  # type: ignore[attr-defined]
    finally:
        orch.http.close()
        orch.store.close()
    rows = _limits_rows(store_at)
    assert [key.rsplit(":", 1)[1] for key, _, _ in rows] == ["submit", "submit"]
    assert len({key for key, _, _ in rows}) == 2
    secret = first.settings()["api_key"]
    assert all(secret not in key and key.startswith("echo-limited:") for key, _, _ in rows)


def test_a_slot_admits_count_holders_across_connections(store_at: Path | str) -> None:
    Store(store_at).close()
    inside, most, lock = 0, 0, threading.Lock()
    entered = threading.Barrier(2, timeout=30)

    def worker() -> None:
        nonlocal inside, most
        # Each worker its own connections, as another process would have.
        limits = SharedLimits(open_database(store_target(store_at)))
        with limits.slot("test:acct:uploads", 2):
            with lock:
                inside += 1
                most = max(most, inside)
            with contextlib.suppress(threading.BrokenBarrierError):
                entered.wait(2.0)  # two holders meet inside; a third never gets in
            with lock:
                inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert most == 2
    [(_key, _next_at, holders)] = _limits_rows(store_at)
    assert holders == "{}"


def test_a_dead_holders_place_frees_when_its_lease_ends(store_at: Path | str) -> None:
    Store(store_at).close()
    db = open_database(store_target(store_at))
    try:
        db.write(lambda conn: conn.execute(
            "INSERT INTO limits (key, next_at, holders, updated_at) VALUES (?, 0, ?, 0)",
            ("test:acct:turn", json.dumps({"dead": 1.0, "alive": 4e9}))))
        limits = SharedLimits(db)
        # Held by a live lease: a wait past the deadline in scope is refused at once.
        with (deadline_scope(limits.clock.monotonic() + 0.05),
              pytest.raises(RateLimitedError), limits.slot("test:acct:turn", 1)):
            pass
        # One place of two is a dead holder's (its lease ended): taken without waiting.
        with limits.slot("test:acct:turn", 2) as waited:
            assert waited == 0.0
    finally:
        db.close()
    [(_key, _next_at, holders)] = _limits_rows(store_at)
    assert json.loads(holders) == {"alive": 4e9}


def test_a_lock_has_one_holder_across_connections_and_keeps_its_record(
    store_at: Path | str,
) -> None:
    Store(store_at).close()
    inside, most, order, lock = 0, 0, [], threading.Lock()

    def worker(n: int) -> None:
        nonlocal inside, most
        # Each worker its own connections, as another machine would have.
        limits = SharedLimits(open_database(store_target(store_at)))
        with limits.locked("test:acct:channel.abc") as held:
            with lock:
                inside += 1
                most = max(most, inside)
                order.append((n, held.data))
            time.sleep(0.05)  # long enough for the others to be waiting
            held.data = {"last": n, "seen": (held.data or {}).get("seen", 0) + 1}
            with lock:
                inside -= 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert most == 1 and len(order) == 4
    # Each holder found the record its predecessor left.
    assert order[0][1] is None
    assert [data["seen"] for _n, data in order[1:]] == [1, 2, 3]
    assert [data["last"] for _n, data in order[1:]] == [n for n, _data in order[:-1]]
    final = SharedLimits(open_database(store_target(store_at))).record("test:acct:channel.abc")
    assert final == {"last": order[-1][0], "seen": 4}
    [(_key, _next_at, holders)] = _limits_rows(store_at)
    assert holders == "{}"


def test_a_lock_record_is_saved_at_once_or_at_the_end_never_on_an_error(tmp_path: Path) -> None:
    limits = SharedLimits.beside(tmp_path)  # a hand-built context's: a file of its own
    key = "test:acct:channel.save"
    with pytest.raises(RuntimeError), limits.locked(key) as held:
        held.data = {"token": "b-1"}
        held.save()  # must outlive what follows
        held.data = {"token": "b-1", "task": "t-1"}
        raise RuntimeError("the start failed")
    assert limits.record(key) == {"token": "b-1"}
    with limits.locked(key) as held:
        assert held.data == {"token": "b-1"} and not held.changed
        held.data = None  # deleted at the end of the block
    assert limits.record(key) is None
    with pytest.raises(InvalidInputError, match="JSON") as caught, limits.locked(key) as held:
        held.data = {"when": object()}
    assert caught.value.field == "data"


def test_a_holder_whose_lease_ran_out_cannot_save_its_record(store_at: Path | str) -> None:
    Store(store_at).close()
    db = open_database(store_target(store_at))
    try:
        limits = SharedLimits(db)
        with limits.locked("test:acct:channel.lost") as held:
            # The store was out of reach past the lease: another holder may have the lock.
            db.write(lambda conn: conn.execute("UPDATE limits SET holders='{}'"))
            held.data = {"task": "t-2"}
            with pytest.raises(ProviderUnavailableError, match="lost"):
                held.save()
            held.data = None  # nothing more to save on the way out
        assert limits.record("test:acct:channel.lost") is None
    finally:
        db.close()


def test_keys_never_hold_secrets(tmp_path: Path) -> None:
    register_secret("tok-4f1c9a77e2d0b8")
    limits = SharedLimits.beside(tmp_path)
    with pytest.raises(InvalidInputError, match="secret") as caught:
        limits.take("revai:tok-4f1c9a77e2d0b8:submit", count=1, per=1.0)
    assert caught.value.field == "key"
    with pytest.raises(InvalidInputError, match="burst"):
        Limit("submit", 2, per=1.0, burst=3)
    with pytest.raises(InvalidInputError, match="per"):
        Limit("submit", 2, per=0.0)


def test_revai_declares_its_published_limits() -> None:
    from voxhub_revai.options import INFO, SUBMISSIONS, UPLOADS

    assert Limit("submit", 10_000, per=600.0, burst=100) == SUBMISSIONS
    assert Limit("uploads", 5) == UPLOADS and not UPLOADS.is_rate
    assert set(INFO.limits) == {SUBMISSIONS, UPLOADS}


def test_a_profile_changes_or_turns_off_a_declared_limit(
    tmp_path: Path, voxhub_sandbox: Callable[..., RunningSandbox]
) -> None:
    running = voxhub_sandbox("echo")
    plugins = PluginManager.load(env={"VOXHUB_LOAD_PLUGINS": "none"},
                                 extra=[("limited", _LimitedPlugin())])
    config = Config.from_profiles({
        "raised": {"provider": "echo-limited", "limit_submit": "5/3600 burst 5",
                   **running.settings()},
        "off": {"provider": "echo-limited", "limit_submit": "OFF", **running.settings()},
    })
    orch = Orchestrator(store=tmp_path / "jobs.db", config=config, plugins=plugins)
    try:
        def submit(profile: str, n: int) -> None:
            orch.submit(JobRequest(provider="echo-limited", profile=profile,
                                   media=RemoteUrl(f"https://example.com/{profile}-{n}.wav"),
                                   kind=JobKind.TRANSCRIPTION))

        for n in range(5):  # the raised burst: 5 where 2 are declared
            submit("raised", n)
        with pytest.raises(RateLimitedError, match="shared limit"):
            submit("raised", 5)
        for n in range(8):  # no limit at all: nothing kept in the store either
            submit("off", n)
        assert len(running.sandbox.jobs) == 13  # type: ignore[attr-defined]
    finally:
        orch.http.close()
        orch.store.close()
    assert len(_limits_rows(tmp_path / "jobs.db")) == 1


@pytest.mark.parametrize(("value", "message"), [
    ("fast", r"limit_submit: a rate like \"2/3600\""),
    ("0/60", "limit_submit: Limit.count must be positive"),
    ("5/60 burst 9", "limit_submit: Limit.burst"),
    (12, r"limit_submit: a rate like"),
])
def test_a_bad_limit_setting_is_refused_naming_it(value: object, message: str) -> None:
    info = _LimitedEcho.info
    config = Config.from_profiles({"echo-limited": {"limit_submit": value}})
    with pytest.raises(ConfigurationError, match=message) as caught:
        config.settings(info)
    assert caught.value.details["field"] == "limit_submit"
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigurationError, match=r"unknown setting 'limit_upload'.*limit_submit"):
        Config.from_profiles({"echo-limited": {"limit_upload": 3}}).settings(info)


def test_a_concurrency_override_is_what_the_provider_holds(tmp_path: Path) -> None:
    from voxhub._provider_limits import ProviderLimits
    from voxhub_revai.options import INFO, UPLOADS

    shared = SharedLimits.beside(tmp_path)
    raised = ProviderLimits(shared, "revai", "acct", (UPLOADS,), {"limit_uploads": "7"})
    assert raised.declared == (Limit("uploads", 7),)
    off = ProviderLimits(shared, "revai", "acct", (UPLOADS,), {"limit_uploads": "off"})
    assert off.declared == ()
    entered = []
    with contextlib.ExitStack() as stack:  # seven at once; the declared five would block
        for _ in range(7):
            entered.append(stack.enter_context(raised.hold(UPLOADS)))
        with off.hold(UPLOADS) as waited:
            assert waited == 0.0
    assert entered == [0.0] * 7
    with pytest.raises(ConfigurationError, match="limit_uploads: how many at once"):
        Config.from_profiles({"revai": {"limit_uploads": "5/60"}}).settings(INFO)
