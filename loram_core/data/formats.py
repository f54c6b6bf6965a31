"""The record formats of the SFT trainers users know (TRL, axolotl, LLaMA-Factory), found from a record's keys or
named with ``--data-format``, and turned into one of three shapes the encoder knows (docs/data.md):

- a string, for ``text``: every token trained;
- a ``PromptCompletion``, for plain ``prompt``/``completion``: no chat template, the completion trained;
- a ``Conversation``, for ``messages``, conversational ``prompt``/``completion``, Alpaca and ShareGPT: rendered
  with a chat template, the turns marked ``trained`` trained (assistant turns; for prompt/completion, those of
  the completion).
"""

from __future__ import annotations

from typing import Any

import attrs

from loram_core.errors import LoramError

FORMATS = ("auto", "text", "messages", "prompt_completion", "alpaca", "sharegpt")
ROLES = ("system", "user", "assistant")
# ShareGPT's speakers, as FastChat and axolotl map them.
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "bard": "assistant"}


@attrs.frozen
class Fields:
    """Column and key names; ``None``: the format's own (``messages``, ``role``, ``content``, ...)."""

    text: str | None = None
    messages: str | None = None
    role: str | None = None
    content: str | None = None
    prompt: str | None = None
    completion: str | None = None
    instruction: str | None = None
    input: str | None = None
    output: str | None = None
    system: str | None = None
    roles: dict = attrs.field(factory=dict)  # a source's role names -> system, user, assistant ("bot" -> "assistant")

    def __attrs_post_init__(self):
        wrong = {k: v for k, v in self.roles.items() if v not in ROLES}
        if wrong:
            raise LoramError(f"--role maps to {', '.join(map(str, wrong.values()))}; a role is one of {', '.join(ROLES)}")

    def name(self, key: str, fmt: str) -> str:
        own = getattr(self, key)
        if own:
            return own
        if fmt == "sharegpt":
            return {"messages": "conversations", "role": "from", "content": "value"}.get(key, key)
        return key


@attrs.frozen
class Turn:
    role: str  # system, user or assistant
    content: str
    trained: bool


@attrs.frozen
class Conversation:
    turns: tuple[Turn, ...] = attrs.field(converter=tuple)


@attrs.frozen
class PromptCompletion:
    prompt: str
    completion: str


class DataError(LoramError):
    """A record that does not hold what its format needs: names the source, the record and the field."""

    def __init__(self, source: str, index: int, problem: str):
        super().__init__(f"{source}, record {index}: {problem}")


def detect(record: dict, fields: Fields, source: str) -> str:
    """The format of ``record`` from its keys; exactly one format must fit."""
    keys = set(record)
    found = []
    if fields.name("text", "text") in keys:
        found.append("text")
    for fmt in ("messages", "sharegpt"):
        column = fields.name("messages", fmt)
        if column in keys and not (fmt == "sharegpt" and "messages" in found):
            turns = record[column]
            role_key = fields.name("role", fmt)
            if isinstance(turns, list) and turns and isinstance(turns[0], dict) and role_key in turns[0]:
                found.append(fmt)
    if {fields.name("prompt", "prompt_completion"), fields.name("completion", "prompt_completion")} <= keys:
        found.append("prompt_completion")
    if {fields.name("instruction", "alpaca"), fields.name("output", "alpaca")} <= keys:
        found.append("alpaca")
    if len(found) != 1:
        what = "fits none of" if not found else f"fits {' and '.join(found)} of"
        raise LoramError(f"{source}: a record with keys {', '.join(sorted(keys)) or '(none)'} {what} the formats "
                         f"text, messages, prompt_completion, alpaca, sharegpt; pass --data-format (and --field-* "
                         f"for other column names)")
    return found[0]


def convert(record: dict, fmt: str, fields: Fields, source: str, index: int):
    """``record`` as a string, a ``PromptCompletion`` or a ``Conversation`` (see the module docstring)."""
    def get(key: str, kind=str, optional: bool = False):
        column = fields.name(key, fmt)
        if column not in record or record[column] is None:
            if optional:
                return None
            raise DataError(source, index, f"no '{column}' field (format {fmt})")
        value = record[column]
        if not isinstance(value, kind):
            raise DataError(source, index, f"field '{column}' should be {_kind(kind)}, got {type(value).__name__}")
        return value

    if fmt == "text":
        return get("text")
    if fmt == "prompt_completion":
        prompt, completion = record.get(fields.name("prompt", fmt)), record.get(fields.name("completion", fmt))
        if isinstance(prompt, list) or isinstance(completion, list):  # conversational: lists of messages
            before = _turns(get("prompt", list), fields, fmt, source, index, "prompt", trained=False)
            after = _turns(get("completion", list), fields, fmt, source, index, "completion", trained=True)
            return _checked(Conversation(before + after), source, index, fields.name("completion", fmt))
        prompt, completion = get("prompt"), get("completion")
        if not completion.strip():
            raise DataError(source, index, f"field '{fields.name('completion', fmt)}' is empty")
        return PromptCompletion(prompt, completion)
    if fmt == "alpaca":
        instruction, extra, output = get("instruction"), get("input", optional=True), get("output")
        system = get("system", optional=True)
        if not output.strip():
            raise DataError(source, index, f"field '{fields.name('output', fmt)}' is empty")
        user = f"{instruction}\n\n{extra}" if extra and extra.strip() else instruction
        turns = ([Turn("system", system, False)] if system else []) + [Turn("user", user, False),
                                                                        Turn("assistant", output, True)]
        return Conversation(turns)
    if fmt in ("messages", "sharegpt"):
        turns = _turns(get("messages", list), fields, fmt, source, index, fields.name("messages", fmt), trained=None)
        system = get("system", optional=True) if fields.system else None
        if system:
            turns = (Turn("system", system, False), *turns)
        return _checked(Conversation(turns), source, index, fields.name("messages", fmt))
    raise LoramError(f"unknown data format '{fmt}' (one of: {', '.join(FORMATS)})")


def _turns(items: list, fields: Fields, fmt: str, source: str, index: int, where: str,
           trained: bool | None) -> tuple[Turn, ...]:
    """Messages as turns; ``trained`` None: the assistant's turns are trained."""
    role_key, content_key = fields.name("role", fmt), fields.name("content", fmt)
    roles = {**(SHAREGPT_ROLES if fmt == "sharegpt" else {r: r for r in ROLES}), **fields.roles}
    turns = []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or role_key not in item or content_key not in item:
            raise DataError(source, index, f"{where}[{n}] needs '{role_key}' and '{content_key}' keys")
        role = roles.get(item[role_key])
        if role is None:
            raise DataError(source, index, f"{where}[{n}].{role_key} is '{item[role_key]}', not one of "
                                           f"{', '.join(roles)}")
        if not isinstance(item[content_key], str):
            raise DataError(source, index, f"{where}[{n}].{content_key} should be a string")
        turns.append(Turn(role, item[content_key], role == "assistant" if trained is None else trained))
    return tuple(turns)


def _checked(conversation: Conversation, source: str, index: int, where: str) -> Conversation:
    trained = [t for t in conversation.turns if t.trained]
    if not trained or any(t.role != "assistant" for t in trained):
        raise DataError(source, index, f"'{where}' has no assistant turn to train on")
    if any(not t.content.strip() for t in trained):
        raise DataError(source, index, f"'{where}' has an empty assistant turn")
    return conversation


def _kind(kind: Any) -> str:
    return {str: "a string", list: "a list of messages"}.get(kind, kind.__name__)
