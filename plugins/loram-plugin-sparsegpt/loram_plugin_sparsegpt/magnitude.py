"""``magnitude-unstructured``: the baseline SparseGPT is measured against (the reference's ``--gmp``).

Prunes the smallest ``|w|`` of each Linear, with no data and no weight update: per layer (exactly
``R(ratio * out * in)`` weights, the reference's global-magnitude baseline), per row with ``per_row=true``,
or the N smallest of every group of M input columns for an ``N:M`` pattern. It reads one weight at a time
from the checkpoint, so it streams like ``sparsegpt``.
"""

from __future__ import annotations

import time

import attrs
import torch

from loram_core.checkpoint import CheckpointReader
from loram_core.plan import MaskEntry, PrunePlan, PrunerInfo
from loram_plugin_sparsegpt.config import MaskPruneConfig
from loram_plugin_sparsegpt.masks import (
    keep_all_but_lowest,
    keep_all_but_lowest_n_of_m,
    keep_all_but_lowest_per_row,
    pruned_count,
)
from loram_plugin_sparsegpt.progress import layer_progress, print_layer_table
from loram_core.layer_stream import decoder_layers
from loram_plugin_sparsegpt.targets import layer_linears, layer_range, plan_params, unsupported, with_modules
from loram_plugin_sparsegpt.version import __version__


def magnitude_keep(weight: torch.Tensor, ratio: float, nm: tuple[int, int] | None = None,
                   per_row: bool = False) -> torch.Tensor:
    """Keep-mask of ``weight`` [out, in] pruned by magnitude: False at the weights removed."""
    scores = weight.detach().float().abs()
    if nm is not None:
        return keep_all_but_lowest_n_of_m(scores, *nm)
    if per_row:
        return keep_all_but_lowest_per_row(scores, pruned_count(ratio, scores.shape[1]))
    return keep_all_but_lowest(scores, pruned_count(ratio, scores.numel()))


@attrs.frozen
class MagnitudeMaskPruner:
    name: str = "magnitude-unstructured"
    config_cls: type = MaskPruneConfig
    pattern: str = "unstructured"
    description: str = "smallest |w| per layer (or N:M per group), no data, no update: SparseGPT's baseline"
    streaming: bool = True  # reads one weight at a time from the checkpoint

    def unsupported(self, model_config) -> str | None:
        return unsupported(model_config)

    def plan(self, model, config: MaskPruneConfig, context) -> PrunePlan:
        config = with_modules(config, context)
        layers = layer_range(config, context)
        ratio = plan_params(config, layers)["ratio"]
        reader = CheckpointReader.open(context.model_path) if context.model_path else None
        entries, rows = {}, []
        with layer_progress(context.progress, len(layers), f"{self.name} {config.pattern}") as bar:
            for index in layers:
                start = time.perf_counter()
                prefix = f"model.layers.{index}"
                pruned_total = numel = 0
                for name, linear in layer_linears(decoder_layers(model)[index], prefix, config).items():
                    weight = reader.get(f"{name}.weight") if linear.weight.is_meta else linear.weight
                    keep = magnitude_keep(weight, ratio, config.nm, config.per_row)
                    removed = keep.numel() - int(keep.sum())
                    if removed:
                        entries[name] = MaskEntry(mask=keep, pattern=config.pattern)
                    pruned_total += removed
                    numel += keep.numel()
                rows.append({"layer": index, "modules": len(config.modules), "sparsity": pruned_total / max(numel, 1),
                             "seconds": time.perf_counter() - start})
                bar.layer_done(f"layer {index}: sparsity {rows[-1]['sparsity']:.4f}")
        print_layer_table(rows, f"{self.name} {config.pattern}", context.progress)
        info = PrunerInfo(self.name, __version__, plan_params(config, layers))
        return PrunePlan(base=context.fingerprint, pruner=info, pattern=config.pattern, entries=entries)
