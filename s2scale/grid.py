"""Areas of interest, the Sentinel-2 MGRS tiling, the national 5 m target grid and chunk plans.

Pure geometry: nothing here reads pixels or talks to the network. The only I/O is reading an AOI
file (GeoJSON) and the built-in boundary of Austria shipped with the package.

Conventions
-----------
- AOIs are shapely geometries in longitude/latitude (EPSG:4326).
- Sentinel-2 L2A tiles follow the MGRS 100 km squares with a 109.8 km footprint (10980 px at
  10 m). The upper-left corner of a tile is the square's west edge rounded *down* and its north
  edge (square south edge + 100 km) rounded *up* to a multiple of 60 m, so that the 10, 20 and
  60 m grids of all tiles of one UTM zone share one lattice (e.g. ``32TQT``: x0 = 699960,
  y0 = 5300040).
- Target grids are odc-geo ``GeoBox`` es underneath (:attr:`TargetGrid.geobox`), and chunk plans
  odc-geo ``GeoboxTiles``; :class:`TargetGrid` is the small frozen record stored in manifests.
- Target grids are snapped so that their origin is a multiple of the coarse (10 m) resolution: in
  a UTM zone every 10 m source pixel edge is then also a 5 m edge of the target.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import TypeAlias

import numpy as np
import shapely
from affine import Affine
from odc.geo.geobox import GeoBox, GeoboxTiles
from odc.geo.geom import Geometry
from pyproj import CRS, Transformer
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from s2scale.errors import ConfigError
from s2scale.sentinel2 import RESOLUTION_M

__all__ = [
    "AOI",
    "Bounds",
    "ChunkPlan",
    "MgrsTile",
    "TargetGrid",
    "mgrs_tile",
    "plan_chunks",
    "resolve_aoi",
    "target_grid",
    "tiles_for_aoi",
    "utm_epsg",
    "utm_zone_of",
]

Bounds: TypeAlias = tuple[float, float, float, float]
"""``(minx, miny, maxx, maxy)`` in the units of the CRS it belongs to."""

AOI: TypeAlias = str | Path | BaseGeometry | Sequence[float]
"""``"austria"``, a GeoJSON path, WKT, ``"minx,miny,maxx,maxy"`` (degrees), a bbox or a geometry."""

S2_TILE_SIZE_M = 109_800.0
"""Edge of one Sentinel-2 MGRS tile footprint in metres (10980 px at 10 m)."""

_S2_LATTICE_M = 60.0
"""All S2 tile corners lie on a 60 m lattice, the coarsest band resolution."""

BUILTIN_AOIS = ("austria",)


# --------------------------------------------------------------------------------------------- AOI
def resolve_aoi(aoi: AOI) -> BaseGeometry:
    """Turn any supported AOI form into a valid shapely geometry in EPSG:4326.

    Parameters
    ----------
    aoi
        ``"austria"`` (built-in national boundary, Natural Earth, public domain), a path to a
        GeoJSON file (Feature, FeatureCollection or geometry; the union of all features), a WKT
        string, a ``"minx,miny,maxx,maxy"`` string or a 4-sequence in degrees, or a shapely
        geometry (assumed to be in EPSG:4326).

    Returns
    -------
    shapely.geometry.base.BaseGeometry
        A valid, non-empty (Multi)Polygon in longitude/latitude.

    Raises
    ------
    ConfigError
        If the AOI cannot be parsed, is empty, or lies outside longitude/latitude bounds.

    Examples
    --------
    >>> resolve_aoi("11.9,47.6,12.1,47.7").bounds
    (11.9, 47.6, 12.1, 47.7)
    """
    geom = _coerce_aoi(aoi)
    if geom.is_empty:
        raise ConfigError(f"AOI {aoi!r} is empty; give a polygon with a non-zero area")
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise ConfigError(
            f"AOI bounds {geom.bounds} are not longitude/latitude degrees; "
            "give the AOI in EPSG:4326 (lon, lat)"
        )
    if geom.area == 0:
        raise ConfigError(f"AOI {aoi!r} has no area; give a polygon or a bbox, not a point or line")
    return geom


def _coerce_aoi(aoi: AOI) -> BaseGeometry:
    """Parse one of the accepted AOI forms without validating the result."""
    if isinstance(aoi, BaseGeometry):
        return aoi
    if isinstance(aoi, Path):
        return _read_geojson(aoi)
    if isinstance(aoi, str):
        text = aoi.strip()
        if text.lower() in BUILTIN_AOIS:
            return _builtin_aoi(text.lower())
        parts = text.split(",")
        if len(parts) == 4:
            try:
                numbers = [float(p) for p in parts]
            except ValueError:
                numbers = None
            if numbers is not None:
                return _coerce_aoi(numbers)
        path = Path(text).expanduser()
        if text.lower().endswith((".json", ".geojson")) or path.is_file():
            return _read_geojson(path)
        try:
            return shapely.from_wkt(text)
        except shapely.errors.GEOSException as err:
            raise ConfigError(
                f"cannot understand AOI {aoi!r}: expected 'austria', a GeoJSON path, WKT or "
                "'minx,miny,maxx,maxy' in degrees"
            ) from err
    if isinstance(aoi, Sequence) and len(aoi) == 4:
        minx, miny, maxx, maxy = (float(v) for v in aoi)
        if not (minx < maxx and miny < maxy):
            raise ConfigError(
                f"AOI bbox {tuple(aoi)} must be (minx, miny, maxx, maxy) with min < max"
            )
        return box(minx, miny, maxx, maxy)
    raise ConfigError(f"cannot understand AOI {aoi!r} of type {type(aoi).__name__}")


def _read_geojson(path: Path) -> BaseGeometry:
    """Union of all geometries of a GeoJSON file."""
    if not path.is_file():
        raise ConfigError(f"AOI file {str(path)!r} does not exist; give an existing GeoJSON path")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read AOI file {str(path)!r} as GeoJSON: {err}") from err
    return _geojson_to_geometry(data, str(path))


def _geojson_to_geometry(data: dict, name: str) -> BaseGeometry:
    """Union of the geometries of a GeoJSON object."""
    kind = data.get("type")
    if kind == "FeatureCollection":
        geoms = [shape(f["geometry"]) for f in data.get("features", []) if f.get("geometry")]
    elif kind == "Feature":
        geoms = [shape(data["geometry"])]
    elif kind in {"Polygon", "MultiPolygon"}:
        geoms = [shape(data)]
    else:
        raise ConfigError(f"AOI {name!r} is GeoJSON of type {kind!r}; expected polygons")
    if not geoms:
        raise ConfigError(f"AOI {name!r} holds no geometry")
    return shapely.union_all(geoms)


@cache
def _builtin_aoi(name: str) -> BaseGeometry:
    """The built-in AOI geometries shipped in ``s2scale/data``."""
    text = resources.files("s2scale").joinpath("data", f"{name}.geojson").read_text()
    return _geojson_to_geometry(json.loads(text), name)


# --------------------------------------------------------------------------------------- UTM/MGRS
def utm_zone_of(lon: float) -> int:
    """UTM zone number (1-60) of a longitude; 12.0 deg E is the first meridian of zone 33.

    Examples
    --------
    >>> utm_zone_of(11.99), utm_zone_of(12.0)
    (32, 33)
    """
    return math.floor((lon + 180.0) / 6.0) % 60 + 1


def utm_epsg(zone: int, *, north: bool = True) -> int:
    """EPSG code of a WGS 84 / UTM zone.

    Examples
    --------
    >>> utm_epsg(33)
    32633
    """
    if not 1 <= zone <= 60:
        raise ConfigError(f"UTM zone {zone} is out of range; expected 1..60")
    return (32600 if north else 32700) + zone


@lru_cache(maxsize=64)
def _to_utm(epsg: int) -> Transformer:
    return Transformer.from_crs(4326, epsg, always_xy=True)


@lru_cache(maxsize=64)
def _from_utm(epsg: int) -> Transformer:
    return Transformer.from_crs(epsg, 4326, always_xy=True)


def _reproject(transformer: Transformer, geom: BaseGeometry) -> BaseGeometry:
    """Geometry with coordinates transformed (vertices only; densify first where needed)."""
    return shapely.transform(geom, lambda x, y: transformer.transform(x, y), interleaved=False)


@dataclass(frozen=True)
class MgrsTile:
    """One Sentinel-2 MGRS tile: its name, CRS and 109.8 km footprint.

    Examples
    --------
    >>> t = mgrs_tile("32TQT")
    >>> t.epsg, t.ulx, t.uly
    (32632, 699960.0, 5300040.0)
    >>> t.transform(10.0)[2], t.shape(20.0)
    (699960.0, (5490, 5490))
    """

    name: str
    """MGRS tile id, e.g. ``"33UUP"``."""
    zone: int
    """UTM zone number."""
    north: bool
    """True in the northern hemisphere."""
    ulx: float
    """Upper-left corner easting in metres."""
    uly: float
    """Upper-left corner northing in metres."""

    @property
    def epsg(self) -> int:
        """EPSG code of the tile's UTM CRS."""
        return utm_epsg(self.zone, north=self.north)

    @property
    def latitude_band(self) -> str:
        """MGRS latitude band letter."""
        return self.name[2]

    @property
    def grid_square(self) -> str:
        """MGRS 100 km grid square letters."""
        return self.name[3:5]

    @property
    def bounds(self) -> Bounds:
        """Footprint in the tile's UTM CRS."""
        return (self.ulx, self.uly - S2_TILE_SIZE_M, self.ulx + S2_TILE_SIZE_M, self.uly)

    def transform(self, resolution_m: float) -> Affine:
        """Affine transform of the tile's grid at ``resolution_m``."""
        return Affine(resolution_m, 0.0, self.ulx, 0.0, -resolution_m, self.uly)

    def shape(self, resolution_m: float) -> tuple[int, int]:
        """``(rows, cols)`` of the tile's grid at ``resolution_m``."""
        n = round(S2_TILE_SIZE_M / resolution_m)
        return (n, n)

    @cached_property
    def footprint(self) -> BaseGeometry:
        """Footprint polygon in EPSG:4326 (edges densified)."""
        poly = shapely.segmentize(box(*self.bounds), 5_000.0)
        return _reproject(_from_utm(self.epsg), poly)


