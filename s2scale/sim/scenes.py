"""Sentinel-2 L2A-like scenes, 5 m truth and an aerial orthophoto rendered from a Landscape.

Sensor model of the simulated S2 10 m bands (B02, B03, B04, B08):

1. area-averaged reflectance on the 5 m grid nested in the 10 m UTM pixels, scaled per phenology
   group for the date (:meth:`Landscape.phenology`);
2. a Gaussian PSF of sigma ``S2_PSF_SIGMA_M`` = 5.5 m (0.55 of a 10 m pixel, close to the MSI's
   measured MTF at Nyquist), applied before sampling;
3. a 2x2 box average to 10 m (the detector footprint), then a per-date atmospheric gain/offset,
   cloud shadows, thin cirrus haze, opaque clouds and Gaussian noise (``NOISE_SIGMA``);
4. uint16 DN = round(reflectance * 10000) + offset, with offset 1000 (``BOA_ADD_OFFSET``) for
   processing baseline 04.00 and later and 0 before; DN 0 is no data (beyond a swath edge).

SCL is made at 20 m with the real codes (:data:`SCL`). The 5 m truth is the same landscape at 5 m
with a milder Gaussian PSF of sigma ``TRUTH_PSF_SIGMA_M`` = 2.5 m (0.5 of a 5 m pixel: what a 5 m
sensor with the same relative optics would see, a little sharper), no atmosphere and no clouds,
stored as harmonised DN = reflectance * 10000 without offset. Clouds are defined in EPSG:3035 per
date, so the two tiles of one date see the same clouds.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
import shapely
from pyproj import Transformer
from scipy.ndimage import gaussian_filter, map_coordinates
from shapely.ops import transform as shapely_transform

from s2scale.errors import ConfigError
from s2scale.grid import AOI, MgrsTile, TargetGrid, resolve_aoi
from s2scale.sentinel2 import BOA_ADD_OFFSET, RESOLUTION_M, to_dn
from s2scale.sim.landscape import (
    BANDS,
    WORLD_CRS,
    FineRaster,
    Landscape,
    apply_phenology,
    fbm,
)

__all__ = [
    "BOA_ADD_OFFSET",
    "NOISE_SIGMA",
    "S2_PSF_SIGMA_M",
    "SCL",
    "TRUTH_PSF_SIGMA_M",
    "SceneLayers",
    "SceneSpec",
    "SimulatedScene",
    "render_orthophoto",
    "render_truth",
    "scene_layers",
    "simulate_scene",
    "sun_position",
    "tile_window",
    "to_dn",
    "write_cog",
]

S2_PSF_SIGMA_M = 5.5
"""Gaussian PSF sigma of the simulated 10 m bands (0.55 of a 10 m pixel)."""
TRUTH_PSF_SIGMA_M = 2.5
"""Gaussian PSF sigma of the 5 m truth (0.5 of a 5 m pixel)."""
"""DN offset added from processing baseline 04.00 on (``raster:bands`` offset -0.1)."""
NOISE_SIGMA = (0.002, 0.002, 0.002, 0.003)
"""Sensor noise (reflectance units) per band in ``BANDS`` order."""
SCL = {
    "nodata": 0,
    "shadow": 3,
    "vegetation": 4,
    "not_vegetated": 5,
    "water": 6,
    "cloud_medium": 8,
    "cloud_high": 9,
    "cirrus": 10,
    "snow": 11,
}
"""Sen2Cor scene classification codes used by the simulator (snow is never drawn)."""
PAD_5M = 6
"""Margin (5 m pixels) rendered around a window so the PSF has data at the edges."""
_CLOUD_RGBN = np.array([0.62, 0.60, 0.58, 0.56], np.float32)[:, None, None]
_HAZE_RGBN = np.array([0.06, 0.055, 0.05, 0.045], np.float32)[:, None, None]


@dataclass(frozen=True)
class SceneSpec:
    """What one acquisition looks like (shared by all tiles of that date)."""

    when: datetime
    """Acquisition time (UTC)."""
    platform: Literal["sentinel-2a", "sentinel-2b", "sentinel-2c"] = "sentinel-2b"
    """Satellite."""
    baseline: str = "05.10"
    """Processing baseline; from ``"04.00"`` on the DN carry ``BOA_ADD_OFFSET``."""
    cloud_cover: float = 0.1
    """Target fraction (0..1) of the world covered by cloud on this date."""
    cirrus: float = 0.0
    """Strength (0..1) of thin cirrus haze."""
    swath_edge: tuple[float, float] | None = None
    """``(lon, lat)`` on the swath edge (heading 12 deg west of north); no data west of it."""
    cloud_height_m: float = 2000.0
    """Cloud height above ground, sets the shadow displacement."""

    def __post_init__(self) -> None:
        if not (0.0 <= self.cloud_cover <= 1.0 and 0.0 <= self.cirrus <= 1.0):
            raise ConfigError(
                f"cloud_cover={self.cloud_cover} and cirrus={self.cirrus} must be in 0..1"
            )

    @property
    def offset(self) -> int:
        """DN offset of this baseline: ``BOA_ADD_OFFSET`` from 04.00 on, else 0."""
        return BOA_ADD_OFFSET if tuple(map(int, self.baseline.split("."))) >= (4, 0) else 0

    def salt(self, seed: int) -> int:
        """Seed of this date's random draws (clouds, atmosphere)."""
        return zlib.crc32(f"{seed}:{self.when:%Y%m%d%H%M}".encode())


