"""A synthetic co-located site folder (WorldStrat layout) with a known shift and radiometry.

A smooth random 0.75 m "truth" (4 bands) is area-averaged to a 1.5 m pan band (weighted sum of
the bands), a 6 m multispectral file (red, green, blue, NIR order, DN = 4 x reflectance DN + 50)
and 10 m Sentinel-2 revisits (reflectance DN, the truth shifted by ``shift_m``). Seeded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import Resampling, reproject
from scipy.ndimage import gaussian_filter
from scipy.ndimage import shift as nd_shift

ORIGIN = (500_000.0, 5_300_000.0)
EDGE_M = 960.0  # 96 S2 px, 160 MS px, 640 pan px
CRS = "EPSG:32633"
PAN_WEIGHTS = (0.2, 0.3, 0.5, 0.0)  # of blue, green, red, nir


def _truth(seed: int) -> np.ndarray:
    """(4, 1280, 1280) reflectance DN at 0.75 m: blobs and edges, bands correlated."""
    rng = np.random.default_rng(seed)
    n = int(EDGE_M / 0.75)
    base = gaussian_filter(rng.normal(size=(n, n)), 10) * 2500
    fields = (gaussian_filter(rng.normal(size=(n, n)), 40) > 0) * 800.0
    out = []
    for b, (gain, offset) in enumerate(((0.6, 600), (0.8, 900), (1.0, 1000), (1.5, 2500))):
        band = offset + gain * (base + fields) + gaussian_filter(rng.normal(size=(n, n)), 3) * 150
        out.append(band + 30 * b)
    return np.clip(np.stack(out), 100, 9000)


def _mean(img: np.ndarray, k: int) -> np.ndarray:
    c, h, w = img.shape
    return img.reshape(c, h // k, k, w // k, k).mean(axis=(2, 4))


def _write(path: Path, data: np.ndarray, pixel_m: float, dtype: str = "uint16") -> None:
    t = Affine(pixel_m, 0, ORIGIN[0], 0, -pixel_m, ORIGIN[1])
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=dtype, crs=CRS, transform=t) as dst:  # fmt: skip
        dst.write(np.clip(np.rint(data), 1, 65535).astype(dtype))


def write_site(
    folder: Path,
    *,
    seed: int = 0,
    shift_m: tuple[float, float] = (3.0, -4.0),
    s2_dates: tuple[str, ...] = ("2020-05-01", "2020-05-09"),
    hr_date: str = "2020-05-04",
    gain: float = 1.1,
) -> Path:
    """Write a site folder; the S2 content lies ``shift_m`` (down, right) from the reference's.

    The S2 revisits are ``gain`` times the truth's reflectance (each revisit of the site sees the
    same scene), so a linear fit at 10 m must find ``gain`` relative to the reference mapped to
    the truth's units.
    """
    folder.mkdir(parents=True, exist_ok=True)
    truth = _truth(seed)
    pan = _mean(np.tensordot(PAN_WEIGHTS, truth, axes=1)[None], 2)  # 1.5 m
    ms = _mean(truth, 8)[[2, 1, 0, 3]] * 4 + 50  # 6 m, RGBN order, sensor DN
    _write(folder / f"spot_{hr_date}_PAN.tif", pan * 4 + 50, 1.5)
    _write(folder / f"spot_{hr_date}_RGBN.tif", ms, 6.0)
    moved = nd_shift(truth, (0, shift_m[0] / 0.75, shift_m[1] / 0.75), order=1, mode="nearest")
    # 10 m is not a multiple of 0.75 m: the shifted truth is area-averaged by rasterio
    t_truth = Affine(0.75, 0, ORIGIN[0], 0, -0.75, ORIGIN[1])
    n10 = int(EDGE_M / 10)
    s2 = np.zeros((4, n10, n10), np.float32)
    reproject(moved.astype(np.float32), s2, src_transform=t_truth, src_crs=CRS,
              dst_transform=Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1]), dst_crs=CRS,
              resampling=Resampling.average)  # fmt: skip
    for d in s2_dates:
        _write(folder / f"s2_l2a_{d}_B02B03B04B08.tif", s2 * gain, 10.0)
    meta = {"closest": {"IPCC": "Agriculture"}, "revisits": [
        {"lowres_date": d, "highres_date": hr_date,
         "delta": (np.datetime64(d) - np.datetime64(hr_date)).astype(int).item()}
        for d in s2_dates]}  # fmt: skip
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder
