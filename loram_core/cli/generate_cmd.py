"""``loram generate`` and ``loram chat``: the ORIGINAL model with registered adapters, unmerged, switched in place."""

from __future__ import annotations

import json
import sys

from rich.console import Console

from loram_core.cli.terminal import status_console, wants_progress
from loram_core.errors import LoramError


def _settings(args):
    from loram_core.configs import build_config
    from loram_core.infer.generate import GenerationSettings

    return build_config(GenerationSettings, {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
                                             "seed": args.seed, "chat_template": not args.no_chat_template},
                        owner="generation settings")


def open_session(args):
    """Load the original model once and attach every ``--adapter``; ``--model`` defaults to the first
    adapter's recorded original."""
    from loram_core.adapters import AdapterStore
    from loram_core.infer.session import InferenceSession

    store = AdapterStore()
    records = [store.get(name) for name in dict.fromkeys(args.adapter or [])]
    model = args.model or (records[0].base.name_or_path if records else None)
    if not model:
        raise LoramError("name the original model with --model (or give an --adapter, whose original is recorded)")
    err = status_console(wants_progress())
    err.log(f"loading {model}")
    session = InferenceSession(model, trust_remote_code=args.trust_remote_code)
    for record in records:
        session.check(record)  # every mismatch refused before any adapter is loaded
    for record in records:
        err.log(f"attaching adapter {record.name}")
        session.attach(record)
    return session, records


def cmd_generate(args) -> int:
    from loram_core.infer.generate import generate

    settings = _settings(args)
    session, records = open_session(args)
    labels = ([None] if args.compare_original or not records else []) + [r.name for r in records]
    out, err = Console(), status_console(wants_progress())
    results = []
    for label in labels:
        session.use(label)
        if not args.json:
            out.rule(f"[bold]{session.label}[/bold]")
        write = None if args.json else (lambda text: (sys.stdout.write(text), sys.stdout.flush()))
        result = generate(session, args.prompt, settings, on_text=write)
        results.append(result)
        if not args.json:
            sys.stdout.write("\n")
            err.print(f"[dim]{len(result.new_tokens)} tokens in {result.seconds:.1f} s[/dim]")
    if args.json:
        print(json.dumps([{"adapter": r.adapter, "text": r.text, "tokens": len(r.new_tokens),
                           "seconds": round(r.seconds, 3)} for r in results], indent=2))
    return 0


def cmd_chat(args) -> int:
    from loram_core.infer.chat import chat_loop

    settings = _settings(args)
    if sys.stdin is None or sys.stdin.closed:  # before the model loads: a closed stdin has no prompt to read
        raise LoramError("loram chat reads prompts from stdin, and stdin is closed; use 'loram generate --prompt TEXT'")
    session, _ = open_session(args)
    chat_loop(session, settings)
    return 0


def _common(p) -> None:
    p.add_argument("--model", help="the ORIGINAL model: alias, folder or hub id (default: the first adapter's)")
    p.add_argument("--adapter", action="append", metavar="NAME", help="registered adapter (repeatable)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (with --temperature > 0)")
    p.add_argument("--no-chat-template", action="store_true", help="raw continuation, even if the tokenizer has a chat template")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (off by default)")


def add_commands(sub) -> None:
    g = sub.add_parser("generate", help="generate with the original model and registered adapters (unmerged)")
    _common(g)
    g.add_argument("--prompt", required=True)
    g.add_argument("--compare-original", action="store_true", help="also generate with no adapter")
    g.add_argument("--json", action="store_true", help="print a JSON list of {adapter, text} instead of streaming")
    g.set_defaults(func=cmd_generate)
    c = sub.add_parser("chat", help="interactive chat on stdin; /use NAME switches adapters without reloading")
    _common(c)
    c.set_defaults(func=cmd_chat)
