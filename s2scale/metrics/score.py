"""The one scoring function: a super-resolved image against its reference and its input.

:func:`score_image` is what every report scores with: ``s2scale evaluate``
(:func:`s2scale.evaluate.score.score_output`, DN rasters), the held-out evaluation of the
training recipes and the model cards (:func:`s2scale.train.evaluation.score`, reflectance) and
the demo (:func:`s2scale.pipeline.demo.run_demo`). Those callers only convert units or rename
keys for their existing report formats; the numbers come from here. The training loop's fast
in-loop validation (:func:`~s2scale.metrics.pixel.psnr_torch`,
:func:`~s2scale.metrics.pixel.ssim_torch` on torch batches) agrees with it on images without
no data, border or negative values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import binary_erosion

from s2scale.errors import ConfigError, GridMismatchError
from s2scale.metrics._checks import coerce_valid
from s2scale.metrics.perceptual import RGB_STRETCH, PerceptualMetric
from s2scale.metrics.pixel import psnr, ssim
from s2scale.metrics.radiometry import Degrade, no_reference, reflectance_bias, spectral_angle

__all__ = ["SCORE_KEYS", "score_image"]

SCORE_KEYS: dict[str, str] = {
    "psnr_db": "PSNR in dB, data range 1 (reflectance); sr clipped at 0",
    "ssim": "SSIM (Gaussian 11 x 11, sigma 1.5), data range 1; sr clipped at 0",
    "lpips": "LPIPS v0.1 on red, green, blue with the stretch; sr clipped at 0 (with an LPIPS "
    "metric; 'stlpips' instead for ST-LPIPS)",
    "bias_pct": "per band, 100 * (mean(sr) / mean(hr) - 1), sr not clipped",
    "bias_max_abs_pct": "largest absolute bias_pct over the bands",
    "spectral_angle_deg": "mean spectral angle between sr and hr, degrees",
    "consistency_psnr_db": "PSNR (data range 1) of sr degraded to the input grid against lr",
    "consistency_mae": "mean absolute reflectance difference of the same",
    "consistency_bias_pct": "per band, 100 * (mean(degraded sr) / mean(lr) - 1)",
    "spectral_angle_vs_lr_deg": "mean spectral angle between sr and bicubic-upsampled lr",
    "hf_energy": "share of the spectral power of sr above the input's Nyquist frequency",
    "hf_energy_ratio": "hf_energy over the same share of bicubic-upsampled lr (> 1: detail added)",
}
"""The keys :func:`score_image` returns and what they hold. The first six need ``hr``, the
rest ``lr``; ``lpips``/``stlpips`` needs a perceptual metric and at least 32 x 32 pixels after
the border crop; the ``lr`` keys need input pixels away from the border and from no data."""

_LR_EROSION_PX = 5
"""Input pixels kept for consistency lie at least 2 px (the PSF support) from no data."""


def _crop(a: np.ndarray, px: int) -> np.ndarray:
    """``a`` without ``px`` pixels along every spatial edge."""
    return a[..., px : a.shape[-2] - px, px : a.shape[-1] - px] if px else a


def _reflectance(a: np.ndarray, dn_scale: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``(float64 reflectance with no data as 0, (y, x) bool of pixels with data)``."""
    arr = np.asarray(a)
    ok = np.all((arr != 0) & np.isfinite(arr), axis=0)
    refl = np.asarray(arr, np.float64) / (dn_scale or 1.0)
    return np.where(ok, np.nan_to_num(refl), 0.0), ok


