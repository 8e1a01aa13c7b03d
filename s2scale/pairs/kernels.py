"""Pure numpy patch kernels of the pair pipeline: no files, no Dask, no globals.

- :func:`area_downsample`, :func:`wald_pairs`: detector-footprint means and Wald's-protocol pairs;
- :func:`extract_patches`: co-located LR/HR patches, fully valid only;
- :func:`patch_ssim`: the study's SSIM filter;
- :func:`make_pairs`, :class:`PatchSet`: patches, SSIM filter and split
  (:func:`~s2scale.pairs.splits.split_blocks`) of one image pair; the record a patch store holds.

The study's per-window steps are in :mod:`~s2scale.pairs.study`, registration and histogram
matching in :mod:`~s2scale.pairs.matching`, the spatial splits in :mod:`~s2scale.pairs.splits`.

All images are ``(band, y, x)``; DN arrays are uint16 harmonised digital numbers (reflectance x
10000) with 0 = no data; float arrays are reflectance or orthophoto units with NaN = no data
unless stated otherwise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from s2scale.errors import ConfigError, GridMismatchError
from s2scale.pairs.splits import split_blocks

__all__ = [
    "SPLITS",
    "PatchSet",
    "area_downsample",
    "coerce_scale",
    "extract_patches",
    "make_pairs",
    "patch_ssim",
    "wald_pairs",
]

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""Names of the split codes 0, 1, 2 in a patch store (-1 marks a dropped guard patch)."""


def coerce_scale(scale: int) -> int:
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
    scale = coerce_scale(scale)
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
    scale = coerce_scale(scale)
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
    scale = coerce_scale(scale)
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
    scale = coerce_scale(scale)
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
