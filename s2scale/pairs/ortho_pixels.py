"""Orthophoto pixels: reading windows and resampling them onto the HR grid nested in Sentinel-2's.

- :func:`nested_grid`: the HR grid nested in an LR grid;
- :func:`read_orthophoto`, :func:`read_ortho_window`: a whole file, or the window over some
  bounds with its valid mask (:class:`OrthoWindow`);
- :func:`orthophoto_to_hr`, :func:`render_hr`: mean filter and area average onto the HR grid,
  optionally with the content moved by a displacement (the co-registration correction).

Arrays are ``(band, y, x)``; resampled images are float32 with NaN = no data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2scale.errors import ConfigError, ReadError
from s2scale.grid import Bounds, TargetGrid
from s2scale.pairs.ortho import OrthoInfo
from s2scale.sentinel2 import RESOLUTION_M

__all__ = [
    "OrthoWindow",
    "nested_grid",
    "orthophoto_to_hr",
    "read_ortho_window",
    "read_orthophoto",
    "render_hr",
]


def nested_grid(lr_grid: TargetGrid, scale: int = 2) -> TargetGrid:
    """The HR grid nested in ``lr_grid`` (same bounds, ``resolution_m / scale``).

    Examples
    --------
    >>> nested_grid(TargetGrid("EPSG:32633", 10.0, (0.0, 0.0, 100.0, 50.0))).shape
    (10, 20)
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise ConfigError(f"scale must be an integer >= 2 (2 for 10 m -> 5 m), got {scale!r}")
    return TargetGrid(lr_grid.crs, lr_grid.resolution_m / scale, lr_grid.bounds)


def read_orthophoto(path: str | Path) -> tuple[np.ndarray, Any, str, tuple[str, ...]]:
    """Read a whole orthophoto: ``(data (band, y, x), transform, crs, band descriptions)``.

    Raises :class:`~s2scale.errors.ReadError` if the file cannot be read.
    """
    import rasterio

    try:
        with rasterio.open(path) as src:
            data = src.read()
            names = tuple(d or f"band{i + 1}" for i, d in enumerate(src.descriptions))
            return data, src.transform, str(src.crs), names
    except (OSError, rasterio.errors.RasterioError) as err:
        raise ReadError(f"cannot read orthophoto {str(path)!r}") from err


@dataclass(frozen=True)
class OrthoWindow:
    """A window of an orthophoto in the store's band order, ready for :func:`render_hr`."""

    data: np.ndarray
    """``(band, rows, cols)`` in the file's dtype."""
    valid: np.ndarray
    """``(rows, cols)`` bool, False at no data."""
    transform: tuple[float, float, float, float, float, float]
    """Affine coefficients of the window."""
    crs: str
    """CRS of the orthophoto."""


def read_ortho_window(info: OrthoInfo, bounds: Bounds, bands: Sequence[str]) -> OrthoWindow:
    """Read the part of an orthophoto that covers ``bounds`` (in its CRS), bands in order.

    Raises
    ------
    ReadError
        If the file cannot be read, or ``bounds`` miss it.
    """
    import rasterio
    from rasterio.windows import Window, from_bounds

    index = info.band_index(bands)
    alpha = info.bands.index("alpha") + 1 if "alpha" in info.bands else None
    try:
        with rasterio.open(info.href) as src:
            w = from_bounds(*bounds, transform=src.transform)
            c0, r0 = math.floor(w.col_off), math.floor(w.row_off)
            c1, r1 = math.ceil(w.col_off + w.width), math.ceil(w.row_off + w.height)
            win = Window(c0, r0, c1 - c0, r1 - r0)
            full = Window(0, 0, src.width, src.height)
            try:
                win = win.intersection(full)
            except rasterio.errors.WindowError as err:
                raise ReadError(
                    f"bounds {bounds} miss orthophoto {info.href!r} ({info.bounds})"
                ) from err
            data = src.read(index, window=win)
            valid = ~(data == 0).all(0)
            if info.nodata is not None:
                valid &= ~(data == info.nodata).any(0)
            if alpha is not None:
                valid &= src.read(alpha, window=win) > 0
            transform = tuple(src.window_transform(win))[:6]
    except rasterio.errors.RasterioError as err:
        raise ReadError(f"cannot read orthophoto {info.href!r}: {err}") from err
    return OrthoWindow(data=data, valid=valid, transform=transform, crs=info.crs)  # type: ignore[arg-type]