def _s2_corner(e0: float, n_top: float) -> tuple[float, float]:
    """S2 tile corner from an MGRS square's west edge and north edge (60 m lattice)."""
    return (
        math.floor(e0 / _S2_LATTICE_M) * _S2_LATTICE_M,
        math.ceil(n_top / _S2_LATTICE_M) * _S2_LATTICE_M,
    )


@lru_cache(maxsize=4096)
def mgrs_tile(name: str) -> MgrsTile:
    """Footprint and grid of a Sentinel-2 tile from its MGRS id (e.g. ``"33UUP"`` or ``"T33UUP"``).

    Raises
    ------
    ConfigError
        If ``name`` is not a valid MGRS 100 km square id.
    """
    import mgrs

    text = name.strip().upper().removeprefix("T")
    if len(text) == 4:
        text = "0" + text
    try:
        zone, hemi, e_c, n_c = mgrs.MGRS().MGRSToUTM(text)
    except Exception as err:  # the mgrs C library raises bare exceptions
        raise ConfigError(
            f"{name!r} is not an MGRS tile id; expected e.g. '33UUP' (zone, band, square)"
        ) from err
    # MGRSToUTM at precision 0 returns the centre of the 100 km square.
    e0 = float(e_c) - 50_000.0
    n0 = float(n_c) - 50_000.0
    north = hemi == "N"
    n_true = n0 if north else n0 - 10_000_000.0
    ulx, uly_true = _s2_corner(e0, n_true + 100_000.0)
    uly = uly_true if north else uly_true + 10_000_000.0
    return MgrsTile(name=text, zone=int(zone), north=north, ulx=ulx, uly=uly)


