"""Every bad input gets exit code 2 and one line naming the problem (no traceback): the rows of
docs/reliability.md's "Bad input" table (``one_line`` in tests/conftest.py checks them against the doc)."""

import errno
import glob
import json
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from loram_core.cli.main import main
from loram_core.testing.tiny import save_tiny_model, write_tiny_inputs
FAST = ["--steps", "2", "--batch-size", "2", "--seq-len", "32", "--eval-seq-len", "64", "--eval-tokens", "256",
        "--no-progress"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    write_tiny_inputs(root)  # model/ and data.txt
    save_tiny_model(root / "other", gqa=False)
    (root / "empty.txt").write_text("")
    (root / "short.txt").write_text("too short")
    (root / "notok").mkdir()
    for name in ("config.json", "model.safetensors"):
        (root / "notok" / name).write_bytes((root / "model" / name).read_bytes())
    base = ["--model", str(root / "model"), "--data", str(root / "data.txt"), *FAST]
    assert main(["run", "--out", str(root / "done"), *base, "--no-merge"]) == 0
    return root, base


def _copy_run(root: Path, name: str) -> Path:
    import shutil

    dst = root / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(root / "done", dst)
    return dst


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def case_unknown_pruner(root, base):
    return ["run", "--pruner", "randm", "--out", str(root / "x"), *base]


def case_ratio_outside(root, base):
    return ["run", "--ratio", "1.5", "--out", str(root / "x"), *base]


def case_layers_outside(root, base):
    return ["prune", str(root / "x"), "--layers", "2:99", *base]


def _register_for_the_case(request, module: str) -> None:
    """A plugin package of this repository registered for one case (installed by scripts/install.sh, as CI does)."""
    from loram_core import plugins

    plugin = pytest.importorskip(module)
    plugins.load_plugins()
    plugins.pm.register(plugin, name=f"{module}-under-test")
    request.addfinalizer(lambda: plugins.pm.unregister(name=f"{module}-under-test"))


def case_nm_pattern(root, base, request):
    _register_for_the_case(request, "loram_plugin_sparsegpt")
    return ["run", "--pruner", "sparsegpt", "--pruner-opt", "pattern=4:4", "--out", str(root / "nm"), *base]


def case_plan_for_another_model(root, base):
    run = _copy_run(root, "other-model")
    (run / "stages" / "train.json").unlink()
    return ["train", str(run), "--model", str(root / "other")]


def case_adapter_does_not_fit(root, base):
    run = _copy_run(root, "bad-adapter")
    path = run / "adapter-pruned" / "adapter_model.safetensors"
    state = load_file(path)
    key = next(k for k in state if "layers.5.self_attn.q_proj.lora_B" in k)
    state[key] = state[key][:-3]
    save_file(state, path)
    (run / "stages" / "recover.json").unlink()
    return ["recover", str(run)]


def case_truncated_weights(root, base):
    run = _copy_run(root, "truncated")
    _truncate(Path(sorted(glob.glob(str(run / "pruned" / "*.safetensors")))[0]))
    (run / "stages" / "train.json").unlink()
    return ["train", str(run)]


def case_truncated_plan_json(root, base):
    run = _copy_run(root, "bad-plan")
    path = run / "plan" / "plan.json"
    path.write_bytes(path.read_bytes()[:20])  # cut early: the message does not depend on the plan's content
    (run / "stages" / "train.json").unlink()
    return ["train", str(run)]


def case_empty_dataset(root, base):
    return ["run", "--out", str(root / "x"), *base, "--data", str(root / "empty.txt")]


def case_retired_dataset(root, base):
    return ["run", "--out", str(root / "x"), *base, "--data", "natural-instructions"]


def case_too_short_dataset(root, base):
    return ["run", "--out", str(root / "x"), *base, "--data", str(root / "short.txt")]


def case_missing_tokenizer(root, base):
    return ["prune", str(root / "x"), *base, "--model", str(root / "notok")]


def case_published_other_base(root, base):
    out = root / "published"
    if not (out / "loram_published.json").is_file():
        assert main(["publish", str(root / "done"), str(out)]) == 0
    save_tiny_model(root / "retrained", seed=5)  # the base's architecture and config, other weights
    return ["run", "--pruned", str(out), "--out", str(root / "x"), *base, "--model", str(root / "retrained")]


def case_hub_id_not_cached(root, base, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as here: the hub is out of reach (the message then says why)
    return ["run", "--out", str(root / "x"), *base, "--model", "someorg/smollm-typo"]


def case_other_schema(root, base):
    run = _copy_run(root, "schema")
    doc = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**doc, "schema": 99}))
    return ["eval", str(run)]


def case_recipe_unknown_key(root, base):
    (root / "recipe.toml").write_text('pruner = "magnitude"\nratoi = 0.5\n')
    return ["run", "--recipe", str(root / "recipe.toml"), "--out", str(root / "x"), *base]


