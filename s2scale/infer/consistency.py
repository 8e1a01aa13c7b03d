"""Radiometric consistency: project a super-resolved block so that it reproduces its 10 m input.

A network's output ``sr`` is *consistent* with its input ``lr`` when degrading it with the nominal
Sentinel-2 operator ``D`` (:func:`s2scale.degradation.degrade_nominal`: the nominal Gaussian PSF
of each band, then a ``scale x scale`` mean) gives ``lr`` back. Shipped networks are not: their
outputs are darker than their inputs by 1-20 % per band on real scenes. :func:`project_block`
applies the orthogonal (least-squares) projection onto the consistent images,

``sr' = sr + D^T (D D^T)^-1 (lr - D sr)``,

the smallest change of ``sr`` (in the L2 sense) after which ``D sr' = lr``, the back-projection
for this operator (cf. SEN2SR's low-frequency constraint). It changes only what ``D`` sees: the
band means and the content of every 10 m neighbourhood; detail that ``D`` removes is kept. When
the image really was formed by ``D``, the projection can only move ``sr`` closer to the truth
(projection onto a convex set that holds the truth is non-expansive).

``D`` is separable, so ``D D^T`` is the Kronecker product of two 1-D Toeplitz operators and its
inverse is the product of two 1-D inverse filters. Their impulse responses decay geometrically
(by about 0.46 per LR pixel for the nominal PSF at ``scale = 2``); :func:`inverse_filter`
truncates them at ``taps`` LR pixels and rescales them so that the mean is restored exactly.
The projection is therefore *local*: an output pixel depends on ``sr`` within
:func:`consistency_radius_px` LR pixels of it (``2 * ceil(r_psf / scale) + taps``, 14 for the
nominal PSF and the default ``taps = 10``) and on ``lr`` within slightly less, which the caller
adds to the chunk halo so that chunked results equal whole-array ones.

The projection's strength is set by ``lowpass_px``: the residual ``lr - D sr`` is smoothed by a
Gaussian of that standard deviation (LR px) before it is projected, so only the inconsistency
at scales coarser than about ``lowpass_px`` is corrected. ``0`` is the full projection; any
value keeps the band means and local means over a few ``lowpass_px`` exactly (the Gaussian's
gain at zero frequency is 1), so the radiometry of the input is kept, while fine detail that does
not match the input (noise, sensor differences, temporal change between the input and what the
network learned from) is no longer pushed into the output. The low-pass adds
``ceil(3 * lowpass_px)`` LR px to :func:`consistency_radius_px`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy.ndimage import correlate1d

from s2scale.degradation import NOMINAL_MTF, gaussian_kernel_1d, psf_sigma
from s2scale.errors import ConfigError, GridMismatchError

__all__ = [
    "CONSISTENCY_LOWPASS_PX",
    "CONSISTENCY_TAPS",
    "band_mtfs",
    "coerce_lowpass_px",
    "consistency_radius_px",
    "degrade_block",
    "inverse_filter",
    "project_block",
    "psf_1d",
]

CONSISTENCY_TAPS = 10
"""Default half-length (LR px) of the truncated inverse filter of ``D D^T``."""
CONSISTENCY_LOWPASS_PX = 4.0
"""Default low-pass (Gaussian sigma, LR px) of the residual in ``s2scale.upscale``: the strength
chosen on the validation sites of real co-located pairs (``benchmarks/README.md``)."""

_PERIOD = 1024  # LR samples of the periodic grid the inverse filter is computed on


def band_mtfs(bands: Sequence[str]) -> tuple[float, ...]:
    """Nominal MTF at Nyquist of each band name (:data:`s2scale.degradation.NOMINAL_MTF`).

    Raises
    ------
    ConfigError
        For a band the degradation model does not know.

    Examples
    --------
    >>> band_mtfs(["red", "nir"])
    (0.3, 0.3)
    """
    unknown = [b for b in bands if b not in NOMINAL_MTF]
    if unknown:
        raise ConfigError(
            f"the consistency step needs the nominal PSF of every band, but bands {unknown} are "
            f"not among {sorted(NOMINAL_MTF)}; rename the bands or pass consistency=False"
        )
    return tuple(NOMINAL_MTF[b] for b in bands)


@functools.lru_cache(maxsize=32)
def psf_1d(mtf: float, scale: int) -> np.ndarray:
    """The nominal 1-D PSF (float32) of an MTF at Nyquist."""
    return gaussian_kernel_1d(psf_sigma(mtf, scale)).astype(np.float32)


def coerce_lowpass_px(value: float | None) -> float:
    """The projection strength to use: ``value``, or :data:`CONSISTENCY_LOWPASS_PX` for None.

    Raises
    ------
    ConfigError
        If ``value`` is not a number >= 0.

    Examples
    --------
    >>> coerce_lowpass_px(None) == CONSISTENCY_LOWPASS_PX, coerce_lowpass_px(0)
    (True, 0.0)
    """
    lowpass = CONSISTENCY_LOWPASS_PX if value is None else value
    if isinstance(lowpass, bool) or not isinstance(lowpass, int | float) or not lowpass >= 0:
        raise ConfigError(
            f"consistency_lowpass_px must be a number >= 0 (LR px; 0: full projection), got "
            f"{value!r}"
        )
    return float(lowpass)


def _lowpass_radius(lowpass_px: float) -> int:
    """Half-length (LR px) of the residual's Gaussian low-pass (3 sigma; 0 when off)."""
    return math.ceil(3.0 * lowpass_px) if lowpass_px > 0 else 0


