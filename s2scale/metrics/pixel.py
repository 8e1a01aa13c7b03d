"""Pixel-wise full-reference scores: PSNR and SSIM, for numpy images and torch batches.

The numpy functions take arrays with dims ``(band, y, x)`` (or ``(y, x)`` where stated), usually
surface reflectance (harmonised DN / 10000, data range 1.0), and return Python floats; an
optional ``valid`` ``(y, x)`` bool mask leaves out no-data pixels. :func:`psnr` and :func:`ssim`
are scikit-image's ``peak_signal_noise_ratio`` and ``structural_similarity``; SSIM uses the
Gaussian window of Wang et al. (2004): 11 taps, sigma 1.5, population covariances, computed per
band and averaged. The ``*_torch`` variants take batches ``(N, C, H, W)`` and return one value
per image with the same definitions; the training loop validates with them
(:meth:`s2scale.train.engine.Run.validate`). torch and scikit-image are imported inside the
functions that need them, so importing this module stays cheap.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from s2scale.errors import GridMismatchError
from s2scale.metrics._checks import check_pair, check_range, coerce_valid, pixels

if TYPE_CHECKING:
    import torch

__all__ = ["SSIM_SIGMA", "SSIM_WINDOW_PX", "psnr", "psnr_torch", "ssim", "ssim_torch"]

SSIM_WINDOW_PX, SSIM_SIGMA = 11, 1.5
"""Gaussian SSIM window of Wang et al. (2004): 11 x 11 taps, sigma 1.5 px."""
_SSIM_K1, _SSIM_K2 = 0.01, 0.03
# scikit-image sizes its Gaussian window as 2 * int(truncate * sigma + 0.5) + 1 taps.
_SSIM_TRUNCATE = 3.5


def psnr(
    a: np.ndarray, b: np.ndarray, data_range: float, *, valid: np.ndarray | None = None
) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range**2 / MSE)`` in dB (scikit-image).

    Parameters
    ----------
    a, b
        Arrays of equal shape, any dims (typically ``(band, y, x)``), any real dtype; computed in
        float64.
    data_range
        Peak-to-peak range of the data, e.g. ``1.0`` for reflectance or ``10000`` DN.
    valid
        ``(y, x)`` bool: the pixels to score (default all).

    Returns
    -------
    float
        PSNR in dB; ``inf`` for identical inputs.

    Raises
    ------
    GridMismatchError
        If the shapes differ or ``valid`` does not fit.

    Examples
    --------
    >>> a = np.zeros((1, 4, 4))
    >>> round(psnr(a, a + 0.1, data_range=1.0), 6)  # MSE = 0.01 -> 20 dB
    20.0
    """
    from skimage.metrics import peak_signal_noise_ratio

    check_pair(a.shape, b.shape)
    check_range(data_range)
    if valid is None:
        pa, pb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    else:
        mask = coerce_valid(valid, a.shape)
        pa, pb = pixels(a, mask), pixels(b, mask)
    if np.array_equal(pa, pb):
        return math.inf  # scikit-image divides by zero here
    return float(peak_signal_noise_ratio(pa, pb, data_range=data_range))


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    data_range: float,
    *,
    valid: np.ndarray | None = None,
    gaussian: bool = True,
) -> float:
    """Mean structural similarity per band, averaged over bands (scikit-image).

    With ``gaussian=True`` (default) this is SSIM as defined by Wang et al. (2004): an 11 x 11
    Gaussian window with sigma 1.5 px, population (not sample) covariances, K1 = 0.01, K2 = 0.03,
    averaged over the pixels at least 5 px from the border. ``gaussian=False`` gives
    scikit-image's default instead (7 x 7 uniform window, sample covariances).

    Parameters
    ----------
    a, b
        Arrays of equal shape ``(band, y, x)`` (band axis 0) or ``(y, x)``, with ``y, x >= 11``
        (``>= 7`` for ``gaussian=False``); computed in float64.
    data_range
        Peak-to-peak range of the data, e.g. ``1.0`` for reflectance.
    valid
        ``(y, x)`` bool of pixels to use: the SSIM map is averaged over pixels whose whole window
        is valid (default all pixels; then the value is scikit-image's).
    gaussian
        Gaussian 11 x 11 window (True) or uniform 7 x 7 window (False).

    Returns
    -------
    float
        SSIM in ``[-1, 1]``; ``1.0`` for identical inputs.

    Raises
    ------
    GridMismatchError
        If the shapes differ, the arrays are not 2-D or 3-D, or no pixel has a valid window.

    Examples
    --------
    >>> a = np.random.default_rng(0).random((4, 16, 16))
    >>> ssim(a, a, data_range=1.0)
    1.0
    """
    from scipy.ndimage import binary_erosion
    from skimage.metrics import structural_similarity

    check_pair(a.shape, b.shape)
    check_range(data_range)
    if a.ndim not in (2, 3):
        raise GridMismatchError(f"ssim expects (band, y, x) or (y, x), got shape {a.shape}")
    win = SSIM_WINDOW_PX if gaussian else 7
    if min(a.shape[-2:]) < win:
        raise GridMismatchError(f"ssim needs y, x >= {win} px, got shape {a.shape}")
    mask = coerce_valid(valid, a.shape)
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    kwargs: dict[str, Any] = {"data_range": data_range, "channel_axis": 0 if a.ndim == 3 else None}
    if gaussian:
        kwargs |= {"gaussian_weights": True, "sigma": SSIM_SIGMA, "truncate": _SSIM_TRUNCATE,
                   "use_sample_covariance": False}  # fmt: skip
    if mask is None:
        return float(structural_similarity(a64, b64, **kwargs))
    _, smap = structural_similarity(a64, b64, full=True, **kwargs)
    # Keep pixels whose whole window is valid and inside the image (as scikit-image crops).
    inner = binary_erosion(mask, structure=np.ones((win, win), bool), border_value=0)
    if not inner.any():
        raise GridMismatchError(f"no pixel has a {win} x {win} window of valid pixels")
    smap = smap if smap.ndim == 3 else smap[None]
    return float(smap[:, inner].mean())


