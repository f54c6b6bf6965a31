"""The file names of an adapter folder as loram writes it: PEFT's own names, and loram's provenance sidecar.

One definition for every reader and writer (training, recovery, merge, eval, the registry, export). Kept
here rather than imported from ``peft.utils.constants`` so that `loram adapters list` does not import torch;
a test checks they are PEFT's.
"""

WEIGHTS = "adapter_model.safetensors"  # peft.utils.constants.SAFETENSORS_WEIGHTS_NAME
CONFIG = "adapter_config.json"  # peft.utils.constants.CONFIG_NAME
SIDECAR = "loram.json"  # recovery provenance (plan hash, pruner, recoverer); stock PEFT ignores it
MODEL_CARD = "README.md"
