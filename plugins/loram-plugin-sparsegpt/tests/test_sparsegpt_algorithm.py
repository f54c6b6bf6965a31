"""SparseGPT on single Linear layers: exact sparsity, N:M, lower reconstruction error than magnitude, determinism."""

import pytest
import torch

from loram_core.configs import build_config
from loram_core.errors import LoramError
from loram_plugin_sparsegpt.config import MaskPruneConfig, SparseGPTConfig
from loram_plugin_sparsegpt.magnitude import magnitude_keep
from loram_plugin_sparsegpt.masks import PackedMasks, pruned_count
from loram_plugin_sparsegpt.sparsegpt import reconstruction_error, sparsegpt_prune
from sparsegpt_helpers import correlated_inputs

OUT, IN, TOKENS = 48, 96, 2048


@pytest.fixture(scope="module")
def layer():
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(OUT, IN, generator=gen)
    x = correlated_inputs(IN, TOKENS, seed=2)
    return weight, x, x @ x.T


def prune(layer, **kwargs):
    weight, _, xtx = layer
    kwargs = {"ratio": 0.5, "blocksize": 32, **kwargs}
    return sparsegpt_prune(weight, xtx, TOKENS, **kwargs)


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.7])
def test_unstructured_prunes_exactly_the_ratio_of_the_layer_and_of_every_block(layer, ratio):
    result = prune(layer, ratio=ratio)
    # Adaptive selection decides per block over all rows, so rows differ; the layer's count is exact,
    # and so is each block's (its share of R(ratio * out * in), cumulatively rounded).
    assert int((~result.keep).sum()) == pruned_count(ratio, OUT * IN)
    for start in range(0, IN, 32):
        block = int((~result.keep)[:, start:start + 32].sum())
        assert block == pruned_count(ratio, OUT * (start + 32)) - pruned_count(ratio, OUT * start)
    assert bool((result.weight[~result.keep] == 0).all())
    per_row = (~result.keep).sum(1)
    print(f"ratio {ratio}: zeros per row range {int(per_row.min())}..{int(per_row.max())} of {IN}")


def test_per_row_prunes_the_same_count_in_every_row(layer):
    result = prune(layer, ratio=0.55, per_row=True)
    assert (~result.keep).sum(1).tolist() == [pruned_count(0.55, IN)] * OUT
    assert bool((result.weight[~result.keep] == 0).all())


