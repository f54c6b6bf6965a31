"""The report's model variants, loaded once each and in an order that shares what it can: the pruned model
under its adapter, the original under the recovered adapter (the adapter is added to the loaded model, never
reloaded with it), then the merged folder (docs/architecture.md, "The run report")."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:  # the report imports VARIANTS: no torch for it
    from loram_core.lifecycle.resources import Resources
    from loram_core.lifecycle.rundir import RunDir

# name -> what it is, in the order the variants are scored (the report's rows)
VARIANTS = {
    "original": "original model, no fine-tuning",
    "pruned": "pruned model, no fine-tuning",
    "pruned_lora": "pruned + its adapter (train small, infer small)",
    "loram": "original + recovered adapter (train small, infer large)",
    "merged": "RUN_DIR/merged: the original with the adapter merged in",
}


def model_variants(run: RunDir, res: Resources, *, merged: bool = False, duplicates: bool = True,
                   originals: bool = True) -> Iterator[tuple[str, object]]:
    """``(name, model)`` for each variant the run has: pruned, pruned_lora, original, loram (and merged when
    asked and present). ``duplicates=False`` skips the pruned rows of a run on the full model (pruner none),
    which are the original and loram again; ``originals=False`` yields the pruned rows only (the eval stage
    streams the original itself). A model is valid until the next one is yielded."""
    from peft import PeftModel

    from loram_core.adapters.files import WEIGHTS
    from loram_core.lifecycle.pruned_folder import META
    from loram_core.lifecycle.quantize import load_trainable_pruned
    from loram_core.placement import Placement

    s = res.settings
    placement = Placement.from_settings(s)
    unpruned = ((run.record("prune") or {}).get("pruner") or {}).get("name") == "none"
    if (run.pruned / META).is_file() and (duplicates or not unpruned):
        pruned = load_trainable_pruned(run, res, placement.dtype)[0]  # the small model as it was trained
        pruned = placement.place(pruned, cast=False)  # in its dtype already (or the quantizer's)
        yield "pruned", pruned
        if (run.adapter_pruned / WEIGHTS).is_file():
            run.readable(run.adapter_pruned / WEIGHTS, "train")
            yield "pruned_lora", PeftModel.from_pretrained(pruned, str(run.adapter_pruned))
        del pruned
        gc.collect()
    if not originals:
        return
    original = placement.place(res.original_model(dtype=placement.dtype), cast=False)
    yield "original", original
    if (run.adapter / WEIGHTS).is_file():
        run.readable(run.adapter / WEIGHTS, "recover")
        yield "loram", PeftModel.from_pretrained(original, str(run.adapter))
    del original
    gc.collect()
    if merged and (run.merged / "config.json").is_file() and run.record("merge") is not None:
        from loram_core.models.loading import load_model

        yield "merged", placement.place(load_model(str(run.merged), dtype=placement.dtype), cast=False)