@dataclass(frozen=True)
class SimulatedScene:
    """One simulated tile window on one date."""

    bands: Mapping[str, np.ndarray]
    """``{asset key: (rows, cols) uint16 DN}`` at 10 m; 0 is no data."""
    scl: np.ndarray
    """``(rows / 2, cols / 2)`` uint8 scene classification at 20 m."""
    grid: TargetGrid
    """The 10 m window grid."""
    sun_azimuth: float
    """Degrees clockwise from north."""
    sun_elevation: float
    """Degrees above the horizon."""

    def percent(self, *codes: int) -> float:
        """Share (%) of valid SCL pixels with one of ``codes`` (0 gives the no-data share)."""
        valid = self.scl.size if 0 in codes else max(1, int(np.count_nonzero(self.scl)))
        return round(100.0 * float(np.isin(self.scl, codes).sum()) / valid, 6)


def tile_window(tile: MgrsTile, aoi: AOI, margin_m: float = 1000.0) -> TargetGrid:
    """The 10 m grid of the part of ``tile`` covering ``aoi`` plus a margin, on the 60 m lattice.

    Examples
    --------
    >>> from s2scale.grid import mgrs_tile
    >>> g = tile_window(mgrs_tile("33TTN"), (11.99, 47.49, 12.01, 47.5), margin_m=100)
    >>> [round((b - 199980.0) % 60) for b in g.bounds], g.crs
    ([0, 0, 0, 0], 'EPSG:32633')
    """
    to_utm = _transformer(4326, tile.epsg)
    x0, y0, x1, y1 = shapely_transform(
        to_utm.transform, shapely.segmentize(resolve_aoi(aoi), 0.002)
    ).bounds
    tx0, ty0, tx1, ty1 = tile.bounds
    snap = 60.0
    bounds = (
        max(tx0, tx0 + math.floor((x0 - margin_m - tx0) / snap) * snap),
        max(ty0, ty1 - math.ceil((ty1 - y0 + margin_m) / snap) * snap),
        min(tx1, tx0 + math.ceil((x1 + margin_m - tx0) / snap) * snap),
        min(ty1, ty1 - math.floor((ty1 - y1 - margin_m) / snap) * snap),
    )
    return TargetGrid(crs=f"EPSG:{tile.epsg}", resolution_m=RESOLUTION_M, bounds=bounds)


