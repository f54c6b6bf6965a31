"""``loram chat``: an interactive loop over stdin on one ``InferenceSession``; adapters switch without reloading."""

from __future__ import annotations

import sys
from typing import Callable, TextIO

import attrs

from loram_core.errors import LoramError
from loram_core.infer.generate import GenerationSettings, generate, uses_chat_template
from loram_core.infer.session import ORIGINAL, InferenceSession

HELP = ("commands: /use NAME (switch adapter; /use original for none), /adapters, /reset (forget the conversation), "
        "/help, /exit")


def chat_loop(session: InferenceSession, settings: GenerationSettings, *, stdin: TextIO | None = None,
              write: Callable[[str], None] | None = None, note: Callable[[str], None] | None = None) -> int:
    """Read prompts line by line until EOF or /exit; returns the number of replies generated.

    With a chat template the conversation is kept (multi-turn) until /reset or an adapter switch; without
    one every line is a prompt of its own, continued as raw text.
    """
    stdin = stdin or sys.stdin
    write = write or (lambda text: (sys.stdout.write(text), sys.stdout.flush()))
    note = note or (lambda text: print(text, file=sys.stderr))
    templated = uses_chat_template(session.tokenizer, settings)
    interactive = stdin.isatty()
    history: list[dict] = []
    replies = 0
    note(f"chat with {session.model_spec} · adapter: {session.label} · {HELP}")
    while True:
        if interactive:
            sys.stderr.write(f"[{session.label}]> ")
            sys.stderr.flush()
        line = stdin.readline()
        if not line:
            break
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if line.startswith("/"):
            command, _, arg = line[1:].partition(" ")
            if command in ("exit", "quit"):
                break
            if command == "use":
                try:
                    session.use(arg.strip() or ORIGINAL)
                except LoramError as exc:
                    note(f"error: {exc}")
                    continue
                history = []  # a new adapter answers a fresh conversation
                note(f"adapter: {session.label}")
            elif command == "adapters":
                note(", ".join([ORIGINAL, *session.adapters]) + f" (active: {session.label})")
            elif command == "reset":
                history = []
                note("conversation cleared")
            else:
                note(HELP)
            continue
        history.append({"role": "user", "content": line})
        reply = generate(session, history if templated else history[-1:], settings, on_text=write)
        write("\n")
        history = history + [{"role": "assistant", "content": reply.text}] if templated else []
        replies += 1
        settings = attrs.evolve(settings, seed=settings.seed + 1)  # sampled replies differ turn to turn
    return replies
