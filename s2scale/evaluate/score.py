"""Run the models on the inputs and score every output: the numbers of ``report.json``.

Models are given by name: a baseline (:data:`BASELINES`: ``bicubic``, ``lanczos`` and
``bicubic+projection``, the strongest non-learned method: bicubic projected onto the images
consistent with the input by :func:`s2scale.infer.consistency.project_block`), a registry name
whose shipped weights ``s2scale/weights/<name>.pt`` are used, or a checkpoint path; a network
name with the suffix ``:raw`` runs without the consistency projection (``consistency=False``).
Networks run through the same code as ``s2scale upscale``: :func:`s2scale.upscale` for rasters
(halo, feathered sub-tiles), and the block kernel :func:`s2scale.infer.upscale_window_block`
with mirrored context for patches.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from s2scale.errors import CheckpointError, ConfigError
from s2scale.evaluate.data import EvalImage
from s2scale.metrics import RGB_STRETCH, PerceptualMetric
from s2scale.sentinel2 import BANDS, DN_SCALE

if TYPE_CHECKING:
    from s2scale.models import ModelSpec

__all__ = [
    "BASELINES",
    "BICUBIC",
    "LANCZOS",
    "PROJECTED_BICUBIC",
    "RAW_SUFFIX",
    "EvaluateConfig",
    "ModelEntry",
    "aggregate",
    "baseline_dn",
    "resolve_models",
    "run_model",
    "score_output",
    "timed_outputs",
]

log = logging.getLogger(__name__)

BICUBIC = "bicubic"
"""Name of the bicubic baseline (``torch.nn.functional.interpolate``, ``align_corners=False``)."""
LANCZOS = "lanczos"
"""Name of the Lanczos baseline (Pillow's 3-lobe Lanczos on float32 bands)."""
PROJECTED_BICUBIC = "bicubic+projection"
"""Name of bicubic followed by the nominal consistency projection (no network)."""
BASELINES = (BICUBIC, LANCZOS, PROJECTED_BICUBIC)
"""The non-learned methods every quality table carries."""
RAW_SUFFIX = ":raw"
"""Suffix of a network name that turns the consistency projection off (the raw network)."""


@dataclass(frozen=True)
class EvaluateConfig:
    """Options of ``s2scale evaluate``."""

    models: tuple[str, ...] = ("bicubic", "srresnet", "realesrgan")
    """Names as given: ``bicubic``, registry names (shipped weights) or checkpoint paths."""
    skip_missing: bool = False
    """Leave out registry models whose shipped weights are missing (listed under ``skipped``)
    instead of failing."""
    perceptual: Literal["auto", "lpips", "stlpips"] = "auto"
    """LPIPS (fail without weights), ST-LPIPS, or LPIPS with the labelled ST-LPIPS fallback."""
    lpips_net: Literal["alex", "vgg"] = "alex"
    """LPIPS trunk (AlexNet is the study's)."""
    stretch: tuple[float, float] = RGB_STRETCH
    """Reflectance mapped to LPIPS's [-1, 1] (red, green, blue)."""
    border_px: int = 8
    """Output pixels left out along every edge (even)."""
    scale: int = 2
    """Upscaling factor."""
    device: str = "auto"
    """Torch device for the models."""
    tile_px: int = 512
    """GPU sub-tile edge in input px."""
    batch_size: int = 4
    """Sub-tiles per forward pass."""
    crops: int = 3
    """Crops in ``crops.png`` (chosen by content: most texture in the reference)."""
    crop_px: int = 96
    """Edge of a crop in output px."""
    consistency_lowpass_px: float | None = None
    """Strength of the consistency projection of the networks and of ``bicubic+projection``
    (:func:`s2scale.upscale`'s ``consistency_lowpass_px``); None: the package default."""

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("--models is empty; e.g. --models bicubic,srresnet,realesrgan")
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"--models lists a model twice: {list(self.models)}")
        if self.perceptual not in ("auto", "lpips", "stlpips"):
            raise ConfigError(f"perceptual must be auto, lpips or stlpips, got {self.perceptual!r}")
        if self.border_px < 0 or self.border_px % 2:
            raise ConfigError(f"border_px must be even and >= 0, got {self.border_px}")
        if self.scale != 2:
            raise ConfigError(f"only scale=2 generators exist, got scale={self.scale}")
        if self.crops < 0 or self.crop_px < 32:
            raise ConfigError(f"crops must be >= 0 and crop_px >= 32, got {self.crops}, "
                              f"{self.crop_px}")  # fmt: skip


