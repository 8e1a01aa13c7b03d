"""A seeded procedural landscape in EPSG:3035, rendered as area-averaged reflectance on any grid.

The world is a function of position only: every field (fractal DEM, river valley, Voronoi-like field
parcels, forest canopy, roads, settlements with roofs) is evaluated from world coordinates and
lattice hashes of the seed, never from the extent being drawn. A render rasterises the landscape on
a fine lattice-aligned EPSG:3035 grid (2.5 m by default) over the needed bounds and reprojects it
to the target grid with area averaging, so renders of the same place on different grids agree (a
5 m render averaged 2x2 matches a 10 m render on the nested grid to within resampling error).

Reflectance is surface reflectance (0..1) in the bands ``BANDS`` (Sentinel-2 B02, B03, B04, B08).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import date
from enum import IntEnum

import numpy as np
from affine import Affine
from rasterio.warp import Resampling, reproject, transform_bounds

from s2scale.errors import ConfigError, GridMismatchError
from s2scale.grid import Bounds
from s2scale.sentinel2 import BANDS

__all__ = [
    "BANDS",
    "SPECTRA",
    "WORLD_CRS",
    "Cover",
    "FineRaster",
    "Landscape",
    "apply_phenology",
    "fbm",
    "noise_grid",
]

WORLD_CRS = "EPSG:3035"
"""The one CRS the landscape is defined in (ETRS89-LAEA Europe, metres)."""


class Cover(IntEnum):
    """Land-cover classes of the landscape."""

    WATER = 0
    MEADOW = 1
    MAIZE = 2
    CEREAL = 3
    BARE_SOIL = 4
    CONIFER = 5
    DECIDUOUS = 6
    ROAD = 7
    TRACK = 8
    ROOF_RED = 9
    ROOF_GREY = 10
    GARDEN = 11


SPECTRA = np.array(
    [  # blue, green, red, nir surface reflectance
        [0.035, 0.050, 0.035, 0.020],  # water (turbid alpine river)
        [0.030, 0.070, 0.040, 0.380],  # meadow
        [0.028, 0.060, 0.035, 0.430],  # maize
        [0.050, 0.080, 0.090, 0.300],  # cereal, ripening
        [0.070, 0.100, 0.130, 0.200],  # bare soil
        [0.018, 0.035, 0.022, 0.240],  # conifer forest
        [0.025, 0.050, 0.030, 0.350],  # deciduous forest
        [0.100, 0.110, 0.120, 0.150],  # asphalt road
        [0.110, 0.130, 0.150, 0.200],  # gravel farm track
        [0.070, 0.080, 0.180, 0.240],  # red tile roof
        [0.130, 0.140, 0.150, 0.180],  # grey roof
        [0.045, 0.070, 0.060, 0.280],  # gardens and yards
    ],
    dtype=np.float32,
)
"""Mean reflectance per :class:`Cover` class, shape ``(12, 4)`` in ``BANDS`` order."""

_GROUP = np.array([3, 1, 0, 0, 0, 2, 2, 3, 3, 3, 3, 1], dtype=np.uint8)
"""Phenology group per class: 0 crops, 1 grass, 2 forest, 3 static."""
N_GROUPS = 3
"""Number of groups with phenology (crops, grass, forest)."""

_HILLSHADE_AZ, _HILLSHADE_EL = 150.0, 58.0
"""Fixed sun of the relief shading (a summer morning over Austria), degrees."""


def _salt(seed: int, name: str) -> int:
    """Return a 32-bit salt for one named field of one seed."""
    return zlib.crc32(f"{seed}:{name}".encode())


def _hash(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """Integer hash of lattice coordinates (uint32, wrapping arithmetic)."""
    h = np.atleast_1d(ix).astype(np.uint32) * np.uint32(0x9E3779B1)
    h = h ^ (np.atleast_1d(iy).astype(np.uint32) * np.uint32(0x85EBCA77))
    h ^= np.uint32(salt & 0xFFFFFFFF)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x7FEB352D)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x846CA68B)
    h ^= h >> np.uint32(16)
    return h


def _unit(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """Uniform [0, 1) float32 from a lattice hash."""
    return (_hash(ix, iy, salt) >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)


def _smooth(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lattice index and smoothstep weight of lattice coordinates."""
    i = np.floor(u)
    w = (u - i).astype(np.float32)
    return i.astype(np.int64), w * w * (3 - 2 * w)


