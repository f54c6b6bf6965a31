"""Device/dtype policy, main-process-only writes, and the checks that keep a multi-process adapter whole."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from loram_core import distributed
from loram_core.cli.main import main
from loram_core.errors import AdapterError, LoramError
from loram_core.lifecycle.rundir import RunDir
from loram_core.placement import Placement, resolve_device, resolve_dtype
from loram_core.testing.tiny import FAST_FLAGS, tiny_llama
from loram_core.train import TrainConfig, attach_lora
from loram_core.train.adapter_files import save_adapter
from loram_test_helpers import REPO


def test_cpu_defaults_stay_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16 and resolve_dtype("fp16", "cpu") == torch.float16
    with pytest.raises(LoramError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(LoramError, match="--dtype must be one of"):
        resolve_dtype("int8", "cpu")


@pytest.mark.parametrize("bf16, expected", [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_is_bf16_only_on_gpus_that_support_it(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert resolve_device("auto") == "cuda"
    assert resolve_dtype("auto", "cuda") == expected
    assert resolve_dtype("fp32", "cuda") == torch.float32  # a named dtype is never second-guessed


def test_bad_device_flag_is_a_clear_error(inputs, tmp_path, capsys):
    model, data = inputs
    # argparse's choices: exit 2 with the valid names, on one line
    code = main(["run", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "r"), "--device", "tpu"])
    assert code == 2 and "invalid choice: 'tpu'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        code = main(["run", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "r"), "--device", "cuda",
                     *FAST_FLAGS])
        assert code == 2 and "no CUDA GPU" in capsys.readouterr().err


def test_bf16_run_trains_a_bf16_base_with_fp32_adapters(inputs, tmp_path):
    model, data = inputs
    runs = {}
    for dtype in ("fp32", "bf16"):
        out = tmp_path / dtype
        assert main(["run", "--model", str(model), "--data", str(data), "--out", str(out), "--dtype", dtype,
                     "--grad-accum", "2", "--no-merge", "--json", *FAST_FLAGS]) == 0
        runs[dtype] = {s: json.loads((out / "stages" / f"{s}.json").read_text()) for s in ("train", "eval")}
        adapter = load_file(out / "adapter-pruned" / "adapter_model.safetensors")
        assert all(t.dtype == torch.float32 for t in adapter.values())  # PEFT keeps LoRA weights in fp32
    fp32, bf16 = runs["fp32"]["train"], runs["bf16"]["train"]
    assert (fp32["dtype"], bf16["dtype"]) == ("fp32", "bf16") and fp32["key"] != bf16["key"]
    assert fp32["global_batch"] == 2 * 2 and fp32["tokens"] == 6 * 2 * 2 * 32  # steps x batch x accum x seq
    adapter_bytes = fp32["adapter_params"] * 4
    assert bf16["param_bytes_train"] - adapter_bytes == (fp32["param_bytes_train"] - adapter_bytes) // 2
    assert all(1 < p < 1e4 for p in runs["bf16"]["eval"]["ppl"].values())
    assert runs["fp32"]["eval"]["key"] != runs["bf16"]["eval"]["key"]


def test_only_the_main_process_writes_run_records(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert distributed.process_count() == 2 and not distributed.is_main_process()
    assert run.finish("train", "k", {"steps": 3}) == {"stage": "train", "key": "k", "steps": 3}
    assert not (run.stages / "train.json").exists()
    monkeypatch.setenv("RANK", "0")
    run.finish("train", "k", {"steps": 3})
    assert json.loads((run.stages / "train.json").read_text())["steps"] == 3


def test_single_process_stages_need_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    calls = []
    assert distributed.run_stage(lambda x: calls.append(x) or "done", 7, collective=False) == "done" and calls == [7]


def test_a_cpu_launch_that_started_one_process_is_named(monkeypatch, capsys):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    distributed.warn_single_cpu_launch()
    assert "--multi_gpu --num_processes N" in capsys.readouterr().err
    monkeypatch.delenv("MASTER_ADDR")  # a plain single-process run: silent
    distributed.warn_single_cpu_launch()
    assert capsys.readouterr().err == ""


def test_an_ungathered_adapter_is_never_written(tmp_path):
    # Under FSDP / ZeRO-3 a process's view of a sharded parameter is a tensor of shape [0].
    model = attach_lora(tiny_llama(0, layers=2), TrainConfig(rank=4, alpha=8))
    state = model.state_dict()
    key = next(k for k in state if "lora_A" in k)
    state[key] = torch.empty(0)
    with pytest.raises(AdapterError, match=r"is incomplete: tensor '.*layers\.0\.self_attn\.q_proj\.lora_A.*' is empty"):
        save_adapter(model, tmp_path / "adapter", None, state)
    assert not (tmp_path / "adapter").exists()  # atomic: nothing half-written
    save_adapter(model, tmp_path / "adapter", None, model.state_dict())
    assert all(t.numel() for t in load_file(tmp_path / "adapter" / "adapter_model.safetensors").values())


def test_module_entry_point_for_launchers():
    done = subprocess.run([sys.executable, "-m", "loram_core.cli", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("loram ")


def test_placement_records_the_resolved_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    class Settings:
        device, dtype = "auto", "auto"

    placement = Placement.from_settings(Settings())
    assert (placement.device, placement.dtype_name) == ("cpu", "fp32")
    model = placement.place(tiny_llama(0, layers=1))
    assert next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize("name, kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed-zero3", "DEEPSPEED")])
def test_documented_accelerate_configs_load(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    from loram_core.plan.apply import apply_plan
    from loram_test_helpers import make_plan

    path = REPO / "examples" / "accelerate" / f"{name}.yaml"
    config = load_config_from_file(str(path))  # accelerate's own reader: unknown keys are errors
    assert config.distributed_type.value == kind and config.num_processes == 8
    if kind == "FSDP":
        fsdp = config.fsdp_config
        assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP" and fsdp["fsdp_use_orig_params"] is True
        assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
        # the wrap unit names the class the pruned model's decoder layers really have
        original = tiny_llama(0)
        pruned = apply_plan(original, make_plan(original))
        assert type(pruned.model.layers[2]).__name__ == fsdp["fsdp_transformer_layer_cls_to_wrap"]
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero3_save_16bit_model"] is True


def test_align_on_a_non_main_process_writes_nothing(inputs, tmp_path, monkeypatch):
    from loram_core import plugins
    from loram_core.lifecycle.align import run_align
    from loram_core.lifecycle.resources import Resources
    from loram_core.lifecycle.settings import make_settings
    from loram_test_helpers import StagePlugins

    model, data = inputs
    out = tmp_path / "run"
    assert main(["prune", str(out), "--model", str(model), "--data", str(data), *FAST_FLAGS]) == 0
    before = {p.name: p.read_bytes() for p in (out / "pruned").iterdir()}
    plugins.load_plugins()
    plugins.pm.register(StagePlugins(), name="StagePlugins")
    try:
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", "1")  # what accelerate launch gives the second process
        settings = make_settings({"model": str(model), "data": str(data), "aligner": "scale-norm"})
        record = run_align(RunDir(out), Resources(settings, progress=False))
    finally:
        plugins.pm.unregister(name="StagePlugins")
    assert record["aligner"] == "scale-norm" and record["steps"] == 1  # it aligned, as every process does
    assert {p.name: p.read_bytes() for p in (out / "pruned").iterdir()} == before  # the main process writes
    assert not (out / "stages" / "align.json").exists()