def orthophoto_to_hr(
    ortho: np.ndarray,
    src_transform: Any,
    src_crs: str,
    hr_grid: TargetGrid,
    *,
    src_nodata: float | None = None,
    mean_filter_px: int = 1,
) -> np.ndarray:
    """Mean-filter and area-average an orthophoto onto ``hr_grid``, float32.

    A ``mean_filter_px`` box filter at the orthophoto's resolution (against aliasing and noise;
    1 = none) is followed by ``rasterio.warp.reproject`` with ``Resampling.average``, which
    averages every source pixel falling into a target pixel and handles the change of CRS (e.g.
    EPSG:31287 or EPSG:2056 -> UTM). NaN in ``ortho`` is no data; it spreads over the filter box.

    Returns
    -------
    numpy.ndarray
        float32 ``(band, rows, cols)`` of ``hr_grid``, in the orthophoto's units; NaN where the
        orthophoto does not cover the grid.
    """
    from rasterio.warp import Resampling, reproject
    from scipy.ndimage import uniform_filter

    if mean_filter_px < 1:
        raise ConfigError(f"mean_filter_px={mean_filter_px} must be >= 1 (1: no filter)")
    out = np.full((ortho.shape[0], *hr_grid.shape), np.nan, np.float32)
    for b in range(ortho.shape[0]):
        band = ortho[b].astype(np.float32)
        if src_nodata is not None:
            band[band == src_nodata] = np.nan
        if mean_filter_px > 1:
            band = uniform_filter(band, mean_filter_px, mode="nearest")
        reproject(
            band,
            out[b],
            src_transform=src_transform,
            src_crs=src_crs,
            src_nodata=np.nan,
            dst_transform=hr_grid.transform,
            dst_crs=hr_grid.crs,
            dst_nodata=np.nan,
            resampling=Resampling.average,
        )
    return out


def render_hr(
    window: OrthoWindow,
    hr_grid: TargetGrid,
    offset_px: tuple[float, float] = (0.0, 0.0),
    *,
    lr_resolution_m: float = RESOLUTION_M,
    mean_filter_m: float = 0.0,
) -> np.ndarray:
    """An orthophoto window on the HR grid, its content moved by ``offset_px`` LR pixels.

    The HR grid never moves: a displacement ``(dy, dx)`` (rows down, columns right, in LR pixels
    of ``lr_resolution_m``) is applied to the orthophoto's georeference, converted into its CRS
    at the window centre, before :func:`orthophoto_to_hr`. HR pixels at the edge of the
    orthophoto's coverage (partly covered) are no data.

    Returns
    -------
    numpy.ndarray
        float32 ``(band, rows, cols)`` of ``hr_grid`` in the orthophoto's units, NaN = no data.
    """
    from affine import Affine
    from pyproj import Transformer
    from scipy.ndimage import binary_erosion

    transform = Affine(*window.transform)
    dy, dx = offset_px
    if dy or dx:
        minx, miny, maxx, maxy = hr_grid.bounds
        cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
        tr = Transformer.from_crs(hr_grid.crs, window.crs, always_xy=True)
        (x0, x1), (y0, y1) = tr.transform(
            [cx, cx + dx * lr_resolution_m], [cy, cy - dy * lr_resolution_m]
        )
        transform = Affine.translation(x1 - x0, y1 - y0) * transform
    data = np.where(window.valid[None], window.data.astype(np.float32), np.nan)
    size = max(1, round(mean_filter_m / max(abs(transform.a), 1e-9)))
    size += 1 - size % 2  # odd boxes keep the filter centred
    out = orthophoto_to_hr(data, transform, window.crs, hr_grid, mean_filter_px=size)
    ok = binary_erosion(np.isfinite(out).all(0), iterations=1, border_value=0)
    out[:, ~ok] = np.nan
    return out
