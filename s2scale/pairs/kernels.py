"""Pure numpy kernels of the pair pipeline: no files, no Dask, no globals.

- :func:`area_downsample`, :func:`wald_pairs`: detector-footprint means and Wald's-protocol pairs;
- :func:`match_histograms_block`: per-band histogram matching on valid pixels;
- :func:`patch_origins`, :func:`extract_patches`: co-located LR/HR patches, fully valid only;
- :func:`measure_shift_block`, :func:`patch_shifts`: sub-pixel co-registration check (phase
  correlation, ``skimage.registration.phase_cross_correlation``);
- :func:`patch_ssim`: the study's SSIM filter;
- :func:`split_blocks`, :func:`location_splits`: spatial train/val/test splits without shared
  pixels;
- :func:`study_pairs`: the study's steps on one co-located window (shift check and correction,
  histogram matching, patches, SSIM filter);
- :func:`make_pairs`, :class:`PatchSet`: patches, SSIM filter and split of one image pair.

All images are ``(band, y, x)``; DN arrays are uint16 harmonised digital numbers (reflectance x
10000) with 0 = no data; float arrays are reflectance or orthophoto units with NaN = no data
unless stated otherwise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from scipy.ndimage import gaussian_filter

from s2scale.errors import ConfigError, GridMismatchError

__all__ = [
    "SPLITS",
    "STUDY_SPLIT",
    "PatchSet",
    "StudyPairs",
    "area_downsample",
    "best_lattice_offset",
    "extract_patches",
    "location_splits",
    "make_pairs",
    "match_histograms_block",
    "measure_shift_block",
    "patch_origins",
    "patch_shifts",
    "patch_ssim",
    "split_blocks",
    "study_pairs",
    "wald_pairs",
]

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""Names of the split codes 0, 1, 2 in a patch store (-1 marks a dropped guard patch)."""

STUDY_SPLIT: tuple[float, float, float] = (1500.0, 374.0, 208.0)
"""Train, val and test patch counts of the reference study, used as split proportions."""


def _coerce_scale(scale: int) -> int:
    """Require an integer scale >= 2."""
    if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < 2:
        raise ConfigError(f"scale must be an integer >= 2 (2 for 10 m -> 5 m), got {scale!r}")
    return int(scale)


