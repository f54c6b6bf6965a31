"""Pruners that stream layers from disk, and reconstructed weights handed to the core through the store."""

import json

import attrs
import pytest
import torch
from safetensors.torch import load_file

from loram_core import hookimpl, plugins
from loram_core.checkpoint import CheckpointReader, ShardWriter, load_weights, release_module
from loram_core.cli.main import main
from loram_core.plan.apply import empty_model
from loram_core.testing.tiny import FAST_FLAGS, tiny_llama, tiny_llama_config

MODULE = "model.layers.1.self_attn.q_proj"


def test_shards_round_trip_and_reader_loads_one_module(tmp_path):
    model = tiny_llama(seed=3)
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied
    writer = ShardWriter(tmp_path, shard_bytes=40_000)
    for name, tensor in state.items():
        writer.add(name, tensor)
    writer.close()
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 3 and shards[-1].endswith(f"-of-{len(shards):05d}.safetensors")
    loaded = load_weights(tmp_path)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    # A meta layer gets exactly the checkpoint's values, and gives the memory back afterwards.
    skeleton = empty_model(tiny_llama_config())
    layer = skeleton.model.layers[2]
    assert all(p.is_meta for p in layer.parameters())
    CheckpointReader.open(tmp_path).load_module(layer, "model.layers.2")
    for name, p in layer.named_parameters():
        assert torch.equal(p, state[f"model.layers.2.{name}"])
    release_module(layer)
    assert all(p.is_meta for p in layer.parameters())


def test_reader_without_safetensors_is_a_clear_error(tmp_path):
    from loram_core.errors import LoramError

    with pytest.raises(LoramError, match="has no safetensors weights"):
        CheckpointReader.open(tmp_path)


@attrs.frozen
class NoOptions:
    pass


@attrs.frozen
class DoublingTwoFour:
    """2:4 by magnitude on one module, and a 'reconstructed' weight 2*W for it: visible in the result."""

    streaming: bool
    name: str = "doubling"
    config_cls: type = NoOptions
    seen_meta: list = attrs.field(factory=list)

    def plan(self, model, config, context):
        from loram_core.plan import MaskEntry, PrunePlan, PrunerInfo

        self.seen_meta.append(model.get_submodule(MODULE).weight.is_meta)
        if self.streaming:
            w = CheckpointReader.open(context.model_path).get(f"{MODULE}.weight")
        else:
            w = model.get_submodule(MODULE).weight.detach().clone()
        keep = w.abs().view(-1, 4).argsort(-1, descending=True).argsort(-1) < 2
        context.weights.put(MODULE, 2 * w)
        entries = {MODULE: MaskEntry(mask=keep.view(w.shape), pattern="2:4")}
        return PrunePlan(base=context.fingerprint, pruner=PrunerInfo(self.name, "0"), pattern="2:4", entries=entries)


def _cli(pruner, *argv):
    class Plugin:
        @hookimpl
        def register_pruners(self, register):
            register(pruner)

    plugins.load_plugins()
    plugins.pm.register(Plugin(), name="DoublingPlugin")
    try:
        return main(list(argv))
    finally:
        plugins.pm.unregister(name="DoublingPlugin")


def _prune(pruner, model, data, out):
    assert _cli(pruner, "prune", str(out), "--model", str(model), "--data", str(data), "--pruner", "doubling",
                *FAST_FLAGS) == 0
    return json.loads((out / "stages" / "prune.json").read_text())


def test_streaming_and_in_memory_pruning_write_the_same_weights(inputs, tmp_path):
    model, data = inputs
    streaming, in_memory = DoublingTwoFour(streaming=True), DoublingTwoFour(streaming=False)
    rec_s = _prune(streaming, model, data, tmp_path / "s")
    rec_m = _prune(in_memory, model, data, tmp_path / "m")
    assert streaming.seen_meta == [True] and in_memory.seen_meta == [False]
    assert rec_s["streamed"] is True and rec_m["streamed"] is False
    assert (tmp_path / "s" / "pruned" / "model.safetensors.index.json").is_file()
    assert (tmp_path / "m" / "pruned" / "model.safetensors").is_file()
    a, b = load_weights(tmp_path / "s" / "pruned"), load_weights(tmp_path / "m" / "pruned")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    original = load_file(model / "model.safetensors")
    w = original[f"{MODULE}.weight"]
    mask = w.abs().view(-1, 4).argsort(-1, descending=True).argsort(-1).view(w.shape) < 2
    assert torch.equal(a[f"{MODULE}.weight"], 2 * w * mask)  # reconstructed values, masked by the core
    assert all(torch.equal(a[k], original[k]) for k in original if not k.startswith(MODULE))
    assert rec_s["params_pruned"] == rec_m["params_pruned"] == rec_s["params_original"] - w.numel() // 2
    assert not (tmp_path / "s" / ".prune-weights").exists()  # the store is gone once the model is written


def test_streamed_pruned_model_trains_and_recovers_by_identity(inputs, tmp_path):
    model, data = inputs
    out = tmp_path / "run"
    assert _cli(DoublingTwoFour(streaming=True), "run", "--model", str(model), "--data", str(data), "--pruner",
                "doubling", "--out", str(out), "--json", *FAST_FLAGS) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["pruner"]["pattern"] == "2:4" and all(v > 1 for v in report["ppl"].values())
    small, large = (load_file(out / d / "adapter_model.safetensors") for d in ("adapter-pruned", "adapter"))
    assert small.keys() == large.keys() and all(torch.equal(small[k], large[k]) for k in small)
