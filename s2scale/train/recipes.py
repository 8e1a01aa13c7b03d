"""Recipes of the shipped generators: their training data, training run and evaluation.

:func:`build_training_data` writes a patch store (:mod:`s2scale.pairs`) from data this repository
can produce offline, per simulator seed (a different world each):

- ``sim-study-truth``: simulated Sentinel-2 10 m (clear sky, harmonised DN) vs the 5 m truth;
- ``sim-study-ortho``: the same LR vs the simulated 1 m orthophoto, area-averaged onto the nested
  5 m grid and histogram-matched to the Sentinel-2 image per band (the reference study's pairs);
- ``sim-wald-s2``: Wald's protocol on the simulated Sentinel-2 10 m image (10 m -> 20 m) with a
  random Gaussian PSF (sigma drawn in LR pixels), random noise, several variants per area;

plus, when ``include_real_ortho`` and ``$S2SCALE_SHARED_DATA/orthophoto`` exists,
``real-ortho-wald``: the real Zürich RGB orthophoto (0.5 m) area-averaged to nominal 1.5 m and
2.5 m pixels, turned into pseudo-reflectance with a SYNTHETIC NIR band (see
:func:`ortho_to_reflectance`), as Wald pairs.
Training patches also get a random per-band gain (same on LR and HR) for radiometric diversity.
Flips and rotations are applied on the fly by :class:`~s2scale.train.data.PairDataset`.

:func:`train_shipped` trains ``s2scale/configs/train/<name>.yaml`` on that store, evaluates against
bicubic on a held-out simulator seed and on held-out real orthophoto (simulated LR), and saves the
fp16 checkpoint with its training summary. Command line::

    python -m s2scale.train.recipes srresnet --out s2scale/weights
    python -m s2scale.train.recipes realesrgan --out s2scale/weights
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from s2scale.errors import ConfigError
from s2scale.grid import TargetGrid
from s2scale.pairs import (
    PatchSet,
    make_pairs,
    match_histograms_block,
    nested_grid,
    orthophoto_to_hr,
    read_orthophoto,
    read_patch_store,
    wald_pairs,
    write_patch_store,
)
from s2scale.sentinel2 import BANDS, DN_SCALE, to_reflectance

__all__ = [
    "CONFIG_DIR",
    "DEFAULT_SEEDS",
    "HELD_OUT_SEED",
    "SHARED_DATA_ENV",
    "bicubic",
    "build_training_data",
    "evaluate_generator",
    "heldout_real_ortho",
    "heldout_scene",
    "ortho_to_reflectance",
    "train_shipped",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
"""Where the package lies; only asked for its git commit (model card provenance)."""
CONFIG_DIR = Path(str(resources.files("s2scale"))) / "configs" / "train"
"""Where ``<name>.yaml`` of the shipped generators live (package data)."""
SHARED_DATA_ENV = "S2SCALE_SHARED_DATA"
"""Environment variable naming the folder of real reference data (``orthophoto/``, ``s2/``)."""


def real_ortho_dir() -> Path | None:
    """The real orthophotos: ``$S2SCALE_SHARED_DATA/orthophoto``, or None when it is not set."""
    root = os.environ.get(SHARED_DATA_ENV)
    return Path(root) / "orthophoto" if root else None


DEFAULT_SEEDS: tuple[int, ...] = (11, 12, 13, 14, 15, 16)
"""Simulator worlds used for training."""
HELD_OUT_SEED = 99
"""Simulator world used only for the model cards' evaluation (never trained on)."""
TRAIN_ORTHO = {"ref-img.tif": None, "1091-322_00_big.tif": (0.0, 0.6)}
"""Real orthophotos used for training: whole file (None) or the x-fraction range kept."""
HELD_OUT_ORTHO = ("1091-322_00_big.tif", (0.6, 1.0))
"""Held-out part of the real orthophoto (its east 40 %), for evaluation only."""
_REF_LONLAT = (12.0, 47.49)  # simulated worlds are sampled around the built-in sample
Progress = Callable[[Iterable[Any]], Iterable[Any]]


# ------------------------------------------------------------------------------ scene sources
def _window(seed: int, size_m: float) -> TargetGrid:
    """A 10 m UTM 33N window of ``size_m`` on the 60 m lattice, placed at random by ``seed``."""
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 32633, always_xy=True).transform(*_REF_LONLAT)
    rng = np.random.default_rng([seed, 7])
    cx, cy = x + rng.uniform(-6000, 6000), y + rng.uniform(-6000, 6000)
    x0, y0 = math.floor(cx / 60) * 60, math.floor(cy / 60) * 60
    size = math.ceil(size_m / 60) * 60
    return TargetGrid("EPSG:32633", 10.0, (x0, y0 - size, x0 + size, y0))


