"""Plain helpers shared by more than one of loram's own test modules (fixtures live in conftest.py).

Importable as ``loram_test_helpers`` from any test under tests/: pytest's default ("prepend") import mode puts
this folder on ``sys.path`` when it loads tests/conftest.py. Test modules import from here, never from each
other. Helpers useful to plugin authors too (tiny models, ``FAST_FLAGS``, ``write_tiny_inputs``) live in
``loram_core.testing.tiny`` instead; the ``loram_register`` fixture in ``loram_core.testing.pytest_plugin``.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import torch
from peft import LoraConfig, get_peft_model

from loram_core import hookimpl, registry
from loram_core.arch import adapter_for
from loram_core.builtin.magnitude import MagnitudePruner
from loram_core.cli.main import main
from loram_core.configs import build_config
from loram_core.plan import MaskEntry, ModelFingerprint, PrunePlan, PrunerInfo
from loram_core.structured import PruneContext, StructuredConfig, structured_plan
from loram_core.testing.tiny import tiny_llama

TESTS = Path(__file__).resolve().parent  # tests/, whatever subfolder a test module sits in
REPO = TESTS.parent  # the repository
DATA = TESTS / "data"

# --- the CLI -------------------------------------------------------------------------------------------------

# Every key of report.json the design names, with the sub-keys each must have (None: any value).
REPORT_KEYS = {
    "schema": None,
    "model": {"name", "params"},
    "pruner": {"name", "ratio", "pattern"},
    "quantizer": None,
    "params": {"original", "pruned", "reduction_ratio"},
    "memory": {"param_bytes_original", "param_bytes_train", "train_peak_rss_mb"},
    "train": {"steps", "tokens", "tokens_per_s", "loss_first", "loss_last"},
    "ppl": {"original", "pruned", "pruned_lora", "loram"},
    "eval": {"dataset", "split", "tokens"},
    "align": None,
}


def cli_json(capsys, *args):
    """``loram ARGS`` must exit 0; what it printed on stdout, parsed as JSON."""
    capsys.readouterr()
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def error_line(capsys) -> str:
    """The one ``loram: error:`` line on stderr (and no traceback)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("loram: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def tree_hashes(root) -> dict[str, str]:
    """Every file under ``root`` by relative path, with its sha256: equal before and after means untouched.
    A run directory's ``.loram.lock`` is left out: it names the last process that held the run, by design."""
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file() and p.name != ".loram.lock"}


def external_adapter(folder, seed, **tiny):
    """A PEFT LoRA adapter for a tiny model, with random (non-zero) B so it changes the outputs."""
    base = tiny_llama(0, **tiny)
    torch.manual_seed(seed)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    get_peft_model(base, cfg).save_pretrained(folder)
    return folder


# --- prune plans ---------------------------------------------------------------------------------------------


def make_plan(model, pruner="magnitude", ratio=0.5, seed=0, **options):
    """A registered pruner's plan for ``model``."""
    cfg = model.config
    ctx = PruneContext(cfg, adapter_for(cfg), ModelFingerprint.from_config(cfg, "tiny"), seed=seed)
    p = registry.get("pruner", pruner)
    return p.plan(model, build_config(p.config_cls, {"ratio": ratio, **options}, owner=pruner), ctx)


def mask_plan(model, pattern="2:4", seed=0):
    """A 2:4 mask plan on two modules of a tiny model (random scores, seeded)."""
    gen = torch.Generator().manual_seed(seed)
    entries = {}
    for name in ("model.layers.1.self_attn.q_proj", "model.layers.2.mlp.down_proj"):
        w = model.get_submodule(name).weight
        scores = torch.rand(w.shape, generator=gen).view(w.shape[0], -1, 4)
        keep = scores.argsort(-1, descending=True).argsort(-1) < 2  # 2 largest of every 4
        entries[name] = MaskEntry(mask=keep.view(w.shape), pattern=pattern)
    fp = ModelFingerprint.from_config(model.config, "tiny")
    return PrunePlan(base=fp, pruner=PrunerInfo("test-mask", "0"), pattern=pattern, entries=entries)


# --- a quantizer and an aligner registered inside the tests (the ``stage_plugins`` fixture) -------------------


@attrs.frozen
class GridConfig:
    bits: int = 4


@attrs.frozen
class FakeQuantizer:
    """Rounds decoder Linear weights to a per-row grid of 2**bits levels, in fp32 (simulated quantization)."""

    name: str = "grid"
    config_cls: type = GridConfig
    zero_instead: bool = False  # a broken quantizer for the conformance suite: weights become noise

    def quantize(self, model, config):
        levels = 2**config.bits - 1
        with torch.no_grad():
            for name, module in model.named_modules():
                if isinstance(module, torch.nn.Linear) and ".layers." in name:
                    w = module.weight
                    if self.zero_instead:
                        w.normal_(0, 1)  # "quantized" to noise
                        continue
                    lo, hi = w.min(1, keepdim=True).values, w.max(1, keepdim=True).values
                    step = (hi - lo).clamp_min(1e-8) / levels
                    w.copy_(((w - lo) / step).round() * step + lo)
        return model


@attrs.frozen
class NormConfig:
    scale: float = 2.0


@attrs.frozen
class ScaleNormAligner:
    """Scales the final norm: a visible, checkable change to the pruned weights."""

    name: str = "scale-norm"
    config_cls: type = NormConfig

    def align(self, model, config, context):
        assert context.plan.pruner.name == "magnitude" and context.tokenizer is not None
        with torch.no_grad():
            model.model.norm.weight.mul_(config.scale)
        return {"dataset": "none", "steps": 1, "ppl_before": 2.0, "ppl_after": 1.0}


class StagePlugins:
    @hookimpl
    def register_quantizers(self, register):
        register(FakeQuantizer())

    @hookimpl
    def register_aligners(self, register):
        register(ScaleNormAligner())


# --- deliberately broken pruners for the conformance suite (also loaded by a pytester conftest) ---------------


@attrs.frozen
class BrokenCouplingPruner:
    """Magnitude's plan without its k_proj entries: q/v/o drop a KV group that k_proj keeps."""

    name: str = "broken-coupling"
    config_cls: type = StructuredConfig
    pattern: str = "structured"

    def plan(self, model, config, context):
        plan = MagnitudePruner().plan(model, config, context)
        entries = {m: e for m, e in plan.entries.items() if not m.endswith("k_proj")}
        return PrunePlan(base=plan.base, pruner=PrunerInfo(self.name, "0", plan.pruner.params), pattern=plan.pattern, entries=entries)


@attrs.frozen
class MissesRatioPruner:
    """Removes half of what the ratio asks for."""

    name: str = "misses-ratio"
    config_cls: type = StructuredConfig
    pattern: str = "structured"

    def plan(self, model, config, context):
        half = attrs.evolve(config, ratio=config.ratio / 2)
        return structured_plan(model, half, context, PrunerInfo(self.name, "0", {"ratio": config.ratio}),
                               lambda group: -torch.arange(group.units, dtype=torch.float32))
