"""Real co-located pairs: Sentinel-2 10 m and a sharper image of the same place, on one 5 m grid.

A *site* is a folder with Sentinel-2 revisits and one high-resolution acquisition of the same
footprint (the layout of WorldStrat, Cornebise et al. 2022, as in ``../shared/data/worldstrat``)::

    SITE/s2_l2a_<YYYY-MM-DD>_B02B03B04B08.tif   Sentinel-2 L2A, reflectance x 10000, 0 = no data
    SITE/spot_<YYYY-MM-DD>_RGBN.tif            multispectral: red, green, blue, NIR (any DN)
    SITE/spot_<YYYY-MM-DD>_PAN.tif             panchromatic (optional), same footprint
    SITE/metadata.json                          optional: ``revisits[].lowres_date`` / ``delta``

Every revisit becomes one pair ``(lr, hr)``: ``lr`` is the Sentinel-2 image as it is (the
network's real input), ``hr`` the reference on the grid nested in it at ``scale`` times the
resolution, built in five steps:

1. **pan-sharpening** of the multispectral bands with the panchromatic band by GDAL's weighted
   Brovey (``VRTPansharpenedDataset``); the pan band's spectral weights are fitted per site by
   non-negative least squares of the pan (averaged to the multispectral grid) on the bands;
2. **area averaging** onto the nested 5 m grid (``rasterio.warp.reproject``, ``average``);
3. **registration**: the reference averaged to 10 m is registered to the revisit by phase
   correlation (:func:`~s2scale.pairs.matching.measure_shift_block`); the source is moved by the
   measured sub-pixel shift and step 2 repeated, the residual shift is recorded;
4. **radiometry**: each band is mapped to the revisit's reflectance, by a linear fit at 10 m
   (``lr = gain * hr_10m + offset``, least squares over valid pixels) or by histogram matching
   (:func:`~s2scale.pairs.matching.match_histograms_block`, the reference study's step);
5. **selection**: a pair is kept when ``|delta|`` (days between the two acquisitions) is at most
   ``max_delta_days``, the red band's correlation at 10 m is at least ``min_correlation`` and the
   SSIM of the 10 m reference to the revisit is at least ``ssim_min`` (the study's 0.45).

Sites are split into train / validation / test as a whole (:func:`split_sites`): every revisit
of a site lands in the same split, so no place is seen in two splits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
from affine import Affine

from s2scale.errors import ConfigError, GridMismatchError, ReadError
from s2scale.pairs.kernels import SPLITS, PatchSet, area_downsample
from s2scale.pairs.matching import match_histograms_block, measure_shift_block
from s2scale.sentinel2 import BANDS

__all__ = [
    "ColocatedConfig",
    "ColocatedPair",
    "Site",
    "build_site_pairs",
    "colocated_pairs",
    "colocated_patches",
    "find_sites",
    "pansharpen",
    "split_sites",
]

log = logging.getLogger(__name__)

Progress = Callable[[Iterable[Any]], Iterable[Any]]

_S2_FILE = re.compile(r"^s2_l2a_(\d{4}-\d{2}-\d{2})_B02B03B04B08\.tif$")
_MS_FILE = re.compile(r"^spot_(\d{4}-\d{2}-\d{2})_RGBN\.tif$")
_MS_ORDER = (2, 1, 0, 3)  # RGBN file bands -> blue, green, red, nir
SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class ColocatedConfig:
    """How co-located site folders become pairs (see the module docstring)."""

    scale: int = 2
    """HR pixels per Sentinel-2 pixel along each axis (10 m -> 5 m)."""
    pansharpen: bool = True
    """Sharpen the multispectral bands with the pan band where a site has one."""
    radiometry: Literal["linear", "histogram"] = "linear"
    """Mapping of the reference to the revisit's reflectance, per band."""
    register: bool = True
    """Correct the reference's sub-pixel shift against each revisit (phase correlation)."""
    max_delta_days: int = 30
    """Largest time between the revisit and the reference acquisition, days."""
    min_correlation: float = 0.8
    """Least Pearson correlation of the red band at 10 m (after registration and mapping)."""
    ssim_min: float | None = 0.45
    """Least SSIM of the 10 m reference to the revisit (the study's filter); None: off."""
    max_shift_px: float = 1.5
    """Pairs whose measured shift exceeds this many 10 m px are dropped (failed registration)."""
    fractions: tuple[float, float, float] = (0.5, 0.2, 0.3)
    """Shares of the kept sites in train, validation and test (:func:`split_sites`)."""
    split_seed: str = "s2scale-colocated-v1"
    """Salt of the sites' hash order; a new salt is a new split."""

    def __post_init__(self) -> None:
        if self.scale != 2:
            raise ConfigError(f"co-located pairs support scale=2 (10 m -> 5 m), got {self.scale}")
        if self.radiometry not in ("linear", "histogram"):
            raise ConfigError(
                f"radiometry={self.radiometry!r}: choose 'linear' (fit at 10 m) or 'histogram'"
            )
        if self.max_delta_days < 0:
            raise ConfigError(f"max_delta_days must be >= 0, got {self.max_delta_days}")
        if not -1.0 <= self.min_correlation <= 1.0:
            raise ConfigError(f"min_correlation must be in [-1, 1], got {self.min_correlation}")
        if len(self.fractions) != 3 or min(self.fractions) < 0 or not sum(self.fractions) > 0:
            raise ConfigError(
                f"fractions must be three shares >= 0 (train, val, test), got {self.fractions}"
            )


