"""``voxhub tupu keygen`` and the plugin's registration."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner
from voxhub.plugin import Capability
from voxhub.plugins import PluginManager
from voxhub_tupu import plugin
from voxhub_tupu.keys import load_private_key, load_public_key
from voxhub_tupu.provider import TupuProvider
from voxhub_tupu.sandbox import TupuSandbox


def _cli() -> click.Group:
    @click.group()
    def cli() -> None:
        """A stand-in for the voxhub command group."""

    plugin.register_commands(cli)
    return cli


def test_keygen_writes_a_key_pair(tmp_path: Path) -> None:
    target = tmp_path / "keys"
    old = os.umask(0o022)
    try:
        result = CliRunner().invoke(_cli(), ["tupu", "keygen", str(target)])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    private, public = target / "tupu_private.pem", target / "tupu_public.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    key = load_private_key(private)
    assert key.key_size == 2048
    assert load_public_key(public).public_numbers() == key.public_key().public_numbers()
    out = result.output
    assert str(public.resolve()) in out and str(private.resolve()) in out
    assert "https://console.cloud.tuputech.com/account/cert" in out
    assert "VOXHUB_TUPU_PRIVATE_KEY" in out and "VOXHUB_TUPU_PUBLIC_KEY" in out
    assert "BEGIN" not in out
    for line in private.read_text().splitlines()[1:-1]:
        assert line not in out

    again = CliRunner().invoke(_cli(), ["tupu", "keygen", str(target)])
    assert again.exit_code == 1 and "refusing to overwrite" in again.output
    assert load_private_key(private).private_numbers() == key.private_numbers()


def test_keygen_bits_and_profile(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _cli(), ["tupu", "keygen", str(tmp_path), "--bits", "3072", "--profile", "tupu-eu"])
    assert result.exit_code == 0, result.output
    assert load_private_key(tmp_path / "tupu_private.pem").key_size == 3072
    assert "[tupu-eu]" in result.output and "VOXHUB_TUPU_EU_PRIVATE_KEY" in result.output
    small = CliRunner().invoke(_cli(), ["tupu", "keygen", str(tmp_path / "x"), "--bits", "1024"])
    assert small.exit_code == 2


def test_plugin_is_found_by_its_entry_point() -> None:
    manager = PluginManager.load(env={"VOXHUB_LOAD_PLUGINS": "voxhub-tupu"})
    assert manager.failures == []
    entry = manager.provider("tupu")
    assert isinstance(entry.provider, TupuProvider)
    assert entry.distribution == "voxhub-tupu"
    caps = entry.info.capabilities
    assert {Capability.CALLBACK_ONLY, Capability.BATCH_SUBMIT} <= caps
    sandbox = manager.sandboxes["tupu"].create()
    try:
        assert isinstance(sandbox, TupuSandbox)
    finally:
        sandbox.close()
    for hook in ("authenticate", "validate", "submit", "submit_batch", "status", "fetch",
                 "close", "parse_callback"):
        assert manager.implements("tupu", hook)
    cli = click.Group("voxhub")
    manager.register_commands(cli)
    assert "tupu" in cli.commands and manager.failures == []


def test_credential_fields() -> None:
    fields = {f.name: f for f in TupuProvider.info.credentials}
    assert set(fields) == {"secret_id", "private_key", "private_key_passphrase", "public_key"}
    assert fields["secret_id"].secret and fields["private_key_passphrase"].secret
    assert not fields["private_key"].secret and not fields["public_key"].secret
    assert fields["public_key"].required and not fields["private_key_passphrase"].required


def test_declaring_the_plugin_imports_no_provider_code() -> None:
    # What `voxhub providers` does with this plugin: read its declarations only.
    code = (
        "import sys\n"
        "from voxhub_tupu import plugin\n"
        "[info] = plugin.register_providers()\n"
        "[spec] = plugin.register_sandboxes()\n"
        "assert info.name == 'tupu' and spec.provider == 'tupu'\n"
        "heavy = ('cryptography', 'werkzeug', 'urllib3', 'voxhub_tupu.provider',\n"
        "         'voxhub_tupu.sandbox', 'voxhub_tupu.api')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
