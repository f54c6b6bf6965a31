"""Helpers shared by this plugin's tests (a uniquely named module: other test folders have a conftest too)."""

import torch


def make_context(model, *, model_path=None, seed: int = 0, samples: int = 8, seq_len: int = 16, weights=None):
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
        progress=False,
        model_path=None if model_path is None else str(model_path),
        weights=weights,
    )


def correlated_inputs(features: int, tokens: int, seed: int = 0) -> torch.Tensor:
    """``X = L Z`` [features, tokens]: a random mixing matrix over Gaussian sources, so features correlate."""
    gen = torch.Generator().manual_seed(seed)
    mixing = torch.randn(features, features, generator=gen) / features**0.5
    scales = torch.linspace(0.1, 3.0, features)  # uneven input energy, as in LLM activations
    return (mixing * scales) @ torch.randn(features, tokens, generator=gen)
