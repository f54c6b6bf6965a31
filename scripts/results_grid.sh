#!/usr/bin/env bash
# The SmolLM2 grid of docs/results.md, one command: every strategy with and without NF4 at ratio 0.5, plus the
# full-model baselines, each cell `loram run` in its own process (resumable: finished cells are skipped), then
# the table and plots into docs/img/. Settings are lighter than the single runs of docs/results.md (40 steps,
# 4,096 test tokens, 32 x 256 SparseGPT calibration tokens) so the whole grid fits 90 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/grid}
STRATEGIES="random;magnitude;llmpruner;sparsegpt:pattern=2:4,samples=32,seq_len=256;sparsegpt:pattern=unstructured,samples=32,seq_len=256"
.venv/bin/loram bench --model smollm2-135m --data shakespeare --pruners "$STRATEGIES" --ratios 0.5 \
    --quantizers none,nf4 --out "$OUT" --no-plots -- --steps 40 --lr 5e-4 --eval-tokens 4096 --no-merge
.venv/bin/loram report "$OUT" --out docs/img --title "SmolLM2-135M + Shakespeare, ratio 0.5"
