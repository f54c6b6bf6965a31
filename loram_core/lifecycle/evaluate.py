"""Stage eval: held-out perplexity for the report's four rows (docs/architecture.md, "The run report")."""

from __future__ import annotations

import gc
import math

from loram_core.adapters.files import WEIGHTS
from loram_core.errors import warn
from loram_core.lifecycle.pruned_folder import META, load_pruned_model
from loram_core.lifecycle.quantize import quantize_pruned
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RunDir, stage_key
from loram_core.placement import Placement


def run_eval(run: RunDir, res: Resources) -> dict:
    from peft import PeftModel

    from loram_core.evaluate import perplexity, response_perplexity, up_to

    s = res.settings
    upstream = [(run.record(st) or {}).get("key") for st in ("prune", "align", "train", "recover")]
    placement = Placement.from_settings(s)
    key = stage_key("eval", upstream, s.data_settings(), s.eval_tokens, s.eval_seq_len, res.model_path, placement.dtype_name)
    done = run.done("eval", key)
    if done:
        return done
    if res.examples is None:  # text: every token of windows of --eval-seq-len
        tokens = res.test_tokens
        score = lambda model: perplexity(model, tokens, seq_len=s.eval_seq_len, progress=res.progress)  # noqa: E731
        scored = {"scored": "all tokens", "seq_len": s.eval_seq_len,
                  "tokens": (tokens.numel() // s.eval_seq_len) * (s.eval_seq_len - 1)}
    else:  # examples: the held-out responses, prompts as context (as far as --eval-tokens reaches)
        examples = up_to(res.examples.test or res.examples.validation, s.eval_tokens)
        score = lambda model: response_perplexity(model, examples, progress=res.progress)  # noqa: E731
        scored = {"scored": "responses", "examples": len(examples), "tokens": sum(e.trained for e in examples)}
    rows: dict[str, float] = {}
    losses: dict[str, float] = {}  # mean NLL per scored token, nats

    def measure(name: str, model) -> None:
        result = score(model)
        rows[name], losses[name] = result.ppl, result.nll

    if (run.pruned / META).is_file():
        pruned = load_pruned_model(run, res, dtype=None if s.quantizer else placement.dtype)[0]  # masks not kept
        pruned, _ = quantize_pruned(pruned, s)  # evaluate the small model as it was trained
        pruned = placement.place(pruned, cast=False)  # in its dtype already (or the quantizer's)
        measure("pruned", pruned)
        if (run.adapter_pruned / WEIGHTS).is_file():
            run.readable(run.adapter_pruned / WEIGHTS, "train")
            measure("pruned_lora", PeftModel.from_pretrained(pruned, str(run.adapter_pruned)))
        del pruned
        gc.collect()
    original = placement.place(res.original_model(dtype=placement.dtype), cast=False)
    measure("original", original)
    if (run.adapter / WEIGHTS).is_file():
        run.readable(run.adapter / WEIGHTS, "recover")
        measure("loram", PeftModel.from_pretrained(original, str(run.adapter)))
    overflowed = [f"{name} {value}" for name, value in rows.items() if not math.isfinite(value)]
    if overflowed:
        warn(f"perplexity not finite ({', '.join(overflowed)}): the model's predictions overflow (diverged training, "
             f"or a dtype too narrow for it); a recovered adapter with it is registered as 'diverged'")
    return run.finish("eval", key, {"ppl": rows, "loss": losses, "eval": {"dataset": res.data_name, "split": "test", **scored}})

