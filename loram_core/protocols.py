"""The contract of each plugin kind as a ``typing.Protocol``: what an object passed to ``register(obj)`` must have.

A protocol lists the REQUIRED members; ``isinstance(obj, Pruner)`` checks that they exist (not their
signatures). Typing has no optional protocol members, so the OPTIONAL ones are listed per kind in
``OPTIONAL_MEMBERS`` with what the core assumes when one is absent, and the core reads them through
``optional_member`` only, so every probe names its protocol. docs/plugins.md describes each member.

Members every kind may have: ``description`` (shown by ``loram plugins``) and ``version`` (recorded in
``run.json`` and adapter provenance; default: the registering distribution's version).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # type names only: importing them here would make ``import loram_core`` load torch
    from pathlib import Path

    import torch

    from loram_core.arch import CouplingGroup
    from loram_core.data.records import RecordSplits
    from loram_core.data.splits import TextSplits
    from loram_core.lifecycle.align import AlignContext
    from loram_core.plan import PrunePlan
    from loram_core.prune_context import PruneContext


@runtime_checkable
class Pruner(Protocol):
    """Decides a ``PrunePlan``; the core validates and applies it (hook ``register_pruners``).

    ``config_cls`` is a frozen attrs class built from ``--ratio``, ``--layers`` and ``--pruner-opt``.
    Optional: ``pattern`` (``structured``, ``unstructured`` or ``N:M``; a config field ``pattern`` wins),
    ``patterns`` (the mask patterns it supports, each tried by the conformance suite), ``streaming``
    (``plan()`` gets a meta skeleton and reads weights itself), ``estimate_removed(config, pruner_config,
    arch) -> int`` (its own parameter accounting for ``loram estimate``), ``unsupported(model_config) -> str |
    None`` (why it cannot prune this model family, or None: the prune stage and the conformance suite refuse
    with that reason instead of failing midway).
    """

    name: str
    config_cls: type

    def plan(self, model: torch.nn.Module, config: Any, context: PruneContext) -> PrunePlan: ...


@runtime_checkable
class Quantizer(Protocol):
    """Quantizes the materialized pruned model for QLoRAM; the original is never quantized (``register_quantizers``).

    Optional: ``bits`` (bits per weight the report's formula counts, when the config has no ``bits`` field),
    ``describe(model, config) -> dict`` (JSON values for the report: ``param_bytes_base``,
    ``params_quantized``, ``params_kept``), and ``quantize_streamed(model, config, load) -> model``: the
    pruned model arrives on the meta device and ``load(name)`` gives module ``name``'s parameters their fp32
    values, so a quantizer that loads and quantizes one module at a time never holds the pruned model whole;
    the core loads what it leaves on meta. Training prefers it to ``quantize``.
    """

    name: str
    config_cls: type

    def quantize(self, model: torch.nn.Module, config: Any) -> torch.nn.Module: ...


@runtime_checkable
class Aligner(Protocol):
    """Trains the materialized pruned model in place, shapes unchanged (``register_aligners``).

    The returned dict's ``dataset``, ``steps``, ``ppl_before`` and ``ppl_after`` fill the report's ``align``
    block; a plan's masked weights must still be zero afterwards.
    """

    name: str
    config_cls: type

    def align(self, model: torch.nn.Module, config: Any, context: AlignContext) -> dict[str, Any] | None: ...


@runtime_checkable
class Recoverer(Protocol):
    """The values recovery puts where the pruned model had no rows (``factor="lora_B"``) or columns
    (``factor="lora_A"``) of a LoRA factor (``register_recoverers``). It has no config."""

    name: str

    def fill(self, shape: tuple[int, ...], *, factor: str, dtype: torch.dtype,
             generator: torch.Generator | None = None) -> torch.Tensor: ...


@runtime_checkable
class ArchitectureFamily(Protocol):
    """Which modules of a model family couple, in units of how many channels (``register_architectures``).

    ``model_types`` are the ``config.model_type`` values it handles; ``default_layers`` the ``(start, end)``
    decoder layers pruned when ``--layers`` is not given. Optional: ``query_head_groups(config, layer)``
    (attention groups of single query heads inside KV groups, for ``attention_units=query_heads``) and
    ``pruned_attributes(config, plan) -> {module: {attribute: value}}`` (what the family's modules read from
    the config, such as head counts or split sizes, set to the pruned widths on the pruned model) and
    ``expert_groups(config, layer) -> [ExpertGroup]`` (a mixture of experts' fused 3-D expert parameters) and
    ``tiny_config()`` (a tiny random config of the family, vocabulary <= 128: the conformance suite checks
    every installed family's tiny model).
    """

    name: str
    model_types: tuple[str, ...]

    def num_layers(self, config: Any) -> int: ...

    def default_layers(self, config: Any) -> tuple[int, int]: ...

    def groups(self, config: Any, layer: int) -> list[CouplingGroup]: ...


@runtime_checkable
class Dataset(Protocol):
    """A dataset alias for ``--data NAME`` and ``context.calibration(data=NAME)`` (``register_datasets``)."""

    name: str

    def load(self, **options: Any) -> TextSplits | RecordSplits: ...  # text, or records (instruction data)


@runtime_checkable
class ModelAlias(Protocol):
    """A model alias for ``--model NAME``: a local Hugging Face folder (``register_models``)."""

    name: str

    def resolve(self) -> Path | str: ...


@runtime_checkable
class TaskEvaluator(Protocol):
    """Scores a model on downstream tasks (``register_task_evaluators``); perplexity stays built in.

    ``tasks(include_path)`` lists the tasks it runs as ``loram_core.task_eval.TaskInfo``; ``evaluate`` scores
    an in-memory model (plain, ``PeftModel`` or quantized) on some of them and returns
    ``{task: loram_core.task_eval.TaskScore}``. docs/tasks.md describes both.
    """

    name: str

    def tasks(self, include_path: str | None) -> list[Any]: ...

    def evaluate(self, model: torch.nn.Module, tokenizer: Any, tasks: list[str], options: Any) -> dict[str, Any]: ...


# registry kind -> protocol
PROTOCOLS: dict[str, type] = {
    "pruner": Pruner,
    "quantizer": Quantizer,
    "aligner": Aligner,
    "recoverer": Recoverer,
    "architecture": ArchitectureFamily,
    "dataset": Dataset,
    "model": ModelAlias,
    "evaluator": TaskEvaluator,
}

_EVERY_KIND = {"description": "", "version": None}

# protocol -> optional member -> what the core assumes when the object lacks it (None: the feature is unused)
OPTIONAL_MEMBERS: dict[type, dict[str, Any]] = {
    Pruner: {"pattern": "structured", "patterns": None, "streaming": False, "estimate_removed": None,
             "unsupported": None, **_EVERY_KIND},
    Quantizer: {"bits": None, "describe": None, "quantize_streamed": None, **_EVERY_KIND},
    Aligner: dict(_EVERY_KIND),
    Recoverer: dict(_EVERY_KIND),
    ArchitectureFamily: {"query_head_groups": None, "pruned_attributes": None, "expert_groups": None,
                         "tiny_config": None, **_EVERY_KIND},
    Dataset: dict(_EVERY_KIND),
    ModelAlias: dict(_EVERY_KIND),
    TaskEvaluator: dict(_EVERY_KIND),
}

_DOCUMENTED = object()


def optional_member(obj: Any, protocol: type, member: str, default: Any = _DOCUMENTED) -> Any:
    """``obj.member``, or ``default`` (by default the one ``OPTIONAL_MEMBERS`` documents) when ``obj`` lacks it.

    Raises ``KeyError`` for a member the protocol does not list as optional: a probe must name a documented one.
    """
    documented = OPTIONAL_MEMBERS[protocol][member]
    return getattr(obj, member, documented if default is _DOCUMENTED else default)


def required_members(protocol: type) -> tuple[str, ...]:
    """The members ``isinstance(obj, protocol)`` checks, in declaration order."""
    methods = [n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")]
    return (*protocol.__annotations__, *methods)


def missing_members(obj: Any, protocol: type) -> list[str]:
    """The required members of ``protocol`` that ``obj`` lacks (empty when ``isinstance(obj, protocol)``)."""
    return [m for m in required_members(protocol) if not hasattr(obj, m)]


def pruner_refusal(pruner: Any, model_config: Any) -> str | None:
    """One line when ``pruner`` declares it cannot prune this model family (``Pruner.unsupported``), else None."""
    unsupported = optional_member(pruner, Pruner, "unsupported")
    reason = unsupported(model_config) if unsupported is not None else None
    if not reason:
        return None
    return f"pruner '{pruner.name}' does not prune {model_config.model_type} models: {reason}"


def quantizer_bits(quantizer: Any, config: Any) -> int | None:
    """Bits per weight the report's formula counts: the config's ``bits`` field, else ``Quantizer.bits``."""
    return getattr(config, "bits", None) or optional_member(quantizer, Quantizer, "bits")


__all__ = [
    "OPTIONAL_MEMBERS",
    "PROTOCOLS",
    "Aligner",
    "ArchitectureFamily",
    "Dataset",
    "ModelAlias",
    "Pruner",
    "Quantizer",
    "Recoverer",
    "TaskEvaluator",
    "missing_members",
    "optional_member",
    "pruner_refusal",
    "quantizer_bits",
    "required_members",
]
