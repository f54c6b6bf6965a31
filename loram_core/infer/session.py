"""The ORIGINAL model loaded once, with registered adapters attached unmerged through PEFT and switched in place."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from loram_core.adapters.record import AdapterRecord
from loram_core.adapters.register import describe
from loram_core.errors import AdapterError, LoramError, warn
from loram_core.plan.fingerprint import ModelFingerprint

ORIGINAL = "original"  # what output and `/use` call the model with no adapter


class InferenceSession:
    def __init__(self, model_spec: str, *, trust_remote_code: bool = False, dtype: torch.dtype = torch.float32):
        from loram_core.models.loading import load_config, load_model, load_tokenizer, resolve_model

        self.model_spec = str(model_spec)
        self.model_path = str(resolve_model(model_spec))
        self.config = load_config(self.model_path, trust_remote_code=trust_remote_code)
        self.fingerprint = ModelFingerprint.from_config(self.config, name_or_path=self.model_spec)
        self.tokenizer = load_tokenizer(self.model_path, trust_remote_code=trust_remote_code)
        self.model = load_model(self.model_path, dtype=dtype, trust_remote_code=trust_remote_code)
        self.peft = None  # the PeftModel wrapping self.model once an adapter is attached
        self.adapters: dict[str, str] = {}  # registry name -> PEFT adapter name
        self.active: str | None = None  # None: the original model, adapters disabled
        self.checked: set[str] = set()  # registry names already checked (a warning is said once)

    def check(self, record: AdapterRecord) -> None:
        """Refuse an adapter made for another model, or whose files are gone or damaged."""
        if record.name in self.checked:
            return
        if not record.base.matches(self.fingerprint):
            raise AdapterError(f"adapter '{record.name}' was made for {describe(record.base)}, but the loaded model "
                               f"is {describe(self.fingerprint)}: refusing to attach it")
        status = record.status()
        if status == "missing":
            raise AdapterError(f"adapter '{record.name}': {record.weights} is gone; 'loram adapters rm {record.name}'")
        from loram_core.checkpoint import check_safetensors

        rebuild = (f"delete {record.adapter_path} and re-run 'loram recover {record.run_dir}'"
                   if record.source == "run" and record.run_dir
                   else f"register a good copy again with 'loram adapters add PATH --name {record.name} --rename'")
        check_safetensors(record.weights, f"adapter '{record.name}' cannot be loaded; {rebuild}")
        if status == "changed":
            warn(f"adapter '{record.name}': {record.weights} changed since it was registered; its provenance may be stale")
        if status == "diverged":
            warn(f"adapter '{record.name}' diverged in training (its perplexity on the original is not finite)")
        self.checked.add(record.name)

    def attach(self, record: AdapterRecord) -> None:
        from peft import PeftModel

        if record.name in self.adapters:
            return
        self.check(record)
        # Registry names may hold dots, which PEFT adapter names (module keys) cannot.
        peft_name = f"adapter{len(self.adapters)}"
        try:
            if self.peft is None:
                self.peft = PeftModel.from_pretrained(self.model, record.adapter_path, adapter_name=peft_name,
                                                      is_trainable=False).eval()
            else:
                self.peft.load_adapter(record.adapter_path, adapter_name=peft_name, is_trainable=False)
        except (OSError, ValueError, RuntimeError) as exc:
            raise AdapterError(f"adapter '{record.name}' does not load: {str(exc).strip().splitlines()[0]}") from exc
        self.adapters[record.name] = peft_name
        self.use(self.active or record.name)  # as in PEFT, the first attached adapter starts active

    def use(self, name: str | None) -> None:
        """Make ``name`` the active adapter (``None`` or ``"original"``: no adapter). No weights are reloaded."""
        if name is None or name == ORIGINAL:
            self.active = None
            return
        if name not in self.adapters:
            raise LoramError(f"adapter '{name}' is not attached (attached: {', '.join(self.adapters) or 'none'})")
        self.peft.set_adapter(self.adapters[name])
        self.active = name

    @contextlib.contextmanager
    def active_model(self) -> Iterator[torch.nn.Module]:
        """The model to call: PEFT layers wrap the original in place, so 'original' disables them."""
        if self.peft is None:
            yield self.model
        elif self.active is None:
            with self.peft.disable_adapter():
                yield self.peft
        else:
            yield self.peft

    @property
    def label(self) -> str:
        return self.active or ORIGINAL
