"""Every hookspec has a ``test_hook_<name>`` that exercises it through the core, and an entry in docs/plugins.md
(the datasette discipline: a hook nobody tests or documents is a hook nobody can rely on)."""

import ast
import json
import re
from pathlib import Path

import attrs
import pytest
import torch

from loram_core import hookimpl, hookspecs, plugins, registry
from loram_core.cli.main import main
from loram_core.data.splits import TextSplits
from loram_core.models.loading import load_config
from loram_core.plan import ModelFingerprint
from loram_core.plan.serialize import load_plan
from loram_core.testing.tiny import save_tiny_model
from loram_test_helpers import REPO, TESTS

HOOKS = sorted(name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "loram_spec"))
QUICK = ["--ratio", "0.5", "--seq-len", "32", "--no-progress", "--json"]


def test_hookspecs_are_the_plugin_managers_hooks():
    assert HOOKS and set(HOOKS) == {n for n in dir(plugins.load_plugins().hook) if not n.startswith("_")}


def _test_functions() -> set[str]:
    """Names of the test functions defined (not merely mentioned) in the test modules."""
    return {node.name for path in TESTS.rglob("test_*.py")
            for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)}


def _documented_hooks() -> set[str]:
    """The hooks with a ``### `name(...)` `` heading of their own in docs/plugins.md."""
    return set(re.findall(r"^### `(\w+)\(", (REPO / "docs" / "plugins.md").read_text(), flags=re.MULTILINE))


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    assert f"test_hook_{hook}" in _test_functions(), f"no test_hook_{hook} in tests/"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    assert hook in _documented_hooks(), f"docs/plugins.md has no '### `{hook}(...)`' heading"


@pytest.fixture
def registered():
    """``registered(plugin)``: registers an object with hookimpls for this test only."""
    names = []

    def register(plugin):
        plugins.load_plugins()
        name = type(plugin).__name__
        plugins.pm.register(plugin, name=name)
        names.append(name)
        return plugin

    yield register
    for name in names:
        plugins.pm.unregister(name=name)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("hooks")
    data = root / "data.txt"
    data.write_text("\n\n".join(f"act {i}: " + "the duke spoke to the king of the sea " * 20 for i in range(30)))
    return save_tiny_model(root / "model"), data


def prune(run_dir, model, data, *extra):
    assert main(["prune", str(run_dir), "--model", str(model), "--data", str(data), *QUICK, *extra]) == 0
    return load_plan(Path(run_dir) / "plan")


@attrs.frozen
class NoOptions:
    pass


def test_hook_register_pruners(registered, tiny, tmp_path):
    from loram_core.plan import PrunePlan, PrunerInfo, SliceEntry

    @attrs.frozen
    class FirstMlpHalf:
        name: str = "first-mlp-half"
        config_cls: type = NoOptions

        def plan(self, model, config, context):
            keep = list(range(48))  # MLP channels 0..47 of layer 5
            mlp = "model.layers.5.mlp"
            entries = {f"{mlp}.gate_proj": SliceEntry((96, 64), keep_out=keep), f"{mlp}.up_proj": SliceEntry((96, 64), keep_out=keep),
                       f"{mlp}.down_proj": SliceEntry((64, 96), keep_in=keep)}
            return PrunePlan(base=context.fingerprint, pruner=PrunerInfo(self.name, "1"), pattern="structured", entries=entries)

    class Plugin:
        @hookimpl
        def register_pruners(self, register):
            register(FirstMlpHalf())

    registered(Plugin())
    plan = prune(tmp_path / "run", *tiny, "--pruner", "first-mlp-half")
    assert plan.pruner.name == "first-mlp-half" and plan.entries["model.layers.5.mlp.down_proj"].keep_in.tolist() == list(range(48))


@attrs.frozen
class HalfBitsConfig:
    bits: int = 8


def test_hook_register_quantizers(registered, tiny):
    from loram_core.lifecycle.quantize import quantize_pruned
    from loram_core.lifecycle.settings import RunSettings
    from loram_core.testing.tiny import tiny_llama

    @attrs.frozen
    class Halve:
        name: str = "halve"
        config_cls: type = HalfBitsConfig

        def quantize(self, model, config):
            return model.half()

    class Plugin:
        @hookimpl
        def register_quantizers(self, register):
            register(Halve())

    registered(Plugin())
    model, info = quantize_pruned(tiny_llama(), RunSettings(quantizer="halve", quantizer_options={"bits": 16}))
    assert info == {"name": "halve", "bits": 16} and model.model.layers[0].mlp.up_proj.weight.dtype == torch.float16


