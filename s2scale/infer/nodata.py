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

__all__ = ["fill_nodata"]


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
    import torch

    from s2scale.infer.ops import fill_holes

    with torch.inference_mode():
        vals = fill_holes(
            torch.from_numpy(np.asarray(block, np.float32)), torch.from_numpy(valid), radius_px
        ).numpy()
    if np.issubdtype(block.dtype, np.integer):
        info = np.iinfo(block.dtype)
        vals = np.clip(np.rint(vals), max(info.min, 1), info.max)
    return np.where(valid, block, vals.astype(block.dtype))
