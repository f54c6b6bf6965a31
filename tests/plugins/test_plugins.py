"""The plugin host: in-test registration, lookup by name, entry points and LORAM_LOAD_PLUGINS."""

import json
import os
import subprocess
import sys
import textwrap

import attrs
import pluggy
import pytest

from loram_core import hookimpl, plugins, registry
from loram_core.cli.main import main
from loram_core.errors import LoramError, UnknownPluginError
from loram_core.structured import StructuredConfig, structured_plan
from loram_core.plan import PrunerInfo
from loram_test_helpers import REPO


@attrs.frozen
class KeepFirstPruner:
    """Keeps the lowest-numbered units: a pruner written in a few lines against the public API."""

    name: str = "keep-first"
    config_cls: type = StructuredConfig
    version: str = "9.9"

    def plan(self, model, config, context):
        import torch

        return structured_plan(model, config, context, PrunerInfo(self.name, self.version),
                               lambda group: -torch.arange(group.units, dtype=torch.float32))


class KeepFirstPlugin:
    @hookimpl
    def register_pruners(self, register):
        register(KeepFirstPruner(), aliases=("kf",))


@pytest.fixture
def keep_first():
    plugins.load_plugins()
    plugins.pm.register(KeepFirstPlugin(), name="KeepFirstPlugin")
    try:
        yield
    finally:
        plugins.pm.unregister(name="KeepFirstPlugin")