@attrs.frozen
class ScaleConfig:
    scale: float = 2.0


def test_hook_register_aligners(registered, tiny, tmp_path):
    from loram_core.checkpoint import load_weights

    @attrs.frozen
    class ScaleNorm:
        name: str = "scale-norm"
        config_cls: type = ScaleConfig

        def align(self, model, config, context):
            with torch.no_grad():
                model.model.norm.weight.mul_(config.scale)
            return {"steps": 1}

    class Plugin:
        @hookimpl
        def register_aligners(self, register):
            register(ScaleNorm())

    registered(Plugin())
    model, data = tiny
    prune(tmp_path / "run", model, data)
    before = load_weights(tmp_path / "run" / "pruned")["model.norm.weight"]
    assert main(["align", str(tmp_path / "run"), "--aligner", "scale-norm", "--aligner-opt", "scale=3", *QUICK]) == 0
    after = load_weights(tmp_path / "run" / "pruned")["model.norm.weight"]
    assert torch.equal(after, before * 3)


def test_hook_register_recoverers(registered, tiny, tmp_path):
    from loram_core.plan.fingerprint import linear_shapes
    from loram_core.recover import recover_adapter

    @attrs.frozen
    class Sevens:
        name: str = "sevens"

        def fill(self, shape, *, factor, dtype, generator=None):
            return torch.full(shape, 7.0, dtype=dtype)

    class Plugin:
        @hookimpl
        def register_recoverers(self, register):
            register(Sevens())

    registered(Plugin())
    model, data = tiny
    plan = prune(tmp_path / "run", model, data)
    entry = plan.entries["model.layers.4.mlp.up_proj"]
    state = {"base_model.model.model.layers.4.mlp.up_proj.lora_B.weight": torch.ones(len(entry.keep_out), 2)}
    recovered = recover_adapter(state, plan, linear_shapes(load_config(model)), registry.get("recoverer", "sevens"))
    b = next(iter(recovered.values()))
    pruned_rows = torch.ones(96, dtype=torch.bool)
    pruned_rows[entry.keep_out] = False
    assert bool((b[entry.keep_out] == 1).all()) and bool((b[pruned_rows] == 7).all())


def test_hook_register_architectures(registered, tmp_path):
    from loram_core.arch import adapter_for
    from loram_core.builtin.families import LlamaFamily
    from loram_core.errors import LoramError
    from loram_core.testing.conformance import check_pruner_outcome, run_pruner
    from loram_core.testing.conformance.harness import TinyFamily

    olmo = TinyFamily("olmo", {"model_type": "olmo"})
    with pytest.raises(LoramError, match="no architecture adapter for model_type 'olmo'") as refused:
        adapter_for(olmo.config())
    # it names what is supported and where adding a family is shown
    assert "gemma3_text" in str(refused.value) and "qwen3" in str(refused.value)
    assert "docs/plugins.md, 'register_architectures'" in str(refused.value)

    class Plugin:
        @hookimpl
        def register_architectures(self, register):
            # OLMo couples q/k/v/o and gate/up/down as Llama does (its norms have no weights to slice)
            register(LlamaFamily(name="olmo", model_types=("olmo",)))

    registered(Plugin())
    assert adapter_for(olmo.config()).name == "olmo"
    outcome = run_pruner(registry.get("pruner", "magnitude"), olmo, {"ratio": 0.5}, tmp_path)
    for check in ("validates", "runs", "ratio", "recovery"):
        check_pruner_outcome(outcome, check, tmp_path)


