"""Feathered blending of per-zone 5 m results onto one national grid.

The numpy kernels (STYLE section 2, layer 1): :func:`feather_weights_block`,
:func:`normalise_weights_block`, :func:`reproject_block` and :func:`blend_block`; no Dask, no files.
The lazy graph that uses them is :func:`s2scale.mosaic.graph.mosaic`.

How a national region is made
-----------------------------
For every region of :func:`~s2scale.grid.plan_chunks` one task receives, from each source that
overlaps it, only the source window covering the region plus a margin of
``feather_px + resampling support + 2`` source pixels. In that window the task

1. marks valid pixels (every band non-zero; 0 = no data, as in :mod:`s2scale.cube`),
2. computes feather weights: Euclidean distance to the nearest invalid pixel or *true* array edge,
   divided by ``feather_px`` and capped at 1. Window cuts inside the source are not edges, and the
   margin keeps every pixel that matters at least ``feather_px`` away from them, so the capped
   weights equal those of the whole source: results do not depend on where regions are cut,
3. warps ``weight * value`` and ``weight`` with the same kernel and divides (normalised
   convolution), so no-data pixels never leak into values,
4. blends all sources with per-pixel weights normalised to sum 1, so radiometric differences
   between zones fade over ``feather_px`` instead of showing as a step.

Resampling: ``"cubic"`` (default) keeps about 95 % of the high-frequency energy of the 5 m UTM
result on the EPSG:3035 grid, ``"lanczos"`` all of it at a quarter of the warp speed, and
``"bilinear"`` only about 80 %: it blurs what super-resolution added (Wald protocol on real
Sentinel-2, benchmarks/bench_resampling.py). Cubic and lanczos ring: values are clipped to
1..65535 and weights to >= 0; where their warped weight falls below half the bilinear one (next
to no data, hard cuts) the bilinear result is used, so edges stay clean and no pixel falls
through a gap.
Bilinear is a convex combination and never overshoots. ``"nearest"`` keeps source values. Where
a source's CRS, resolution and pixel lattice equal the grid's (a UTM national grid), pixels nest
and are copied without resampling.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal, TypeAlias

import numpy as np
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import reproject
from scipy import ndimage

from s2scale.errors import ConfigError

__all__ = [
    "DEFAULT_FEATHER_PX",
    "KERNEL_RADIUS_PX",
    "Edges",
    "Region",
    "ResamplingName",
    "blend_block",
    "check_resampling",
    "feather_weights_block",
    "get_transformer",
    "nested_offset",
    "normalise_weights_block",
    "parse_crs",
    "reproject_block",
]

log = logging.getLogger(__name__)

# rasterio's reproject of numpy arrays builds in-memory datasets before it sets their transform
# and silences the NotGeoreferencedWarning that this raises with warnings.catch_warnings, which
# is not thread-safe: on a threaded Dask worker another thread's exit from it lets the warning
# through. Every array warped here carries its transform, so the warning is always spurious.
warnings.filterwarnings("ignore", category=NotGeoreferencedWarning, module=r"rasterio\.warp")

Region: TypeAlias = tuple[int, int, int, int]
"""``(row0, row1, col0, col1)`` pixel slices of a grid."""
ResamplingName: TypeAlias = Literal["nearest", "bilinear", "cubic", "lanczos"]
Edges: TypeAlias = tuple[bool, bool, bool, bool]
"""``(top, bottom, left, right)``: whether that side of a block is a true array edge."""

DEFAULT_FEATHER_PX = 64
"""Feather width in source pixels (320 m at 5 m): wide enough to hide zone offsets."""

_RESAMPLING = {
    "nearest": Resampling.nearest,
    "bilinear": Resampling.bilinear,
    "cubic": Resampling.cubic,
    "lanczos": Resampling.lanczos,
}
KERNEL_RADIUS_PX: dict[str, int] = {"nearest": 1, "bilinear": 1, "cubic": 2, "lanczos": 3}
"""Support radius of each resampling kernel in source pixels (how much context a warp needs)."""
_MIN_WEIGHT = 1e-4
"""Warped weights below this count as no data (bilinear tails, cubic ringing)."""
_RINGING = frozenset({"cubic", "lanczos"})
_EDGE_RATIO = 0.5
"""Where a ringing kernel's warped weight is below this share of the bilinear one, the bilinear
result is used (next to no data and hard cuts)."""


# ---------------------------------------------------------------------------------------- kernels
def feather_weights_block(
    valid: np.ndarray, feather_px: float, *, edge_is_nodata: bool | Edges = True
) -> np.ndarray:
    """Weights that ramp from 0 at the valid-data edge to 1 over ``feather_px`` pixels.

    Parameters
    ----------
    valid
        ``(y, x)`` bool, True where the source has data.
    feather_px
        Width of the ramp in pixels; ``0`` gives hard weights (1 where valid).
    edge_is_nodata
        Whether the array's sides count as no data: one bool for all sides or ``(top, bottom,
        left, right)``. Use False for sides where a window was cut out of a larger array.

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` float32 in [0, 1]: ``min(distance / feather_px, 1)`` where ``distance`` is the
        Euclidean distance in pixels to the nearest invalid pixel (or edge); 0 where invalid.
        Not normalised: see :func:`normalise_weights_block`.

    Examples
    --------
    >>> w = feather_weights_block(np.ones((1, 5), bool), 2, edge_is_nodata=(0, 0, 1, 1))
    >>> w.tolist()
    [[0.5, 1.0, 1.0, 1.0, 0.5]]
    """
    valid = np.asarray(valid, dtype=bool)
    if valid.ndim != 2:
        raise ConfigError(f"valid must be a (y, x) mask, got shape {valid.shape}")
    if not feather_px >= 0:
        raise ConfigError(f"feather_px={feather_px} must be >= 0 pixels")
    top, bottom, left, right = _coerce_edges(edge_is_nodata)
    if feather_px == 0 or not valid.any():
        return valid.astype(np.float32)
    padded = np.pad(valid, ((top, bottom), (left, right)), constant_values=False)
    if padded.all():
        return np.ones(valid.shape, np.float32)
    h, w = valid.shape
    dist = ndimage.distance_transform_edt(padded)[top : top + h, left : left + w]
    out = dist.astype(np.float32)
    del dist
    out /= np.float32(feather_px)
    return np.minimum(out, np.float32(1.0), out=out)


def _coerce_edges(edges: bool | Sequence[bool]) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` as 0/1 pad widths."""
    if isinstance(edges, bool | np.bool_ | int):
        return (int(bool(edges)),) * 4  # type: ignore[return-value]
    if len(edges) != 4:
        raise ConfigError(f"edge_is_nodata must be a bool or 4 bools, got {edges!r}")
    top, bottom, left, right = (int(bool(e)) for e in edges)
    return top, bottom, left, right


def normalise_weights_block(weights: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel normalised weights: sum 1 where any weight is positive, 0 elsewhere.

    Parameters
    ----------
    weights
        ``n`` arrays ``(y, x)`` float, >= 0.

    Returns
    -------
    numpy.ndarray
        ``(n, y, x)`` float32.

    Examples
    --------
    >>> normalise_weights_block([np.array([[1.0, 0.0]]), np.array([[3.0, 0.0]])]).tolist()
    [[[0.25, 0.0]], [[0.75, 0.0]]]
    """
    stack = np.asarray(weights, dtype=np.float32)
    total = stack.sum(axis=0)
    return np.divide(stack, total, out=np.zeros_like(stack), where=total > 0)


