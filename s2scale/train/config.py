"""``TrainConfig``: every setting of a training run, with the published recipes as defaults.

``recipe="esrgan"`` (Wang et al. 2018): L1 pre-training, then pixel 1e-2 + perceptual 1 (VGG19
``conv5_4`` before activation) + relativistic average GAN 5e-3 against the VGG-style
discriminator, no EMA. ``recipe="realesrgan"`` (Wang et al. 2021): L1 pre-training, then pixel 1 +
perceptual 1 (``conv1_2: 0.1, conv2_2: 0.1, conv3_4: 1, conv4_4: 1, conv5_4: 1``) + vanilla GAN
0.1 against the U-Net discriminator with spectral norm, EMA 0.999. Fields left at ``None`` take
the recipe's value in ``__post_init__``; any field can be overridden.

The training data of the shipped generators are described by a :class:`DataConfig` (``data:``
in the YAML): which sources (real Sentinel-2 Wald pairs, real orthophoto study pairs, the
simulator) are mixed with which weights, how patches are cut and which part of each real scene is
held out. ``sensor_degradation:`` draws the LR inputs on the fly from the Sentinel-2 degradation
model of :mod:`s2scale.degradation` (PSF, misregistration, noise ranges).

Example ``train.yaml``::

    arch: realesrgan
    arch_kwargs: {num_feat: 64, num_block: 23}
    recipe: realesrgan
    pretrain_steps: 100000
    gan_steps: 50000
    perceptual_backbone: vgg16        # ImageNet VGG16 from `s2scale weights import-lpips`
    perceptual_layers: {conv1_2: 0.1, conv2_2: 0.1, conv3_3: 1, conv4_3: 1, conv5_3: 1}
    sensor_degradation: {mtf_range: [0.12, 0.55], shift_range_px: [0.0, 0.3]}
    data: {mix: {real-s2-wald: 0.7, real-ortho-study: 0.15, sim-wald-s2: 0.15}}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from s2scale.degradation import SensorDegradationConfig
from s2scale.errors import ConfigError
from s2scale.models.checkpoint import Normalization
from s2scale.sentinel2 import BANDS
from s2scale.train.degradations import TrainingDegradationConfig

__all__ = ["RECIPES", "SOURCE_KINDS", "DataConfig", "TrainConfig"]

SOURCE_KINDS: tuple[str, ...] = (
    "real-colocated",
    "real-s2-wald",
    "real-ortho-study",
    "sim-wald-s2",
)
"""Training sources a :class:`DataConfig` can build (see :mod:`s2scale.train.realdata`)."""

RECIPES: dict[str, dict[str, Any]] = {
    "esrgan": {
        "pixel_weight": 1e-2,
        "perceptual_weight": 1.0,
        "perceptual_layers": {"conv5_4": 1.0},
        "gan_weight": 5e-3,
        "gan_kind": "relativistic",
        "discriminator": "vgg",
        "ema_decay": 0.0,
    },
    "realesrgan": {
        "pixel_weight": 1.0,
        "perceptual_weight": 1.0,
        "perceptual_layers": {
            "conv1_2": 0.1,
            "conv2_2": 0.1,
            "conv3_4": 1.0,
            "conv4_4": 1.0,
            "conv5_4": 1.0,
        },
        "gan_weight": 0.1,
        "gan_kind": "vanilla",
        "discriminator": "unet",
        "ema_decay": 0.999,
    },
}
"""Phase-2 loss weights, GAN form, discriminator and EMA decay of the two published recipes."""

_TUPLES = ("bands", "betas", "lr_milestones")


@dataclass(frozen=True)
class DataConfig:
    """Training data of a run: sources, their mixing weights, patches and the held-out parts.

    Built by :func:`s2scale.train.realdata.build_mixed_store` into a patch store whose
    ``source`` array records, for every patch, the source record (kind, file, date, region) it
    was cut from, and whose ``origin`` array gives its position in that source.
    """

    mix: dict[str, float] = field(
        default_factory=lambda: {"real-s2-wald": 0.7, "real-ortho-study": 0.15, "sim-wald-s2": 0.15}
    )
    """Source kind -> share of the training patches of an epoch (normalised to sum 1); kinds
    with weight 0 are not built. Kinds: ``real-colocated`` (real Sentinel-2 revisits as the
    input and a co-located sharper image as the target, the training sites of
    :mod:`s2scale.pairs.colocated`; their real LR is never re-synthesised), ``real-s2-wald`` (Wald
    pairs of the real Sentinel-2
    scenes in ``$S2SCALE_SHARED_DATA/s2``), ``real-ortho-study`` (real orthophotos, mean filter,
    resampled, histogram-matched to Sentinel-2), ``sim-wald-s2`` (simulated Sentinel-2)."""
    epoch_patches: int = 0
    """Training patches per epoch after mixing (sources are over- or under-sampled to their
    share); 0 uses the number of training patches in the store."""
    lr_patch_px: int = 32
    """LR patch edge (HR patches are ``scale`` times larger)."""
    stride_px: int = 16
    """LR step between patch origins (overlapping patches for small scenes)."""
    val_fraction: float = 0.3
    """East share of every real Sentinel-2 scene held out for validation only (never cut)."""
    guard_px: int = 16
    """10 m pixels between the training part and the held-out part of a real scene."""
    internal_val_fraction: float = 0.1
    """Share of the training parts' spatial blocks used for the loop's own validation."""
    block_px: int = 64
    """LR edge of the spatial split blocks inside the training parts."""
    ortho_pixels_m: tuple[float, ...] = (1.0, 2.0)
    """HR pixel sizes the real orthophotos are mean-filtered and resampled to."""
    ortho_paths: tuple[str, ...] = ()
    """Extra user orthophotos (GeoTIFF, R, G, B uint8) used whole for training."""
    sim_seeds: tuple[int, ...] = (11, 12)
    """Simulator worlds of ``sim-wald-s2``."""
    sim_area_m: float = 2400.0
    """Edge of each simulated window, metres."""
    balance: Literal["patches", "files"] = "patches"
    """How a kind's share is spread over its sources: in proportion to their patches, or in
    equal parts per source file (simulated worlds: per world), so a small scene is not
    drowned by a large one."""
    colocated_dir: str | None = None
    """Folder of co-located sites for ``real-colocated`` (default
    ``$S2SCALE_SHARED_DATA/worldstrat``); only the sites of the ``train`` split are cut."""
    seed: int = 0
    """Seed of the split blocks and of the mixing draw."""

    def __post_init__(self) -> None:
        mix = {str(k): float(v) for k, v in dict(self.mix).items()}
        unknown = sorted(set(mix) - set(SOURCE_KINDS))
        if unknown:
            raise ConfigError(f"unknown data.mix sources {unknown}; known: {list(SOURCE_KINDS)}")
        if any(v < 0 for v in mix.values()) or not sum(mix.values()) > 0:
            raise ConfigError(f"data.mix weights must be >= 0 with a positive sum, got {mix}")
        object.__setattr__(self, "mix", mix)
        for name in ("ortho_pixels_m", "ortho_paths", "sim_seeds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("lr_patch_px", "stride_px", "block_px"):
            if getattr(self, name) < 1:
                raise ConfigError(f"data.{name}={getattr(self, name)} must be >= 1")
        if self.epoch_patches < 0 or self.guard_px < 0:
            raise ConfigError("data.epoch_patches and data.guard_px must be >= 0")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"data.val_fraction={self.val_fraction} must be in (0, 1), e.g. 0.3")
        if not 0 <= self.internal_val_fraction < 1:
            raise ConfigError(
                f"data.internal_val_fraction={self.internal_val_fraction} must be in [0, 1)"
            )
        if self.balance not in ("patches", "files"):
            raise ConfigError(f"data.balance must be 'patches' or 'files', got {self.balance!r}")
        if any(not p > 0 for p in self.ortho_pixels_m):
            raise ConfigError(f"data.ortho_pixels_m={self.ortho_pixels_m} must be > 0 metres")

    @property
    def weights(self) -> dict[str, float]:
        """Mixing weights of the kinds that are built, normalised to sum 1."""
        total = sum(self.mix.values())
        return {k: v / total for k, v in self.mix.items() if v > 0}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataConfig:
        """Build from a mapping, rejecting unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(data) - known)
        if bad:
            raise ConfigError(f"unknown data keys {bad}; known: {sorted(known)}")
        return cls(**data)