@dataclass(frozen=True)
class Site:
    """The files of one site folder."""

    name: str
    """Folder name."""
    s2: tuple[tuple[str, Path], ...]
    """``(date, path)`` of every Sentinel-2 revisit, by date."""
    ms: Path
    """Multispectral reference (red, green, blue, NIR)."""
    pan: Path | None
    """Panchromatic band of the same acquisition, or None."""
    hr_date: str
    """Acquisition date of the reference (``YYYY-MM-DD``)."""
    deltas: dict[str, int] = field(default_factory=dict)
    """Days between each revisit and the reference (metadata.json, else from the dates)."""
    info: dict[str, Any] = field(default_factory=dict)
    """``closest`` record of metadata.json (land cover, centre), if any."""

    def delta(self, s2_date: str) -> int:
        """Signed days from the reference to a revisit (revisit date minus reference date)."""
        if s2_date in self.deltas:
            return self.deltas[s2_date]
        return (date.fromisoformat(s2_date) - date.fromisoformat(self.hr_date)).days


@dataclass
class ColocatedPair:
    """One revisit and its reference on the nested grid."""

    site: str
    """Site name."""
    s2_date: str
    """Date of the revisit."""
    lr: np.ndarray
    """``(4, h, w)`` uint16 Sentinel-2 DN (reflectance x 10000), 0 = no data."""
    hr: np.ndarray
    """``(4, h * scale, w * scale)`` uint16 reference DN in the revisit's reflectance, 0 = none."""
    transform: Affine
    """Pixel-corner transform of ``lr``."""
    crs: str
    """CRS of both grids."""
    record: dict[str, Any]
    """Provenance and quality: delta, shifts, fit per band, correlation, SSIM, kept or why not."""
    split: str = "train"
    """``train``, ``val`` or ``test`` (:func:`split_sites`)."""

    @property
    def kept(self) -> bool:
        """Whether the pair passed the selection."""
        return not self.record.get("dropped")