def case_out_of_disk(root, base, monkeypatch):
    import loram_core.lifecycle.pruned_folder as pw

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pw, "save_pruned_model_weights", full_disk)
    monkeypatch.setattr(pw, "ShardWriter", full_disk)
    return ["prune", str(root / "disk-full"), *base]


def case_task_without_evaluator(root, base):
    return ["eval", str(root / "done"), "--tasks", "winowhy"]  # no evaluator registered in the core's tests


def case_include_path_missing(root, base, request):
    _register_for_the_case(request, "loram_plugin_lmeval")
    return ["eval", str(root / "done"), "--tasks", "mine", "--include-path", str(root / "no-such-folder")]


def case_unknown_task(root, base, request):
    _register_for_the_case(request, "loram_plugin_lmeval")
    return ["eval", str(root / "done"), "--tasks", "piqa,mathqa"]


def case_training_does_not_fit(root, base, monkeypatch):
    import loram_core.estimate.preflight as preflight

    monkeypatch.setattr(preflight, "available_bytes", lambda device="cpu": 2**20)  # a 1 MiB machine
    return ["run", "--out", str(root / "no-room"), *base]


def case_shards_do_not_fit_on_disk(root, base, monkeypatch):
    import shutil

    usage = shutil.disk_usage(root)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=10_000))
    return ["run", "--out", str(root / "no-disk"), *base]


CASES = [
    ("unknown plugin name", case_unknown_pruner, "unknown pruner 'randm'; did you mean 'random'?"),
    ("ratio outside [0, 1)", case_ratio_outside, "ratio must be in [0, 1), got 1.5"),
    ("layer range outside the model", case_layers_outside, "layer range 2:99 is outside the model's 8 decoder layers"),
    ("N:M with N >= M", case_nm_pattern, "N:M with 0 < N < M (e.g. 2:4), got '4:4'"),
    ("a stage command naming another model than the run's plan was made for", case_plan_for_another_model,
     "would change what the finished prune stage read"),
    ("an adapter that does not fit the plan", case_adapter_does_not_fit, "lora_B has 29 rows, the plan keeps 32"),
    ("truncated safetensors", case_truncated_weights, "is not a readable safetensors file"),
    ("truncated JSON (plan.json)", case_truncated_plan_json, "unreadable plan"),
    ("empty dataset", case_empty_dataset, "is empty"),
    ("too-short dataset", case_too_short_dataset, "too little text"),
    ("a retired dataset alias", case_retired_dataset, "use --data suite-instructions"),
    ("missing tokenizer", case_missing_tokenizer, "has no tokenizer"),
    ("published pruned model with another base fingerprint", case_published_other_base,
     "differs in its weights (weights_digest"),
    ("a hub id that is not cached, offline", case_hub_id_not_cached, "is not a local folder, a model alias or in the Hugging Face cache"),
    ("RUN_DIR of another schema version", case_other_schema, "was written by run-dir schema 99"),
    ("recipe with an unknown key", case_recipe_unknown_key, "unknown key(s) ratoi"),
    ("out of disk while writing", case_out_of_disk, "no space left on the device"),
    ("--tasks with no task evaluator installed", case_task_without_evaluator, "install loram-plugin-lmeval"),
    ("an unknown task", case_unknown_task, "unknown task(s) mathqa; known: arithmetic, asdiv, boolq"),
    ("--include-path that is not a folder", case_include_path_missing, "is not a folder of lm-eval task YAMLs"),
    ("shards that do not fit on the disk", case_shards_do_not_fit_on_disk, "free; free some space, choose another --out"),
    ("training that does not fit in this machine's memory", case_training_does_not_fit,
     "by loram estimate's model and this machine has 1 MiB available"),
]


@pytest.mark.parametrize("what, make_argv, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_and_exit_code_2(world, what, make_argv, expected, one_line, monkeypatch, request):
    root, base = world
    wanted = make_argv.__code__.co_varnames
    kwargs = {k: v for k, v in (("monkeypatch", monkeypatch), ("request", request)) if k in wanted}
    message = one_line(make_argv(root, base, **kwargs), what)
    assert message.startswith("loram: error: ") and expected in message
    if what == "training that does not fit in this machine's memory":
        assert not (root / "no-room").exists()  # stopped before the run directory was made
        monkeypatch.setattr("loram_core.estimate.preflight.available_bytes", lambda device="cpu": 2**20)
        assert main(["run", "--out", str(root / "no-room"), *base, "--no-preflight", "--no-merge"]) == 0
    if what == "shards that do not fit on the disk":
        assert not (root / "no-disk").exists()
    if what == "out of disk while writing":
        assert not (root / "disk-full" / "pruned").exists()
        assert (root / "disk-full" / "plan" / "plan.json").is_file()  # written before the failure: whole
        assert not [p for p in (root / "disk-full").iterdir() if p.name.endswith(".tmp")]
