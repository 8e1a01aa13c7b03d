"""Training losses: L1 pixel loss, perceptual loss, GAN losses and the generator EMA.

The perceptual loss uses ImageNet VGG features: VGG19 (ESRGAN/Real-ESRGAN, torchvision's file)
or VGG16 (``"vgg16"``: the ImageNet VGG16 trunk imported offline with ``s2scale weights
import-lpips``, :func:`s2scale.models.backbones.load_vgg16_features`; VGG16 in place of the
papers' VGG19, with each VGG19 layer name mapped to the last convolution of the same block,
:data:`VGG19_TO_VGG16`). Where no ImageNet weights exist, the shift-tolerant LPIPS network of
``stlpips-pytorch`` (``"stlpips-alex"`` or ``"stlpips-vgg"``, trained from scratch on human
similarity judgements; see :func:`s2scale.metrics.load_stlpips`) can stand in.

All losses take float tensors ``(N, C, H, W)`` of normalised reflectance (roughly ``[0, 1]``) or
discriminator logits, and return scalar tensors. Loss weights are applied by the training loop.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from s2scale.errors import CheckpointError, ConfigError
from s2scale.models.imagenet import VGG16_LAYERS

__all__ = [
    "EMA",
    "PERCEPTUAL_BACKBONES",
    "VGG19_FILE",
    "VGG19_LAYERS",
    "VGG19_TO_VGG16",
    "GanKind",
    "PerceptualBackbone",
    "PerceptualLoss",
    "discriminator_gan_loss",
    "generator_gan_loss",
    "lowfreq_loss",
    "pixel_loss",
]

log = logging.getLogger(__name__)

GanKind = Literal["relativistic", "vanilla"]
PerceptualBackbone = Literal["vgg19", "vgg16", "stlpips-alex", "stlpips-vgg"]

PERCEPTUAL_BACKBONES: tuple[str, ...] = ("vgg19", "vgg16", "stlpips-alex", "stlpips-vgg")
"""Backbones of :class:`PerceptualLoss`: ImageNet VGG19 or VGG16 features, or ST-LPIPS."""

VGG19_TO_VGG16: dict[str, str] = {"conv3_4": "conv3_3", "conv4_4": "conv4_3", "conv5_4": "conv5_3"}
"""VGG19 layers without a VGG16 namesake -> the last convolution of the same VGG16 block."""

STLPIPS_DATA_RANGE = 1.0
"""Normalised reflectance ``[0, 1]`` maps to ST-LPIPS's ``[-1, 1]`` input range."""

VGG19_FILE = "vgg19-dcbb9e9d.pth"
"""torchvision's ImageNet VGG19 weights, as named in the torch hub cache."""