# ------------------------------------------------------------------------------ files
def find_sites(root: str | Path) -> list[Site]:
    """The site folders under ``root`` (or ``root`` itself when it is one), by name.

    Raises
    ------
    ReadError
        If ``root`` does not exist or holds no site (the message names the expected files).
    """
    root = Path(root)
    if not root.is_dir():
        raise ReadError(f"co-located pairs folder {str(root)!r} does not exist")
    folders = [root] if _is_site(root) else sorted(p for p in root.iterdir() if _is_site(p))
    if not folders:
        raise ReadError(
            f"no site under {str(root)!r}: a site folder holds s2_l2a_<date>_B02B03B04B08.tif "
            "revisits and one spot_<date>_RGBN.tif (with spot_<date>_PAN.tif optional)"
        )
    return [_read_site(p) for p in folders]


def _is_site(path: Path) -> bool:
    """A folder with at least one revisit and a multispectral reference."""
    return path.is_dir() and any(_MS_FILE.match(p.name) for p in path.iterdir()) and any(
        _S2_FILE.match(p.name) for p in path.iterdir()
    )


def _read_site(folder: Path) -> Site:
    """The :class:`Site` record of one folder."""
    ms = sorted(p for p in folder.iterdir() if _MS_FILE.match(p.name))
    if len(ms) != 1:
        raise ReadError(f"site {folder.name!r} has {len(ms)} spot_*_RGBN.tif files; expected 1")
    m = _MS_FILE.match(ms[0].name)
    assert m is not None  # filtered above
    hr_date = m.group(1)
    pan = ms[0].with_name(f"spot_{hr_date}_PAN.tif")
    s2 = []
    for p in sorted(folder.iterdir()):
        match = _S2_FILE.match(p.name)
        if match:
            s2.append((match.group(1), p))
    deltas, info = {}, {}
    meta = folder / "metadata.json"
    if meta.is_file():
        try:
            doc = json.loads(meta.read_text())
        except (OSError, ValueError) as err:
            raise ReadError(f"cannot read {str(meta)!r}: {err}") from err
        for rec in doc.get("revisits", []):
            if "lowres_date" in rec and "delta" in rec:
                deltas[str(rec["lowres_date"])] = int(rec["delta"])
        info = dict(doc.get("closest", {}))
    return Site(folder.name, tuple(s2), ms[0], pan if pan.is_file() else None, hr_date,
                deltas, info)  # fmt: skip


