"""SRVGGNetCompact, Real-ESRGAN's compact generator, for any number of bands.

A plain stack of 3x3 convolutions at LR resolution, one pixel shuffle at the end, and the
nearest-upsampled input added back, so the network learns the residual. Parameter names follow the
official ``SRVGGNetCompact`` (``body.{i}`` alternating convolution and activation), so published
weights such as ``realesr-general-x4v3.pth`` load with ``strict=True``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from s2scale.errors import ConfigError

__all__ = ["SRVGGNetCompact"]

Activation = Literal["prelu", "relu", "leakyrelu"]

# Negative slope of the official compact network's LeakyReLU option.
LRELU_SLOPE = 0.1


def _activation(act_type: Activation, num_feat: int) -> nn.Module:
    """Build one activation layer of the body."""
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(LRELU_SLOPE, inplace=True)
    raise ConfigError(f"act_type must be 'prelu', 'relu' or 'leakyrelu', got {act_type!r}")


class SRVGGNetCompact(nn.Module):
    """Compact VGG-style super-resolution network with a final pixel shuffle.

    Maps ``(N, C, H, W) -> (N, C, H*scale, W*scale)`` with ``C == in_bands``. Inputs are surface
    reflectance scaled to roughly ``[0, 1]`` (official RGB weights expect ``[0, 1]``; the checkpoint
    stores the exact :class:`~s2scale.models.Normalization`); outputs are in the same units.

    The last convolution ``body.{2 * num_conv + 2}`` has ``in_bands * scale**2`` output channels;
    channel ``c * scale**2 + k`` becomes sub-pixel ``k`` of band ``c`` after the pixel shuffle.

    Parameters
    ----------
    in_bands
        Number of spectral bands ``C`` (3 for RGB, 4 for RGB+NIR).
    num_feat
        Feature channels (64 in the official models).
    num_conv
        Number of 3x3 convolutions between the first and the last (16 or 32 officially).
    scale
        Integer upscaling factor (2 for 10 m -> 5 m; the official weights are x4).
    act_type
        Activation after each convolution but the last.

    Examples
    --------
    >>> net = SRVGGNetCompact(in_bands=4, num_feat=8, num_conv=1, scale=2)
    >>> net(torch.zeros(1, 4, 8, 8)).shape
    torch.Size([1, 4, 16, 16])
    """

    def __init__(
        self,
        in_bands: int = 4,
        num_feat: int = 64,
        num_conv: int = 16,
        scale: int = 2,
        act_type: Activation = "prelu",
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ConfigError(f"SRVGGNetCompact needs scale >= 1, got scale={scale}")
        self.in_bands = in_bands
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(in_bands, num_feat, 3, 1, 1)]
        layers.append(_activation(act_type, num_feat))
        for _ in range(num_conv):
            layers.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            layers.append(_activation(act_type, num_feat))
        layers.append(nn.Conv2d(num_feat, in_bands * scale * scale, 3, 1, 1))
        self.body = nn.Sequential(*layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale ``x`` of shape ``(N, C, H, W)`` to ``(N, C, H*scale, W*scale)``."""
        out = self.upsampler(self.body(x))
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")
