"""Helpers for the inference tests: stand-in upscalers and synthetic cubes (no fixtures)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dask
import numpy as np
import rioxarray  # noqa: F401
import xarray as xr

BANDS = ["blue", "green", "red", "nir"]
SCALE = 2


def nn_upsample(block: np.ndarray) -> np.ndarray:
    """Nearest-neighbour x2 stand-in model, ``(..., C, h, w) -> (..., C, 2h, 2w)``."""
    return block.repeat(SCALE, axis=-2).repeat(SCALE, axis=-1)


def box_sum(block: np.ndarray, radius: int = 2) -> np.ndarray:
    """Deterministic 'conv model' with a known receptive field: (2r+1)^2 box sum / 16, then NN.

    Zero-padded like a network; integer inputs give float32 values on a 1/16 grid, computed in
    the same order for every pixel so crops agree bit for bit wherever the window fits.
    """
    x = block.astype(np.float32)
    pad = [(0, 0)] * (x.ndim - 2) + [(radius, radius)] * 2
    p = np.pad(x, pad)
    h, w = x.shape[-2:]
    out = np.zeros_like(x)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out += p[..., dy : dy + h, dx : dx + w]
    return nn_upsample(out / 16.0)


def box_sum_u16(block: np.ndarray) -> np.ndarray:
    """The box-sum model rounded to uint16 (integer outputs blend exactly)."""
    return np.clip(np.rint(box_sum(block)), 1, 65535).astype(np.uint16)


def box_sum_block(block: np.ndarray, **_: object) -> np.ndarray:
    """The box-sum model as a block Predictor (uint16 out, 0 under no data)."""
    out = box_sum_u16(block)
    valid = nn_upsample(np.all(block > 0, axis=0))
    return np.where(valid, out, 0).astype(np.uint16)


def field(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Smooth-ish uint16 reflectance DN in [200, 4000] with some sharp edges."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(300, 3500, (*shape[:-2], shape[-2] // 4 + 1, shape[-1] // 4 + 1))
    smooth = coarse.repeat(4, -2).repeat(4, -1)[..., : shape[-2], : shape[-1]]
    noise = rng.normal(0, 150, shape)
    return np.clip(smooth + noise, 200, 4000).astype(np.uint16)


def make_cube(ny: int = 48, nx: int = 40, *, time: int = 0, seed: int = 0) -> xr.DataArray:
    """A (band, y, x) or (time, band, y, x) uint16 cube on a 10 m UTM 33N grid."""
    shape = (len(BANDS), ny, nx) if not time else (time, len(BANDS), ny, nx)
    coords = {
        "band": BANDS,
        "y": 5_300_000.0 - 5.0 - 10.0 * np.arange(ny),
        "x": 500_000.0 + 5.0 + 10.0 * np.arange(nx),
    }
    dims = ("band", "y", "x")
    if time:
        dims = ("time", *dims)
        coords["time"] = np.array(["2024-06-01", "2024-06-11", "2024-06-21"][:time], "M8[ns]")
    cube = xr.DataArray(field(shape, seed), dims=dims, coords=coords, name="reflectance")
    return cube.rio.write_crs("EPSG:32633")


class _CountingScheduler:
    """A scheduler that fails once more than ``max_computes`` computes happen (xarray's idea)."""

    def __init__(self, max_computes: int = 0) -> None:
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(f"too many dask computations: {self.total_computes}")
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0) -> Iterator[_CountingScheduler]:
    scheduler = _CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler
