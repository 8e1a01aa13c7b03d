"""Cloud masks and composites of the cubes of :mod:`s2scale.cube`.

SCL masking, merging the tiles of one pass into one observation, and the per-pixel median over
observations.

Layers (STYLE section 2): pure numpy kernels (``*_block``), Dask graph wrappers, xarray public
functions that keep coordinates and CRS; nothing here computes. Values are harmonised DN,
uint16 with 0 = no data (:mod:`s2scale.cube`).
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
import xarray as xr

from s2scale.errors import ConfigError
from s2scale.sentinel2 import MASK_BAND

__all__ = [
    "INVALID_SCL",
    "SNOW_SCL",
    "composite",
    "composite_block",
    "mask_block",
    "mask_clouds",
    "merge_observations_block",
]

INVALID_SCL: tuple[int, ...] = (0, 1, 3, 8, 9, 10)
"""SCL classes masked out: no data, saturated/defective, cloud shadow, cloud medium and high
probability, thin cirrus. Snow (11) is added with ``mask_snow=True``."""
SNOW_SCL = 11


def mask_block(
    refl: np.ndarray, scl: np.ndarray, invalid_classes: Sequence[int] = INVALID_SCL
) -> np.ndarray:
    """Set pixels to 0 (no data) where SCL is invalid or any band is 0.

    Parameters
    ----------
    refl
        ``(..., band, y, x)`` uint16 harmonised DN.
    scl
        ``(..., y, x)`` SCL classes on the same grid.
    invalid_classes
        SCL classes to mask.

    Examples
    --------
    >>> refl = np.array([[[5, 6]], [[7, 0]]], dtype=np.uint16)   # (band=2, y=1, x=2)
    >>> mask_block(refl, np.array([[4, 4]])).tolist()
    [[[5, 0]], [[7, 0]]]
    >>> mask_block(refl, np.array([[9, 4]])).tolist()
    [[[0, 0]], [[0, 0]]]
    """
    bad = np.isin(scl, np.asarray(invalid_classes)) | (refl == 0).any(axis=-3)
    return np.where(bad[..., None, :, :], np.uint16(0), refl).astype(np.uint16)


def mask_clouds(cube: xr.DataArray, *, mask_snow: bool = False) -> xr.DataArray:
    """Mask clouds, shadows, cirrus and no data using the cube's ``scl`` band.

    Returns the reflectance bands only (``scl`` dropped), masked pixels set to 0, lazily.
    """
    if MASK_BAND not in cube.band.values:
        raise ConfigError("mask_clouds needs a cube loaded with bands=(..., 'scl')")
    classes = (*INVALID_SCL, SNOW_SCL) if mask_snow else INVALID_SCL
    refl = cube.sel(band=[b for b in cube.band.values if b != MASK_BAND])
    scl = cube.sel(band=[MASK_BAND])  # keeps the band axis for block alignment
    if isinstance(refl.data, da.Array):
        data = da.map_blocks(
            _mask_chunk, refl.data, scl.data, dtype=np.uint16, invalid_classes=classes
        )
    else:
        data = _mask_chunk(refl.values, scl.values, invalid_classes=classes)
    return refl.copy(data=data)


def _mask_chunk(refl: np.ndarray, scl: np.ndarray, *, invalid_classes: Sequence[int]) -> np.ndarray:
    """Apply :func:`mask_block` to blocks where SCL still has its (length-1) band axis."""
    return mask_block(refl, scl[..., 0, :, :], invalid_classes)


def merge_observations_block(stack: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Merge the time slices of each observation, keeping the first valid pixel in time order.

    Parameters
    ----------
    stack
        ``(time, band, y, x)`` uint16 harmonised DN, 0 = no data; a pixel is valid where all its
        bands are > 0.
    groups
        ``(time,)`` non-negative integer observation id of each slice (e.g. the cube's
        ``observation`` coordinate, see :func:`observation_ids`).

    Returns
    -------
    numpy.ndarray
        ``(groups.max() + 1, band, y, x)`` uint16: for each observation and pixel, all bands of
        its first valid slice, 0 where none is valid (also for ids that have no slice).

    Raises
    ------
    ConfigError
        If ``groups`` is not one non-negative integer per time slice.

    Examples
    --------
    >>> s = np.array([[0, 7], [5, 8], [6, 0]], dtype=np.uint16).reshape(3, 1, 1, 2)
    >>> merge_observations_block(s, np.array([0, 0, 1]))[:, 0, 0].tolist()
    [[5, 7], [6, 0]]
    """
    groups = np.asarray(groups)
    if (
        groups.ndim != 1
        or groups.shape[0] != stack.shape[0]
        or groups.dtype.kind not in "iu"
        or (groups.size and groups.min() < 0)
    ):
        raise ConfigError(
            f"groups must hold one non-negative integer id per time slice ({stack.shape[0]}), "
            f"got shape {groups.shape} dtype {groups.dtype}; use observation_ids(scenes)"
        )
    n = int(groups.max()) + 1 if groups.size else 0
    out = np.zeros((n, *stack.shape[1:]), dtype=np.uint16)
    filled = np.zeros((n, *stack.shape[2:]), dtype=bool)
    valid = (stack > 0).all(axis=1)  # (time, y, x)
    for t, g in enumerate(groups.tolist()):
        take = valid[t] & ~filled[g]
        np.copyto(out[g], stack[t], where=take[None])
        filled[g] |= take
    return out