def tiles_for_aoi(aoi: AOI) -> list[MgrsTile]:
    """All Sentinel-2 MGRS tiles whose footprint intersects the AOI, sorted by name.

    A 100 km square is a tile of zone Z where it overlaps zone Z's 6 deg longitude band, so an AOI
    on a zone boundary yields tiles of both zones. The latitude band letter is the band at the
    centre of the square's part inside the zone.

    Examples
    --------
    >>> sorted({t.zone for t in tiles_for_aoi("11.95,47.70,12.05,47.75")})
    [32, 33]
    """
    import mgrs

    geom = resolve_aoi(aoi)
    minx, miny, maxx, maxy = geom.bounds
    conv = mgrs.MGRS()
    tiles: dict[str, MgrsTile] = {}
    # Tiles reach up to about 1 deg beyond their zone, so widen the zone search by one zone.
    for zone in range(utm_zone_of(minx - 1.0), utm_zone_of(maxx + 1.0) + 1):
        lon0 = -180.0 + 6.0 * (zone - 1)
        strip = box(lon0, -80.0, lon0 + 6.0, 84.0)
        for north in {miny >= 0, maxy >= 0}:
            epsg = utm_epsg(zone, north=north)
            geom_utm = _reproject(_to_utm(epsg), shapely.segmentize(geom, 0.05))
            gx0, gy0, gx1, gy1 = geom_utm.bounds
            pad = S2_TILE_SIZE_M
            for e0 in np.arange(math.floor((gx0 - pad) / 1e5), math.floor(gx1 / 1e5) + 1) * 1e5:
                if not 0 < e0 < 1_000_000:
                    continue
                for n0 in np.arange(math.floor((gy0 - pad) / 1e5), math.floor(gy1 / 1e5) + 1):
                    square = box(e0, n0 * 1e5, e0 + 1e5, n0 * 1e5 + 1e5)
                    sq_ll = _reproject(_from_utm(epsg), square)
                    inside = sq_ll.intersection(strip)
                    if inside.is_empty or inside.area < 1e-6:
                        continue
                    lon, lat = inside.representative_point().coords[0]
                    name = conv.toMGRS(lat, lon, MGRSPrecision=0)
                    if int(name[:2]) != zone:
                        continue
                    tile = mgrs_tile(name)
                    if tile.footprint.intersects(geom):
                        tiles[tile.name] = tile
    return [tiles[k] for k in sorted(tiles)]


