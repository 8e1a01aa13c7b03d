"""Fill no-data holes of an LR block before the network: valid pixels near holes keep their level.

A cloud hole stored as 0 DN enters a generator as zero reflectance, and every valid pixel whose
receptive field reaches the hole comes out darker.
:func:`fill_nodata` replaces holes by values grown from the valid pixels around them, one ring per
round: each round, every hole pixel with at least one valid (or already filled) pixel among its
8 neighbours takes their mean. After ``k`` rounds every hole pixel within ``k`` px (Chebyshev) of
valid data is filled, and its value depends only on the input within that distance, so the fill
is the same in every chunking as long as the block holds that context (the caller's halo does).
Pixels farther than ``radius_px`` from any valid pixel take the band mean of the block's valid
pixels; choose ``radius_px`` at least the network's halo so that no valid output can see them.

The caller masks the output again (HR no data = LR no data upsampled by nearest), so filled
values never reach the result.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate

__all__ = ["fill_nodata"]

_NEIGHBOURS = np.ones((3, 3), np.float32)


def _bbox(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    """Rows and columns holding ``mask``'s True pixels, widened by ``pad`` (clipped)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (
        slice(max(int(rows[0]) - pad, 0), min(int(rows[-1]) + pad + 1, h)),
        slice(max(int(cols[0]) - pad, 0), min(int(cols[-1]) + pad + 1, w)),
    )


def fill_nodata(block: np.ndarray, valid: np.ndarray, radius_px: int) -> np.ndarray:
    """Fill the holes (``~valid``) of a ``(C, H, W)`` block by ``radius_px`` rounds of growth.

    Parameters
    ----------
    block
        ``(C, H, W)`` uint16 DN (any numeric dtype); values under holes are ignored.
    valid
        ``(H, W)`` bool, True where every band holds data.
    radius_px
        Rounds of growth (LR px); holes farther than this from valid data get the band means of
        the valid pixels.

    Returns
    -------
    numpy.ndarray
        ``(C, H, W)`` of ``block``'s dtype, equal to ``block`` on valid pixels; filled values are
        rounded for integer dtypes (uint16 DN stay within ``1..65535``). A block without valid
        pixels is returned unchanged.

    Examples
    --------
    >>> b = np.array([[[10, 0, 0, 30]]], np.uint16)
    >>> fill_nodata(b, b[0] > 0, 2).tolist()
    [[[10, 10, 30, 30]]]
    """
    if valid.all() or not valid.any():
        return block
    vals = np.where(valid, block, 0).astype(np.float32)
    known = valid.copy()
    for _ in range(radius_px):
        todo = ~known
        if not todo.any():
            break
        ys, xs = _bbox(todo, 1)
        sub_known = known[ys, xs]
        count = correlate(sub_known.astype(np.float32), _NEIGHBOURS, mode="constant")
        new = ~sub_known & (count > 0)
        if not new.any():
            break
        for i in range(vals.shape[0]):
            total = correlate(vals[i, ys, xs] * sub_known, _NEIGHBOURS, mode="constant")
            vals[i, ys, xs] = np.where(new, total / np.maximum(count, 1), vals[i, ys, xs])
        known[ys, xs] |= new
    if not known.all():
        means = np.array([b[valid].mean() for b in vals], np.float32)
        vals[:, ~known] = means[:, None]
    if np.issubdtype(block.dtype, np.integer):
        info = np.iinfo(block.dtype)
        vals = np.clip(np.rint(vals), max(info.min, 1), info.max)
    return np.where(valid, block, vals.astype(block.dtype))
