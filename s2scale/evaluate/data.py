"""What :mod:`s2scale.evaluate` scores: rasters on nested grids, Wald pairs, patch stores, mosaics.

Every source becomes :class:`EvalImage` records: the 10 m-like input as a ``(band, y, x)`` uint16
DataArray with coordinates and CRS (what :func:`s2scale.upscale` takes), and, where one exists,
the reference on the nested grid at ``scale`` times the resolution. Values are harmonised DN
(reflectance x 10000, 0 = no data) in s2scale's band order (blue, green, red, nir).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine

from s2scale.errors import ConfigError, GridMismatchError, ReadError
from s2scale.sentinel2 import BANDS, DN_SCALE, RESOLUTION_M, to_dn

__all__ = [
    "EvalImage",
    "RasterInput",
    "colocated_images",
    "lr_from_array",
    "mosaic_images",
    "patch_images",
    "raster_images",
    "read_raster",
    "wald_images",
]

log = logging.getLogger(__name__)

Window = tuple[int, int, int, int]
"""``(row, col, rows, cols)`` in input (LR) pixels."""


@dataclass(frozen=True)
class RasterInput:
    """A raster read as harmonised DN with what was done to get there."""

    dn: np.ndarray
    """``(4, y, x)`` uint16 harmonised DN, blue, green, red, nir, 0 = no data."""
    transform: Affine
    """Pixel-corner transform."""
    crs: Any
    """CRS (rasterio/pyproj compatible) or None."""
    note: str
    """How the values were read (band selection, scaling, pseudo-reflectance)."""


@dataclass(frozen=True)
class EvalImage:
    """One input to super-resolve and, where available, its reference."""

    name: str
    """``"scene"`` for a raster, ``"<split>/<index>"`` for a patch."""
    lr: xr.DataArray
    """``(band, y, x)`` uint16 DN with 10 m-like pixel centres, CRS and transform."""
    hr: np.ndarray | None
    """``(band, y * scale, x * scale)`` uint16 DN reference on the nested grid, or None."""
    split: str = "all"
    """Patch-store split (``"train"``, ``"val"``, ``"test"``), else ``"all"``."""


# ------------------------------------------------------------------------------ rasters
def _to_dn(values: np.ndarray, nodata: float | None, dn_scale: float | None) -> np.ndarray:
    """Harmonised uint16 DN from raster values; nodata, NaN and values <= 0 become 0."""
    arr = np.asarray(values)
    invalid = ~np.isfinite(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, bool)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        invalid |= arr == nodata
    scale = dn_scale if dn_scale is not None else (DN_SCALE if arr.dtype.kind == "f" else 1.0)
    refl = np.where(invalid, np.nan, np.asarray(arr, np.float64) * (scale / DN_SCALE))
    refl = np.where(refl > 0, refl, np.nan)  # 0 and negative DN are no data in s2scale
    dn = to_dn(refl)
    return np.where(np.any(dn == 0, axis=0, keepdims=True), 0, dn).astype(np.uint16)


def read_raster(
    path: str | Path,
    *,
    bands: Sequence[int] | None = None,
    dn_scale: float | None = None,
    pixel_m: float | None = None,
) -> RasterInput:
    """Read a raster as harmonised DN in blue, green, red, nir order.

    Parameters
    ----------
    path
        Any GDAL raster. Four bands are taken as blue, green, red, nir; others need ``bands``.
        A 3-band 8-bit raster is an RGB orthophoto: it becomes pseudo-reflectance with a
        *synthetic* NIR band (:func:`s2scale.train.sources.ortho_to_reflectance`).
    bands
        1-based band indices of blue, green, red and nir in the file (e.g. ``(1, 2, 3, 4)``).
    dn_scale
        DN per unit reflectance of the file's values (default: 10000 for integers, i.e. already
        harmonised DN; 1 for floats, i.e. reflectance); values are converted to 10000.
    pixel_m
        Area-average to this pixel size first (an integer multiple of the file's).

    Raises
    ------
    ReadError
        If the file cannot be read.
    ConfigError
        For a band layout that needs ``bands``, or a bad ``pixel_m``.
    """
    import rasterio

    try:
        with rasterio.open(path) as src:
            values, transform, crs, nodata = src.read(), src.transform, src.crs, src.nodata
    except (OSError, rasterio.errors.RasterioError) as err:
        raise ReadError(f"cannot read the raster {str(path)!r}: {err}") from err
    if transform.b or transform.d:
        raise ConfigError(f"{str(path)!r} has a rotated grid ({transform}); warp it north-up first")
    count = values.shape[0]
    notes = []
    if bands is not None:
        idx = [int(b) - 1 for b in bands]
        if len(idx) != 4 or min(idx) < 0 or max(idx) >= count:
            raise ConfigError(
                f"--bands {list(bands)} must be 4 1-based indices (blue, green, red, nir) of the "
                f"{count} bands of {str(path)!r}"
            )
        values = values[idx]
        notes.append(f"bands {list(bands)} as blue, green, red, nir")
        dn = _to_dn(values, nodata, dn_scale)
    elif count == 3 and values.dtype == np.uint8:
        from s2scale.train.sources import ortho_to_reflectance

        rgb = values
        valid = ~np.all(rgb == 0, axis=0) if nodata is None else ~np.any(rgb == nodata, axis=0)
        dn = to_dn(np.where(valid, ortho_to_reflectance(rgb), np.nan))
        notes.append("8-bit RGB orthophoto as pseudo-reflectance with a SYNTHETIC nir band")
    elif count == 4:
        dn = _to_dn(values, nodata, dn_scale)
    else:
        raise ConfigError(
            f"{str(path)!r} has {count} bands ({values.dtype}); pass --bands B,G,R,NIR with the "
            "1-based indices of blue, green, red and nir"
        )
    if pixel_m is not None:
        factor = pixel_m / abs(transform.a)
        if factor < 1 or abs(factor - round(factor)) > 1e-6:
            raise ConfigError(
                f"--hr-pixel-m {pixel_m} must be an integer multiple of the file's pixel size "
                f"{abs(transform.a)} m"
            )
        k = round(factor)
        if k > 1:
            from s2scale.pairs import area_downsample

            refl = area_downsample(np.where(dn > 0, dn / DN_SCALE, np.nan), k)
            dn = to_dn(refl)
            transform = transform * Affine.scale(k)
            notes.append(f"area-averaged {k}x{k} to {pixel_m} m")
    return RasterInput(dn=dn, transform=transform, crs=crs, note="; ".join(notes))


def lr_from_array(dn: np.ndarray, transform: Affine | None = None, crs: Any = None) -> xr.DataArray:
    """Wrap ``(band, y, x)`` uint16 DN as the DataArray :func:`s2scale.upscale` takes.

    Without a transform the pixels are placed on a 10 m grid at (500000, 5300000) in
    EPSG:32633 (only the pixel size and order matter for scoring).
    """
    if transform is None:
        r = RESOLUTION_M
        transform, crs = Affine(r, 0.0, 500_000.0, 0.0, -r, 5_300_000.0), "EPSG:32633"
    rows, cols = dn.shape[-2:]
    y = transform.f + transform.e * (np.arange(rows) + 0.5)
    x = transform.c + transform.a * (np.arange(cols) + 0.5)
    arr = xr.DataArray(np.ascontiguousarray(dn, np.uint16), dims=("band", "y", "x"),
                       coords={"band": list(BANDS), "y": y, "x": x})  # fmt: skip
    if crs is not None:
        with warnings.catch_warnings():
            # pyproj's CF export of oblique Mercator grids (e.g. EPSG:2056) drops one parameter
            # and warns; rioxarray keeps the full WKT beside it, which is what is read back.
            warnings.filterwarnings("ignore", message=".*lost in conversion to CF",
                                    category=UserWarning)  # fmt: skip
            arr = arr.rio.write_crs(crs)
    return arr.rio.write_transform(transform)


def _coerce_window(window: Window | None, shape: tuple[int, int]) -> tuple[slice, slice]:
    """LR slices of a ``(row, col, rows, cols)`` window, checked against ``shape``."""
    if window is None:
        return slice(0, shape[0]), slice(0, shape[1])
    r, c, h, w = (int(v) for v in window)
    if r < 0 or c < 0 or h < 16 or w < 16 or r + h > shape[0] or c + w > shape[1]:
        raise ConfigError(
            f"--window {r},{c},{h},{w} (row, col, rows, cols in input pixels, at least 16 x 16) "
            f"does not fit the input of {shape[0]} x {shape[1]} px"
        )
    return slice(r, r + h), slice(c, c + w)


def _window_transform(t: Affine, rows: slice, cols: slice) -> Affine:
    """Transform of a window of a grid."""
    return t * Affine.translation(cols.start, rows.start)


def _check_nested(lr: RasterInput, hr: RasterInput, scale: int, names: tuple[str, str]) -> None:
    """Raise GridMismatchError unless ``hr`` is exactly the ``scale``x nested grid of ``lr``."""
    lt, ht = lr.transform, hr.transform
    expect_shape = (lr.dn.shape[1] * scale, lr.dn.shape[2] * scale)
    problems = []
    if lr.crs is not None and hr.crs is not None and lr.crs != hr.crs:
        problems.append(f"CRS {hr.crs} vs {lr.crs}")
    res = abs(lt.a)
    if abs(abs(ht.a) * scale - res) > 1e-6 * res or abs(abs(ht.e) * scale - abs(lt.e)) > 1e-6 * res:
        problems.append(f"pixel size {abs(ht.a)} x {abs(ht.e)} m, expected {res / scale} m")
    if abs(ht.c - lt.c) > 1e-3 * res or abs(ht.f - lt.f) > 1e-3 * res:
        problems.append(f"origin ({ht.c}, {ht.f}), expected ({lt.c}, {lt.f})")
    if tuple(hr.dn.shape[1:]) != expect_shape:
        problems.append(f"shape {hr.dn.shape[1]} x {hr.dn.shape[2]}, expected {expect_shape}")
    if problems:
        raise GridMismatchError(
            f"HR {names[1]!r} is not the exact {scale}x nested grid of LR {names[0]!r}: "
            + "; ".join(problems)
            + f"; resample or crop the HR onto the LR's extent at {res / scale} m (e.g. gdalwarp "
            f"-tr {res / scale} {res / scale} -te <LR bounds>), or pass only --hr with --wald to "
            "make the LR from the HR"
        )


def raster_images(
    lr_path: str | Path,
    hr_path: str | Path | None = None,
    *,
    scale: int = 2,
    window: Window | None = None,
    bands: Sequence[int] | None = None,
    hr_bands: Sequence[int] | None = None,
    dn_scale: float | None = None,
) -> tuple[list[EvalImage], dict[str, Any]]:
    """An LR raster and (optionally) its HR reference on the nested grid, as one image.

    Returns the image list and a description for the report. Without ``hr_path`` only the
    no-reference checks can be made.

    Raises
    ------
    GridMismatchError
        If the HR is not exactly ``scale`` times the LR on the same origin and CRS.
    """
    lr = read_raster(lr_path, bands=bands, dn_scale=dn_scale)
    rows, cols = _coerce_window(window, lr.dn.shape[1:])
    info: dict[str, Any] = {"mode": "lr-hr" if hr_path else "lr-only", "lr": str(lr_path),
                            "lr_read": lr.note or "as harmonised DN"}  # fmt: skip
    hr_dn = None
    if hr_path is not None:
        hr = read_raster(hr_path, bands=hr_bands or bands, dn_scale=dn_scale)
        _check_nested(lr, hr, scale, (str(lr_path), str(hr_path)))
        hr_dn = hr.dn[
            :, rows.start * scale : rows.stop * scale, cols.start * scale : cols.stop * scale
        ]
        info |= {"hr": str(hr_path), "hr_read": hr.note or "as harmonised DN"}
    lr_da = lr_from_array(lr.dn[:, rows, cols], _window_transform(lr.transform, rows, cols), lr.crs)
    info["window"] = None if window is None else [rows.start, cols.start, rows.stop - rows.start,
                                                  cols.stop - cols.start]  # fmt: skip
    return [EvalImage(name="scene", lr=lr_da, hr=hr_dn)], info


def _wald_lr(hr_dn: np.ndarray, scale: int) -> np.ndarray:
    """LR DN from HR DN by the nominal Sentinel-2 degradation; no data spreads to its LR pixels."""
    from s2scale.degradation import degrade_nominal

    refl = np.where(np.all(hr_dn > 0, axis=0), hr_dn / DN_SCALE, np.nan)
    return to_dn(degrade_nominal(refl, scale))


def wald_images(
    hr_path: str | Path,
    *,
    scale: int = 2,
    window: Window | None = None,
    bands: Sequence[int] | None = None,
    dn_scale: float | None = None,
    pixel_m: float | None = None,
) -> tuple[list[EvalImage], dict[str, Any]]:
    """Wald's protocol: the HR raster is the reference, its nominal degradation the input.

    The LR is :func:`s2scale.degradation.degrade_nominal` of the HR (nominal Sentinel-2 PSF per
    band, then a ``scale x scale`` mean), rounded to DN. ``window`` is in LR pixels.
    """
    hr = read_raster(hr_path, bands=bands, dn_scale=dn_scale, pixel_m=pixel_m)
    h, w = hr.dn.shape[1] // scale, hr.dn.shape[2] // scale
    rows, cols = _coerce_window(window, (h, w))
    hr_dn = hr.dn[:, rows.start * scale : rows.stop * scale, cols.start * scale : cols.stop * scale]
    lt = _window_transform(hr.transform, rows, cols) * Affine.scale(scale)
    lr_da = lr_from_array(_wald_lr(hr_dn, scale), lt, hr.crs)
    info = {
        "mode": "wald", "hr": str(hr_path), "hr_read": hr.note or "as harmonised DN",
        "lr": f"Wald protocol: s2scale.degradation.degrade_nominal (nominal Sentinel-2 PSF, "
        f"{scale}x{scale} mean) of the HR, rounded to DN",
        "window": None if window is None else [rows.start, cols.start, rows.stop - rows.start,
                                               cols.stop - cols.start],
    }  # fmt: skip
    return [EvalImage(name="scene", lr=lr_da, hr=hr_dn)], info


# ------------------------------------------------------------------------------ patch stores
def patch_images(
    store: str | Path,
    *,
    splits: Sequence[str] | None = None,
    max_patches: int | None = 200,
    seed: int = 0,
) -> tuple[list[EvalImage], dict[str, Any]]:
    """The pairs of a patch store (:func:`s2scale.pairs.write_patch_store`), per split.

    At most ``max_patches`` per split are drawn (seeded, without replacement).

    Raises
    ------
    ReadError
        If the store cannot be read.
    GridMismatchError
        If its bands are not s2scale's four or its scale is not 2.
    """
    from s2scale.models import Normalization
    from s2scale.pairs import SPLITS, read_patch_store

    wanted = tuple(splits) if splits else SPLITS
    for s in wanted:
        if s not in SPLITS:
            raise ConfigError(f"unknown split {s!r}; a patch store has {list(SPLITS)}")
    images: list[EvalImage] = []
    counts: dict[str, dict[str, int]] = {}
    attrs: dict[str, Any] = {}
    rng = np.random.default_rng(seed)
    for split in wanted:
        lr, hr, attrs = read_patch_store(store, split)
        if list(attrs.get("bands", [])) != list(BANDS):
            raise GridMismatchError(
                f"patch store {str(store)!r} has bands {attrs.get('bands')}; the generators "
                f"take {list(BANDS)}"
            )
        norm = Normalization.coerce(attrs.get("normalization") or {})
        if norm.offset != 0 or norm.scale != DN_SCALE:
            raise GridMismatchError(
                f"patch store {str(store)!r} stores DN with normalization {norm.to_dict()}; "
                "s2scale.evaluate needs harmonised DN (offset 0, scale 10000)"
            )
        n = len(lr)
        pick = np.arange(n)
        if max_patches is not None and n > max_patches:
            pick = np.sort(rng.choice(n, size=max_patches, replace=False))
        counts[split] = {"patches": n, "scored": len(pick)}
        for i in pick:
            images.append(EvalImage(name=f"{split}/{int(i)}", lr=lr_from_array(lr[i]),
                                    hr=np.asarray(hr[i], np.uint16), split=split))  # fmt: skip
    scale = int(attrs.get("scale", 2))
    if scale != 2:
        raise GridMismatchError(f"patch store {str(store)!r} has scale {scale}; only 2 is scored")
    info = {"mode": "patches", "patches": str(store), "splits": counts,
            "sources": [s.get("kind") for s in attrs.get("sources", [])]}  # fmt: skip
    return [im for im in images if counts[im.split]["scored"]], info


# ------------------------------------------------------------------------------ co-located pairs
def colocated_images(
    root: str | Path,
    *,
    splits: Sequence[str] | None = None,
    config: Any = None,
) -> tuple[list[EvalImage], dict[str, Any]]:
    """Real co-located pairs (:mod:`s2scale.pairs.colocated`): one image per kept revisit.

    Each image is named ``"<site>/<date>"``, carries its site's split and its reference
    (the sharper image averaged to the nested grid and mapped to the revisit's reflectance).

    Raises
    ------
    ReadError
        If ``root`` holds no site.
    ConfigError
        If no pair of the requested splits passes the selection.
    """
    from s2scale.pairs.colocated import ColocatedConfig, colocated_pairs

    cfg = config if config is not None else ColocatedConfig()
    pairs, summary = colocated_pairs(root, cfg, splits=splits)
    if not pairs:
        raise ConfigError(
            f"no co-located pair of split(s) {list(splits or ['train', 'val', 'test'])} under "
            f"{str(root)!r} passes the selection (|delta| <= {cfg.max_delta_days} d, red "
            f"correlation >= {cfg.min_correlation}); see the pairs' records for the reasons"
        )
    images = [
        EvalImage(name=f"{p.site}/{p.s2_date}", lr=lr_from_array(p.lr, p.transform, p.crs),
                  hr=p.hr, split=p.split)
        for p in pairs
    ]  # fmt: skip
    info = {"mode": "colocated", "pairs": str(root), "selection": summary["config"],
            "sites": summary["sites"], "records": summary["pairs"]}  # fmt: skip
    return images, info


# ------------------------------------------------------------------------------ mosaics
def mosaic_images(
    store: str | Path,
    reference: str | Path,
    *,
    scale: int = 2,
    window: Window | None = None,
    bands: Sequence[int] | None = None,
    dn_scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, dict[str, Any]]:
    """A mosaic store and a reference raster on the mosaic's grid.

    The reference is resampled onto the mosaic grid (bilinear; exact where the grids coincide)
    when its pixel size equals the mosaic's (a full-reference check), or onto the mosaic grid
    coarsened by ``scale`` when it is ``scale`` times coarser, e.g. the 10 m input of a 5 m
    mosaic (the no-reference checks).

    Returns
    -------
    tuple
        ``(mosaic DN (band, Y, X), hr DN or None, lr DN (band, Y/scale, X/scale) or None,
        info)``; the mosaic is cropped to a multiple of ``scale`` (and to ``window``, in LR px).
    """
    from rasterio.enums import Resampling

    from s2scale.mosaic import open_mosaic

    mos = open_mosaic(store)["reflectance"]
    mos = mos.rio.write_crs(mos.rio.crs)
    ref = read_raster(reference, bands=bands, dn_scale=dn_scale)
    res_m, res_r = abs(mos.rio.transform().a), abs(ref.transform.a)
    h, w = mos.sizes["y"] // scale * scale, mos.sizes["x"] // scale * scale
    rows, cols = _coerce_window(window, (h // scale, w // scale))
    mos = mos.isel(y=slice(rows.start * scale, rows.stop * scale),
                   x=slice(cols.start * scale, cols.stop * scale))  # fmt: skip
    ref_da = lr_from_array(ref.dn, ref.transform, ref.crs)
    ref_da = ref_da.where(ref_da > 0).astype(np.float32)
    info: dict[str, Any] = {"mode": "mosaic", "mosaic": str(store), "reference": str(reference),
                            "reference_read": ref.note or "as harmonised DN"}  # fmt: skip
    if math.isclose(res_r, res_m, rel_tol=1e-3):
        target = mos
        info["reference_role"] = "full reference (same pixel size), resampled bilinearly"
    elif math.isclose(res_r, res_m * scale, rel_tol=1e-3):
        t = mos.rio.transform()
        coarse = t * Affine.scale(scale)
        y = coarse.f + coarse.e * (np.arange(mos.sizes["y"] // scale) + 0.5)
        x = coarse.c + coarse.a * (np.arange(mos.sizes["x"] // scale) + 0.5)
        target = xr.DataArray(np.zeros((y.size, x.size), np.float32), dims=("y", "x"),
                              coords={"y": y, "x": x}).rio.write_crs(mos.rio.crs)  # fmt: skip
        target = target.rio.write_transform(coarse)
        info["reference_role"] = (f"the {res_r:g} m input (no-reference checks), resampled "
                                  "bilinearly onto the mosaic grid coarsened by "
                                  f"{scale}")  # fmt: skip
    else:
        raise GridMismatchError(
            f"reference {str(reference)!r} has {res_r:g} m pixels; the mosaic has {res_m:g} m: "
            f"pass a reference at {res_m:g} m (full reference) or {res_m * scale:g} m (its input)"
        )
    on_grid = ref_da.rio.reproject_match(target, resampling=Resampling.bilinear, nodata=np.nan)
    dn = to_dn(np.asarray(on_grid.values, np.float64) / DN_SCALE)
    dn = np.where(np.any(dn == 0, axis=0, keepdims=True), 0, dn).astype(np.uint16)
    if not (dn > 0).any():
        raise GridMismatchError(
            f"reference {str(reference)!r} does not overlap the mosaic {str(store)!r}"
        )
    sr = np.asarray(mos.values, np.uint16)
    full = info["reference_role"].startswith("full")
    return sr, (dn if full else None), (None if full else dn), info
