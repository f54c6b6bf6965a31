"""The hooks a loram plugin can implement. Each receives a ``register`` callback (as in simonw/llm); what
``register(obj)`` takes is a protocol of ``loram_core.protocols``, described in docs/plugins.md."""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("loram")
hookimpl = HookimplMarker("loram")


@hookspec
def register_pruners(register):
    """``register(pruner, aliases=())``: a ``loram_core.protocols.Pruner``."""


@hookspec
def register_quantizers(register):
    """``register(quantizer, aliases=())``: a ``loram_core.protocols.Quantizer``."""


@hookspec
def register_aligners(register):
    """``register(aligner, aliases=())``: a ``loram_core.protocols.Aligner``."""


@hookspec
def register_recoverers(register):
    """``register(recoverer, aliases=())``: a ``loram_core.protocols.Recoverer``."""


@hookspec
def register_architectures(register):
    """``register(family, aliases=())``: a ``loram_core.protocols.ArchitectureFamily``."""


@hookspec
def register_datasets(register):
    """``register(dataset, aliases=())``: a ``loram_core.protocols.Dataset``."""


@hookspec
def register_models(register):
    """``register(model, aliases=())``: a ``loram_core.protocols.ModelAlias``."""


@hookspec
def register_task_evaluators(register):
    """``register(evaluator, aliases=())``: a ``loram_core.protocols.TaskEvaluator``."""


@hookspec
def register_commands(cli):
    """Add CLI subcommands: ``cli`` is the argparse sub-parsers object of ``loram``."""