def consistency_radius_px(
    scale: int = 2,
    mtfs: Sequence[float] = (0.3,),
    taps: int = CONSISTENCY_TAPS,
    lowpass_px: float = 0.0,
) -> int:
    """LR pixels of ``sr`` context one output pixel of :func:`project_block` depends on.

    ``D`` reaches ``ceil(r / scale)`` LR px (``r``: PSF half-length in HR px), the low-pass of
    the residual ``ceil(3 lowpass_px)``, the inverse filter ``taps`` and ``D^T`` again
    ``ceil(r / scale)``.

    Examples
    --------
    >>> consistency_radius_px(2), consistency_radius_px(2, lowpass_px=2.0)
    (14, 20)
    """
    r = max((len(psf_1d(m, scale)) - 1) // 2 for m in mtfs)
    return 2 * math.ceil(r / scale) + taps + _lowpass_radius(lowpass_px)


@functools.lru_cache(maxsize=32)
def inverse_filter(mtf: float, scale: int, taps: int = CONSISTENCY_TAPS) -> np.ndarray:
    """Truncated 1-D inverse of ``D1 D1^T`` (length ``2 taps + 1``), float64.

    ``D1`` is one axis of the nominal operator (PSF, then mean of ``scale`` pixels). The filter
    is computed exactly on a long periodic grid, truncated and rescaled so that its sum is
    ``scale`` (the inverse of the DC gain ``1 / scale`` of ``D1 D1^T``).

    Examples
    --------
    >>> h = inverse_filter(0.3, 2)
    >>> len(h), round(float(h.sum()), 12), bool(np.allclose(h, h[::-1]))
    (21, 2.0, True)
    """
    if taps < 0:
        raise ConfigError(f"taps={taps} must be >= 0 LR pixels")
    g = psf_1d(mtf, scale).astype(np.float64)
    impulse = np.zeros(_PERIOD)
    impulse[0] = 1.0
    up = correlate1d(np.repeat(impulse, scale) / scale, g, mode="wrap")
    a = correlate1d(up, g, mode="wrap").reshape(-1, scale).mean(axis=1)  # D1 D1^T e_0
    spectrum = np.fft.fft(a).real
    h = np.roll(np.fft.ifft(1.0 / spectrum).real, taps)[: 2 * taps + 1]
    return h * (scale / h.sum())


def degrade_block(img: np.ndarray, scale: int, mtfs: Sequence[float]) -> np.ndarray:
    """``D``: nominal PSF per band, then ``scale x scale`` means, float32 ``(C, H, W)``.

    The same operator as :func:`s2scale.degradation.degrade_nominal` (float32, half-sample
    symmetric borders), given MTFs instead of band names; :func:`s2scale.infer.ops.degrade`
    on the CPU.
    """
    from s2scale.infer.ops import degrade, projection_kernels

    k = projection_kernels(tuple(float(m) for m in mtfs), scale, CONSISTENCY_TAPS, 0.0)
    x = torch.from_numpy(np.ascontiguousarray(img, np.float32))
    with torch.inference_mode():
        return degrade(x, k).numpy()


def project_block(
    sr: np.ndarray,
    lr: np.ndarray,
    *,
    scale: int,
    mtfs: Sequence[float],
    taps: int = CONSISTENCY_TAPS,
    lowpass_px: float = 0.0,
) -> np.ndarray:
    """Project ``sr`` so that :func:`degrade_block` of it reproduces ``lr``.

    Parameters
    ----------
    sr
        ``(C, H*scale, W*scale)`` float DN (or reflectance), the network's output.
    lr
        ``(C, H, W)`` the input it came from, same unit, no holes: fill them first
        (:func:`s2scale.infer.nodata.fill_nodata`). The projection is enforced on filled pixels
        too; masking the residual there instead was measured to disturb the valid pixels next
        to holes more (a masked residual no longer matches the inverse filter).
    scale
        Upscaling factor.
    mtfs
        Nominal MTF at Nyquist per band (:func:`band_mtfs`).
    taps
        Half-length of the inverse filter, LR px; more taps, smaller remaining inconsistency.
    lowpass_px
        Standard deviation (LR px) of the Gaussian that smooths the residual first: only the
        coarser inconsistency is corrected (see the module docstring); 0 projects fully.

    Returns
    -------
    numpy.ndarray
        ``(C, H*scale, W*scale)`` float32 (computed by :func:`s2scale.infer.ops.project`, the
        kernel the predictor runs on its device). Pixels farther than :func:`consistency_radius_px`
        from the block edge are exact; nearer ones see the edge and should be trimmed.

    Raises
    ------
    GridMismatchError
        If the shapes do not match ``scale`` or the band count differs from ``mtfs``.

    Examples
    --------
    >>> lr = np.random.default_rng(0).uniform(500, 3000, (1, 40, 40)).astype(np.float32)
    >>> sr = np.full((1, 80, 80), 1000, np.float32)
    >>> out = project_block(sr, lr, scale=2, mtfs=(0.3,))
    >>> err = np.abs(degrade_block(out, 2, (0.3,)) - lr)[:, 14:-14, 14:-14]
    >>> bool(err.max() < 0.01 * lr.min())
    True
    """
    c, h, w = lr.shape
    if sr.shape != (c, h * scale, w * scale) or len(mtfs) != c:
        raise GridMismatchError(
            f"project_block needs sr of shape (C, H*{scale}, W*{scale}) for lr {lr.shape} and "
            f"one MTF per band; got sr {sr.shape} and {len(mtfs)} MTFs"
        )
    if not lowpass_px >= 0:
        raise ConfigError(f"lowpass_px must be >= 0 LR px, got {lowpass_px}")
    from s2scale.infer.ops import project, projection_kernels

    k = projection_kernels(tuple(float(m) for m in mtfs), scale, taps, float(lowpass_px))
    with torch.inference_mode():
        out = project(
            torch.from_numpy(np.ascontiguousarray(sr, np.float32)),
            torch.from_numpy(np.ascontiguousarray(lr, np.float32)),
            k,
        )
    return out.numpy()
