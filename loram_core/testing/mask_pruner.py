"""A 2:4 mask pruner for tests of the mask path (shapes stay, identity recovery), registered with
``MaskPlugin()``; shared by the core's tests and plugin packages' tests."""

from __future__ import annotations

import attrs

from loram_core.hookspecs import hookimpl


@attrs.frozen
class NoOptions:
    pass


@attrs.frozen
class TwoFourPruner:
    """2:4 masks by magnitude on two modules of a tiny model (layers 1 and 2)."""

    name: str = "two-four"
    config_cls: type = NoOptions

    def plan(self, model, config, context):
        from loram_core.plan import MaskEntry, PrunePlan, PrunerInfo

        entries = {}
        for module in ("model.layers.1.self_attn.q_proj", "model.layers.2.mlp.down_proj"):
            w = model.get_submodule(module).weight.detach().abs().view(-1, 4)
            keep = w.argsort(-1, descending=True).argsort(-1) < 2
            entries[module] = MaskEntry(mask=keep.view(model.get_submodule(module).weight.shape), pattern="2:4")
        return PrunePlan(base=context.fingerprint, pruner=PrunerInfo(self.name, "0"), pattern="2:4", entries=entries)


class MaskPlugin:
    @hookimpl
    def register_pruners(self, register):
        register(TwoFourPruner())
