"""The torch kernels of the block's work (s2scale.infer.ops) against SciPy and each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate1d

from s2scale.errors import ConfigError
from s2scale.infer import ops


def _scipy_lr_filter(res: np.ndarray, k: ops.ProjectionKernels) -> np.ndarray:
    """Low-pass then inverse filter, each along y then x, half-sample symmetric borders."""
    out = res.astype(np.float64)
    for kernels in ([] if k.lowpass is None else [k.lowpass]) + [k.inverse]:
        for axis in (-2, -1):
            out = np.stack([correlate1d(b, w.double().numpy(), axis=axis, mode="reflect")
                            for b, w in zip(out, kernels, strict=True)])  # fmt: skip
    return out


@pytest.mark.parametrize("lowpass", [0.0, 4.0])
@pytest.mark.parametrize("shape", [(3, 64, 80), (3, 17, 30)])
def test_filter_lr_equals_the_two_filters_in_turn(lowpass, shape):
    """One FFT product equals the low-pass and the inverse filter applied one after the other,
    also where the block is narrower than the combined kernel (multiple reflections)."""
    k = ops.projection_kernels((0.30, 0.27, 0.24), 2, 10, lowpass)
    res = np.random.default_rng(0).normal(0, 50, shape).astype(np.float32)
    got = ops.filter_lr(torch.from_numpy(res), k).numpy()
    want = _scipy_lr_filter(res, k)
    assert got.shape == res.shape
    assert np.abs(got - want).max() < 1e-3 * np.abs(want).max()


def test_correlate_out_accumulates_into_a_strided_view():
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 40, 300)).astype(np.float32))
    kern = torch.tensor([[0.25, 0.5, 0.25], [0.1, 0.8, 0.1]])
    big = torch.ones(2, 40, 600)
    before = big.clone()
    ops.correlate(x, kern, -1, out=big[..., ::2])  # every other column, CPU pieces
    want = np.stack([correlate1d(b, w.numpy(), axis=-1, mode="reflect")
                     for b, w in zip(x.numpy(), kern, strict=True)])  # fmt: skip
    np.testing.assert_allclose(big[..., ::2].numpy(), 1 + want, atol=1e-5)
    assert torch.equal(big[..., 1::2], before[..., 1::2])
    with pytest.raises(ConfigError, match="out has shape"):
        ops.correlate(x, kern, -1, out=torch.zeros(2, 40, 299))


def test_project_in_place_on_a_window_equals_project():
    rng = np.random.default_rng(2)
    k = ops.projection_kernels((0.3, 0.25), 2, 10, 4.0)
    sr = torch.from_numpy(rng.uniform(500, 3000, (2, 200, 260)).astype(np.float32))
    lr = torch.from_numpy(rng.uniform(500, 3000, (2, 40, 50)).astype(np.float32))
    window = (slice(None), slice(20, 100), slice(60, 160))
    want = ops.project(sr[window], lr, k)
    inplace = sr.clone()
    ops.project_(inplace[window], lr, k)
    torch.testing.assert_close(inplace[window], want, atol=1e-3, rtol=0)
    outside = torch.ones_like(sr, dtype=torch.bool)
    outside[window] = False
    assert torch.equal(inplace[outside], sr[outside])
    # the full projection (no low-pass) makes the window consistent with lr: D(result) ~ lr
    full = ops.projection_kernels((0.3, 0.25), 2, 10, 0.0)
    before = (ops.degrade(sr[window], full) - lr).abs().mean()
    assert (ops.degrade(ops.project(sr[window], lr, full), full) - lr).abs().mean() < 0.1 * before


def _reference_correlate(x: np.ndarray, kern: np.ndarray, axis: int, stride: int, pad: int):
    """``out[i] = sum_m k[m] xp[stride * i + m]`` on the half-sample symmetric extension."""
    length = kern.shape[1]
    n = x.shape[axis]
    index = np.pad(np.arange(n), (pad, length - 1 - pad), mode="symmetric")
    xp = np.take(x.astype(np.float64), index, axis=axis)
    n_out = (n - 1) // stride + 1
    out = 0.0
    for m in range(length):
        taps = np.take(xp, m + stride * np.arange(n_out), axis=axis)
        out = out + taps * kern[:, m].reshape(-1, 1, 1)
    return out


@pytest.mark.parametrize("axis", [-2, -1])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shape", [(2, 7, 5), (2, 150, 300), (2, 301, 140)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_correlate_matches_the_definition_on_every_path(axis, stride, shape, accumulate):
    """Small blocks (every output near a border), and CPU bands of rows and columns with their
    head and tail outputs gathered and, for strided columns, the phase split."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape).astype(np.float32)
    kern = rng.normal(size=(2, 10)).astype(np.float32)
    pad = 4  # the PSF-and-mean kernel's left half-length: asymmetric borders
    want = _reference_correlate(x, kern, axis, stride, pad)
    if accumulate:
        out = torch.full(want.shape, 3.0)
        got = ops.correlate(torch.from_numpy(x), torch.from_numpy(kern), axis, stride=stride,
                            pad=pad, out=out)  # fmt: skip
        assert got is out
        want = want + 3.0
    else:
        got = ops.correlate(torch.from_numpy(x), torch.from_numpy(kern), axis, stride=stride,
                            pad=pad)  # fmt: skip
    np.testing.assert_allclose(got.numpy(), want, atol=1e-4, rtol=1e-5)
