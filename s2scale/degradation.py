"""The Sentinel-2 degradation model: 10 m band PSFs, sensor noise, sub-pixel misregistration.

One operator describes how a Sentinel-2 10 m image arises from a finer scene, and it is used in
both directions: to make low-resolution inputs from high-resolution references (Wald pairs,
orthophoto pairs, the simulator) and to check that a super-resolved image, degraded again,
reproduces the input it came from (the consistency step of :mod:`s2scale.infer.consistency`).

The operator, for an HR image ``(band, y, x)`` and an integer ``scale``:

1. blur each band with its point spread function (PSF), a separable Gaussian;
2. shift each band by a sub-pixel misregistration (folded into the same kernel, so no extra
   interpolation is applied);
3. average ``scale x scale`` blocks (the detector footprint of the coarser pixel);
4. add zero-mean Gaussian sensor noise per band, optionally round to whole DN (1e-4).

:func:`degrade_nominal` is the fixed evaluation setting: nominal PSF, no shift, no noise, no
rounding. :func:`degrade_sensor` draws every parameter from the ranges of a
:class:`SensorDegradationConfig` with a :class:`numpy.random.Generator`, for training (the
Real-ESRGAN idea of training on a range of degradations, with ranges taken from the sensor).

PSF from the MTF at Nyquist
---------------------------
The MSI image-quality requirement for the 10 m bands (B02, B03, B04, B08) bounds the system MTF
at the Nyquist frequency to 0.15-0.30, the upper bound limiting aliasing (ESA, *Sentinel-2 User
Handbook*, 2015, and the *Sentinel-2 MSI Technical Guide*, "Radiometric performance / image
quality"). The S2 MPC *L1C Data Quality Reports* (ref. S2-PDGS-MPC-DQR, section "Modulation
Transfer Function", along and across track, for S2A and S2B) report in-flight values of roughly
0.25-0.35 for these bands. The nominal value used here is 0.30 for every 10 m band
(:data:`NOMINAL_MTF`): the upper requirement bound, inside the reported in-flight values, and
the value of this project's Wald protocol (10 m -> 20 m with a Gaussian PSF of MTF 0.3 at the
new Nyquist, then a 2x2 mean).

A Gaussian PSF of standard deviation ``sigma`` (HR pixels) has the MTF
``MTF(f) = exp(-2 * pi**2 * sigma**2 * f**2)`` at ``f`` cycles per HR pixel. The Nyquist
frequency of the LR grid is ``f_N = 1 / (2 * scale)`` cycles per HR pixel, so requiring
``MTF(f_N) = m`` gives

``sigma = scale / pi * sqrt(-2 * ln(m))``

(:func:`psf_sigma`): 0.988 HR px for ``m = 0.3`` at ``scale = 2``. As in the MTF-matched
filters of the pansharpening literature (Aiazzi et al., "MTF-tailored multiscale fusion of
high-resolution MS and Pan imagery", PE&RS 72(5), 2006; Vivone et al., "A critical comparison
among pansharpening algorithms", IEEE TGRS 53(5), 2015) the Gaussian carries the stated MTF;
the ``scale x scale`` mean that follows adds its own factor ``sinc(1/2) = 0.64`` at Nyquist.

The training range :attr:`SensorDegradationConfig.mtf_range` (0.12-0.55 by default, drawn per band
and per axis, since along- and across-track MTF differ) is deliberately wider than the
requirement: its low end covers the extra blur of L1C/L2A resampling and of multi-date
composites, its high end sharper-than-nominal cases; at ``scale = 2`` it spans
``sigma = 0.70-1.31`` HR px. The kernels are the Gaussian sampled at pixel centres; their
discrete MTF at Nyquist exceeds the stated value by the aliased copy of the spectrum,
``exp(-2 pi^2 sigma^2 (1 - f_N)^2)``: 2e-5 for the nominal sigma, below 0.005 over the range.

Sensor noise
------------
The MSI radiometric requirement gives, per band, a signal-to-noise ratio at a reference
radiance ``L_ref`` (ESA, *Sentinel-2 User Handbook*, 2015, table "SNR requirements at L_ref"):
B02 154 at 128, B03 168 at 128, B04 142 at 108, B08 174 at 103 W m-2 sr-1 um-1
(:data:`SNR_REFERENCE`). The reference radiance is converted to reflectance with
``rho = pi * L / (E0 * cos(theta_s))``, the exo-atmospheric solar irradiance ``E0`` of the
bands (:data:`SOLAR_IRRADIANCE`, S2A L1C product metadata ``SOLAR_IRRADIANCE``, W m-2 um-1,
rounded) and a sun zenith angle of :data:`REFERENCE_SUN_ZENITH_DEG` = 45 deg; the noise standard
deviation in reflectance is ``rho_ref / SNR`` (:func:`noise_sigma`: about 0.0019, 0.0019,
0.0022 and 0.0025, i.e. 19-25 DN). The noise is modelled as additive, zero-mean Gaussian and
independent of the signal. The DQRs ("Noise" section) report in-flight SNR above the
requirement, and a median composite of several clear dates lowers noise further, so training
draws a factor ``U(noise_range)`` (0-1 by default) of the requirement's noise per image.

Misregistration
---------------
The MSI geometric requirements bound the inter-band (multi-spectral) registration of the 10 m
bands and their multi-temporal registration (after refinement on the Global Reference Image) to
0.3 px, and the DQRs ("Multi-Spectral Registration", "Multi-Temporal Registration") report
values of about 0.1-0.3 px. Training therefore shifts each band by a vector of length
``U(shift_range_px)`` LR pixels (0-0.3 by default) in a uniformly drawn direction.

Arrays are ``(band, y, x)`` or ``(N, band, y, x)`` float reflectance with bands in
:data:`s2scale.sentinel2.BANDS` order unless ``bands`` says otherwise; spatial sizes must be
multiples of ``scale``. NaN propagates to the LR pixels it touches. Borders are extended by
half-sample symmetric reflection, which keeps the image mean exactly for symmetric kernels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import correlate1d

from s2scale.errors import ConfigError, GridMismatchError
from s2scale.sentinel2 import BANDS

__all__ = [
    "NOMINAL_MTF",
    "REFERENCE_SUN_ZENITH_DEG",
    "SNR_REFERENCE",
    "SOLAR_IRRADIANCE",
    "DegradationParams",
    "SensorDegradationConfig",
    "apply_degradation",
    "block_mean",
    "degrade_nominal",
    "degrade_sensor",
    "gaussian_kernel_1d",
    "gaussian_mtf",
    "kernel_mtf",
    "noise_sigma",
    "nominal_psf",
    "psf_sigma",
    "sample_params",
]

Range = tuple[float, float]

NOMINAL_MTF: dict[str, float] = {"blue": 0.30, "green": 0.30, "red": 0.30, "nir": 0.30}
"""Band -> system MTF at the LR Nyquist frequency of the nominal (evaluation) PSF."""

SNR_REFERENCE: dict[str, tuple[float, float]] = {
    "blue": (128.0, 154.0),
    "green": (128.0, 168.0),
    "red": (108.0, 142.0),
    "nir": (103.0, 174.0),
}
"""Band -> (reference radiance L_ref in W m-2 sr-1 um-1, required SNR at L_ref), MSI spec."""

SOLAR_IRRADIANCE: dict[str, float] = {"blue": 1942.0, "green": 1823.0, "red": 1513.0, "nir": 1036.0}
"""Band -> exo-atmospheric solar irradiance E0 in W m-2 um-1 (S2A L1C metadata, rounded)."""

REFERENCE_SUN_ZENITH_DEG = 45.0
"""Sun zenith angle at which the reference radiance is converted to reflectance."""

_TRUNCATE = 4.0  # kernel half-width in sigmas; the Gaussian mass beyond 4 sigma is 6e-5


def _check_band(band: str) -> None:
    if band not in NOMINAL_MTF:
        raise ConfigError(
            f"unknown band {band!r}; the degradation model knows {sorted(NOMINAL_MTF)} "
            "(s2scale.sentinel2.BANDS); pass one of those names"
        )


def _check_scale(scale: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < 1:
        raise ConfigError(f"scale={scale!r} must be a positive integer (2 for 10 m -> 5 m)")
    return int(scale)


def _check_mtf(mtf: float) -> None:
    if not 0.0 < mtf < 1.0:
        raise ConfigError(f"MTF at Nyquist must lie in (0, 1), got {mtf!r}; use e.g. 0.3")


def psf_sigma(mtf: float, scale: int = 2) -> float:
    """Standard deviation (HR pixels) of the Gaussian whose MTF at the LR Nyquist equals ``mtf``.

    ``sigma = scale / pi * sqrt(-2 ln(mtf))``, from ``MTF(f) = exp(-2 pi^2 sigma^2 f^2)`` at
    ``f = 1 / (2 scale)`` cycles per HR pixel.

    Parameters
    ----------
    mtf
        MTF at the Nyquist frequency of the LR grid, in ``(0, 1)``.
    scale
        Integer ratio of LR to HR pixel size.

    Returns
    -------
    float
        Sigma in HR pixels.

    Examples
    --------
    >>> round(psf_sigma(0.3, 2), 3)
    0.988
    """
    _check_mtf(mtf)
    scale = _check_scale(scale)
    return scale / math.pi * math.sqrt(-2.0 * math.log(mtf))


def gaussian_mtf(sigma: float, freq: float) -> float:
    """MTF of a continuous Gaussian PSF (sigma in pixels) at ``freq`` cycles per pixel.

    Examples
    --------
    >>> round(gaussian_mtf(psf_sigma(0.3, 2), 0.25), 6)
    0.3
    """
    return math.exp(-2.0 * math.pi**2 * sigma**2 * freq**2)


def gaussian_kernel_1d(sigma: float, shift: float = 0.0) -> np.ndarray:
    """A sampled 1-D Gaussian of ``sigma`` pixels centred at ``shift`` pixels, summing to 1.

    The kernel has odd length ``2 r + 1`` with ``r = ceil(4 sigma + |shift|)``; its centre tap
    is index ``r``. Used with :func:`scipy.ndimage.correlate1d`, a positive ``shift`` samples
    the image at ``x + shift`` (the content moves towards lower indices).

    Examples
    --------
    >>> k = gaussian_kernel_1d(1.0)
    >>> len(k), round(float(k.sum()), 12), bool(np.allclose(k, k[::-1]))
    (9, 1.0, True)
    """
    if not sigma > 0:
        raise ConfigError(f"Gaussian sigma must be > 0 pixels, got {sigma!r}")
    r = math.ceil(_TRUNCATE * sigma + abs(shift))
    t = np.arange(-r, r + 1, dtype=np.float64) - shift
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def kernel_mtf(kernel: np.ndarray, freq: float, axis: int = -1) -> float:
    """Modulus of the discrete Fourier transform of ``kernel`` at ``freq`` cycles per pixel.

    For a 2-D kernel the response is taken along ``axis`` (the other axis at frequency 0).

    Examples
    --------
    >>> round(kernel_mtf(nominal_psf("red", 2), 0.25), 4)
    0.3
    """
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim == 2:
        k = k.sum(axis=0 if axis in (-1, 1) else 1)
    n = np.arange(k.size) - (k.size - 1) / 2
    return float(abs(np.sum(k * np.exp(-2j * np.pi * freq * n))))


def nominal_psf(band: str, scale: int = 2) -> np.ndarray:
    """The nominal 2-D PSF of a 10 m band, in HR pixels, for an LR grid ``scale`` times coarser.

    An isotropic sampled Gaussian with the MTF :data:`NOMINAL_MTF` ``[band]`` at the LR
    Nyquist frequency (see the module docstring for sources and the sigma formula).

    Parameters
    ----------
    band
        Band name from :data:`s2scale.sentinel2.BANDS` (``"blue"``, ``"green"``, ``"red"``,
        ``"nir"``).
    scale
        Integer ratio of LR to HR pixel size.

    Returns
    -------
    numpy.ndarray
        ``(k, k)`` float64 kernel, ``k`` odd, symmetric, summing to 1.

    Raises
    ------
    ConfigError
        For an unknown band or a bad scale.

    Examples
    --------
    >>> k = nominal_psf("blue", 2)
    >>> k.shape, round(float(k.sum()), 12)
    ((9, 9), 1.0)
    """
    _check_band(band)
    k1 = gaussian_kernel_1d(psf_sigma(NOMINAL_MTF[band], scale))
    return np.outer(k1, k1)


def noise_sigma(band: str) -> float:
    """Noise standard deviation in reflectance at the MSI's required SNR at ``L_ref``.

    ``pi * L_ref / (E0 * cos(45 deg)) / SNR`` (see the module docstring).

    Examples
    --------
    >>> round(noise_sigma("red") * 10000, 1)
    22.3
    """
    _check_band(band)
    l_ref, snr = SNR_REFERENCE[band]
    cos_sz = math.cos(math.radians(REFERENCE_SUN_ZENITH_DEG))
    return math.pi * l_ref / (SOLAR_IRRADIANCE[band] * cos_sz) / snr


def block_mean(arr: np.ndarray, scale: int) -> np.ndarray:
    """Mean of ``scale x scale`` blocks over the last two axes (sizes must be multiples).

    Examples
    --------
    >>> block_mean(np.arange(16.0).reshape(4, 4), 2).tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    *lead, h, w = arr.shape
    if h % scale or w % scale:
        raise GridMismatchError(
            f"HR size {h}x{w} px is not a multiple of scale={scale}; crop the image to "
            f"{h - h % scale}x{w - w % scale} px first"
        )
    return arr.reshape(*lead, h // scale, scale, w // scale, scale).mean(axis=(-3, -1))


def _coerce_hr(hr: np.ndarray, bands: Sequence[str], scale: int) -> np.ndarray:
    """Validate ``(band, y, x)`` / ``(N, band, y, x)`` input and return it as float64."""
    arr = np.asarray(hr)
    if arr.ndim not in (3, 4):
        raise GridMismatchError(
            f"expected an HR array (band, y, x) or (N, band, y, x), got shape {arr.shape}; "
            "add a band axis for single-band images"
        )
    if arr.shape[-3] != len(bands):
        raise GridMismatchError(
            f"HR array has {arr.shape[-3]} bands on axis -3 but bands={tuple(bands)}; pass the "
            "array's band names as bands= (default s2scale.sentinel2.BANDS)"
        )
    for b in bands:
        _check_band(b)
    h, w = arr.shape[-2:]
    if h % scale or w % scale:
        raise GridMismatchError(
            f"HR size {h}x{w} px is not a multiple of scale={scale}; crop the image to "
            f"{h - h % scale}x{w - w % scale} px first"
        )
    return arr.astype(np.float64, copy=False)


def _blur_band(img: np.ndarray, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
    """Separable correlation of one ``(y, x)`` band, borders half-sample reflected."""
    out = correlate1d(img, ky, axis=-2, mode="reflect")
    return correlate1d(out, kx, axis=-1, mode="reflect")


def degrade_nominal(hr: np.ndarray, scale: int = 2, *, bands: Sequence[str] = BANDS) -> np.ndarray:
    """The fixed evaluation degradation: nominal PSF per band, then a ``scale x scale`` mean.

    No noise, no shift, no rounding; deterministic and linear.

    Parameters
    ----------
    hr
        ``(band, y, x)`` or ``(N, band, y, x)`` float reflectance (any unit: the operator is
        linear), bands in ``bands`` order, ``y`` and ``x`` multiples of ``scale``.
    scale
        Integer ratio of LR to HR pixel size.
    bands
        Band names of axis -3.

    Returns
    -------
    numpy.ndarray
        ``(band, y / scale, x / scale)`` (or with the leading ``N``) float64.

    Raises
    ------
    GridMismatchError
        For a wrong number of dimensions or bands, or sizes that are not multiples of ``scale``.

    Examples
    --------
    >>> lr = degrade_nominal(np.full((4, 8, 8), 0.25), 2)
    >>> lr.shape, bool(np.allclose(lr, 0.25))
    ((4, 4, 4), True)
    """
    scale = _check_scale(scale)
    arr = _coerce_hr(hr, bands, scale)
    kernels = {b: gaussian_kernel_1d(psf_sigma(NOMINAL_MTF[b], scale)) for b in bands}
    blurred = np.empty_like(arr)
    for i, b in enumerate(bands):
        k = kernels[b]
        blurred[..., i, :, :] = _blur_band(arr[..., i, :, :], k, k)
    return block_mean(blurred, scale)


@dataclass(frozen=True)
class SensorDegradationConfig:
    """Ranges of the training degradation; every draw is uniform within its range.

    The defaults and their sources are in the module docstring.
    """

    mtf_range: Range = (0.12, 0.55)
    """MTF at the LR Nyquist of the Gaussian PSF, drawn per band and per axis."""
    anisotropic: bool = True
    """Draw the along-y and along-x MTF separately (along and across track differ)."""
    shift_range_px: Range = (0.0, 0.3)
    """Length of each band's misregistration vector, LR pixels; direction uniform."""
    noise_range: Range = (0.0, 1.0)
    """Factor on the requirement-level noise sigma of each band (:func:`noise_sigma`), per image."""
    quantize_dn: bool = True
    """Round the LR reflectance to whole harmonised DN (1e-4), as L2A products are stored."""

    def __post_init__(self) -> None:
        for name in ("mtf_range", "shift_range_px", "noise_range"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ConfigError(f"{name}={(lo, hi)} must be (low, high) with low <= high")
        lo, hi = self.mtf_range
        if not (0.0 < lo and hi < 1.0):
            raise ConfigError(
                f"mtf_range={self.mtf_range} must lie inside (0, 1); the nominal value is 0.3"
            )
        if self.shift_range_px[0] < 0:
            raise ConfigError(f"shift_range_px={self.shift_range_px} must be >= 0 LR pixels")
        if self.noise_range[0] < 0:
            raise ConfigError(f"noise_range={self.noise_range} must be >= 0 (1 = MSI requirement)")

    @classmethod
    def nominal(cls) -> SensorDegradationConfig:
        """Config whose draws are the nominal evaluation setting (MTF 0.3, no shift, no noise)."""
        m = NOMINAL_MTF["blue"]
        return cls(
            mtf_range=(m, m),
            anisotropic=False,
            shift_range_px=(0.0, 0.0),
            noise_range=(0.0, 0.0),
            quantize_dn=False,
        )


@dataclass(frozen=True)
class DegradationParams:
    """One draw of :class:`SensorDegradationConfig` for one image; per-band tuples in band order."""

    bands: tuple[str, ...]
    """Band names the tuples refer to."""
    mtf_y: tuple[float, ...]
    """MTF at the LR Nyquist along y, per band."""
    mtf_x: tuple[float, ...]
    """MTF at the LR Nyquist along x, per band."""
    shift_y_px: tuple[float, ...]
    """Misregistration along y, LR pixels, per band (positive samples the scene at +y)."""
    shift_x_px: tuple[float, ...]
    """Misregistration along x, LR pixels, per band."""
    noise_sigma: tuple[float, ...]
    """Standard deviation of the additive noise, reflectance, per band."""
    quantize_dn: bool
    """Whether the LR reflectance is rounded to whole DN."""

    def as_dict(self) -> dict[str, object]:
        """Plain dict for patch-store metadata or JSON."""
        return {
            "bands": list(self.bands),
            "mtf_y": list(self.mtf_y),
            "mtf_x": list(self.mtf_x),
            "shift_y_px": list(self.shift_y_px),
            "shift_x_px": list(self.shift_x_px),
            "noise_sigma": list(self.noise_sigma),
            "quantize_dn": self.quantize_dn,
        }


def sample_params(
    config: SensorDegradationConfig, rng: np.random.Generator, *, bands: Sequence[str] = BANDS
) -> DegradationParams:
    """Draw one image's degradation parameters from ``config`` with ``rng``.

    Examples
    --------
    >>> p = sample_params(SensorDegradationConfig(), np.random.default_rng(0))
    >>> len(p.mtf_y), all(0.12 <= m <= 0.55 for m in p.mtf_x)
    (4, True)
    """
    for b in bands:
        _check_band(b)
    n = len(bands)
    mtf_y = rng.uniform(*config.mtf_range, size=n)
    mtf_x = rng.uniform(*config.mtf_range, size=n) if config.anisotropic else mtf_y.copy()
    length = rng.uniform(*config.shift_range_px, size=n)
    angle = rng.uniform(0.0, 2.0 * math.pi, size=n)
    factor = rng.uniform(*config.noise_range)
    return DegradationParams(
        bands=tuple(bands),
        mtf_y=tuple(float(v) for v in mtf_y),
        mtf_x=tuple(float(v) for v in mtf_x),
        shift_y_px=tuple(float(v) for v in length * np.sin(angle)),
        shift_x_px=tuple(float(v) for v in length * np.cos(angle)),
        noise_sigma=tuple(float(factor * noise_sigma(b)) for b in bands),
        quantize_dn=config.quantize_dn,
    )


def apply_degradation(
    hr: np.ndarray,
    params: DegradationParams,
    scale: int = 2,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Degrade one HR image ``(band, y, x)`` with fixed ``params``.

    Parameters
    ----------
    hr
        ``(band, y, x)`` float reflectance, bands as ``params.bands``, sizes multiples of
        ``scale``.
    params
        From :func:`sample_params`.
    scale
        Integer ratio of LR to HR pixel size.
    rng
        Source of the noise; required when any ``params.noise_sigma`` is non-zero.

    Returns
    -------
    numpy.ndarray
        ``(band, y / scale, x / scale)`` float64 reflectance.
    """
    scale = _check_scale(scale)
    arr = _coerce_hr(hr, params.bands, scale)
    if arr.ndim != 3:
        raise GridMismatchError(
            f"apply_degradation takes one image (band, y, x), got shape {arr.shape}; use "
            "degrade_sensor() for batches"
        )
    blurred = np.empty_like(arr)
    for i in range(len(params.bands)):
        ky = gaussian_kernel_1d(psf_sigma(params.mtf_y[i], scale), params.shift_y_px[i] * scale)
        kx = gaussian_kernel_1d(psf_sigma(params.mtf_x[i], scale), params.shift_x_px[i] * scale)
        blurred[i] = _blur_band(arr[i], ky, kx)
    lr = block_mean(blurred, scale)
    sigma = np.asarray(params.noise_sigma, dtype=np.float64)
    if np.any(sigma > 0):
        if rng is None:
            raise ConfigError("noise_sigma > 0 needs an rng; pass np.random.default_rng(seed)")
        lr = lr + rng.standard_normal(lr.shape) * sigma[:, None, None]
    if params.quantize_dn:
        lr = np.round(lr * 10000.0) / 10000.0
    return lr


def degrade_sensor(
    hr: np.ndarray,
    scale: int,
    config: SensorDegradationConfig,
    rng: np.random.Generator,
    *,
    bands: Sequence[str] = BANDS,
    return_params: bool = False,
) -> np.ndarray | tuple[np.ndarray, list[DegradationParams]]:
    """Degrade HR images with parameters drawn from ``config`` (one draw per image).

    Parameters
    ----------
    hr
        ``(band, y, x)`` or ``(N, band, y, x)`` float reflectance, bands in ``bands`` order,
        ``y`` and ``x`` multiples of ``scale``.
    scale
        Integer ratio of LR to HR pixel size.
    config
        Ranges to draw from.
    rng
        ``np.random.default_rng(seed)``: equal seeds give equal outputs.
    bands
        Band names of axis -3.
    return_params
        Also return the drawn :class:`DegradationParams`, one per image.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, list of DegradationParams)
        ``(band, y / scale, x / scale)`` (or with the leading ``N``) float64 reflectance.

    Examples
    --------
    >>> hr = np.random.default_rng(1).uniform(0, 0.3, (2, 4, 16, 16))
    >>> degrade_sensor(hr, 2, SensorDegradationConfig(), np.random.default_rng(0)).shape
    (2, 4, 8, 8)
    """
    scale = _check_scale(scale)
    arr = _coerce_hr(hr, bands, scale)
    images = arr[None] if arr.ndim == 3 else arr
    outs, drawn = [], []
    for img in images:
        params = sample_params(config, rng, bands=bands)
        outs.append(apply_degradation(img, params, scale, rng))
        drawn.append(params)
    lr = np.stack(outs)
    if arr.ndim == 3:
        lr = lr[0]
    return (lr, drawn) if return_params else lr
