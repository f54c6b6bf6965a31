"""One side of ``sft_vs_trl.py`` (loram's loop or TRL's ``SFTTrainer``), run in its own process.

``sft_vs_trl.py --side loram|trl --spec SPEC --out OUT`` imports this module and calls ``side_main``: import,
tokenizer and data, record the RSS (the baseline), load the fp32 model, score the held-out responses, attach and
train the LoRA, score them again, and write what it measured to OUT as JSON. The data, the draw order, the
scoring and the measuring are the same code on both sides; only the training call differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple


def lora_digest(model) -> str:
    """A hash of the LoRA weights in module order: equal on both sides when the adapters start identical."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        if "lora_" in name:
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def import_before_baseline(side: str, threads: int | None) -> None:
    """Import everything either side uses before the baseline RSS is taken, so code is not what is measured.

    The functions below import what they use again, locally; those imports find the modules already loaded."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    if side == "trl":  # imported before the baseline, as loram's modules are: code is not what is measured
        import datasets
        import trl  # noqa: F401
        from transformers import TrainerCallback  # noqa: F401

        datasets.disable_progress_bars()
    import peft  # noqa: F401
    from accelerate import Accelerator  # noqa: F401

    import loram_core.data.examples  # noqa: F401
    import loram_core.data.formats  # noqa: F401
    import loram_core.data.packing  # noqa: F401
    import loram_core.evaluate  # noqa: F401
    import loram_core.lifecycle.settings  # noqa: F401
    import loram_core.models.loading  # noqa: F401
    import loram_core.train.lora  # noqa: F401
    import loram_core.train.loop  # noqa: F401
    import loram_core.train.sources  # noqa: F401
    from loram_core import memory  # noqa: F401


@dataclass
class SideData:
    """loram's reading of the settings and the data, shared by both sides."""

    work: Path
    settings: Any
    cfg: Any
    model_path: Any
    tokenizer: Any
    records: Any
    fmt: str
    examples: Any
    held_out: list
    source: Any
    order: list[int]  # the train example of every row, step by step, in loram's draw order
    summary: dict  # what goes into the side's JSON about the data


def prepare_data(side: str, spec: dict) -> SideData:
    """Tokenizer and data, read, split and encoded by loram's loaders; the rows of every step as loram draws them."""
    from loram_core.data.examples import encode_records, read_records, record_format
    from loram_core.data.packing import to_rows
    from loram_core.lifecycle.settings import make_settings
    from loram_core.models.loading import load_tokenizer, resolve_model
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
    summary = {"side": side, "format": fmt, "counts": examples.counts, "held_out_examples": len(held_out),
               "held_out_tokens": sum(e.trained for e in held_out),
               "loram_trained_tokens": sum(b.trained for b in steps), "loram_tokens": sum(b.tokens for b in steps)}
    return SideData(work, settings, cfg, model_path, tokenizer, records, fmt, examples, held_out, source, order,
                    summary)


class TrlRecords(NamedTuple):
    dataset: Any  # a datasets.Dataset in loram's draw order
    completion_only: bool
    assistant_only: bool


def trl_records(data: SideData, trl_tokens: str) -> TrlRecords:
    """TRL's own records, in loram's draw order, unless TRL gets loram's token ids (--trl-tokens loram)."""
    import datasets

    from loram_core.data.examples import fields_of
    from loram_core.data.formats import Conversation, PromptCompletion, convert

    settings, examples, records = data.settings, data.examples, data.records
    fields = fields_of(settings)
    completion_only = assistant_only = False
    if trl_tokens == "loram":
        items = [{"input_ids": list(e.input_ids), "labels": list(e.labels)} for e in examples.train]
    else:
        if examples.counts["train"]["dropped"]:
            raise SystemExit(f"{examples.counts['train']['dropped']} train records keep no trained token within "
                             f"{settings.max_length or settings.seq_len} tokens, so loram's examples do not line "
                             f"up with the records; raise --seq-len or pass --trl-tokens loram")
        items = []
        for n, record in records.numbered("train"):
            item = convert(record, data.fmt, fields, records.name, n)
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

            data.tokenizer.chat_template = resolve_chat_template(data.tokenizer, settings.chat_template,
                                                                 settings.model, records.name)
    return TrlRecords(datasets.Dataset.from_list([items[i] for i in data.order]), completion_only, assistant_only)