def _landscape(seed: int, grid: TargetGrid) -> Any:
    """The world of ``seed``, with an extra town inside the window half of the time."""
    from pyproj import Transformer

    from s2scale.sim import WORLD_CRS, Landscape

    rng = np.random.default_rng([seed, 8])
    towns = list(Landscape().towns)
    if rng.random() < 0.6:
        b = grid.bounds
        tx, ty = Transformer.from_crs(grid.crs, WORLD_CRS, always_xy=True).transform(
            rng.uniform(b[0], b[2]), rng.uniform(b[1], b[3])
        )
        towns.append((float(tx), float(ty), float(rng.uniform(300, 900))))
    return Landscape(seed=seed, towns=tuple(towns))


def _simulate_s2(landscape: Any, grid: TargetGrid, seed: int) -> tuple[np.ndarray, Any]:
    """Clear-sky simulated S2 10 m harmonised DN ``(4, rows, cols)`` uint16 and its layers."""
    from s2scale.sim import SceneSpec, scene_layers, simulate_scene

    rng = np.random.default_rng([seed, 9])
    when = datetime(2024, 6, 1, 10, 15) + (datetime(2024, 9, 1) - datetime(2024, 6, 1)) * float(
        rng.random()
    )
    layers = scene_layers(landscape, grid)
    spec = SceneSpec(when, cloud_cover=0.0)
    scene = simulate_scene(landscape, grid, spec, seed=seed, layers=layers)
    dn = np.stack([scene.bands[b] for b in BANDS]).astype(np.int32)
    harmonised = np.where(dn > 0, np.clip(dn - spec.offset, 1, 65535), 0).astype(np.uint16)
    return harmonised, layers


def _sim_ortho_hr(landscape: Any, grid: TargetGrid, s2_dn: np.ndarray, seed: int) -> np.ndarray:
    """Simulated 1 m EPSG:31287 orthophoto -> nested 5 m grid -> histogram-matched uint16 DN."""
    from rasterio.warp import transform_bounds

    from s2scale.sim import render_orthophoto

    b = transform_bounds(grid.crs, "EPSG:31287", *grid.bounds, densify_pts=21)
    bounds = (math.floor(b[0]) - 5, math.floor(b[1]) - 5, math.ceil(b[2]) + 5, math.ceil(b[3]) + 5)
    ortho_grid = TargetGrid("EPSG:31287", 1.0, bounds)
    ortho = render_orthophoto(landscape, ortho_grid, seed=seed)  # R, G, B, NIR uint8
    hr = orthophoto_to_hr(ortho, ortho_grid.transform, ortho_grid.crs, nested_grid(grid))
    hr = hr[[2, 1, 0, 3]]  # -> blue, green, red, nir
    matched = match_histograms_block(np.nan_to_num(hr, nan=0.0), s2_dn, nodata=0)
    return np.clip(np.round(matched), 0, 65535).astype(np.uint16)


def ortho_to_reflectance(rgb: np.ndarray) -> np.ndarray:
    """8-bit RGB orthophoto -> pseudo surface reflectance (blue, green, red, SYNTHETIC nir).

    Visible bands: ``0.5 * (dn / 255) ** 2.2`` (undo a display gamma, scale to the range of
    surface reflectance). NIR does not exist in the RGB orthophoto; it is synthesised from a
    greenness index ``veg = clip(4 (G - max(R, B)) / G, 0, 1)``:
    ``nir = (1 - veg) (1.1 mean(vis) + 0.02) + veg (0.25 + 2 G)`` (vegetation bright, water and
    built-up dark). It gives plausible NIR texture, not a measurement.

    Parameters
    ----------
    rgb
        ``(3, y, x)`` uint8 red, green, blue (or float in 0..255).

    Returns
    -------
    numpy.ndarray
        float32 ``(4, y, x)`` reflectance in blue, green, red, nir order, in ``[0, 1]``.

    Examples
    --------
    >>> refl = ortho_to_reflectance(np.full((3, 1, 1), 255, np.uint8))
    >>> [round(float(v), 3) for v in refl[:, 0, 0]]
    [0.5, 0.5, 0.5, 0.57]
    """
    vis = 0.5 * (np.asarray(rgb, np.float32) / 255.0) ** 2.2
    r, g, b = vis
    veg = np.clip(4.0 * (g - np.maximum(r, b)) / (g + 1e-6), 0.0, 1.0)
    nir = (1 - veg) * (1.1 * vis.mean(0) + 0.02) + veg * (0.25 + 2.0 * g)
    return np.clip(np.stack([b, g, r, nir]), 0.0, 1.0).astype(np.float32)


