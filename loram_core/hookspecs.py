"""The hooks a loram plugin can implement. Each receives a ``register`` callback (as in simonw/llm)."""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("loram")
hookimpl = HookimplMarker("loram")


@hookspec
def register_pruners(register):
    """Register pruners: ``register(pruner)``; a pruner has ``name``, ``config_cls`` and
    ``plan(model, config, context) -> PrunePlan``: it only decides, the core applies."""


@hookspec
def register_quantizers(register):
    """Register quantizers: ``register(quantizer)``; it has ``name``, ``config_cls`` (with ``bits``) and
    ``quantize(model, config) -> model``, applied to the pruned model only (QLoRAM)."""


@hookspec
def register_aligners(register):
    """Register aligners: ``register(aligner)``; it has ``name``, ``config_cls`` and
    ``align(model, config, context) -> dict``, training the pruned model in place (see lifecycle/align.py)."""


@hookspec
def register_recoverers(register):
    """Register recovery fill methods: ``register(recoverer)``; it has ``name`` and
    ``fill(shape, *, factor, dtype, generator) -> Tensor``, the values at pruned positions."""


@hookspec
def register_architectures(register):
    """Register model-family adapters: ``register(adapter)``; it has ``name``, ``model_types``,
    ``num_layers(config)``, ``default_layers(config)`` and ``groups(config, layer) -> [CouplingGroup]``."""


@hookspec
def register_datasets(register):
    """Register dataset aliases: ``register(dataset)``; it has ``name`` and ``load(**options)``."""


@hookspec
def register_models(register):
    """Register model aliases: ``register(model)``; it has ``name`` and ``resolve() -> local folder``."""


@hookspec
def register_commands(cli):
    """Add CLI subcommands: ``cli`` is the argparse sub-parsers object of ``loram``."""
