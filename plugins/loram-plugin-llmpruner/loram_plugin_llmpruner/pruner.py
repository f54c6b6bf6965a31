"""The ``llmpruner`` pruner (LoRAM-Stru): LLM-Pruner's importance over coupled groups, as a slice plan."""

from __future__ import annotations

from itertools import groupby

import attrs
import torch

from loram_core.arch import layer_expert_groups
from loram_core.errors import LoramError
from loram_core.plan import PrunePlan, PrunerInfo
from loram_core.structured import layer_range
from loram_core.structured_experts import expert_entries
from loram_plugin_llmpruner.calibrate import calibration_gradients, progress_bar
from loram_plugin_llmpruner.config import LLMPrunerConfig
from loram_plugin_llmpruner.importance import GradientStats, expert_channel_importance, unit_importance
from loram_plugin_llmpruner.ranking import global_ranking_plan, groups_to_prune, layer_ranking_plan
from loram_plugin_llmpruner.report import print_removal_table, removal_rows
from loram_plugin_llmpruner.version import __version__


def score_groups(model, groups, cfg: LLMPrunerConfig, stats: dict[str, GradientStats] | None, progress: bool) -> dict[str, torch.Tensor]:
    """``group.name -> [units]`` fp64 importance, layer by layer."""
    scores = {}
    by_layer = [(layer, list(gs)) for layer, gs in groupby(groups, key=lambda g: g.layer)]
    with progress_bar(progress, "scoring layers") as bar:
        task = bar.add_task("layers", total=len(by_layer), note="")
        for layer, layer_groups in by_layer:
            for group in layer_groups:
                scores[group.name] = unit_importance(model, group, cfg.criterion, cfg.aggregation, stats)
            bar.update(task, advance=1, note=f"layer {layer}")
    return scores


@attrs.frozen
class LLMPruner:
    name: str = "llmpruner"
    config_cls: type = LLMPrunerConfig
    pattern: str = "structured"
    description: str = "LLM-Pruner: Taylor / norm importance of whole KV groups and MLP channels (LoRAM-Stru)"

    def plan(self, model, config: LLMPrunerConfig, context) -> PrunePlan:
        groups = groups_to_prune(config, context)
        experts = [g for layer in layer_range(config, context)
                   for g in layer_expert_groups(context.arch, context.model_config, layer)] if config.experts else []
        params = {
            "ratio": config.ratio,
            "attention": config.attention,
            "mlp": config.mlp,
            "criterion": config.criterion,
            "aggregation": config.aggregation,
            "ranking": config.ranking,
            "samples": None,  # set below when calibration data is used
            "seq_len": None,
            "data": config.data,  # None: the run's training split
            "align_to": config.align_to,
            "attention_units": config.attention_units,
            "experts": config.experts,
            "experts_ratio": config.experts_ratio,
            "seed": context.seed,
        }
        stats = None
        if config.needs_gradients and (groups or experts):
            if context.calibration is None:
                raise LoramError(f"pruner 'llmpruner': criterion '{config.criterion}' needs calibration data, and the context has none")
            tokens = context.calibration(samples=config.samples, seq_len=config.seq_len, data=config.data)
            params["samples"], params["seq_len"] = int(tokens.shape[0]), int(tokens.shape[1])
            modules = sorted({m.module for g in groups for m in g.members} | {p for g in experts for p in (g.gate_up, g.down)})
            stats = calibration_gradients(
                model, modules, tokens, second_order=config.needs_second_order, progress=context.progress
            )
        scores = score_groups(model, groups, config, stats, context.progress)
        scores.update({g.name: expert_channel_importance(model, g, config.criterion, config.aggregation, stats)
                       for g in experts})
        del stats  # the gradient buffers are as large as the scored weights
        info = PrunerInfo(self.name, __version__, params)
        if config.ranking == "global":
            plan = global_ranking_plan(model, config, context, info, groups, scores)
            if experts:  # layer ranking's structured_plan adds them itself; experts keep per-layer counts
                entries = expert_entries(model, config, context, experts, lambda g: scores[g.name])
                plan = attrs.evolve(plan, entries={**plan.entries, **entries})
        else:
            plan = layer_ranking_plan(model, config, context, info, scores)
        rows = removal_rows(plan, config, context, scores)
        if context.progress:
            print_removal_table(rows, f"llmpruner: {config.criterion}/{config.aggregation}, {config.ranking} ranking, ratio {config.ratio}")
        # The same table travels with the plan (plan.json, the run report's prune stage).
        return attrs.evolve(plan, pruner=attrs.evolve(plan.pruner, params={**plan.pruner.params, "per_layer": rows}))
