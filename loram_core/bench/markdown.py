"""The results as a markdown table (what docs/results.md embeds)."""

from __future__ import annotations


def _num(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def results_table(rows: list[dict]) -> str:
    head = ("| variant | status | params pruned | reduction | original | pruned | pruned_lora | **loram** | "
            "loram vs original | train peak MB | tokens/s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    originals = [r["ppl"]["original"] for r in rows if r["status"] == "done" and r["ppl"].get("original")]
    if originals:  # the first baseline: the original model without fine-tuning, as every run measured it
        spread = "" if max(originals) - min(originals) < 1e-9 else f" (runs measured {min(originals):.2f}–{max(originals):.2f})"
        lines.append(f"| original, no fine-tuning{spread} | done | — | 1.00x | {originals[0]:.2f} | — | — | "
                     f"**{originals[0]:.2f}** | +0.0 % | — | — |")
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