def noise_grid(xs: np.ndarray, ys: np.ndarray, scale: float, salt: int) -> np.ndarray:
    """Value noise in [0, 1) on the regular grid ``ys x xs`` (world metres), shape ``(ny, nx)``."""
    i, wx = _smooth(xs / scale)
    j, wy = _smooth(ys / scale)
    lat = _unit(
        np.arange(i.min(), i.max() + 2)[None, :], np.arange(j.min(), j.max() + 2)[:, None], salt
    )
    a, b = i - i.min(), j - j.min()
    vx = lat[:, a] * (1 - wx) + lat[:, a + 1] * wx
    return vx[b] * (1 - wy)[:, None] + vx[b + 1] * wy[:, None]


def fbm(xs: np.ndarray, ys: np.ndarray, scale: float, octaves: int, salt: int) -> np.ndarray:
    """Fractal value noise in [0, 1), mean 0.5, on the grid ``ys x xs``; shape ``(ny, nx)``.

    Octave ``k`` has feature size ``scale / 2**k`` and weight ``0.5**k``; values depend only on
    the position (world metres) and ``salt``.

    Examples
    --------
    >>> v = fbm(np.arange(0.0, 500.0, 10.0), np.arange(0.0, 300.0, 10.0), 200.0, 3, salt=1)
    >>> v.shape, bool(0 <= v.min() and v.max() < 1)
    ((30, 50), True)
    """
    total, norm = 0.0, 0.0
    for k in range(octaves):
        amp = 0.5**k
        total = total + amp * noise_grid(xs, ys, scale / 2**k, salt + 7919 * k)
        norm += amp
    return total / np.float32(norm)


@dataclass(frozen=True)
class FineRaster:
    """The landscape sampled at pixel centres of a fine EPSG:3035 grid."""

    layers: np.ndarray
    """``(7, rows, cols)`` float32: reflectance of ``BANDS`` (0..1), then 0/1 masks of the crop,
    grass and forest phenology groups."""
    cover: np.ndarray
    """``(rows, cols)`` uint8 :class:`Cover` class."""
    transform: Affine
    """Affine transform of the grid in :data:`WORLD_CRS`."""

    @property
    def reflectance(self) -> np.ndarray:
        """``(4, rows, cols)`` float32 surface reflectance (a view of ``layers``)."""
        return self.layers[:4]

    @property
    def bounds(self) -> Bounds:
        """Outer edges in EPSG:3035."""
        t, (rows, cols) = self.transform, self.cover.shape
        return (t.c, t.f + rows * t.e, t.c + cols * t.a, t.f)