@pytest.mark.parametrize("n,m", [(2, 4), (4, 8), (1, 4)])
def test_n_of_m_prunes_exactly_n_in_every_group(layer, n, m):
    result = prune(layer, ratio=n / m, nm=(n, m))
    groups = (~result.keep).view(OUT, IN // m, m).sum(-1)
    assert bool((groups == n).all())
    zeros = (result.weight == 0).view(OUT, IN // m, m).sum(-1)
    assert bool((zeros >= n).all())  # every group of M weights has at least N zeros


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_reconstruction_error_is_below_magnitude_pruning(layer, pattern):
    weight, x, xtx = layer
    nm = None if pattern == "unstructured" else (2, 4)
    result = prune(layer, nm=nm)
    mag_keep = magnitude_keep(weight, 0.5, nm)
    assert int(mag_keep.sum()) == int(result.keep.sum())  # same sparsity
    magnitude = weight * mag_keep
    sgpt_err = float(((weight - result.weight) @ x).pow(2).sum())
    mag_err = float(((weight - magnitude) @ x).pow(2).sum())
    print(f"{pattern}: ‖WX − ŴX‖² sparsegpt / magnitude = {sgpt_err / mag_err:.3f}")
    assert sgpt_err < mag_err
    # The error the pruner reports is this one, computed from X Xᵀ instead of X.
    assert result.error == pytest.approx(sgpt_err, rel=1e-4)
    assert reconstruction_error(weight, magnitude, xtx) == pytest.approx(mag_err, rel=1e-4)


def test_obs_update_lowers_the_error_of_its_own_mask(layer):
    weight, _, xtx = layer
    result = prune(layer)
    masked_only = reconstruction_error(weight, weight * result.keep, xtx)
    assert result.error < masked_only
    assert not torch.equal(result.weight, weight * result.keep)  # kept weights were updated


def test_nothing_pruned_leaves_the_weight_exactly(layer):
    weight, _, _ = layer
    result = prune(layer, ratio=0.0)
    assert result.keep.all() and torch.equal(result.weight, weight) and result.error == 0.0


def test_deterministic(layer):
    a, b = prune(layer, nm=(2, 4)), prune(layer, nm=(2, 4))
    assert torch.equal(a.keep, b.keep) and torch.equal(a.weight, b.weight) and a.error == b.error


def test_dead_inputs_are_zeroed_and_pruned_first(layer):
    weight, x, _ = layer
    x = x.clone()
    x[5] = 0  # input feature 5 never fires on the calibration data
    result = sparsegpt_prune(weight, x @ x.T, TOKENS, ratio=0.5, blocksize=32)
    assert bool((result.weight[:, 5] == 0).all()) and not result.keep[:, 5].any()


def test_singular_statistics_without_dampening_is_a_clear_error():
    weight = torch.randn(8, 16)
    x = torch.randn(16, 4)  # rank 4 < 16 features
    with pytest.raises(LoramError, match="not positive definite with percdamp=0"):
        sparsegpt_prune(weight, x @ x.T, 4, ratio=0.5, percdamp=0.0)
    assert (~sparsegpt_prune(weight, x @ x.T, 4, ratio=0.5).keep).sum() == 64  # dampening makes it invertible


def test_n_of_m_needs_divisible_in_features():
    with pytest.raises(LoramError, match="divisible by 4"):
        sparsegpt_prune(torch.randn(4, 6), torch.eye(6), 6, ratio=0.5, nm=(2, 4))


@pytest.mark.parametrize(
    "options,message",
    [
        ({"pattern": "4:2"}, "0 < N < M"),
        ({"pattern": "2-4"}, "0 < N < M"),
        ({"pattern": "1:4"}, "pass --ratio 0.25"),
        ({"pattern": "2:4", "blocksize": 6}, "multiple of M=4"),
        ({"percdamp": -1}, "percdamp"),
        ({"samples": 0}, "samples must be a positive integer"),
        ({"modules": ""}, "at least one Linear"),
        ({"layers": "5"}, "START:END"),
        ({"ratio": 1.0}, r"\[0, 1\)"),
        ({"colour": "red"}, "unknown option"),
    ],
)
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(LoramError, match=message):
        build_config(SparseGPTConfig, options, owner="pruner 'sparsegpt'")


def test_options_from_the_command_line_parse():
    cfg = build_config(SparseGPTConfig, {"pattern": "4:8", "modules": "q_proj, down_proj", "layers": "2:5"}, owner="x")
    assert cfg.nm == (4, 8) and cfg.modules == ("q_proj", "down_proj") and cfg.layers == (2, 5)
    assert build_config(MaskPruneConfig, {"pattern": "1:4", "ratio": 0.25}, owner="x").nm == (1, 4)


def reference_fasterprune(weight, xtx, tokens, ratio, nm, blocksize, percdamp=0.01):
    """The reference SparseGPT.fasterprune, transcribed (column-major loop, explicit Q1/Losses), as an oracle.
    One change: the unstructured block mask takes the exact count (the reference's ``<= threshold`` takes
    one more weight per block), so both can be compared on the same masks. Its masks are the reference's:
    True where PRUNED."""
    from loram_plugin_sparsegpt.masks import chunk_count, keep_all_but_lowest

    W = weight.clone().float()
    H = xtx * (2.0 / tokens)
    rows, columns = W.shape
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)
    masks = torch.zeros_like(W, dtype=torch.bool)
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        if nm is None:
            tmp = W1**2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
            mask1 = ~keep_all_but_lowest(tmp, chunk_count(ratio, rows * i1, rows * i2))
        else:
            mask1 = torch.zeros_like(W1) == 1
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if nm is not None and i % nm[1] == 0:
                tmp = W1[:, i:(i + nm[1])] ** 2 / (torch.diag(Hinv1)[i:(i + nm[1])].reshape((1, -1))) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, nm[0], dim=1, largest=False)[1], True)
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        masks[:, i1:i2] = mask1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W, masks


@pytest.mark.parametrize("nm", [None, (2, 4)])
def test_matches_the_reference_implementation(layer, nm):
    weight, _, xtx = layer
    expected_w, expected_pruned = reference_fasterprune(weight, xtx, TOKENS, 0.5, nm, blocksize=32)
    result = prune(layer, nm=nm)
    assert torch.equal(~result.keep, expected_pruned)
    torch.testing.assert_close(result.weight, expected_w, rtol=0, atol=1e-5)  # fp32 rounding order only


def test_packed_masks_unpack_to_the_same_masks():
    gen = torch.Generator().manual_seed(3)
    masks = {"a": torch.rand(7, 13, generator=gen) > 0.5, "b": torch.rand(4, 8, generator=gen) > 0.3}
    packed = PackedMasks()
    for name, mask in masks.items():
        packed.add(name, mask)
    out = packed.unpack()
    assert out.keys() == masks.keys() and all(torch.equal(out[k], masks[k]) for k in masks)
