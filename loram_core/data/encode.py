"""Records -> token ids and labels: -100 on every token that is not trained (docs/data.md, "What is trained").

A conversation's trained turns are found by rendering and tokenizing prefixes: the tokens of
``render(turns[:i], add_generation_prompt=True)`` come before assistant turn ``i``, those of
``render(turns[:i + 1])`` end with it, so the turn is the span between, its end-of-turn token included, and
whitespace the template puts after that token is not trained. This works with any template, also those without
``{% generation %}`` markers, as long as a rendered prefix tokenizes to a prefix of the whole (checked).
"""

from __future__ import annotations

import attrs

from loram_core.data.formats import Conversation, PromptCompletion
from loram_core.errors import LoramError

IGNORE = -100  # the label of a token that is not trained (PyTorch's and transformers' ignore_index)


@attrs.frozen
class Example:
    input_ids: tuple[int, ...] = attrs.field(converter=tuple)
    labels: tuple[int, ...] = attrs.field(converter=tuple)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def trained(self) -> int:
        """Tokens whose next-token prediction is trained (the first token is never predicted)."""
        return sum(1 for label in self.labels[1:] if label != IGNORE)


@attrs.frozen
class Encoder:
    """Encodes one shape of record (formats.py); ``template``: the chat template's Jinja source, for chats."""

    tokenizer: object
    template: str | None = None
    train_on_inputs: bool = False

    def __call__(self, item, source: str = "data", index: int = 0) -> Example:
        if isinstance(item, str):
            return self.text(item)
        if isinstance(item, PromptCompletion):
            return self.prompt_completion(item)
        return self.conversation(item, source, index)

    def _ids(self, text: str, special: bool = False) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special, verbose=False).input_ids)

    def _eos(self) -> int:
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise LoramError("the tokenizer has no eos token, needed to end each example")
        return eos

    def text(self, text: str) -> Example:
        ids = self._ids(text) + [self._eos()]
        return Example(ids, ids)

    def prompt_completion(self, item: PromptCompletion) -> Example:
        # The prompt gets the tokenizer's own special tokens (a BOS, where it has one), as TRL tokenizes it;
        # the completion follows with eos, so the model learns to stop.
        prompt = self._ids(item.prompt, special=True)
        completion = self._ids(item.completion) + [self._eos()]
        ids = prompt + completion
        labels = ids if self.train_on_inputs else [IGNORE] * len(prompt) + completion
        return Example(ids, labels)

    def render(self, turns, generation_prompt: bool = False) -> str:
        messages = [{"role": t.role, "content": t.content} for t in turns]
        return self.tokenizer.apply_chat_template(messages, chat_template=self.template, tokenize=False,
                                                  add_generation_prompt=generation_prompt)

    def conversation(self, item: Conversation, source: str, index: int) -> Example:
        if self.template is None:
            raise LoramError("chat data needs a chat template (resolve_chat_template)")
        ids = self._ids(self.render(item.turns))
        if self.train_on_inputs:
            return Example(ids, ids)
        labels = [IGNORE] * len(ids)
        for i, turn in enumerate(item.turns):
            if not turn.trained:
                continue
            start = self._prefix_length(ids, self.render(item.turns[:i], generation_prompt=True), source, index)
            end = self._prefix_length(ids, self.render(item.turns[: i + 1]), source, index)
            while end > start and not self.tokenizer.decode(ids[end - 1: end]).strip():
                end -= 1  # the template's newline after the end-of-turn token is not the assistant's to say
            labels[start:end] = ids[start:end]
        return Example(ids, labels)

    def _prefix_length(self, ids: list[int], prefix: str, source: str, index: int) -> int:
        prefix_ids = self._ids(prefix)
        if ids[: len(prefix_ids)] != prefix_ids:
            raise LoramError(f"{source}, record {index}: the chat template does not render a conversation's start "
                             f"as a prefix of the whole, so its turns cannot be told apart; pass --chat-template "
                             f"chatml, a .jinja file, or --train-on-inputs")
        return len(prefix_ids)


def truncate(example: Example, max_length: int) -> tuple[Example, bool]:
    """The first ``max_length`` tokens, and whether anything was cut (as TRL's ``max_length``, from the right)."""
    if len(example) <= max_length:
        return example, False
    return Example(example.input_ids[:max_length], example.labels[:max_length]), True