def _nested(
    value: Any, cls: type[SensorDegradationConfig] | type[TrainingDegradationConfig], where: str
) -> Any:
    """A frozen degradation config from a YAML mapping (lists -> tuples, unknown keys named)."""
    if not isinstance(value, Mapping):
        return value
    known = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(value) - known)
    if bad:
        raise ConfigError(f"unknown {where} keys {bad}; known: {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`s2scale.train.loop.train`; ``None`` fields come from ``recipe``."""

    arch: str = "realesrgan"
    """Generator registry name: srcnn, srresnet, esrgan, realesrgan or srvgg."""
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    """Generator constructor kwargs, e.g. ``{num_feat: 64, num_block: 23}``."""
    bands: tuple[str, ...] = BANDS
    """Band names in channel order; their count is the model's band count."""
    scale: int = 2
    """Upscaling factor (2 for 10 m -> 5 m)."""
    normalization: dict[str, Any] = field(default_factory=lambda: Normalization().to_dict())
    """``x = (dn - offset) / scale`` as ``{kind, offset, scale}``; stored in the checkpoint."""
    recipe: Literal["esrgan", "realesrgan"] = "realesrgan"
    """Source of the phase-2 defaults, see :data:`RECIPES`."""
    pretrain_steps: int = 1_000_000
    """Phase 1 (L1 only) optimiser steps; 1M in ESRGAN and Real-ESRNet."""
    gan_steps: int = 400_000
    """Phase 2 (pixel + perceptual + GAN) steps; 400k in both papers; 0 stops after phase 1."""
    batch_size: int = 16
    """Patches per step and process."""
    learning_rate: float = 2e-4
    """Adam learning rate of phase 1."""
    gan_learning_rate: float = 1e-4
    """Adam learning rate of generator and discriminator in phase 2."""
    betas: tuple[float, float] = (0.9, 0.99)
    """Adam betas (both papers)."""
    lr_milestones: tuple[int, ...] = ()
    """Steps (counted from the phase start) where the rate is multiplied by ``lr_gamma``."""
    lr_gamma: float = 0.5
    """Learning-rate decay factor at each milestone."""
    pixel_weight: float | None = None
    """Weight of the L1 loss in phase 2 (phase 1 uses 1)."""
    perceptual_weight: float | None = None
    """Weight of the VGG perceptual loss; 0 disables it."""
    perceptual_layers: dict[str, float] | None = None
    """VGG layer weights of the perceptual loss (VGG19 names; with ``vgg16`` VGG16 names, or
    VGG19 names mapped to the last convolution of the same block)."""
    perceptual_weights: str | None = None
    """``vgg19``: path to ``vgg19-dcbb9e9d.pth`` (``None``: the torch hub cache); ``vgg16``: an
    imported ``s2scale-lpips-vgg16-v0.1.pt`` (``None``: the weights cache)."""
    perceptual_backbone: Literal["vgg19", "vgg16", "stlpips-alex", "stlpips-vgg"] = "vgg19"
    """ImageNet VGG19 features (torchvision file), ImageNet VGG16 features (imported offline by
    ``s2scale weights import-lpips``), or the ST-LPIPS distance (shift-tolerant, trained on human
    judgements, no ImageNet weights; ``perceptual_layers`` and ``perceptual_weights`` then
    unused)."""
    perceptual_range: float = 1.0
    """Normalised reflectance mapped to 1.0 (white) before the ImageNet normalisation of the
    VGG input; 0.3 is a true-colour stretch for Sentinel-2."""
    random_backbone: bool = False
    """Use a random VGG for the perceptual loss (smoke tests only; logged and recorded)."""
    lowfreq_weight: float = 0.0
    """Weight of :func:`~s2scale.train.losses.lowfreq_loss` (relative squared error of block
    means, keeps the mean reflectance per band) in both phases; 0 disables it."""
    lowfreq_px: int = 8
    """Block edge of the low-frequency loss, HR pixels."""
    consistency: Literal["off", "gan", "all"] = "off"
    """Train through the consistency projection that ``upscale`` applies by default
    (:class:`~s2scale.train.consistency.ConsistencyProjection`): the losses and the
    discriminator see the projected output in phase 2 (``"gan"``) or in both phases
    (``"all"``), and validation scores the projected output whenever it is not ``"off"``.
    The low-frequency loss stays on the raw output, so the network keeps the mean reflectance
    on its own (``consistency=False``) and its output cannot drift where the projection would
    hide it."""
    gan_weight: float | None = None
    """Weight of the generator's adversarial loss."""
    gan_kind: Literal["relativistic", "vanilla"] | None = None
    """Relativistic average GAN (ESRGAN) or vanilla BCE GAN (Real-ESRGAN)."""
    discriminator: Literal["vgg", "unet"] | None = None
    """Discriminator registry name."""
    discriminator_kwargs: dict[str, Any] = field(default_factory=dict)
    """Discriminator constructor kwargs; ``input_size`` of ``vgg`` defaults to the HR patch size."""
    ema_decay: float | None = None
    """Decay of the generator EMA; 0 disables it."""
    grad_clip: float = 0.0
    """Max global gradient norm per network; 0 disables clipping."""
    degradation: TrainingDegradationConfig | None = None
    """Synthesise LR patches from HR on the fly (Real-ESRGAN); ``None`` uses the given pairs."""
    sensor_degradation: SensorDegradationConfig | None = None
    """Synthesise LR patches from HR on the fly with the Sentinel-2 degradation model
    (:mod:`s2scale.degradation`: band PSFs, misregistration, noise); excludes ``degradation``."""
    data: DataConfig | None = None
    """Training data recipe (:class:`DataConfig`); ``None``: the simulator store of
    :func:`s2scale.train.sources.build_training_data`."""
    augment: bool = True
    """Random flips and 90 degree rotations of the training pairs."""
    seed: int = 0
    """Seed of weights, data order, augmentations and degradations."""
    device: str = "auto"
    """``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"`` or ``"cuda:1"``."""
    amp: Literal["auto", "bf16", "none"] = "auto"
    """Autocast dtype: ``"auto"`` is bf16 on CUDA and off on CPU."""
    validate_every: int = 0
    """Steps between validations; 0 validates at the end of every epoch."""
    checkpoint_every: int = 5000
    """Steps between resumable training checkpoints."""
    log_every: int = 100
    """Steps between training-loss log rows."""
    num_workers: int = 0
    """DataLoader worker processes."""
    val_data_range: float = 1.0
    """Data range of normalised reflectance for validation PSNR/SSIM."""
    output_dir: str = "runs/train"
    """Folder for ``metrics.csv``, TensorBoard events, ``checkpoints/`` and ``generator.pt``."""
    init_checkpoint: str | None = None
    """Generator checkpoint to fine-tune from (same arch and kwargs) instead of the warm start
    of :func:`s2scale.train.recipes.train_shipped`; a relative path is taken from the current
    folder."""

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ConfigError(f"recipe must be one of {sorted(RECIPES)}, got {self.recipe!r}")
        for name, value in RECIPES[self.recipe].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        for name in _TUPLES:
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "arch_kwargs", dict(self.arch_kwargs))
        object.__setattr__(self, "perceptual_layers", dict(self.perceptual_layers or {}))
        if isinstance(self.data, Mapping):
            object.__setattr__(self, "data", DataConfig.from_dict(self.data))
        for name, cls in (("degradation", TrainingDegradationConfig),
                          ("sensor_degradation", SensorDegradationConfig)):  # fmt: skip
            object.__setattr__(self, name, _nested(getattr(self, name), cls, name))
        if self.degradation is not None and self.sensor_degradation is not None:
            raise ConfigError(
                "degradation (Real-ESRGAN) and sensor_degradation (Sentinel-2) exclude each "
                "other; keep one of them"
            )
        Normalization.coerce(self.normalization)
        if not self.bands or not all(isinstance(b, str) for b in self.bands):
            raise ConfigError(f"bands must be a list of band names, got {self.bands!r}")
        for name in ("pretrain_steps", "gan_steps", "validate_every", "num_workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0")
        for name in ("batch_size", "checkpoint_every", "log_every", "scale", "lowfreq_px"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if self.pretrain_steps + self.gan_steps < 1:
            raise ConfigError("pretrain_steps + gan_steps must be >= 1")
        for name in (
            "learning_rate", "gan_learning_rate", "lr_gamma", "val_data_range", "perceptual_range"
        ):  # fmt: skip
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be > 0")
        for name in ("pixel_weight", "perceptual_weight", "gan_weight", "grad_clip",
                     "lowfreq_weight"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if not 0 <= self.ema_decay < 1:  # type: ignore[operator]
            raise ConfigError(f"ema_decay must be in [0, 1) (0 disables it), got {self.ema_decay}")
        if self.gan_kind not in ("relativistic", "vanilla"):
            raise ConfigError(
                f"gan_kind must be 'relativistic' or 'vanilla', got {self.gan_kind!r}"
            )
        if self.discriminator not in ("vgg", "unet"):
            raise ConfigError(f"discriminator must be 'vgg' or 'unet', got {self.discriminator!r}")
        if self.perceptual_backbone not in ("vgg19", "vgg16", "stlpips-alex", "stlpips-vgg"):
            raise ConfigError(
                "perceptual_backbone must be 'vgg19', 'vgg16', 'stlpips-alex' or 'stlpips-vgg', "
                f"got {self.perceptual_backbone!r}"
            )
        if self.perceptual_backbone.startswith("stlpips") and self.perceptual_weights is not None:
            raise ConfigError(
                f"perceptual_weights={self.perceptual_weights!r} is a VGG file, but "
                f"perceptual_backbone={self.perceptual_backbone!r}; unset one of them"
            )
        if self.consistency not in ("off", "gan", "all"):
            bare_off = self.consistency is False
            hint = ' (YAML reads a bare off as false: write "off")' if bare_off else ""
            raise ConfigError(
                f"consistency must be 'off', 'gan' or 'all', got {self.consistency!r}{hint}"
            )
        if self.consistency != "off":
            from s2scale.infer.consistency import band_mtfs

            band_mtfs(self.bands)  # every band needs a nominal PSF: the error names the others
        if self.amp not in ("auto", "bf16", "none"):
            raise ConfigError(f"amp must be 'auto', 'bf16' or 'none', got {self.amp!r}")
        if sorted(self.lr_milestones) != list(self.lr_milestones):
            raise ConfigError(f"lr_milestones must be increasing, got {self.lr_milestones}")

    @property
    def total_steps(self) -> int:
        """``pretrain_steps + gan_steps``."""
        return self.pretrain_steps + self.gan_steps

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists, dicts, numbers, strings), e.g. for a checkpoint summary."""

        def plain(value: Any) -> Any:
            if isinstance(value, tuple | list):
                return [plain(v) for v in value]
            if isinstance(value, Mapping):
                return {str(k): plain(v) for k, v in value.items()}
            return value

        return plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping, rejecting unknown keys (also in nested sections) by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown train config keys {unknown}; known: {sorted(known)}")
        return cls(**dict(data))

    @classmethod
    def from_yaml(cls, path: str | Path, section: str | None = None) -> TrainConfig:
        """Read a YAML file (or its ``section``, e.g. ``"train"`` of a run YAML).

        Raises :class:`~s2scale.errors.ConfigError` for unreadable files, unknown keys (named in
        the message) and invalid values.
        """
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read train config {str(path)!r}: {err}") from err
        if section is not None:
            data = data.get(section) or {} if isinstance(data, dict) else data
        if not isinstance(data, dict):
            raise ConfigError(f"train config {str(path)!r} must be a mapping of keys to values")
        return cls.from_dict(data)