@dataclass(frozen=True)
class ModelEntry:
    """A model to evaluate."""

    name: str
    """As given on the command line."""
    spec: str | None
    """Registry name or checkpoint path for :func:`s2scale.upscale`; None for a baseline."""
    card: dict[str, Any] = field(default_factory=dict)
    """Arch, checkpoint, parameters, size and model card of the weights."""
    consistency: bool = True
    """Run the network with the consistency projection (``upscale``'s default)."""
    baseline: str | None = None
    """One of :data:`BASELINES` when ``spec`` is None."""


def _card(model: ModelSpec) -> dict[str, Any]:
    """What the report says about a checkpoint: arch, parameters, file size, model card."""
    path = Path(str(model.checkpoint))
    card = path.with_suffix(".md")
    title = None
    if card.is_file():
        first = card.read_text().splitlines()[:1]
        title = first[0].lstrip("# ").strip() if first else None
    return {
        "arch": model.arch, "checkpoint": str(path), "parameters": model.parameters,
        "size_mb": round(path.stat().st_size / 1e6, 2), "kwargs": dict(model.kwargs),
        "card": str(card) if card.is_file() else None, "card_title": title,
    }  # fmt: skip


def resolve_models(
    names: Sequence[str], *, skip_missing: bool = False
) -> tuple[list[ModelEntry], dict[str, str]]:
    """Resolve model names to entries; returns ``(entries, skipped {name: reason})``.

    Networks are resolved by :func:`s2scale.models.resolve_model`; this adds the baselines, the
    ``:raw`` suffix and leaving out registry models without shipped weights.

    Raises
    ------
    CheckpointError
        A registry model without shipped weights (unless ``skip_missing``), or a missing or
        invalid checkpoint path.
    ConfigError
        An unknown name that is not a path.
    """
    from s2scale.models.spec import is_registry_name, resolve_model, weights_path

    entries, skipped = [], {}
    for given in names:
        if given in BASELINES:
            entries.append(ModelEntry(name=given, spec=None, baseline=given,
                                      card={"arch": given, "parameters": 0}))  # fmt: skip
            continue
        raw = given.endswith(RAW_SUFFIX)
        name = given[: -len(RAW_SUFFIX)] if raw else given
        missing = is_registry_name(name) and not weights_path(name).is_file()
        if missing and skip_missing:
            log.warning("skipping %s: no shipped weights at %s", name, weights_path(name))
            skipped[name] = f"no shipped weights at {weights_path(name)}"
            continue
        try:
            model = resolve_model(name)
        except ConfigError as err:
            raise ConfigError(
                f"{err}, or a baseline ({', '.join(BASELINES)}); each network optionally with "
                f"{RAW_SUFFIX!r} (no projection)"
            ) from err
        except CheckpointError as err:
            if missing:
                raise CheckpointError(f"{err}; or add --skip-missing to leave it out") from err
            raise
        spec = name if is_registry_name(name) else str(Path(name))
        entries.append(ModelEntry(name=given, spec=spec, card=_card(model), consistency=not raw))
    return entries, skipped


# ------------------------------------------------------------------------------ running
def _lanczos(img: np.ndarray, scale: int) -> np.ndarray:
    """Pillow's Lanczos (3 lobes) of each ``(C, H, W)`` band, float64."""
    from PIL import Image

    h, w = img.shape[-2:]
    return np.stack([
        np.asarray(Image.fromarray(np.ascontiguousarray(b, np.float32), mode="F")
                   .resize((w * scale, h * scale), Image.Resampling.LANCZOS), np.float64)
        for b in img
    ])  # fmt: skip


