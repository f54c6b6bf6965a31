"""One settings schema: every ``RunSettings`` field is one flag, one recipe key and one ``run.json`` key; values
are checked when the settings are built, before any stage runs or the run directory is touched."""

import json

import attrs
import pytest

from loram_core.cli.main import build_parser, main
from loram_core.errors import LoramError
from loram_core.lifecycle.settings import FIELDS, RunSettings, load_recipe, make_settings
from loram_core.train.config import TrainConfig
from loram_test_helpers import tree_hashes

NOT_SETTINGS = {"--recipe", "--out", "--json", "--no-progress", "--overwrite", "--no-preflight", "--list-tasks", "-h",
                "--help"}


def run_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["run"]


def test_every_field_has_exactly_one_flag_and_every_flag_is_a_field():
    flags = {}
    for action in run_parser()._actions:
        names = [o for o in action.option_strings if o not in NOT_SETTINGS]
        if names:
            assert len(names) == 1, names
            assert action.dest not in flags, action.dest
            flags[action.dest] = names[0]
    assert set(flags) == FIELDS
    # the stage commands take the same flags
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for stage in ("prune", "align", "train", "recover", "merge", "eval"):
        dests = {a.dest for a in sub.choices[stage]._actions if set(a.option_strings) - NOT_SETTINGS}
        assert dests == FIELDS, stage


def test_every_field_is_a_recipe_key_and_a_run_json_key(tmp_path):
    settings = RunSettings()
    doc = settings.to_json()
    assert set(doc) == FIELDS
    lines = [f"{k} = {json.dumps(v)}" for k, v in doc.items() if v is not None and not isinstance(v, dict)]
    lines += [f"[{k}]" for k, v in doc.items() if isinstance(v, dict)]  # tables last
    recipe = tmp_path / "all.toml"
    recipe.write_text("\n".join(lines) + "\n")
    values = load_recipe(recipe)
    assert make_settings(values) == settings
    assert set(values) == {k for k, v in doc.items() if v is not None}


def test_train_config_is_derived_from_the_settings_fields():
    by_name = attrs.fields_dict(RunSettings)
    for field in attrs.fields(TrainConfig):
        source = by_name[field.name]
        assert (field.default, field.validator, field.converter) == (source.default, source.validator, source.converter)
    settings = make_settings({"weight_decay": 0.1, "max_grad_norm": 0.5, "checkpoint_every": 0, "lr": 1})
    cfg = settings.train_config()
    assert (cfg.weight_decay, cfg.max_grad_norm, cfg.checkpoint_every, cfg.lr) == (0.1, 0.5, 0, 1.0)
    assert RunSettings().train_config().lr == TrainConfig().lr == 5e-4  # one default, not 5e-4 here and 2e-4 there


def test_a_recipe_string_of_modules_is_split_as_the_flag_is(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('target_modules = "q_proj, v_proj"\n')
    assert make_settings(load_recipe(recipe)).target_modules == ("q_proj", "v_proj")
    args = run_parser().parse_args(["--target-modules", "q_proj,v_proj"])
    from loram_core.cli.flags import flag_values

    assert make_settings(flag_values(args)).target_modules == ("q_proj", "v_proj")


@pytest.mark.parametrize("values, named", [
    ({"lr": -1}, "lr"), ({"dropout": 3}, "dropout"), ({"schedule": "bogus"}, "schedule"), ({"merge": "no"}, "merge"),
    ({"steps": True}, "steps"), ({"weight_decay": -0.1}, "weight_decay"), ({"max_grad_norm": float("nan")}, "max_grad_norm"),
    ({"target_modules": ""}, "target_modules"), ({"pruner_options": "x"}, "pruner_options"), ({"model": ""}, "model"),
])
def test_bad_values_fail_when_the_settings_are_built(values, named):
    with pytest.raises(LoramError, match=named):
        make_settings(values)


@pytest.mark.parametrize("flags", [["--lr", "-1"], ["--dropout", "3"], ["--weight-decay", "-1"], ["--checkpoint-every", "-1"]])
def test_bad_values_exit_2_before_the_run_directory_is_touched(tmp_path, one_line, flags):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = tree_hashes(tmp_path)
    message = one_line(["run", "--model", "nowhere", "--data", "nothing.txt", "--out", out, *flags],
                       f"`loram run {' '.join(flags)}`")
    assert flags[0].lstrip("-").replace("-", "_") in message
    assert tree_hashes(tmp_path) == before


@pytest.mark.parametrize("recipe, flags, expected", [
    ('merge = "no"\n', [], "merge must be true or false, got 'no'"),
    ("", ["--pruner-opt", "attention=maybe"], "attention must be true or false, got 'maybe'"),
], ids=["recipe merge no", "pruner-opt attention maybe"])
def test_recipe_and_option_values_are_type_checked_like_flags(inputs, tmp_path, one_line, recipe, flags, expected):
    model, data = inputs
    (tmp_path / "r.toml").write_text(recipe)
    argv = ["run", "--recipe", tmp_path / "r.toml", "--model", model, "--data", data, "--out", tmp_path / "run", *flags]
    what = f"recipe `{recipe.strip()}`" if recipe else f"`{' '.join(flags)}`"
    assert expected in one_line(argv, f"a value of the wrong type: {what}")
    assert not (tmp_path / "run").exists()


def test_checkpoint_every_zero_turns_checkpoints_off(tmp_path):
    from loram_core.testing.tiny import save_tiny_model

    model = save_tiny_model(tmp_path / "model")
    (tmp_path / "data.txt").write_text("\n\n".join(f"the king said {i} words to the sea" * 20 for i in range(40)))
    out = tmp_path / "run"
    assert main(["run", "--model", str(model), "--data", str(tmp_path / "data.txt"), "--out", str(out), "--steps", "3",
                 "--batch-size", "2", "--seq-len", "16", "--eval-tokens", "256", "--eval-seq-len", "32",
                 "--checkpoint-every", "0", "--weight-decay", "0.01", "--max-grad-norm", "0.5", "--no-merge",
                 "--no-progress", "--json"]) == 0
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())
    saved = json.loads((out / "run.json").read_text())["settings"]
    assert (saved["checkpoint_every"], saved["weight_decay"], saved["max_grad_norm"]) == (0, 0.01, 0.5)
