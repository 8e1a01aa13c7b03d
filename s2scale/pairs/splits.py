"""Spatial train/val/test splits of patches without shared pixels (pure numpy).

- :func:`split_blocks`: whole blocks of one image's pixel grid go to one split;
- :func:`location_splits`: blocks of a fixed map grid, so every image over one place shares them.

A patch whose footprint touches blocks of two splits is marked ``-1`` (drop it). Split codes
0, 1, 2 are the names in :data:`~s2scale.pairs.kernels.SPLITS`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from s2scale.errors import ConfigError, GridMismatchError

__all__ = ["STUDY_SPLIT", "location_splits", "split_blocks"]


STUDY_SPLIT: tuple[float, float, float] = (1500.0, 374.0, 208.0)
"""Train, val and test patch counts of the reference study, used as split proportions."""


def _coerce_fractions(fractions: Sequence[float]) -> np.ndarray:
    """Three shares >= 0 with a positive sum, normalised to 1."""
    fr = np.asarray(fractions, np.float64)
    if fr.shape != (3,) or (fr < 0).any() or fr.sum() <= 0:
        raise ConfigError(
            f"fractions must be three shares >= 0 (train, val, test), got {fractions}"
        )
    return fr / fr.sum()


def split_blocks(
    origins: np.ndarray,
    *,
    patch_px: int,
    block_px: int,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> np.ndarray:
    """Spatial split: whole blocks of the grid go to train, val or test (no pixel leakage).

    Each block of ``block_px x block_px`` LR pixels draws its split with probabilities
    ``fractions`` from a generator seeded with ``(seed, block row, block col)``, so blocks of the
    same size in metres get the same split on grids of other resolutions with the same origin
    (e.g. 10 m and 20 m pairs of one area). A patch takes the split of the block holding its
    top-left pixel; a patch whose footprint also covers a block of another split would share
    pixels with that split's patches, so it is marked ``-1`` (drop it).

    Parameters
    ----------
    origins
        ``(N, 2)`` LR ``(row, col)`` of each patch's top-left pixel.
    patch_px
        LR patch edge.
    block_px
        Block edge in LR pixels (several patches; e.g. 4 x ``patch_px``).
    fractions
        Train, val, test shares (normalised to sum to 1).
    seed
        Seed of the block draws.

    Returns
    -------
    numpy.ndarray
        int8 ``(N,)``: 0 train, 1 val, 2 test (:data:`~s2scale.pairs.kernels.SPLITS`), -1 dropped.

    Examples
    --------
    >>> origins = np.array([[0, 0], [0, 4], [0, 2]])
    >>> split_blocks(origins, patch_px=4, block_px=4, fractions=(0.5, 0.5, 0), seed=3).tolist()
    [0, 1, -1]
    """
    fr = _coerce_fractions(fractions)
    if block_px < 1 or patch_px < 1:
        raise ConfigError(f"block_px={block_px} and patch_px={patch_px} must be >= 1")
    origins = np.asarray(origins, np.int64).reshape(-1, 2)
    if len(origins) == 0:
        return np.zeros(0, np.int8)
    last = (origins + patch_px - 1) // block_px
    nrows, ncols = int(last[:, 0].max()) + 1, int(last[:, 1].max()) + 1
    # One uniform draw per block from (seed, row, col): a block's split does not depend on the
    # size of the image, so grids of other resolutions over the same area share the blocks.
    draws = np.array(
        [[np.random.default_rng([seed, r, c]).random() for c in range(ncols)] for r in range(nrows)]
    )
    bounds = np.cumsum(fr)
    block_split = np.searchsorted(bounds, draws, side="right").clip(0, 2)
    first = origins // block_px
    out = block_split[first[:, 0], first[:, 1]].astype(np.int8)
    for i, ((r0, c0), (r1, c1)) in enumerate(zip(first, last, strict=True)):
        if (block_split[r0 : r1 + 1, c0 : c1 + 1] != out[i]).any():
            out[i] = -1
    return out


def location_splits(
    bounds: np.ndarray,
    *,
    block_m: float,
    fractions: Sequence[float] = STUDY_SPLIT,
    seed: int = 0,
) -> np.ndarray:
    """Spatial split by blocks of a fixed map grid: no pixel is shared between splits.

    The plane of one CRS (e.g. EPSG:3035 for Europe) is cut into ``block_m`` squares from its
    origin; each block draws train, val or test with probabilities ``fractions`` from a
    generator seeded with ``(seed, block column, block row)``. A patch takes the split of the
    blocks its footprint touches; one that touches blocks of two splits is marked ``-1`` (drop
    it). Because blocks are fixed on the ground, patches of every orthophoto, observation and
    UTM zone over the same place get the same split.

    Parameters
    ----------
    bounds
        ``(N, 4)`` ``(minx, miny, maxx, maxy)`` of each patch footprint in the block CRS, e.g.
        the bounding box of the patch transformed there.
    block_m
        Block edge in CRS units (metres).
    fractions
        Train, val, test shares (normalised); default the study's 1500/374/208.
    seed
        Seed of the block draws.

    Returns
    -------
    numpy.ndarray
        int8 ``(N,)``: 0 train, 1 val, 2 test (:data:`~s2scale.pairs.kernels.SPLITS`), -1 dropped.

    Examples
    --------
    >>> b = np.array([[0, 0, 100, 100], [100, 0, 200, 100], [50, 0, 150, 100]], float)
    >>> location_splits(b, block_m=100, fractions=(1, 1, 0), seed=0).tolist()
    [1, 0, -1]
    """
    if not block_m > 0:
        raise ConfigError(f"block_m={block_m} must be > 0 metres")
    edges = np.cumsum(_coerce_fractions(fractions))
    b = np.asarray(bounds, np.float64).reshape(-1, 4)
    if not np.isfinite(b).all():
        raise GridMismatchError("patch bounds must be finite to split them by location")
    first = np.floor(b[:, :2] / block_m).astype(np.int64)
    last = np.maximum(np.ceil(b[:, 2:] / block_m).astype(np.int64) - 1, first)
    cache: dict[tuple[int, int], int] = {}

    def block(i: int, j: int) -> int:
        if (i, j) not in cache:
            draw = np.random.default_rng([seed, i + 2**31, j + 2**31]).random()
            cache[i, j] = int(np.searchsorted(edges, draw, side="right").clip(0, 2))
        return cache[i, j]

    out = np.empty(len(b), np.int8)
    for n, ((i0, j0), (i1, j1)) in enumerate(zip(first, last, strict=True)):
        seen = {block(i, j) for i in range(i0, i1 + 1) for j in range(j0, j1 + 1)}
        out[n] = seen.pop() if len(seen) == 1 else -1
    return out
