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


def ppl_bars(rows, path: Path, title: str) -> Path:
    plt = _pyplot()
    rows = _done(rows)
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(rows) + 3), 5), dpi=110)
    width = 0.8 / len(SERIES)
    for k, (key, name) in enumerate(SERIES):
        xs = [i + (k - 1.5) * width for i in range(len(rows))]
        ys = [r["ppl"].get(key) or float("nan") for r in rows]
        ax.bar(xs, ys, width, label=name)
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=25, ha="right")
    ax.set_ylabel("perplexity on the test split (log scale, lower is better)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def ppl_vs_reduction(rows, path: Path, title: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for r in _done(rows):
        x = r["params"].get("reduction_ratio")
        if x is None or r["ppl"].get("loram") is None:
            continue
        ax.scatter([x], [r["ppl"]["loram"]], s=40)
        ax.annotate(r["label"], (x, r["ppl"]["loram"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    original = next((r["ppl"].get("original") for r in _done(rows) if r["ppl"].get("original")), None)
    if original:
        ax.axhline(original, color="grey", linestyle="--", label=f"original, no fine-tuning ({original:.2f})")
        ax.legend(fontsize=8)
    ax.set_xlabel("parameter reduction ratio (original / pruned; 4-bit counts as 1/4)")
    ax.set_ylabel("LoRAM perplexity (original + recovered adapter)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def loss_curves(rows, path: Path, title: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for r in _done(rows):
        if r["losses"]:
            ax.plot(range(1, len(r["losses"]) + 1), r["losses"], label=r["label"], linewidth=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (nats per token)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def peak_memory(rows, path: Path, title: str) -> Path:
    plt = _pyplot()
    rows = [r for r in _done(rows) if r["memory"].get("train_peak_rss_mb") is not None]
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(rows) + 3), 5), dpi=110)
    ax.bar(range(len(rows)), [r["memory"]["train_peak_rss_mb"] for r in rows], color="tab:purple")
    ax.set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=25, ha="right")
    ax.set_ylabel("measured training peak RSS (MB)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
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
