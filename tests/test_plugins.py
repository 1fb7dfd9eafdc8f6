"""Plugin discovery through real entry points: limits, broken plugins, misspelt hooks, tracing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from voxhub import PluginManager, Provider, ProviderInfo, hookimpl
from voxhub.errors import ConfigurationError

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