def baseline_dn(
    lr: np.ndarray, method: str, scale: int = 2, *, lowpass_px: float | None = None
) -> np.ndarray:
    """A non-learned upsampling of ``(C, H, W)`` DN, rounded to uint16, 0 under no data.

    ``method`` is one of :data:`BASELINES`. No-data pixels are filled from their neighbours
    (:func:`s2scale.infer.nodata.fill_nodata`) before interpolating, as :func:`s2scale.upscale`
    does before its network; ``bicubic+projection`` projects the bicubic image onto the images
    that the nominal Sentinel-2 operator maps to the (filled) input, over the whole image with
    mirrored borders, with the projection strength ``lowpass_px`` (default the package's, as
    :func:`s2scale.upscale`).

    Examples
    --------
    >>> lr = np.full((4, 8, 8), 1200, np.uint16)
    >>> [int(baseline_dn(lr, m).max()) for m in BASELINES]
    [1200, 1200, 1200]
    """
    from s2scale.infer.consistency import band_mtfs, coerce_lowpass_px, project_block
    from s2scale.infer.nodata import fill_nodata
    from s2scale.metrics import upsample_bicubic

    if method not in BASELINES:
        raise ConfigError(f"unknown baseline {method!r}; choose from {list(BASELINES)}")
    valid = np.all(lr > 0, axis=0)
    filled = fill_nodata(lr, valid, max(lr.shape[-2:])).astype(np.float64)
    if method == LANCZOS:
        up = _lanczos(filled, scale)
    else:
        up = upsample_bicubic(filled, scale)
    if method == PROJECTED_BICUBIC:
        up = project_block(
            up.astype(np.float32),
            filled.astype(np.float32),
            scale=scale,
            mtfs=band_mtfs(BANDS),
            lowpass_px=coerce_lowpass_px(lowpass_px),
        )
    mask = np.repeat(np.repeat(valid, scale, axis=0), scale, axis=1)
    return np.where(mask, np.clip(np.rint(up), 1, 65535), 0).astype(np.uint16)


def run_model(
    entry: ModelEntry, images: Sequence[EvalImage], cfg: EvaluateConfig, *, patches: bool = False
) -> Iterable[np.ndarray]:
    """Yield the ``(band, Y, X)`` uint16 output of ``entry`` for each image, in order.

    Rasters go through :func:`s2scale.upscale` (computed with the synchronous scheduler);
    ``patches=True`` runs each small image through the block kernel
    :func:`s2scale.infer.upscale_window_block` with mirrored context, as at an array edge.
    """
    if entry.spec is None:
        for im in images:
            yield baseline_dn(np.asarray(im.lr.values), entry.baseline or BICUBIC, cfg.scale,
                              lowpass_px=cfg.consistency_lowpass_px)  # fmt: skip
        return
    import s2scale
    from s2scale.infer import prepare_model, upscale_window_block

    if not images:
        return
    setup = prepare_model(entry.spec, bands=tuple(im_bands(images)), device=cfg.device,
                          tile_px=cfg.tile_px, batch_size=cfg.batch_size,
                          consistency=entry.consistency,
                          consistency_lowpass_px=cfg.consistency_lowpass_px)  # fmt: skip
    for im in images:
        # A raster smaller than the model's halo cannot be one Dask chunk with that halo: it
        # goes through the block kernel with mirrored context, like patches.
        if not patches and min(im.lr.shape[-2:]) >= setup.halo_px:
            with warnings.catch_warnings():
                # pyproj's CF export of oblique Mercator CRSs (e.g. EPSG:2056) warns that it
                # drops a parameter; the result keeps the full WKT and only its pixels are used.
                warnings.filterwarnings("ignore", message=".*lost in conversion to CF",
                                        category=UserWarning)  # fmt: skip
                sr = s2scale.upscale(im.lr, entry.spec, device=cfg.device, tile_px=cfg.tile_px,
                                     batch_size=cfg.batch_size,
                                     consistency=entry.consistency,
                                     consistency_lowpass_px=cfg.consistency_lowpass_px)  # fmt: skip
            yield np.asarray(sr.data.compute(scheduler="synchronous"))
        else:
            halo = setup.halo_px
            yield upscale_window_block(np.asarray(im.lr.values), predict=setup.predictor,
                                       margin=halo, scale=setup.scale,
                                       pad=(halo, halo, halo, halo))  # fmt: skip


