"""Helpers shared by this plugin's tests (a uniquely named module: the core's tests have a conftest too)."""

import torch


def make_context(model, *, seed: int = 0, samples: int = 4, seq_len: int = 16, progress: bool = False):
    """A PruneContext for a tiny model, with seeded random-token calibration windows."""
    from loram_core.arch import adapter_for
    from loram_core.plan import ModelFingerprint
    from loram_core.structured import PruneContext

    def calibration(samples=None, seq_len=None, data=None, _defaults=(samples, seq_len)):
        n, length = samples or _defaults[0], seq_len or _defaults[1]
        gen = torch.Generator().manual_seed(seed)
        return torch.randint(0, model.config.vocab_size, (n, length), generator=gen)

    return PruneContext(
        model_config=model.config,
        arch=adapter_for(model.config),
        fingerprint=ModelFingerprint.from_config(model.config),
        seed=seed,
        calibration=calibration,
        progress=progress,
    )


def real_model_context(**settings):
    """SmolLM2-135M on Shakespeare as the prune stage sees it: (resources, fp32 model, PruneContext)."""
    from loram_core.arch import adapter_for
    from loram_core.lifecycle.resources import Resources
    from loram_core.lifecycle.settings import make_settings
    from loram_core.plan import ModelFingerprint
    from loram_core.structured import PruneContext

    res = Resources(make_settings({"model": "smollm2-135m", "data": "shakespeare", **settings}), progress=False)
    ctx = PruneContext(
        model_config=res.config,
        arch=adapter_for(res.config),
        fingerprint=ModelFingerprint.from_config(res.config, name_or_path=res.settings.model),
        seed=res.settings.seed,
        calibration=res.calibration,
        progress=False,
        tokenizer=res.tokenizer,
        model_path=res.model_path,
    )
    return res, res.original_model(), ctx
