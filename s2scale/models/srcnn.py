"""SRCNN (Dong et al., 2014/2016), the 9-5-5 variant, for any number of bands.

Reference: C. Dong, C. C. Loy, K. He, X. Tang, "Image Super-Resolution Using Deep Convolutional
Networks", TPAMI 2016. The original network works on a bicubic-upsampled image; here the upsampling
is done inside :meth:`SRCNN.forward`, so the interface matches the other generators: LR in, HR out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from s2scale.errors import ConfigError

__all__ = ["SRCNN"]


class SRCNN(nn.Module):
    """Three-layer SRCNN (9x9 -> 5x5 -> 5x5 convolutions) on a bicubic-upsampled input.

    Maps ``(N, C, H, W) -> (N, C, H*scale, W*scale)`` with ``C == in_bands``. Inputs are surface
    reflectance scaled to roughly ``[0, 1]`` (the checkpoint stores the exact
    :class:`~s2scale.models.Normalization`); outputs are in the same units.

    Parameters
    ----------
    in_bands
        Number of spectral bands ``C`` (3 for RGB, 4 for RGB+NIR).
    num_feat
        Channels of the 9x9 patch-extraction layer (64 in the paper).
    num_feat_map
        Channels of the 5x5 non-linear mapping layer (32 in the paper).
    scale
        Integer upscaling factor (2 for 10 m -> 5 m).

    Examples
    --------
    >>> net = SRCNN(in_bands=4, num_feat=8, num_feat_map=4, scale=2)
    >>> net(torch.zeros(1, 4, 8, 8)).shape
    torch.Size([1, 4, 16, 16])
    """

    def __init__(
        self, in_bands: int = 4, num_feat: int = 64, num_feat_map: int = 32, scale: int = 2
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ConfigError(f"SRCNN needs scale >= 1, got scale={scale}")
        self.in_bands = in_bands
        self.scale = scale
        # "same" padding keeps the HR grid aligned with the bicubic-upsampled input.
        self.conv_first = nn.Conv2d(in_bands, num_feat, kernel_size=9, padding=4)
        self.conv_map = nn.Conv2d(num_feat, num_feat_map, kernel_size=5, padding=2)
        self.conv_last = nn.Conv2d(num_feat_map, in_bands, kernel_size=5, padding=2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale ``x`` of shape ``(N, C, H, W)`` to ``(N, C, H*scale, W*scale)``."""
        up = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        feat = self.relu(self.conv_first(up))
        feat = self.relu(self.conv_map(feat))
        return self.conv_last(feat)
