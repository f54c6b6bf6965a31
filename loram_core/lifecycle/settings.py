"""``RunSettings``: the resolved configuration of one run, saved as ``RUN_DIR/run.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from loram_core.configs import build_config, parse_layers, ratio_in_unit_interval
from loram_core.data.formats import FORMATS
from loram_core.data.packing import PACKINGS
from loram_core.errors import LoramError
from loram_core.fields import (boolean, derived_config, integer, names, number, optional_names, optional_text, options,
                               setting, tables, text)
from loram_core.placement import DEVICES, DTYPES

REPORT_TO = ("none", "tensorboard")
# What a --data-source entry may set for itself (docs/data.md, "Several sources").
SOURCE_KEYS = ("split", "data_format", "field_text", "field_messages", "field_role", "field_content", "field_prompt",
               "field_completion", "field_instruction", "field_input", "field_output", "field_system")  # where training metrics go besides RUN_DIR/metrics.jsonl (train/metrics.py)


PLUGINS = "model, data and plugins"
DATA = "data: formats, chat templates, what is trained (docs/data.md)"
TRAINING = "training"
EVALUATION = "evaluation and placement"
# Every Linear of the decoder, whatever the family names them (train/targets.py): q/k/v/o and gate/up/down
# for Llama, qkv_proj and gate_up_proj for Phi-3, c_attn and c_fc for GPT-2.
PROJECTIONS = ("all-linear",)


@attrs.frozen
class RunSettings:
    """Every setting of a run, once: each field is a flag (``--batch-size``), a recipe key (``batch_size``)
    and a key of ``run.json``'s ``settings``; ``TrainConfig`` is derived from its training fields.
    Flags are added, never renamed: scripts rely on them (docs/architecture.md, "CLI")."""

    model: str = setting("smollm2-135m", validator=text, group=PLUGINS, help="HF id, local folder or alias")
    data: str = setting("shakespeare", validator=text, group=PLUGINS,
                        help="dataset alias, a text file, data files (.jsonl .json .parquet .csv .arrow) or a folder of them")
    data_format: str = setting("auto", choices=FORMATS, group=DATA,
                               help="record format; auto: found from the keys (text, messages, prompt/completion, "
                                    "Alpaca, ShareGPT)")
    field_text: str | None = setting(None, validator=optional_text, group=DATA, metavar="KEY", help="text column")
    field_messages: str | None = setting(None, validator=optional_text, group=DATA, metavar="KEY",
                                         help="column of a chat's messages (default messages; ShareGPT conversations)")
    field_role: str | None = setting(None, validator=optional_text, group=DATA, metavar="KEY",
                                     help="a message's role key (default role; ShareGPT from)")
    field_content: str | None = setting(None, validator=optional_text, group=DATA, metavar="KEY",
                                        help="a message's content key (default content; ShareGPT value)")
    field_prompt: str | None = setting(None, validator=optional_text, group=DATA, metavar="KEY", help="prompt column")
    field_completion: str | None = setting(None, validator=optional_text, group=DATA, metavar="KEY",
                                           help="completion column")
    field_instruction: str | None = setting(None, validator=optional_text, group=DATA, metavar="KEY",
                                            help="Alpaca instruction column")
    field_input: str | None = setting(None, validator=optional_text, group=DATA, metavar="KEY", help="Alpaca input column")
    field_output: str | None = setting(None, validator=optional_text, group=DATA, metavar="KEY",
                                       help="Alpaca output column")
    field_system: str | None = setting(None, validator=optional_text, group=DATA, metavar="KEY",
                                       help="a column with a system prompt for every record")
    roles: dict = setting(kind="options", factory=dict, validator=options, group=DATA, flag="--role",
                          metavar="NAME=ROLE", help="a role name of the data as system, user or assistant, e.g. bot=assistant (repeatable)")
    # Several sources, each with its own split, format and field names (TRL's and axolotl's `datasets:` entries);
    # given, they replace --data.
    data_sources: tuple[dict, ...] = setting(kind="tables", factory=tuple, group=DATA, flag="--data-source",
                                             validator=tables(SOURCE_KEYS), metavar="PATH[@KEY=VALUE,...]",
                                             help="a data source (repeatable; recipe: [[data_sources]] tables), "
                                                  "keys split, data_format, field_*; replaces --data")
    chat_template: str | None = setting(None, validator=optional_text, group=DATA, metavar="NAME|FILE.jinja",
                                        help="chat template for chat data: chatml or a .jinja file (default: the tokenizer's)")
    train_on_inputs: bool = setting(False, validator=boolean, group=DATA,
                                    help="train on every token, prompts and user turns too (default: responses only)")
    max_length: int = setting(0, validator=integer(0), group=DATA, metavar="TOKENS",
                              help="examples are cut to this many tokens (0: --seq-len)")
    packing: str = setting("auto", choices=PACKINGS, group=DATA,
                           help="rows of examples: none (one per row, padded), bfd (packed, kept apart), wrapped "
                                "(one stream of windows); auto: wrapped for text, none otherwise")
    pruner: str = setting("magnitude", validator=text, group=PLUGINS, help="pruner plugin name")
    # A folder written by `loram publish`: its plan and (aligned) pruned weights replace the prune stage.
    pruned: str | None = setting(None, validator=optional_text, group=PLUGINS, metavar="FOLDER",
                                 help="start from a folder written by 'loram publish' instead of pruning (its base must be --model)")
    ratio: float = setting(0.5, kind="float", validator=ratio_in_unit_interval, group=PLUGINS,
                           help="fraction of KV groups / MLP channels removed")
    layers: tuple[int, int] | None = setting(None, kind="layers", converter=parse_layers, group=PLUGINS, metavar="START:END",
                                             help="decoder layers to prune (default: first 4 and last 2 dense)")
    pruner_options: dict = setting(kind="options", factory=dict, validator=options, group=PLUGINS, flag="--pruner-opt",
                                   metavar="KEY=VALUE", help="pruner config option (repeatable)")
    quantizer: str | None = setting(None, validator=optional_text, group=PLUGINS,
                                    help="quantizer plugin for the pruned model (QLoRAM)")
    quantizer_options: dict = setting(kind="options", factory=dict, validator=options, group=PLUGINS, flag="--quantizer-opt",
                                      metavar="KEY=VALUE", help="quantizer config option (repeatable)")
    aligner: str | None = setting(None, validator=optional_text, group=PLUGINS,
                                  help="aligner plugin (continual pre-training of the pruned model)")
    aligner_options: dict = setting(kind="options", factory=dict, validator=options, group=PLUGINS, flag="--aligner-opt",
                                    metavar="KEY=VALUE", help="aligner config option (repeatable)")
    recoverer: str = setting("zero", validator=text, group=PLUGINS, help="recovery fill method")
    trust_remote_code: bool = setting(False, validator=boolean, group=PLUGINS,
                                      help="allow a model's own code from its folder or the hub")
    steps: int = setting(100, validator=integer(1), group=TRAINING, help="optimizer updates")
    batch_size: int = setting(4, validator=integer(1), group=TRAINING, help="sequences per process per micro-step")
    seq_len: int = setting(128, validator=integer(2), group=TRAINING, help="tokens per training sequence")
    lr: float = setting(5e-4, kind="float", validator=number(0.0, low_open=True), group=TRAINING, help="peak learning rate")
    rank: int = setting(8, validator=integer(1), group=TRAINING, help="LoRA rank r")
    alpha: int = setting(16, validator=integer(1), group=TRAINING, help="LoRA alpha")
    dropout: float = setting(0.05, kind="float", validator=number(0.0, 1.0), group=TRAINING, help="LoRA dropout")
    target_modules: tuple[str, ...] = setting(PROJECTIONS, kind="names", validator=names, group=TRAINING,
                                              help="comma-separated LoRA targets, or all-linear")
    target_parameters: tuple[str, ...] = setting((), kind="names", validator=optional_names, group=TRAINING,
                                                 help="3-D parameters LoRA adapts too (PEFT target_parameters), "
                                                      "e.g. experts.gate_up_proj,experts.down_proj")
    warmup_steps: int = setting(10, validator=integer(0), group=TRAINING, help="linear warm-up steps")
    schedule: str = setting("cosine", choices=("cosine", "linear", "constant"), group=TRAINING, help="learning-rate schedule")
    weight_decay: float = setting(0.0, kind="float", validator=number(0.0), group=TRAINING, help="AdamW weight decay")
    max_grad_norm: float = setting(1.0, kind="float", validator=number(0.0), group=TRAINING,
                                   help="gradient clipping norm (0: off)")
    seed: int = setting(0, validator=integer(0), group=TRAINING, help="seed of the adapter init, batches and plans")
    checkpoint_every: int = setting(50, validator=integer(0), group=TRAINING, help="steps between checkpoints (0: off)")
    # Micro-steps per optimizer update: global batch = batch_size x processes x grad_accum.
    grad_accum: int = setting(1, validator=integer(1), group=TRAINING,
                              help="micro-steps per update (global batch = batch size x processes x this)")
    # Training memory savers (train/loss.py): activation recomputation, and the loss over N tokens at a time.
    gradient_checkpointing: bool = setting(False, validator=boolean, group=TRAINING,
                                           help="recompute decoder layers in backward: less activation memory, ~30%% more compute")
    loss_chunk: int = setting(0, validator=integer(0), group=TRAINING, metavar="TOKENS",
                              help="compute the loss over this many tokens at a time, so the logits never exist whole (0: off)")
    calibration_samples: int = setting(16, validator=integer(1), group=TRAINING,
                                       help="calibration windows for data-driven pruners")
    eval_tokens: int = setting(8192, validator=integer(1), group=EVALUATION,
                               help="test tokens for perplexity (with records: trained tokens of held-out responses)")
    eval_every: int = setting(0, validator=integer(0), group=EVALUATION, metavar="STEPS",
                              help="validation loss during training every this many steps, into metrics.jsonl (0: off)")
    report_to: str = setting("none", choices=REPORT_TO, group=EVALUATION,
                             help="also write the training metrics as TensorBoard event files (RUN_DIR/tensorboard)")
    # Downstream tasks (docs/tasks.md), flags as lm-eval's own: scored by a task-evaluator plugin.
    tasks: tuple[str, ...] = setting((), kind="names", validator=optional_names, group=EVALUATION, metavar="TASK,...",
                                     help="downstream tasks scored on every variant ('loram eval --list-tasks'; "
                                          "needs loram-plugin-lmeval)")
    num_fewshot: int = setting(0, validator=integer(0), group=EVALUATION, metavar="N",
                               help="solved examples from a task's train split before each test question")
    limit: int = setting(0, validator=integer(0), group=EVALUATION, metavar="N",
                         help="test examples per task (0: the whole test split)")
    include_path: str | None = setting(None, validator=optional_text, group=EVALUATION, metavar="DIR",
                                       help="a folder of your own lm-eval task YAMLs, usable in --tasks")
    # The original scored one decoder layer at a time from its shards (streamed_eval.py): never resident whole.
    stream_eval: str = setting("auto", choices=("auto", "on", "off"), group=EVALUATION,
                               help="perplexity of the original and original + adapter one decoder layer at a time "
                                    "(text data); auto: when the original in fp32 would not fit in half the memory "
                                    "available")
    eval_seq_len: int = setting(512, validator=integer(2), group=EVALUATION, help="perplexity window")
    merge: bool = setting(True, validator=boolean, group=EVALUATION, flag="--no-merge", help="skip writing merged/")
    # Where training and evaluation compute (placement.py): auto = CUDA when visible, bf16 on GPUs with it,
    # fp32 on CPU; under accelerate launch each process's GPU comes from accelerate.
    device: str = setting("auto", choices=DEVICES, group=EVALUATION,
                          help="where training and evaluation run (auto: CUDA when visible)")
    dtype: str = setting("auto", choices=tuple(DTYPES), group=EVALUATION,
                         help="model dtype for training and evaluation (auto: bf16 on GPUs that support it, fp32 on CPU)")

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self, value_serializer=lambda _i, _a, v: list(v) if isinstance(v, tuple) else v)

    def data_settings(self) -> dict[str, Any]:
        """The fields the examples are made from (``DATA_FIELDS``): what a stage that reads the data hashes."""
        return {name: getattr(self, name) for name in DATA_FIELDS}

    def train_config(self) -> TrainConfig:
        return TrainConfig(**{name: getattr(self, name) for name in TRAIN_FIELDS})

    @classmethod
    def default(cls, name: str) -> Any:
        """A field's default (other commands that share a setting, e.g. ``loram estimate --batch-size``)."""
        d = attrs.fields_dict(cls)[name].default
        return d.factory() if isinstance(d, attrs.Factory) else d