def _coerce_inputs(
    sr: np.ndarray,
    hr: np.ndarray | None,
    lr: np.ndarray | None,
    border_px: int,
    scale: int,
    dn_scale: float | None,
) -> None:
    """Raise ConfigError or GridMismatchError for arguments that cannot be scored."""
    if int(border_px) != border_px or border_px < 0:
        raise ConfigError(f"border_px must be an integer >= 0, got {border_px!r}")
    if int(scale) != scale or scale < 1:
        raise ConfigError(f"scale must be an integer >= 1, got {scale!r}")
    if dn_scale is not None and not dn_scale > 0:
        raise ConfigError(f"dn_scale must be > 0 (10000 for harmonised DN), got {dn_scale!r}")
    if np.ndim(sr) != 3:
        raise GridMismatchError(f"sr must be (band, y, x), got shape {np.shape(sr)}")
    if hr is not None and np.shape(hr) != np.shape(sr):
        raise GridMismatchError(f"hr has shape {np.shape(hr)}, sr {np.shape(sr)}; same grid needed")
    if lr is not None:
        c, y, x = np.shape(sr)
        fits = np.ndim(lr) == 3 and tuple(np.shape(lr)) == (c, y // scale, x // scale)
        if not fits or y % scale or x % scale:
            raise GridMismatchError(
                f"lr must be (band, y / {scale}, x / {scale}) of sr {np.shape(sr)}, got "
                f"{np.shape(lr)}; check scale"
            )
    if hr is None and lr is None:
        raise ConfigError("score_image needs a reference hr, an input lr or both")


def score_image(
    sr: np.ndarray,
    hr: np.ndarray | None = None,
    lr: np.ndarray | None = None,
    *,
    border_px: int = 8,
    scale: int = 2,
    dn_scale: float | None = None,
    perceptual: PerceptualMetric | None = None,
    stretch: tuple[float, float] = RGB_STRETCH,
    degrade: Degrade | None = None,
    valid: np.ndarray | None = None,
) -> dict[str, Any]:
    """Scores of one output against its reference (if any) and its own input (if any).

    One behaviour for every report:

    - **Units**: reflectance, or DN divided by ``dn_scale`` (10000 for harmonised Sentinel-2
      DN); PSNR and SSIM use data range 1.
    - **No data**: a pixel whose value is 0 (0 DN) or not finite in any band of ``sr``, ``hr``
      (or ``lr``, on its grid) is left out of every score, as are pixels outside ``valid``.
      LPIPS needs whole images: there, no-data pixels of ``sr`` take the reference's values.
    - **Border**: ``border_px`` output pixels along every edge are left out of the
      full-reference scores; the consistency checks leave out ``border_px // scale + 2`` input
      pixels, and input pixels within 2 px of no data.
    - **Clipping**: ``sr`` is clipped at 0 for PSNR, SSIM and LPIPS only (a negative reflectance
      is as wrong as 0); bias, spectral angles and consistency use the values as they are.
    - **Perceptual**: LPIPS (or ST-LPIPS, keyed ``"stlpips"``) on red, green and blue
      (:data:`~s2scale.metrics.perceptual.RGB_BANDS`) with ``stretch`` mapped to ``[-1, 1]``.

    Parameters
    ----------
    sr
        ``(band, Y, X)`` output, float reflectance or DN (then pass ``dn_scale``); 0 = no data.
        Bands in s2scale's order (blue, green, red, nir) for LPIPS.
    hr
        ``(band, Y, X)`` reference in the same units, or None (no full-reference scores).
    lr
        ``(band, Y / scale, X / scale)`` input in the same units, or None (no consistency or
        no-reference scores).
    border_px
        Output pixels left out along every edge (>= 0).
    scale
        Upscaling factor of ``sr`` over ``lr``.
    dn_scale
        DN per unit reflectance of ``sr``, ``hr`` and ``lr`` (e.g. 10000); None for reflectance.
    perceptual
        A metric from :func:`s2scale.metrics.load_perceptual`, or None (no perceptual score).
    stretch
        ``(low, high)`` reflectance mapped to ``[-1, 1]`` for the perceptual score
        (default :data:`~s2scale.metrics.perceptual.RGB_STRETCH`, 0-0.3).
    degrade
        ``degrade(hr, scale) -> lr`` for the consistency check (default the nominal Sentinel-2
        PSF and block mean, :func:`s2scale.degradation.degrade_nominal`).
    valid
        ``(Y, X)`` bool: output pixels to score besides the no-data rule (default all).

    Returns
    -------
    dict
        The keys of :data:`SCORE_KEYS` that apply: with ``hr`` ``psnr_db``, ``ssim``,
        ``lpips`` or ``stlpips`` (with ``perceptual``, if the cropped image is at least
        32 x 32), ``bias_pct`` (list per band), ``bias_max_abs_pct``, ``spectral_angle_deg``;
        with ``lr`` ``consistency_psnr_db``, ``consistency_mae``, ``consistency_bias_pct``
        (list), ``spectral_angle_vs_lr_deg``, ``hf_energy``, ``hf_energy_ratio``. Python floats,
        not rounded.

    Raises
    ------
    GridMismatchError
        If the shapes do not fit, or no pixel with data is left after the border crop.
    ConfigError
        For a negative ``border_px``, a bad ``scale`` or ``dn_scale``, or neither ``hr`` nor
        ``lr``.

    Examples
    --------
    A constant offset of 0.01 reflectance (MSE 1e-4) is 40 dB; on a 0.1 reference it is a 10 %
    bias in every band:

    >>> hr = np.full((4, 32, 32), 0.1)
    >>> s = score_image(hr + 0.01, hr, border_px=0)
    >>> round(s["psnr_db"], 6), [round(b, 6) for b in s["bias_pct"]]
    (40.0, [10.0, 10.0, 10.0, 10.0])

    DN in, 0 = no data: the damaged left half is not scored.

    >>> hr_dn = np.full((4, 32, 32), 1000, np.uint16)
    >>> sr_dn = hr_dn.copy()
    >>> sr_dn[:, :, :16] = 0
    >>> score_image(sr_dn, hr_dn, border_px=2, dn_scale=10000)["psnr_db"]
    inf
    """
    _coerce_inputs(sr, hr, lr, border_px, scale, dn_scale)
    b, s = int(border_px), int(scale)
    mask = coerce_valid(valid, np.shape(sr))
    out_r, sr_ok = _reflectance(sr, dn_scale)
    if mask is not None:
        sr_ok &= mask
    out: dict[str, Any] = {}
    if hr is not None:
        ref_r, hr_ok = _reflectance(hr, dn_scale)
        a, r = _crop(out_r, b), _crop(ref_r, b)
        ok = _crop(sr_ok & hr_ok, b)
        if not ok.any():
            raise GridMismatchError(
                f"no pixel of sr {np.shape(sr)} has data in sr and hr inside border_px={b}; "
                "nothing to score"
            )
        full = bool(ok.all())
        keep = None if full else ok
        pos = np.clip(a, 0.0, None)
        out["psnr_db"] = psnr(pos, r, 1.0, valid=keep)
        out["ssim"] = ssim(pos, r, 1.0, valid=keep)
        if perceptual is not None and min(a.shape[-2:]) >= 32:
            # LPIPS needs whole images: no-data pixels take the reference's values in both.
            out[perceptual.kind] = perceptual(pos if full else np.where(ok, pos, r), r,
                                              stretch=stretch)  # fmt: skip
        bias = reflectance_bias(a, r, valid=keep) * 100
        out["bias_pct"] = [float(v) for v in bias]
        out["bias_max_abs_pct"] = float(np.nanmax(np.abs(bias)))
        out["spectral_angle_deg"] = spectral_angle(a, r, valid=keep)
    if lr is not None:
        out.update(_input_scores(out_r, sr_ok, lr, b, s, dn_scale, degrade))
    return out


def _input_scores(
    sr: np.ndarray,
    sr_ok: np.ndarray,
    lr: np.ndarray,
    border_px: int,
    scale: int,
    dn_scale: float | None,
    degrade: Degrade | None,
) -> dict[str, Any]:
    """The consistency and no-reference scores of :func:`score_image` (empty if no pixel fits)."""
    lr_r, lr_ok = _reflectance(lr, dn_scale)
    y, x = lr_r.shape[-2:]
    # Input pixels whose whole output block has data, away from no data (PSF support) and from
    # the border.
    ok = lr_ok & sr_ok.reshape(y, scale, x, scale).all(axis=(1, 3))
    inner = binary_erosion(ok, structure=np.ones((_LR_EROSION_PX,) * 2, bool), border_value=0)
    edge = border_px // scale + 2
    inner[:edge] = inner[y - edge :] = False
    inner[:, :edge] = inner[:, x - edge :] = False
    if not inner.any():
        return {}
    # The degradation needs whole images: no-data output pixels take the nearest input value.
    near = np.repeat(np.repeat(lr_r, scale, axis=1), scale, axis=2)
    filled = np.where(sr_ok, sr, near)
    nr = no_reference(filled, lr_r, scale=scale, degrade=degrade, valid=inner)
    return {
        "consistency_psnr_db": nr["consistency_psnr_db"],
        "consistency_mae": nr["consistency_mae"],
        "consistency_bias_pct": [v * 100 for v in nr["consistency_bias"]],
        "spectral_angle_vs_lr_deg": nr["spectral_angle_vs_lr_deg"],
        "hf_energy": nr["hf_energy"],
        "hf_energy_ratio": nr["hf_energy_ratio"],
    }