def _real_ortho_image(
    path: Path, x_range: tuple[float, float] | None, pixel_m: float
) -> np.ndarray:
    """Pseudo-reflectance of (part of) a real orthophoto, area-averaged to ``pixel_m``."""
    from s2scale.pairs import area_downsample

    rgb, transform, _, _ = read_orthophoto(path)
    if x_range is not None:
        w = rgb.shape[2]
        rgb = rgb[:, :, int(x_range[0] * w) : int(x_range[1] * w)]
    factor = round(pixel_m / abs(transform.a))
    refl = ortho_to_reflectance(rgb)
    return area_downsample(refl, factor) if factor > 1 else refl


def _wald_patchsets(
    hr_dn: np.ndarray,
    *,
    kind: str,
    name: str,
    rng: np.random.Generator,
    variants: int,
    psf_sigma_range: tuple[float, float],
    noise_range: tuple[float, float],
    lr_patch_px: int,
    stride_px: int,
    block_px: int,
    seed: int,
    fractions: Sequence[float],
    extra: dict[str, Any],
) -> list[PatchSet]:
    """Wald pairs of one uint16 image, ``variants`` times with random PSF and noise."""
    out = []
    for v in range(variants):
        sigma = float(rng.uniform(*psf_sigma_range))
        noise = float(rng.uniform(*noise_range))
        lr, hr = wald_pairs(hr_dn, 2, sigma, noise_sigma=noise * DN_SCALE, rng=rng)
        out.append(
            make_pairs(
                lr,
                hr,
                lr_patch_px=lr_patch_px,
                stride_px=stride_px,
                ssim_threshold=None,  # consistent by construction
                block_px=block_px,
                fractions=fractions,
                seed=seed,
                source={
                    "kind": kind,
                    "name": f"{name}/v{v}",
                    "psf_sigma_lr_px": round(sigma, 4),
                    "noise_sigma_reflectance": round(noise, 5),
                    **extra,
                },
            )
        )
    return out


def _gain_augment(
    patches: PatchSet, rng: np.random.Generator, gain_range: tuple[float, float]
) -> None:
    """Multiply train patches by a random gain per patch and band (same for LR and HR), in place."""
    train = np.flatnonzero(patches.split == 0)
    if not len(train) or gain_range == (1.0, 1.0):
        return
    bands = patches.lr.shape[1]
    overall = rng.uniform(*gain_range, size=(len(train), 1))
    per_band = rng.uniform(0.92, 1.08, size=(len(train), bands))  # band ratios vary less
    gain = (overall * per_band)[:, :, None, None]
    for name in ("lr", "hr"):
        arr = getattr(patches, name)
        arr[train] = np.clip(np.round(arr[train] * gain), 1, 65535).astype(np.uint16)


