"""The built-in aligners on tiny random models: frozen weights, masks, loss, resume, distillation, CLI, contract."""

import copy
import json
import shutil

import pytest
import torch

from loram_core import registry
from loram_core.builtin.align.distill import kl_to_teacher
from loram_core.builtin.align.loop import effective_steps
from loram_core.cli.main import main
from loram_core.configs import build_config
from loram_core.errors import LoramError
from loram_core.lifecycle.align import AlignContext
from loram_core.models.loading import load_model, load_tokenizer
from loram_core.plan import MaskEntry, PrunePlan, PrunerInfo
from loram_core.plan.fingerprint import ModelFingerprint
from loram_core.testing.conformance import check_aligner
from loram_core.testing.conformance.stage_checks import pruned_tiny
from loram_core.testing.tiny import FAST_FLAGS

MASKED = ("model.layers.1.self_attn.q_proj", "model.layers.2.mlp.down_proj")


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """(outcome, pruned model) of the core's magnitude pruner at 0.5 on a tiny GQA Llama."""
    return pruned_tiny(tmp_path_factory.mktemp("pruned"))


def _options(data, **extra):
    return {"data": str(data), "steps": 4, "lr": 1e-3, "batch_size": 2, "seq_len": 32, "warmup_steps": 0,
            "eval_tokens": 256, "eval_seq_len": 32, "checkpoint_every": 0, **extra}


def _align(name, model, options, context_parts, work):
    aligner = registry.get("aligner", name)
    config = build_config(aligner.config_cls, options, owner=f"aligner '{name}'")
    tokenizer, config_hf, plan, model_path = context_parts
    context = AlignContext(tokenizer, config_hf, plan, 0, False, work, model_path=str(model_path), device="cpu")
    return aligner.align(model, config, context)


def _parts(outcome):
    return load_tokenizer(outcome.model_path), outcome.config, outcome.plan, outcome.model_path


def test_frozen_parameters_are_bit_identical_and_the_rest_train(pruned, inputs, tmp_path):
    outcome, model = pruned
    _, data = inputs
    model = copy.deepcopy(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = _align("continual-pretrain", model, _options(data), _parts(outcome), tmp_path)
    after = model.state_dict()
    # the tiny model ties lm_head to embed_tokens: freezing one freezes both (one tensor)
    assert result["frozen"] == ["lm_head.weight", "model.embed_tokens.weight"]
    for name, value in before.items():
        frozen = name in ("lm_head.weight", "model.embed_tokens.weight")
        assert torch.equal(after[name], value) == frozen, name
    assert all(p.requires_grad for p in model.parameters())  # flags restored
    assert result["steps"] == 4 and result["tokens"] == 4 * 2 * 32 and len(result["losses"]) == 4
    assert result["dataset"] == str(data) and result["ppl_before"] > 1 and result["ppl_after"] > 1


def test_a_custom_frozen_set_and_a_pattern_that_matches_nothing(pruned, inputs, tmp_path):
    outcome, model = pruned
    _, data = inputs
    model = copy.deepcopy(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = _align("continual-pretrain", model, _options(data, steps=2, frozen="layers.0.,norm", eval_tokens=0),
                    _parts(outcome), tmp_path)
    assert "ppl_before" not in result
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]) == ("layers.0." in name or "norm" in name), name
    with pytest.raises(LoramError, match="no parameter name contains 'lm_hed'"):
        _align("continual-pretrain", copy.deepcopy(pruned[1]), _options(data, frozen="lm_hed"), _parts(outcome), tmp_path)


def test_masked_weights_stay_zero_on_a_mask_plan(inputs, tmp_path):
    model_dir, data = inputs
    model = load_model(model_dir)
    entries = {}
    for name in MASKED:  # 2:4 by magnitude, applied as the core does: zeros, shapes kept
        weight = model.get_submodule(name).weight
        keep = weight.detach().abs().view(-1, 4).argsort(-1, descending=True).argsort(-1) < 2
        entries[name] = MaskEntry(mask=keep.view(weight.shape), pattern="2:4")
        with torch.no_grad():
            weight.mul_(entries[name].mask)
    plan = PrunePlan(base=ModelFingerprint.from_config(model.config, name_or_path=str(model_dir)),
                     pruner=PrunerInfo("two-four", "0"), pattern="2:4", entries=entries)
    before = {n: model.get_submodule(n).weight.detach().clone() for n in MASKED}
    parts = (load_tokenizer(model_dir), model.config, plan, model_dir)
    for optimizer in ("adamw", "sgd"):
        _align("continual-pretrain", model, _options(data, steps=3, optimizer=optimizer, weight_decay=0.1, eval_tokens=0),
               parts, tmp_path / optimizer)
        for name, entry in entries.items():
            weight = model.get_submodule(name).weight.detach()
            assert bool((weight[~entry.mask] == 0).all()), name
            assert not torch.equal(weight[entry.mask], before[name][entry.mask]), name