def train_loram(model, data: SideData, baseline: float | None, out: dict):
    """Attach loram's LoRA and train it with loram's loop; the trained model."""
    from loram_core.train.lora import attach_lora
    from loram_core.train.loop import train_lora

    model = attach_lora(model, data.cfg)
    out["lora_init"] = lora_digest(model)
    t0 = time.perf_counter()
    result = train_lora(model, data.source, data.cfg, adapter_dir=data.work / "loram-adapter", progress=False,
                        rss_baseline_mb=baseline, device="cpu")
    out["train_call_s"] = time.perf_counter() - t0
    out.update(tokens_per_s=result.tokens_per_s, train_peak_rss_mb=result.train_peak_rss_mb,
               tokens=result.tokens, trained_tokens=out["loram_trained_tokens"], losses=list(result.losses),
               rows_identical=None)
    return model


def trl_probe():
    """The callback that measures TRL's loop (made here: transformers' TrainerCallback is the TRL side's import)."""
    from transformers import TrainerCallback

    from loram_core import memory

    class Probe(TrainerCallback):
        """Times the training loop and takes its VmHWM, as train_lora does around its own loop."""

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.init = lora_digest(model)
            self.reset = memory.reset_peak_rss()
            self.t0 = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            self.elapsed = time.perf_counter() - self.t0
            self.peak = memory.peak_rss_mb()

    return Probe()


def trl_config(data: SideData, trl: TrlRecords, trl_tokens: str):
    """TRL's SFTConfig, holding equal to loram's what the module docstring of sft_vs_trl.py lists."""
    from trl import SFTConfig

    cfg, settings = data.cfg, data.settings
    return SFTConfig(
        output_dir=str(data.work / "trl-out"),
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
        completion_only_loss=trl.completion_only if trl_tokens == "own" else None,
        assistant_only_loss=trl.assistant_only,
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


def compare_rows(prepared, data: SideData, out: dict) -> None:
    """How many of TRL's tokenized rows equal loram's (ids and labels, in draw order), and TRL's trained tokens."""
    train, order = data.examples.train, data.order
    rows = min(len(prepared), len(order))
    out["rows_identical"] = sum(
        list(prepared[k]["input_ids"]) == list(train[order[k]].input_ids)
        and list(prepared[k]["labels"]) == list(train[order[k]].labels) for k in range(rows))
    out["rows"] = len(order)
    out["trained_tokens"] = sum(sum(1 for x in prepared[k]["labels"][1:] if x != -100) for k in range(rows))


def train_trl(model, data: SideData, trl: TrlRecords, trl_tokens: str, baseline: float | None, out: dict):
    """Train the same LoRA with TRL's SFTTrainer, measured by a callback around its loop; the trained model."""
    from trl import SFTTrainer

    from loram_core.train.lora import lora_config

    probe = trl_probe()
    args = trl_config(data, trl, trl_tokens)
    try:
        trainer = SFTTrainer(model=model, args=args, train_dataset=trl.dataset, processing_class=data.tokenizer,
                             peft_config=lora_config(data.cfg), callbacks=[probe])
    except ValueError as exc:
        if not trl.assistant_only:
            raise
        raise SystemExit(f"TRL cannot mask the assistant turns of this chat template ({exc}); pass --trl-tokens "
                         f"loram to give TRL loram's token ids and labels") from None
    compare_rows(trainer.train_dataset, data, out)
    trainer.train()
    state = trainer.state
    peak = probe.peak if probe.reset else None
    out.update(tokens_per_s=state.num_input_tokens_seen / probe.elapsed if probe.elapsed > 0 else 0.0,
               train_peak_rss_mb=None if peak is None or baseline is None else max(0.0, peak - baseline),
               tokens=state.num_input_tokens_seen, lora_init=probe.init,
               losses=[e["loss"] for e in state.log_history if "loss" in e])
    return trainer.accelerator.unwrap_model(trainer.model)


def side_main(side: str, spec_path: Path, out_path: Path) -> int:
    """Run one side as the spec says and write its measurements to ``out_path``."""
    spec = json.loads(spec_path.read_text())
    import_before_baseline(side, spec["threads"])
    import torch

    from loram_core import memory
    from loram_core.evaluate import response_perplexity
    from loram_core.models.loading import load_model

    data = prepare_data(side, spec)
    out = dict(data.summary)
    trl = trl_records(data, spec["trl_tokens"]) if side == "trl" else None

    baseline = memory.current_rss_mb()  # before the model is loaded
    model = load_model(data.model_path, dtype=torch.float32)
    out["base_model_mb"] = (memory.current_rss_mb() or 0.0) - (baseline or 0.0)
    out["held_out_loss_before"] = response_perplexity(model, data.held_out, progress=False).nll

    if side == "loram":
        trained = train_loram(model, data, baseline, out)
    else:
        trained = train_trl(model, data, trl, spec["trl_tokens"], baseline, out)

    out["held_out_loss_after"] = response_perplexity(trained, data.held_out, progress=False).nll
    out["load_avg_1m"] = os.getloadavg()[0]
    out_path.write_text(json.dumps(out, indent=2))
    return 0
