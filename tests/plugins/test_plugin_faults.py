"""A broken plugin is reported by name and skipped; hook calls can be traced for debugging."""

import json
import os
import subprocess
import sys
from pathlib import Path

from loram_core import hookimpl, plugins, registry
from loram_core.cli.main import main


class RaisesOnRegistration:
    @hookimpl
    def register_pruners(self, register):
        raise RuntimeError("this plugin's registration code is broken")


def test_plugin_raising_in_registration_is_reported_and_the_rest_works(capsys):
    plugins.load_plugins()
    plugins.pm.register(RaisesOnRegistration(), name="broken-plugin")
    try:
        assert registry.get("pruner", "magnitude").name == "magnitude"  # the others still register
        assert "plugin 'broken-plugin' failed to load" in capsys.readouterr().err
        assert main(["plugins", "--json"]) == 0
        rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
        assert rows["broken-plugin"]["error"] == "RuntimeError: this plugin's registration code is broken"
        assert "loram_core.builtin.magnitude" in rows
    finally:
        plugins.pm.unregister(name="broken-plugin")
        plugins.broken.pop("broken-plugin", None)


def _fake_distribution(root: Path, module_source: str) -> dict:
    """An installed-looking package with a `loram` entry point, on a PYTHONPATH of its own."""
    (root / "loram_plugin_crashy.py").write_text(module_source)
    info = root / "loram_plugin_crashy-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: loram-plugin-crashy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[loram]\ncrashy = loram_plugin_crashy\n")
    return {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_entry_point_that_fails_to_import_does_not_take_down_loram_plugins(tmp_path):
    env = _fake_distribution(tmp_path, "raise ImportError('needs a package that is not installed')\n")
    out = subprocess.run([sys.executable, "-m", "loram_core.cli.main", "plugins", "--json"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["crashy"]["kind"] == "broken" and "needs a package that is not installed" in rows["crashy"]["error"]
    assert "plugin 'crashy' failed to load and is skipped" in out.stderr


def test_trace_prints_every_hook_call(tmp_path):
    env = {**os.environ, "LORAM_TRACE_PLUGINS": "1", "LORAM_LOAD_PLUGINS": ""}
    out = subprocess.run([sys.executable, "-m", "loram_core.cli.main", "plugins", "--json"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0
    assert "loram trace: register_commands(cli) -> [" in out.stderr
    assert "loram trace: register_commands done" in out.stderr
    assert "loram trace: register_pruners(register) -> [loram_core.builtin.magnitude]" in out.stderr
