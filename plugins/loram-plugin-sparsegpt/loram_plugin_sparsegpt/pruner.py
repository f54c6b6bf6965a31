"""The ``sparsegpt`` pruner (LoRAM-Unst, LoRAM-Semi): SparseGPT layer by layer, streamed from the checkpoint.

For each decoder layer: collect ``Σ x xᵀ`` of every target Linear's inputs (the outputs of the already
pruned previous layers), prune each Linear with SparseGPT, write its mask into the plan and its OBS-updated
weight into ``context.weights`` (the core still applies the mask: ``RUN_DIR/pruned`` gets the updated kept
weights and exact zeros), then run the pruned layer to produce the next layer's inputs.

Kept in the plan (``plan.json`` -> ``pruner.params``): the resolved options and, per layer,
``layer_errors[i] = {"error": Σ ‖WX − ŴX‖², "relative": that / Σ ‖WX‖²}`` over the layer's modules; both
are deterministic. Seconds per layer are shown in the progress table only: a plan made twice with the same
seed must hash the same.
"""

from __future__ import annotations

import time

import attrs

from loram_core.checkpoint import CheckpointReader
from loram_core.errors import LoramError
from loram_core.plan import MaskEntry, PrunePlan, PrunerInfo
from loram_plugin_sparsegpt.config import SparseGPTConfig
from loram_plugin_sparsegpt.hessian import InputStatistics
from loram_plugin_sparsegpt.masks import PackedMasks
from loram_plugin_sparsegpt.progress import layer_progress, print_layer_table
from loram_core.layer_stream import stream_layers
from loram_plugin_sparsegpt.sparsegpt import sparsegpt_prune
from loram_plugin_sparsegpt.targets import layer_linears, layer_range, plan_params, unsupported, with_modules
from loram_plugin_sparsegpt.version import __version__


def _significant(x: float) -> float:
    return float(f"{x:.6g}")  # plan.json stays readable; the value is a report, not an input


@attrs.frozen
class SparseGPTPruner:
    name: str = "sparsegpt"
    config_cls: type = SparseGPTConfig
    pattern: str = "unstructured"  # or N:M with --pruner-opt pattern=2:4
    description: str = "SparseGPT: OBS reconstruction layer by layer, unstructured or N:M (LoRAM-Unst / -Semi)"
    streaming: bool = True  # the core hands over a meta skeleton; layers are loaded from disk one at a time

    def unsupported(self, model_config) -> str | None:
        return unsupported(model_config)

    def plan(self, model, config: SparseGPTConfig, context) -> PrunePlan:
        config = with_modules(config, context)
        layers = layer_range(config, context)
        params = plan_params(config, layers)
        if context.calibration is None:
            raise LoramError("sparsegpt needs calibration data, and this context has none")
        ids = context.calibration(samples=config.samples, seq_len=config.seq_len, data=config.data)
        params.update(percdamp=config.percdamp, blocksize=config.blocksize, samples=int(ids.shape[0]),
                      seq_len=int(ids.shape[1]), data=config.data, batch_size=config.batch_size)
        keep_masks = PackedMasks()
        errors: dict[str, dict[str, float]] = {}
        rows: list[dict] = []
        title = f"sparsegpt {config.pattern}"
        if len(layers) == 0 or params["ratio"] == 0:
            return self._plan(context, params, errors, keep_masks)
        reader = CheckpointReader.open(context.model_path) if context.model_path else None

        with layer_progress(context.progress, layers.stop, title) as bar:
            started: dict[int, float] = {}

            def visit(index, prefix, layer, collect):
                started[index] = time.perf_counter()
                if index not in layers:  # a dense layer before the range: it only runs
                    return
                targets = layer_linears(layer, prefix, config)
                bar.note(f"layer {index}: input statistics")
                with InputStatistics(targets) as stats:
                    collect()
                bar.note(f"layer {index}: pruning")
                error = energy = 0.0
                pruned = numel = 0
                for name, linear in targets.items():
                    result = sparsegpt_prune(
                        linear.weight, stats.xtx[name], stats.tokens[name], ratio=params["ratio"], nm=config.nm,
                        per_row=config.per_row, percdamp=config.percdamp, blocksize=config.blocksize, name=name,
                    )
                    del stats.xtx[name]
                    linear.weight.data.copy_(result.weight)  # the next layer's inputs come from the pruned layer
                    if context.weights is not None:
                        context.weights.put(name, result.weight)
                    keep_masks.add(name, result.keep)
                    error, energy = error + result.error, energy + result.output_energy
                    pruned += result.keep.numel() - int(result.keep.sum())
                    numel += result.keep.numel()
                relative = error / energy if energy > 0 else 0.0
                errors[str(index)] = {"error": _significant(error), "relative": _significant(relative)}
                rows.append({"layer": index, "modules": len(targets), "sparsity": pruned / numel, "error": error,
                             "relative": relative})
                bar.note(f"layer {index}: outputs")

            def after(index):
                seconds = time.perf_counter() - started.pop(index)
                if index not in layers:
                    bar.layer_done(f"layer {index}: dense, {seconds:.1f} s")
                    return
                row = rows[-1]
                row["seconds"] = seconds
                bar.layer_done(f"layer {index}: ‖WX − ŴX‖² {row['error']:.4g} (relative {row['relative']:.4g}), "
                               f"{seconds:.1f} s")

            stream_layers(model, ids, stop=layers.stop, batch_size=config.batch_size, reader=reader,
                          visit=visit, after=after)
        print_layer_table(rows, title, context.progress)
        return self._plan(context, params, errors, keep_masks)

    def _plan(self, context, params: dict, errors: dict, keep_masks: PackedMasks) -> PrunePlan:
        info = PrunerInfo(self.name, __version__, {**params, "layer_errors": errors})
        entries = {name: MaskEntry(mask=mask, pattern=params["pattern"]) for name, mask in keep_masks.unpack().items()}
        return PrunePlan(base=context.fingerprint, pruner=info, pattern=params["pattern"], entries=entries)