# ------------------------------------------------------------------------------------ target grid
@dataclass(frozen=True)
class TargetGrid:
    """A north-up raster grid: CRS, resolution and snapped bounds.

    Examples
    --------
    >>> g = TargetGrid(crs="EPSG:32633", resolution_m=5.0, bounds=(0.0, 0.0, 100.0, 50.0))
    >>> g.shape, g.transform[2]
    ((10, 20), 0.0)
    """

    crs: str
    """CRS of the grid, e.g. ``"EPSG:3035"``."""
    resolution_m: float
    """Pixel size in CRS units (metres)."""
    bounds: Bounds
    """Outer edges of the grid; multiples of ``resolution_m``."""

    def __post_init__(self) -> None:
        if self.resolution_m <= 0:
            raise ConfigError(f"resolution_m={self.resolution_m} must be positive")
        minx, miny, maxx, maxy = self.bounds
        if not (minx < maxx and miny < maxy):
            raise ConfigError(f"grid bounds {self.bounds} are empty")

    @cached_property
    def geobox(self) -> GeoBox:
        """The same grid as an odc-geo ``GeoBox`` (shape, affine, coordinates, tiling)."""
        return GeoBox.from_bbox(self.bounds, self.crs, resolution=self.resolution_m)

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``."""
        return tuple(self.geobox.shape)  # type: ignore[return-value]

    @property
    def transform(self) -> Affine:
        """Affine transform of the upper-left corner."""
        return self.geobox.affine

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates ``(y, x)`` as float64 arrays (y descending)."""
        c = self.geobox.coords
        return c["y"].values.astype(np.float64), c["x"].values.astype(np.float64)

    def nbytes(self, bands: int, itemsize: int = 2) -> int:
        """Size of a ``(bands, rows, cols)`` array on this grid."""
        rows, cols = self.shape
        return bands * rows * cols * itemsize


