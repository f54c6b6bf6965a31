"""The built-in architecture families, one module each (docs/plugins.md, "register_architectures")."""

from loram_core import hookimpl
from loram_core.builtin.families.gpt2 import GPT2Family
from loram_core.builtin.families.llama import LlamaFamily
from loram_core.builtin.families.moe import MixtureFamily
from loram_core.builtin.families.phi3 import Phi3Family

__all__ = ["GPT2Family", "LlamaFamily", "MixtureFamily", "Phi3Family"]


@hookimpl
def register_architectures(register):
    register(LlamaFamily())
    register(Phi3Family())
    register(GPT2Family())
    register(MixtureFamily())
