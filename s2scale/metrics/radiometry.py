"""Radiometric and no-reference checks: bias, spectral angle, consistency, detail.

:func:`reflectance_bias` and :func:`spectral_angle` compare an output with a reference of the
same grid. :func:`consistency`, :func:`high_frequency_energy` and :func:`no_reference` need no
high-resolution reference: they are the no-reference checks of opensr-test (the output, degraded
by the nominal Sentinel-2 PSF, must reproduce its 10 m input; its spectra must follow the
input's; and it should add high-frequency energy over bicubic). Arrays are ``(band, y, x)``,
usually reflectance; ``valid`` ``(y, x)`` bool masks leave out no-data pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from s2scale.errors import ConfigError, GridMismatchError
from s2scale.metrics._checks import check_pair, coerce_valid, pixels
from s2scale.metrics.pixel import psnr

__all__ = [
    "Degrade",
    "consistency",
    "high_frequency_energy",
    "no_reference",
    "reflectance_bias",
    "spectral_angle",
    "upsample_bicubic",
]

Degrade = Callable[[np.ndarray, int], np.ndarray]
"""``degrade(hr (band, Y, X) reflectance, scale) -> (band, Y / scale, X / scale)``."""


def reflectance_bias(
    out: np.ndarray, ref: np.ndarray, *, valid: np.ndarray | None = None
) -> np.ndarray:
    """Relative mean bias per band, ``mean(out) / mean(ref) - 1`` (0.01 = 1 % brighter).

    Parameters
    ----------
    out, ref
        ``(band, y, x)`` arrays of equal shape in the same units (e.g. reflectance).
    valid
        ``(y, x)`` bool of pixels to use (default all).

    Returns
    -------
    numpy.ndarray
        float64 ``(band,)``; NaN for a band whose reference mean is 0.

    Examples
    --------
    >>> ref = np.full((2, 4, 4), 0.1)
    >>> reflectance_bias(ref * [[[0.99]], [[1.0]]], ref).round(6).tolist()
    [-0.01, 0.0]
    """
    check_pair(out.shape, ref.shape)
    mask = coerce_valid(valid, out.shape)
    mo, mr = pixels(out, mask).mean(axis=1), pixels(ref, mask).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mr != 0, mo / np.where(mr != 0, mr, 1.0) - 1.0, np.nan)


def spectral_angle(a: np.ndarray, b: np.ndarray, *, valid: np.ndarray | None = None) -> float:
    """Mean spectral angle (SAM) between the band vectors of two images, in degrees.

    Parameters
    ----------
    a, b
        ``(band, y, x)`` arrays of equal shape, ``band >= 2``.
    valid
        ``(y, x)`` bool of pixels to use (default all); pixels where either vector is zero are
        left out.

    Returns
    -------
    float
        Mean angle in degrees, ``0`` for proportional spectra.

    Examples
    --------
    >>> a = np.ones((2, 3, 3))
    >>> b = np.stack([np.ones((3, 3)), np.zeros((3, 3))])
    >>> round(spectral_angle(a, b), 6)
    45.0
    """
    check_pair(a.shape, b.shape)
    if np.ndim(a) != 3 or a.shape[0] < 2:
        raise GridMismatchError(f"spectral_angle needs (band >= 2, y, x), got shape {a.shape}")
    mask = coerce_valid(valid, a.shape)
    pa, pb = pixels(a, mask), pixels(b, mask)
    na, nb = np.linalg.norm(pa, axis=0), np.linalg.norm(pb, axis=0)
    ok = (na > 0) & (nb > 0)
    if not ok.any():
        raise GridMismatchError("spectral_angle: every pixel has a zero spectrum")
    cos = np.clip((pa[:, ok] * pb[:, ok]).sum(axis=0) / (na[ok] * nb[ok]), -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)).mean())


def upsample_bicubic(lr: np.ndarray, scale: int = 2) -> np.ndarray:
    """Bicubic upsampling of ``(band, y, x)`` (torch, ``align_corners=False``), float64.

    The baseline of the study and of :mod:`s2scale.evaluate` (pixel centres of the nested grid).

    Examples
    --------
    >>> upsample_bicubic(np.ones((1, 2, 2)), 2).shape
    (1, 4, 4)
    """
    import torch
    import torch.nn.functional as F

    arr = np.asarray(lr, np.float64)
    if arr.ndim != 3:
        raise GridMismatchError(f"upsample_bicubic needs (band, y, x), got shape {arr.shape}")
    with torch.inference_mode():
        up = F.interpolate(torch.from_numpy(arr)[None], scale_factor=scale, mode="bicubic",
                           align_corners=False)  # fmt: skip
    return up[0].numpy()


def _default_degrade() -> Degrade:
    """The nominal Sentinel-2 degradation of :mod:`s2scale.degradation`."""
    from s2scale.degradation import degrade_nominal

    return degrade_nominal


def consistency(
    sr: np.ndarray,
    lr: np.ndarray,
    *,
    scale: int = 2,
    degrade: Degrade | None = None,
    valid: np.ndarray | None = None,
) -> dict[str, Any]:
    """How well the output, degraded back to the input's grid, reproduces the input.

    Parameters
    ----------
    sr
        ``(band, Y, X)`` output reflectance (no data filled, e.g. by the model's own output).
    lr
        ``(band, Y / scale, X / scale)`` input reflectance.
    scale
        Upscaling factor.
    degrade
        ``degrade(hr, scale) -> lr``; default the nominal Sentinel-2 PSF and downsampling of
        :func:`s2scale.degradation.degrade_nominal`.
    valid
        ``(Y / scale, X / scale)`` bool of input pixels to compare (default all).

    Returns
    -------
    dict
        ``psnr_db`` (data range 1.0), ``mae`` (reflectance) and ``bias`` (per band, relative) of
        ``degrade(sr)`` against ``lr``.

    Raises
    ------
    GridMismatchError
        If ``sr`` is not ``scale`` times ``lr`` or ``degrade`` returns another shape.
    """
    sr, lr = np.asarray(sr, np.float64), np.asarray(lr, np.float64)
    if (
        sr.ndim != 3
        or lr.ndim != 3
        or sr.shape != (lr.shape[0], *(s * scale for s in lr.shape[1:]))
    ):
        raise GridMismatchError(
            f"consistency needs sr (band, {scale}y, {scale}x) for lr (band, y, x), got {sr.shape} "
            f"and {lr.shape}"
        )
    fn = degrade or _default_degrade()
    low = np.asarray(fn(sr, scale), np.float64)
    check_pair(low.shape, lr.shape)
    mask = coerce_valid(valid, lr.shape)
    diff = pixels(low, mask) - pixels(lr, mask)
    return {
        "psnr_db": psnr(low, lr, 1.0, valid=mask),
        "mae": float(np.abs(diff).mean()),
        "bias": [float(v) for v in reflectance_bias(low, lr, valid=mask)],
    }


def high_frequency_energy(img: np.ndarray, *, cutoff: float = 0.25) -> float:
    """Share of an image's spectral power above ``cutoff`` cycles per pixel, mean over bands.

    Each band's mean is removed and a 2-D Hann window applied (so the image edges add no
    spurious high frequencies) before the FFT. A frequency counts as high when ``max(|fy|, |fx|)
    > cutoff``; for a 2x output, ``cutoff=0.25`` is the Nyquist frequency of the input grid, so
    the share is the detail the input could not hold.

    Parameters
    ----------
    img
        ``(band, y, x)`` or ``(y, x)`` array, ``y, x >= 8``.
    cutoff
        In cycles per pixel, in ``(0, 0.5)``.

    Returns
    -------
    float
        In ``[0, 1]``; 0 for a constant image.

    Examples
    --------
    >>> x = np.arange(64.0)
    >>> stripes = np.tile(np.cos(np.pi * x), (64, 1))          # 0.5 cycles / px
    >>> round(high_frequency_energy(stripes), 3)
    1.0
    """
    if not 0 < cutoff < 0.5:
        raise ConfigError(f"cutoff must be in (0, 0.5) cycles per pixel, got {cutoff!r}")
    arr = np.asarray(img, np.float64)
    arr = arr[None] if arr.ndim == 2 else arr
    if arr.ndim != 3 or min(arr.shape[-2:]) < 8:
        raise GridMismatchError(f"high_frequency_energy needs (band, y>=8, x>=8), got {arr.shape}")
    h, w = arr.shape[-2:]
    window = np.outer(np.hanning(h), np.hanning(w))
    fy, fx = np.abs(np.fft.fftfreq(h))[:, None], np.abs(np.fft.fftfreq(w))[None, :]
    high = np.maximum(fy, fx) > cutoff
    shares = []
    for band in arr:
        power = np.abs(np.fft.fft2((band - band.mean()) * window)) ** 2
        total = power.sum()
        shares.append(power[high].sum() / total if total > 0 else 0.0)
    return float(np.mean(shares))


def no_reference(
    sr: np.ndarray,
    lr: np.ndarray,
    *,
    scale: int = 2,
    degrade: Degrade | None = None,
    valid: np.ndarray | None = None,
) -> dict[str, Any]:
    """Checks of a super-resolved image against its own low-resolution input (no HR needed).

    Parameters
    ----------
    sr
        ``(band, Y, X)`` output reflectance.
    lr
        ``(band, Y / scale, X / scale)`` input reflectance.
    scale, degrade, valid
        See :func:`consistency` (``valid`` on the input grid).

    Returns
    -------
    dict
        ``consistency_psnr_db``, ``consistency_mae`` and ``consistency_bias`` (:func:`consistency`);
        ``spectral_angle_vs_lr_deg`` (:func:`spectral_angle` between the output and the bicubic
        upsampled input); ``hf_energy`` (:func:`high_frequency_energy` of the output above the
        input's Nyquist frequency) and ``hf_energy_ratio`` (that over the same share of the
        bicubic upsampled input: > 1 means detail added).
    """
    cons = consistency(sr, lr, scale=scale, degrade=degrade, valid=valid)
    up = upsample_bicubic(lr, scale)
    check_pair(np.shape(sr), up.shape)
    hr_valid = None
    if valid is not None:
        hr_valid = np.repeat(np.repeat(coerce_valid(valid, np.shape(lr)), scale, 0), scale, 1)
    cutoff = 0.5 / scale
    hf_sr, hf_up = (
        high_frequency_energy(sr, cutoff=cutoff),
        high_frequency_energy(up, cutoff=cutoff),
    )
    return {
        "consistency_psnr_db": cons["psnr_db"],
        "consistency_mae": cons["mae"],
        "consistency_bias": cons["bias"],
        "spectral_angle_vs_lr_deg": spectral_angle(np.asarray(sr), up, valid=hr_valid),
        "hf_energy": hf_sr,
        "hf_energy_ratio": hf_sr / hf_up if hf_up > 0 else math.inf,
    }
