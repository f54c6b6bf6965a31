"""The paper's parameter accounting (reference §4), computed from the architecture adapter's coupling groups.

Structured plans remove whole units: ``group.removed(ratio)`` units times each member's unit size times the
member's other dimension (plus its bias rows). Mask plans keep shapes; the paper counts the zeros as
removed (its ▲ ratios): ``sparsity x`` every prunable decoder weight in range. A b-bit quantized parameter
counts as b/16 of one (QLoRAM: a quarter at 4 bits). Nothing here loads weights: the model is on meta.
"""

from __future__ import annotations

import re

import attrs

from loram_core.plan.fingerprint import count_parameters, meta_model
from loram_core.protocols import Pruner, optional_member

_NM = re.compile(r"^(\d+):(\d+)$")


@attrs.frozen
class ParamEstimate:
    original: int
    pruned: int
    bits: int | None  # bits per quantized weight (None: not quantized)
    pattern: str
    layers: tuple[int, int]
    active: int | None = None  # mixtures of experts: parameters one token uses in the original

    @property
    def effective(self) -> float:
        """16-bit equivalents: the paper's "#params" for QLoRAM (pruned / 4 at 4 bits)."""
        return self.pruned * self.bits / 16 if self.bits else float(self.pruned)

    @property
    def reduction_ratio(self) -> float:
        return self.original / self.effective

    @property
    def hbm_gib(self) -> float:
        """The paper's weight memory: 16-bit equivalents x 2 bytes, in GiB."""
        return self.effective * 2 / 2**30

    def to_dict(self) -> dict:
        """The ``params`` block of the run report (docs/architecture.md, "The run report"), plus its inputs."""
        return {"original": self.original, "pruned": self.pruned, "reduction_ratio": self.reduction_ratio,
                "effective": self.effective, "bits": self.bits, "pattern": self.pattern,
                "layers": list(self.layers), "weights_gib_16bit": self.hbm_gib,
                **({"active": self.active} if self.active is not None else {})}


def _linear_info(model) -> dict[str, tuple[int, int, bool]]:
    from loram_core.plan.layout import is_prunable, out_in_shape

    return {name: (*out_in_shape(m), m.bias is not None) for name, m in model.named_modules() if is_prunable(m)}


def structured_removed(config, arch, ratio: float, layers: range, attention: bool = True, mlp: bool = True,
                       linears=None, align_to: int = 1, attention_units: str = "kv_groups", experts: bool = True,
                       experts_ratio: float = 0.0) -> int:
    from loram_core.arch import family_groups, layer_expert_groups

    linears = linears or _linear_info(meta_model(config))
    removed = 0
    for layer in layers:
        for group in layer_expert_groups(arch, config, layer):
            removed += expert_removed(config, group, ratio if experts else 0.0, experts_ratio)
        for group in family_groups(arch, config, layer, attention_units):
            if not {"attention": attention, "mlp": mlp}.get(group.kind, True):
                continue
            units = group.removed(ratio, align_to)
            for member in group.members:
                out, inp, bias = linears[member.module]
                other = inp if member.axis == "out" else out
                removed += units * member.unit_size * (other + (1 if bias and member.axis == "out" else 0))
    return removed


def expert_removed(config, group, ratio: float, experts_ratio: float) -> int:
    """Parameters a plan removes from one expert group: every kept expert's channels (gate, up rows and down
    columns of each), whole experts, and the removed experts' router rows."""
    hidden = config.hidden_size
    gone = group.removed_experts(experts_ratio)
    channels = group.removed_channels(ratio) if ratio else 0
    return (group.experts - gone) * channels * 3 * hidden + gone * (3 * group.channels * hidden + hidden)


def active_parameters(config, arch, total: int) -> int | None:
    """Parameters one token uses: the total less the experts it is not routed to (None: a dense model)."""
    from loram_core.arch import layer_expert_groups

    groups = [g for layer in range(arch.num_layers(config)) for g in layer_expert_groups(arch, config, layer)]
    if not groups:
        return None
    return total - sum((g.experts - g.top_k) * 3 * g.channels * config.hidden_size for g in groups)


def masked_removed(config, arch, sparsity: float, layers: range, linears=None) -> int:
    linears = linears or _linear_info(meta_model(config))
    modules = {m.module for layer in layers for g in arch.groups(config, layer) for m in g.members}
    return sum(round(linears[m][0] * linears[m][1] * sparsity) for m in modules)


def pattern_sparsity(pattern: str, ratio: float | None) -> float:
    m = _NM.match(pattern)
    if m:
        return int(m.group(1)) / int(m.group(2))
    return float(ratio or 0.0)


def estimate_params(config, arch, pruner, pruner_config, bits: int | None = None) -> ParamEstimate:
    """Original and pruned counts for ``pruner`` with ``pruner_config`` on the model of ``config``.

    A pruner may define ``estimate_removed(config, pruner_config, arch) -> int`` (optional in ``Pruner``) for
    its own accounting; otherwise structured pruners use the default layer range and mask pruners all decoder layers.
    """
    model = meta_model(config)
    original = count_parameters(model)
    linears = _linear_info(model)
    pattern = getattr(pruner_config, "pattern", None) or optional_member(pruner, Pruner, "pattern")
    ratio = getattr(pruner_config, "ratio", None)
    chosen = getattr(pruner_config, "layers", None)
    if pattern == "structured":
        start, end = chosen or arch.default_layers(config)
    else:
        start, end = chosen or (0, arch.num_layers(config))
    layers = range(start, min(end, arch.num_layers(config)))
    estimate_removed = optional_member(pruner, Pruner, "estimate_removed")
    if estimate_removed is not None:
        removed = estimate_removed(config, pruner_config, arch)
    elif pattern == "structured":
        experts_ratio = getattr(pruner_config, "experts_ratio", 0.0)
        removed = 0 if not (ratio or experts_ratio) else structured_removed(
            config, arch, ratio or 0.0, layers, getattr(pruner_config, "attention", True),
            getattr(pruner_config, "mlp", True), linears, getattr(pruner_config, "align_to", 1),
            getattr(pruner_config, "attention_units", "kv_groups"), getattr(pruner_config, "experts", True),
            experts_ratio)
    else:
        removed = masked_removed(config, arch, pattern_sparsity(pattern, ratio), layers, linears)
    return ParamEstimate(original, original - removed, bits, pattern, (layers.start, layers.stop),
                         active_parameters(config, arch, original))