def plugins_json(capsys):
    assert main(["plugins", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_builtins_register_through_the_hooks(capsys):
    rows = {r["name"]: r for r in plugins_json(capsys)}
    assert "pruner:random" in rows["loram_core.builtin.random_structured"]["provides"]
    assert rows["loram_core.builtin.magnitude"]["hooks"] == ["register_pruners"]
    assert {r["kind"] for r in rows.values()} == {"builtin"}
    provided = {p for r in rows.values() for p in r["provides"]}
    assert {"pruner:magnitude", "recoverer:zero", "recoverer:normal", "architecture:llama",
            "model:smollm2-135m", "dataset:shakespeare"} <= provided


def test_plugin_registered_in_a_test_is_listed_chosen_and_gone_after(keep_first, capsys, tmp_path):
    rows = {r["name"]: r for r in plugins_json(capsys)}
    row = rows["KeepFirstPlugin"]
    assert row["provides"] == ["pruner:keep-first", "pruner:kf"]
    assert row["kind"] == "runtime" and row["hooks"] == ["register_pruners"]
    assert registry.get("pruner", "kf").name == "keep-first"
    assert main(["plugins"]) == 0
    table = capsys.readouterr().out
    assert "keep-first" in table and "KeepFirstPlugin" in table and "magnitude" in table
    assert registry.collect("pruner")["keep-first"].version == "9.9"

    from loram_core.testing.tiny import save_tiny_model
    from loram_core.plan.serialize import load_plan

    model = save_tiny_model(tmp_path / "model")
    data = tmp_path / "data.txt"
    data.write_text("\n\n".join(f"paragraph {i} " + "words and more words " * 40 for i in range(40)))
    code = main(["prune", str(tmp_path / "run"), "--model", str(model), "--data", str(data),
                 "--pruner", "keep-first", "--ratio", "0.5", "--seq-len", "32", "--no-progress", "--json"])
    assert code == 0
    plan = load_plan(tmp_path / "run" / "plan")
    assert plan.pruner.name == "keep-first"
    assert plan.entries["model.layers.4.mlp.up_proj"].keep_out.tolist() == list(range(48))


def test_unregistered_plugin_is_unknown_with_installed_names_and_nearest_match(capsys):
    with pytest.raises(UnknownPluginError) as err:
        registry.get("pruner", "keep-first")
    assert "installed: magnitude, none, random" in str(err.value)
    with pytest.raises(UnknownPluginError, match="did you mean 'magnitude'"):
        registry.get("pruner", "magnitud")
    assert main(["run", "--pruner", "randm", "--out", "unused"]) == 2
    message = capsys.readouterr().err
    assert "unknown pruner 'randm'; did you mean 'random'?" in message and "Traceback" not in message


def test_name_clash_between_plugins_is_an_error():
    class Clash:
        @hookimpl
        def register_pruners(self, register):
            register(KeepFirstPruner(name="random"))

    plugins.load_plugins()
    plugins.pm.register(Clash(), name="Clash")
    try:
        with pytest.raises(LoramError, match="pruner 'random' is registered twice"):
            registry.collect("pruner")
    finally:
        plugins.pm.unregister(name="Clash")


def test_misspelled_hook_is_caught_by_check_pending():
    class Misspelled:
        @hookimpl
        def register_prunerz(self, register):  # noqa: typo on purpose
            pass

    plugins.load_plugins()
    plugins.pm.register(Misspelled(), name="Misspelled")
    try:
        with pytest.raises(pluggy.PluginValidationError, match="register_prunerz"):
            plugins.pm.check_pending()
    finally:
        plugins.pm.unregister(name="Misspelled")


@pytest.fixture
def installed_entry_point(tmp_path):
    """A real distribution on sys.path declaring an entry point in group 'loram'."""
    (tmp_path / "loram_plugin_hello.py").write_text(textwrap.dedent('''
        import attrs
        from loram_core import hookimpl

        @attrs.frozen
        class Hello:
            name: str = "hello"
            description: str = "fills with zeros"
            def fill(self, shape, *, factor, dtype, generator=None):
                import torch
                return torch.zeros(shape, dtype=dtype)

        @hookimpl
        def register_recoverers(register):
            register(Hello())
    '''))
    dist = tmp_path / "loram_plugin_hello-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: loram-plugin-hello\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[loram]\nhello = loram_plugin_hello\n")
    return tmp_path


def _plugins_subprocess(path, **env):
    full = {k: v for k, v in os.environ.items() if k != "LORAM_LOAD_PLUGINS"}
    full.update(PYTHONPATH=str(path), **env)
    out = subprocess.run([sys.executable, "-m", "loram_core.cli.main", "plugins", "--json"],
                         env=full, capture_output=True, text=True, check=True)
    return {r["name"]: r for r in json.loads(out.stdout)}


def test_entry_point_plugins_load_and_loram_load_plugins_restricts(installed_entry_point):
    rows = _plugins_subprocess(installed_entry_point)
    assert rows["hello"]["version"] == "1.2.3" and rows["hello"]["kind"] == "entry-point"
    assert rows["hello"]["provides"] == ["recoverer:hello"]
    assert "hello" not in _plugins_subprocess(installed_entry_point, LORAM_LOAD_PLUGINS="")
    assert "hello" in _plugins_subprocess(installed_entry_point, LORAM_LOAD_PLUGINS="hello")
    assert "hello" not in _plugins_subprocess(installed_entry_point, LORAM_LOAD_PLUGINS="other")


def test_example_one_file_pruner_plans_a_valid_plan():
    import importlib.util

    from loram_core.arch import adapter_for
    from loram_core.configs import build_config
    from loram_core.plan import ModelFingerprint
    from loram_core.plan.validate import validate_plan
    from loram_core.structured import PruneContext
    from loram_core.testing.tiny import tiny_llama

    path = REPO / "examples" / "keep_first_pruner.py"
    spec = importlib.util.spec_from_file_location("keep_first_pruner", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugins.load_plugins()
    plugins.pm.register(module, name="keep_first_pruner")
    try:
        pruner = registry.get("pruner", "keep-first")
        model = tiny_llama()
        ctx = PruneContext(model.config, adapter_for(model.config), ModelFingerprint.from_config(model.config))
        plan = pruner.plan(model, build_config(pruner.config_cls, {"ratio": 0.5}, owner="keep-first"), ctx)
        validate_plan(plan, model.config)
        assert plan.entries["model.layers.4.self_attn.k_proj"].keep_out.tolist() == list(range(16))
    finally:
        plugins.pm.unregister(name="keep_first_pruner")
