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
the truncated inverse filter of ``D D^T``, half-sample symmetric borders: the torch kernels of
:mod:`s2scale.infer.ops`, which the predictor runs too) to a batch ``(B, C, H, W)``; it is
linear, so it commutes with the affine normalisation of the training data (offset 0 or not:
``D`` keeps constants).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from s2scale.infer.consistency import CONSISTENCY_TAPS, band_mtfs
from s2scale.infer.ops import ProjectionKernels, degrade, project, projection_kernels

__all__ = ["ConsistencyProjection"]


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
        self.scale = int(scale)
        self._key = (tuple(band_mtfs(bands)), self.scale, taps, 0.0)

    def _on(self, x: torch.Tensor) -> ProjectionKernels:
        """The kernels on ``x``'s device (cached per device)."""
        return projection_kernels(*self._key, str(x.device))

    def degrade(self, sr: torch.Tensor) -> torch.Tensor:
        """``D sr``: nominal PSF per band, then ``scale x scale`` means."""
        return degrade(sr, self._on(sr))

    def forward(self, sr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """``sr + D^T (D D^T)^-1 (lr - D sr)`` for ``sr (B, C, H*s, W*s)``, ``lr (B, C, H, W)``."""
        return project(sr, lr, self._on(sr))
