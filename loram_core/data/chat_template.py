"""Which chat template renders conversations: the tokenizer's own (the default), the named ``chatml``, or a
``.jinja`` file. A chat format on a tokenizer without a template is an error, never a silent fallback."""

from __future__ import annotations

from pathlib import Path

from loram_core.errors import LoramError

# ChatML as OpenAI and Qwen write it; the end-of-turn marker is trained with each assistant turn.
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
NAMED = {"chatml": CHATML}


def resolve_chat_template(tokenizer, spec: str | None, model: str, data: str = "the data") -> str:
    """The Jinja source for ``spec`` (None: the tokenizer's own); ``data`` names the chat data that needs it."""
    if spec is None:
        own = getattr(tokenizer, "chat_template", None)
        if isinstance(own, dict):  # several named templates: the default one
            own = own.get("default")
        if not own:
            raise LoramError(f"{data} is chat data, and the tokenizer of {model} has no chat template; pass "
                             f"--chat-template chatml or --chat-template FILE.jinja")
        return own
    if spec in NAMED:
        return NAMED[spec]
    path = Path(spec).expanduser()
    if path.suffix == ".jinja" and path.is_file():
        return path.read_text(encoding="utf-8")
    raise LoramError(f"--chat-template {spec!r} is neither a named template ({', '.join(NAMED)}) nor a .jinja file")
