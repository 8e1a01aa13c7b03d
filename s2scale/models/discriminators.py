"""Discriminators for adversarial training: ESRGAN's VGG-style and Real-ESRGAN's U-Net with SN.

Parameter names follow BasicSR (``conv{i}_{j}``/``bn{i}_{j}``/``linear{1,2}`` and
``conv0``..``conv9`` with ``weight_orig``/``weight_u``/``weight_v`` for spectral normalisation), so
official discriminator weights load with ``strict=True`` for matching sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from s2scale.errors import ConfigError

__all__ = ["UNetDiscriminatorSN", "VGGStyleDiscriminator"]

# LeakyReLU slope used by both ESRGAN and Real-ESRGAN discriminators.
LRELU_SLOPE = 0.2
# The VGG-style trunk halves the image at least 5 times (stages conv0..conv4, as in ESRGAN).
MIN_STAGES = 5
# ... and keeps halving while the map is larger than this (128 px -> 4 px, 256 px -> 4 px).
FINAL_SIZE_PX = 4
# Hidden width of the classifier head (ESRGAN's linear1).
HIDDEN = 100


def _stages(input_size: int) -> tuple[int, int]:
    """Return the number of stride-2 stages and the final map size for ``input_size``."""
    div = 2**MIN_STAGES
    if input_size < div or input_size % div:
        raise ConfigError(
            f"VGGStyleDiscriminator needs input_size divisible by {div}, got {input_size}; "
            "use 128, 192 or 256 px HR patches"
        )
    stages, size = MIN_STAGES, input_size // div
    while size > FINAL_SIZE_PX and size % 2 == 0:
        stages, size = stages + 1, size // 2
    return stages, size


class VGGStyleDiscriminator(nn.Module):
    """ESRGAN's VGG-style discriminator for square patches of a fixed size.

    Maps ``(N, C, S, S) -> (N, 1)`` raw logits (no sigmoid), ``S == input_size``. Each stage is a
    3x3 convolution and a stride-2 4x4 convolution, with batch norm after every convolution but the
    first. The number of stages is 5 for 128 px and 6 for 192 px (final map 3x3) or 256 px
    (final map 4x4), i.e. the smallest ``n >= 5`` where the map is at most 4 px or odd; the
    linear layer is sized to match. 128 and 256 px give BasicSR's exact layout.

    Parameters
    ----------
    in_bands
        Number of spectral bands ``C`` of the HR images.
    num_feat
        Base channels; stage ``i`` has ``num_feat * min(2**i, 8)`` channels.
    input_size
        Edge ``S`` of the square HR patch in pixels (a multiple of 32; our HR patches are 192 px).

    Examples
    --------
    >>> net = VGGStyleDiscriminator(in_bands=4, num_feat=4, input_size=192)
    >>> net.linear1.in_features  # 6 stages: 192 / 64 = 3 px, 32 channels
    288
    """

    def __init__(self, in_bands: int = 4, num_feat: int = 64, input_size: int = 192) -> None:
        super().__init__()
        self.in_bands = in_bands
        self.input_size = input_size
        self.num_stages, final = _stages(input_size)
        chans = [num_feat * min(2**i, 8) for i in range(self.num_stages)]
        self.conv0_0 = nn.Conv2d(in_bands, num_feat, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat)
        for i in range(1, self.num_stages):
            self.add_module(f"conv{i}_0", nn.Conv2d(chans[i - 1], chans[i], 3, 1, 1, bias=False))
            self.add_module(f"bn{i}_0", nn.BatchNorm2d(chans[i]))
            self.add_module(f"conv{i}_1", nn.Conv2d(chans[i], chans[i], 4, 2, 1, bias=False))
            self.add_module(f"bn{i}_1", nn.BatchNorm2d(chans[i]))
        self.linear1 = nn.Linear(chans[-1] * final * final, HIDDEN)
        self.linear2 = nn.Linear(HIDDEN, 1)
        self.lrelu = nn.LeakyReLU(LRELU_SLOPE, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score ``x`` of shape ``(N, C, S, S)``; returns logits ``(N, 1)``."""
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise ValueError(
                f"VGGStyleDiscriminator was built for {self.input_size} px patches, got input "
                f"{tuple(x.shape)}; build it with input_size={x.shape[-1]} or crop the patches"
            )
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for i in range(1, self.num_stages):
            for j in (0, 1):
                conv, bn = getattr(self, f"conv{i}_{j}"), getattr(self, f"bn{i}_{j}")
                feat = self.lrelu(bn(conv(feat)))
        feat = self.lrelu(self.linear1(feat.flatten(1)))
        return self.linear2(feat)


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral normalisation and skip connections.

    Maps ``(N, C, H, W) -> (N, 1, H, W)``: one realness logit per pixel. ``H`` and ``W`` must be
    divisible by 8 (three stride-2 downsamplings, undone by bilinear x2 upsampling).

    Parameters
    ----------
    in_bands
        Number of spectral bands ``C`` of the HR images.
    num_feat
        Base channels (64 in Real-ESRGAN).
    skip_connection
        Add the encoder features to the decoder features at each resolution.

    Examples
    --------
    >>> net = UNetDiscriminatorSN(in_bands=4, num_feat=4)
    >>> net(torch.zeros(1, 4, 16, 16)).shape
    torch.Size([1, 1, 16, 16])
    """

    def __init__(self, in_bands: int = 4, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.in_bands = in_bands
        self.skip_connection = skip_connection
        f = num_feat
        self.conv0 = nn.Conv2d(in_bands, f, 3, 1, 1)
        # encoder: stride-2 4x4 convolutions
        self.conv1 = spectral_norm(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
        # decoder: bilinear x2 then 3x3 convolution
        self.conv4 = spectral_norm(nn.Conv2d(f * 8, f * 4, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(f * 4, f * 2, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(f * 2, f, 3, 1, 1, bias=False))
        # extra convolutions at full resolution
        self.conv7 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score ``x`` of shape ``(N, C, H, W)``; returns per-pixel logits ``(N, 1, H, W)``."""
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"UNetDiscriminatorSN needs H and W divisible by 8, got {x.shape}")

        def act(t: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(t, LRELU_SLOPE)

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(up(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = act(self.conv5(up(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = act(self.conv6(up(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        out = act(self.conv7(x6))
        out = act(self.conv8(out))
        return self.conv9(out)
