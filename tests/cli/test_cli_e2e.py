"""``loram run`` end to end on a tiny random GQA Llama, through the CLI, in seconds."""

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from loram_core.cli.main import main
from loram_core.testing.tiny import FAST_FLAGS
from loram_test_helpers import REPORT_KEYS


@pytest.fixture(scope="module")
def run_dir(inputs, tmp_path_factory):
    model, data = inputs
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "magnitude", "--ratio", "0.5",
                 "--out", str(out), "--json", *FAST_FLAGS]) == 0
    return out


def test_report_has_every_key_of_the_design(run_dir):
    report = json.loads((run_dir / "report.json").read_text())
    for key, sub in REPORT_KEYS.items():
        assert key in report
        if sub:
            assert sub <= set(report[key]), key
    assert report["params"]["pruned"] < report["params"]["original"]
    assert report["params"]["reduction_ratio"] == report["params"]["original"] / report["params"]["pruned"]
    assert report["train"]["steps"] == 6 and report["train"]["tokens"] == 6 * 2 * 32
    assert all(v > 1 for v in report["ppl"].values())
    assert report["pruner"]["pattern"] == "structured" and report["eval"]["split"] == "test"


def test_recovered_adapter_is_stock_peft_for_the_original_and_matches_merged(run_dir, inputs):
    model_dir, _ = inputs
    config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(model_dir)
    sidecar = json.loads((run_dir / "adapter" / "loram.json").read_text())
    assert sidecar["pruner"]["name"] == "magnitude" and sidecar["recoverer"]["name"] == "zero"
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), run_dir / "adapter")
    merged = AutoModelForCausalLM.from_pretrained(run_dir / "merged")
    ids = torch.randint(0, 128, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(peft_model(ids).logits, merged(ids).logits, rtol=0, atol=1e-4)
        # the adapter does something: the merged model differs from the original
        assert not torch.allclose(merged(ids).logits, AutoModelForCausalLM.from_pretrained(model_dir)(ids).logits)


def test_rerun_skips_finished_stages(run_dir, inputs):
    model, data = inputs
    before = {p.name: p.read_text() for p in (run_dir / "stages").iterdir()}
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "magnitude", "--ratio", "0.5",
                 "--out", str(run_dir), "--json", *FAST_FLAGS]) == 0
    after = {p.name: p.read_text() for p in (run_dir / "stages").iterdir()}
    assert before == after


def test_single_stage_commands_on_a_run_dir(inputs, tmp_path, capsys):
    model, data = inputs
    run = tmp_path / "staged"
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f'model = "{model}"\ndata = "{data}"\npruner = "random"\nratio = 0.25\nrank = 4\n')
    assert main(["prune", str(run), "--recipe", str(recipe), *FAST_FLAGS]) == 0
    assert (run / "plan" / "plan.json").is_file() and not (run / "adapter-pruned").exists()
    for stage in ("train", "recover", "merge", "eval"):
        assert main([stage, str(run), "--json", "--no-progress"]) == 0, stage
    report = json.loads((run / "report.json").read_text())
    assert report["pruner"] == {**report["pruner"], "name": "random", "ratio": 0.25}
    assert json.loads((run / "adapter" / "adapter_config.json").read_text())["r"] == 4
    assert set(report["ppl"]) == {"original", "pruned", "pruned_lora", "loram"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--ratio", "1.5"], "ratio must be in [0, 1)"),
        (["run", "--data", "/nonexistent/file.txt"], "/nonexistent/file.txt"),
        (["run", "--pruner", "magnitude", "--layers", "3:99"], "outside the model's 8 decoder layers"),
        (["run", "--pruner-opt", "nonsense=1"], "unknown option(s) nonsense"),
        (["train"], "is not a run directory"),
        (["run", "--quantizer", "nf4"], "unknown quantizer 'nf4'"),
    ],
)
def test_bad_input_exits_2_with_one_line(inputs, tmp_path, capsys, args, message):
    model, data = inputs
    base = ["--model", str(model)] if "--data" in args else ["--model", str(model), "--data", str(data)]
    target = [str(tmp_path / "run")] if args[0] != "run" else ["--out", str(tmp_path / "run")]
    assert main([args[0], *target, *base, *args[1:], *FAST_FLAGS]) == 2
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("loram: error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err, err


def test_recipe_with_unknown_key_is_refused(tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text('pruner = "random"\nraito = 0.3\n')
    assert main(["run", "--recipe", str(recipe), "--out", str(tmp_path / "run")]) == 2
    assert "unknown key(s) raito" in capsys.readouterr().err


def test_bad_input_on_an_existing_run_leaves_its_artifacts_whole(run_dir, inputs, capsys):
    model, data = inputs
    files = sorted(p for p in run_dir.rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in files}
    for bad in (["--ratio", "1.5"], ["--pruner", "nope"], ["--recoverer", "zeros"]):
        assert main(["run", "--model", str(model), "--data", str(data), "--out", str(run_dir), *bad, *FAST_FLAGS]) == 2
    assert "did you mean 'zero'" in capsys.readouterr().err
    assert sorted(p for p in run_dir.rglob("*") if p.is_file()) == files
    assert all(p.read_bytes() == data_ for p, data_ in before.items())