def test_loss_decreases_over_twenty_steps(pruned, inputs, tmp_path):
    outcome, model = pruned
    _, data = inputs
    result = _align("continual-pretrain", copy.deepcopy(model), _options(data, steps=20, batch_size=4, lr=3e-3),
                    _parts(outcome), tmp_path)
    losses = result["losses"]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.2
    assert result["loss_first"] == losses[0] and result["loss_last"] == losses[-1]
    assert result["ppl_after"] < result["ppl_before"]


def test_resume_from_a_checkpoint_is_bit_identical_to_an_uninterrupted_run(pruned, inputs, tmp_path):
    outcome, model = pruned
    _, data = inputs
    options = _options(data, steps=6, checkpoint_every=3, eval_tokens=0, grad_accum=2)
    work = tmp_path / "work"
    whole = copy.deepcopy(model)
    assert _align("continual-pretrain", whole, options, _parts(outcome), work)["resumed_from"] is None
    assert sorted(p.name for p in work.iterdir()) == ["step-3", "step-6"]
    shutil.rmtree(work / "step-6")  # as if the run had been stopped after step 3
    resumed = copy.deepcopy(model)
    result = _align("continual-pretrain", resumed, options, _parts(outcome), work)
    assert result["resumed_from"] == 3 and len(result["losses"]) == 6
    for name, value in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
    # another config (more steps) does not resume from these checkpoints
    other = _align("continual-pretrain", copy.deepcopy(model), {**options, "steps": 7}, _parts(outcome), tmp_path / "w2")
    assert other["resumed_from"] is None


def test_token_budget_caps_the_steps(pruned, inputs, tmp_path):
    outcome, model = pruned
    _, data = inputs
    result = _align("continual-pretrain", copy.deepcopy(model), _options(data, token_budget=3 * 64 + 10, eval_tokens=0),
                    _parts(outcome), tmp_path)
    assert result["steps"] == 3 and result["tokens"] == 3 * 64
    config = registry.get("aligner", "continual-pretrain").config_cls(token_budget=100, batch_size=4, seq_len=128)
    with pytest.raises(LoramError, match="less than one step"):
        effective_steps(config)


def test_kl_term_is_zero_when_the_student_is_the_teacher(inputs, tmp_path):
    logits = torch.randn(2, 5, 11)
    teacher_logp = torch.log_softmax(logits / 2.0, -1)
    assert float(kl_to_teacher(logits, teacher_logp, 2.0)) == pytest.approx(0.0, abs=1e-7)
    assert float(kl_to_teacher(logits + torch.randn(2, 5, 11), teacher_logp, 2.0)) > 0
    model_dir, data = inputs
    student = load_model(model_dir)  # unpruned: the student is the teacher until its first update
    plan = PrunePlan(base=ModelFingerprint.from_config(student.config, name_or_path=str(model_dir)),
                     pruner=PrunerInfo("none", "0"), pattern="structured", entries={})
    result = _align("distill", student, _options(data, steps=2, eval_tokens=0),
                    (load_tokenizer(model_dir), student.config, plan, model_dir), tmp_path)
    assert result["kl_first"] == pytest.approx(0.0, abs=1e-6) and result["loss_first"] == result["kl_first"]
    assert result["ce_first"] > 1


def test_distill_moves_the_pruned_model_towards_its_teacher(pruned, inputs, tmp_path):
    outcome, model = pruned
    _, data = inputs
    # A random tiny model's logits are near uniform; a sharpened copy of the original is a teacher worth matching.
    teacher = load_model(outcome.model_path)
    with torch.no_grad():
        teacher.model.norm.weight.mul_(5)
    teacher.save_pretrained(tmp_path / "teacher")
    load_tokenizer(outcome.model_path).save_pretrained(tmp_path / "teacher")
    ids = torch.tensor(load_tokenizer(outcome.model_path)(data.read_text()[:3000]).input_ids[: 4 * 64]).view(4, 64)

    def kl(student):
        with torch.no_grad():
            return float(kl_to_teacher(student(ids).logits, torch.log_softmax(teacher(ids).logits, -1), 1.0))

    student = copy.deepcopy(model)
    before = kl(student)
    options = _options(data, steps=8, lr=0.01, optimizer="sgd", max_grad_norm=0, teacher=str(tmp_path / "teacher"))
    result = _align("distill", student, options, _parts(outcome), tmp_path / "w1")
    assert kl(student) < before - 0.005 and result["kl_first"] > 0.1
    result = _align("distill", copy.deepcopy(model), {**options, "steps": 1, "kl_weight": 0.5, "temperature": 2.0},
                    _parts(outcome), tmp_path / "w2")
    assert result["loss_first"] == pytest.approx(0.5 * result["ce_first"] + 0.5 * result["kl_first"], rel=1e-5)
    aligner = registry.get("aligner", "distill")
    tokenizer, config, plan, _ = _parts(outcome)
    with pytest.raises(LoramError, match="needs the original model"):
        context = AlignContext(tokenizer, config, plan, 0, False, tmp_path)  # no model_path
        aligner.align(copy.deepcopy(model), aligner.config_cls(data=str(data)), context)