def _read(path: Path) -> tuple[np.ndarray, Affine, str]:
    """All bands of a raster, its transform and CRS."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise ReadError(f"{str(path)!r} has no CRS; co-located pairs need georeferencing")
            return src.read(), src.transform, src.crs.to_string()
    except rasterio.errors.RasterioIOError as err:
        raise ReadError(f"cannot read {str(path)!r}: {err}") from err


# ------------------------------------------------------------------------------ reference
def _s2_order(img: np.ndarray) -> np.ndarray:
    """RGBN file bands as blue, green, red, nir float32, NaN where any band has no data (<= 0)."""
    out = img[list(_MS_ORDER)].astype(np.float32)
    out[:, np.any(out <= 0, axis=0)] = np.nan
    return out


def _pan_weights(ms: np.ndarray, pan: np.ndarray) -> np.ndarray:
    """Non-negative weights of the MS bands whose sum best reproduces the pan on the MS grid."""
    from scipy.optimize import nnls
    from skimage.transform import resize

    pan_ms = resize(pan[0].astype(np.float64), ms.shape[1:], order=1, anti_aliasing=True)
    valid = np.all(ms > 0, axis=0) & (pan_ms > 0)
    a = ms[:, valid].astype(np.float64).T
    w, _ = nnls(a, pan_ms[valid])
    if not w.sum() > 0:
        return np.full(ms.shape[0], 1.0 / ms.shape[0])
    return w


def pansharpen(ms_path: Path, pan_path: Path) -> tuple[np.ndarray, Affine, str, list[float]]:
    """GDAL weighted-Brovey pan-sharpening of an RGBN file with its pan band.

    Returns
    -------
    tuple
        ``(img, transform, crs, weights)``: ``img`` float32 ``(4, H, W)`` on the pan grid in
        s2scale's band order (blue, green, red, nir), NaN where the MS had no data; the pan
        weights of the file's bands (red, green, blue, NIR).
    """
    import rasterio

    ms, _, _ = _read(ms_path)
    pan, _, _ = _read(pan_path)
    weights = _pan_weights(ms, pan)
    bands = "".join(
        f'<SpectralBand dstBand="{i + 1}"><SourceFilename relativeToVRT="0">'
        f"{ms_path.resolve()}</SourceFilename><SourceBand>{i + 1}</SourceBand></SpectralBand>"
        for i in range(ms.shape[0])
    )
    xml = (
        '<VRTDataset subClass="VRTPansharpenedDataset"><PansharpeningOptions>'
        "<Algorithm>WeightedBrovey</Algorithm><AlgorithmOptions><Weights>"
        f"{','.join(f'{w:.8g}' for w in weights)}</Weights></AlgorithmOptions>"
        "<Resampling>Cubic</Resampling><NoData>0</NoData>"
        f'<PanchroBand><SourceFilename relativeToVRT="0">{pan_path.resolve()}</SourceFilename>'
        f"<SourceBand>1</SourceBand></PanchroBand>{bands}</PansharpeningOptions></VRTDataset>"
    )
    try:
        with rasterio.open(xml) as src:
            img = src.read().astype(np.float32)
            transform, crs = src.transform, src.crs.to_string()
    except rasterio.errors.RasterioIOError as err:
        raise ReadError(f"cannot pan-sharpen {str(ms_path)!r} with {str(pan_path)!r}: {err}") \
            from err  # fmt: skip
    return _s2_order(img), transform, crs, [float(w) for w in weights]


def _to_grid(
    img: np.ndarray, src_transform: Affine, crs: str, dst_transform: Affine,
    shape: tuple[int, int],
) -> np.ndarray:  # fmt: skip
    """Area average of ``img`` (NaN = no data) onto a grid; NaN where it had no data."""
    from rasterio.warp import Resampling, reproject

    out = np.full((img.shape[0], *shape), np.nan, np.float32)
    reproject(
        np.nan_to_num(img, nan=-1.0).astype(np.float32), out, src_transform=src_transform,
        src_crs=crs, src_nodata=-1.0, dst_transform=dst_transform, dst_crs=crs, dst_nodata=np.nan,
        resampling=Resampling.average,
    )  # fmt: skip
    return out


def _shifted(transform: Affine, dy: float, dx: float, lr_transform: Affine) -> Affine:
    """``transform`` moved so its content appears ``dy`` LR rows higher, ``dx`` columns left."""
    return Affine.translation(-dx * lr_transform.a, -dy * lr_transform.e) * transform


def _fit_linear(hr10: np.ndarray, lr: np.ndarray, valid: np.ndarray) -> list[tuple[float, float]]:
    """Per band ``(gain, offset)`` of ``lr = gain * hr10 + offset`` (least squares)."""
    fits = []
    for b in range(lr.shape[0]):
        x, y = hr10[b][valid].astype(np.float64), lr[b][valid].astype(np.float64)
        gain, offset = np.polyfit(x, y, 1)
        fits.append((float(gain), float(offset)))
    return fits


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two 1-D samples."""
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def build_site_pairs(site: Site, cfg: ColocatedConfig | None = None) -> list[ColocatedPair]:
    """Every revisit of ``site`` with its reference (see the module docstring for the steps).

    Pairs that fail the selection are returned too, with ``record["dropped"]`` saying why.

    Raises
    ------
    GridMismatchError
        If a revisit and the reference have different CRSs or do not overlap.
    ReadError
        If a file cannot be read.
    """
    cfg = cfg or ColocatedConfig()
    if cfg.pansharpen and site.pan is not None:
        src, src_t, src_crs, weights = pansharpen(site.ms, site.pan)
        source = f"{site.ms.name} pan-sharpened with {site.pan.name} (GDAL weighted Brovey)"
    else:
        ms, src_t, src_crs = _read(site.ms)
        src = _s2_order(ms.astype(np.float32))
        weights, source = [], f"{site.ms.name} (multispectral only)"
    pairs = []
    for s2_date, path in site.s2:
        lr, lr_t, lr_crs = _read(path)
        if lr_crs != src_crs:
            raise GridMismatchError(
                f"site {site.name!r}: {path.name} is in {lr_crs} but the reference in {src_crs}; "
                "reproject one of them so both share a CRS"
            )
        if lr.shape[0] != len(BANDS):
            raise GridMismatchError(
                f"{str(path)!r} has {lr.shape[0]} bands; expected B02, B03, B04, B08"
            )
        pairs.append(_one_pair(site, s2_date, lr.astype(np.uint16), lr_t, lr_crs,
                               src, src_t, cfg, weights, source))  # fmt: skip
    return pairs