# ImageNet mean/std of torchvision's VGG, for R, G, B inputs in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg19_layer_names() -> list[str]:
    """Names of ``torchvision.models.vgg19().features`` modules: conv1_1, relu1_1, ..., pool5."""
    names = []
    for block, convs in enumerate((2, 2, 4, 4, 4), start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


VGG19_LAYERS: tuple[str, ...] = tuple(_vgg19_layer_names())
"""Layer names of VGG19's feature extractor in order (BasicSR naming), 37 entries."""


def _vgg19_features() -> nn.Sequential:
    """``torchvision.models.vgg19().features`` without building the 120M-parameter classifier."""
    layers: list[nn.Module] = []
    channels = 3
    for name in VGG19_LAYERS:
        if name.startswith("conv"):
            width = 64 * 2 ** min(int(name[4]) - 1, 3)  # 64, 128, 256, 512, 512
            conv = nn.Conv2d(channels, width, kernel_size=3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)  # torchvision's initialisation
            layers.append(conv)
            channels = width
        elif name.startswith("relu"):
            layers.append(nn.ReLU(inplace=True))
        else:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def _vgg16_random() -> nn.Sequential:
    """``torchvision.models.vgg16().features`` with torchvision's random initialisation."""
    from s2scale.models.imagenet import vgg16_features

    features = vgg16_features()
    for module in features:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return features


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between ``sr`` and ``hr`` (equal shapes), a scalar tensor.

    Examples
    --------
    >>> pixel_loss(torch.zeros(1, 4, 2, 2), torch.ones(1, 4, 2, 2))
    tensor(1.)
    """
    return F.l1_loss(sr, hr)


def lowfreq_loss(
    sr: torch.Tensor, hr: torch.Tensor, block_px: int = 8, eps: float = 1e-3
) -> torch.Tensor:
    """Mean squared relative error of ``block_px`` block means: keeps the mean reflectance.

    ``((pool(sr) - pool(hr)) / (mean(hr) + eps))**2`` averaged, with ``pool`` the mean of
    ``block_px x block_px`` blocks and ``mean(hr)`` the patch mean per image and band. L1 alone
    is unbiased for the median, not the mean, of the error, which leaves a percent-level bias in
    dark bands (blue over forest, reflectance ~0.02); the squared error of block means is
    mean-unbiased, and dividing by the band's level weights dark bands as much as bright ones.

    Examples
    --------
    >>> hr = torch.full((1, 4, 16, 16), 0.02)
    >>> round(float(lowfreq_loss(hr * 1.01, hr, eps=0.0)), 6)  # 1 % too bright
    0.0001
    """
    ps, ph = F.avg_pool2d(sr, block_px), F.avg_pool2d(hr, block_px)
    level = hr.detach().mean(dim=(2, 3), keepdim=True).abs() + eps
    return (((ps - ph) / level) ** 2).mean()


def _vgg19_weights(weights: str | Path | None) -> Path:
    """Return the VGG19 weight file or raise a CheckpointError saying how to provide it."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    path = Path(weights) if weights is not None else cached
    if not path.is_file():
        where = f"weights={str(path)!r}" if weights is not None else f"the torch hub cache {cached}"
        raise CheckpointError(
            f"the perceptual loss needs torchvision's ImageNet VGG19 weights {VGG19_FILE}, not "
            f"found at {where}; pass weights='/path/to/{VGG19_FILE}' (train.perceptual_weights), "
            f"or copy the file to {cached} (set TORCH_HOME to move the cache); "
            "random_backbone=True trains against a random VGG19 (smoke tests only)"
        )
    return path


def _vgg16_layers(layer_weights: Mapping[str, float]) -> dict[str, float]:
    """Layer weights in VGG16 names (VGG19 names mapped by :data:`VGG19_TO_VGG16`)."""
    out: dict[str, float] = {}
    for name, weight in layer_weights.items():
        target = VGG19_TO_VGG16.get(name, name)
        out[target] = out.get(target, 0.0) + float(weight)
    return out


class PerceptualLoss(nn.Module):
    """Weighted L1 distance between VGG features of ``sr`` and ``hr`` (or ST-LPIPS), RGB bands.

    With ``backbone="stlpips-alex"`` (or ``"stlpips-vgg"``) the loss is instead the ST-LPIPS
    distance (shift-tolerant LPIPS, human-judgement-trained, no ImageNet weights) between the RGB
    bands clipped to ``[0, 1]`` and mapped to ``[-1, 1]``; ``layer_weights``, ``weights`` and
    ``random_backbone`` are then ignored (``TrainConfig.perceptual_backbone``).

    As in ESRGAN the default compares ``conv5_4`` features *before* the activation; Real-ESRGAN
    uses ``{conv1_2: 0.1, conv2_2: 0.1, conv3_4: 1, conv4_4: 1, conv5_4: 1}``. Inputs
    ``(N, C, H, W)`` with ``C >= 3``, normalised reflectance in about ``[0, 1]``; the bands
    ``rgb_bands`` are taken as R, G, B and normalised with ImageNet mean and std. The VGG is frozen
    (eval mode, no parameter gradients) but gradients flow to ``sr``; ``hr`` features are detached.

    With ``backbone="vgg16"`` the trunk is the ImageNet VGG16 imported by ``s2scale weights
    import-lpips`` (VGG16 in place of the papers' VGG19); VGG19 layer names are mapped to the
    last convolution of the same block (:data:`VGG19_TO_VGG16`, e.g. ``conv5_4 -> conv5_3``).

    Parameters
    ----------
    layer_weights
        Weight per layer name (:data:`VGG19_LAYERS`, or
        :data:`s2scale.models.imagenet.VGG16_LAYERS` for ``vgg16``).
    weights
        ``vgg19``: path to ``vgg19-dcbb9e9d.pth`` (``None``: ``torch.hub.get_dir()/checkpoints``);
        ``vgg16``: an imported ``s2scale-lpips-vgg16-v0.1.pt`` (``None``: the weights cache).
    random_backbone
        Use a randomly initialised VGG instead (smoke tests only). Logged with a WARNING and
        recorded in :attr:`backbone` so logs and checkpoints can say so.
    rgb_bands
        Indices of red, green and blue along ``C`` (``(2, 1, 0)`` for blue, green, red, nir).
    seed
        Seed for the random backbone's initialisation (does not touch the global RNG).
    backbone
        ``"vgg19"`` (default), ``"vgg16"``, ``"stlpips-alex"`` or ``"stlpips-vgg"``.
    input_range
        Normalised reflectance mapped to 1.0 before the ImageNet normalisation (e.g. 0.3 for a
        true-colour stretch of Sentinel-2 reflectance); not clipped, so gradients stay.

    Raises
    ------
    CheckpointError
        If the weights are missing (the message says where to put them) or do not load.
    ConfigError
        For an unknown layer name.
    """

    def __init__(
        self,
        layer_weights: Mapping[str, float] | None = None,
        *,
        weights: str | Path | None = None,
        random_backbone: bool = False,
        rgb_bands: Sequence[int] = (2, 1, 0),
        seed: int = 0,
        backbone: PerceptualBackbone = "vgg19",
        input_range: float = 1.0,
    ) -> None:
        super().__init__()
        if not input_range > 0:
            raise ConfigError(f"perceptual input_range must be > 0, got {input_range!r}")
        self.input_range = float(input_range)
        if backbone not in PERCEPTUAL_BACKBONES:
            raise ConfigError(
                f"perceptual backbone must be one of {PERCEPTUAL_BACKBONES}, got {backbone!r}"
            )
        self.rgb_bands = list(rgb_bands)
        self.stlpips: nn.Module | None = None
        if backbone.startswith("stlpips"):
            from s2scale.models.backbones import load_stlpips

            net = backbone.split("-", 1)[1]
            self.stlpips = load_stlpips(net)  # type: ignore[arg-type]
            self.layer_weights = {}
            self.random_backbone = False
            self.backbone = (
                f"ST-LPIPS (shift-tolerant {net}, trained from scratch on human similarity "
                "judgements; stlpips-pytorch; no ImageNet VGG19)"
            )
            log.info("perceptual loss: %s", self.backbone)
            return
        self.layer_weights = dict(layer_weights or {"conv5_4": 1.0})
        if backbone == "vgg16":
            self.layer_weights = _vgg16_layers(self.layer_weights)
        names = VGG16_LAYERS if backbone == "vgg16" else VGG19_LAYERS
        self.layer_names = names
        unknown = sorted(set(self.layer_weights) - set(names))
        if unknown or not self.layer_weights:
            raise ConfigError(
                f"unknown {backbone.upper()} layers {unknown}; known: {', '.join(names)}"
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            features = _vgg16_random() if backbone == "vgg16" else _vgg19_features()
        trunk = "VGG16" if backbone == "vgg16" else "VGG19"
        if random_backbone:
            log.warning("perceptual loss uses a RANDOM %s backbone (random_backbone=True)", trunk)
            self.backbone = f"random {trunk} (random_backbone=True)"
        elif backbone == "vgg16":
            from s2scale.models.backbones import load_lpips_weights, load_vgg16_features

            features = load_vgg16_features(weights)
            label = load_lpips_weights("vgg", weights).label
            self.backbone = f"{label}; VGG16 in place of the papers' VGG19"
        else:
            path = _vgg19_weights(weights)
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                prefix = "features."
                features.load_state_dict(
                    {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
                )
            except (OSError, RuntimeError, KeyError, ValueError) as err:
                raise CheckpointError(f"cannot load VGG19 weights from {path}") from err
            self.backbone = f"imagenet VGG19 ({path.name})"
        self.random_backbone = random_backbone
        """True when the VGG19 was randomly initialised; recorded in training logs."""
        last = max(names.index(name) for name in self.layer_weights)
        for module in features:  # conv outputs are read before the activation that follows
            if isinstance(module, nn.ReLU):
                module.inplace = False
        self.features = features[: last + 1].eval()
        self.features.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Keep the backbone in eval mode whatever ``mode`` is."""
        super().train(mode)
        if self.stlpips is not None:
            self.stlpips.eval()
        else:
            self.features.eval()
        return self

    def _to_stlpips(self, x: torch.Tensor) -> torch.Tensor:
        """RGB bands clipped to ``[0, STLPIPS_DATA_RANGE]`` and mapped to ``[-1, 1]``."""
        rgb = x[:, self.rgb_bands].clamp(0.0, STLPIPS_DATA_RANGE)
        return rgb * (2.0 / STLPIPS_DATA_RANGE) - 1.0

    def _extract(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features at the requested layers of ImageNet-normalised RGB bands."""
        feat = (x[:, self.rgb_bands] / self.input_range - self.mean) / self.std
        out = {}
        for name, layer in zip(self.layer_names, self.features, strict=False):
            feat = layer(feat)
            if name in self.layer_weights:
                out[name] = feat
        return out

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """Return ``sum_k w_k * L1(vgg_k(sr), vgg_k(hr))`` (or the mean ST-LPIPS), a scalar."""
        if self.stlpips is not None:
            return self.stlpips(self._to_stlpips(sr), self._to_stlpips(hr.detach())).mean()
        sr_feats = self._extract(sr)
        with torch.no_grad():
            hr_feats = self._extract(hr.detach())
        total = sr.new_zeros(())
        for name, weight in self.layer_weights.items():
            total = total + weight * F.l1_loss(sr_feats[name], hr_feats[name])
        return total


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """BCE-with-logits against a constant target, computed in float32."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def generator_gan_loss(
    kind: GanKind, real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> torch.Tensor:
    """Adversarial loss of the generator (to minimise), unweighted.

    ``"relativistic"`` (ESRGAN's relativistic average GAN):
    ``(BCE(D(hr) - mean D(sr), 0) + BCE(D(sr) - mean D(hr), 1)) / 2``, with ``real_logits``
    detached. ``"vanilla"`` (Real-ESRGAN): ``BCE(D(sr), 1)``; ``real_logits`` is ignored.
    Logits may be ``(N, 1)`` or per pixel ``(N, 1, H, W)``; means run over all elements.

    Examples
    --------
    >>> z = torch.zeros(2, 1)
    >>> round(float(generator_gan_loss("vanilla", z, z)), 4)  # log(2)
    0.6931
    """
    if kind == "vanilla":
        return _bce(fake_logits, 1.0)
    if kind == "relativistic":
        real = real_logits.detach()
        loss_real = _bce(real - fake_logits.mean(), 0.0)
        loss_fake = _bce(fake_logits - real.mean(), 1.0)
        return (loss_real + loss_fake) / 2
    raise ConfigError(f"GAN kind must be 'relativistic' or 'vanilla', got {kind!r}")


def discriminator_gan_loss(
    kind: GanKind, real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> torch.Tensor:
    """Adversarial loss of the discriminator (to minimise); ``fake_logits`` are ``D(sr.detach())``.

    ``"relativistic"``: ``(BCE(D(hr) - mean D(sr), 1) + BCE(D(sr) - mean D(hr), 0)) / 2`` as in
    ESRGAN (BasicSR detaches the mean of the other term). ``"vanilla"``:
    ``BCE(D(hr), 1) + BCE(D(sr), 0)`` as in Real-ESRGAN.

    Examples
    --------
    >>> big = torch.full((2, 1), 20.0)
    >>> float(discriminator_gan_loss("vanilla", big, -big)) < 1e-8  # perfect discriminator
    True
    """
    if kind == "vanilla":
        return _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)
    if kind == "relativistic":
        loss_real = _bce(real_logits - fake_logits.detach().mean(), 1.0)
        loss_fake = _bce(fake_logits - real_logits.detach().mean(), 0.0)
        return (loss_real + loss_fake) / 2
    raise ConfigError(f"GAN kind must be 'relativistic' or 'vanilla', got {kind!r}")


class EMA:
    """Exponential moving average of a model's weights (Real-ESRGAN uses decay 0.999).

    After each optimiser step, :meth:`update` sets ``ema = decay * ema + (1 - decay) * param`` for
    every floating-point parameter and copies buffers (batch-norm statistics) as they are. The
    averaged copy :attr:`module` is what gets validated and saved.

    Parameters
    ----------
    model
        The model to track (not a DDP wrapper: pass ``ddp.module``); it is deep-copied.
    decay
        Weight of the old average, in ``[0, 1)``.

    Examples
    --------
    >>> net = nn.Linear(1, 1, bias=False)
    >>> _ = net.weight.data.fill_(0.0)
    >>> ema = EMA(net, decay=0.9)
    >>> _ = net.weight.data.fill_(1.0)
    >>> ema.update(net)
    >>> round(float(ema.module.weight), 6)
    0.1
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1), got {decay!r}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend ``model``'s current weights into the average."""
        ema_params = dict(self.module.named_parameters())
        for name, param in model.named_parameters():
            ema_params[name].mul_(self.decay).add_(param.detach(), alpha=1.0 - self.decay)
        ema_buffers = dict(self.module.named_buffers())
        for name, buf in model.named_buffers():
            ema_buffers[name].copy_(buf)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Return the averaged weights, as ``module.state_dict()``."""
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore averaged weights saved by :meth:`state_dict`."""
        self.module.load_state_dict(state)
