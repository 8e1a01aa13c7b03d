"""The reference study's pairs of one co-located window (pure numpy, no files).

:func:`study_pairs` runs the study's steps on one window: fully valid patch positions on the best
lattice (:func:`patch_origins`, :func:`best_lattice_offset`), the shift check and correction
(:mod:`~s2scale.pairs.matching`), histogram matching, patches and the SSIM filter
(:func:`~s2scale.pairs.kernels.patch_ssim`); :class:`StudyPairs` is what it keeps.

Images are ``(band, y, x)``; DN arrays are uint16 harmonised digital numbers (reflectance x
10000) with 0 = no data; the rendered orthophoto is float32 with NaN = no data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from s2scale.errors import ConfigError, GridMismatchError
from s2scale.pairs.kernels import area_downsample, coerce_scale, patch_ssim
from s2scale.pairs.matching import match_histograms_block, patch_shifts

__all__ = ["StudyPairs", "best_lattice_offset", "patch_origins", "study_pairs"]


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
    scale = coerce_scale(scale)
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