def _one_pair(
    site: Site, s2_date: str, lr: np.ndarray, lr_t: Affine, crs: str, src: np.ndarray,
    src_t: Affine, cfg: ColocatedConfig, weights: list[float], source: str,
) -> ColocatedPair:  # fmt: skip
    """Steps 2-5 for one revisit."""
    from skimage.metrics import structural_similarity

    s = cfg.scale
    h, w = lr.shape[1:]
    hr_t = lr_t * Affine.scale(1.0 / s)
    lr_valid = np.all(lr > 0, axis=0)
    ref = _to_grid(src, src_t, crs, hr_t, (h * s, w * s))
    shift = np.zeros(2)
    residual = np.zeros(2)
    inner = np.s_[:, 8:-8, 8:-8]  # registration away from the footprint's resampled edge

    def measure(img: np.ndarray) -> np.ndarray:
        ref10 = area_downsample(img, s)
        ok = np.isfinite(ref10).all(0) & lr_valid
        if ok[8:-8, 8:-8].mean() < 0.5:
            return np.zeros(2)
        # no-data pixels of either image take each band's mean in both (no edge to lock on)
        fixed = np.where(ok, lr, 0).astype(np.float32), np.where(ok, np.nan_to_num(ref10), 0)
        means = [a.sum(axis=(1, 2), keepdims=True) / ok.sum() for a in fixed]
        a, b = (np.where(ok, x, m) for x, m in zip(fixed, means, strict=True))
        return measure_shift_block(a[inner], b[inner])

    if cfg.register:
        shift = measure(ref)
        if np.abs(shift).max() > 0:
            ref = _to_grid(src, _shifted(src_t, *shift, lr_t), crs, hr_t, (h * s, w * s))
        residual = measure(ref)
    ref10 = area_downsample(ref, s)
    valid10 = np.isfinite(ref10).all(0) & lr_valid
    record: dict[str, Any] = {
        "site": site.name, "s2_date": s2_date, "hr_date": site.hr_date,
        "delta_days": site.delta(s2_date), "reference": source, "pan_weights": weights,
        "radiometry": cfg.radiometry, "shift_lr_px": [round(float(v), 3) for v in shift],
        "residual_shift_lr_px": [round(float(v), 3) for v in residual],
        "valid_fraction": round(float(valid10.mean()), 4),
        "land_cover": site.info.get("IPCC"),
    }  # fmt: skip
    hr = np.zeros(ref.shape, np.uint16)
    if valid10.sum() < 100:
        record["dropped"] = "fewer than 100 valid 10 m pixels in both images"
        return ColocatedPair(site.name, s2_date, lr, hr, lr_t, crs, record)
    if cfg.radiometry == "linear":
        fits = _fit_linear(ref10, lr, valid10)
        mapped = np.stack([g * ref[b] + o for b, (g, o) in enumerate(fits)])
        record["fit"] = {b: {"gain": round(g, 6), "offset": round(o, 2)}
                         for b, (g, o) in zip(BANDS, fits, strict=True)}  # fmt: skip
    else:
        mask10 = np.repeat(np.repeat(valid10, s, 0), s, 1)
        mapped = match_histograms_block(np.where(mask10, ref, np.nan), np.where(valid10, lr, 0),
                                        nodata=None)  # fmt: skip
    hr_ok = np.isfinite(mapped).all(0)
    hr = np.where(hr_ok, np.clip(np.rint(np.nan_to_num(mapped)), 1, 65535), 0).astype(np.uint16)
    m10 = area_downsample(mapped, s)
    corr = [_corr(m10[b][valid10], lr[b][valid10].astype(np.float64)) for b in range(4)]
    lr_f = np.where(valid10, lr[2], 0).astype(np.float64)
    ssim = float(structural_similarity(np.where(valid10, m10[2], 0), lr_f, data_range=10000.0,
                                       gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))  # fmt: skip
    record.update(correlation=[round(c, 4) for c in corr], ssim_red=round(ssim, 4))
    reasons = []
    if abs(record["delta_days"]) > cfg.max_delta_days:
        reasons.append(f"|delta| {abs(record['delta_days'])} d > {cfg.max_delta_days} d")
    if not corr[2] >= cfg.min_correlation:
        reasons.append(f"red correlation {corr[2]:.3f} < {cfg.min_correlation}")
    if cfg.ssim_min is not None and not ssim >= cfg.ssim_min:
        reasons.append(f"SSIM {ssim:.3f} < {cfg.ssim_min}")
    if np.abs(shift).max() > cfg.max_shift_px:
        reasons.append(f"shift {np.abs(shift).max():.2f} px > {cfg.max_shift_px}")
    if reasons:
        record["dropped"] = "; ".join(reasons)
    return ColocatedPair(site.name, s2_date, lr, hr, lr_t, crs, record)


