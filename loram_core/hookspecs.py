"""The hooks a loram plugin can implement. Each receives a ``register`` callback (as in simonw/llm)."""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("loram")
hookimpl = HookimplMarker("loram")


@hookspec
def register_pruners(register):
    """Register pruners: ``register(pruner)``; a pruner has ``name``, ``config_cls`` and ``plan(...)``."""


@hookspec
def register_quantizers(register):
    """Register quantizers: ``register(quantizer)``; it has ``name``, ``config_cls`` and ``quantize(...)``."""


@hookspec
def register_aligners(register):
    """Register aligners: ``register(aligner)``; it has ``name``, ``config_cls`` and ``align(...)``."""


@hookspec
def register_recoverers(register):
    """Register recovery fill methods: ``register(recoverer)``; it has ``name`` and ``fill(...)``."""


@hookspec
def register_architectures(register):
    """Register model-family adapters: ``register(adapter)``; it has ``name`` and ``model_types``."""


@hookspec
def register_datasets(register):
    """Register dataset aliases: ``register(dataset)``; it has ``name`` and ``load(**options)``."""


@hookspec
def register_models(register):
    """Register model aliases: ``register(model)``; it has ``name`` and ``resolve() -> local folder``."""


@hookspec
def register_commands(cli):
    """Add CLI subcommands: ``cli`` is the argparse sub-parsers object of ``loram``."""
