"""A grid of run configurations: strategies x ratios x quantizer x aligner, plus the full-model baselines."""

from __future__ import annotations

import itertools
import re

import attrs

from loram_core.errors import LoramError

_SAFE = re.compile(r"[^A-Za-z0-9.=_-]+")


@attrs.frozen
class Strategy:
    """A pruner with options, e.g. ``sparsegpt:pattern=2:4`` -> pruner sparsegpt, options {pattern: "2:4"}."""

    pruner: str
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, spec: str) -> Strategy:
        name, _, rest = spec.partition(":")
        options = []
        for item in filter(None, rest.split(",")):
            key, eq, value = item.partition("=")
            if not eq:
                raise LoramError(f"strategy '{spec}': options look like NAME:KEY=VALUE[,KEY=VALUE]")
            options.append((key.strip(), value.strip()))
        if not name:
            raise LoramError(f"strategy '{spec}' has no pruner name")
        return cls(name.strip(), tuple(options))

    @property
    def label(self) -> str:
        return self.pruner + "".join(f" {v}" for _, v in self.options)


@attrs.frozen
class Cell:
    strategy: Strategy
    ratio: float | None  # None: the pruner takes no ratio (the `none` baseline)
    quantizer: str | None
    aligner: str | None

    @property
    def name(self) -> str:
        parts = [self.strategy.pruner, *(v for _, v in self.strategy.options)]
        if self.ratio is not None:
            parts.append(f"r{self.ratio:g}")
        parts += [self.quantizer or "fp", f"align-{self.aligner}" if self.aligner else "noalign"]
        return _SAFE.sub("_", "-".join(parts).replace(":", "of"))

    @property
    def label(self) -> str:
        if self.strategy.pruner == "none":
            text = "QLoRA full model" if self.quantizer else "LoRA full model"
        else:
            text = self.strategy.label + ("" if self.ratio is None else f" {self.ratio:g}")
            text += f" + {self.quantizer}" if self.quantizer else ""
        return text + (f" + {self.aligner}" if self.aligner else "")

    def run_args(self) -> list[str]:
        args = ["--pruner", self.strategy.pruner]
        if self.ratio is not None:
            args += ["--ratio", str(self.ratio)]
        for key, value in self.strategy.options:
            args += ["--pruner-opt", f"{key}={value}"]
        if self.quantizer:
            args += ["--quantizer", self.quantizer]
        if self.aligner:
            args += ["--aligner", self.aligner]
        return args

    def to_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "pruner": self.strategy.pruner,
                "options": dict(self.strategy.options), "ratio": self.ratio, "quantizer": self.quantizer,
                "aligner": self.aligner}


def _none_if_off(values) -> list[str | None]:
    return [None if v in ("", "none", "off") else v for v in values]


def build_grid(strategies: list[str], ratios: list[float], quantizers: list[str], aligners: list[str],
               baselines: bool = True) -> list[Cell]:
    """Every strategy x ratio x quantizer x aligner; with ``baselines``, LoRA/QLoRA on the full model."""
    cells = []
    quants, aligns = _none_if_off(quantizers or ["none"]), _none_if_off(aligners or ["none"])
    for spec, ratio, quant, align in itertools.product(strategies, ratios, quants, aligns):
        strategy = Strategy.parse(spec)
        if strategy.pruner == "none":
            continue
        cells.append(Cell(strategy, ratio, quant, align))
    if baselines:
        cells += [Cell(Strategy("none"), None, quant, None) for quant in quants]
    names = [c.name for c in cells]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LoramError(f"the grid names the same cell twice: {', '.join(dupes)}")
    return cells
