"""Plugin discovery through real entry points: limits, broken plugins, misspelt hooks, tracing,
and lazy loading (listing imports no provider code; a broken provider fails at first use)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from voxhub.discovery import entry_points
from voxhub.errors import ConfigurationError, PluginError
from voxhub.markers import hookimpl
from voxhub.models import JobHandle, JobKind
from voxhub.plugins import PluginManager
from voxhub.provider import Provider, ProviderInfo
from voxhub.sandbox import SandboxSpec

VOXHUB = str(Path(sys.executable).with_name("voxhub"))


def fake_distribution(
    site: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]
) -> None:
    """Install a distribution the way pip would leave it: a dist-info with real entry points."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[voxhub]\n{lines}\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)


BROKEN = "raise RuntimeError('this plugin is broken on purpose')\n"
MISSPELT = "from voxhub import hookimpl\n@hookimpl\ndef register_provders():\n    return []\n"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VOXHUB, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    fake_distribution(site, "voxhub-broken", {"broken": "broken_plugin"}, {"broken_plugin": BROKEN})
    fake_distribution(
        site, "voxhub-misspelt", {"misspelt": "misspelt_plugin"}, {"misspelt_plugin": MISSPELT}
    )
    return site


def test_broken_and_misspelt_plugins_are_reported_and_skipped(site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = run(["providers", "--json"], env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    errors = {r["plugin"]: r["error"] for r in rows if r["error"]}
    assert "this plugin is broken on purpose" in errors["broken"]
    assert "register_provders" in errors["misspelt"] and "not a voxhub hook" in errors["misspelt"]
    assert any(r["provider"] == "echo" for r in rows)  # the others still load


def test_load_plugins_env_limits_loading(site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(site), "VOXHUB_LOAD_PLUGINS": "voxhub-echo"}
    rows = json.loads(run(["providers", "--json"], env).stdout)
    assert [r["provider"] for r in rows] == ["echo"]
    env["VOXHUB_LOAD_PLUGINS"] = ""
    assert json.loads(run(["providers", "--json"], env).stdout) == []


def test_tracing_logs_every_hook_call() -> None:
    env = {**os.environ, "VOXHUB_LOAD_PLUGINS": "voxhub-echo", "VOXHUB_TRACE_PLUGINS": "1"}
    code = (
        "from voxhub import PluginManager, configure_logging;"
        "configure_logging('info','json');"
        "pm = PluginManager.load();"
        "pm.notify('job_failed', handle=None, error=None)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert '"hook": "job_failed"' in result.stderr and "hook.call" in result.stderr


class Twice(Provider):
    info = ProviderInfo(name="echo", kinds=frozenset())


def test_duplicate_provider_names_are_refused() -> None:
    class Plugin:
        @hookimpl
        def register_providers(self) -> list[Provider]:
            return [Twice()]

    pm = PluginManager.load(env={"VOXHUB_LOAD_PLUGINS": "voxhub-echo"}, extra=[("dup", Plugin())])
    assert "already offered by voxhub-echo" in pm.failures[0].error
    assert pm.providers["echo"].distribution == "voxhub-echo"


def test_unknown_provider_message_suggests_the_package() -> None:
    pm = PluginManager.load(env={"VOXHUB_LOAD_PLUGINS": ""})
    with pytest.raises(ConfigurationError, match="pip install voxhub-agora"):
        pm.provider("agora-stt")


# --- lazy providers and sandboxes ----------------------------------------------------------

HEAVY = (
    "urllib3",
    "werkzeug",
    "numpy",
    "cryptography",
    "pocketsphinx",
    "structlog",
    "cattrs",
    "voxhub.orchestrator",
    "voxhub.store",
    "voxhub.transport",
    "voxhub.sandbox_kit",
)
CODE = (  # provider and emulator modules of the installed plugins
    "voxhub_echo.provider",
    "voxhub_echo.sandbox",
    "voxhub_revai.provider",
    "voxhub_revai.sandbox",
    "voxhub_nhn.provider",
    "voxhub_nhn.sandbox",
    "voxhub_tupu.provider",
    "voxhub_tupu.sandbox",
    "voxhub_agora.stt",
    "voxhub_agora.transcoder",
    "voxhub_agora.sandbox",
    "voxhub_local.provider",
    "voxhub_local.engine",
)


def modules_after(args: list[str]) -> tuple[set[str], str]:
    """The modules a `voxhub ARGS` process imported, with its output."""
    code = (
        "import sys\nfrom voxhub.cli import main\ntry:\n    main(sys.argv[1:])\n"
        "except SystemExit:\n    pass\nprint('\\n'.join(sys.modules), file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXHUB_")}
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=60
    )
    return set(result.stderr.split()), result.stdout


@pytest.mark.parametrize("args", [["providers", "--json"], ["--help"]])
def test_listing_imports_no_provider_code(args: list[str]) -> None:
    modules, out = modules_after(args)
    if args[0] == "providers":
        names = {row["provider"] for row in json.loads(out)}
        assert {"echo", "revai", "nhn", "tupu", "agora-stt", "agora-transcoder", "local"} <= names
    else:
        assert "tupu" in out and "agora" in out and "nhn" in out  # plugin commands listed
    assert not modules & set(CODE), modules & set(CODE)
    assert not {m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY}


def lazy_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> str:
    """A module on sys.path, named uniquely, holding ``source``."""
    name = f"lazy_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


class Offers:
    """A plugin object whose register_providers returns what it is given."""

    def __init__(self, *offered: object) -> None:
        self.offered = offered

    @hookimpl
    def register_providers(self) -> list[object]:
        return list(self.offered)


def test_a_provider_that_fails_to_import_is_a_plugin_error_at_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = lazy_module(tmp_path, monkeypatch, "raise ImportError('no vendor SDK here')\n")
    info = ProviderInfo(name="lazy", kinds=frozenset(), entry=f"{module}:LazyProvider")
    pm = PluginManager.load(env={"VOXHUB_LOAD_PLUGINS": ""}, extra=[("p", Offers(info))])
    assert not pm.failures and module not in sys.modules  # listed, not imported
    assert [r["provider"] for r in pm.list_plugins()] == ["lazy"]
    for attempt in (lambda: pm.calls("lazy"), lambda: pm.provider("lazy").provider):
        with pytest.raises(PluginError) as caught:
            attempt()
        assert caught.value.provider == "lazy"
        assert f"{module}:LazyProvider" in str(caught.value)
        assert "no vendor SDK here" in str(caught.value)


PROVIDERS = """
from voxhub.models import JobHandle, JobState, JobStatus
from voxhub.provider import Provider, ProviderInfo

class First(Provider):
    info = ProviderInfo(name="first", kinds=frozenset(), entry="{module}:First")

    def status(self, ctx, handle):
        return JobStatus(JobState.RUNNING, vendor_state="first")

class Second(Provider):
    info = ProviderInfo(name="second", kinds=frozenset(), entry="{module}:Second")

    def status(self, ctx, handle):
        return JobStatus(JobState.QUEUED, vendor_state="second")

class Liar(Provider):
    info = ProviderInfo(name="other-name", kinds=frozenset())
"""


def test_lazy_providers_load_on_first_use_and_keep_their_own_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"lazy_{tmp_path.name.replace('-', '_')}"
    module = lazy_module(tmp_path, monkeypatch, PROVIDERS.format(module=name))
    first = ProviderInfo(name="first", kinds=frozenset(), entry=f"{module}:First")
    second = ProviderInfo(name="second", kinds=frozenset(), entry=f"{module}:Second")
    pm = PluginManager.load(env={"VOXHUB_LOAD_PLUGINS": ""}, extra=[("p", Offers(first, second))])
    assert not pm.providers["first"].loaded and module not in sys.modules
    handle = JobHandle("vx_1", "first", JobKind.TRANSCRIPTION, "first")
    calls = pm.calls("first")
    assert calls.status(None, handle).vendor_state == "first"  # type: ignore[arg-type]
    assert pm.providers["first"].loaded and not pm.providers["second"].loaded
    # Loading another provider later must not let it answer the first one's calls.
    assert pm.calls("second").status(None, handle).vendor_state == "second"  # type: ignore[arg-type]
    assert calls.status(None, handle).vendor_state == "first"  # type: ignore[arg-type]


def test_a_provider_class_must_match_its_declared_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"lazy_{tmp_path.name.replace('-', '_')}"
    module = lazy_module(tmp_path, monkeypatch, PROVIDERS.format(module=name))
    info = ProviderInfo(name="liar", kinds=frozenset(), entry=f"{module}:Liar")
    pm = PluginManager.load(env={"VOXHUB_LOAD_PLUGINS": ""}, extra=[("p", Offers(info))])
    with pytest.raises(PluginError, match="differs from the ProviderInfo"):
        pm.calls("liar")


def test_registration_mistakes_are_named() -> None:
    with pytest.raises(ValueError, match=r"ProviderInfo\.entry must read 'package\.module:Name'"):
        ProviderInfo(name="x", kinds=frozenset(), entry="no colon here")
    with pytest.raises(ValueError, match=r"SandboxSpec\.factory"):
        SandboxSpec("x", "not an entry")
    bare = ProviderInfo(name="bare", kinds=frozenset())
    pm = PluginManager.load(env={"VOXHUB_LOAD_PLUGINS": ""}, extra=[("bare", Offers(bare))])
    assert "without entry=" in pm.failures[0].error and "bare" not in pm.providers


def test_a_sandbox_is_imported_only_when_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = lazy_module(tmp_path, monkeypatch, "raise RuntimeError('emulator broken')\n")
    spec = SandboxSpec("lazy", f"{module}:LazySandbox", "a sandbox that cannot load")
    assert module not in sys.modules
    with pytest.raises(PluginError, match=f"sandbox 'lazy' failed to load from '{module}:"):
        spec.create()
    echo = PluginManager.load(env={"VOXHUB_LOAD_PLUGINS": "voxhub-echo"}).sandbox("echo")
    assert echo.factory == "voxhub_echo.sandbox:EchoSandbox"
    assert type(echo.create(steps=1)).__name__ == "EchoSandbox"


def test_entry_points_are_found_as_importlib_metadata_finds_them(site: Path) -> None:
    search = [str(site), *sys.path]
    ours = {(e.name, e.value, e.distribution, e.version) for e in entry_points("voxhub", search)}
    metadata = importlib.metadata.distributions(path=search)
    theirs = {
        (ep.name, ep.value, dist.name, dist.version)
        for dist in metadata
        for ep in dist.entry_points
        if ep.group == "voxhub"
    }
    assert ours == theirs
    assert ("broken", "broken_plugin", "voxhub-broken", "1.0") in ours


def test_with_a_distribution_finder_installed_the_same_path_is_searched(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another import hook that can find distributions (some packages install one) sends
    # discovery through importlib.metadata: it must still search the path it was given.
    class Finder:
        @staticmethod
        def find_spec(*args: object) -> None:
            return None

        @staticmethod
        def find_distributions(*args: object) -> list[object]:
            return []

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder])
    search = [str(site), *sys.path]
    found = {(e.name, e.value, e.distribution, e.version) for e in entry_points("voxhub", search)}
    assert ("broken", "broken_plugin", "voxhub-broken", "1.0") in found
    without = {e.name for e in entry_points("voxhub", list(sys.path))}
    assert "broken" not in without


def test_a_plugin_cannot_replace_a_core_command(tmp_path: Path) -> None:
    site = tmp_path / "site"
    source = (
        "from voxhub.plugin import hookimpl\n"
        "@hookimpl\ndef register_commands(cli):\n"
        "    from voxhub.cli import LazyCommand\n"
        "    cli.add_command(LazyCommand('transcribe', 'evil:cmd', 'Not the real one.'))\n"
    )
    fake_distribution(site, "voxhub-evil", {"evil": "evil_plugin"}, {"evil_plugin": source})
    env = {**os.environ, "PYTHONPATH": str(site), "VOXHUB_LOAD_PLUGINS": "voxhub-evil"}
    result = run(["--help"], env)
    assert result.returncode == 0 and "Not the real one" not in result.stdout
    assert "'transcribe' is a voxhub command" in result.stderr