FIELDS = {f.name for f in attrs.fields(RunSettings)}
# What the examples of a run are made from: every stage that reads the data hashes these.
DATA_FIELDS = ("data", *(f.name for f in attrs.fields(RunSettings) if f.metadata["group"] == DATA))

# The training loop's settings: a derived view of the fields above, so defaults, validators and help are
# RunSettings' own (the CLI, recipes, run.json and the loop cannot disagree).
TRAIN_FIELDS = (
    "steps", "batch_size", "seq_len", "lr", "rank", "alpha", "dropout", "target_modules", "target_parameters",
    "warmup_steps",
    "weight_decay", "schedule", "seed", "checkpoint_every", "grad_accum", "max_grad_norm",
    "gradient_checkpointing", "loss_chunk",
)
TrainConfig = derived_config(
    "TrainConfig", RunSettings, TRAIN_FIELDS,
    doc="""LoRA training settings.

    One step is one optimizer update over ``batch_size * processes * grad_accum`` sequences of ``seq_len``
    tokens (the global batch): ``batch_size`` is per process, as in accelerate, so ``accelerate launch
    --num_processes 2`` with ``batch_size=b`` trains on the same windows as one process with ``2b``.
    """,
)
TrainConfig.__module__ = "loram_core.train.config"  # where users import it from