# ------------------------------------------------------------------------------ splits
def split_sites(names: Sequence[str], cfg: ColocatedConfig | None = None) -> dict[str, str]:
    """Assign whole sites to ``train`` / ``val`` / ``test`` by a salted hash order.

    The sites are ordered by ``sha256(split_seed + name)``; the first ``fractions[0]`` share is
    train, the next ``fractions[1]`` validation, the rest test (at least one site each where
    the shares are positive and there are enough sites). The order does not depend on the data,
    so adding a site moves no other site between the validation and test splits unless the
    counts change.

    Examples
    --------
    >>> split = split_sites([f"site{i}" for i in range(8)])
    >>> sorted(split.values()).count("train"), sorted(split.values()).count("test")
    (4, 2)
    """
    cfg = cfg or ColocatedConfig()
    order = sorted(names, key=lambda n: hashlib.sha256(f"{cfg.split_seed}/{n}".encode())
                   .hexdigest())  # fmt: skip
    n = len(order)
    total = sum(cfg.fractions)
    n_val = round(n * cfg.fractions[1] / total)
    n_test = round(n * cfg.fractions[2] / total)
    if n >= 3:
        n_val = max(n_val, 1 if cfg.fractions[1] > 0 else 0)
        n_test = max(n_test, 1 if cfg.fractions[2] > 0 else 0)
    n_train = n - n_val - n_test
    labels = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    return dict(zip(order, labels, strict=True))


