"""Stage merge: the recovered adapter merged into the dense ORIGINAL model, saved as a stock HF folder."""

from __future__ import annotations

from loram_core.adapters.files import WEIGHTS
from loram_core.atomic import atomic_dir
from loram_core.errors import AdapterError
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RunDir, stage_key


def run_merge(run: RunDir, res: Resources) -> dict:
    from peft import PeftModel

    recover = run.record("recover")
    if recover is None or not (run.adapter / WEIGHTS).is_file():
        raise AdapterError(f"no recovered adapter at {run.adapter}; run 'loram recover {run.root}' first")
    key = stage_key("merge", recover["key"], res.model_path)
    done = run.done("merge", key, run.merged / "config.json")
    if done:
        return done
    run.readable(run.adapter / WEIGHTS, "recover")
    model = PeftModel.from_pretrained(res.original_model(), str(run.adapter))
    merged = model.merge_and_unload(progressbar=res.progress)
    with atomic_dir(run.merged) as tmp:
        merged.save_pretrained(tmp)
        res.tokenizer.save_pretrained(tmp)
    return run.finish("merge", key, {"path": str(run.merged)})
