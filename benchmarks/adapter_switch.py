"""Switching adapters on a loaded original model vs reloading the model with the other adapter.

    python benchmarks/adapter_switch.py --model smollm2-135m --adapter NAME_A --adapter NAME_B

The adapters are registry names (`loram adapters list`). The original model is loaded once and both adapters
are attached unmerged (PEFT); a switch is `set_adapter`. The alternative a user without the registry pays is a
fresh load of the original weights plus `PeftModel.from_pretrained`. Each switch is followed by one forward
pass on the same prompt, and the logits are checked against a fresh model carrying only that adapter.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--adapter", action="append", required=True, help="registered adapter name (give two)")
    ap.add_argument("--switches", type=int, default=50, help="switches timed")
    ap.add_argument("--reloads", type=int, default=3, help="fresh model + adapter loads timed")
    ap.add_argument("--prompt", default="ROMEO. What light through yonder window breaks?")
    args = ap.parse_args()
    if len(args.adapter) != 2:
        ap.error("give exactly two --adapter names")
    torch.set_grad_enabled(False)

    from peft import PeftModel

    from loram_core.adapters import AdapterStore
    from loram_core.infer.session import InferenceSession
    from loram_core.models.loading import load_model

    store = AdapterStore()
    records = [store.get(name) for name in args.adapter]
    session, t_session = timed(lambda: InferenceSession(args.model))
    attach = []
    for record in records:
        attach.append(timed(lambda r=record: session.attach(r))[1])
    ids = session.tokenizer(args.prompt, return_tensors="pt")["input_ids"]

    switch_s, forward_s, logits = [], [], {}
    for i in range(args.switches):
        name = args.adapter[i % 2]
        switch_s.append(timed(lambda n=name: session.use(n))[1])
        with session.active_model() as model:
            out, t = timed(lambda m=model: m(ids).logits)
        forward_s.append(t)
        logits.setdefault(name, out)

    reload_s, max_diff = [], 0.0
    for i in range(args.reloads):
        record = records[i % 2]

        def fresh(r=record):
            return PeftModel.from_pretrained(load_model(session.model_path), r.adapter_path).eval()

        model, t = timed(fresh)
        reload_s.append(t)
        max_diff = max(max_diff, (model(ids).logits - logits[record.name]).abs().max().item())
        del model
        gc.collect()

    ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    table = Table(title=f"adapter switch vs reload · {args.model} · {', '.join(args.adapter)} · "
                        f"{torch.get_num_threads()} threads")
    table.add_column("operation")
    table.add_column("runs", justify="right")
    table.add_column("median ms", justify="right")
    table.add_column("max ms", justify="right")
    table.add_row("load the original model + tokenizer (once)", "1", f"{t_session * 1000:,.0f}", f"{t_session * 1000:,.0f}")
    for record, t in zip(records, attach):
        table.add_row(f"attach {record.name} (unmerged, PEFT)", "1", f"{t * 1000:,.1f}", f"{t * 1000:,.1f}")
    table.add_row("[bold]switch adapter (set_adapter)[/bold]", str(len(switch_s)), f"[bold]{ms(switch_s):,.3f}[/bold]",
                  f"{max(switch_s) * 1000:,.3f}")
    table.add_row(f"forward pass after a switch ({ids.shape[1]} tokens)", str(len(forward_s)), f"{ms(forward_s):,.1f}",
                  f"{max(forward_s) * 1000:,.1f}")
    table.add_row("[bold]reload original + adapter (fresh load)[/bold]", str(len(reload_s)),
                  f"[bold]{ms(reload_s):,.0f}[/bold]", f"{max(reload_s) * 1000:,.0f}")
    console = Console()
    console.print(table)
    console.print(f"reload / switch (medians): {ms(reload_s) / ms(switch_s):,.0f}x; "
                  f"max |logits(switched) - logits(fresh load)| = {max_diff:.2e}")


if __name__ == "__main__":
    main()