def blend_block(values: Sequence[np.ndarray], weights: Sequence[np.ndarray]) -> np.ndarray:
    """Weighted per-pixel mean of several sources on one grid.

    Parameters
    ----------
    values
        ``n`` arrays ``(band, y, x)`` float32 DN (any value where the weight is 0).
    weights
        ``n`` arrays ``(y, x)`` float32 >= 0; 0 = no data. Normalised here, per pixel.

    Returns
    -------
    numpy.ndarray
        ``(band, y, x)`` uint16 DN, rounded, at least 1 where any weight is positive (so a valid
        pixel never turns into no data), 0 where all weights are 0.

    Examples
    --------
    >>> v = [np.full((1, 1, 2), 100.0, np.float32), np.full((1, 1, 2), 300.0, np.float32)]
    >>> blend_block(v, [np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]])]).tolist()
    [[[200, 0]]]
    """
    if len(values) != len(weights) or not values:
        raise ConfigError(f"need as many weights as values (>0), got {len(values)}/{len(weights)}")
    acc = np.zeros(values[0].shape, np.float32)
    total = np.zeros(values[0].shape[1:], np.float32)
    for v, w in zip(values, weights, strict=True):
        w = np.asarray(w, dtype=np.float32)
        acc += np.asarray(v, dtype=np.float32) * w
        total += w
    valid = total > 0
    np.divide(acc, total, out=acc, where=valid)
    np.rint(acc, out=acc)
    np.clip(acc, 1, np.iinfo(np.uint16).max, out=acc)
    return np.where(valid, acc, 0).astype(np.uint16)