@lru_cache(maxsize=32)
def _transformer(src: int | str, dst: int | str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def _padded(
    grid: TargetGrid, resolution_m: float, pad: int
) -> tuple[rasterio.Affine, tuple[int, int]]:
    """Transform and shape of ``grid`` at ``resolution_m`` with ``pad`` pixels on every side."""
    rows, cols = (
        round(grid.shape[0] * grid.resolution_m / resolution_m),
        round(grid.shape[1] * grid.resolution_m / resolution_m),
    )
    t = rasterio.Affine(
        resolution_m,
        0,
        grid.bounds[0] - pad * resolution_m,
        0,
        -resolution_m,
        grid.bounds[3] + pad * resolution_m,
    )
    return t, (rows + 2 * pad, cols + 2 * pad)


@dataclass(frozen=True)
class SceneLayers:
    """Date-independent renders of one 10 m window, shared by all of its dates."""

    hr: np.ndarray
    """``(7, 2 rows + 12, 2 cols + 12)`` float32 on the nested 5 m grid with a ``PAD_5M`` margin:
    area-averaged reflectance of ``BANDS`` and the crop, grass and forest fractions; no PSF."""
    lr: np.ndarray
    """``(7, rows, cols)`` float32: ``hr`` through the S2 PSF and the 2x2 detector average."""

    def truth(self, psf_sigma_m: float = TRUTH_PSF_SIGMA_M) -> np.ndarray:
        """The 5 m truth of the window, ``(4, 2 rows, 2 cols)`` float32 reflectance."""
        return _blur_crop(self.hr[:4], psf_sigma_m / 5.0, PAD_5M)


def scene_layers(
    landscape: Landscape, grid: TargetGrid, *, fine: FineRaster | None = None
) -> SceneLayers:
    """Render the date-independent layers of a 10 m window (see :class:`SceneLayers`).

    ``fine`` is a :meth:`Landscape.rasterize` result to reuse (it must cover the window).
    """
    t, shape = _padded(grid, 5.0, PAD_5M)
    hr = landscape.render(grid.crs, t, shape, fractions=True, fine=fine)
    return SceneLayers(hr, _mean2(_blur_crop(hr, S2_PSF_SIGMA_M / 5.0, PAD_5M)))


def _blur_crop(refl: np.ndarray, sigma_px: float, pad: int) -> np.ndarray:
    """Gaussian PSF per band, then drop the margin."""
    if sigma_px > 0:
        refl = np.stack([gaussian_filter(b, sigma_px, mode="nearest") for b in refl])
    return refl[:, pad : refl.shape[1] - pad, pad : refl.shape[2] - pad]


def _mean2(a: np.ndarray) -> np.ndarray:
    """2x2 block mean over the last two axes."""
    return (a[..., ::2, ::2] + a[..., 1::2, ::2] + a[..., ::2, 1::2] + a[..., 1::2, 1::2]) * 0.25


def render_truth(
    grid: TargetGrid,
    *,
    landscape: Landscape | None = None,
    seed: int = 0,
    psf_sigma_m: float = TRUTH_PSF_SIGMA_M,
    when: date | None = None,
) -> np.ndarray:
    """The 5 m truth (or any resolution) on any grid, e.g. the EPSG:3035 national grid.

    Parameters
    ----------
    grid
        Target grid; the truth of the sample is rendered on the 5 m UTM grids nested in the S2
        10 m pixels.
    landscape, seed
        The world; default ``Landscape(seed)`` (the one :func:`write_sample` uses).
    psf_sigma_m
        Gaussian PSF sigma in metres (0 for the plain area average).
    when
        Apply this date's phenology; default the date-independent base state (the truth files).

    Returns
    -------
    numpy.ndarray
        ``(4, rows, cols)`` float32 surface reflectance (0..1) in ``BANDS`` order; no nodata.
    """
    ls = landscape or Landscape(seed=seed)
    res = grid.resolution_m
    pad = math.ceil(4 * psf_sigma_m / res) + 1
    t, shape = _padded(grid, res, pad)
    stack = ls.render(grid.crs, t, shape, fractions=when is not None)
    refl = apply_phenology(stack, ls.phenology(when)) if when is not None else stack
    return _blur_crop(refl, psf_sigma_m / res, pad)


def sun_position(when: datetime, lon: float, lat: float) -> tuple[float, float]:
    """Approximate solar ``(azimuth, elevation)`` in degrees (azimuth clockwise from north).

    Examples
    --------
    >>> az, el = sun_position(datetime(2024, 7, 12, 10, 10), 12.0, 47.5)
    >>> 140 < az < 170 and 55 < el < 65
    True
    """
    doy = when.timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (doy - 81) / 365.0)
    hour = when.hour + when.minute / 60 + when.second / 3600 + lon / 15.0
    ha, phi = math.radians(15.0 * (hour - 12.0)), math.radians(lat)
    sin_el = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    el = math.asin(sin_el)
    az = math.atan2(math.sin(ha), math.cos(ha) * math.sin(phi) - math.tan(decl) * math.cos(phi))
    return (math.degrees(az) + 180.0) % 360.0, math.degrees(el)


def _cloud_threshold(cover: float, salt: int) -> float:
    """Noise level exceeded on a fraction ``cover`` of the world (same for every tile)."""
    axis = 1237.0 * np.arange(160)  # incommensurate with the noise lattices: an unbiased sample
    return float(np.quantile(fbm(axis, axis, 2500.0, 6, salt), 1 - cover))


