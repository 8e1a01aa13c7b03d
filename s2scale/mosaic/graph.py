"""The lazy mosaic graph: one task per national region, fed with source windows only.

Layers 2 and 3 of STYLE section 2 over the kernels of :mod:`s2scale.mosaic.blend`:
:func:`mosaic` checks sources, plans regions (:func:`~s2scale.grid.plan_chunks`) and builds one
delayed task per region; nothing here computes. How a region is made, and why its result does not
depend on where the grid is cut, is described in :mod:`s2scale.mosaic.blend`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

import dask
import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine

from s2scale.errors import ConfigError, GridMismatchError
from s2scale.grid import AOI, TargetGrid, plan_chunks
from s2scale.mosaic.blend import (
    DEFAULT_FEATHER_PX,
    KERNEL_RADIUS_PX,
    Edges,
    Region,
    ResamplingName,
    blend_block,
    check_resampling,
    feather_weights_block,
    get_transformer,
    nested_offset,
    parse_crs,
    reproject_block,
)

__all__ = ["SourceGrid", "mosaic", "mosaic_region_block", "region_windows"]

log = logging.getLogger(__name__)

_WARP_TILE_PX = 256
"""Edge of the fixed grid tiles GDAL warps one at a time (see :func:`_warp_tiled`)."""


def mosaic_region_block(
    *windows: np.ndarray,
    metas: Sequence[SourceMeta],
    grid: TargetGrid,
    region: Region,
    n_bands: int,
    feather_px: float,
    resampling: ResamplingName,
) -> np.ndarray:
    """Feather, warp and blend the source windows of one region (kernel of one region task).

    ``windows`` are ``(band, y, x)`` uint16 DN source windows (0 = no data) as chosen by
    :func:`region_windows`, ``metas`` their ``(transform, CRS, edges)``; returns the region's
    ``(band, rows, cols)`` uint16 DN.
    """
    r0, r1, c0, c1 = region
    e0, e1, f0, f1 = _expand_region(region, grid.shape)
    dst_transform = grid.transform @ Affine.translation(f0, e0)
    values, weights = [], []
    for window, (src_transform, src_crs, edges) in zip(windows, metas, strict=True):
        valid = (window != 0).all(axis=0)
        w = feather_weights_block(valid, feather_px, edge_is_nodata=edges)
        v, w = _warp_tiled(
            window, w, src_transform, src_crs, grid, dst_transform, (e1 - e0, f1 - f0), resampling
        )
        values.append(v[:, r0 - e0 : r1 - e0, c0 - f0 : c1 - f0])
        weights.append(w[r0 - e0 : r1 - e0, c0 - f0 : c1 - f0])
    if not values:
        return np.zeros((n_bands, r1 - r0, c1 - c0), np.uint16)
    return blend_block(values, weights)


def _expand_region(region: Region, shape: tuple[int, int]) -> Region:
    """The region grown outwards to the global warp-tile lattice (clipped to the grid)."""
    r0, r1, c0, c1 = region
    t = _WARP_TILE_PX
    return (
        r0 // t * t,
        min(-(-r1 // t) * t, shape[0]),
        c0 // t * t,
        min(-(-c1 // t) * t, shape[1]),
    )


def _warp_tiled(
    window: np.ndarray,
    weights: np.ndarray,
    src_transform: Affine,
    src_crs: str,
    grid: TargetGrid,
    dst_transform: Affine,
    dst_shape: tuple[int, int],
    resampling: ResamplingName,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`reproject_block` tile by tile on the global warp-tile lattice.

    GDAL's approximate transformer (0.125 px, not configurable through ``reproject``) interpolates
    along each destination scanline of a call, so results depend on the extent of the call.
    Warping fixed tiles of the grid, each from the source pixels its footprint needs, makes every
    pixel's value independent of how the grid was cut into regions.
    """
    if nested_offset(src_transform, src_crs, dst_transform, grid.crs) is not None:
        return reproject_block(
            window,
            weights,
            src_transform=src_transform,
            src_crs=src_crs,
            dst_transform=dst_transform,
            dst_crs=grid.crs,
            dst_shape=dst_shape,
        )
    rows, cols = dst_shape
    vals = np.zeros((window.shape[0], rows, cols), np.float32)
    weight = np.zeros((rows, cols), np.float32)
    pad = math.ceil(KERNEL_RADIUS_PX[resampling] * max(1.0, grid.resolution_m / src_transform.a))
    src = SourceGrid(transform=src_transform, crs=src_crs, shape=window.shape[1:])
    t = _WARP_TILE_PX
    for y0 in range(0, rows, t):
        for x0 in range(0, cols, t):
            tile = (y0, min(y0 + t, rows), x0, min(x0 + t, cols))
            tile_transform = dst_transform @ Affine.translation(x0, y0)
            tile_shape = (tile[1] - y0, tile[3] - x0)
            sub = _source_window(tile_shape, tile_transform, grid.crs, src, pad + 2)
            if sub is None:
                continue
            a0, a1, b0, b1 = sub
            v, w = reproject_block(
                window[:, a0:a1, b0:b1],
                weights[a0:a1, b0:b1],
                src_transform=src_transform @ Affine.translation(b0, a0),
                src_crs=src_crs,
                dst_transform=tile_transform,
                dst_crs=grid.crs,
                dst_shape=tile_shape,
                resampling=resampling,
            )
            vals[:, y0 : tile[1], x0 : tile[3]] = v
            weight[y0 : tile[1], x0 : tile[3]] = w
    return vals, weight


