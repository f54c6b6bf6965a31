"""SparseGPT on the families beyond Llama: Phi-3's fused projections are pruned, GPT-2 is refused in one line."""


def test_sparsegpt_refuses_gpt2_in_one_line_before_writing_a_plan(sparsegpt_registered, tmp_path, capsys):
    from loram_core.cli.main import main
    from loram_core.testing.tiny import FAST_FLAGS, write_tiny_inputs

    model, data = write_tiny_inputs(tmp_path, model_type="gpt2", gqa=False)
    run = tmp_path / "run"
    capsys.readouterr()
    code = main(["run", "--model", str(model), "--data", str(data), "--pruner", "sparsegpt", "--ratio", "0.5", "--out", str(run), *FAST_FLAGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "pruner 'sparsegpt' does not prune gpt2 models" in err[0] and "Conv1D" in err[0] and not (run / "plan").exists()
    assert not (run / "adapter").exists()


def test_sparsegpt_prunes_phi3s_fused_projections_by_default(sparsegpt_registered, tmp_path):
    import json

    from loram_core.cli.main import main
    from loram_core.plan.serialize import load_plan
    from loram_core.testing.tiny import FAST_FLAGS, write_tiny_inputs

    model, data = write_tiny_inputs(tmp_path, model_type="phi3")
    run = tmp_path / "run"
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "sparsegpt", "--ratio", "0.5",
                 "--out", str(run), *FAST_FLAGS]) == 0
    plan = load_plan(run / "plan")
    assert {m.rsplit(".", 1)[-1] for m in plan.entries} == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
    assert sorted(plan.pruner.params["modules"]) == ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"]
    assert json.loads((run / "stages" / "merge.json").read_text())["path"]
