"""The quantizer, aligner and recoverer contracts, on a tiny model pruned by the core's ``magnitude`` pruner.

Each kind first has the members of its protocol (``loram_core.protocols.Quantizer``, ``Aligner``,
``Recoverer``); then what the core relies on beyond them:

- quantizer: ``quantize(model, config) -> model`` on the materialized pruned model; the bits the report counts;
  the quantized model runs close to the unquantized one; LoRA trains over it through the core's loop and the
  adapter it writes recovers to the original shapes.
- aligner: ``align(model, config, context) -> dict`` trains the pruned model in place: shapes unchanged (the
  plan still fits), weights changed, the result saved and materialized again, the report keys well typed.
- recoverer: ``fill(shape, *, factor, dtype, generator)`` gives a tensor of that shape and dtype, seeded,
  and recovery with it keeps the pruned delta on the kept rows and columns.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from loram_core.adapters.files import WEIGHTS
from loram_core.protocols import Aligner, Quantizer, Recoverer, optional_member, quantizer_bits
from loram_core.testing.conformance.failure import fail, fail_unless_satisfies
from loram_core.testing.conformance.harness import family, fixed_batch, materialize, run_pruner

# bitsandbytes' nf4 / fp4 move the tiny model's logits by 26-29 % (relative norm), int8 by 2 %; weights turned
# to noise move them by far more than the bound.
QUANTIZED_LOGITS_RELATIVE_ERROR = 0.5
ALIGN_REPORT_TYPES = {"dataset": str, "steps": int, "ppl_before": (int, float), "ppl_after": (int, float)}


def pruned_tiny(workdir: Path, family_name: str = "llama-gqa"):
    """(outcome, pruned model): the built-in ``magnitude`` pruner at ratio 0.5, through the harness."""
    from loram_core.registry import get

    outcome = run_pruner(get("pruner", "magnitude"), family(family_name), {"ratio": 0.5}, workdir)
    return outcome, materialize(outcome, workdir)


def _config(kind: str, plugin, options):
    from loram_core.configs import build_config

    return build_config(plugin.config_cls, dict(options or {}), owner=f"{kind} '{plugin.name}'")


def check_quantizer(quantizer, workdir: Path, options=None) -> None:
    fail_unless_satisfies(quantizer, Quantizer, "quantizer")
    where = f"quantizer '{quantizer.name}'"
    config = _config("quantizer", quantizer, options)
    bits = quantizer_bits(quantizer, config)
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        fail(where, f"bits must be an integer in 1..16 on its config or itself (the report counts it), got {bits!r}")
    outcome, model = pruned_tiny(workdir)
    batch = fixed_batch(outcome.config)
    with torch.no_grad():
        reference = model(input_ids=batch).logits
    quantized = quantizer.quantize(model, config)
    if not isinstance(quantized, torch.nn.Module):
        fail(where, f"quantize() returned {type(quantized).__name__}, not the model")
    with torch.no_grad():
        logits = quantized(input_ids=batch).logits.float()
    if logits.shape != reference.shape or not bool(torch.isfinite(logits).all()):
        fail(where, "the quantized model does not give finite logits of the original's shape")
    error = float((logits - reference).norm() / reference.norm())
    if error > QUANTIZED_LOGITS_RELATIVE_ERROR:
        fail(where, f"quantized logits are {error:.0%} off the unquantized ones "
                    f"(allowed {QUANTIZED_LOGITS_RELATIVE_ERROR:.0%})")
    describe = optional_member(quantizer, Quantizer, "describe")
    if describe is not None:
        info = describe(quantized, config)
        if not isinstance(info, dict):
            fail(where, f"describe() returned {type(info).__name__}, not a dict")
        try:
            json.dumps(info)
        except TypeError as exc:
            fail(where, f"describe() must return a JSON-serializable dict for the report: {exc}")
    _check_lora_over(where, quantized, outcome, workdir)


def _check_lora_over(where: str, quantized, outcome, workdir: Path) -> None:
    """The train stage on the quantized base: LoRA through the core's loop; the adapter it writes has the
    pruned model's shapes and recovers to the original's."""
    from safetensors.torch import load_file

    from loram_core.errors import LoramError
    from loram_core.plan.fingerprint import linear_shapes
    from loram_core.recover import parse_lora_key, recover_adapter
    from loram_core.registry import get
    from loram_core.train.config import TrainConfig
    from loram_core.train.loop import train_lora

    rank = 4
    tokens = torch.randint(0, outcome.config.vocab_size, (512,), generator=torch.Generator().manual_seed(2))
    train = TrainConfig(steps=2, batch_size=2, seq_len=16, rank=rank, alpha=8, lr=1e-3, warmup_steps=0, checkpoint_every=0)
    adapter_dir = Path(tempfile.mkdtemp(prefix="adapter-", dir=workdir))
    result = train_lora(quantized, tokens, train, adapter_dir=adapter_dir, progress=False)
    if not bool(torch.isfinite(torch.tensor(result.losses)).all()):
        fail(where, f"LoRA training over the quantized model gives non-finite losses {result.losses}")
    state = load_file(adapter_dir / WEIGHTS)
    shapes = linear_shapes(outcome.config)
    for key, tensor in state.items():
        parsed = parse_lora_key(key)
        if parsed is None:
            continue
        module, factor = parsed
        entry = outcome.plan.entries.get(module)
        out_features, in_features = entry.pruned_shape if entry is not None else shapes[module]
        expected = (rank, in_features) if factor == "lora_A" else (out_features, rank)
        if tuple(tensor.shape) != expected:
            fail(where, f"{key}: LoRA over the quantized model is {tuple(tensor.shape)}, over the pruned model {expected}")
    try:
        recover_adapter(state, outcome.plan, shapes, get("recoverer", "zero"))
    except LoramError as exc:
        fail(where, f"the adapter trained over the quantized model does not recover: {exc}")


def check_aligner(aligner, workdir: Path, options=None) -> None:
    from loram_core.lifecycle.align import AlignContext
    from loram_core.models.loading import load_tokenizer
    from loram_core.plan.apply import materialize_pruned, pruned_state_dict

    fail_unless_satisfies(aligner, Aligner, "aligner")
    where = f"aligner '{aligner.name}'"
    config = _config("aligner", aligner, options)
    outcome, model = pruned_tiny(workdir)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    work = Path(tempfile.mkdtemp(prefix="align-", dir=workdir))
    context = AlignContext(load_tokenizer(outcome.model_path), outcome.config, outcome.plan, 0, False, work,
                           model_path=str(outcome.model_path))
    result = aligner.align(model, config, context)
    if result is not None and not isinstance(result, dict):
        fail(where, f"align() returned {type(result).__name__}; return a dict (or None)")
    for key, types in ALIGN_REPORT_TYPES.items():
        if result and key in result and (isinstance(result[key], bool) or not isinstance(result[key], types)):
            fail(where, f"align() result '{key}' is {result[key]!r}; the report needs {types}")
    after = model.state_dict()
    if after.keys() != before.keys() or any(after[k].shape != v.shape for k, v in before.items()):
        fail(where, "align() changed the pruned model's parameters or shapes; the plan would no longer fit it")
    if all(torch.equal(after[k], v) for k, v in before.items()):
        fail(where, "align() left every weight unchanged: it must train the model it is given, in place")
    # The align stage saves these weights and later stages materialize them with the plan.
    again = materialize_pruned(outcome.config, outcome.plan, {k: v.detach().clone() for k, v in pruned_state_dict(model).items()})
    with torch.no_grad():
        if not bool(torch.isfinite(again(input_ids=fixed_batch(outcome.config)).logits).all()):
            fail(where, "the aligned model gives non-finite logits")


def check_recoverer(recoverer, workdir: Path) -> None:
    import peft

    from loram_core.plan.fingerprint import linear_shapes
    from loram_core.recover import recover_adapter
    from loram_core.testing.conformance.recovery_checks import check_invariant, integer_lora, lora_targets

    fail_unless_satisfies(recoverer, Recoverer, "recoverer")
    where = f"recoverer '{recoverer.name}'"
    for factor, shape in (("lora_A", (4, 24)), ("lora_B", (24, 4))):
        for dtype in (torch.float32, torch.bfloat16):
            values = [recoverer.fill(shape, factor=factor, dtype=dtype, generator=torch.Generator().manual_seed(5))
                      for _ in range(2)]
            if not isinstance(values[0], torch.Tensor) or tuple(values[0].shape) != shape or values[0].dtype != dtype:
                fail(where, f"fill({shape}, factor={factor}, dtype={dtype}) must return a tensor of that shape and dtype")
            if not bool(torch.isfinite(values[0].float()).all()) or not torch.equal(values[0], values[1]):
                fail(where, f"fill(factor={factor}) must be finite and the same for the same seeded generator")
    outcome, model = pruned_tiny(workdir)
    small = integer_lora(model, lora_targets(outcome.plan, outcome.config))
    state = {k: v.detach().clone() for k, v in peft.get_peft_model_state_dict(small).items()}
    shapes = linear_shapes(outcome.config)
    recovered = recover_adapter(state, outcome.plan, shapes, recoverer, generator=torch.Generator().manual_seed(0))
    check_invariant(where, outcome.plan, shapes, state, recovered, zero_fill=False)
