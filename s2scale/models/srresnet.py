"""SRResNet (Ledig et al., 2017), the generator of SRGAN, for any number of bands.

Reference: C. Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network", CVPR 2017: a 9x9 head, 16 residual blocks (conv-BN-PReLU-conv-BN), a global
skip connection, one pixel-shuffle x2 stage per factor of two and a 9x9 tail.
"""

from __future__ import annotations

import torch
from torch import nn

from s2scale.errors import ConfigError

__all__ = ["ResidualBlockBN", "SRResNet"]


class ResidualBlockBN(nn.Module):
    """Residual block ``x + BN(conv(PReLU(BN(conv(x)))))`` with ``num_feat`` channels."""

    def __init__(self, num_feat: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(num_feat)
        self.act = nn.PReLU(num_feat)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(num_feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` plus the block's residual, same shape."""
        return x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))


class SRResNet(nn.Module):
    """SRResNet generator with batch normalisation and pixel-shuffle upsampling.

    Maps ``(N, C, H, W) -> (N, C, H*scale, W*scale)`` with ``C == in_bands``. Inputs are surface
    reflectance scaled to roughly ``[0, 1]`` (the checkpoint stores the exact
    :class:`~s2scale.models.Normalization`); outputs are in the same units. The network
    contains batch normalisation, so call ``.eval()`` before inference.

    Parameters
    ----------
    in_bands
        Number of spectral bands ``C`` (3 for RGB, 4 for RGB+NIR).
    num_feat
        Feature channels (64 in the paper).
    num_block
        Number of residual blocks (16 in the paper).
    scale
        Upscaling factor, a power of two (2 for 10 m -> 5 m, or 4); one pixel-shuffle x2 stage
        is used per factor of two.

    Examples
    --------
    >>> net = SRResNet(in_bands=3, num_feat=8, num_block=1, scale=4).eval()
    >>> net(torch.zeros(1, 3, 8, 8)).shape
    torch.Size([1, 3, 32, 32])
    """

    def __init__(
        self, in_bands: int = 4, num_feat: int = 64, num_block: int = 16, scale: int = 2
    ) -> None:
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ConfigError(f"SRResNet needs a power-of-two scale >= 2, got scale={scale}")
        self.in_bands = in_bands
        self.scale = scale
        self.conv_first = nn.Conv2d(in_bands, num_feat, 9, 1, 4)
        self.act_first = nn.PReLU(num_feat)
        self.body = nn.Sequential(*(ResidualBlockBN(num_feat) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.bn_body = nn.BatchNorm2d(num_feat)
        stages = scale.bit_length() - 1  # log2(scale) pixel-shuffle x2 stages
        self.upsample = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1),  # 4 = 2 x 2 sub-pixels
                    nn.PixelShuffle(2),
                    nn.PReLU(num_feat),
                )
                for _ in range(stages)
            )
        )
        self.conv_last = nn.Conv2d(num_feat, in_bands, 9, 1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale ``x`` of shape ``(N, C, H, W)`` to ``(N, C, H*scale, W*scale)``."""
        feat = self.act_first(self.conv_first(x))
        feat = feat + self.bn_body(self.conv_body(self.body(feat)))  # global skip
        return self.conv_last(self.upsample(feat))
