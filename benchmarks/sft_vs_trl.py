"""The same LoRA SFT through loram's training loop and through TRL's ``SFTTrainer``: tokens/s, peak RSS, held-out loss.

    pip install trl   # for the TRL side; TRL is not a loram dependency
    python benchmarks/sft_vs_trl.py --model smollm2-135m --steps 30 --batch-size 4 --seq-len 128
    python benchmarks/sft_vs_trl.py --tiny            # a smoke run on loram's tiny random model (seconds)
    python benchmarks/sft_vs_trl.py --data FILE.jsonl # your own records (prompt/completion, messages, ...)

The data is a deterministic set of templated arithmetic word problems in plain prompt/completion records (or
``--data``), read, split and encoded by loram's own loaders (``read_records``, ``record_format``,
``encode_records``), so both sides train on loram's train split and are scored on its test split. Each side runs
in its own process (this script with ``--side``), started with ``MALLOC_MMAP_THRESHOLD_=65536`` so freed tensors go
back to the kernel, and does the same thing in the same order: import, tokenizer and data, record the RSS (the
baseline), load the fp32 model, score the held-out responses, attach and train the LoRA, score them again.

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
import hashlib
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


# --- one side, in its own process ------------------------------------------------------------------------------------

def lora_digest(model) -> str:
    """A hash of the LoRA weights in module order: equal on both sides when the adapters start identical."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        if "lora_" in name:
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def side_main(side: str, spec_path: Path, out_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    import torch

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    if side == "trl":  # imported before the baseline, as loram's modules are: code is not what is measured
        import datasets
        import trl  # noqa: F401
        from transformers import TrainerCallback

        datasets.disable_progress_bars()
    import peft  # noqa: F401
    from accelerate import Accelerator  # noqa: F401

    from loram_core import memory
    from loram_core.data.examples import encode_records, fields_of, read_records, record_format
    from loram_core.data.formats import Conversation, PromptCompletion, convert
    from loram_core.data.packing import to_rows
    from loram_core.evaluate import response_perplexity
    from loram_core.lifecycle.settings import make_settings
    from loram_core.models.loading import load_model, load_tokenizer, resolve_model
    from loram_core.train.lora import attach_lora, lora_config
    from loram_core.train.loop import train_lora
    from loram_core.train.sources import ExampleRows

    work = Path(spec["work"])
    settings = make_settings(spec["settings"], source="benchmark")
    cfg = settings.train_config()
    model_path = resolve_model(settings.model)
    tokenizer = load_tokenizer(model_path)
    records = read_records(settings.data, work / "datasets-cache")
    if records is None:
        raise SystemExit(f"--data {settings.data}: not records (a .jsonl/.json/.parquet/.csv/.arrow file or folder)")
    fmt = record_format(records, settings)
    examples = encode_records(records, fmt, settings, tokenizer, settings.model)
    held_out = list(examples.test or examples.validation)
    source = ExampleRows(to_rows(examples.train, "none", settings.seq_len), tokenizer.pad_token_id)
    # the rows of every step as loram's loop draws them (its seeded epoch order), one list for both sides
    order = [int(i) for step in range(cfg.steps) for i in source.indices(step, cfg, 1)]
    steps = [source.global_batch(step, cfg, 1) for step in range(cfg.steps)]
    out = {"side": side, "format": fmt, "counts": examples.counts, "held_out_examples": len(held_out),
           "held_out_tokens": sum(e.trained for e in held_out),
           "loram_trained_tokens": sum(b.trained for b in steps), "loram_tokens": sum(b.tokens for b in steps)}

    if side == "trl":
        # TRL's own records, in loram's draw order, unless TRL gets loram's token ids (--trl-tokens loram)
        fields = fields_of(settings)
        completion_only = assistant_only = False
        if spec["trl_tokens"] == "loram":
            items = [{"input_ids": list(e.input_ids), "labels": list(e.labels)} for e in examples.train]
        else:
            if examples.counts["train"]["dropped"]:
                raise SystemExit(f"{examples.counts['train']['dropped']} train records keep no trained token within "
                                 f"{settings.max_length or settings.seq_len} tokens, so loram's examples do not line "
                                 f"up with the records; raise --seq-len or pass --trl-tokens loram")
            items = []
            for n, record in records.numbered("train"):
                item = convert(record, fmt, fields, records.name, n)
                if isinstance(item, PromptCompletion):
                    items.append({"prompt": item.prompt, "completion": item.completion})
                    completion_only = not settings.train_on_inputs
                elif isinstance(item, Conversation):
                    items.append({"messages": [{"role": t.role, "content": t.content} for t in item.turns]})
                    assistant_only = not settings.train_on_inputs
                else:
                    items.append({"text": item})
            if assistant_only:  # the template loram rendered the chats with
                from loram_core.data.chat_template import resolve_chat_template

                tokenizer.chat_template = resolve_chat_template(tokenizer, settings.chat_template, settings.model,
                                                                records.name)
        train_dataset = datasets.Dataset.from_list([items[i] for i in order])

    baseline = memory.current_rss_mb()  # before the model is loaded
    model = load_model(model_path, dtype=torch.float32)
    out["base_model_mb"] = (memory.current_rss_mb() or 0.0) - (baseline or 0.0)
    out["held_out_loss_before"] = response_perplexity(model, held_out, progress=False).nll

    if side == "loram":
        model = attach_lora(model, cfg)
        out["lora_init"] = lora_digest(model)
        t0 = time.perf_counter()
        result = train_lora(model, source, cfg, adapter_dir=work / "loram-adapter", progress=False,
                            rss_baseline_mb=baseline, device="cpu")
        out["train_call_s"] = time.perf_counter() - t0
        out.update(tokens_per_s=result.tokens_per_s, train_peak_rss_mb=result.train_peak_rss_mb,
                   tokens=result.tokens, trained_tokens=out["loram_trained_tokens"], losses=list(result.losses),
                   rows_identical=None)
        trained = model
    else:
        from trl import SFTConfig, SFTTrainer

        class Probe(TrainerCallback):
            """Times the training loop and takes its VmHWM, as train_lora does around its own loop."""

            def on_train_begin(self, args, state, control, model=None, **kwargs):
                self.init = lora_digest(model)
                self.reset = memory.reset_peak_rss()
                self.t0 = time.perf_counter()

            def on_train_end(self, args, state, control, **kwargs):
                self.elapsed = time.perf_counter() - self.t0
                self.peak = memory.peak_rss_mb()

        probe = Probe()
        args = SFTConfig(
            output_dir=str(work / "trl-out"),
            per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum,
            max_steps=cfg.steps,
            learning_rate=cfg.lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=cfg.weight_decay,
            optim="adamw_torch",  # loram's torch.optim.AdamW, default betas and eps (not the fused variant)
            max_grad_norm=cfg.max_grad_norm,
            seed=cfg.seed,
            data_seed=cfg.seed,
            train_sampling_strategy="sequential",  # the dataset is already in loram's order
            packing=False,
            max_length=settings.max_length or settings.seq_len,
            completion_only_loss=completion_only if spec["trl_tokens"] == "own" else None,
            assistant_only_loss=assistant_only,
            gradient_checkpointing=cfg.gradient_checkpointing,  # TRL's default is on; loram's is off
            bf16=False, fp16=False,  # TRL's default is bf16; loram trains fp32 on the CPU
            use_cpu=True,
            dataloader_num_workers=0,
            include_num_input_tokens_seen="non_padding",
            logging_steps=1,
            report_to=[],
            save_strategy="no",
            eval_strategy="no",
            disable_tqdm=True,
        )
        try:
            trainer = SFTTrainer(model=model, args=args, train_dataset=train_dataset, processing_class=tokenizer,
                                 peft_config=lora_config(cfg), callbacks=[probe])
        except ValueError as exc:
            if not assistant_only:
                raise
            raise SystemExit(f"TRL cannot mask the assistant turns of this chat template ({exc}); pass --trl-tokens "
                             f"loram to give TRL loram's token ids and labels") from None
        prepared = trainer.train_dataset
        rows = min(len(prepared), len(order))
        out["rows_identical"] = sum(
            list(prepared[k]["input_ids"]) == list(examples.train[order[k]].input_ids)
            and list(prepared[k]["labels"]) == list(examples.train[order[k]].labels) for k in range(rows))
        out["rows"] = len(order)
        out["trained_tokens"] = sum(sum(1 for x in prepared[k]["labels"][1:] if x != -100) for k in range(rows))
        trainer.train()
        state = trainer.state
        peak = probe.peak if probe.reset else None
        out.update(tokens_per_s=state.num_input_tokens_seen / probe.elapsed if probe.elapsed > 0 else 0.0,
                   train_peak_rss_mb=None if peak is None or baseline is None else max(0.0, peak - baseline),
                   tokens=state.num_input_tokens_seen, lora_init=probe.init,
                   losses=[e["loss"] for e in state.log_history if "loss" in e])
        trained = trainer.accelerator.unwrap_model(trainer.model)

    out["held_out_loss_after"] = response_perplexity(trained, held_out, progress=False).nll
    out["load_avg_1m"] = os.getloadavg()[0]
    out_path.write_text(json.dumps(out, indent=2))
    return 0


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
