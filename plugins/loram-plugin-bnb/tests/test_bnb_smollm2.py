"""QLoRAM on the real SmolLM2-135M at a ratio whose kept widths bitsandbytes' packed CPU layout cannot hold
(issue 23: at 0.3 this ended in a traceback on CPUs with AVX512-BF16). Passes on whatever CPU runs it."""

import json

import pytest

from loram_core.cli.main import main

pytestmark = pytest.mark.slow


def test_qloram_on_smollm2_at_a_ratio_with_unaligned_widths(bnb, tmp_path):
    out = tmp_path / "run"
    args = ["run", "--model", "smollm2-135m", "--data", "shakespeare", "--pruner", "magnitude", "--ratio", "0.3",
            "--quantizer", "nf4", "--steps", "2", "--batch-size", "2", "--seq-len", "64", "--eval-tokens", "1024",
            "--eval-seq-len", "256", "--no-merge", "--out", str(out), "--no-progress", "--json"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["ppl"]) == {"original", "pruned", "pruned_lora", "loram"}
    assert all(1 < v < 1e6 for v in report["ppl"].values()), report["ppl"]
    layout = report["quantizer"]["cpu_packed_layout"]
    # 1536 - ceil(1536 x 0.3) = 1075 kept MLP channels in the 24 pruned layers: gate/up/down do not fit
    assert layout["unfit"] >= 24 * 3 and layout["fit"] + layout["unfit"] == 30 * 7
