"""Text generation on an ``InferenceSession``: chat template when the tokenizer has one, tokens streamed."""

from __future__ import annotations

import time
from typing import Callable

import attrs
import torch
from transformers.generation.streamers import BaseStreamer

from loram_core.configs import to_float
from loram_core.fields import boolean, integer, number
from loram_core.infer.session import InferenceSession


@attrs.frozen
class GenerationSettings:
    max_new_tokens: int = attrs.field(default=64, validator=integer(1))
    # 0: greedy, deterministic; finite (nan or inf would sample garbage)
    temperature: float = attrs.field(default=0.0, converter=to_float, validator=number(0.0))
    seed: int = attrs.field(default=0, validator=integer(0))  # reset before every generation: same draws per adapter
    chat_template: bool = attrs.field(default=True, validator=boolean)  # the tokenizer's chat template, if any


@attrs.frozen
class Generation:
    adapter: str
    text: str
    new_tokens: list[int]
    seconds: float


class _DeltaStreamer(BaseStreamer):
    """A ``generate`` streamer that hands on each new piece of text (decoding all new ids, so multi-token
    characters and leading spaces come out right)."""

    def __init__(self, tokenizer, on_text: Callable[[str], None]):
        self.tokenizer, self.on_text = tokenizer, on_text
        self.ids: list[int] = []
        self.sent = ""
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate passes the prompt first
            self.prompt_seen = True
            return
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if not text.endswith("\ufffd") and len(text) > len(self.sent):  # wait for a character's last byte
            self.on_text(text[len(self.sent):])
            self.sent = text

    def end(self) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if len(text) > len(self.sent):
            self.on_text(text[len(self.sent):])
            self.sent = text


def uses_chat_template(tokenizer, settings: GenerationSettings) -> bool:
    return settings.chat_template and bool(getattr(tokenizer, "chat_template", None))


def encode(tokenizer, messages: list[dict], settings: GenerationSettings) -> torch.Tensor:
    """``[1, n]`` prompt ids: the chat template over ``messages``, or the last message's text as is."""
    if uses_chat_template(tokenizer, settings):
        enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        return enc["input_ids"]
    return tokenizer(messages[-1]["content"], return_tensors="pt")["input_ids"]


def generation_config(session: InferenceSession, settings: GenerationSettings):
    from transformers import GenerationConfig

    tok = session.tokenizer
    eos = session.model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    if tok.eos_token_id is not None and tok.eos_token_id not in eos:
        eos.append(tok.eos_token_id)
    sample = settings.temperature > 0
    return GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        do_sample=sample,
        temperature=settings.temperature if sample else None,
        top_k=0 if sample else None,  # plain temperature sampling: no top-k/top-p truncation
        top_p=1.0 if sample else None,
        eos_token_id=eos or None,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else (eos[0] if eos else None),
    )


def generate(session: InferenceSession, messages: list[dict] | str, settings: GenerationSettings,
             on_text: Callable[[str], None] | None = None) -> Generation:
    """Generate with the session's active adapter; ``on_text`` receives the text as it is produced."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    ids = encode(session.tokenizer, messages, settings)
    streamer = _DeltaStreamer(session.tokenizer, on_text) if on_text else None
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    start = time.perf_counter()
    with torch.random.fork_rng(devices=devices), torch.inference_mode(), session.active_model() as model:
        torch.manual_seed(settings.seed)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             generation_config=generation_config(session, settings), streamer=streamer)
    seconds = time.perf_counter() - start
    new = out[0, ids.shape[1]:].tolist()
    text = session.tokenizer.decode(new, skip_special_tokens=True)
    return Generation(adapter=session.label, text=text, new_tokens=new, seconds=seconds)
