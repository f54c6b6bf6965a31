"""What the plan removed, per layer: KV groups and MLP channels kept, and the share of importance removed."""

from __future__ import annotations

from typing import Mapping

import torch

from loram_core.plan import PrunePlan
from loram_core.structured import config_groups, kept_units, layer_range


def removal_rows(plan: PrunePlan, cfg, ctx, scores: Mapping[str, torch.Tensor]) -> list[dict]:
    """One JSON-ready row per layer of the range; ``*_removed_share`` is None where nothing was scored."""
    rows = []
    for layer in layer_range(cfg, ctx):
        row: dict = {"layer": layer}
        for group in config_groups(cfg, ctx, layer):
            key = "mlp_channels" if group.kind == "mlp" else getattr(cfg, "attention_units", "kv_groups")
            kept = kept_units(plan, group)
            row[key] = [int(kept.numel()), group.units]
            share = None
            if group.name in scores:
                score = scores[group.name]
                total = float(score.sum())
                removed = float(score.sum() - score[kept].sum())
                share = round(removed / total, 6) if total > 0 else 0.0
            row[f"{group.kind}_removed_share"] = share
        rows.append(row)
    return rows


def print_removal_table(rows: list[dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    units = "query_heads" if rows and "query_heads" in rows[0] else "kv_groups"
    heads = "query heads kept" if units == "query_heads" else "KV groups kept"
    for column in ("layer", heads, "MLP channels kept", "attn importance removed", "MLP importance removed"):
        table.add_column(column, justify="right")

    def share(value):
        return "-" if value is None else f"{100 * value:.2f}%"

    for row in rows:
        table.add_row(
            str(row["layer"]),
            "{}/{}".format(*row[units]),
            "{}/{}".format(*row["mlp_channels"]),
            share(row.get("attention_removed_share")),
            share(row.get("mlp_removed_share")),
        )
    Console(stderr=True).print(table)
