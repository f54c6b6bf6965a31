"""Wanda on GPT-2: refused in one line (Conv1D stores weights transposed)."""


def test_wanda_refuses_gpt2_in_one_line_before_writing_a_plan(wanda_registered, tmp_path, capsys):
    from loram_core.cli.main import main
    from loram_core.testing.tiny import FAST_FLAGS, write_tiny_inputs

    model, data = write_tiny_inputs(tmp_path, model_type="gpt2", gqa=False)
    run = tmp_path / "run"
    capsys.readouterr()
    code = main(["run", "--model", str(model), "--data", str(data), "--pruner", "wanda", "--ratio", "0.5", "--out", str(run), *FAST_FLAGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "pruner 'wanda' does not prune gpt2 models" in err[0] and "Conv1D" in err[0] and not (run / "plan").exists()
    assert not (run / "adapter").exists()
