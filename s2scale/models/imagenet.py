"""ImageNet AlexNet and VGG16 feature trunks (torchvision layout), untrained.

The trunks of LPIPS and of the VGG perceptual loss; their weights are imported and loaded by
:mod:`s2scale.models.backbones`. Module order and state-dict names are torchvision's
(``features.{i}.weight|bias``), so its ImageNet files load as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import nn

__all__ = ["ALEXNET_LAYERS", "TRUNKS", "VGG16_LAYERS", "alexnet_features", "vgg16_features"]

# torchvision.models.alexnet().features: (out_channels, kernel, stride, padding) per conv, and
# where max-pooling (3x3, stride 2) follows.
_ALEX_CONVS = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))


_ALEX_POOL_AFTER = (0, 1, 4)


# torchvision.models.vgg16().features (configuration "D"): 3x3 convs, "M" = 2x2 max-pooling.
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


def _layer_names(cfg: Iterable[int | str]) -> list[str]:
    """``conv1_1, relu1_1, ..., pool5`` for a VGG configuration."""
    names, block, conv = [], 1, 0
    for v in cfg:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            conv += 1
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    return names


VGG16_LAYERS: tuple[str, ...] = tuple(_layer_names(_VGG16_CFG))
"""Names of the 31 modules of :func:`vgg16_features` in order (``conv1_1`` ... ``pool5``)."""


ALEXNET_LAYERS: tuple[str, ...] = (
    "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3",
    "conv4", "relu4", "conv5", "relu5", "pool5",
)  # fmt: skip
"""Names of the 13 modules of :func:`alexnet_features` in order."""


def alexnet_features() -> nn.Sequential:
    """``torchvision.models.alexnet().features`` (13 modules, same state-dict names), untrained.

    ``(N, 3, H, W) -> (N, 256, h, w)``; inputs are RGB normalised with ImageNet mean and std.
    """
    layers: list[nn.Module] = []
    channels = 3
    for i, (width, kernel, stride, padding) in enumerate(_ALEX_CONVS):
        layers += [nn.Conv2d(channels, width, kernel, stride=stride, padding=padding),
                   nn.ReLU(inplace=True)]  # fmt: skip
        if i in _ALEX_POOL_AFTER:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
        channels = width
    return nn.Sequential(*layers)


def vgg16_features() -> nn.Sequential:
    """``torchvision.models.vgg16().features`` (31 modules, same state-dict names), untrained.

    ``(N, 3, H, W) -> (N, 512, H / 32, W / 32)``; inputs are RGB normalised with ImageNet mean and
    std. Module ``i`` is named ``VGG16_LAYERS[i]``. Built without the 120 M-parameter classifier.
    """
    layers: list[nn.Module] = []
    channels = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(v), kernel_size=3, padding=1),
                       nn.ReLU(inplace=True)]  # fmt: skip
            channels = int(v)
    return nn.Sequential(*layers)


TRUNKS: dict[str, Callable[[], nn.Sequential]] = {"alex": alexnet_features, "vgg": vgg16_features}
"""Builders of the untrained trunks by LPIPS name (``"alex"``, ``"vgg"``)."""