def area_downsample(img: np.ndarray, scale: int) -> np.ndarray:
    """Block mean by ``scale`` over the last two axes (a detector footprint), float32.

    The input is cropped to a multiple of ``scale``. NaN propagates: a block with a NaN is NaN.

    Examples
    --------
    >>> area_downsample(np.arange(16, dtype=float).reshape(1, 4, 4), 2)[0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    scale = _coerce_scale(scale)
    h, w = img.shape[-2] // scale * scale, img.shape[-1] // scale * scale
    x = np.asarray(img[..., :h, :w], np.float32)
    x = x.reshape(*x.shape[:-2], h // scale, scale, w // scale, scale)
    return x.mean(axis=(-3, -1))


def wald_pairs(
    hr: np.ndarray,
    scale: int = 2,
    psf_sigma_px: float = 0.55,
    *,
    noise_sigma: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Wald's-protocol pair ``(lr, hr)``: blur with a Gaussian PSF, then area-downsample.

    The PSF sigma is given in *coarse* (LR) pixels, as the MSI's is: about 0.5-0.6 of a pixel
    (the simulator uses 0.55). The blur runs at the HR resolution with sigma
    ``psf_sigma_px * scale`` HR pixels, then ``scale x scale`` blocks are averaged.

    Parameters
    ----------
    hr
        ``(band, y, x)`` image: uint16 DN (0 = no data) or float reflectance (NaN = no data).
        It is cropped to a multiple of ``scale``.
    scale
        Downsampling factor (2: 10 m -> 20 m, or 5 m -> 10 m).
    psf_sigma_px
        Gaussian PSF sigma in LR pixels; 0 gives the plain area average.
    noise_sigma
        Standard deviation of Gaussian noise added to the LR, in the units of ``hr`` (DN or
        reflectance); needs ``rng`` when > 0.
    rng
        Random generator for the noise.

    Returns
    -------
    tuple of numpy.ndarray
        ``lr`` ``(band, y // scale, x // scale)`` and the cropped ``hr``, in the dtype of ``hr``
        (uint16: rounded and clipped to 1..65535, 0 where any contributing pixel was no data).

    Examples
    --------
    >>> hr = np.full((4, 8, 8), 1000, np.uint16)
    >>> lr, hr2 = wald_pairs(hr, 2, 0.55)
    >>> lr.shape, hr2.shape, int(lr.min()), int(lr.max())
    ((4, 4, 4), (4, 8, 8), 1000, 1000)
    """
    scale = _coerce_scale(scale)
    if hr.ndim != 3:
        raise GridMismatchError(f"wald_pairs expects (band, y, x), got shape {hr.shape}")
    if psf_sigma_px < 0 or noise_sigma < 0:
        raise ConfigError(f"psf_sigma_px={psf_sigma_px} and noise_sigma={noise_sigma} must be >= 0")
    if noise_sigma > 0 and rng is None:
        raise ConfigError("noise_sigma > 0 needs rng=np.random.default_rng(seed)")
    h, w = hr.shape[1] // scale * scale, hr.shape[2] // scale * scale
    if h == 0 or w == 0:
        raise GridMismatchError(f"image {hr.shape} is smaller than scale={scale}")
    hr = hr[:, :h, :w]
    is_dn = hr.dtype == np.uint16
    x = hr.astype(np.float32)
    invalid = (hr == 0).any(0) if is_dn else np.isnan(x).any(0)
    if invalid.any():  # fill for the blur; blocks near no data are flagged below
        fill = np.nanmean(np.where(invalid[None], np.nan, x), axis=(1, 2))
        x = np.where(invalid[None], np.nan_to_num(fill)[:, None, None], x)
    sigma = psf_sigma_px * scale
    if sigma > 0:
        x = np.stack([gaussian_filter(b, sigma, mode="reflect", truncate=3.0) for b in x])
    lr = area_downsample(x, scale)
    if noise_sigma > 0:
        assert rng is not None  # checked above
        lr = lr + rng.normal(0.0, noise_sigma, lr.shape).astype(np.float32)
    reach = math.ceil(3.0 * sigma)
    bad = invalid
    if invalid.any() and reach > 0:
        from scipy.ndimage import binary_dilation

        bad = binary_dilation(invalid, iterations=reach)
    bad_lr = area_downsample(bad[None].astype(np.float32), scale)[0] > 0
    if is_dn:
        out = np.clip(np.round(lr), 1, 65535).astype(np.uint16)
        out[:, bad_lr] = 0
        return out, hr
    out = lr.astype(hr.dtype if np.issubdtype(hr.dtype, np.floating) else np.float32)
    out[:, bad_lr] = np.nan
    return out, hr


def match_histograms_block(
    hr: np.ndarray,
    reference: np.ndarray,
    *,
    nodata: float | None = 0,
    method: Literal["quantile", "skimage"] = "quantile",
) -> np.ndarray:
    """Match each band of ``hr`` to the histogram of the same band of ``reference``.

    Used to give an orthophoto resampled to 5 m the radiometry of the co-located Sentinel-2
    10 m composite (the reference study's step). Only valid pixels take part on either side; the
    two arrays may have different sizes (quantiles are matched).

    ``method="quantile"`` maps each pixel's mid-rank plotting position ``(rank - 0.5) / n``
    (ties share their mean rank) to the reference's quantile of the same probability
    (``numpy.quantile(..., method="hazen")``), so mean and standard deviation follow the
    reference closely even for small areas with sparse DN values.
    ``method="skimage"`` uses ``skimage.exposure.match_histograms``, whose cumulative-count
    quantiles shift the mean upwards by up to half a gap between the reference's values (8 % on
    a 30 x 40 pixel urban window of real Sentinel-2-like data).

    Parameters
    ----------
    hr
        ``(band, y, x)`` image to adjust, any real dtype.
    reference
        ``(band, y', x')`` image with the target radiometry (e.g. S2 DN), same band count.
    nodata
        Value marking invalid pixels in both arrays (NaN is always invalid); ``None``: all valid.
    method
        ``quantile`` or ``skimage`` (see above).

    Returns
    -------
    numpy.ndarray
        float32 ``(band, y, x)`` in the units of ``reference``; ``nodata`` (or NaN if ``None``)
        where ``hr`` was invalid.

    Raises
    ------
    GridMismatchError
        If the band counts differ or a band of ``reference`` has no valid pixel.

    Examples
    --------
    >>> hr = np.arange(4, dtype=float).reshape(1, 2, 2) + 1
    >>> ref = np.array([[[10.0, 20.0], [30.0, 40.0]]])
    >>> match_histograms_block(hr, ref)[0].tolist()
    [[10.0, 20.0], [30.0, 40.0]]
    """
    from scipy.stats import rankdata
    from skimage.exposure import match_histograms

    if method not in ("quantile", "skimage"):
        raise ConfigError(f"method={method!r}: choose 'quantile' or 'skimage'")
    if hr.ndim != 3 or reference.ndim != 3 or hr.shape[0] != reference.shape[0]:
        raise GridMismatchError(
            f"match_histograms_block needs (band, y, x) arrays with equal band counts, got "
            f"{hr.shape} and {reference.shape}"
        )
    out = np.full(hr.shape, np.nan if nodata is None else nodata, np.float32)
    for b in range(hr.shape[0]):
        src, ref = hr[b].astype(np.float64), reference[b].astype(np.float64)
        ok_src = np.isfinite(src) & (True if nodata is None else src != nodata)
        ok_ref = np.isfinite(ref) & (True if nodata is None else ref != nodata)
        if not ok_ref.any():
            raise GridMismatchError(f"band {b} of the reference has no valid pixel")
        if not ok_src.any():
            continue
        if method == "skimage":
            out[b][ok_src] = match_histograms(src[ok_src], ref[ok_ref])
            continue
        values = src[ok_src]
        q = (rankdata(values, method="average") - 0.5) / values.size
        out[b][ok_src] = np.quantile(ref[ok_ref], q, method="hazen")
    return out