def composite_block(
    stack: np.ndarray, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Median of the valid (non-zero) observations along the first axis.

    Parameters
    ----------
    stack
        ``(time, band, y, x)`` uint16 harmonised DN, 0 = masked.
    groups
        Optional ``(time,)`` observation ids; slices of one observation are first merged with
        :func:`merge_observations_block`, so each observation counts once. Default: every slice
        is its own observation.

    Returns
    -------
    tuple of numpy.ndarray
        ``(band, y, x)`` uint16 median (0 where no clear observation; the mean of the two middle
        values, rounded half up, for an even count) and ``(y, x)`` uint16 clear-observation count.

    Examples
    --------
    >>> s = np.array([1, 0, 5, 9], dtype=np.uint16).reshape(4, 1, 1, 1)
    >>> med, n = composite_block(s)
    >>> int(med[0, 0, 0]), int(n[0, 0])
    (5, 3)
    >>> med, n = composite_block(s, groups=np.array([0, 0, 1, 1]))  # two passes of two tiles
    >>> int(med[0, 0, 0]), int(n[0, 0])
    (3, 2)
    """
    if groups is not None:
        stack = merge_observations_block(stack, groups)
    valid = (stack > 0).all(axis=1)  # (time, y, x)
    count = valid.sum(axis=0).astype(np.uint16)
    f = np.where(valid[:, None], stack.astype(np.float32), np.nan)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices -> NaN, handled
            med = np.nanmedian(f, axis=0)
    med = np.where(np.isnan(med), 0, np.floor(med + 0.5))
    return med.astype(np.uint16), count


def _composite_chunk(stack: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Median and count of one chunk in one pass: ``(band + 1, y, x)``, the count last."""
    value, count = composite_block(stack, groups)
    return np.concatenate([value, count[None]])


def _coerce_observations(cube: xr.DataArray) -> np.ndarray | None:
    """Dense ``0..n-1`` ids from the cube's ``observation`` coordinate, or None without one."""
    if "observation" not in cube.coords:
        return None
    obs = cube.coords["observation"]
    if obs.dims != ("time",) or obs.dtype.kind not in "iu":
        raise ConfigError(
            f"coordinate 'observation' must hold integer ids along 'time', got dims {obs.dims} "
            f"and dtype {obs.dtype}; set it with observation_ids(scenes) or drop it"
        )
    return np.unique(obs.values, return_inverse=True)[1].reshape(-1).astype(np.int64)


def composite(cube: xr.DataArray) -> xr.Dataset:
    """Temporal median composite of clear observations.

    Parameters
    ----------
    cube
        Masked ``(time, band, y, x)`` uint16 cube (0 = no data), e.g. from :func:`mask_clouds`.
        With an integer ``observation`` coordinate along time (as :func:`load_cube` sets), the
        slices of one observation are merged first (:func:`merge_observations_block`), so a
        pass seen by two overlapping tiles counts once; without it each slice is one
        observation.

    Returns
    -------
    xarray.Dataset
        ``reflectance`` ``(band, y, x)`` uint16 harmonised DN (median over clear observations,
        0 = none) and ``clear_count`` ``(y, x)`` uint16 number of clear observations, lazily,
        with the cube's CRS.

    Raises
    ------
    ConfigError
        If the dims are not ``(time, band, y, x)`` or ``observation`` is not integer along time.
    """
    if cube.dims != ("time", "band", "y", "x"):
        raise ConfigError(f"composite needs dims (time, band, y, x), got {cube.dims}")
    groups = _coerce_observations(cube)
    data = cube.data
    if isinstance(data, da.Array):
        data = data.rechunk({0: -1, 1: -1})
        n_bands = data.shape[1]
        both = da.map_blocks(
            _composite_chunk, data, drop_axis=0, dtype=np.uint16,
            chunks=((n_bands + 1,), *data.chunks[2:]), groups=groups,
        )  # fmt: skip
        value, count = both[:n_bands], both[n_bands]
    else:
        value, count = composite_block(np.asarray(data), groups)
    coords = {k: cube.coords[k] for k in ("band", "y", "x")}
    ds = xr.Dataset(
        {
            "reflectance": (
                ("band", "y", "x"),
                value,
                {"units": cube.attrs.get("units", ""), "nodata": 0},
            ),
            "clear_count": (("y", "x"), count, {"long_name": "clear observations"}),
        },
        coords=coords,
    )
    return ds.rio.write_crs(cube.rio.crs)
