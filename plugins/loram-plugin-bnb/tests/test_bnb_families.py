"""NF4 on GPT-2: refused in one line (bitsandbytes replaces Linear, not Conv1D)."""


def test_nf4_refuses_conv1d_models_in_one_line(bnb, tmp_path, capsys):
    from loram_core.cli.main import main
    from loram_core.testing.tiny import FAST_FLAGS, write_tiny_inputs

    model, data = write_tiny_inputs(tmp_path, model_type="gpt2", gqa=False)
    run = tmp_path / "run"
    capsys.readouterr()
    code = main(["run", "--model", str(model), "--data", str(data), "--pruner", "magnitude", "--ratio", "0.5", "--quantizer", "nf4", "--out", str(run), *FAST_FLAGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "Conv1D" in err[0] and "without --quantizer" in err[0]
    assert not (run / "adapter").exists()