@dataclass(frozen=True)
class Landscape:
    """A deterministic alpine valley landscape (river, fields, forest, roads, villages, relief).

    Examples
    --------
    >>> ls = Landscape(seed=1)
    >>> fine = ls.rasterize((4471000.0, 2710000.0, 4471100.0, 2710050.0), 2.5)
    >>> fine.reflectance.shape, bool(0 <= fine.reflectance.min() < fine.reflectance.max() < 1)
    ((4, 20, 40), True)
    """

    seed: int = 0
    """Seed of every random choice; same seed, same world."""
    river_y_m: float = 2_710_300.0
    """EPSG:3035 northing of a river centreline (valleys repeat every ``valley_period_m``)."""
    valley_period_m: float = 14_000.0
    """North-south distance between parallel valleys."""
    towns: tuple[tuple[float, float, float], ...] = ((4_471_300.0, 2_710_800.0, 650.0),)
    """Extra settlements as ``(x, y, radius_m)`` in EPSG:3035 (default: one near the sample)."""

    # ------------------------------------------------------------------------------- geometry
    def _river(self, xs: np.ndarray, *, smooth: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """River centreline northing offset from ``river_y_m`` and the cosine of its slope."""
        salt = _salt(self.seed, "river")
        yr, dyr = np.zeros(xs.shape), np.zeros(xs.shape)
        waves = ((200.0, 5000.0),) if smooth else ((200.0, 5000.0), (60.0, 1800.0), (15.0, 600.0))
        for k, (amp, lam) in enumerate(waves):
            arg = 2 * math.pi * (xs / lam + float(_unit(np.array([k]), np.array([0]), salt)[0]))
            yr += amp * np.sin(arg)
            dyr += amp * 2 * math.pi / lam * np.cos(arg)
        return yr, 1.0 / np.sqrt(1.0 + dyr**2)

    def _valley(self, xs: np.ndarray, ys: np.ndarray, *, smooth: bool = False) -> np.ndarray:
        """Signed perpendicular distance (m, float32) north of the nearest river centreline."""
        yr, cos = self._river(xs, smooth=smooth)
        p = self.valley_period_m
        rel = ((ys - self.river_y_m) % p).astype(np.float32)[:, None] - yr.astype(np.float32)
        return ((rel + np.float32(p / 2)) % np.float32(p) - np.float32(p / 2)) * cos.astype(
            np.float32
        )

    def _floor(self, xs: np.ndarray) -> np.ndarray:
        """Half-width of the flat valley floor (m) along the valley."""
        n = fbm(xs, np.zeros(1), 3000.0, 2, _salt(self.seed, "floor"))[0]
        return (1500.0 * (0.8 + 0.4 * n)).astype(np.float32)

    def _shade(self, xs: np.ndarray, ys: np.ndarray, res: float) -> np.ndarray:
        """Relief shading factor (1 on flat ground) from central differences of the fractal DEM."""
        xp = np.concatenate([[xs[0] - res], xs, [xs[-1] + res]])
        yp = np.concatenate([[ys[0] + res], ys, [ys[-1] - res]])
        rise = np.clip((np.abs(self._valley(xp, yp, smooth=True)) - self._floor(xp)) / 3000.0, 0, 1)
        rise = rise * rise * (3 - 2 * rise)
        z = 1400.0 * rise + (60.0 + 500.0 * rise) * fbm(xp, yp, 1600.0, 4, _salt(self.seed, "dem"))
        gx = (z[1:-1, 2:] - z[1:-1, :-2]) / (2 * res)
        gy = (z[:-2, 1:-1] - z[2:, 1:-1]) / (2 * res)  # rows run south: this is dz/dnorth
        az, el = math.radians(_HILLSHADE_AZ), math.radians(_HILLSHADE_EL)
        sx, sy, sz = math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)
        cos_i = (sz - gx * sx - gy * sy) / np.sqrt(1 + gx * gx + gy * gy)
        return np.clip(cos_i / sz, 0.35, 1.4).astype(np.float32)

    def _settlements(
        self, xs: np.ndarray, ys: np.ndarray, dy: np.ndarray, tex: np.ndarray
    ) -> np.ndarray:
        """Cover of villages (gardens, streets, roofs), 0 outside them; shape ``(ny, nx)``."""
        s, size, lot = self.seed, 1200.0, 30.0
        i, j = np.floor(xs / size).astype(np.int64), np.floor(ys / size).astype(np.int64)
        li, lj = np.arange(i.min(), i.max() + 1)[None, :], np.arange(j.min(), j.max() + 1)[:, None]
        vx = (li + 0.3 + 0.4 * _unit(li, lj, _salt(s, "vx"))) * size
        vy = (lj + 0.3 + 0.4 * _unit(li, lj, _salt(s, "vy"))) * size
        vdy = np.abs(self._valley(vx[0], vy[:, 0]))
        keep = (_unit(li, lj, _salt(s, "vp")) < 0.35) & (vdy > 250) & (vdy < 1300)
        centres = [
            (x, y, 120.0 + 200.0 * float(r))
            for x, y, r in zip(vx[keep], vy[keep], _unit(li, lj, _salt(s, "vr"))[keep], strict=True)
        ]
        wobble = 0.85 + 0.3 * tex
        inside = np.zeros(dy.shape, bool)
        for cx, cy, radius in [*centres, *self.towns]:
            ddx, ddy = (xs - cx).astype(np.float32), (ys - cy).astype(np.float32)
            if min(abs(ddx).min(), abs(ddy).min()) < 1.3 * radius:
                inside |= ddx[None, :] ** 2 + ddy[:, None] ** 2 < (radius * wobble) ** 2
        inside &= np.abs(dy) > 70
        out = np.zeros(dy.shape, np.uint8)
        rr, cc = np.nonzero(inside)
        if rr.size == 0:
            return out
        # 30 m lots; every 4th lot row/column holds a street, the others a house (p=0.8).
        lx, ly = np.floor(xs[cc] / lot).astype(np.int64), np.floor(ys[rr] / lot).astype(np.int64)
        fx, fy = xs[cc] - lx * lot, ys[rr] - ly * lot
        u = [_unit(lx, ly, _salt(s, f"lot{n}")) for n in range(6)]
        bw, bh = 8 + 12 * u[0], 8 + 10 * u[1]
        ox, oy = 4 + (lot - 8 - bw) * u[2], 4 + (lot - 8 - bh) * u[3]
        street = ((lx % 4 == 0) & (np.abs(fx - 15) < 3)) | ((ly % 4 == 0) & (np.abs(fy - 15) < 3))
        house = (lx % 4 != 0) & (ly % 4 != 0) & (u[4] < 0.8)
        house &= (fx >= ox) & (fx < ox + bw) & (fy >= oy) & (fy < oy + bh)
        roof = np.where(u[5] < 0.6, Cover.ROOF_RED, Cover.ROOF_GREY)
        out[rr, cc] = np.where(street, Cover.ROAD, np.where(house, roof, Cover.GARDEN))
        return out

    def _parcels(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Voronoi-like field parcels: id of the nearest and second-nearest seed, edge distance (m).

        Seeds are jittered on a 180 x 70 m lattice; each pixel looks at the 2x2 nearest cells.
        """
        s, cx, cy = self.seed, 180.0, 70.0
        ci, cj = np.floor(xs / cx - 0.5).astype(np.int64), np.floor(ys / cy - 0.5).astype(np.int64)
        li = np.arange(ci.min(), ci.max() + 2)[None, :]
        lj = np.arange(cj.min(), cj.max() + 2)[:, None]
        sx = (li + 0.2 + 0.6 * _unit(li, lj, _salt(s, "px"))) * cx
        sy = (lj + 0.2 + 0.6 * _unit(li, lj, _salt(s, "py"))) * cy
        ids = _hash(li, lj, _salt(s, "parcel"))
        best = np.full((len(ys), len(xs)), np.inf, np.float32)
        second, pid, sid = (
            best.copy(),
            np.zeros(best.shape, np.uint32),
            np.zeros(best.shape, np.uint32),
        )
        for di in (0, 1):
            for dj in (0, 1):
                a, b = (ci - li[0, 0] + di)[None, :], (cj - lj[0, 0] + dj)[:, None]
                ex = (xs[None, :] - sx[b, a]).astype(np.float32)  # float64 differences: exact
                ey = (ys[:, None] - sy[b, a]).astype(np.float32)
                d2, cid = ex * ex + ey * ey, ids[b, a]
                closer = d2 < best
                sid = np.where(closer, pid, np.where(d2 < second, cid, sid))
                second = np.where(closer, best, np.minimum(second, d2))
                pid, best = np.where(closer, cid, pid), np.where(closer, d2, best)
        # Half the difference of the two distances approximates the distance to the shared edge.
        return pid, sid, (np.sqrt(second) - np.sqrt(best)) / 2

    # -------------------------------------------------------------------------------- raster
    def rasterize(self, bounds: Bounds, resolution_m: float = 2.5) -> FineRaster:
        """Sample the landscape at pixel centres of a lattice-aligned EPSG:3035 grid.

        Parameters
        ----------
        bounds
            ``(minx, miny, maxx, maxy)`` in EPSG:3035; snapped outwards to ``resolution_m``.
        resolution_m
            Pixel size in metres. The value at a place does not depend on ``bounds``.

        Returns
        -------
        FineRaster
            Reflectance ``(4, rows, cols)`` float32 in 0..1 and the cover class per pixel.
        """
        if resolution_m <= 0:
            raise ConfigError(f"resolution_m={resolution_m} must be positive")
        r = float(resolution_m)
        x0, y1 = math.floor(bounds[0] / r) * r, math.ceil(bounds[3] / r) * r
        cols = max(1, math.ceil((bounds[2] - x0) / r))
        rows = max(1, math.ceil((y1 - bounds[1]) / r))
        xs = x0 + r * (np.arange(cols) + 0.5)
        layers = np.empty((4 + N_GROUPS, rows, cols), np.float32)
        cover = np.empty((rows, cols), np.uint8)
        strip = max(1, 400_000 // cols)
        for r0 in range(0, rows, strip):
            ys = y1 - r * (np.arange(r0, min(rows, r0 + strip)) + 0.5)
            rs = slice(r0, r0 + len(ys))
            layers[:4, rs], cover[rs] = self._strip(xs, ys, r)
            group = _GROUP[cover[rs]]
            for g in range(N_GROUPS):
                layers[4 + g, rs] = group == g
        return FineRaster(layers, cover, Affine(r, 0.0, x0, 0.0, -r, y1))

    def _strip(self, xs: np.ndarray, ys: np.ndarray, res: float) -> tuple[np.ndarray, np.ndarray]:
        """Reflectance and cover of one block of rows."""
        s = self.seed
        dy = self._valley(xs, ys)
        d = np.abs(dy)
        on_floor = d < self._floor(xs)[None, :]
        lu = fbm(xs, ys, 700.0, 3, _salt(s, "landuse"))
        fine_tex = fbm(xs, ys, 12.0, 2, _salt(s, "canopy"))
        pid, sid, border = self._parcels(xs, ys)
        u = (pid >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)
        crop = np.select(
            [u < 0.4, u < 0.7, u < 0.9], [Cover.MEADOW, Cover.MAIZE, Cover.CEREAL], Cover.BARE_SOIL
        )
        hill = np.where(
            lu > 0.4, np.where(fine_tex > 0.6, Cover.DECIDUOUS, Cover.CONIFER), Cover.MEADOW
        )
        fields = on_floor & (lu <= 0.78)
        cover = np.where(on_floor, np.where(fields, crop, Cover.DECIDUOUS), hill).astype(np.uint8)
        pair = _hash(np.minimum(pid, sid), np.maximum(pid, sid), _salt(s, "track"))
        cover[fields & (border < 1.2)] = Cover.MEADOW  # grass margins between parcels
        cover[fields & (border < 1.6) & (pair % np.uint32(4) == 0)] = Cover.TRACK
        river_half = 38.0 + 10.0 * lu
        cover[d < river_half + 20 + 25 * fine_tex] = Cover.DECIDUOUS  # riparian trees
        cover[d < river_half] = Cover.WATER
        village = self._settlements(xs, ys, dy, lu)
        cover = np.where(village > 0, village, cover)
        # Roads: a main road along the valley and slanted cross roads on the floor (with bridges).
        cover[np.abs(dy - 450.0 - 80.0 * np.sin(xs / 370.0)).astype(np.float32) < 3.5] = Cover.ROAD
        kx = np.floor(xs / 1100.0)
        xr = (xs - kx * 1100.0).astype(np.float32)[None, :] - 0.2 * dy  # 0.2 m east per m north
        m = np.floor(xr / 1100.0)
        k = (kx[None, :] + m).astype(np.int64)
        ks = np.arange(k.min(), k.max() + 1)
        road_x = ((0.2 + 0.6 * _unit(ks, ks * 0, _salt(s, "road"))) * 1100.0)[k - ks[0]]
        road_on = (_unit(ks, ks * 0 + 1, _salt(s, "road")) < 0.8)[k - ks[0]]
        cover[(np.abs(xr - m * 1100.0 - road_x) < 2.5) & road_on & on_floor] = Cover.ROAD
        # Reflectance: class spectra x per-parcel gain x texture x relief shading.
        parcel = fields & (cover <= Cover.BARE_SOIL) & (cover != Cover.WATER)
        nir_u = ((pid >> np.uint32(3)) % np.uint32(256)).astype(np.float32) / 255.0
        tex = 0.94 + 0.12 * fbm(xs, ys, 60.0, 2, _salt(s, "field"))
        leafy = (cover == Cover.CONIFER) | (cover == Cover.DECIDUOUS) | (cover == Cover.GARDEN)
        tex = np.where(leafy, 0.55 + 0.9 * fine_tex, tex)
        mult = np.where(parcel, 0.88 + 0.24 * u, 1.0) * tex
        mult *= np.where(cover == Cover.WATER, 1.0, self._shade(xs, ys, res))
        refl = SPECTRA[cover].transpose(2, 0, 1) * mult
        refl[3] *= np.where(parcel, 0.92 + 0.16 * nir_u, 1.0)
        return np.clip(refl, 0.0, 1.0).astype(np.float32), cover

    # -------------------------------------------------------------------------------- render
    def render(
        self,
        crs: str | int,
        transform: Affine,
        shape: tuple[int, int],
        *,
        fine: FineRaster | None = None,
        fine_resolution_m: float | None = None,
        fractions: bool = False,
    ) -> np.ndarray:
        """Area-averaged reflectance on any north-up grid.

        Parameters
        ----------
        crs, transform, shape
            The target grid (``shape`` is ``(rows, cols)``).
        fine
            A raster from :meth:`rasterize` to reuse; it must cover the grid (plus two pixels).
        fine_resolution_m
            Resolution of the fine raster drawn when ``fine`` is None; default 2.5 m for target
            pixels of 5 m and more, half the target pixel otherwise.
        fractions
            Also return the area fractions of the crop, grass and forest phenology groups.

        Returns
        -------
        numpy.ndarray
            float32 ``(4, rows, cols)`` reflectance in 0..1 (``BANDS`` order), or
            ``(4 + 3, rows, cols)`` with the group fractions (0..1) appended.

        Raises
        ------
        GridMismatchError
            If ``fine`` does not cover the grid.
        """
        # One extra pixel all round: GDAL's average is slightly off on the outermost pixels.
        rows, cols = shape[0] + 2, shape[1] + 2
        t = transform * Affine.translation(-1, -1)
        need = transform_bounds(
            crs, WORLD_CRS, t.c, t.f + rows * t.e, t.c + cols * t.a, t.f, densify_pts=21
        )
        res_out = abs(t.a)
        if fine is None:
            r = fine_resolution_m or (2.5 if res_out >= 5 else res_out / 2)
            fine = self.rasterize(
                (need[0] - 2 * r, need[1] - 2 * r, need[2] + 2 * r, need[3] + 2 * r), r
            )
        else:
            fb, r = fine.bounds, fine.transform.a
            if (
                need[0] < fb[0] + r
                or need[1] < fb[1] + r
                or need[2] > fb[2] - r
                or need[3] > fb[3] - r
            ):
                raise GridMismatchError(
                    f"fine raster {fb} does not cover the grid's EPSG:3035 bounds {need}; "
                    "rasterize a larger area or pass fine=None"
                )
        src = fine.layers if fractions else fine.reflectance
        out = np.zeros((src.shape[0], rows, cols), np.float32)
        reproject(
            src,
            out,
            src_transform=fine.transform,
            src_crs=WORLD_CRS,
            dst_transform=t,
            dst_crs=crs,
            resampling=Resampling.average,
            num_threads=2,
        )
        return np.ascontiguousarray(out[:, 1:-1, 1:-1])

    def phenology(self, when: date) -> np.ndarray:
        """Per-group band gains on a date, shape ``(3, 4)`` (crops, grass, forest x ``BANDS``).

        Crops ripen through the summer (red up, nir down), grass follows a ~40 day mowing cycle,
        forest peaks in mid-summer; gains stay within about +-10 % of 1.

        Examples
        --------
        >>> g = Landscape(seed=0).phenology(date(2024, 7, 14))
        >>> g.shape, bool(abs(g - 1).max() < 0.12)
        ((3, 4), True)
        """
        doy = when.timetuple().tm_yday
        s = (doy - 196) / 46.0  # -1 in early June, +1 at the end of August
        phase = (
            2
            * math.pi
            * float(_unit(np.array([when.year]), np.array([0]), _salt(self.seed, "mow"))[0])
        )
        m = math.cos(2 * math.pi * doy / 40.0 + phase)
        year = 1 + 0.02 * (
            float(_unit(np.array([when.year]), np.array([1]), _salt(self.seed, "yr"))[0]) - 0.5
        )
        gains = [
            [1 + 0.05 * s, 1 + 0.03 * s, 1 + 0.10 * s, 1 - 0.05 * s],
            [1 - 0.03 * m, 1 - 0.02 * m, 1 - 0.05 * m, 1 + 0.05 * m],
            [1.0, 1.0, 1.0, 1 + 0.02 * (1 - s * s) - 0.013],
        ]
        return (np.array(gains) * year).astype(np.float32)


def apply_phenology(stack: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Reflectance of a date from a ``render(..., fractions=True)`` stack and :meth:`phenology`.

    Each pixel's reflectance is scaled by the fraction-weighted group gain (exact for pure pixels).

    Examples
    --------
    >>> stack = np.ones((7, 1, 1), np.float32)
    >>> [round(float(v), 2) for v in apply_phenology(stack, np.full((3, 4), 1.1))[:, 0, 0]]
    [1.3, 1.3, 1.3, 1.3]
    """
    refl, frac = stack[:4], stack[4 : 4 + N_GROUPS]
    factor = 1 + np.einsum("gb,gyx->byx", gains - 1, frac)
    return (refl * factor).astype(np.float32)