Window: TypeAlias = tuple[int, int, int, int]
"""``(row0, row1, col0, col1)`` pixel slice of a source array."""
SourceMeta: TypeAlias = tuple[Affine, str, Edges]
"""``(transform, CRS, edges)`` of a source window; ``edges`` flags sides at the array edge."""


class SourceGrid(NamedTuple):
    """Where a source array lies: enough to choose windows without its data."""

    transform: Affine
    """Transform of the source array's upper-left pixel."""
    crs: str
    """CRS of the source."""
    shape: tuple[int, int]
    """``(rows, cols)`` of the source array."""


@dataclass(frozen=True)
class _Source:
    """A validated source: its lazy data and grid."""

    data: da.Array
    transform: Affine
    crs: str
    blocks: np.ndarray | None = None
    """The chunks of ``data`` as Delayed objects, shared by all region tasks (graph side)."""

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape[1], self.data.shape[2]


def _coerce_sources(sources: Sequence[xr.DataArray]) -> tuple[list[_Source], np.ndarray | None]:
    """Check dims, dtype, CRS and bands; return the sources and the shared band coordinate."""
    if isinstance(sources, xr.DataArray) or not len(sources):
        raise ConfigError("sources must be a non-empty sequence of (band, y, x) DataArrays")
    out, bands = [], None
    for i, src in enumerate(sources):
        if tuple(src.dims) != ("band", "y", "x") or src.dtype != np.uint16:
            raise GridMismatchError(
                f"source {i} has dims {tuple(src.dims)} and dtype {src.dtype}; expected "
                "('band', 'y', 'x') uint16 DN (one time step: select or composite first)"
            )
        if src.rio.crs is None:
            raise GridMismatchError(
                f"source {i} has no CRS; set it with .rio.write_crs('EPSG:326..')"
            )
        t = src.rio.transform()
        if t.b or t.d or t.a <= 0 or t.e >= 0:
            raise GridMismatchError(
                f"source {i} is not north-up (transform {tuple(t)[:6]}); give y descending"
            )
        src_bands = src["band"].values if "band" in src.coords else None
        if i == 0:
            bands = src_bands
        elif src.sizes["band"] != sources[0].sizes["band"] or (
            bands is not None and src_bands is not None and list(src_bands) != list(bands)
        ):
            raise GridMismatchError(
                f"source {i} has bands {src_bands} but source 0 has {bands}; select the same "
                "bands in the same order (src.sel(band=[...]))"
            )
        data = src.data if isinstance(src.data, da.Array) else da.from_array(src.values)
        # Region tasks get source windows assembled from these shared chunk tasks: slicing the
        # dask array per region instead made every region recompute the chunks it overlaps.
        blocks = data.to_delayed(optimize_graph=False)
        out.append(_Source(data=data, transform=t, crs=src.rio.crs.to_string(), blocks=blocks))
    return out, bands