def target_grid(
    aoi: AOI,
    *,
    crs: str | int = "EPSG:3035",
    resolution_m: float = 5.0,
    snap_m: float = RESOLUTION_M,
) -> TargetGrid:
    """The national (or AOI-wide) output grid covering the AOI.

    Parameters
    ----------
    aoi
        Area to cover (any form accepted by :func:`resolve_aoi`).
    crs
        Output CRS; default EPSG:3035 (ETRS89-LAEA Europe). A UTM CRS gives a grid whose 5 m pixels
        nest exactly in the Sentinel-2 10 m pixels of that zone.
    resolution_m
        Output pixel size; 5 m for 2x super-resolution of the 10 m bands.
    snap_m
        Bounds are snapped outwards to multiples of this (default 10 m, the source resolution), so
        grids of different AOIs in the same CRS line up pixel for pixel.

    Examples
    --------
    >>> g = target_grid("12.0,47.0,12.01,47.01", crs="EPSG:32633")
    >>> [b % 10 for b in g.bounds], g.resolution_m
    ([0.0, 0.0, 0.0, 0.0], 5.0)
    """
    if snap_m % resolution_m:
        raise ConfigError(
            f"snap_m={snap_m} must be a multiple of resolution_m={resolution_m} so that pixels nest"
        )
    geom = resolve_aoi(aoi)
    epsg = CRS.from_user_input(crs).to_epsg()
    if epsg is None:
        raise ConfigError(f"output CRS {crs!r} has no EPSG code; give e.g. 'EPSG:3035'")
    # Densify before projecting: odc-geo's ``Geometry.to_crs(...).boundingbox`` projects the
    # vertices only, so a lon/lat box's curved edges would fall outside the grid (by ~1 km).
    proj = _reproject(_to_utm(epsg), shapely.segmentize(geom, 0.01))
    minx, miny, maxx, maxy = proj.bounds
    snapped = (
        math.floor(minx / snap_m) * snap_m,
        math.floor(miny / snap_m) * snap_m,
        math.ceil(maxx / snap_m) * snap_m,
        math.ceil(maxy / snap_m) * snap_m,
    )
    return TargetGrid(crs=f"EPSG:{epsg}", resolution_m=float(resolution_m), bounds=snapped)


# ------------------------------------------------------------------------------------ chunk plans
@dataclass(frozen=True)
class ChunkPlan:
    """Regions of a grid, in row-major order, each at most ``chunk_px`` square.

    Only chunks that intersect the AOI are listed; ``regions`` hold ``(row0, row1, col0, col1)``
    pixel slices of the grid.
    """

    grid: TargetGrid
    """The grid being cut."""
    chunk_px: int
    """Edge of one chunk in output pixels."""
    regions: tuple[tuple[int, int, int, int], ...] = field(repr=False)
    """``(row0, row1, col0, col1)`` of each chunk that intersects the AOI."""
    total_chunks: int
    """Number of chunks of the whole rectangular grid."""

    def __len__(self) -> int:
        return len(self.regions)

    def __iter__(self) -> Iterator[tuple[int, int, int, int]]:
        return iter(self.regions)

    def nbytes(self, bands: int, itemsize: int = 2) -> int:
        """Bytes of the chunks that will be computed."""
        return sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in self.regions) * bands * itemsize


def plan_chunks(grid: TargetGrid, chunk_px: int, aoi: AOI | None = None) -> ChunkPlan:
    """Cut a grid into square chunks, keeping those that intersect the AOI.

    Examples
    --------
    >>> g = TargetGrid(crs="EPSG:32633", resolution_m=5.0, bounds=(0.0, 0.0, 100.0, 60.0))
    >>> p = plan_chunks(g, 8)
    >>> len(p), p.regions[0], p.regions[-1]
    (6, (0, 8, 0, 8), (8, 12, 16, 20))
    """
    if chunk_px < 1:
        raise ConfigError(f"chunk_px={chunk_px} must be a positive number of pixels")
    tiles = GeoboxTiles(grid.geobox, (chunk_px, chunk_px))
    ny, nx = tiles.shape
    if aoi is None:
        indices: Iterator[tuple[int, int]] = itertools.product(range(ny), range(nx))
    else:
        # Densified first: a reprojected AOI with straight edges would miss the curved ones.
        geom = shapely.segmentize(resolve_aoi(aoi), 0.01)
        indices = tiles.tiles(Geometry(geom, "EPSG:4326"))  # row-major, as the store expects
    regions = []
    for idx in indices:
        rows, cols = tiles.roi[idx]
        regions.append((int(rows.start), int(rows.stop), int(cols.start), int(cols.stop)))
    return ChunkPlan(grid=grid, chunk_px=chunk_px, regions=tuple(regions), total_chunks=ny * nx)