def im_bands(images: Sequence[EvalImage]) -> list[str]:
    """Band names of the inputs (all images share them)."""
    return [str(b) for b in images[0].lr["band"].values]


# ------------------------------------------------------------------------------ scoring
def score_output(
    sr_dn: np.ndarray,
    lr_dn: np.ndarray | None,
    hr_dn: np.ndarray | None,
    *,
    perceptual: PerceptualMetric | None,
    cfg: EvaluateConfig,
    degrade: Callable[[np.ndarray, int], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Scores of one output against its reference (if any) and its input (if any).

    :func:`s2scale.metrics.score_image` on DN (``dn_scale`` 10000, 0 = no data) with the
    border, scale and stretch of ``cfg``; its keys (:data:`s2scale.metrics.SCORE_KEYS`) are the
    report's.

    Parameters
    ----------
    sr_dn
        ``(band, Y, X)`` uint16 output DN (0 = no data).
    lr_dn
        ``(band, Y / scale, X / scale)`` uint16 input DN, or None (no consistency checks).
    hr_dn
        ``(band, Y, X)`` uint16 reference DN, or None (no full-reference scores).
    perceptual
        LPIPS (or ST-LPIPS) to score the RGB bands with, or None.
    cfg
        Border, scale and stretch.
    degrade
        Degradation for consistency (default the nominal Sentinel-2 one).

    Returns
    -------
    dict
        Full reference: ``psnr_db``, ``ssim``, ``lpips`` (or ``stlpips``), ``bias_pct`` (per
        band), ``bias_max_abs_pct``, ``spectral_angle_deg``. With an input:
        ``consistency_psnr_db``, ``consistency_mae``, ``consistency_bias_pct``,
        ``spectral_angle_vs_lr_deg``, ``hf_energy``, ``hf_energy_ratio``. Empty without both.
    """
    from s2scale.metrics import score_image

    if hr_dn is None and lr_dn is None:
        return {}
    return score_image(sr_dn, hr_dn, lr_dn, border_px=cfg.border_px, scale=cfg.scale,
                       dn_scale=DN_SCALE, perceptual=perceptual, stretch=cfg.stretch,
                       degrade=degrade)  # fmt: skip


def aggregate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean (key) and standard deviation (``<key>_std``) of score dicts; ``n`` is the count.

    List values (per band) are averaged element-wise; infinite PSNRs are kept out of the mean.
    """
    if not rows:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(rows)}
    for key in rows[0]:
        values = [r[key] for r in rows if key in r]
        if isinstance(values[0], list):
            arr = np.asarray(values, np.float64)
            out[key] = [float(v) for v in np.nanmean(arr, axis=0)]
            out[f"{key}_std"] = [float(v) for v in np.nanstd(arr, axis=0)]
        else:
            arr = np.asarray([v for v in values if math.isfinite(v)], np.float64)
            out[key] = float(arr.mean()) if arr.size else math.inf
            out[f"{key}_std"] = float(arr.std()) if arr.size else 0.0
    return out


def timed_outputs(
    entry: ModelEntry, images: Sequence[EvalImage], cfg: EvaluateConfig, *, patches: bool = False
) -> tuple[list[np.ndarray], float]:
    """All outputs of ``entry`` and the seconds they took."""
    t0 = time.perf_counter()
    outs = list(run_model(entry, images, cfg, patches=patches))
    return outs, time.perf_counter() - t0