def _source_window(
    shape: tuple[int, int], transform: Affine, crs: str, src: SourceGrid | _Source, pad_px: int
) -> tuple[int, int, int, int] | None:
    """``(row0, row1, col0, col1)`` of the source pixels a destination block needs, or None."""
    rows, cols = shape
    left, top = transform.c - transform.a, transform.f - transform.e
    right, bottom = transform.c + (cols + 1) * transform.a, transform.f + (rows + 1) * transform.e
    if parse_crs(src.crs) != parse_crs(crs):
        left, bottom, right, top = get_transformer(crs, src.crs).transform_bounds(
            left, bottom, right, top, densify_pts=21
        )
    inv = ~src.transform
    col_a, row_a = inv @ (left, top)
    col_b, row_b = inv @ (right, bottom)
    src_rows, src_cols = src.shape
    y0 = max(math.floor(min(row_a, row_b)) - pad_px, 0)
    y1 = min(math.ceil(max(row_a, row_b)) + pad_px, src_rows)
    x0 = max(math.floor(min(col_a, col_b)) - pad_px, 0)
    x1 = min(math.ceil(max(col_a, col_b)) + pad_px, src_cols)
    if y0 >= y1 or x0 >= x1:
        return None
    return y0, y1, x0, x1


def mosaic(
    sources: Sequence[xr.DataArray],
    grid: TargetGrid,
    *,
    chunk_px: int = 2048,
    feather_px: float = DEFAULT_FEATHER_PX,
    aoi: AOI | None = None,
    resampling: ResamplingName = "cubic",
) -> xr.DataArray:
    """Blend per-zone (or per-tile) results into one lazy national mosaic.

    Parameters
    ----------
    sources
        ``(band, y, x)`` uint16 DN arrays (0 = no data), each with a rioxarray CRS and
        pixel-centre coordinates (e.g. :func:`s2scale.infer.upscale` results, one per UTM zone),
        all with the same bands. Numpy- or Dask-backed.
    grid
        Output grid (:func:`~s2scale.grid.target_grid`; EPSG:3035 at 5 m by default there).
    chunk_px
        Edge of one output region / Dask chunk in grid pixels.
    feather_px
        Width of the blending ramp in source pixels, measured from each source's valid-data edge
        (no data or array edge); ``0`` gives hard edges (plain averages in overlaps).
    aoi
        Only regions intersecting this AOI are computed; others are 0 (no data).
    resampling
        ``"cubic"`` (default), ``"lanczos"``, ``"bilinear"`` or ``"nearest"``; unused where
        pixels nest.

    Returns
    -------
    xarray.DataArray
        ``(band, y, x)`` uint16 DN on ``grid`` (0 = no data), Dask-backed with ``(band, chunk_px,
        chunk_px)`` chunks, pixel-centre coordinates, CRS and transform set. Nothing is computed.

    Raises
    ------
    ConfigError
        Bad ``chunk_px``, ``feather_px`` or ``resampling``.
    GridMismatchError
        Sources with other dims, dtype, bands, no CRS or not north-up.
    """
    if chunk_px < 1:
        raise ConfigError(f"chunk_px={chunk_px} must be a positive number of pixels")
    if not feather_px >= 0:
        raise ConfigError(f"feather_px={feather_px} must be >= 0 source pixels")
    check_resampling(resampling)
    srcs, bands = _coerce_sources(sources)
    n_bands = srcs[0].data.shape[0]
    plan = plan_chunks(grid, chunk_px, aoi)
    wanted = set(plan.regions)
    rows, cols = grid.shape
    blocks: list[list[da.Array]] = []
    for r0 in range(0, rows, chunk_px):
        row_blocks = []
        for c0 in range(0, cols, chunk_px):
            region = (r0, min(r0 + chunk_px, rows), c0, min(c0 + chunk_px, cols))
            shape = (n_bands, region[1] - r0, region[3] - c0)
            if region in wanted:
                task = _region_task(region, grid, srcs, n_bands, feather_px, resampling)
                row_blocks.append(da.from_delayed(task, shape=shape, dtype=np.uint16))
            else:
                row_blocks.append(da.zeros(shape, dtype=np.uint16, chunks=shape))
        blocks.append(row_blocks)
    data = da.block(blocks)
    y, x = grid.coords()
    coords = {"band": bands if bands is not None else np.arange(n_bands), "y": y, "x": x}
    attrs = {"nodata": 0, "feather_px": feather_px, "resampling": resampling}
    out = xr.DataArray(data, dims=("band", "y", "x"), coords=coords, attrs=attrs)
    log.info(
        "mosaic: %d sources -> %s %dx%d px, %d of %d regions",
        len(srcs),
        grid.crs,
        rows,
        cols,
        len(plan),
        plan.total_chunks,
    )
    return out.rio.write_crs(grid.crs).rio.write_transform(grid.transform)


