"""Integration: ``loram run`` on the real SmolLM2-135M and Shakespeare, a few steps (slow; CI runs it)."""

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from loram_core.cli.main import main
from loram_test_helpers import REPORT_KEYS

pytestmark = pytest.mark.slow


def test_loram_run_on_smollm2_shakespeare(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--model", "smollm2-135m", "--data", "shakespeare", "--pruner", "magnitude", "--ratio", "0.5",
            "--steps", "3", "--batch-size", "2", "--seq-len", "64", "--eval-tokens", "1024", "--eval-seq-len", "256",
            "--out", str(out), "--no-progress", "--json"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    for key, sub in REPORT_KEYS.items():
        assert key in report and (not sub or sub <= set(report[key])), key
    assert report["model"]["params"] == 134_515_008
    assert report["params"]["pruned"] < report["params"]["original"]
    assert report["eval"]["tokens"] == 4 * 255 and report["train"]["tokens"] == 3 * 2 * 64

    base_path = json.loads((out / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]
    original = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    assert sum(p.numel() for p in original.parameters()) == report["model"]["params"]
    with_adapter = PeftModel.from_pretrained(original, out / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(out / "merged", dtype=torch.float32).eval()
    ids = torch.randint(0, 49152, (1, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(with_adapter(ids).logits, merged(ids).logits, rtol=0, atol=1e-4)
