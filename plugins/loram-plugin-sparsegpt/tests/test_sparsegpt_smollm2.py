"""On the real SmolLM2-135M, streamed from its checkpoint: SparseGPT beats magnitude on every projection."""

import pytest

from loram_core.checkpoint import CheckpointReader
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.settings import RunSettings
from loram_core.plan.apply import empty_model
from loram_plugin_sparsegpt.config import SparseGPTConfig
from loram_plugin_sparsegpt.hessian import InputStatistics
from loram_plugin_sparsegpt.magnitude import magnitude_keep
from loram_core.layer_stream import stream_layers
from loram_plugin_sparsegpt.sparsegpt import reconstruction_error, sparsegpt_prune
from loram_plugin_sparsegpt.targets import layer_linears

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_sparsegpt_error_is_below_magnitude_on_the_first_layers(pattern):
    res = Resources(RunSettings(model="smollm2-135m", data="shakespeare", seed=0), progress=False)
    ids = res.calibration(samples=8, seq_len=128)
    cfg = SparseGPTConfig(pattern=pattern)
    ratios = {}

    def visit(index, prefix, layer, collect):
        targets = layer_linears(layer, prefix, cfg)
        with InputStatistics(targets) as stats:
            collect()
        for name, linear in targets.items():
            xtx, tokens = stats.xtx[name], stats.tokens[name]
            assert tokens == ids.numel()
            result = sparsegpt_prune(linear.weight, xtx, tokens, ratio=0.5, nm=cfg.nm)
            mag_keep = magnitude_keep(linear.weight, 0.5, cfg.nm)
            assert int(result.keep.sum()) == int(mag_keep.sum()) == linear.weight.numel() // 2
            magnitude = linear.weight * mag_keep
            ratios[name] = result.error / reconstruction_error(linear.weight, magnitude, xtx)
            linear.weight.data.copy_(result.weight)

    skeleton = empty_model(res.config)
    stream_layers(skeleton, ids, stop=2, batch_size=4, reader=CheckpointReader.open(res.model_path), visit=visit)
    print({name.split("layers.")[1]: round(r, 3) for name, r in ratios.items()})
    assert len(ratios) == 14 and max(ratios.values()) < 1.0
    assert all(p.is_meta for p in skeleton.parameters())  # nothing stayed loaded