def _window_task(src: _Source, y0: int, y1: int, x0: int, x1: int) -> dask.delayed:
    """Delayed ``src.data[:, y0:y1, x0:x1]`` built from the source's shared chunk tasks."""
    ys = np.cumsum((0, *src.data.chunks[1]))
    xs = np.cumsum((0, *src.data.chunks[2]))
    by0, by1 = int(np.searchsorted(ys, y0, "right")) - 1, int(np.searchsorted(ys, y1, "left"))
    bx0, bx1 = int(np.searchsorted(xs, x0, "right")) - 1, int(np.searchsorted(xs, x1, "left"))
    assert src.blocks is not None  # set by _coerce_sources
    nested = src.blocks[:, by0:by1, bx0:bx1].tolist()
    crop = (y0 - int(ys[by0]), y1 - int(ys[by0]), x0 - int(xs[bx0]), x1 - int(xs[bx0]))
    return dask.delayed(_assemble_window, pure=True)(nested, crop)


def _assemble_window(nested: list, crop: tuple[int, int, int, int]) -> np.ndarray:
    """Task: join nested ``(band, y, x)`` chunks and crop to the window."""
    a, b, c, d = crop
    return np.block(nested)[:, a:b, c:d]


def region_windows(
    region: Region,
    grid: TargetGrid,
    sources: Sequence[SourceGrid],
    *,
    feather_px: float,
    resampling: ResamplingName,
) -> list[tuple[int, Window, SourceMeta]]:
    """The source windows one region's blend needs, without touching data.

    Returns ``(source index, (row0, row1, col0, col1) in that source, (window transform, CRS,
    edges))`` for each source that overlaps the region (plus the feathering and resampling pad);
    ``edges`` flags the window sides that are the source's array edges. The same rule serves the
    lazy :func:`mosaic` and the work units of :mod:`s2scale.pipeline`, so both blend identically.
    """
    e0, e1, f0, f1 = _expand_region(region, grid.shape)
    dst_transform = grid.transform @ Affine.translation(f0, e0)
    out = []
    for i, src in enumerate(sources):
        scale = max(1.0, grid.resolution_m / src.transform.a)
        pad = math.ceil(feather_px) + math.ceil(KERNEL_RADIUS_PX[resampling] * scale) + 6
        win = _source_window((e1 - e0, f1 - f0), dst_transform, grid.crs, src, pad)
        if win is None:
            continue
        y0, y1, x0, x1 = win
        rows, cols = src.shape
        edges = (y0 == 0, y1 == rows, x0 == 0, x1 == cols)
        out.append((i, win, (src.transform @ Affine.translation(x0, y0), src.crs, edges)))
    return out


def _region_task(
    region: Region,
    grid: TargetGrid,
    srcs: Sequence[_Source],
    n_bands: int,
    feather_px: float,
    resampling: ResamplingName,
) -> dask.delayed:
    """The delayed blend of one region, fed with the overlapping source windows only."""
    found = region_windows(region, grid, srcs, feather_px=feather_px, resampling=resampling)
    windows = [_window_task(srcs[i], *win) for i, win, _ in found]
    return dask.delayed(mosaic_region_block, pure=True)(
        *windows,
        metas=tuple(meta for _, _, meta in found),
        grid=grid,
        region=region,
        n_bands=n_bands,
        feather_px=feather_px,
        resampling=resampling,
    )