def psnr_torch(a: torch.Tensor, b: torch.Tensor, data_range: float) -> torch.Tensor:
    """PSNR per image of batches ``(N, C, H, W)``, float32 in dB (``inf`` where equal).

    Examples
    --------
    >>> import torch
    >>> psnr_torch(torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 0.1), 1.0).round().tolist()
    [20.0, 20.0]
    """
    check_pair(a.shape, b.shape)
    check_range(data_range)
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * (data_range**2 / mse).log10()


def ssim_torch(a: torch.Tensor, b: torch.Tensor, data_range: float) -> torch.Tensor:
    """SSIM per image of batches ``(N, C, H, W)``, the same definition as :func:`ssim`.

    11 x 11 Gaussian window (sigma 1.5), valid region only (no padding), averaged over bands and
    pixels; needs ``H, W >= 11``. Computed in float64 for float64 inputs, else float32 (then
    within about 1e-5 of :func:`ssim`). Values in ``[-1, 1]``, ``1`` for identical images.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> ssim_torch(x, x, 1.0)
    tensor([1., 1.])
    """
    import torch
    import torch.nn.functional as F

    check_pair(a.shape, b.shape)
    check_range(data_range)
    if a.ndim != 4 or min(a.shape[-2:]) < SSIM_WINDOW_PX:
        raise GridMismatchError(f"ssim_torch expects (N, C, H>=11, W>=11), got {tuple(a.shape)}")
    dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
    a, b = a.to(dtype), b.to(dtype)
    taps = SSIM_WINDOW_PX
    coords = torch.arange(taps, dtype=dtype, device=a.device) - taps // 2
    g = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    chans = a.shape[1]
    window = (g[:, None] * g[None, :]).expand(chans, 1, taps, taps).contiguous()

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, groups=chans)

    c1, c2 = (_SSIM_K1 * data_range) ** 2, (_SSIM_K2 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).flatten(1).mean(dim=1)
