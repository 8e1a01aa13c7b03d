"""Orthophoto + Sentinel-2 -> ``(lr, hr)`` training patches, and Wald's-protocol pairs.

The pair pipeline of the reference study (arXiv 2410.00516), as pure numpy kernels plus thin I/O:

1. :func:`orthophoto_to_hr`: area-average (mean filter) the orthophoto onto the 5 m grid nested
   in the Sentinel-2 10 m UTM grid (``rasterio.warp.reproject`` with ``Resampling.average``);
2. :func:`match_histograms_block`: match the HR histogram to the co-located Sentinel-2 10 m
   composite, band by band (``skimage.exposure.match_histograms`` on valid pixels);
3. :func:`extract_patches`: cut co-located LR/HR patches (96/192 px by default), skipping any that
   touch no data (DN 0);
4. :func:`patch_ssim` / SSIM filter: drop pairs whose HR, area-downsampled to 10 m, disagrees with
   the LR (misregistration, change between acquisitions);
5. :func:`split_blocks`: a spatial train/val/test split by blocks of the grid (no pixel leakage);
6. :func:`write_patch_store`: a Zarr v3 store with ``lr`` ``(N, C, h, w)`` uint16, ``hr``
   ``(N, C, H, W)`` uint16, ``split`` ``(N,)`` int8 (0 train, 1 val, 2 test), ``source``
   ``(N,)`` int16 and attrs (bands, normalisation, provenance).

:func:`wald_pairs` makes pairs by Wald's protocol instead: the image itself is the HR target and
its degraded copy (Gaussian PSF + area downsampling, like the Sentinel-2 MSI) the LR input, e.g.
Sentinel-2 10 m -> 20 m, or a 5 m orthophoto -> 10 m.

All arrays are ``(band, y, x)``; DN arrays are uint16 harmonised digital numbers (reflectance x
10000) with 0 = no data; float arrays are reflectance with NaN or 0 = no data as stated.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from s2scale.errors import ConfigError, GridMismatchError, ReadError
from s2scale.grid import TargetGrid

__all__ = [
    "SPLITS",
    "PatchSet",
    "area_downsample",
    "extract_patches",
    "make_pairs",
    "match_histograms_block",
    "nested_grid",
    "orthophoto_to_hr",
    "patch_ssim",
    "read_orthophoto",
    "read_patch_store",
    "split_blocks",
    "wald_pairs",
    "write_patch_store",
]

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""Names of the split codes 0, 1, 2 in a patch store (-1 marks a dropped guard patch)."""

BANDS: tuple[str, ...] = ("blue", "green", "red", "nir")


