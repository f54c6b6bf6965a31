"""The results as a markdown table (what docs/results.md embeds)."""

from __future__ import annotations


def _num(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def results_table(rows: list[dict]) -> str:
    head = ("| variant | status | params pruned | reduction | original | pruned | pruned_lora | **loram** | "
            "loram vs original | train peak MB | tokens/s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        p, ppl, m, t = r["params"], r["ppl"], r["memory"], r["train"]
        gain = None
        if ppl.get("loram") and ppl.get("original"):
            gain = 100 * (ppl["loram"] / ppl["original"] - 1)
        status = r["status"] if r["status"] == "done" else f"{r['status']}: {r.get('error') or ''}".strip()
        lines.append(
            f"| {r['label']} | {status} | {_num(p.get('pruned'), ',')} | {_num(p.get('reduction_ratio'), '.2f')}x | "
            f"{_num(ppl.get('original'), '.2f')} | {_num(ppl.get('pruned'), '.2f')} | "
            f"{_num(ppl.get('pruned_lora'), '.2f')} | **{_num(ppl.get('loram'), '.2f')}** | "
            f"{_num(gain, '+.1f')} % | {_num(m.get('train_peak_rss_mb'), ',.0f')} | "
            f"{_num(t.get('tokens_per_s'), '.0f')} |"
        )
    return "\n".join(lines) + "\n"
