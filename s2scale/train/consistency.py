"""The consistency projection of :mod:`s2scale.infer.consistency` as a differentiable torch layer.

``upscale`` returns ``P(sr) = sr + D^T (D D^T)^-1 (lr - D sr)`` (the network output projected so
that, degraded by the nominal Sentinel-2 operator ``D``, it reproduces its input; on by default).
Training with ``TrainConfig.consistency`` computes the losses and the discriminator's input on
``P(sr)`` instead of ``sr``, so the network is optimised for what users get: its gradients then
only carry the part of the image that ``D`` removes (the detail above the 10 m Nyquist), the part
``D`` sees being fixed by the input (cf. SEN2SR's low-frequency constraint, used in training
there too).

:class:`ConsistencyProjection` applies the same operators as
:func:`s2scale.infer.consistency.project_block` (nominal PSF per band, ``scale x scale`` means,
the truncated inverse filter of ``D D^T``, half-sample symmetric borders) to a batch
``(B, C, H, W)``; it is linear, so it commutes with the affine normalisation of the training
data (offset 0 or not: ``D`` keeps constants). Its result equals ``project_block``'s to float32
rounding (tested).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from s2scale.infer.consistency import CONSISTENCY_TAPS, _psf_1d, band_mtfs, inverse_filter

__all__ = ["ConsistencyProjection"]


def _stack_kernels(kernels: Sequence[np.ndarray]) -> torch.Tensor:
    """``(C, L)`` float32 of odd 1-D kernels, zero-padded about their centres to one length."""
    length = max(len(k) for k in kernels)
    out = np.zeros((len(kernels), length), np.float32)
    for i, k in enumerate(kernels):
        pad = (length - len(k)) // 2
        out[i, pad : pad + len(k)] = k
    return torch.from_numpy(out)


def _symmetric_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of a length-``n`` axis padded by ``pad`` half-sample symmetric samples."""
    return torch.from_numpy(np.pad(np.arange(n), pad, mode="symmetric")).to(device)


def _correlate(x: torch.Tensor, kernels: torch.Tensor, dim: int) -> torch.Tensor:
    """Per-channel 1-D correlation of ``(B, C, H, W)`` along ``dim`` (2 or 3), symmetric borders."""
    c, length = kernels.shape
    pad = (length - 1) // 2
    x = x.index_select(dim, _symmetric_index(x.shape[dim], pad, x.device))
    shape = (c, 1, length, 1) if dim == 2 else (c, 1, 1, length)
    return F.conv2d(x, kernels.to(x.dtype).reshape(shape), groups=c)


class ConsistencyProjection(nn.Module):
    """``P(sr, lr)``: project a batch of outputs onto the images consistent with their inputs.

    Parameters
    ----------
    bands
        Band names in channel order; their nominal MTFs come from
        :func:`~s2scale.infer.consistency.band_mtfs`.
    scale
        Upscaling factor.
    taps
        Half-length of the inverse filter, LR px (as ``upscale``'s ``consistency_taps``).

    Examples
    --------
    >>> proj = ConsistencyProjection(["red"], scale=2)
    >>> lr = torch.rand(1, 1, 24, 24)
    >>> out = proj(torch.zeros(1, 1, 48, 48), lr)
    >>> bool(torch.allclose(out.mean(), lr.mean(), atol=1e-4))
    True
    """

    def __init__(self, bands: Sequence[str], scale: int, taps: int = CONSISTENCY_TAPS) -> None:
        super().__init__()
        mtfs = band_mtfs(bands)
        self.scale = int(scale)
        self.register_buffer("psf", _stack_kernels([_psf_1d(m, scale) for m in mtfs]), False)
        inverse = [inverse_filter(float(m), scale, taps).astype(np.float32) for m in mtfs]
        self.register_buffer("inverse", _stack_kernels(inverse), False)

    def degrade(self, sr: torch.Tensor) -> torch.Tensor:
        """``D sr``: nominal PSF per band, then ``scale x scale`` means."""
        blurred = _correlate(_correlate(sr, self.psf, 2), self.psf, 3)
        return F.avg_pool2d(blurred, self.scale)

    def forward(self, sr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """``sr + D^T (D D^T)^-1 (lr - D sr)`` for ``sr (B, C, H*s, W*s)``, ``lr (B, C, H, W)``."""
        res = lr.to(sr.dtype) - self.degrade(sr)
        res = _correlate(_correlate(res, self.inverse, 2), self.inverse, 3)
        up = res.repeat_interleave(self.scale, 2).repeat_interleave(self.scale, 3)
        up = up / float(self.scale * self.scale)
        return sr + _correlate(_correlate(up, self.psf, 2), self.psf, 3)
