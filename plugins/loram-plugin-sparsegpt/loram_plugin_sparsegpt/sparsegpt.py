"""SparseGPT on one Linear (Frantar & Alistarh, 2023): prune column blocks, compensating with the OBS update.

Port of the reference ``SparseGPT.fasterprune``: ``H = 2 X Xᵀ`` of the layer's inputs, dead inputs
(never non-zero) get ``H_ii = 1`` and their weights zeroed, dampening ``percdamp * mean(diag H)``, the upper
Cholesky factor ``U`` of ``H⁻¹``; then for each block of ``blocksize`` columns

- unstructured: the mask of the block is chosen once, before its columns are processed, over all rows
  together from ``w² / U_jj²`` (SparseGPT's adaptive mask selection: rows may keep different counts);
- N:M: on reaching the first column of each group of M, the N lowest ``w² / U_jj²`` of that group in every
  row, from the weights as already updated by the columns before it;

and column by column ``q = w`` with the pruned entries zeroed, ``err = (w - q) / U_jj``, the rest of the
block (and, once the block is done, every later column) updated by ``-err ⊗ U_j,j:``.

Differences from the reference, each for an exact guarantee: the block's pruned count is exact
(``masks.chunk_count``, so a layer prunes exactly ``R(ratio * out * in)`` weights) where the reference's
``<= threshold`` can take ties; optional ``per_row`` makes every row prune the same count.
"""

from __future__ import annotations

import contextlib

import attrs
import torch

from loram_core.errors import LoramError
from loram_plugin_sparsegpt.masks import (
    chunk_count,
    keep_all_but_lowest,
    keep_all_but_lowest_n_of_m,
    keep_all_but_lowest_per_row,
)


@attrs.frozen(eq=False)
class PrunedLinear:
    weight: torch.Tensor  # reconstructed full-shape weight (fp32), exactly zero where pruned
    keep: torch.Tensor  # bool keep-mask, as the plan's MaskEntry: False where a weight was removed
    error: float  # ‖W X − Ŵ X‖² summed over the calibration tokens (exact, from the undamped X Xᵀ)
    output_energy: float  # ‖W X‖², for the relative error


def reconstruction_error(weight: torch.Tensor, new_weight: torch.Tensor, xtx: torch.Tensor) -> float:
    """‖(W − Ŵ) X‖²_F = tr(ΔW X Xᵀ ΔWᵀ), in float64."""
    delta = weight.double() - new_weight.double()
    return float(((delta @ xtx.double()) * delta).sum())


def _inverse_hessian_factor(h: torch.Tensor, percdamp: float, name: str) -> torch.Tensor:
    """Upper Cholesky factor of (H + damp·I)⁻¹."""
    damp = percdamp * torch.mean(torch.diag(h))
    h.diagonal().add_(damp)
    try:
        lower = torch.linalg.cholesky(h)
        return torch.linalg.cholesky(torch.cholesky_inverse(lower), upper=True)
    except RuntimeError:  # torch.linalg.LinAlgError: not positive definite
        raise LoramError(
            f"{name}: the input statistics are not positive definite with percdamp={percdamp}; "
            f"raise it (e.g. --pruner-opt percdamp=0.1) or use more calibration samples"
        ) from None


@contextlib.contextmanager
def _one_thread():
    """The column loop is thousands of tiny ops: an OpenMP fork/join per op costs more than the op itself
    (measured here: 1.5 s with one thread, 4 to 17 s with two on a busy 2-core machine, for a 576 x 1536 layer)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def sparsegpt_prune(
    weight: torch.Tensor,
    xtx: torch.Tensor,
    tokens: int,
    *,
    ratio: float,
    nm: tuple[int, int] | None = None,
    per_row: bool = False,
    percdamp: float = 0.01,
    blocksize: int = 128,
    name: str = "linear",
) -> PrunedLinear:
    """Prune ``weight`` [out, in] given ``xtx`` = Σ x xᵀ [in, in] over ``tokens`` calibration inputs."""
    w_orig = weight.detach().to("cpu", torch.float32)
    rows, cols = w_orig.shape
    if tuple(xtx.shape) != (cols, cols):
        raise LoramError(f"{name}: input statistics have shape {tuple(xtx.shape)}, expected ({cols}, {cols})")
    if nm is not None and cols % nm[1]:
        raise LoramError(f"{name}: pattern {nm[0]}:{nm[1]} needs in_features ({cols}) divisible by {nm[1]}")
    if nm is not None and blocksize % nm[1]:
        raise LoramError(f"{name}: blocksize {blocksize} must be a multiple of M={nm[1]}")
    w = w_orig.clone()
    h = xtx.to(torch.float32) * (2.0 / max(tokens, 1))  # the scale cancels out of masks and updates
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    u = _inverse_hessian_factor(h, percdamp, name)
    del h
    # Work on Wᵀ: a column of W is a contiguous row here, so the per-column updates are contiguous rank-1 ones.
    wt = w.T.contiguous()
    keep_t = torch.ones(cols, rows, dtype=torch.bool)
    with _one_thread():
        for i1 in range(0, cols, blocksize):
            i2 = min(i1 + blocksize, cols)
            w1 = wt[i1:i2].clone()  # [block columns, rows]
            err1 = torch.zeros_like(w1)
            u1 = u[i1:i2, i1:i2]
            d = torch.diag(u1)
            if nm is None:
                scores = w1.pow(2) / d.pow(2).unsqueeze(1)
                if per_row:
                    keep1 = keep_all_but_lowest_per_row(scores.T, chunk_count(ratio, i1, i2)).T.contiguous()
                else:
                    keep1 = keep_all_but_lowest(scores, chunk_count(ratio, rows * i1, rows * i2))
            else:
                keep1 = torch.ones_like(w1, dtype=torch.bool)
            for i in range(i2 - i1):
                if nm is not None and i % nm[1] == 0:
                    group = slice(i, i + nm[1])
                    scores = w1[group].pow(2) / d[group].pow(2).unsqueeze(1)
                    keep1[group] = keep_all_but_lowest_n_of_m(scores.T, nm[0], nm[1]).T
                col = w1[i]
                err = col.masked_fill(keep1[i], 0.0) / d[i]  # (w - q) / d: q is w with the pruned entries zeroed
                w1[i:].addr_(u1[i, i:], err, alpha=-1.0)  # the column itself becomes q: its pruned entries hit 0
                err1[i] = err
            w1[~keep1] = 0.0  # exact zeros (the update leaves them at rounding-error size)
            wt[i1:i2] = w1
            keep_t[i1:i2] = keep1
            wt[i2:].addmm_(u[i1:i2, i2:].T, err1, alpha=-1.0)
    w = wt.T.contiguous()
    return PrunedLinear(
        weight=w,
        keep=keep_t.T.contiguous(),
        error=reconstruction_error(w_orig, w, xtx),
        output_energy=float(((w_orig.double() @ xtx.double()) * w_orig.double()).sum()),
    )
