"""``loram data inspect``: a run's examples as training will see them, the trained tokens marked, with the counts
(records, examples, tokens, trained tokens, truncated, dropped), to check the masking before a long run."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from loram_core.cli.flags import add_setting_flag
from loram_core.data.encode import IGNORE
from loram_core.lifecycle.settings import DATA_FIELDS, make_settings

SETTINGS = ("model", *DATA_FIELDS, "seq_len", "trust_remote_code")


def add_commands(sub) -> None:
    data = sub.add_parser("data", help="check data before training: formats, masking, counts")
    actions = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    inspect = actions.add_parser("inspect", help="rendered examples with the trained tokens marked, and the counts")
    for name in SETTINGS:
        add_setting_flag(inspect, name)
    inspect.add_argument("-n", "--examples", type=int, default=3, help="training examples to show (default 3)")
    inspect.add_argument("--json", action="store_true", help="counts and examples (ids, labels) as JSON")
    inspect.set_defaults(func=cmd_inspect)


def cmd_inspect(args) -> int:
    from loram_core.lifecycle.resources import Resources

    settings = make_settings({name: getattr(args, name) for name in SETTINGS if hasattr(args, name)},
                             source="loram data inspect")
    res = Resources(settings, progress=False)
    examples = res.examples
    tokenizer = res.tokenizer
    if examples is None:  # text in windows: every token is trained
        counts = {s: {"documents": d["docs"], "chars": d["chars"]} for s, d in res.splits.sizes().items()}
        shown = []
    else:
        counts = examples.counts
        shown = list(examples.train[: max(args.examples, 0)])
    summary = {"data": settings.data, "format": res.data_format, "packing": res.packing, "counts": counts}
    if args.json:
        summary["examples"] = [{"input_ids": list(e.input_ids), "labels": list(e.labels)} for e in shown]
        print(json.dumps(summary, indent=2))
        return 0
    console = Console(width=None if sys.stdout.isatty() else 120)
    table = Table(title=f"{settings.data}: format {res.data_format}, packing {res.packing}")
    columns = list(next(iter(counts.values())))
    table.add_column("split")
    for c in columns:
        table.add_column(c, justify="right")
    for split, row in counts.items():
        table.add_row(split, *(f"{row[c]:,}" for c in columns))
    console.print(table)
    plain = not sys.stdout.isatty()  # colour is lost in a pipe: mark the trained spans with [[ ]] instead
    for n, example in enumerate(shown):
        console.rule(f"train example {n}: {len(example)} tokens, {example.trained} trained")
        console.print(_marked(tokenizer, example, plain), soft_wrap=True)
    return 0


def _marked(tokenizer, example, plain: bool) -> Text:
    out = Text()
    spans: list[tuple[bool, list[int]]] = []
    for token, label in zip(example.input_ids, example.labels):
        trained = label != IGNORE
        if spans and spans[-1][0] == trained:
            spans[-1][1].append(token)
        else:
            spans.append((trained, [token]))
    for trained, ids in spans:
        piece = tokenizer.decode(ids)
        if plain and trained:
            piece = f"[[{piece}]]"
        out.append(piece, style="bold green" if trained else "dim")
    return out