def reproject_block(
    values: np.ndarray,
    weights: np.ndarray,
    *,
    src_transform: Affine,
    src_crs: str,
    dst_transform: Affine,
    dst_crs: str,
    dst_shape: tuple[int, int],
    resampling: ResamplingName = "cubic",
) -> tuple[np.ndarray, np.ndarray]:
    """Warp a source block and its weights onto a destination block (rasterio/GDAL).

    ``weight * value`` and ``weight`` go through the same warp and are divided afterwards, so
    no-data pixels (weight 0) never leak into values. When source and destination share CRS,
    resolution and pixel lattice the block is copied (exact, no resampling). The kernel scale is
    fixed from the nominal resolutions (``XSCALE``/``YSCALE``) rather than estimated per call.
    GDAL's approximate transformer still depends on the destination extent: :func:`mosaic` warps
    fixed grid tiles so that results do not depend on how the grid is cut.

    Parameters
    ----------
    values
        ``(band, h, w)`` DN (uint16 or float).
    weights
        ``(h, w)`` float32 >= 0, 0 = no data (e.g. :func:`feather_weights_block`).
    src_transform, src_crs
        Affine transform (pixel corner) and CRS of the source block.
    dst_transform, dst_crs, dst_shape
        Transform, CRS and ``(rows, cols)`` of the destination block.
    resampling
        ``"cubic"`` (default), ``"lanczos"``, ``"bilinear"`` or ``"nearest"``; see the module
        docstring.

    Returns
    -------
    tuple of numpy.ndarray
        ``(band, rows, cols)`` float32 values (0 where no data) and ``(rows, cols)`` float32
        weights (0 = no data).
    """
    check_resampling(resampling)
    offset = nested_offset(src_transform, src_crs, dst_transform, dst_crs)
    if offset is not None:
        return _copy_nested(values, weights, offset, dst_shape)
    vals, weight = _warp_normalised(values, weights, src_transform, src_crs, dst_transform,
                                    dst_crs, dst_shape, resampling)  # fmt: skip
    if resampling in _RINGING and (weight < 0.999).any():
        # At a no-data edge or hard cut a ringing kernel's weight dips (to ~0 on both sides
        # of a cut at once). Where it falls below half the bilinear weight, the bilinear
        # result (a convex combination) is used; smooth feather ramps keep the sharp kernel.
        vals_b, weight_b = _warp_normalised(
            values, weights, src_transform, src_crs, dst_transform, dst_crs, dst_shape, "bilinear"
        )
        edge = weight < _EDGE_RATIO * weight_b
        vals[:, edge], weight[edge] = vals_b[:, edge], weight_b[edge]
    return vals, weight


def check_resampling(resampling: str) -> None:
    """Raise ConfigError unless ``resampling`` is one of :data:`ResamplingName`.

    Examples
    --------
    >>> check_resampling("bicubic")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    s2scale.errors.ConfigError: resampling='bicubic'; expected one of ['bilinear', 'cubic', ...]
    """
    if resampling not in _RESAMPLING:
        raise ConfigError(f"resampling={resampling!r}; expected one of {sorted(_RESAMPLING)}")