# ----------------------------------------------------------------------------------- kernels
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
    hr: np.ndarray, reference: np.ndarray, *, nodata: float | None = 0
) -> np.ndarray:
    """Match each band of ``hr`` to the histogram of the same band of ``reference``.

    Used to give an orthophoto resampled to 5 m the radiometry of the co-located Sentinel-2
    10 m composite (the reference study's step). Only valid pixels take part on either side; the
    two arrays may have different sizes (quantiles are matched).

    Parameters
    ----------
    hr
        ``(band, y, x)`` image to adjust, any real dtype.
    reference
        ``(band, y', x')`` image with the target radiometry (e.g. S2 DN), same band count.
    nodata
        Value marking invalid pixels in both arrays (NaN is always invalid); ``None``: all valid.

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
    from skimage.exposure import match_histograms

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
        if ok_src.any():
            out[b][ok_src] = match_histograms(src[ok_src], ref[ok_ref])
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
    Uses :func:`s2scale.metrics.ssim` (7x7 window, mean over bands); patches need >= 7 LR px.
    """
    from s2scale.metrics import ssim

    if len(lr_patches) != len(hr_patches):
        raise GridMismatchError(f"{len(lr_patches)} LR but {len(hr_patches)} HR patches")
    return np.array(
        [
            ssim(area_downsample(h, scale), np.asarray(lo, np.float32), data_range)
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
    ssim_threshold: float | None = 0.5,
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


# ---------------------------------------------------------------------------------------- I/O
def nested_grid(lr_grid: TargetGrid, scale: int = 2) -> TargetGrid:
    """The HR grid nested in ``lr_grid`` (same bounds, ``resolution_m / scale``).

    Examples
    --------
    >>> nested_grid(TargetGrid("EPSG:32633", 10.0, (0.0, 0.0, 100.0, 50.0))).shape
    (10, 20)
    """
    return TargetGrid(lr_grid.crs, lr_grid.resolution_m / _coerce_scale(scale), lr_grid.bounds)


def read_orthophoto(path: str | Path) -> tuple[np.ndarray, Any, str, tuple[str, ...]]:
    """Read an orthophoto GeoTIFF: ``(data (band, y, x), transform, crs, band descriptions)``.

    Raises :class:`~s2scale.errors.ReadError` if the file cannot be read.
    """
    import rasterio

    try:
        with rasterio.open(path) as src:
            data = src.read()
            names = tuple(d or f"band{i + 1}" for i, d in enumerate(src.descriptions))
            return data, src.transform, str(src.crs), names
    except (OSError, rasterio.errors.RasterioError) as err:
        raise ReadError(f"cannot read orthophoto {str(path)!r}") from err


def orthophoto_to_hr(
    ortho: np.ndarray,
    src_transform: Any,
    src_crs: str,
    hr_grid: TargetGrid,
    *,
    src_nodata: float | None = None,
) -> np.ndarray:
    """Area-average (mean filter + resample) an orthophoto onto ``hr_grid``, float32.

    ``rasterio.warp.reproject`` with ``Resampling.average`` averages every source pixel that
    falls into a target pixel, which is the study's mean filter and resampling in one step, and
    handles the change of CRS (e.g. EPSG:31287 or EPSG:2056 -> UTM).

    Returns
    -------
    numpy.ndarray
        float32 ``(band, rows, cols)`` of ``hr_grid``, in the orthophoto's units; NaN where the
        orthophoto does not cover the grid.
    """
    from rasterio.warp import Resampling, reproject

    out = np.full((ortho.shape[0], *hr_grid.shape), np.nan, np.float32)
    reproject(
        ortho.astype(np.float32),
        out,
        src_transform=src_transform,
        src_crs=src_crs,
        src_nodata=src_nodata,
        dst_transform=hr_grid.transform,
        dst_crs=hr_grid.crs,
        dst_nodata=np.nan,
        resampling=Resampling.average,
    )
    return out


def write_patch_store(
    path: str | Path,
    patches: PatchSet,
    *,
    bands: Sequence[str] = BANDS,
    scale: int = 2,
    normalization: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    chunk_patches: int = 64,
) -> Path:
    """Write a Zarr v3 patch store (overwrites ``path``).

    Layout: arrays ``lr`` ``(N, C, p, p)`` uint16, ``hr`` ``(N, C, p*s, p*s)`` uint16, ``split``
    ``(N,)`` int8 (0 train, 1 val, 2 test), ``source`` ``(N,)`` int16 and ``ssim`` ``(N,)``
    float32; attrs ``bands``, ``scale``, ``normalization`` (``x = (dn - offset) / scale``),
    ``splits``, ``sources`` (one provenance record per source index) and ``provenance``.
    :meth:`s2scale.train.PairDataset.from_zarr` reads it.

    Returns
    -------
    pathlib.Path
        The store path.
    """
    import zarr

    from s2scale.models.checkpoint import Normalization

    n = len(patches)
    if patches.lr.shape[1] != len(bands):
        raise GridMismatchError(f"{patches.lr.shape[1]} bands in the patches, {len(bands)} names")
    norm = Normalization.coerce(normalization or {}).to_dict()
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    k = max(1, min(chunk_patches, n))
    arrays = {
        "lr": patches.lr.astype(np.uint16),
        "hr": patches.hr.astype(np.uint16),
        "split": patches.split.astype(np.int8),
        "source": patches.source.astype(np.int16),
        "ssim": (patches.ssim if patches.ssim is not None else np.full(n, np.nan)).astype(
            np.float32
        ),
    }
    for name, data in arrays.items():
        arr = group.create_array(
            name, shape=data.shape, dtype=data.dtype, chunks=(k, *data.shape[1:])
        )
        arr[...] = data
    attrs = {
        "bands": list(bands),
        "scale": int(scale),
        "normalization": norm,
        "splits": list(SPLITS),
        "counts": {s: int((patches.split == i).sum()) for i, s in enumerate(SPLITS)},
        "sources": patches.sources,
        "provenance": dict(provenance or {}),
    }
    group.attrs.update(json.loads(json.dumps(attrs, default=str)))
    log.info("patch store %s: %d pairs %s", path, n, attrs["counts"])
    return Path(path)


def read_patch_store(
    path: str | Path, split: str | None = None, *, sources: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read ``(lr, hr, attrs)`` of a patch store, optionally one split and some source kinds.

    ``sources`` keeps patches whose source record's ``kind`` is listed. Arrays are loaded into
    memory (uint16 DN).

    Raises
    ------
    ReadError
        If the store cannot be opened.
    ConfigError
        For an unknown split name.
    """
    import zarr

    if split is not None and split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
        keep = np.ones(group["split"].shape[0], bool)
        if split is not None:
            keep &= group["split"][...] == SPLITS.index(split)
        if sources is not None:
            kinds = np.array([s.get("kind") for s in attrs["sources"]] or [""])
            keep &= np.isin(kinds[group["source"][...]], list(sources))
        idx = np.flatnonzero(keep)
        return group["lr"][...][idx], group["hr"][...][idx], attrs
    except (OSError, KeyError, ValueError) as err:
        raise ReadError(f"cannot read the patch store {str(path)!r}") from err
