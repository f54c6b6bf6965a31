"""A grid of run configurations: strategies x ratios x quantizer x aligner, plus the full-model baselines."""

from __future__ import annotations

import itertools
import re

import attrs

from loram_core.errors import LoramError

_SAFE = re.compile(r"[^A-Za-z0-9.=_-]+")
_N_OF_M = re.compile(r"^\d+:\d+$")


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
    def pattern(self) -> str | None:
        return dict(self.options).get("pattern")

    def label(self, detail: bool = False) -> str:
        """``sparsegpt 2:4``; with ``detail`` the other options too: ``sparsegpt 2:4 samples=32``."""
        text = self.pruner + (f" {self.pattern}" if self.pattern else "")
        if detail:
            text += "".join(f" {k}={v}" for k, v in self.options if k != "pattern")
        return text


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
        return self.describe()

    def describe(self, detail: bool = False) -> str:
        """What a table row or a plot legend calls the cell. The ratio is left out where an N:M pattern fixes
        the sparsity; options other than the pattern only with ``detail`` (see ``labels``)."""
        if self.strategy.pruner == "none":
            text = "QLoRA full model" if self.quantizer else "LoRA full model"
        else:
            text = self.strategy.label(detail)
            if self.ratio is not None and not _N_OF_M.match(self.strategy.pattern or ""):
                text += f" {self.ratio:g}"
            text += f" + {self.quantizer}" if self.quantizer else ""
        return text + (f" + {self.aligner}" if self.aligner else "")

    @classmethod
    def from_dict(cls, d: dict) -> Cell:
        options = tuple((str(k), str(v)) for k, v in (d.get("options") or {}).items())
        return cls(Strategy(d["pruner"], options), d.get("ratio"), d.get("quantizer"), d.get("aligner"))

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


def labels(cells: list[Cell]) -> list[str]:
    """Short labels, with every option spelled out only for cells whose short labels would collide
    (``sparsegpt 2:4 samples=32`` next to ``sparsegpt 2:4 samples=128``)."""
    short = [c.describe() for c in cells]
    return [c.describe(detail=True) if short.count(s) > 1 else s for c, s in zip(cells, short)]


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
