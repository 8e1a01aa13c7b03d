"""Argument checks and pixel selection shared by the metrics (private)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from s2scale.errors import ConfigError, GridMismatchError


def check_pair(a_shape: Sequence[int], b_shape: Sequence[int]) -> None:
    """Raise GridMismatchError unless both shapes are equal."""
    if tuple(a_shape) != tuple(b_shape):
        raise GridMismatchError(f"shapes differ: {tuple(a_shape)} vs {tuple(b_shape)}")


def check_range(data_range: float) -> None:
    """Raise ConfigError unless ``data_range`` is positive."""
    if not data_range > 0:
        raise ConfigError(f"data_range must be > 0 (e.g. 1.0 or 10000), got {data_range!r}")


def coerce_valid(valid: np.ndarray | None, shape: Sequence[int]) -> np.ndarray | None:
    """``valid`` as a ``(y, x)`` bool array matching ``shape[-2:]``, or None for all pixels."""
    if valid is None:
        return None
    mask = np.asarray(valid, bool)
    if mask.shape != tuple(shape[-2:]):
        raise GridMismatchError(f"valid mask has shape {mask.shape}, images {tuple(shape[-2:])}")
    if not mask.any():
        raise GridMismatchError("the valid mask selects no pixel; nothing to score")
    return mask


def pixels(a: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """float64 ``(band, n)`` of the valid pixels of a ``(band, y, x)`` or ``(y, x)`` array."""
    a64 = np.asarray(a, np.float64)
    a64 = a64[None] if a64.ndim == 2 else a64
    return a64.reshape(a64.shape[0], -1) if valid is None else a64[:, valid]
