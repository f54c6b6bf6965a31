"""Stage eval: held-out perplexity for the report's four rows (docs/architecture.md, "The run report")."""

from __future__ import annotations

import math

from loram_core.adapters.files import WEIGHTS
from loram_core.errors import LoramError, warn
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RunDir, stage_key
from loram_core.lifecycle.variants import model_variants
from loram_core.placement import Placement


def streams_original(s, res: Resources) -> bool:
    """``--stream-eval``: on, off, or auto (the original in fp32 would take more than half the memory available)."""
    if s.stream_eval == "off" or (s.stream_eval == "auto" and res.examples is not None):
        return False
    if res.examples is not None:
        raise LoramError("--stream-eval on scores text windows; records (responses) are scored on the loaded model")
    return streams_text_eval(s, res.config)


def streams_text_eval(s, config) -> bool:
    """Whether text perplexity streams the original: on, or auto and its fp32 weights would take more than half
    the memory available (the estimate of the eval stage asks the same)."""
    if s.stream_eval != "auto":
        return s.stream_eval == "on"
    from loram_core.estimate.preflight import available_bytes
    from loram_core.plan.fingerprint import count_parameters, meta_model

    available = available_bytes(Placement.from_settings(s).device)
    return available is not None and count_parameters(meta_model(config)) * 4 > available / 2


def run_eval(run: RunDir, res: Resources) -> dict:
    from loram_core.evaluate import perplexity, response_perplexity, up_to

    s = res.settings
    upstream = [(run.record(st) or {}).get("key") for st in ("prune", "align", "train", "recover")]
    placement = Placement.from_settings(s)
    key = stage_key("eval", upstream, s.data_settings(), s.eval_tokens, s.eval_seq_len, res.model_path, placement.dtype_name,
                    s.stream_eval)
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

    stream = streams_original(s, res)
    for name, model in model_variants(run, res, originals=not stream):
        measure(name, model)
        del model  # held by the loop variable, the pruned model would sit beside the streamed original
    if stream:  # the original never resident whole: one decoder layer at a time from its shards
        from loram_core.streamed_eval import streamed_perplexity

        for name, adapter in (("original", None), ("loram", run.adapter)):
            if adapter is None or (adapter / WEIGHTS).is_file():
                result = streamed_perplexity(res.model_path, res.config, res.test_tokens, seq_len=s.eval_seq_len,
                                             adapter=adapter)
                rows[name], losses[name] = result.ppl, result.nll
        scored["streamed"] = True
    overflowed = [f"{name} {value}" for name, value in rows.items() if not math.isfinite(value)]
    if overflowed:
        warn(f"perplexity not finite ({', '.join(overflowed)}): the model's predictions overflow (diverged training, "
             f"or a dtype too narrow for it); a recovered adapter with it is registered as 'diverged'")
    return run.finish("eval", key, {"ppl": rows, "loss": losses, "eval": {"dataset": res.data_name, "split": "test", **scored}})