def make_settings(values: dict[str, Any], *, source: str = "settings") -> RunSettings:
    """Build settings from a flat dict; unknown keys and bad values name themselves."""
    return build_config(RunSettings, values, owner=source)


def load_recipe(path: str | Path) -> dict[str, Any]:
    """A TOML recipe: the run's keys at top level or under [run]; plugin options under [pruner_options],
    [quantizer_options] and [aligner_options]. An [align] table is the aligner's: ``name`` is the aligner,
    its other keys are aligner options, and [align.data] (dataset -> weight) is the data mixture."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    path = Path(path)
    if not path.is_file():
        raise LoramError(f"recipe {path} does not exist")
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LoramError(f"recipe {path}: {exc}") from None
    align = doc.pop("align", None)
    values = dict(doc.pop("run", {}))
    values.update(doc)
    if align is not None:
        if not isinstance(align, dict):
            raise LoramError(f"recipe {path}: [align] must be a table (name = ALIGNER, options, [align.data])")
        align = dict(align)
        name = align.pop("name", None)
        if name is not None:
            if values.get("aligner") not in (None, name):
                raise LoramError(f"recipe {path}: aligner '{values['aligner']}' and [align] name '{name}' disagree")
            values["aligner"] = name
        values["aligner_options"] = {**dict(values.get("aligner_options") or {}), **align}
    unknown = sorted(set(values) - FIELDS)
    if unknown:
        raise LoramError(f"recipe {path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(FIELDS))})")
    return values
