"""PNG plots of collected results (matplotlib, Agg backend: no display needed).

Four figures, each with a title, labelled axes and units: perplexity per variant as grouped bars, perplexity
against the parameter reduction ratio (the paper's Figure 7 layout), training loss curves, and the measured
training peak per variant.
"""

from __future__ import annotations

from pathlib import Path

from loram_core.errors import LoramError

SERIES = (("original", "original, no fine-tuning"), ("pruned", "pruned, no fine-tuning"),
          ("pruned_lora", "pruned + adapter (infer small)"), ("loram", "original + recovered adapter (LoRAM)"))


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LoramError("plots need matplotlib: pip install 'loram[plots]'") from None
    return plt


def _done(rows):
    return [r for r in rows if r["status"] == "done"]


def _styles(rows) -> dict[str, dict]:
    """One color per strategy (pruner and pattern), so a strategy's full-precision and quantized cells read as a
    pair: solid line and round marker without a quantizer, dashed line and square marker with one."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"].colors
    strategies: dict[tuple, tuple] = {}
    styles = {}
    for r in rows:
        key = (r.get("pruner"), r.get("pattern"), r.get("aligner"))
        color = strategies.setdefault(key, palette[len(strategies) % len(palette)])
        quantized = bool(r.get("quantizer"))
        styles[r["label"]] = {"color": color, "linestyle": "--" if quantized else "-",
                              "marker": "s" if quantized else "o"}
    return styles


def _legend_outside(ax, **kwargs):
    # outside the axes, so no bar, point or curve is hidden behind it; _save crops to include it
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, **kwargs)


def ppl_bars(rows, path: Path, title: str) -> Path:
    plt = _pyplot()
    rows = _done(rows)
    fig, ax = plt.subplots(figsize=(max(10, 1.3 * len(rows) + 5), 5), dpi=110)
    width = 0.8 / len(SERIES)
    for k, (key, name) in enumerate(SERIES):
        xs = [i + (k - 1.5) * width for i in range(len(rows))]
        ys = [r["ppl"].get(key) or float("nan") for r in rows]
        ax.bar(xs, ys, width, label=name)
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=25, ha="right")
    ax.set_ylabel("perplexity on the test split (log scale, lower is better)")
    ax.set_title(title)
    _legend_outside(ax)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def ppl_vs_reduction(rows, path: Path, title: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5), dpi=110)
    styles = _styles(_done(rows))
    for r in _done(rows):
        x = r["params"].get("reduction_ratio")
        if x is None or r["ppl"].get("loram") is None:
            continue
        style = styles[r["label"]]
        # a legend rather than text beside each point: cells at the same ratio would print over each other
        ax.scatter([x], [r["ppl"]["loram"]], s=45, color=style["color"], marker=style["marker"],
                   label=f"{r['label']} ({r['ppl']['loram']:.2f})")
    original = next((r["ppl"].get("original") for r in _done(rows) if r["ppl"].get("original")), None)
    if original:
        ax.axhline(original, color="grey", linestyle=":", label=f"original, no fine-tuning ({original:.2f})")
    _legend_outside(ax)
    ax.set_xlabel("parameter reduction ratio (original / pruned; 4-bit counts as 1/4)")
    ax.set_ylabel("LoRAM perplexity (original + recovered adapter)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def loss_curves(rows, path: Path, title: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5), dpi=110)
    styles = _styles(_done(rows))
    for r in _done(rows):
        style = styles[r["label"]]
        if r["losses"]:
            ax.plot(range(1, len(r["losses"]) + 1), r["losses"], label=r["label"], linewidth=1.2,
                    color=style["color"], linestyle=style["linestyle"])
        if r.get("val_losses"):  # --eval-every: validation loss at its steps, from metrics.jsonl
            steps, values = zip(*r["val_losses"])
            ax.plot(steps, values, marker="o", markersize=4, linewidth=0.8, color=style["color"], linestyle=":",
                    label=f"{r['label']} (validation)")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(title)
    _legend_outside(ax)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def peak_memory(rows, path: Path, title: str) -> Path:
    plt = _pyplot()
    rows = [r for r in _done(rows) if r["memory"].get("train_peak_rss_mb") is not None]
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(rows) + 3), 5), dpi=110)
    bars = ax.bar(range(len(rows)), [r["memory"]["train_peak_rss_mb"] for r in rows], color="tab:purple")
    ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=25, ha="right")
    ax.set_ylabel("measured training peak RSS (MB)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, bbox_inches="tight")  # the crop includes legends placed outside the axes
    tmp.replace(path)  # a half-written PNG never replaces a good one
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def all_plots(rows, folder: Path, subject: str) -> list[Path]:
    return [
        ppl_bars(rows, folder / "ppl_by_variant.png", f"Perplexity per variant — {subject}"),
        ppl_vs_reduction(rows, folder / "ppl_vs_reduction.png", f"LoRAM perplexity vs parameter reduction — {subject}"),
        loss_curves(rows, folder / "loss_curves.png", f"Training loss — {subject}"),
        peak_memory(rows, folder / "peak_memory.png", f"Measured training peak memory — {subject}"),
    ]
