"""Training data of the shipped generators, from sources this package can produce offline.

:func:`build_training_data` writes a patch store (:mod:`s2scale.pairs`) per simulator seed (a
different world each):

- ``sim-study-truth``: simulated Sentinel-2 10 m (clear sky, harmonised DN) vs the 5 m truth
  (``scale=2`` only: the simulator's truth is 5 m);
- ``sim-study-ortho``: the same LR vs the simulated 1 m orthophoto, area-averaged onto the nested
  HR grid and histogram-matched to the Sentinel-2 image per band (the reference study's pairs);
- ``sim-wald-s2``: Wald's protocol on the simulated Sentinel-2 10 m image (10 m -> 20 m at x2)
  with a random Gaussian PSF (sigma drawn in LR pixels), random noise, several variants per area;

plus, when ``include_real_ortho`` and ``$S2SCALE_SHARED_DATA/orthophoto`` exists,
``real-ortho-wald``: the real Zürich RGB orthophoto (0.5 m) area-averaged to nominal 1.0-2.5 m
pixels, turned into pseudo-reflectance with a SYNTHETIC NIR band (see
:func:`ortho_to_reflectance`), as Wald pairs.
Training patches also get a random per-band gain (same on LR and HR) for radiometric diversity.
Flips and rotations are applied on the fly by :class:`~s2scale.train.data.PairDataset`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from s2scale.errors import ConfigError
from s2scale.grid import TargetGrid
from s2scale.pairs import (
    PatchSet,
    make_pairs,
    match_histograms_block,
    nested_grid,
    orthophoto_to_hr,
    read_orthophoto,
    wald_pairs,
    write_patch_store,
)
from s2scale.sentinel2 import BANDS, DN_SCALE, RESOLUTION_M

__all__ = [
    "DEFAULT_SEEDS",
    "HELD_OUT_ORTHO",
    "HELD_OUT_SEED",
    "SHARED_DATA_ENV",
    "build_training_data",
    "ortho_to_reflectance",
    "real_ortho_dir",
    "real_ortho_image",
    "sim_landscape",
    "sim_window",
    "simulate_s2_dn",
]

log = logging.getLogger(__name__)

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
def sim_window(seed: int, size_m: float) -> TargetGrid:
    """A 10 m UTM 33N window of ``size_m`` on the 60 m lattice, placed at random by ``seed``."""
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 32633, always_xy=True).transform(*_REF_LONLAT)
    rng = np.random.default_rng([seed, 7])
    cx, cy = x + rng.uniform(-6000, 6000), y + rng.uniform(-6000, 6000)
    x0, y0 = math.floor(cx / 60) * 60, math.floor(cy / 60) * 60
    size = math.ceil(size_m / 60) * 60
    return TargetGrid("EPSG:32633", RESOLUTION_M, (x0, y0 - size, x0 + size, y0))


def sim_landscape(seed: int, grid: TargetGrid) -> Any:
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


def simulate_s2_dn(landscape: Any, grid: TargetGrid, seed: int) -> tuple[np.ndarray, Any]:
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


def _sim_ortho_hr(
    landscape: Any, grid: TargetGrid, s2_dn: np.ndarray, seed: int, scale: int
) -> np.ndarray:
    """Simulated 1 m EPSG:31287 orthophoto -> nested HR grid -> histogram-matched uint16 DN."""
    from rasterio.warp import transform_bounds

    from s2scale.sim import render_orthophoto

    b = transform_bounds(grid.crs, "EPSG:31287", *grid.bounds, densify_pts=21)
    bounds = (math.floor(b[0]) - 5, math.floor(b[1]) - 5, math.ceil(b[2]) + 5, math.ceil(b[3]) + 5)
    ortho_grid = TargetGrid("EPSG:31287", 1.0, bounds)
    ortho = render_orthophoto(landscape, ortho_grid, seed=seed)  # R, G, B, NIR uint8
    hr_grid = nested_grid(grid, scale)
    hr = orthophoto_to_hr(ortho, ortho_grid.transform, ortho_grid.crs, hr_grid)
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


def real_ortho_image(path: Path, x_range: tuple[float, float] | None, pixel_m: float) -> np.ndarray:
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
    scale: int,
) -> list[PatchSet]:
    """Wald pairs of one uint16 image, ``variants`` times with random PSF and noise."""
    out = []
    for v in range(variants):
        sigma = float(rng.uniform(*psf_sigma_range))
        noise = float(rng.uniform(*noise_range))
        lr, hr = wald_pairs(hr_dn, scale, sigma, noise_sigma=noise * DN_SCALE, rng=rng)
        out.append(
            make_pairs(
                lr,
                hr,
                lr_patch_px=lr_patch_px,
                stride_px=stride_px,
                scale=scale,
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
    scale: int = 2,
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
    scale
        Upscaling factor of the pairs (HR pixels per LR pixel edge), recorded in the store. The
        simulator's 5 m truth pairs exist for ``scale=2`` only and are left out otherwise.
    include_real_ortho
        Add Wald pairs of the real Zürich orthophoto (pseudo-reflectance, synthetic NIR) if
        ``ortho_dir`` exists; skipped with a warning otherwise.
    include_sim_ortho
        Add the study-style pairs from the simulated orthophoto (slowest part of the build).
    area_m, wald_area_m
        Edge of the simulated window for the study-style pairs and for the Wald pairs (metres);
        both windows share their top-left corner, so split blocks coincide.
    lr_patch_px, stride_px
        LR patch edge and stride (HR patches are ``scale`` times larger). 48 (not the study's
        96) keeps CPU training affordable; the generators are fully convolutional.
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
        Folder of the real orthophotos; default :func:`real_ortho_dir`.
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
    rng = np.random.default_rng(augment_seed)
    wald = {
        "rng": rng,
        "psf_sigma_range": psf_sigma_range,
        "noise_range": noise_range,
        "lr_patch_px": lr_patch_px,
        "scale": scale,
    }
    parts: list[PatchSet] = []
    t0 = time.perf_counter()
    for seed in progress(seeds) if progress else seeds:
        parts += _sim_patchsets(
            seed,
            area_m=area_m,
            wald_area_m=wald_area_m,
            include_sim_ortho=include_sim_ortho,
            ssim_threshold=ssim_threshold,
            block_m=block_m,
            stride_px=stride_px,
            fractions=fractions,
            variants=wald_variants,
            wald=wald,
        )
        log.info("training data: seed %d done (%.0fs)", seed, time.perf_counter() - t0)
    if include_real_ortho:
        parts += _real_ortho_patchsets(
            Path(ortho_dir) if ortho_dir is not None else real_ortho_dir(),
            pixels_m=real_ortho_pixels_m,
            stride_px=max(8, stride_px // 2),
            variants=wald_variants + 1,
            wald=wald,
        )
    patches = PatchSet.concat(parts)
    _gain_augment(patches, rng, gain_range)
    provenance = {
        "builder": "s2scale.train.sources.build_training_data",
        "seeds": list(seeds),
        "held_out_seed": HELD_OUT_SEED,
        "scale": scale,
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
    return write_patch_store(out_store, patches, bands=BANDS, scale=scale, provenance=provenance)


def _sim_patchsets(
    seed: int,
    *,
    area_m: float,
    wald_area_m: float,
    include_sim_ortho: bool,
    ssim_threshold: float,
    block_m: float,
    stride_px: int,
    fractions: Sequence[float],
    variants: int,
    wald: dict[str, Any],
) -> list[PatchSet]:
    """The study-style and Wald pairs of one simulated world (see the module docstring)."""
    from s2scale.sim import to_dn

    scale = int(wald["scale"])
    big = sim_window(seed, max(area_m, wald_area_m))
    b = big.bounds
    edge = math.ceil(area_m / 60) * 60
    grid = TargetGrid(big.crs, RESOLUTION_M, (b[0], b[3] - edge, b[0] + edge, b[3]))
    landscape = sim_landscape(seed, big)
    s2_big, layers = simulate_s2_dn(landscape, big, seed)
    rows, cols = grid.shape
    s2 = s2_big[:, :rows, :cols]  # the two windows share their top-left corner
    where = {"seed": seed, "crs": grid.crs, "bounds": list(grid.bounds)}
    study = {
        "lr_patch_px": wald["lr_patch_px"],
        "stride_px": stride_px,
        "fractions": fractions,
        "scale": scale,
        "ssim_threshold": ssim_threshold,
        "block_px": round(block_m / 10),
        "seed": seed,
    }
    parts = []
    if scale == 2:  # the simulator's truth is 5 m
        truth = to_dn(layers.truth())[:, : 2 * rows, : 2 * cols]
        source = {"kind": "sim-study-truth", "name": f"sim{seed}/truth", **where}
        parts.append(make_pairs(s2, truth, source=source, **study))
    if include_sim_ortho:
        hr = _sim_ortho_hr(landscape, grid, s2, seed, scale)
        ortho = "simulated 1 m EPSG:31287, area-averaged, hist-matched"
        source = {"kind": "sim-study-ortho", "name": f"sim{seed}/ortho", **where, "ortho": ortho}
        parts.append(make_pairs(s2, hr, source=source, **study))
    parts += _wald_patchsets(
        s2_big,
        kind="sim-wald-s2",
        name=f"sim{seed}/wald",
        variants=variants,
        stride_px=stride_px,
        block_px=round(block_m / (10 * scale)),
        seed=seed,
        fractions=fractions,
        extra={"seed": seed, "crs": big.crs, "bounds": list(big.bounds), "hr_m": 10},
        **wald,
    )
    return parts


def _real_ortho_patchsets(
    folder: Path | None,
    *,
    pixels_m: Sequence[float],
    stride_px: int,
    variants: int,
    wald: dict[str, Any],
) -> list[PatchSet]:
    """Wald pairs of the real orthophotos' training parts (:data:`TRAIN_ORTHO`), if present."""
    from s2scale.sim import to_dn

    if folder is None or not folder.is_dir():
        log.warning("real orthophoto folder %s is absent (set %s); training without it",
                    folder, SHARED_DATA_ENV)  # fmt: skip
        return []
    parts: list[PatchSet] = []
    for fname, x_range in TRAIN_ORTHO.items():
        path = folder / fname
        if not path.is_file():
            log.warning("real orthophoto %s is absent; skipped", path)
            continue
        for pixel_m in pixels_m:
            extra = {
                "file": fname,
                "x_range": x_range,
                "hr_pixel_m": pixel_m,
                "nir": "SYNTHETIC from RGB greenness",
                "licence": "OGD Kanton Zürich",
            }
            parts += _wald_patchsets(
                to_dn(real_ortho_image(path, x_range, pixel_m)),
                kind="real-ortho-wald",
                name=f"{fname}@{pixel_m}m",
                variants=variants,
                stride_px=stride_px,
                block_px=10**6,
                seed=0,
                fractions=(1.0, 0.0, 0.0),
                extra=extra,
                **wald,
            )
    return parts