def _warp_normalised(
    values: np.ndarray,
    weights: np.ndarray,
    src_transform: Affine,
    src_crs: str,
    dst_transform: Affine,
    dst_crs: str,
    dst_shape: tuple[int, int],
    resampling: ResamplingName,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``weight * value`` and ``weight`` with one kernel, then divide (normalised conv.)."""
    n_bands = values.shape[0]
    stack = np.empty((n_bands + 1, *values.shape[1:]), np.float32)
    np.multiply(values, weights, out=stack[:n_bands], dtype=np.float32)
    stack[n_bands] = weights
    out = np.zeros((n_bands + 1, *dst_shape), np.float32)
    reproject(
        stack,
        out,
        src_transform=src_transform,
        src_crs=src_crs,
        dst_transform=dst_transform,
        dst_crs=dst_crs,
        resampling=_RESAMPLING[resampling],
        XSCALE=f"{abs(src_transform.a / dst_transform.a):.12g}",
        YSCALE=f"{abs(src_transform.e / dst_transform.e):.12g}",
        SAMPLE_GRID="YES",
        SOURCE_EXTRA=str(KERNEL_RADIUS_PX[resampling] + 1),
    )
    del stack
    weight = out[n_bands]
    np.maximum(weight, 0, out=weight)
    weight[weight < _MIN_WEIGHT] = 0
    vals = out[:n_bands]
    np.divide(vals, weight, out=vals, where=weight > 0)
    vals[:, weight == 0] = 0
    return vals, weight


def nested_offset(
    src_transform: Affine, src_crs: str, dst_transform: Affine, dst_crs: str
) -> tuple[int, int] | None:
    """``(row, col)`` of the source origin on the destination lattice, or None if not nested.

    Nested means the same CRS, pixel size and pixel lattice: the block is then copied, not warped.

    Examples
    --------
    >>> grid = Affine(5.0, 0.0, 0.0, 0.0, -5.0, 100.0)
    >>> nested_offset(Affine(5.0, 0.0, 10.0, 0.0, -5.0, 100.0), "EPSG:32633", grid, "EPSG:32633")
    (0, 2)
    >>> nested_offset(Affine(10.0, 0.0, 10.0, 0.0, -10.0, 100.0), "EPSG:32633", grid, "EPSG:32633")
    """
    s, d = src_transform, dst_transform
    if s.b or s.d or d.b or d.d or s.a != d.a or s.e != d.e:
        return None
    col = (s.c - d.c) / d.a
    row = (s.f - d.f) / d.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    if parse_crs(src_crs) != parse_crs(dst_crs):
        return None
    return round(row), round(col)


@lru_cache(maxsize=64)
def parse_crs(crs: str) -> CRS:
    """A rasterio CRS from any user input (``"EPSG:3035"``, WKT), parsed once per process."""
    return CRS.from_user_input(crs)


def get_transformer(src_crs: str, dst_crs: str) -> Transformer:
    """A pyproj transformer (x/y order), built once per thread and CRS pair."""
    return _cached_transformer(src_crs, dst_crs, threading.get_ident())


@lru_cache(maxsize=256)
def _cached_transformer(src_crs: str, dst_crs: str, thread: int) -> Transformer:
    """Transformers are not shared between threads (PROJ contexts are per thread)."""
    return Transformer.from_crs(src_crs, dst_crs, always_xy=True)


def _copy_nested(
    values: np.ndarray, weights: np.ndarray, offset: tuple[int, int], dst_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Copy a source block onto a destination block of the same lattice."""
    row, col = offset
    rows, cols = dst_shape
    h, w = weights.shape
    vals = np.zeros((values.shape[0], rows, cols), np.float32)
    weight = np.zeros((rows, cols), np.float32)
    r0, r1 = max(row, 0), min(row + h, rows)
    c0, c1 = max(col, 0), min(col + w, cols)
    if r0 < r1 and c0 < c1:
        src = (slice(r0 - row, r1 - row), slice(c0 - col, c1 - col))
        weight[r0:r1, c0:c1] = weights[src]
        vals[:, r0:r1, c0:c1] = values[(slice(None), *src)]
        vals[:, weight == 0] = 0
    return vals, weight
