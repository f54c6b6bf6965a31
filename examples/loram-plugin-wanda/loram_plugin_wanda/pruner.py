"""The ``wanda`` pruner: calibration statistics, then one mask per Linear of the decoder layers it prunes.

It only decides: the plan holds boolean masks (pattern ``unstructured`` or ``N:M``), and loram applies them,
trains LoRA on the masked model and gives the dense original back at inference (recovery is the identity).
"""

from __future__ import annotations

import attrs

from loram_core.errors import LoramError
from loram_core.plan import MaskEntry, PrunePlan, PrunerInfo
from loram_plugin_wanda.activations import input_feature_norms
from loram_plugin_wanda.config import WandaConfig, nm
from loram_plugin_wanda.masks import nm_mask, unstructured_mask, wanda_scores

__version__ = "0.1.0"


def pruned_modules(config: WandaConfig, context) -> tuple[list[str], tuple[int, int]]:
    """The Linear modules of the layers to prune, as the model family's adapter lists them; and the range."""
    arch, model_config = context.arch, context.model_config
    n = arch.num_layers(model_config)
    start, end = config.layers if config.layers is not None else (0, n)
    if end > n:
        raise LoramError(f"wanda: layers {start}:{end} is outside the model's {n} decoder layers")
    modules = [m.module for layer in range(start, end) for g in arch.groups(model_config, layer) for m in g.members]
    return list(dict.fromkeys(modules)), (start, end)


@attrs.frozen
class WandaPruner:
    name: str = "wanda"
    config_cls: type = WandaConfig
    pattern: str = "unstructured"
    patterns: tuple[str, ...] = ("unstructured", "2:4", "4:8")
    description: str = "Wanda: |W| x input-feature L2 norm, lowest per output row (unstructured or N:M masks)"
    version: str = __version__

    def unsupported(self, model_config) -> str | None:
        """Scores are |W| x input norms over W's (out, in) rows: GPT-2's Conv1D stores W transposed."""
        from loram_core.arch import is_mixture

        if model_config.model_type == "gpt2":
            return "its Conv1D weights are stored (in, out); use a structured pruner (random, magnitude, llmpruner)"
        if is_mixture(model_config):
            return "its experts are 3-D parameters, not Linear modules; use random or magnitude (expert channels)"
        return None

    def plan(self, model, config: WandaConfig, context) -> PrunePlan:
        modules, layers = pruned_modules(config, context)
        if context.calibration is None:
            raise LoramError("wanda needs calibration data, and the prune context has none")
        tokens = context.calibration(samples=config.samples, seq_len=config.seq_len, data=config.data)
        norms = input_feature_norms(model, modules, tokens, config.batch_size, progress=context.progress)
        pair = nm(config.pattern)
        entries = {}
        for module in modules:
            scores = wanda_scores(model.get_submodule(module).weight, norms[module])
            mask = nm_mask(scores, *pair, module=module) if pair else unstructured_mask(scores, config.ratio)
            entries[module] = MaskEntry(mask=mask, pattern=config.pattern)
        params = {
            "ratio": config.sparsity,
            "pattern": config.pattern,
            "layers": list(layers),
            "samples": int(tokens.shape[0]),
            "seq_len": int(tokens.shape[1]),
            "data": config.data,
            "seed": context.seed,
        }
        info = PrunerInfo(self.name, self.version, params)
        return PrunePlan(base=context.fingerprint, pruner=info, pattern=config.pattern, entries=entries)