def colocated_pairs(
    root: str | Path,
    cfg: ColocatedConfig | None = None,
    *,
    splits: Sequence[str] | None = None,
    kept_only: bool = True,
    progress: Progress | None = None,
) -> tuple[list[ColocatedPair], dict[str, Any]]:
    """All pairs of the sites under ``root``, split by site; and a summary of the selection.

    The split is made over the sites that keep at least one pair, so it is the same for every
    caller with the same data and config.

    Returns
    -------
    tuple
        ``(pairs, summary)``: the pairs (kept ones only unless ``kept_only=False``) of the
        requested ``splits`` (default all); ``summary`` holds the config, each site's split and
        every pair's record (kept or dropped, with the reason).
    """
    cfg = cfg or ColocatedConfig()
    bad = sorted(set(splits or ()) - set(SPLIT_NAMES))
    if bad:
        raise ConfigError(f"unknown split(s) {bad}; choose from {list(SPLIT_NAMES)}")
    sites = find_sites(root)
    everything: list[ColocatedPair] = []
    for site in progress(sites) if progress else sites:
        everything += build_site_pairs(site, cfg)
    usable = sorted({p.site for p in everything if p.kept})
    assignment = split_sites(usable, cfg)
    for p in everything:
        p.split = assignment.get(p.site, "unused")
    summary = {
        "root": str(root),
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "sites": {s.name: assignment.get(s.name, "unused") for s in sites},
        "pairs": [dict(p.record, split=p.split) for p in everything],
        "kept": sum(p.kept for p in everything),
        "total": len(everything),
    }
    chosen = [p for p in everything if (p.kept or not kept_only)
              and (splits is None or p.split in splits)]  # fmt: skip
    return chosen, summary


def colocated_patches(
    pairs: Sequence[ColocatedPair], *, lr_patch_px: int = 96, stride_px: int | None = None
) -> tuple[PatchSet, np.ndarray]:
    """Cut fully valid ``(lr, hr)`` patches from pairs; each patch takes its site's split.

    Parameters
    ----------
    pairs
        Kept pairs (:func:`colocated_pairs`), any splits.
    lr_patch_px, stride_px
        LR patch edge and lattice step (default the edge: no overlap).

    Returns
    -------
    tuple
        ``(patches, origins)``: a :class:`~s2scale.pairs.PatchSet` with one source record per
        pair (kind ``real-colocated``, its selection record) and the LR ``(row, col)`` of every
        patch in its revisit.
    """
    k = int(lr_patch_px)
    step = int(stride_px or k)
    if k < 8 or step < 1:
        raise ConfigError(f"lr_patch_px must be >= 8 and stride_px >= 1, got {k}, {step}")
    parts: list[PatchSet] = []
    origins: list[np.ndarray] = []
    for pair in pairs:
        if pair.split not in SPLITS:
            raise ConfigError(
                f"pair {pair.site}/{pair.s2_date} has split {pair.split!r}; cut kept pairs only"
            )
        s = pair.hr.shape[1] // pair.lr.shape[1]
        valid = (pair.hr > 0).all(0) & np.repeat(np.repeat((pair.lr > 0).all(0), s, 0), s, 1)
        rows, cols = pair.lr.shape[1] - k, pair.lr.shape[2] - k
        org = np.array([(r, c) for r in range(0, rows + 1, step) for c in range(0, cols + 1, step)
                        if valid[r * s : (r + k) * s, c * s : (c + k) * s].all()],
                       dtype=np.int64).reshape(-1, 2)  # fmt: skip
        if not len(org):
            continue
        record = {"kind": "real-colocated", "name": f"{pair.site}/{pair.s2_date}",
                  "file": pair.site, "date": pair.s2_date, **pair.record,
                  "split": pair.split, "patches": len(org),
                  "lr": "real Sentinel-2 revisit (stored, never re-synthesised)",
                  "licence": "SPOT CC BY-NC 4.0 (WorldStrat, Airbus); Sentinel-2 CC BY 4.0",
                  }  # fmt: skip
        parts.append(PatchSet(
            lr=np.stack([pair.lr[:, r : r + k, c : c + k] for r, c in org]),
            hr=np.stack([pair.hr[:, r * s : (r + k) * s, c * s : (c + k) * s] for r, c in org]),
            split=np.full(len(org), SPLITS.index(pair.split), np.int8),
            source=np.zeros(len(org), np.int16), sources=[record],
        ))  # fmt: skip
        origins.append(org)
    if not parts:
        raise ConfigError(f"no {k} px patch fits fully valid in any of the {len(pairs)} pairs")
    return PatchSet.concat(parts), np.concatenate(origins).astype(np.int32)
