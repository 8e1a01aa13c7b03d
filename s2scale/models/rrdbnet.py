"""RRDBNet, the generator of ESRGAN and Real-ESRGAN, for any number of bands.

References: X. Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks",
ECCV workshops 2018; X. Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with
Pure Synthetic Data", ICCV workshops 2021.

Parameter names follow BasicSR's ``RRDBNet`` (``conv_first``, ``body.{i}.rdb{1,2,3}.conv{1..5}``,
``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``), so the published ESRGAN and
Real-ESRGAN weights (e.g. ``RealESRGAN_x2plus.pth``, ``RealESRGAN_x4plus.pth``) load with
``strict=True``; see :func:`s2scale.models.weights.import_basicsr`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from s2scale.errors import ConfigError

__all__ = ["RRDB", "ESRGANGenerator", "RRDBNet", "RealESRGANGenerator", "ResidualDenseBlock"]

Layout = Literal["esrgan", "realesrgan"]

# ESRGAN scales every residual branch by 0.2 before adding it back ("residual scaling"); the
# paper reports that this stabilises training of very deep networks without batch norm.
RESIDUAL_SCALE = 0.2
# Negative slope of the LeakyReLU used throughout ESRGAN/Real-ESRGAN.
LRELU_SLOPE = 0.2
# BasicSR initialises the dense-block convolutions with Kaiming-normal weights times 0.1, which
# keeps the 23 x 3 stacked residual branches close to identity at the start of training.
DENSE_INIT_SCALE = 0.1


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convolutions with a scaled residual, ``num_feat`` channels."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(LRELU_SLOPE, inplace=True)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            nn.init.kaiming_normal_(conv.weight)
            with torch.no_grad():
                conv.weight.mul_(DENSE_INIT_SCALE)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + 0.2 * residual``, same shape as ``x``."""
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x + RESIDUAL_SCALE * x5


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks inside a scaled residual."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + 0.2 * rdb3(rdb2(rdb1(x)))``, same shape as ``x``."""
        return x + RESIDUAL_SCALE * self.rdb3(self.rdb2(self.rdb1(x)))


def _unshuffle_factor(layout: Layout, scale: int) -> int:
    """Pixel-unshuffle factor applied to the input before ``conv_first``."""
    if layout == "esrgan":
        if scale not in (2, 4):
            raise ConfigError(f"the ESRGAN layout supports scale 2 or 4, got scale={scale}")
        return 1
    if layout == "realesrgan":
        factors = {1: 4, 2: 2, 4: 1}  # the body always upsamples x4 with two nearest stages
        if scale not in factors:
            raise ConfigError(f"the Real-ESRGAN layout supports scale 1, 2 or 4, got scale={scale}")
        return factors[scale]
    raise ConfigError(f"unknown RRDBNet layout {layout!r}; expected 'esrgan' or 'realesrgan'")


class RRDBNet(nn.Module):
    """RRDBNet generator in the ESRGAN or the Real-ESRGAN layout.

    Maps ``(N, C, H, W) -> (N, C, H*scale, W*scale)`` with ``C == in_bands``. Inputs are surface
    reflectance scaled to roughly ``[0, 1]`` (official RGB weights expect ``[0, 1]``; the checkpoint
    stores the exact :class:`~s2scale.models.Normalization`); outputs are in the same units.

    ``layout="esrgan"``: the trunk runs at LR resolution, followed by one nearest-x2 + conv stage
    per factor of two (``conv_up1``, and ``conv_up2`` only for scale 4). ``layout="realesrgan"``:
    BasicSR's layout, always two nearest-x2 stages; for scale 2 the input is pixel-unshuffled by 2
    (``conv_first`` takes ``in_bands * 4`` channels, band ``c`` sub-pixel ``k`` at channel
    ``c * 4 + k``) and the trunk runs at half LR resolution; for scale 1 by 4; for scale 4 not at
    all (then both layouts are the same network). ``H`` and ``W`` must be divisible by the
    unshuffle factor.

    Parameters
    ----------
    in_bands
        Number of spectral bands ``C`` (3 for RGB, 4 for RGB+NIR).
    num_feat
        Trunk feature channels (64 in the papers).
    num_block
        Number of RRDB blocks in the trunk (23 in the papers).
    num_grow_ch
        Growth channels of each dense convolution (32 in the papers).
    scale
        Upscaling factor: 2 or 4 (``"esrgan"``), 1, 2 or 4 (``"realesrgan"``).
    layout
        ``"esrgan"`` or ``"realesrgan"``, see above.

    Examples
    --------
    >>> net = RRDBNet(in_bands=4, num_feat=8, num_block=1, num_grow_ch=4, scale=2)
    >>> net.conv_first.in_channels  # pixel-unshuffled by 2: 4 bands x 4 sub-pixels
    16
    >>> net(torch.zeros(1, 4, 8, 8)).shape
    torch.Size([1, 4, 16, 16])
    """

    def __init__(
        self,
        in_bands: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        scale: int = 2,
        layout: Layout = "realesrgan",
    ) -> None:
        super().__init__()
        self.unshuffle = _unshuffle_factor(layout, scale)
        self.in_bands = in_bands
        self.scale = scale
        self.layout = layout
        self.conv_first = nn.Conv2d(in_bands * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        # Two x2 stages give the trunk's x4; the ESRGAN layout at scale 2 needs only one.
        self.num_up = 2 if layout == "realesrgan" or scale == 4 else 1
        if self.num_up == 2:
            self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, in_bands, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(LRELU_SLOPE, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale ``x`` of shape ``(N, C, H, W)`` to ``(N, C, H*scale, W*scale)``."""
        feat = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        if self.num_up == 2:
            feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class ESRGANGenerator(RRDBNet):
    """:class:`RRDBNet` in the ESRGAN layout (trunk at LR resolution), registry name ``esrgan``.

    Maps ``(N, C, H, W) -> (N, C, H*scale, W*scale)``; see :class:`RRDBNet` for the parameters.
    """

    def __init__(
        self,
        in_bands: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        scale: int = 2,
    ) -> None:
        super().__init__(in_bands, num_feat, num_block, num_grow_ch, scale, layout="esrgan")


class RealESRGANGenerator(RRDBNet):
    """:class:`RRDBNet` in the Real-ESRGAN layout (pixel-unshuffle), registry name ``realesrgan``.

    Maps ``(N, C, H, W) -> (N, C, H*scale, W*scale)``; see :class:`RRDBNet` for the parameters.
    """

    def __init__(
        self,
        in_bands: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        scale: int = 2,
    ) -> None:
        super().__init__(in_bands, num_feat, num_block, num_grow_ch, scale, layout="realesrgan")
