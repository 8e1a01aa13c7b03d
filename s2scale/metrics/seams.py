"""Seam statistics: whether a chunk, tile or zone boundary shows as a step in a mosaic."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from s2scale.errors import ConfigError

__all__ = ["column_seams", "seam_ratio"]


def seam_ratio(
    img: np.ndarray, seam: np.ndarray, valid: np.ndarray | None = None, *, period: int = 1
) -> float:
    """Mean absolute gradient across seams divided by the mean absolute gradient elsewhere.

    A seam shows as a step: the ratio rises above 1 where it does. 1.0 means the boundary is
    indistinguishable from the rest of the image by this statistic.

    Parameters
    ----------
    img
        ``(band, y, x)`` or ``(y, x)`` array (any numeric dtype), e.g. uint16 DN.
    seam
        ``(y, x - 1)`` bool: True where the pixel pair ``(x, x + 1)`` straddles a boundary
        (chunk edge, tile edge, UTM zone boundary). Use :func:`column_seams` for straight
        boundaries; for horizontal seams pass transposed arrays.
    valid
        ``(y, x)`` bool of pixels to use (both pixels of a pair must be valid); default all.
    period
        Compare seam pairs only with pairs at the same column phase modulo ``period``. Use 2 for
        a 2x super-resolved image whose seams lie on 10 m pixel edges: pairs across a 10 m edge
        and pairs inside one 10 m pixel have different gradient statistics.

    Returns
    -------
    float
        ``mean |d/dx| across seams / mean |d/dx| elsewhere``.

    Examples
    --------
    >>> img = np.tile(np.arange(8.0), (4, 1))        # a ramp: gradient 1 everywhere
    >>> img[:, 4:] += 3                               # a step of 3 between columns 3 and 4
    >>> seam_ratio(img, column_seams(img.shape, [4]))
    4.0
    """
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    grad = np.abs(np.diff(a, axis=-1)).mean(axis=0)
    pair_ok = np.ones(grad.shape, bool)
    if valid is not None:
        pair_ok = valid[:, 1:] & valid[:, :-1]
    if seam.shape != grad.shape:
        raise ConfigError(f"seam mask has shape {seam.shape}; expected {grad.shape} (y, x - 1)")
    at, off = seam & pair_ok, ~seam & pair_ok
    if period > 1:
        cols = np.arange(grad.shape[1])
        phases = np.unique(np.nonzero(seam)[1] % period)
        off &= np.isin(cols % period, phases)[None, :]
    if not at.any() or not off.any():
        raise ConfigError("seam_ratio needs valid pixel pairs both on and off the seams")
    return float(grad[at].mean() / grad[off].mean())


def column_seams(shape: Sequence[int], columns: Sequence[int]) -> np.ndarray:
    """Seam mask for vertical boundaries that lie just left of the given columns.

    ``columns`` are the first columns of the right-hand side (e.g. chunk starts); the pair
    ``(c - 1, c)`` is marked. ``shape`` is the image's ``(..., y, x)``.
    """
    rows, cols = shape[-2], shape[-1]
    mask = np.zeros((rows, cols - 1), bool)
    for c in columns:
        if 0 < c < cols:
            mask[:, c - 1] = True
    return mask
