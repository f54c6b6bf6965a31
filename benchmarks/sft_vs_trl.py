"""The same LoRA SFT through loram's training loop and through TRL's ``SFTTrainer``: tokens/s, peak RSS, held-out loss.

    pip install trl   # for the TRL side; TRL is not a loram dependency
    python benchmarks/sft_vs_trl.py --model smollm2-135m --steps 30 --batch-size 4 --seq-len 128
    python benchmarks/sft_vs_trl.py --tiny            # a smoke run on loram's tiny random model (seconds)
    python benchmarks/sft_vs_trl.py --data FILE.jsonl # your own records (prompt/completion, messages, ...)

The data is a deterministic set of templated arithmetic word problems in plain prompt/completion records (or
``--data``), read, split and encoded by loram's own loaders (``read_records``, ``record_format``,
``encode_records``), so both sides train on loram's train split and are scored on its test split. Each side runs
in its own process (this script with ``--side``, which runs ``sft_sides.py``), started with
``MALLOC_MMAP_THRESHOLD_=65536`` so freed tensors go back to the kernel, and does the same thing in the same order:
import, tokenizer and data, record the RSS (the baseline), load the fp32 model, score the held-out responses, attach
and train the LoRA, score them again.

What is held equal: the train examples and the order they are drawn in (loram's seeded epoch order; TRL gets the
dataset already in that order and a sequential sampler), batch size, steps, one example per row padded to the
batch's longest (TRL ``packing=False``), what is trained (the completion; TRL ``completion_only_loss=True``, or
``assistant_only_loss`` for chats), the LoRA config (loram's ``lora_config``: r, alpha, dropout, all 7
projections), AdamW (torch, weight decay 0), a constant learning rate with no warm-up, fp32 on the CPU, the
gradient-norm clip and the seed (the LoRA init is checked to be bit-identical). The caption says whether TRL's
tokenized rows equal loram's, row for row.

What is measured, per side: tokens/s is real (non-pad) tokens trained / wall time of the training loop (loram's
``TrainResult.tokens_per_s``; for TRL, ``num_input_tokens_seen`` counted ``non_padding`` over on_train_begin ..
on_train_end of a callback). Peak RSS is VmHWM, reset through /proc/self/clear_refs just before the loop starts,
minus the baseline, i.e. the resident model plus everything training adds (docs/architecture.md, "Measuring
memory"). The held-out loss is ``loram_core.evaluate.response_perplexity(...).nll``, the mean loss over the
response tokens of the test split, for the base model before training and the trained PEFT model after, by the
same code on both sides. Nothing here is computed from a formula.

Not held equal, because each trainer does it its own way: the LoRA dropout masks (loram reseeds them per step, TRL
draws from one stream; ``--dropout 0`` removes them, and then both sides follow the same loss curve, within 1e-6
with ``--tiny``); the batch inputs (loram passes position ids and no attention mask, TRL an attention mask); the
loss (TRL's fused LM head projects only the positions with a label, in tiles, and also computes entropy and token
accuracy for its logs; loram projects every position, or ``--loss-chunk`` at a time in the CLI); the loop around
the step (the Trainer's callbacks and per-step logging). On a shared machine pass ``--threads 1``: with more
threads than free cores both sides slow down by an order of magnitude, by however much the other load takes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIDES = ("loram", "trl")
NO_TRL = "TRL is not installed: pip install trl (needed by this benchmark only, not by loram)"


# --- the data --------------------------------------------------------------------------------------------------------

NAMES = ("Ava", "Ben", "Cleo", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena")
ITEMS = ("apple", "book", "coin", "shell", "stamp", "marble", "card", "pencil")


def word_problem(rng: random.Random) -> dict:
    """One prompt/completion record: a small addition, subtraction or multiplication problem, worked out."""
    name, item, kind = rng.choice(NAMES), rng.choice(ITEMS), rng.randrange(3)
    a, b = rng.randint(2, 30), rng.randint(2, 9)
    if kind == 0:
        question, work = f"{name} has {a} {item}s and gets {b} more.", f"{a} + {b} = {a + b}"
        answer = a + b
    elif kind == 1:
        a += b
        question, work = f"{name} has {a} {item}s and gives {b} away.", f"{a} - {b} = {a - b}"
        answer = a - b
    else:
        a = rng.randint(2, 9)
        question, work = f"{name} buys {a} bags of {b} {item}s.", f"{a} x {b} = {a * b}"
        answer = a * b
    return {"prompt": f"Q: {question} How many {item}s now?\nA:", "completion": f" {work}. {name} has {answer}."}


def write_data(path: Path, records: int, seed: int) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(json.dumps(word_problem(rng)) + "\n" for _ in range(records)))
    return path


# --- the comparison --------------------------------------------------------------------------------------------------

def run_side(side: str, spec_path: Path, work: Path, threads: int | None, console) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "TOKENIZERS_PARALLELISM": "false"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    out = work / f"{side}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--side", side, "--spec", str(spec_path), "--out", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"the {side} side failed ({done.returncode}): {' '.join(cmd)}")
    result = json.loads(out.read_text())
    result["process_wall_s"] = time.perf_counter() - t0
    console.log(f"{side}: {result['tokens_per_s']:,.0f} tokens/s, done in {result['process_wall_s']:.1f} s")
    return result


def print_table(rows: dict[str, dict], args, settings: dict, trl_version: str, console) -> None:
    from rich.table import Table

    base = rows.get("loram") or next(iter(rows.values()))  # ratios are against loram, when it ran
    table = Table(title=f"LoRA SFT, loram vs TRL {trl_version} on {args.model_label}: {settings['steps']} steps x "
                        f"batch {settings['batch_size']}, seq-len {settings['seq_len']}, r {settings['rank']} alpha "
                        f"{settings['alpha']} dropout {settings['dropout']}, lr {settings['lr']:g} constant, fp32 CPU, "
                        f"{args.threads or os.environ.get('OMP_NUM_THREADS', 'default')} thread(s)")
    for name in ("side", "tokens/s", "vs loram", "peak RSS MB", "vs loram", "train loss first → last",
                 "held-out loss before → after", "tokens (trained)", "process s", "load 1m"):
        table.add_column(name, justify="left" if name == "side" else "right", no_wrap=True)

    def ratio(key, r):
        return f"{r[key] / base[key]:.2f}" if r.get(key) is not None and base.get(key) else "—"

    for side, r in rows.items():
        peak = "—" if r["train_peak_rss_mb"] is None else f"{r['train_peak_rss_mb']:,.0f}"
        losses = f"{r['losses'][0]:.4f} → {r['losses'][-1]:.4f}" if r["losses"] else "—"
        table.add_row(side, f"{r['tokens_per_s']:,.0f}", ratio("tokens_per_s", r), peak, ratio("train_peak_rss_mb", r),
                      losses, f"{r['held_out_loss_before']:.4f} → {r['held_out_loss_after']:.4f}",
                      f"{r['tokens']:,} ({r['trained_tokens']:,})", f"{r['process_wall_s']:.1f}",
                      f"{r['load_avg_1m']:.1f}")
    notes = [f"data: {args.data_label} ({base['format']}), {base['counts']['train']['examples']} train examples, "
             f"held-out loss over the {base['held_out_tokens']:,} response tokens of {base['held_out_examples']} "
             f"test examples"]
    if "trl" in rows:
        trl = rows["trl"]
        if "loram" in rows:
            notes.append(f"same LoRA init: {'yes' if trl['lora_init'] == base['lora_init'] else 'NO'}")
        given = " (TRL was given loram's token ids)" if args.trl_tokens == "loram" else ""
        notes.append(f"TRL's rows identical to loram's (ids and labels, in order): "
                     f"{trl['rows_identical']}/{trl['rows']}{given}")
    notes.append("peak RSS: VmHWM over the training loop minus the RSS before the model was loaded (model + training); "
                 "tokens/s: real (non-pad) tokens / training-loop wall time; tokens (trained): real tokens (of which "
                 f"response tokens scored); load 1m: 1-minute load average after the side ran ({os.cpu_count()} CPUs)")
    table.caption = "; ".join(notes)
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m", help="model alias or folder (default smollm2-135m)")
    p.add_argument("--tiny", action="store_true", help="loram's tiny random model instead of --model: a smoke run")
    p.add_argument("--data", default=None, metavar="FILE.jsonl",
                   help="records to train on (default: generated arithmetic word problems, prompt/completion)")
    p.add_argument("--records", type=int, default=400, help="generated records, before the train/val/test split")
    p.add_argument("--data-format", default="auto", help="loram's --data-format of --data (default auto)")
    p.add_argument("--chat-template", default=None, help="loram's --chat-template, for chat records")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128, help="longest row; examples are cut to it on both sides")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=int, default=16)
    p.add_argument("--dropout", type=float, default=0.05,
                   help="LoRA dropout (0: no random masks, so both sides should follow the same loss curve)")
    p.add_argument("--target-modules", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trl-tokens", choices=("own", "loram"), default="own",
                   help="own: TRL tokenizes the records itself (default); loram: TRL gets loram's input_ids/labels")
    p.add_argument("--sides", default="loram,trl", help="which sides to run, in order (default loram,trl)")
    p.add_argument("--threads", type=int, default=None,
                   help="OMP_NUM_THREADS / torch threads of both sides (default: torch's, 1 with --tiny, whose ops are "
                        "too small to share; on a shared machine, 1 keeps tokens/s steady)")
    p.add_argument("--work", type=Path, default=None,
                   help="keep the data, adapters and outputs here (default: a temp dir, removed)")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="OUT",
                   help="write the rows as JSON to OUT; without OUT, print JSON instead of the table")
    p.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # internal: run one side in this process
    p.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if importlib.util.find_spec("trl") is None:
        print(NO_TRL, file=sys.stderr)
        return 2
    if args.side:
        # a child runs this file as a script, so its folder (benchmarks/, not a package) is on sys.path
        from sft_sides import side_main

        return side_main(args.side, args.spec, args.out)
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not sides or set(sides) - set(SIDES):
        p.error(f"--sides takes loram and/or trl, got {args.sides!r}")

    if args.tiny and args.threads is None:
        args.threads = 1  # a tiny model's ops are too small to split: extra threads only wait on each other
    from importlib.metadata import version

    from rich.console import Console

    console = Console(stderr=True, log_path=False, quiet=not sys.stderr.isatty())
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="loram-sft-vs-trl-")
        work = Path(tmp.name)
    else:
        work = args.work.resolve()
        work.mkdir(parents=True, exist_ok=True)
    try:
        if args.tiny:
            from loram_core.testing.tiny import save_tiny_model

            model = str(save_tiny_model(work / "tiny-model"))
            args.model_label = "loram's tiny random llama"
        else:
            model = args.model
            args.model_label = args.model
        if args.data:
            data = str(Path(args.data).expanduser().resolve())
            args.data_label = args.data
        else:
            data = str(write_data(work / "word_problems.jsonl", args.records, args.seed))
            args.data_label = f"{args.records} generated arithmetic word problems"
        settings = {"model": model, "data": data, "data_format": args.data_format, "chat_template": args.chat_template,
                    "packing": "none", "steps": args.steps, "batch_size": args.batch_size, "seq_len": args.seq_len,
                    "lr": args.lr, "rank": args.rank, "alpha": args.alpha, "dropout": args.dropout,
                    "target_modules": args.target_modules, "warmup_steps": 0, "schedule": "constant",
                    "weight_decay": 0.0, "max_grad_norm": args.max_grad_norm, "seed": args.seed,
                    "checkpoint_every": 0, "grad_accum": 1}
        spec = work / "spec.json"
        spec.write_text(json.dumps({"settings": settings, "work": str(work), "threads": args.threads,
                                    "trl_tokens": args.trl_tokens}, indent=2))
        rows = {}
        for side in sides:
            console.log(f"train on the {side} side in its own process")
            rows[side] = run_side(side, spec, work, args.threads, console)
        trl_version = version("trl")
        if args.json != "-":
            # a pipe or a file gets the whole table, not one cut to 80 columns
            print_table(rows, args, settings, trl_version, Console() if sys.stdout.isatty() else Console(width=170))
        if args.json:
            doc = json.dumps({"settings": {**settings, "threads": args.threads, "trl_tokens": args.trl_tokens},
                              "versions": {name: version(name) for name in
                                           ("trl", "torch", "transformers", "peft", "accelerate", "datasets")},
                              "rows": rows}, indent=2)
            if args.json == "-":
                print(doc)
            else:
                Path(args.json).write_text(doc)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
