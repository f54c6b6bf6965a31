"""The lifecycle's prune stage in miniature, on tiny saved models: what a pruner receives and what the core does.

It mirrors ``loram_core/lifecycle/prune.py`` step for step (the same ``PruneContext``, a ``WeightStore``, a
meta-device skeleton for pruners with ``streaming = True``, an optional member of ``loram_core.protocols.Pruner``,
validation, the in-memory or streamed write of the pruned weights, ``materialize_pruned``), so a pruner that
passes here behaves the same inside ``loram run``.
Calibration windows are seeded random token ids of the tiny vocabulary, whatever ``data`` a pruner asks for.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
from pathlib import Path
from typing import Any, Mapping

import attrs
import torch

CALIBRATION_SAMPLES, CALIBRATION_SEQ_LEN = 8, 32


class PrunerRefused(Exception):
    """The pruner declares (``Pruner.unsupported``) that it does not prune this family; the message says why."""


@attrs.frozen
class TinyFamily:
    """A tiny random model of one architecture variant, saved as a stock Hugging Face folder when used."""

    name: str
    options: Mapping[str, Any] = attrs.field(converter=dict)
    # a third party's family: its ``tiny_config()`` (the options then go unused)
    factory: Any = attrs.field(default=None, eq=False)

    def config(self):
        from loram_core.testing.tiny import tiny_llama_config

        return self.factory() if self.factory is not None else tiny_llama_config(**self.options)

    def save(self, folder: Path) -> Path:
        from loram_core.testing.tiny import save_tiny_model, tiny_tokenizer

        path = Path(folder) / self.name
        if not (path / "config.json").is_file():
            if self.factory is None:
                save_tiny_model(path, seed=0, **self.options)
            else:
                from transformers import AutoModelForCausalLM

                torch.manual_seed(0)
                AutoModelForCausalLM.from_config(self.factory(), dtype=torch.float32).save_pretrained(path)
                tiny_tokenizer().save_pretrained(path)
        return path


# Multi-head and grouped-query attention, and more families of the adapter (Qwen2: q/k/v biases; Qwen3: q/k
# norms and a head_dim wider than hidden / heads, so the query width is not the hidden size; Gemma 3 below).
FAMILIES = (
    TinyFamily("llama-mha", {"gqa": False}),
    TinyFamily("llama-gqa", {"gqa": True}),
    TinyFamily("qwen2-gqa", {"gqa": True, "model_type": "qwen2"}),
    TinyFamily("qwen3-gqa", {"gqa": True, "model_type": "qwen3", "head_dim": 16}),
    # Gemma 3: sliding-window and full-attention layers mixed, scaled embeddings, four norms per layer
    TinyFamily("gemma3-gqa", {"gqa": True, "model_type": "gemma3_text", "head_dim": 16, "sliding_window": 8}),
    # Gemma 2: soft-capped attention logits and final logits
    TinyFamily("gemma2-gqa", {"gqa": True, "model_type": "gemma2", "head_dim": 16, "sliding_window": 8}),
    # Phi-3: fused qkv_proj and gate_up_proj, one module holding several coupled segments
    TinyFamily("phi3-gqa", {"gqa": True, "model_type": "phi3"}),
    # GPT-2: Conv1D weights stored (in, out), fused c_attn, biases everywhere, learned positions
    TinyFamily("gpt2-mha", {"gqa": False, "model_type": "gpt2"}),
)


def installed_families() -> list[TinyFamily]:
    """``FAMILIES`` and, for every registered family whose model types they do not cover, its own tiny model
    (``ArchitectureFamily.tiny_config()``, docs/plugins.md): a third party's family is checked like the built-ins."""
    from loram_core.registry import collect

    covered = {f.config().model_type for f in FAMILIES}
    extra = [TinyFamily(f"{r.obj.name}-tiny", {}, factory=r.obj.tiny_config) for r in collect("architecture").values()
             if getattr(r.obj, "tiny_config", None) is not None and not covered & set(r.obj.model_types)]
    return [*FAMILIES, *extra]


def family(name: str) -> TinyFamily:
    from loram_core.errors import LoramError

    for f in installed_families():
        if f.name == name:
            return f
    raise LoramError(f"unknown tiny model family '{name}' (known: {', '.join(f.name for f in installed_families())})")


class TinyCalibration:
    """``context.calibration(samples=None, seq_len=None, data=None)``: seeded windows, as the run's would be."""

    def __init__(self, vocab_size: int, seed: int):
        self.vocab_size, self.seed = vocab_size, seed
        self.calls: list[dict] = []

    def __call__(self, samples: int | None = None, seq_len: int | None = None, data: str | None = None) -> torch.Tensor:
        self.calls.append({"samples": samples, "seq_len": seq_len, "data": data})
        samples = samples or CALIBRATION_SAMPLES
        seq_len = seq_len or CALIBRATION_SEQ_LEN
        gen = torch.Generator().manual_seed(self.seed)
        return torch.randint(0, self.vocab_size, (samples, seq_len), generator=gen)