def extract_patches(
    lr: np.ndarray,
    hr: np.ndarray,
    *,
    scale: int = 2,
    lr_patch_px: int = 96,
    stride_px: int | None = None,
    nodata: float = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut co-located patches; skip any patch with no data in either image.

    Parameters
    ----------
    lr
        ``(band, y, x)`` LR image.
    hr
        ``(band, y * scale, x * scale)`` HR image on the nested grid (same top-left corner).
    scale
        HR pixels per LR pixel.
    lr_patch_px
        LR patch edge (HR patches are ``lr_patch_px * scale``).
    stride_px
        Step between patches in LR pixels; default ``lr_patch_px`` (no overlap).
    nodata
        No-data value (NaN is always no data).

    Returns
    -------
    tuple of numpy.ndarray
        ``lr`` patches ``(N, band, p, p)``, ``hr`` patches ``(N, band, p*s, p*s)`` (dtypes kept)
        and ``origins`` ``(N, 2)`` int64: LR ``(row, col)`` of each patch's top-left pixel.

    Raises
    ------
    GridMismatchError
        If the shapes do not nest at ``scale``.

    Examples
    --------
    >>> lr = np.ones((1, 4, 6), np.uint16); hr = np.ones((1, 8, 12), np.uint16)
    >>> lr[0, 0, 5] = 0  # no data in the top-right patch
    >>> p_lr, p_hr, origins = extract_patches(lr, hr, lr_patch_px=2)
    >>> p_lr.shape, p_hr.shape, origins.tolist()
    ((5, 1, 2, 2), (5, 1, 4, 4), [[0, 0], [0, 2], [2, 0], [2, 2], [2, 4]])
    """
    scale = _coerce_scale(scale)
    stride = lr_patch_px if stride_px is None else stride_px
    if lr_patch_px < 1 or stride < 1:
        raise ConfigError(f"lr_patch_px={lr_patch_px} and stride_px={stride} must be >= 1")
    if lr.ndim != 3 or hr.ndim != 3 or hr.shape[1:] != (lr.shape[1] * scale, lr.shape[2] * scale):
        raise GridMismatchError(
            f"hr {hr.shape} must be lr {lr.shape} times scale={scale} in y and x"
        )
    invalid_lr = (lr == nodata).any(0) | np.isnan(lr.astype(np.float32)).any(0)
    invalid_hr = (hr == nodata).any(0) | np.isnan(hr.astype(np.float32)).any(0)
    invalid = invalid_lr | (area_downsample(invalid_hr[None].astype(np.float32), scale)[0] > 0)
    p, hp = lr_patch_px, lr_patch_px * scale
    origins = [
        (r, c)
        for r in range(0, lr.shape[1] - p + 1, stride)
        for c in range(0, lr.shape[2] - p + 1, stride)
        if not invalid[r : r + p, c : c + p].any()
    ]
    n, bands = len(origins), lr.shape[0]
    out_lr = np.empty((n, bands, p, p), lr.dtype)
    out_hr = np.empty((n, bands, hp, hp), hr.dtype)
    for i, (r, c) in enumerate(origins):
        out_lr[i] = lr[:, r : r + p, c : c + p]
        out_hr[i] = hr[:, r * scale : r * scale + hp, c * scale : c * scale + hp]
    return out_lr, out_hr, np.asarray(origins, np.int64).reshape(n, 2)


def patch_ssim(
    lr_patches: np.ndarray, hr_patches: np.ndarray, *, scale: int = 2, data_range: float = 10000.0
) -> np.ndarray:
    """SSIM per pair between the area-downsampled HR patch and the LR patch, float64 ``(N,)``.

    Low values flag misregistration or changes between the two acquisitions (the study's filter).
    Uses :func:`s2scale.metrics.ssim` with ``gaussian=False`` (scikit-image's 7 x 7 uniform
    window, mean over bands), so patches need only >= 7 LR px.
    """
    from s2scale.metrics import ssim

    if len(lr_patches) != len(hr_patches):
        raise GridMismatchError(f"{len(lr_patches)} LR but {len(hr_patches)} HR patches")
    return np.array(
        [
            ssim(area_downsample(h, scale), np.asarray(lo, np.float32), data_range, gaussian=False)
            for lo, h in zip(lr_patches, hr_patches, strict=True)
        ],
        np.float64,
    )


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
        int8 ``(N,)``: 0 train, 1 val, 2 test (:data:`SPLITS`), -1 dropped.

    Examples
    --------
    >>> origins = np.array([[0, 0], [0, 4], [0, 2]])
    >>> split_blocks(origins, patch_px=4, block_px=4, fractions=(0.5, 0.5, 0), seed=3).tolist()
    [0, 1, -1]
    """
    fr = np.asarray(fractions, np.float64)
    if fr.shape != (3,) or (fr < 0).any() or fr.sum() <= 0:
        raise ConfigError(
            f"fractions must be three shares >= 0 (train, val, test), got {fractions}"
        )
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
    bounds = np.cumsum(fr / fr.sum())
    block_split = np.searchsorted(bounds, draws, side="right").clip(0, 2)
    first = origins // block_px
    out = block_split[first[:, 0], first[:, 1]].astype(np.int8)
    for i, ((r0, c0), (r1, c1)) in enumerate(zip(first, last, strict=True)):
        if (block_split[r0 : r1 + 1, c0 : c1 + 1] != out[i]).any():
            out[i] = -1
    return out


@dataclass
class PatchSet:
    """Co-located patches of one or more sources, ready for :func:`write_patch_store`."""

    lr: np.ndarray
    """``(N, C, p, p)`` uint16 DN."""
    hr: np.ndarray
    """``(N, C, p * scale, p * scale)`` uint16 DN."""
    split: np.ndarray
    """``(N,)`` int8: 0 train, 1 val, 2 test."""
    source: np.ndarray
    """``(N,)`` int16 index into :attr:`sources`."""
    sources: list[dict[str, Any]] = field(default_factory=list)
    """Provenance of each source (plain JSON data: name, kind, seed, sizes, ...)."""
    ssim: np.ndarray | None = None
    """``(N,)`` SSIM of the HR (downsampled) vs the LR, where computed."""

    def __len__(self) -> int:
        return int(self.lr.shape[0])

    @classmethod
    def concat(cls, parts: Sequence[PatchSet]) -> PatchSet:
        """Join patch sets (equal patch sizes and bands), renumbering their sources."""
        parts = [p for p in parts if len(p)]
        if not parts:
            raise ConfigError("no patches to join: every source was empty or filtered out")
        shapes = {(p.lr.shape[1:], p.hr.shape[1:]) for p in parts}
        if len(shapes) > 1:
            raise GridMismatchError(f"patch sets have different patch shapes: {sorted(shapes)}")
        sources: list[dict[str, Any]] = []
        src = []
        for p in parts:
            src.append(p.source.astype(np.int16) + len(sources))
            sources += p.sources
        ssims = [p.ssim if p.ssim is not None else np.full(len(p), np.nan) for p in parts]
        return cls(
            lr=np.concatenate([p.lr for p in parts]),
            hr=np.concatenate([p.hr for p in parts]),
            split=np.concatenate([p.split for p in parts]).astype(np.int8),
            source=np.concatenate(src),
            sources=sources,
            ssim=np.concatenate(ssims),
        )


def make_pairs(
    lr: np.ndarray,
    hr: np.ndarray,
    *,
    scale: int = 2,
    lr_patch_px: int = 96,
    stride_px: int | None = None,
    ssim_threshold: float | None = 0.45,
    block_px: int | None = None,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    source: Mapping[str, Any] | None = None,
) -> PatchSet:
    """Patches, SSIM filter and spatial split of one co-located uint16 ``(lr, hr)`` image pair.

    Parameters
    ----------
    lr, hr
        uint16 DN ``(band, y, x)`` and ``(band, y * scale, x * scale)``, 0 = no data.
    scale, lr_patch_px, stride_px
        See :func:`extract_patches`.
    ssim_threshold
        Drop pairs whose :func:`patch_ssim` is below this (``None`` keeps all).
    block_px
        Block edge of :func:`split_blocks` in LR pixels; default ``4 * lr_patch_px``.
    fractions, seed
        See :func:`split_blocks`.
    source
        Provenance record of this pair (plain JSON data), stored in the patch store's attrs.

    Returns
    -------
    PatchSet
        The kept patches (guard patches straddling split blocks removed).
    """
    scale = _coerce_scale(scale)
    if lr.dtype != np.uint16 or hr.dtype != np.uint16:
        raise ConfigError(f"make_pairs needs uint16 DN, got {lr.dtype} and {hr.dtype}")
    p_lr, p_hr, origins = extract_patches(
        lr, hr, scale=scale, lr_patch_px=lr_patch_px, stride_px=stride_px
    )
    values = patch_ssim(p_lr, p_hr, scale=scale) if len(p_lr) else np.zeros(0)
    keep = np.ones(len(p_lr), bool) if ssim_threshold is None else values >= ssim_threshold
    split = split_blocks(
        origins,
        patch_px=lr_patch_px,
        block_px=block_px or 4 * lr_patch_px,
        fractions=fractions,
        seed=seed,
    )
    keep &= split >= 0
    record = dict(source or {})
    record.update(
        patches=int(keep.sum()),
        dropped_ssim=int((values < (ssim_threshold or -2)).sum()),
        ssim_threshold=ssim_threshold,
    )
    log.debug("pairs %s: %d of %d patches kept", record.get("name"), keep.sum(), len(keep))
    return PatchSet(
        lr=p_lr[keep],
        hr=p_hr[keep],
        split=split[keep],
        source=np.zeros(int(keep.sum()), np.int16),
        sources=[record],
        ssim=values[keep],
    )


# ------------------------------------------------------------------------ study pairs (windows)
def patch_origins(valid: np.ndarray, *, patch_px: int, stride_px: int | None = None) -> np.ndarray:
    """Top-left ``(row, col)`` of every fully valid ``patch_px`` window on the stride lattice.

    Parameters
    ----------
    valid
        ``(y, x)`` bool, True where a pixel may be used.
    patch_px
        Patch edge in pixels.
    stride_px
        Lattice step; default ``patch_px`` (patches do not overlap).

    Returns
    -------
    numpy.ndarray
        ``(N, 2)`` int64 origins in row-major order.

    Examples
    --------
    >>> v = np.ones((4, 6), bool); v[0, 5] = False
    >>> patch_origins(v, patch_px=2).tolist()
    [[0, 0], [0, 2], [2, 0], [2, 2], [2, 4]]
    """
    stride = patch_px if stride_px is None else stride_px
    if patch_px < 1 or stride < 1:
        raise ConfigError(f"patch_px={patch_px} and stride_px={stride} must be >= 1")
    valid = np.asarray(valid, bool)
    h, w = valid.shape
    if h < patch_px or w < patch_px:
        return np.zeros((0, 2), np.int64)
    bad = np.pad(np.cumsum(np.cumsum(~valid, 0, dtype=np.int64), 1), ((1, 0), (1, 0)))
    r = np.arange(0, h - patch_px + 1, stride)[:, None]
    c = np.arange(0, w - patch_px + 1, stride)[None, :]
    p = patch_px
    count = bad[r + p, c + p] - bad[r, c + p] - bad[r + p, c] + bad[r, c]
    rows, cols = np.nonzero(count == 0)
    return np.stack([r[rows, 0], c[0, cols]], axis=1).astype(np.int64).reshape(-1, 2)


def best_lattice_offset(
    valid: np.ndarray, *, patch_px: int, stride_px: int | None = None, steps: int = 8
) -> tuple[int, int]:
    """The shift ``(row, col)`` of the patch lattice that fits the most fully valid patches.

    Offsets ``0, s, 2s, ...`` below the stride (``s = stride / steps``, at least 1) are tried on
    both axes; ties go to the smallest offset, so the choice is deterministic.

    Examples
    --------
    >>> v = np.zeros((10, 10), bool); v[3:9, 3:9] = True
    >>> best_lattice_offset(v, patch_px=3, steps=3)
    (0, 0)
    >>> best_lattice_offset(v, patch_px=6, steps=6)
    (3, 3)
    """
    stride = patch_px if stride_px is None else stride_px
    step = max(1, stride // max(1, steps))
    best, where = -1, (0, 0)
    for oy in range(0, stride, step):
        for ox in range(0, stride, step):
            n = len(patch_origins(valid[oy:, ox:], patch_px=patch_px, stride_px=stride))
            if n > best:
                best, where = n, (oy, ox)
    return where


def _cut(img: np.ndarray, origins: np.ndarray, patch_px: int, scale: int = 1) -> np.ndarray:
    """Patches ``(N, band, p * scale, p * scale)`` of ``img`` at LR ``origins``."""
    q = patch_px * scale
    out = np.empty((len(origins), img.shape[0], q, q), img.dtype)
    for i, (r, c) in enumerate(np.asarray(origins, np.int64).reshape(-1, 2)):
        out[i] = img[:, r * scale : r * scale + q, c * scale : c * scale + q]
    return out


def _standardise(img: np.ndarray) -> np.ndarray:
    """Band mean of the z-scored bands of a ``(band, y, x)`` image, float64 ``(y, x)``."""
    x = np.asarray(img, np.float64)
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    return ((x - mean) / np.where(std > 0, std, 1.0)).mean(0)


def measure_shift_block(
    reference: np.ndarray, moving: np.ndarray, *, upsample_factor: int = 20
) -> np.ndarray:
    """Sub-pixel displacement of ``moving`` relative to ``reference`` (phase correlation).

    Both images are z-scored per band and averaged over bands (so radiometry does not matter),
    tapered with a Hann window, then registered with
    ``skimage.registration.phase_cross_correlation``.

    Parameters
    ----------
    reference
        ``(band, y, x)`` fully valid image, e.g. a Sentinel-2 LR patch (any real dtype).
    moving
        ``(band, y, x)`` image of the same shape, e.g. the HR patch area-downsampled to the LR
        grid.
    upsample_factor
        Precision of the estimate is ``1 / upsample_factor`` pixel.

    Returns
    -------
    numpy.ndarray
        float64 ``(dy, dx)`` in pixels: the content of ``moving`` lies ``dy`` rows lower and
        ``dx`` columns further right than in ``reference``.

    Examples
    --------
    >>> img = gaussian_filter(np.random.default_rng(0).random((1, 90, 90)), (0, 2, 2))
    >>> ref, mov = img[:, 10:74, 10:74], img[:, 8:72, 13:77]  # 2 rows down, 3 columns left
    >>> measure_shift_block(ref, mov).round().tolist()
    [2.0, -3.0]
    """
    from skimage.filters import window
    from skimage.registration import phase_cross_correlation

    if reference.shape != moving.shape or reference.ndim != 3:
        raise GridMismatchError(
            f"measure_shift_block needs two (band, y, x) images of one shape, got "
            f"{reference.shape} and {moving.shape}"
        )
    taper = window("hann", reference.shape[1:])
    ref = _standardise(reference) * taper
    mov = _standardise(moving) * taper
    shift, _, _ = phase_cross_correlation(
        ref, mov, upsample_factor=upsample_factor, normalization=None
    )
    return -np.asarray(shift, np.float64)  # skimage gives the shift that registers moving


def patch_shifts(
    lr_patches: np.ndarray, hr_patches: np.ndarray, *, scale: int = 2, upsample_factor: int = 20
) -> np.ndarray:
    """:func:`measure_shift_block` of each HR patch (area-downsampled) against its LR patch.

    Returns
    -------
    numpy.ndarray
        float64 ``(N, 2)``: ``(dy, dx)`` of the HR content relative to the LR, in LR pixels.
    """
    if len(lr_patches) != len(hr_patches):
        raise GridMismatchError(f"{len(lr_patches)} LR but {len(hr_patches)} HR patches")
    out = np.zeros((len(lr_patches), 2), np.float64)
    for i, (lo, hi) in enumerate(zip(lr_patches, hr_patches, strict=True)):
        out[i] = measure_shift_block(
            lo, area_downsample(hi, scale), upsample_factor=upsample_factor
        )
    return out


def _coerce_fractions(fractions: Sequence[float]) -> np.ndarray:
    """Three shares >= 0 with a positive sum, normalised to 1."""
    fr = np.asarray(fractions, np.float64)
    if fr.shape != (3,) or (fr < 0).any() or fr.sum() <= 0:
        raise ConfigError(
            f"fractions must be three shares >= 0 (train, val, test), got {fractions}"
        )
    return fr / fr.sum()


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
        int8 ``(N,)``: 0 train, 1 val, 2 test (:data:`SPLITS`), -1 dropped.

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


@dataclass(frozen=True)
class StudyPairs:
    """What :func:`study_pairs` keeps of one co-located window, and what it dropped."""

    lr: np.ndarray
    """``(N, C, p, p)`` uint16 DN Sentinel-2 patches."""
    hr: np.ndarray
    """``(N, C, p * scale, p * scale)`` uint16 DN histogram-matched orthophoto patches."""
    origins: np.ndarray
    """``(N, 2)`` int64 LR ``(row, col)`` of each patch's top-left pixel in the window."""
    ssim: np.ndarray
    """``(N,)`` float64 SSIM of the area-downsampled HR patch against the LR patch."""
    shift: np.ndarray
    """``(N, 2)`` float64 ``(dy, dx)`` displacement of the kept HR patch, LR pixels."""
    offset: tuple[float, float]
    """Correction applied to the whole orthophoto window, ``(dy, dx)`` in LR pixels."""
    counts: dict[str, int]
    """``candidates`` (fully valid patches), ``dropped_shift``, ``dropped_ssim``, ``kept``."""
    radiometry: dict[str, list[float]] = field(default_factory=dict)
    """Per band over the common valid area after matching: ``lr_mean``, ``lr_std``,
    ``hr_mean``, ``hr_std`` (DN)."""

    def __len__(self) -> int:
        return int(self.lr.shape[0])


def _pair_valid(lr: np.ndarray, hr: np.ndarray, scale: int) -> np.ndarray:
    """LR pixels ``(y, x)`` valid in the LR and in all ``scale x scale`` HR pixels inside."""
    ok_hr = np.isfinite(hr).all(0)[None].astype(np.float32)
    return (lr > 0).all(0) & (area_downsample(ok_hr, scale)[0] == 1.0)


def _still_valid(valid: np.ndarray, origins: np.ndarray, patch_px: int) -> np.ndarray:
    """Whether each patch window at ``origins`` is still fully valid."""
    return np.array(
        [bool(valid[r : r + patch_px, c : c + patch_px].all()) for r, c in origins], bool
    ).reshape(len(origins))


def study_pairs(
    lr: np.ndarray,
    render_hr: Callable[[tuple[float, float]], np.ndarray],
    *,
    scale: int = 2,
    lr_patch_px: int = 96,
    stride_px: int | None = None,
    max_shift_px: float = 0.5,
    coregister: bool = True,
    ssim_min: float | None = 0.45,
    upsample_factor: int = 50,
    iterations: int = 3,
) -> StudyPairs:
    """The study's pairs of one window: shift check, correction, histogram matching, SSIM.

    1. ``render_hr((0, 0))`` gives the orthophoto on the nested HR grid; fully valid patch
       positions (LR clear and valid, every HR pixel covered) on the lattice placed to fit the
       most patches into the orthophoto's coverage (:func:`best_lattice_offset`) are the
       candidates.
    2. Each candidate's displacement (:func:`patch_shifts`) is measured; patches displaced by
       more than ``max_shift_px`` LR pixels are dropped.
    3. With ``coregister``, the orthophoto is rendered again moved by minus the median
       displacement of the others (the HR grid stays the Sentinel-2 grid; only the
       orthophoto's content moves) and the remaining displacement of each patch is measured
       again; up to ``iterations`` times (the tapered phase correlation underestimates
       displacements slightly, so a second round removes what the first left), then the
       remaining displacements are checked against ``max_shift_px`` again.
    4. Each HR band is histogram-matched (:func:`match_histograms_block`) to the LR band over
       the common valid area.
    5. Pairs whose :func:`patch_ssim` is below ``ssim_min`` are dropped.

    Parameters
    ----------
    lr
        ``(C, h, w)`` uint16 DN Sentinel-2 window, 0 = cloudy or no data.
    render_hr
        ``render_hr((dy, dx))`` returns the orthophoto on the HR grid nested in ``lr``'s, float32
        ``(C, h * scale, w * scale)`` in its own units with NaN = no data, its content moved by
        ``dy`` rows down and ``dx`` columns right (LR pixels).
    scale, lr_patch_px, stride_px
        HR pixels per LR pixel, LR patch edge and lattice step (default ``lr_patch_px``).
    max_shift_px
        Largest accepted displacement (Euclidean), LR pixels.
    coregister
        Correct the window's median displacement before matching.
    ssim_min
        SSIM filter threshold (``None`` keeps all pairs).
    upsample_factor
        Phase-correlation precision is ``1 / upsample_factor`` LR pixel.
    iterations
        Most correction rounds (stops early once the median displacement is below the
        precision).

    Returns
    -------
    StudyPairs
        The kept pairs, their SSIM and remaining displacement, the correction and the counts.

    Raises
    ------
    GridMismatchError
        If ``lr`` is not uint16 ``(C, h, w)`` or ``render_hr`` returns another shape.
    """
    scale = _coerce_scale(scale)
    if lr.ndim != 3 or lr.dtype != np.uint16:
        raise GridMismatchError(f"lr must be uint16 (band, y, x) DN, got {lr.dtype} {lr.shape}")
    if not max_shift_px >= 0:
        raise ConfigError(f"max_shift_px={max_shift_px} must be >= 0 LR pixels")
    want = (lr.shape[0], lr.shape[1] * scale, lr.shape[2] * scale)
    p = lr_patch_px

    def render(offset: tuple[float, float]) -> np.ndarray:
        hr = np.asarray(render_hr(offset), np.float32)
        if hr.shape != want:
            raise GridMismatchError(f"render_hr returned {hr.shape}, expected {want}")
        return hr

    hr = render((0.0, 0.0))
    valid = _pair_valid(lr, hr, scale)
    # the lattice is placed on the orthophoto's coverage (the same for every observation)
    oy, ox = best_lattice_offset(_pair_valid(np.ones_like(lr), hr, scale), patch_px=p,
                                 stride_px=stride_px)  # fmt: skip
    origins = patch_origins(valid[oy:, ox:], patch_px=p, stride_px=stride_px) + np.array([oy, ox])
    counts = {"candidates": len(origins), "dropped_shift": 0, "dropped_ssim": 0, "kept": 0}
    nb = lr.shape[0]
    empty = StudyPairs(
        lr=np.zeros((0, nb, p, p), np.uint16),
        hr=np.zeros((0, nb, p * scale, p * scale), np.uint16),
        origins=np.zeros((0, 2), np.int64),
        ssim=np.zeros(0),
        shift=np.zeros((0, 2)),
        offset=(0.0, 0.0),
        counts=counts,
    )
    if not len(origins):
        return empty
    lr_p = _cut(lr, origins, p)
    shift = patch_shifts(
        lr_p, _cut(hr, origins, p, scale), scale=scale, upsample_factor=upsample_factor
    )
    ok = np.hypot(shift[:, 0], shift[:, 1]) <= max_shift_px
    offset = (0.0, 0.0)
    for _ in range(iterations if coregister else 0):
        if not ok.any():
            break
        med = np.median(shift[ok], axis=0)
        if np.hypot(*med) < 0.5 / upsample_factor:
            break
        offset = (offset[0] - float(med[0]), offset[1] - float(med[1]))
        hr = render(offset)
        valid = _pair_valid(lr, hr, scale)
        ok &= _still_valid(valid, origins, p)
        idx = np.flatnonzero(ok)
        shift[idx] = patch_shifts(
            lr_p[idx],
            _cut(hr, origins[idx], p, scale),
            scale=scale,
            upsample_factor=upsample_factor,
        )
    ok &= np.hypot(shift[:, 0], shift[:, 1]) <= max_shift_px
    counts["dropped_shift"] = int((~ok).sum())
    if not ok.any():
        return replace(empty, offset=offset)
    common = valid
    big = np.repeat(np.repeat(common, scale, 0), scale, 1)
    matched = match_histograms_block(
        np.where(big[None], hr, np.nan),
        np.where(common[None], lr.astype(np.float32), np.nan),
        nodata=None,
    )
    hr_dn = np.where(np.isfinite(matched), np.clip(np.round(matched), 1, 65535), 0)
    hr_dn = hr_dn.astype(np.uint16)
    lr_c, hr_c = lr[:, common].astype(np.float64), hr_dn[:, big].astype(np.float64)
    radiometry = {
        "lr_mean": lr_c.mean(1).round(3).tolist(), "lr_std": lr_c.std(1).round(3).tolist(),
        "hr_mean": hr_c.mean(1).round(3).tolist(), "hr_std": hr_c.std(1).round(3).tolist(),
    }  # fmt: skip
    idx = np.flatnonzero(ok)
    lr_k, hr_k = lr_p[idx], _cut(hr_dn, origins[idx], p, scale)
    values = patch_ssim(lr_k, hr_k, scale=scale)
    keep = np.ones(len(idx), bool) if ssim_min is None else values >= ssim_min
    counts["dropped_ssim"] = int((~keep).sum())
    counts["kept"] = int(keep.sum())
    return StudyPairs(
        lr=lr_k[keep],
        hr=hr_k[keep],
        origins=origins[idx][keep],
        ssim=values[keep],
        shift=shift[idx][keep],
        offset=offset,
        counts=counts,
        radiometry=radiometry,
    )