def _world_field(x: np.ndarray, y: np.ndarray, scale: float, octaves: int, salt: int) -> np.ndarray:
    """FBm at EPSG:3035 points, interpolated bilinearly from its values on a global 20 m lattice."""
    step = 20.0
    x0, y0 = math.floor(x.min() / step) * step, math.floor(y.min() / step) * step
    xs = x0 + step * np.arange(math.ceil((x.max() - x0) / step) + 2)
    ys = y0 + step * np.arange(math.ceil((y.max() - y0) / step) + 2)
    values = fbm(xs, ys, scale, octaves, salt)
    return map_coordinates(values, [(y - y0) / step, (x - x0) / step], order=1, mode="nearest")


def _atmosphere(
    spec: SceneSpec, seed: int, x: np.ndarray, y: np.ndarray, sun: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cloud opacity, shadow opacity and cirrus thickness at EPSG:3035 points (0..1 each)."""
    salt, zero = spec.salt(seed), np.zeros(x.shape, np.float32)
    alpha, shadow, cirrus = zero, zero, zero
    if spec.cloud_cover > 0:
        t = _cloud_threshold(spec.cloud_cover, salt)
        alpha = np.clip((_world_field(x, y, 2500.0, 6, salt) - t) / 0.06, 0, 1)
        reach = spec.cloud_height_m / math.tan(math.radians(max(sun[1], 5.0)))
        sx, sy = reach * math.sin(math.radians(sun[0])), reach * math.cos(math.radians(sun[0]))
        shadow = np.clip((_world_field(x + sx, y + sy, 2500.0, 6, salt) - t) / 0.06, 0, 1)
    if spec.cirrus > 0:
        cirrus = spec.cirrus * np.clip((_world_field(x, y, 6000.0, 3, salt + 1) - 0.5) / 0.25, 0, 1)
    return alpha.astype(np.float32), shadow.astype(np.float32), cirrus.astype(np.float32)


@lru_cache(maxsize=16)
def _world_xy(grid: TargetGrid) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """EPSG:3035 coordinates of a grid's pixel centres (read-only) and its lon/lat centre."""
    (y, x), t = grid.coords(), _transformer(grid.crs, WORLD_CRS)
    xx, yy = np.meshgrid(x, y)
    wx, wy = t.transform(xx, yy)
    wx.flags.writeable = wy.flags.writeable = False
    lonlat = _transformer(grid.crs, 4326).transform(x.mean(), y.mean())
    return wx, wy, lonlat


def simulate_scene(
    landscape: Landscape,
    grid: TargetGrid,
    spec: SceneSpec,
    *,
    seed: int = 0,
    layers: SceneLayers | None = None,
) -> SimulatedScene:
    """Simulate one S2 L2A window: 10 m DN of ``BANDS`` and the 20 m SCL (see the module doc).

    Parameters
    ----------
    landscape
        The world.
    grid
        10 m window of a tile (:func:`tile_window`); its bounds must lie on the 20 m lattice.
    spec
        The acquisition (date, baseline, clouds, cirrus, swath edge).
    seed
        Seed of noise, clouds and atmosphere.
    layers
        :func:`scene_layers` of ``grid`` to reuse across dates.

    Returns
    -------
    SimulatedScene
        uint16 DN of ``BANDS`` at 10 m (0 = no data, offset by ``spec.offset``), the uint8 SCL
        at 20 m and the sun angles.
    """
    lr = (layers or scene_layers(landscape, grid)).lr
    # Phenology after the PSF: the group gains are smooth, so the order hardly matters.
    surface = apply_phenology(lr, landscape.phenology(spec.when.date()))
    wx, wy, (lon, lat) = _world_xy(grid)  # clouds and the swath edge live in the world CRS
    sun = sun_position(spec.when, lon, lat)
    alpha, shadow, cirrus = _atmosphere(spec, seed, wx, wy, sun)
    rng = np.random.default_rng([seed, zlib.crc32(grid.crs.encode()), spec.salt(seed)])
    date_rng = np.random.default_rng(spec.salt(seed))
    gain = 1 + 0.04 * (date_rng.random(4) - 0.5)
    path = np.array([0.006, 0.004, 0.002, 0.0]) * date_rng.random()
    obs = surface * gain[:, None, None].astype(np.float32) + path[:, None, None].astype(np.float32)
    obs *= 1 - 0.65 * shadow * (1 - alpha)
    obs = obs * (1 - 0.15 * cirrus) + _HAZE_RGBN * cirrus
    obs = obs * (1 - alpha) + _CLOUD_RGBN * alpha * (0.8 + 0.3 * alpha)  # brighter cores
    obs += (
        rng.normal(0.0, 1.0, obs.shape).astype(np.float32)
        * np.array(NOISE_SIGMA, np.float32)[:, None, None]
    )
    # SCL at 20 m from the 2x2 means; no data beyond the swath edge, shared by both resolutions.
    s20, a20, sh20, ci20 = _mean2(surface), _mean2(alpha), _mean2(shadow), _mean2(cirrus)
    ndvi = (s20[3] - s20[2]) / (s20[3] + s20[2] + 1e-6)
    ndwi = (s20[1] - s20[3]) / (s20[1] + s20[3] + 1e-6)
    scl = np.select(
        [ndwi > 0.0, ndvi > 0.4], [SCL["water"], SCL["vegetation"]], SCL["not_vegetated"]
    )
    scl[sh20 > 0.3] = SCL["shadow"]
    scl[ci20 > 0.3] = SCL["cirrus"]
    scl[a20 > 0.15] = SCL["cloud_medium"]
    scl[a20 > 0.5] = SCL["cloud_high"]
    nodata20 = np.zeros(scl.shape, bool)
    if spec.swath_edge is not None:
        ex, ey = _transformer(4326, WORLD_CRS).transform(*spec.swath_edge)
        head = math.radians(-12.0)  # the edge runs 12 deg west of north
        cross = math.cos(head) * (_mean2(wx) - ex) - math.sin(head) * (_mean2(wy) - ey)
        nodata20 = cross < 0
    scl[nodata20] = SCL["nodata"]
    dn = to_dn(obs, spec.offset)
    dn[:, np.repeat(np.repeat(nodata20, 2, 0), 2, 1)] = 0
    return SimulatedScene(dict(zip(BANDS, dn, strict=True)), scl.astype(np.uint8), grid, *sun)


def write_cog(
    path: str | Path,
    data: np.ndarray,
    *,
    crs: str,
    transform: rasterio.Affine,
    nodata: float | None = 0,
    resampling: Literal["average", "nearest"] = "average",
    descriptions: tuple[str, ...] | None = None,
    blocksize: int = 256,
) -> Path:
    """Write a ``(bands, rows, cols)`` or ``(rows, cols)`` array as a DEFLATE COG with overviews.

    Tiles of ``blocksize`` px, horizontal predictor, overviews down to one tile made with
    ``resampling`` (``"nearest"`` for class maps); band names from ``descriptions``. The output
    is byte-identical for identical input.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = data[None] if data.ndim == 2 else data
    profile = dict(
        driver="COG",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype=arr.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
        compress="DEFLATE",
        predictor=2,
        blocksize=blocksize,
        overview_resampling=resampling,
        overviews="AUTO",
        bigtiff="NO",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        for i, name in enumerate(descriptions or (), start=1):
            dst.set_band_description(i, name)
    return path


ORTHO_GAIN = np.array([2.4, 2.6, 3.0, 1.6], np.float32)
"""Orthophoto gain of R, G, B, NIR before its gamma (its own radiometry, unlike S2)."""
ORTHO_BIAS = np.array([0.0, 0.01, 0.03, 0.0], np.float32)
ORTHO_GAMMA = 2.0


def render_orthophoto(landscape: Landscape, grid: TargetGrid, *, seed: int = 0) -> np.ndarray:
    """An aerial RGB+NIR orthophoto, ``(4, rows, cols)`` uint8 (R, G, B, NIR; 1..255).

    Area average of the landscape's base state (fine raster of 1 m, or the grid pixel where
    finer), a slight blur (sigma 0.4 px), then DN = 255 * (gain * refl + bias) ** (1 / 2): a colour
    balance and tone curve that differ from S2 on purpose; plus noise of 1.5 DN.
    """
    fine_m = min(grid.resolution_m, 1.0)
    refl = landscape.render(grid.crs, grid.transform, grid.shape, fine_resolution_m=fine_m)[
        [2, 1, 0, 3]
    ]
    refl = np.stack([gaussian_filter(b, 0.4, mode="nearest") for b in refl])
    v = np.clip(ORTHO_GAIN[:, None, None] * refl + ORTHO_BIAS[:, None, None], 0, 1) ** (
        1 / ORTHO_GAMMA
    )
    v = 255.0 * v + np.random.default_rng([seed, 31287]).normal(0, 1.5, v.shape)
    return np.clip(np.round(v), 1, 255).astype(np.uint8)