def build_training_data(
    out_store: str | Path,
    *,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    include_real_ortho: bool = True,
    include_sim_ortho: bool = True,
    area_m: float = 2880.0,
    wald_area_m: float = 4800.0,
    lr_patch_px: int = 48,
    stride_px: int = 32,
    block_m: float = 960.0,
    wald_variants: int = 2,
    psf_sigma_range: tuple[float, float] = (0.0, 0.75),
    noise_range: tuple[float, float] = (0.0, 0.003),
    gain_range: tuple[float, float] = (0.75, 1.3),
    ssim_threshold: float = 0.5,
    fractions: Sequence[float] = (0.85, 0.15, 0.0),
    ortho_dir: str | Path | None = None,
    real_ortho_pixels_m: Sequence[float] = (1.0, 1.5, 2.5),
    augment_seed: int = 0,
    progress: Progress | None = None,
) -> Path:
    """Write the shipped generators' training patch store (see the module docstring).

    Parameters
    ----------
    out_store
        Zarr v3 store to (over)write.
    seeds
        Simulator worlds (:class:`~s2scale.sim.Landscape` seeds); keep :data:`HELD_OUT_SEED`
        out of it.
    include_real_ortho
        Add Wald pairs of the real Zürich orthophoto (pseudo-reflectance, synthetic NIR) if
        ``ortho_dir`` exists; skipped with a warning otherwise.
    include_sim_ortho
        Add the study-style pairs from the simulated orthophoto (slowest part of the build).
    area_m, wald_area_m
        Edge of the simulated window for the study-style pairs and for the Wald pairs (metres);
        both windows share their top-left corner, so split blocks coincide.
    lr_patch_px, stride_px
        LR patch edge and stride (HR patches are twice as large). 48 (not the study's 96) keeps
        CPU training affordable; the generators are fully convolutional.
    block_m
        Edge of the spatial split blocks in metres.
    wald_variants
        Degraded copies of each Wald image (different PSF sigma and noise).
    psf_sigma_range
        Range of the Gaussian PSF sigma of the Wald pairs, in LR pixels (0 = plain area mean).
    noise_range
        Range of the Gaussian noise sigma added to the Wald LR, in reflectance.
    gain_range
        Range of the random overall gain of train patches (times a per-band factor 0.92-1.08).
    ssim_threshold
        SSIM filter of the study-style pairs.
    fractions
        Train/val/test shares of the spatial blocks (test is a separate seed, so 0 here).
    ortho_dir
        Folder of the real orthophotos; default :data:`REAL_ORTHO_DIR`.
    real_ortho_pixels_m
        Nominal HR pixel sizes the real orthophoto is area-averaged to.
    augment_seed
        Seed of the Wald draws and the gain augmentation.
    progress
        Wraps the iterable of seeds, e.g. ``tqdm.tqdm``.

    Returns
    -------
    pathlib.Path
        The store; its attrs list every source with its provenance.
    """
    if not seeds:
        raise ConfigError("build_training_data needs at least one simulator seed")
    if HELD_OUT_SEED in seeds:
        log.warning(
            "seed %d is the held-out evaluation seed; its scores are not held out", HELD_OUT_SEED
        )
    from s2scale.sim import to_dn

    rng = np.random.default_rng(augment_seed)
    parts: list[PatchSet] = []
    t0 = time.perf_counter()
    common = {"lr_patch_px": lr_patch_px, "stride_px": stride_px, "fractions": fractions}
    for seed in progress(seeds) if progress else seeds:
        big = _window(seed, max(area_m, wald_area_m))
        b = big.bounds
        grid = TargetGrid(
            big.crs,
            10.0,
            (b[0], b[3] - math.ceil(area_m / 60) * 60, b[0] + math.ceil(area_m / 60) * 60, b[3]),
        )
        landscape = _landscape(seed, big)
        s2_big, layers = _simulate_s2(landscape, big, seed)
        rows, cols = grid.shape
        s2 = s2_big[:, :rows, :cols]  # the two windows share their top-left corner
        layers_truth = to_dn(layers.truth())[:, : 2 * rows, : 2 * cols]
        where = {"seed": seed, "crs": grid.crs, "bounds": list(grid.bounds)}
        parts.append(
            make_pairs(
                s2,
                layers_truth,
                ssim_threshold=ssim_threshold,
                block_px=round(block_m / 10),
                seed=seed,
                source={"kind": "sim-study-truth", "name": f"sim{seed}/truth", **where},
                **common,
            )
        )
        if include_sim_ortho:
            hr = _sim_ortho_hr(landscape, grid, s2, seed)
            parts.append(
                make_pairs(
                    s2,
                    hr,
                    ssim_threshold=ssim_threshold,
                    block_px=round(block_m / 10),
                    seed=seed,
                    source={
                        "kind": "sim-study-ortho",
                        "name": f"sim{seed}/ortho",
                        **where,
                        "ortho": "simulated 1 m EPSG:31287, area-averaged, hist-matched",
                    },
                    **common,
                )
            )
        parts += _wald_patchsets(
            s2_big,
            kind="sim-wald-s2",
            name=f"sim{seed}/wald",
            rng=rng,
            variants=wald_variants,
            psf_sigma_range=psf_sigma_range,
            noise_range=noise_range,
            block_px=round(block_m / 20),
            seed=seed,
            extra={"seed": seed, "crs": big.crs, "bounds": list(big.bounds), "hr_m": 10},
            **common,
        )
        log.info("training data: seed %d done (%.0fs)", seed, time.perf_counter() - t0)
    if include_real_ortho:
        folder = Path(ortho_dir) if ortho_dir is not None else real_ortho_dir()
        if folder is None or not folder.is_dir():
            log.warning("real orthophoto folder %s is absent (set %s); training without it",
                        folder, SHARED_DATA_ENV)  # fmt: skip
        else:
            for fname, x_range in TRAIN_ORTHO.items():
                path = folder / fname
                if not path.is_file():
                    log.warning("real orthophoto %s is absent; skipped", path)
                    continue
                for pixel_m in real_ortho_pixels_m:
                    hr = to_dn(_real_ortho_image(path, x_range, pixel_m))
                    parts += _wald_patchsets(
                        hr,
                        kind="real-ortho-wald",
                        name=f"{fname}@{pixel_m}m",
                        rng=rng,
                        variants=wald_variants + 1,
                        psf_sigma_range=psf_sigma_range,
                        noise_range=noise_range,
                        block_px=10**6,
                        seed=0,
                        extra={
                            "file": fname,
                            "x_range": x_range,
                            "hr_pixel_m": pixel_m,
                            "nir": "SYNTHETIC from RGB greenness",
                            "licence": "OGD Kanton Zürich",
                        },
                        lr_patch_px=lr_patch_px,
                        stride_px=max(8, stride_px // 2),
                        fractions=(1.0, 0.0, 0.0),
                    )
    patches = PatchSet.concat(parts)
    _gain_augment(patches, rng, gain_range)
    provenance = {
        "builder": "s2scale.train.recipes.build_training_data",
        "seeds": list(seeds),
        "held_out_seed": HELD_OUT_SEED,
        "lr_patch_px": lr_patch_px,
        "stride_px": stride_px,
        "block_m": block_m,
        "psf_sigma_range_lr_px": list(psf_sigma_range),
        "noise_range_reflectance": list(noise_range),
        "gain_range_train": list(gain_range),
        "wald_variants": wald_variants,
        "ssim_threshold_study_pairs": ssim_threshold,
        "augment_seed": augment_seed,
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    return write_patch_store(out_store, patches, bands=BANDS, scale=2, provenance=provenance)


# ----------------------------------------------------------------------------- evaluation
def bicubic(lr: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """Bicubic upsampling of ``(N, C, h, w)`` (``align_corners=False``), the baseline."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)


def heldout_scene(
    seed: int = HELD_OUT_SEED, *, size_m: float = 2880.0, wald: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """A simulated evaluation pair in reflectance ``(lr (4, h, w), hr (4, 2h, 2w))`` float32.

    ``wald=False``: the study's task, simulated S2 10 m (clear sky) -> 5 m truth. ``wald=True``:
    Wald's protocol on the simulated S2 10 m image (Gaussian PSF sigma 0.55 LR px + 2x2 mean to
    20 m, no added noise), as the real-S2 check does.
    """
    grid = _window(seed, size_m)
    landscape = _landscape(seed, grid)
    s2, layers = _simulate_s2(landscape, grid, seed)
    if wald:
        lr, hr = wald_pairs(s2, 2, 0.55)
    else:
        from s2scale.sim import to_dn

        lr, hr = s2, to_dn(layers.truth())
    return to_reflectance(lr), to_reflectance(hr)


def heldout_real_ortho(
    pixel_m: float = 5.0, *, ortho_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Held-out real Zürich orthophoto pair (SIMULATED LR), reflectance; ``None`` if absent.

    The east 40 % of ``1091-322_00_big.tif`` (never trained on), pseudo-reflectance with
    synthetic NIR, area-averaged to ``pixel_m`` (HR) and degraded by Wald's protocol (PSF sigma
    0.55 LR px + 2x2 mean) to the LR.
    """
    folder = Path(ortho_dir) if ortho_dir is not None else real_ortho_dir()
    path = folder / HELD_OUT_ORTHO[0] if folder is not None else None
    if path is None or not path.is_file():
        return None
    hr = _real_ortho_image(path, HELD_OUT_ORTHO[1], pixel_m)
    lr, hr = wald_pairs(hr, 2, 0.55)
    return lr, hr


@torch.no_grad()
def _upscale(model: nn.Module, lr: np.ndarray) -> np.ndarray:
    """Run ``model`` on one ``(C, h, w)`` reflectance image (float32, CPU).

    The image is reflect-padded to even sizes (the Real-ESRGAN x2 layout pixel-unshuffles by 2)
    and the output cropped back.
    """
    x = torch.from_numpy(np.ascontiguousarray(lr, np.float32))[None]
    h, w = x.shape[-2:]
    x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    scale = int(getattr(model, "scale", 2))
    return model(x)[0, :, : h * scale, : w * scale].float().numpy()


def evaluate_generator(
    model: nn.Module | None,
    lr: np.ndarray,
    hr: np.ndarray,
    *,
    border_px: int = 8,
    stlpips: bool = True,
    stlpips_model: nn.Module | None = None,
) -> dict[str, float]:
    """PSNR, SSIM (data range 1 on reflectance) and ST-LPIPS of ``model`` (or bicubic if None).

    ``lr`` ``(C, h, w)`` and ``hr`` ``(C, 2h, 2w)`` are float reflectance; ``border_px`` HR pixels
    are cropped on every side before scoring. ST-LPIPS (shift-tolerant, AlexNet-shaped,
    human-judgement-trained; :func:`s2scale.metrics.stlpips_score`) uses the RGB bands with
    reflectance ``[0, 1]`` mapped to ``[-1, 1]``; it needs >= 32 px after cropping.
    """
    from s2scale.metrics import psnr, ssim, stlpips_score

    if model is None:
        sr = bicubic(torch.from_numpy(np.ascontiguousarray(lr, np.float32))[None])[0].numpy()
    else:
        sr = _upscale(model, lr)
    sr = np.clip(sr, 0.0, 1.0)
    b = border_px
    sr, ref = (
        sr[:, b : sr.shape[1] - b, b : sr.shape[2] - b],
        hr[:, b : hr.shape[1] - b, b : hr.shape[2] - b],
    )
    out = {"psnr": psnr(sr, ref, 1.0), "ssim": ssim(sr, ref, 1.0)}
    if stlpips and min(sr.shape[1:]) >= 32:
        out["stlpips_alex"] = stlpips_score(sr, ref, net="alex", model=stlpips_model).value
    return {k: round(float(v), 5) for k, v in out.items()}


def evaluate_all(model: nn.Module, *, seed: int = HELD_OUT_SEED) -> dict[str, Any]:
    """Model and bicubic scores on the held-out simulator seed and the held-out real orthophoto."""
    from s2scale.metrics import load_stlpips

    net = load_stlpips("alex")
    cases: dict[str, tuple[np.ndarray, np.ndarray] | None] = {
        f"sim{seed}_s2_to_truth": heldout_scene(seed),
        f"sim{seed}_wald_s2_10m_to_20m": heldout_scene(seed, wald=True),
        "zurich_real_ortho_5m_simulated_lr": heldout_real_ortho(5.0),
        "zurich_real_ortho_2.5m_simulated_lr": heldout_real_ortho(2.5),
    }
    out: dict[str, Any] = {}
    for name, pair in cases.items():
        if pair is None:
            out[name] = f"skipped: no orthophotos (set {SHARED_DATA_ENV})"
            continue
        lr, hr = pair
        out[name] = {
            "model": evaluate_generator(model, lr, hr, stlpips_model=net),
            "bicubic": evaluate_generator(None, lr, hr, stlpips_model=net),
            "hr_shape": list(hr.shape),
        }
    return out


# ------------------------------------------------------------------------------- training
@torch.no_grad()
def warm_start(model: nn.Module) -> nn.Module:
    """Initialise a generator close to a plain interpolator, so L1 training starts from there.

    Short CPU runs cannot afford the thousands of steps a randomly initialised network needs to
    reproduce absolute reflectance levels; starting from an interpolator, training only has to
    learn the high-frequency correction. Extra channels keep their random initialisation and the
    residual branches start at zero (like zero-init residuals, Goyal et al. 2017).

    - ``srresnet`` (x2): exactly bilinear upsampling at initialisation (identity ``conv_first``,
      zero ``bn_body`` gain, identity sub-pixel convolution, ``conv_last`` = nearest neighbour
      followed by the ``[1, 2, 1]`` tent, which is bilinear for x2); valid for inputs >= 0.
    - ``realesrgan`` (x2, pixel-unshuffle layout): the mean of each 2x2 block (the
      pixel-unshuffled sub-pixels) upsampled by nearest neighbour and a tent filter (a blurred
      interpolator: a shift-invariant net cannot undo the unshuffle's phase at initialisation).
    """
    arch, bands = getattr(model, "arch", None), int(getattr(model, "bands", 4))
    if arch == "srresnet" and model.scale == 2:
        nf = model.conv_first.out_channels
        if nf < bands:
            raise ConfigError(f"warm_start needs num_feat >= {bands}, got {nf}")
        w = model.conv_first.weight
        w[:bands].zero_()
        model.conv_first.bias[:bands].zero_()
        for i in range(bands):
            w[i, i, 4, 4] = 1.0
        model.bn_body.weight.zero_()
        model.bn_body.bias.zero_()
        up = model.upsample[0][0]
        for i in range(bands):
            up.weight[i * 4 : i * 4 + 4].zero_()
            up.bias[i * 4 : i * 4 + 4].zero_()
            up.weight[i * 4 : i * 4 + 4, i, 1, 1] = 1.0
        tent = torch.tensor([1.0, 2.0, 1.0]) / 4
        model.conv_last.weight.zero_()
        model.conv_last.bias.zero_()
        for i in range(bands):
            model.conv_last.weight[i, i, 3:6, 3:6] = tent[:, None] * tent[None, :]
        return model
    if arch == "realesrgan" and model.scale == 2:
        nf = model.conv_first.out_channels
        if nf < bands:
            raise ConfigError(f"warm_start needs num_feat >= {bands}, got {nf}")
        model.conv_first.weight[:bands].zero_()
        model.conv_first.bias[:bands].zero_()
        for i in range(bands):  # unshuffled channel i*4+k is sub-pixel k of band i
            model.conv_first.weight[i, i * 4 : i * 4 + 4, 1, 1] = 0.25
        model.conv_body.weight.zero_()
        model.conv_body.bias.zero_()
        for conv in (model.conv_up1, model.conv_up2, model.conv_hr):
            conv.weight[:bands].zero_()
            conv.bias[:bands].zero_()
            for i in range(bands):
                conv.weight[i, i, 1, 1] = 1.0
        tent = torch.tensor([1.0, 2.0, 1.0]) / 4
        model.conv_last.weight.zero_()
        model.conv_last.bias.zero_()
        for i in range(bands):
            model.conv_last.weight[i, i] = tent[:, None] * tent[None, :]
        return model
    raise ConfigError(f"warm_start supports srresnet and realesrgan at x2, got {arch!r}")


def _warm_start_state(cfg: Any, directory: Path, hr_px: int) -> Path:
    """A step-0 training checkpoint whose generator (and EMA) are :func:`warm_start`-ed."""
    from s2scale.train.engine import Run, unwrap
    from s2scale.train.state import TrainState, save_state

    run = Run(cfg, torch.device("cpu"), 1, hr_px)
    warm_start(unwrap(run.gen))
    if run.ema is not None:
        run.ema.load_state_dict(unwrap(run.gen).state_dict())
    return save_state(
        directory, TrainState(), run.components(), config=cfg.to_dict(), sampler_seed=cfg.seed
    )


def _git_commit() -> str | None:
    """The repository's HEAD commit, if it is a git checkout."""
    try:
        res = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return res.stdout.strip() or None


def _device_label(device: str) -> str:
    """What the run trained on, e.g. ``"cpu (x86_64, 2 threads)"``."""
    if device in ("cpu", "auto") and not torch.cuda.is_available():
        return (
            f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        )
    return device if device != "auto" else "cuda"


def train_shipped(
    name: str,
    out_dir: str | Path,
    *,
    config: str | Path | None = None,
    store: str | Path | None = None,
    work_dir: str | Path = "runs/shipped",
    seeds: Sequence[int] = DEFAULT_SEEDS,
    rebuild_data: bool = False,
    warm: bool = True,
    evaluate: bool = True,
    progress: Progress | None = None,
) -> Path:
    """Train a shipped generator with ``s2scale/configs/train/<name>.yaml`` and save it fp16.

    Parameters
    ----------
    name
        ``"srresnet"`` or ``"realesrgan"`` (any ``<name>.yaml`` in :data:`CONFIG_DIR`).
    out_dir
        Folder of the shipped checkpoint ``<name>.pt`` (e.g. ``s2scale/weights``).
    config
        TrainConfig YAML; default ``s2scale/configs/train/<name>.yaml``.
    store
        Patch store to train on; default ``<work_dir>/patches.zarr``, built with
        :func:`build_training_data` (``seeds``) if absent or ``rebuild_data``.
    work_dir
        Run folder (training logs, checkpoints, ``<name>.report.json``).
    seeds
        Simulator seeds for a newly built store.
    rebuild_data
        Rebuild the store even if it exists.
    warm
        Start from :func:`warm_start` weights (through a step-0 training checkpoint that
        :func:`s2scale.train.loop.train` resumes from) instead of a random initialisation.
    evaluate
        Score the model and bicubic on held-out data (:func:`evaluate_all`) into the checkpoint.
    progress
        Wraps the step iterable of :func:`s2scale.train.loop.train`.

    Returns
    -------
    pathlib.Path
        The fp16 checkpoint ``<out_dir>/<name>.pt``.
    """
    from s2scale.models import load_generator, save_checkpoint
    from s2scale.train.config import TrainConfig
    from s2scale.train.data import PairDataset
    from s2scale.train.loop import train

    cfg_path = Path(config) if config is not None else CONFIG_DIR / f"{name}.yaml"
    if not cfg_path.is_file():
        raise ConfigError(
            f"no training config {str(cfg_path)!r}; known: "
            f"{sorted(p.stem for p in CONFIG_DIR.glob('*.yaml'))}"
        )
    work = Path(work_dir)
    store_path = Path(store) if store is not None else work / "patches.zarr"
    if store is None and (rebuild_data or not store_path.exists()):
        build_training_data(store_path, seeds=seeds)
    cfg = TrainConfig.from_yaml(cfg_path)
    cfg = dataclasses.replace(cfg, output_dir=str(work / name))
    lr_tr, hr_tr, attrs = read_patch_store(store_path, "train")
    lr_va, hr_va, _ = read_patch_store(store_path, "val")
    norm = attrs["normalization"]
    train_ds = PairDataset(hr=hr_tr, lr=lr_tr, scale=2, normalization=norm)
    val_ds = (
        PairDataset(hr=hr_va[:96], lr=lr_va[:96], scale=2, normalization=norm, augment=False)
        if len(lr_va)
        else None
    )
    log.info(
        "%s: %d train / %d val pairs, %d steps",
        name,
        len(train_ds),
        len(val_ds or ()),
        cfg.total_steps,
    )
    t0 = time.perf_counter()
    init = _warm_start_state(cfg, work / name / "init", int(hr_tr.shape[-1])) if warm else None
    result = train(cfg, train_ds, val_ds, progress=progress, resume=init)
    wall_s = time.perf_counter() - t0
    if result.generator_path is None:
        raise ConfigError(f"{name}: training stopped before the end; nothing to ship")
    model = load_generator(result.generator_path, "cpu")
    ckpt = model.checkpoint
    metrics: dict[str, Any] = {"val": dict(result.metrics)}
    if evaluate:
        metrics["heldout"] = evaluate_all(model)
    counts = attrs.get("counts", {})
    kinds: dict[str, int] = {}
    for src in attrs.get("sources", []):
        kind = src.get("kind", "unknown")
        kinds[kind] = kinds.get(kind, 0) + int(src.get("patches", 0))
    summary = dict(ckpt.training)
    summary.update(
        {
            "recipe_command": f"python -m s2scale.train.recipes {name} --out {out_dir}",
            "initialisation": "warm_start (interpolator-like, s2scale.train.recipes.warm_start)"
            if warm
            else "random (build_generator seed)",
            "config_file": str(
                cfg_path.relative_to(REPO_ROOT) if cfg_path.is_relative_to(REPO_ROOT) else cfg_path
            ),
            "wall_time_s": round(wall_s, 1),
            "device": _device_label(cfg.device),
            "torch": str(torch.__version__),
            "git_commit": _git_commit(),
            "data": {
                "store": str(store_path),
                "counts": counts,
                "patches_by_kind": kinds,
                "provenance": attrs.get("provenance", {}),
                "hr_patch_px": int(hr_tr.shape[-1]),
                "lr_patch_px": int(lr_tr.shape[-1]),
            },
            "perceptual_loss": (
                f"{summary.get('perceptual_backbone')} (no ImageNet VGG19 available offline)"
                if summary.get("perceptual_backbone")
                else "none (L1 only)"
            ),
        }
    )
    summary = json.loads(json.dumps(summary, default=str))  # plain data for weights_only loads
    out = Path(out_dir) / f"{name}.pt"
    net = load_generator(result.generator_path, "cpu")
    save_checkpoint(
        out,
        net,
        bands=list(ckpt.bands),
        normalization=ckpt.normalization,
        arch=ckpt.arch,
        kwargs=ckpt.kwargs,
        scale=ckpt.scale,
        training=summary,
        metrics=metrics,
        half=True,
    )
    report = {"checkpoint": str(out), "training": summary, "metrics": metrics}
    (work / f"{name}.report.json").write_text(json.dumps(report, indent=2, default=str))
    log.info("%s: shipped %s after %.0fs", name, out, wall_s)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m s2scale.train.recipes {srresnet,realesrgan,data} ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m s2scale.train.recipes", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "name", help="srresnet, realesrgan (s2scale/configs/train/<name>.yaml) or 'data'"
    )
    parser.add_argument(
        "--out",
        default="s2scale/weights",
        help="folder of the shipped checkpoint (or the store for 'data')",
    )
    parser.add_argument("--work", default="runs/shipped", help="run folder (logs, store, report)")
    parser.add_argument("--store", default=None, help="existing patch store to train on")
    parser.add_argument(
        "--config",
        default=None,
        help="TrainConfig YAML (default s2scale/configs/train/<name>.yaml)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--rebuild-data", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.name == "data":
        build_training_data(args.out, seeds=args.seeds)
        return
    train_shipped(
        args.name,
        args.out,
        config=args.config,
        store=args.store,
        work_dir=args.work,
        seeds=args.seeds,
        rebuild_data=args.rebuild_data,
    )


if __name__ == "__main__":
    main()