_ORIGINALS: dict[str, Any] = {}


def original_model(path: Path):
    """A fresh copy of the saved tiny model as ``load_model`` gives it (loaded once per folder, then copied)."""
    from loram_core.models.loading import load_model

    key = str(Path(path).resolve())
    if key not in _ORIGINALS:
        _ORIGINALS[key] = load_model(path)
    return copy.deepcopy(_ORIGINALS[key])


@attrs.frozen
class PruneOutcome:
    """One call of ``pruner.plan`` and what the core made of it."""

    pruner: Any
    family: TinyFamily
    options: Mapping[str, Any]
    model_path: Path
    config: Any
    pruner_config: Any
    plan: Any
    store: Any  # the WeightStore the pruner wrote reconstructed weights to
    streamed: bool
    mutated: list[str]  # parameters of the in-memory original that plan() changed (a pruner only decides)


def pruner_config(pruner, options: Mapping[str, Any]):
    """The pruner's config from ``options``, as ``lifecycle.prune.pruner_config`` builds it (ratio only if known)."""
    from loram_core.configs import build_config

    fields = {f.name for f in attrs.fields(pruner.config_cls)}
    options = {k: v for k, v in options.items() if k in fields or k not in ("ratio", "layers")}
    return build_config(pruner.config_cls, options, owner=f"pruner '{pruner.name}'")


def run_pruner(pruner, fam: TinyFamily, options: Mapping[str, Any], workdir: Path, *, seed: int = 0) -> PruneOutcome:
    """Call ``pruner.plan`` the way the prune stage does; return the plan unvalidated (checks come after)."""
    from loram_core.arch import adapter_for
    from loram_core.lifecycle.prune import streaming_skeleton
    from loram_core.models.loading import load_config, load_tokenizer
    from loram_core.plan import ModelFingerprint
    from loram_core.plan.weight_store import WeightStore
    from loram_core.prune_context import PruneContext
    from loram_core.protocols import Pruner, pruner_refusal
    from loram_core.testing.conformance.failure import fail_unless_satisfies

    fail_unless_satisfies(pruner, Pruner, "pruner")
    workdir = Path(workdir)
    path = fam.save(workdir / "models")
    config = load_config(path)
    cfg = pruner_config(pruner, options)
    refusal = pruner_refusal(pruner, config)
    if refusal:  # declared up front, as the prune stage refuses it: no check applies to this family
        raise PrunerRefused(refusal)
    skeleton = streaming_skeleton(pruner, config, str(path))  # as the prune stage decides
    streaming = skeleton is not None
    model = skeleton if streaming else original_model(path)
    before = None if streaming else {k: v.clone() for k, v in model.state_dict().items()}
    store = WeightStore(Path(tempfile.mkdtemp(prefix="weights-", dir=workdir)))
    context = PruneContext(
        model_config=config,
        arch=adapter_for(config),
        fingerprint=ModelFingerprint.from_config(config, name_or_path=str(path)),
        seed=seed,
        calibration=TinyCalibration(config.vocab_size, seed),
        progress=False,
        tokenizer=load_tokenizer(path),
        model_path=str(path),
        weights=store,
    )
    plan = pruner.plan(model, cfg, context)
    mutated = []
    if before is not None:
        after = model.state_dict()
        mutated = [k for k, v in before.items() if k not in after or not torch.equal(after[k], v)]
    return PruneOutcome(pruner, fam, dict(options), path, config, cfg, plan, store, streaming, mutated)


def materialize(outcome: PruneOutcome, workdir: Path):
    """The pruned model as the lifecycle builds it: weights written (in memory or streamed), then config + plan."""
    from loram_core.checkpoint import CheckpointReader
    from loram_core.lifecycle.pruned_folder import load_pruned_weights, save_pruned_model_weights, stream_pruned_weights
    from loram_core.plan.apply import apply_plan, empty_model, materialize_pruned

    folder = Path(tempfile.mkdtemp(prefix="pruned-", dir=workdir))
    if outcome.streamed:
        stream_pruned_weights(CheckpointReader.open(outcome.model_path), outcome.plan, empty_model(outcome.config),
                              folder, outcome.store)
    else:
        model = apply_plan(original_model(outcome.model_path), outcome.plan, outcome.store)
        save_pruned_model_weights(model, folder)
    return materialize_pruned(outcome.config, outcome.plan, load_pruned_weights(folder))


def fixed_batch(config, seed: int = 1, rows: int = 2, seq_len: int = 16) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (rows, seq_len), generator=gen)


@contextlib.contextmanager
def scratch_dir(workdir: Path | None):
    """``workdir`` as is, or a temporary folder removed afterwards."""
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        yield Path(workdir)
        return
    with tempfile.TemporaryDirectory(prefix="loram-conformance-") as tmp:
        yield Path(tmp)