@pytest.mark.parametrize("name", ["continual-pretrain", "distill"])
def test_the_builtin_aligners_pass_the_conformance_check(name, inputs, tmp_path):
    _, data = inputs
    # check_aligner saves its tiny model under WORKDIR/models/llama-gqa; distill takes it as its teacher
    extra = {"teacher": str(tmp_path / "models" / "llama-gqa")} if name == "distill" else {}
    check_aligner(registry.get("aligner", name), options=_options(data, steps=2, **extra), workdir=tmp_path)


def test_loram_run_with_the_continual_pretrain_aligner(inputs, tmp_path):
    model_dir, data = inputs
    out = tmp_path / "run"
    opts = [f"--aligner-opt={o}" for o in ("steps=3", f"data={data}", "seq_len=32", "batch_size=2", "lr=0.001",
                                           "eval_tokens=256", "eval_seq_len=32", "checkpoint_every=3")]
    assert main(["run", "--model", str(model_dir), "--data", str(data), "--pruner", "magnitude", "--ratio", "0.5",
                 "--aligner", "continual-pretrain", *opts, "--out", str(out), "--json", *FAST_FLAGS]) == 0
    align = json.loads((out / "report.json").read_text())["align"]
    assert align["aligner"] == "continual-pretrain" and align["dataset"] == str(data) and align["steps"] == 3
    assert align["ppl_after"] < align["ppl_before"]
    meta = json.loads((out / "pruned" / "loram_pruned.json").read_text())
    assert meta["aligned_by"]["aligner"] == "continual-pretrain"
    assert (out / "checkpoints" / "align" / "step-3" / "model.safetensors").is_file()


def _pruned_weights(run):
    from loram_core.lifecycle.pruned_folder import load_pruned_weights

    return load_pruned_weights(run / "pruned")


def test_aligning_again_with_other_options_starts_from_the_pruned_weights(inputs, tmp_path):
    model_dir, data = inputs
    base = ["--model", str(model_dir), "--data", str(data), "--pruner", "magnitude", "--ratio", "0.5", *FAST_FLAGS]
    opts = [f"--aligner-opt={o}" for o in (f"data={data}", "seq_len=32", "batch_size=2", "lr=0.001",
                                           "eval_tokens=0", "checkpoint_every=0")]
    # reference: a fresh run aligned 2 steps
    assert main(["run", *base, "--aligner", "continual-pretrain", *opts, "--aligner-opt=steps=2",
                 "--out", str(tmp_path / "fresh2")]) == 0
    # the same run dir aligned 3 steps first, then 2: the second must not train on top of the first
    run = tmp_path / "twice"
    assert main(["run", *base, "--aligner", "continual-pretrain", *opts, "--aligner-opt=steps=3", "--out", str(run)]) == 0
    assert main(["align", str(run), "--aligner-opt=steps=2", *opts, "--overwrite"]) == 0  # replaces the aligned weights
    want, got = _pruned_weights(tmp_path / "fresh2"), _pruned_weights(run)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def test_a_published_aligned_model_carries_its_alignment(inputs, tmp_path):
    model_dir, data = inputs
    opts = [f"--aligner-opt={o}" for o in ("steps=2", f"data={data}", "seq_len=32", "batch_size=2", "lr=0.001",
                                           "eval_tokens=256", "eval_seq_len=32", "checkpoint_every=0")]
    base = ["--model", str(model_dir), "--data", str(data), *FAST_FLAGS]
    assert main(["run", *base, "--pruner", "magnitude", "--ratio", "0.5", "--aligner", "continual-pretrain", *opts,
                 "--out", str(tmp_path / "pub-run")]) == 0
    assert main(["publish", str(tmp_path / "pub-run"), str(tmp_path / "pub")]) == 0
    card = json.loads((tmp_path / "pub" / "loram_published.json").read_text())
    assert card["align"]["aligner"] == "continual-pretrain" and card["align"]["steps"] == 2
    assert "continual-pretrain" in (tmp_path / "pub" / "README.md").read_text()
    assert main(["run", *base, "--pruned", str(tmp_path / "pub"), "--out", str(tmp_path / "user")]) == 0
    report = json.loads((tmp_path / "user" / "report.json").read_text())
    assert report["align"]["aligner"] == "continual-pretrain"
    want, got = _pruned_weights(tmp_path / "pub-run"), _pruned_weights(tmp_path / "user")
    assert all(torch.equal(want[k], got[k]) for k in want)  # the user trains on the publisher's aligned weights