def test_the_suite_checks_a_third_party_family_on_its_own_tiny_model(registered, tmp_path):
    from loram_core.builtin.families import LlamaFamily
    from loram_core.testing.conformance import check_pruner_outcome, run_pruner
    from loram_core.testing.conformance.harness import family, installed_families
    from loram_core.testing.tiny import tiny_llama_config

    @attrs.frozen
    class OlmoFamily(LlamaFamily):
        name: str = "olmo"
        model_types: tuple = ("olmo",)

        def tiny_config(self):
            return tiny_llama_config(model_type="olmo")

    class Plugin:
        @hookimpl
        def register_architectures(self, register):
            register(OlmoFamily())

    assert "olmo-tiny" not in [f.name for f in installed_families()]
    registered(Plugin())
    assert "olmo-tiny" in [f.name for f in installed_families()]  # what `pytest --loram-plugin P` runs on
    outcome = run_pruner(registry.get("pruner", "magnitude"), family("olmo-tiny"), {"ratio": 0.5}, tmp_path)
    assert outcome.config.model_type == "olmo"
    for check in ("validates", "runs", "ratio", "recovery"):
        check_pruner_outcome(outcome, check, tmp_path)


def test_hook_register_datasets(registered, tiny, tmp_path):
    from loram_core.data import load_dataset

    loads = []

    @attrs.frozen
    class Chorus:
        name: str = "chorus"

        def load(self, **options):
            loads.append(options)
            docs = [f"chorus {i}: " + "o for a muse of fire " * 30 for i in range(12)]
            return TextSplits("chorus", docs[:8], docs[8:10], docs[10:])

    class Plugin:
        @hookimpl
        def register_datasets(self, register):
            register(Chorus())

    registered(Plugin())
    assert load_dataset("chorus").test[0].startswith("chorus 10:")
    prune(tmp_path / "run", tiny[0], "chorus")
    assert loads == [{}, {}]


def test_hook_register_models(registered, tiny, tmp_path):
    model, data = tiny

    @attrs.frozen
    class TinyAlias:
        name: str = "tiny-alias"

        def resolve(self):
            return model

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(TinyAlias())

    registered(Plugin())
    plan = prune(tmp_path / "run", "tiny-alias", data)
    assert plan.base.name_or_path == "tiny-alias"
    assert plan.base.config_hash == ModelFingerprint.from_config(load_config(model)).config_hash


def test_hook_register_task_evaluators(registered, capsys):
    from loram_core.task_eval import GENERATIVE, TaskInfo

    @attrs.frozen
    class CountEvaluator:
        name: str = "counter"

        def tasks(self, include_path):
            return [TaskInfo("count_words", "user", GENERATIVE, "words", None, 3)]

        def evaluate(self, model, tokenizer, tasks, options):
            raise NotImplementedError

    class Plugin:
        @hookimpl
        def register_task_evaluators(self, register):
            register(CountEvaluator())

    registered(Plugin())
    assert main(["eval", "--list-tasks", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"evaluator": "counter", "name": "count_words", "family": "user",
                                                    "kind": "generative", "metric": "words", "train": None, "test": 3,
                                                    "description": "", "source": "", "licence": ""}]


def test_hook_register_commands(registered, capsys):
    class Plugin:
        @hookimpl
        def register_commands(self, cli):
            p = cli.add_parser("hello", help="say hello")
            p.add_argument("--name", default="world")
            p.set_defaults(func=lambda args: print(f"hello, {args.name}") or 0)

    registered(Plugin())
    assert main(["hello", "--name", "loram"]) == 0
    assert capsys.readouterr().out == "hello, loram\n"


def test_the_guides_one_file_pruner_conforms(tmp_path, monkeypatch):
    """docs/plugins.md's pruner, run as written: installable module, conformance suite, ``--pruner-opt``."""
    import importlib

    from loram_core.configs import build_config
    from loram_core.errors import LoramError
    from loram_core.testing.conformance import check_pruner
    from loram_core.testing.conformance.harness import family

    guide = (REPO / "docs" / "plugins.md").read_text()
    source = guide.split("<!-- guide-pruner", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "loram_plugin_absmax.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("loram_plugin_absmax")
    pruner = module.AbsMaxPruner()
    check_pruner(pruner, workdir=tmp_path / "work")
    check_pruner(pruner, options={"reduce": "mean"}, families=[family("llama-gqa")], workdir=tmp_path / "work")
    with pytest.raises(LoramError, match="^pruner 'absmax': reduce must be one of max, mean, got 'median'$"):
        build_config(pruner.config_cls, {"reduce": "median"}, owner="pruner 'absmax'")
