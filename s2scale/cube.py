"""Scenes -> lazy ``(time, band, y, x)`` uint16 cubes per UTM zone (the zone record), Zarr.

Cloud masks and composites of these cubes are in :mod:`s2scale.composite`.

Layers (STYLE section 2): pure numpy kernels (``*_block``), Dask graph wrappers (``*_dask``),
xarray public functions that keep coordinates and CRS. Nothing here computes except the explicit
I/O functions :func:`check_assets`, :func:`write_cube` and :func:`read_cube`.

Values are *harmonised DN* (``reflectance * 10000``, BOA offset removed, see
:mod:`s2scale.items`), uint16 with 0 = no data, on the scenes' own 10 m UTM grid (pixel-centre
coordinates, multiples of 10 m at the pixel edges).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from shapely.geometry import shape

from s2scale.errors import ConfigError, GridMismatchError, ReadError
from s2scale.grid import AOI, Bounds, target_grid
from s2scale.items import Scene
from s2scale.sentinel2 import BANDS, MASK_BAND, RESOLUTION_M

__all__ = [
    "Zone",
    "check_assets",
    "load_cube",
    "observation_ids",
    "plan_cubes",
    "read_cube",
    "write_cube",
]

log = logging.getLogger(__name__)
T = TypeVar("T")



# ------------------------------------------------------------------------------------------ zones
@dataclass(frozen=True)
class Zone:
    """One UTM zone's 10 m composite: its extent on the 10 m lattice and the scenes that feed it.

    The one record of a zone: :func:`plan_cubes` makes them, the pipeline's plan cuts them into
    windows, and the composite store (:mod:`s2scale.cubestore`) keeps one group per zone.

    Examples
    --------
    >>> z = Zone(epsg=32633, bounds=(500_000.0, 5_200_000.0, 500_640.0, 5_200_320.0))
    >>> z.crs, z.group, z.shape
    ('EPSG:32633', 'epsg32633', (32, 64))
    >>> z.window_bounds((0, 8, 0, 16))
    (500000.0, 5200240.0, 500160.0, 5200320.0)
    """

    epsg: int
    """The zone's CRS (``326NN``)."""
    bounds: Bounds
    """Outer edges of the zone's composite in its CRS, on the 10 m lattice."""
    scenes: tuple[Scene, ...] = field(default=(), repr=False)
    """The zone's scenes (empty for a zone read back from a composite store)."""

    @property
    def crs(self) -> str:
        """``"EPSG:326NN"``."""
        return f"EPSG:{self.epsg}"

    @property
    def group(self) -> str:
        """The zone's Zarr group in a composite store, ``epsg326NN``."""
        return f"epsg{self.epsg}"

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the 10 m composite."""
        minx, miny, maxx, maxy = self.bounds
        return round((maxy - miny) / RESOLUTION_M), round((maxx - minx) / RESOLUTION_M)

    @property
    def transform(self) -> Affine:
        """Transform of the 10 m composite."""
        return Affine(RESOLUTION_M, 0.0, self.bounds[0], 0.0, -RESOLUTION_M, self.bounds[3])

    @property
    def tiles(self) -> list[str]:
        """MGRS tiles of the scenes."""
        return sorted({s.mgrs_tile for s in self.scenes})

    def window_bounds(self, window: tuple[int, int, int, int]) -> Bounds:
        """Bounds in the zone CRS of a ``(row0, row1, col0, col1)`` window of the 10 m array."""
        y0, y1, x0, x1 = window
        minx, _, _, maxy = self.bounds
        r = RESOLUTION_M
        return (minx + x0 * r, maxy - y1 * r, minx + x1 * r, maxy - y0 * r)

    def to_json(self) -> dict[str, Any]:
        """JSON summary for dry runs."""
        return {
            "crs": self.crs,
            "bounds": list(self.bounds),
            "shape": list(self.shape),
            "scenes": len(self.scenes),
        }


def plan_cubes(scenes: Sequence[Scene], aoi: AOI) -> list[Zone]:
    """Plan one cube per UTM zone covering the AOI where that zone's scenes have footprints.

    Reads no pixels. Each zone's bounds are the AOI's bounding box in that zone's CRS, clipped to
    the union of the zone's asset grids, and snapped outwards to the 10 m lattice.
    """
    by_zone: dict[int, list[Scene]] = {}
    for s in scenes:
        by_zone.setdefault(s.epsg, []).append(s)
    plans = []
    for epsg, group in sorted(by_zone.items()):
        aoi_b = target_grid(aoi, crs=epsg, resolution_m=RESOLUTION_M, snap_m=RESOLUTION_M).bounds
        data_b = _union_bounds(_asset_bounds(s.item["assets"]["blue"]) for s in group)
        bounds = (
            max(aoi_b[0], data_b[0]),
            max(aoi_b[1], data_b[1]),
            min(aoi_b[2], data_b[2]),
            min(aoi_b[3], data_b[3]),
        )
        if bounds[0] >= bounds[2] or bounds[1] >= bounds[3]:
            log.info("zone EPSG:%d: scenes do not overlap the AOI, skipped", epsg)
            continue
        plans.append(Zone(epsg=epsg, bounds=bounds, scenes=tuple(group)))
    return plans


def _asset_bounds(asset: dict[str, Any]) -> Bounds:
    """Bounds of an asset's grid from proj:transform and proj:shape."""
    a, _, c, _, e, f = asset["proj:transform"][:6]
    rows, cols = asset["proj:shape"]
    return (c, f + e * rows, c + a * cols, f)


def _union_bounds(bounds: Iterable[Bounds]) -> Bounds:
    b = np.array(list(bounds))
    return (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())


# ---------------------------------------------------------------------------------------- loading
def check_assets(
    scenes: Sequence[Scene],
    *,
    bands: Sequence[str] = (*BANDS, MASK_BAND),
    skip_errors: bool = False,
    max_workers: int = 8,
) -> tuple[list[Scene], list[tuple[str, str]]]:
    """Open the header of every asset (one small range request each) before building a graph.

    Returns the scenes whose assets all open and, when ``skip_errors`` is true, the skipped
    ``(href, reason)`` pairs; otherwise the first failure raises :class:`ReadError` naming the href.
    """
    import rasterio

    def probe(href: str) -> str | None:
        try:
            with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(href) as src:
                src.block_shapes  # noqa: B018  (touch the header)
        except rasterio.errors.RasterioError as err:
            return str(err)
        return None

    hrefs = [(s, s.hrefs[b]) for s in scenes for b in bands]
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        results = list(pool.map(lambda sh: probe(sh[1]), hrefs))
    bad: dict[str, tuple[str, str]] = {}
    for (scene, href), err in zip(hrefs, results, strict=True):
        if err is None or scene.id in bad:
            continue
        if not skip_errors:
            raise ReadError(f"cannot read {href!r} of scene {scene.id!r}: {err}")
        log.warning("skipping scene %s: cannot read %s: %s", scene.id, href, err)
        bad[scene.id] = (href, err)
    return [s for s in scenes if s.id not in bad], list(bad.values())


def load_cube(
    scenes: Sequence[Scene],
    *,
    bounds: Bounds | None = None,
    bands: Sequence[str] = BANDS,
    chunk_px: int = 1024,
    time_chunk: int = 1,
    skip_errors: bool = False,
) -> xr.DataArray:
    """Lazily stack scenes of ONE UTM zone into a ``(time, band, y, x)`` uint16 cube.

    Parameters
    ----------
    scenes
        Normalised scenes, all in the same UTM zone (one cube per zone: :func:`plan_cubes`).
    bounds
        Cube bounds in the zone CRS; default: the union of the scenes' grids. Snapped outwards
        to the 10 m lattice.
    bands
        Canonical band names; ``"scl"`` may be included (it is read at 10 m by nearest).
    chunk_px
        Spatial chunk edge in pixels.
    time_chunk
        Scenes per chunk: one task reads ``time_chunk`` scenes (all bands) one after another
        (stackstac's time chunking), which keeps the graph small where many scenes overlap.
    skip_errors
        Read failures become no data instead of raising (stackstac ``errors_as_nodata``).

    Returns
    -------
    xarray.DataArray
        Dims ``(time, band, y, x)``, uint16 harmonised DN (reflectance * 10000; 0 = no data),
        10 m pixel-centre coordinates, CRS set (``.rio.crs``), coordinates ``id``,
        ``mgrs_tile``, ``boa_offset`` and ``observation`` along time. ``observation`` (int,
        ``0..n-1``, see :func:`observation_ids`) is shared by the scenes of one pass (e.g. two
        overlapping MGRS tiles), which :func:`composite` counts once.
    """
    epsg = _check_scenes(scenes, bands)
    if bounds is None:
        bounds = _union_bounds(_asset_bounds(s.item["assets"]["blue"]) for s in scenes)
    r = RESOLUTION_M
    bounds = (
        np.floor(bounds[0] / r) * r,
        np.floor(bounds[1] / r) * r,
        np.ceil(bounds[2] / r) * r,
        np.ceil(bounds[3] / r) * r,
    )
    raw = _stack(scenes, bands, epsg, bounds, (time_chunk, len(bands), chunk_px, chunk_px),
                 skip_errors)  # fmt: skip
    offsets = np.array([s.boa_offset for s in scenes], dtype=np.uint16)
    is_refl = np.array([b != MASK_BAND for b in bands])
    per_layer = offsets[:, None, None, None] * is_refl[None, :, None, None]
    data = da.map_blocks(
        _harmonise_block,
        raw.data,
        da.from_array(per_layer, chunks=(*raw.data.chunks[:2], 1, 1)),
        dtype=np.uint16,
    )
    cube = xr.DataArray(
        data,
        dims=("time", "band", "y", "x"),
        coords={
            "time": np.array([s.datetime.replace(tzinfo=None) for s in scenes], "datetime64[ns]"),
            "band": list(bands),
            "y": raw.y.values,
            "x": raw.x.values,
            "id": ("time", [s.id for s in scenes]),
            "mgrs_tile": ("time", [s.mgrs_tile for s in scenes]),
            "boa_offset": ("time", offsets.astype(np.int32)),
            "observation": ("time", observation_ids(scenes)),
        },
        name="reflectance",
        attrs={"units": "harmonised DN (reflectance * 10000)", "nodata": 0},
    )
    cube = cube.rio.write_crs(f"EPSG:{epsg}").rio.write_nodata(0)
    log.info("cube EPSG:%d: %d scenes, shape %s, %.1f MB",
             epsg, len(scenes), cube.shape, cube.nbytes / 1e6)  # fmt: skip
    return cube


def _check_scenes(scenes: Sequence[Scene], bands: Sequence[str]) -> int:
    """The one EPSG code of the scenes; ConfigError/GridMismatchError naming the fix otherwise."""
    if not scenes:
        raise ConfigError("load_cube needs at least one scene; search returned none")
    epsgs = sorted({s.epsg for s in scenes})
    if len(epsgs) > 1:
        raise GridMismatchError(
            f"scenes span several UTM zones (EPSG {epsgs}); load one cube per zone with "
            "plan_cubes() and merge them on the national grid (s2scale.pipeline does)"
        )
    unknown = [b for b in bands if b not in (*BANDS, MASK_BAND)]
    if unknown:
        raise ConfigError(f"unknown bands {unknown}; choose from {[*BANDS, MASK_BAND]}")
    return int(epsgs[0])


def _stack(
    scenes: Sequence[Scene],
    bands: Sequence[str],
    epsg: int,
    bounds: Bounds,
    chunks: tuple[int, int, int, int],
    skip_errors: bool,
) -> xr.DataArray:
    """One stackstac stack of all bands (SCL too, nearest onto the 10 m grid), raw DN."""
    import stackstac
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioIOError

    errors = (RasterioIOError("."), RuntimeError("."), OSError(".")) if skip_errors else ()
    raw = stackstac.stack(
        [s.item for s in scenes],
        assets=list(bands),
        resampling=Resampling.nearest,
        epsg=epsg,
        resolution=RESOLUTION_M,
        bounds=tuple(float(b) for b in bounds),
        snap_bounds=False,
        chunksize=chunks,
        dtype="uint16",
        fill_value=np.uint16(0),
        rescale=False,
        xy_coords="center",
        properties=False,
        band_coords=False,
        sortby_date=False,
        errors_as_nodata=errors,
    )
    return raw.reset_coords(drop=True)


def _harmonise_block(block: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Subtract the per-scene BOA offset; no data (0) stays 0, valid pixels stay >= 1."""
    valid = block > 0
    out = np.maximum(block.astype(np.int32) - offsets.astype(np.int32), 1)
    return np.where(valid, out, 0).astype(np.uint16)


def observation_ids(scenes: Sequence[Scene]) -> np.ndarray:
    """Number the passes of the scenes: one id per platform and solar day, by first appearance.

    Scenes of one orbit pass (e.g. overlapping MGRS tiles acquired together) are one observation
    of the ground. Two scenes share an id when their platforms (item property ``platform``,
    compared case-insensitively; scenes without it match each other) and their solar days agree.
    The solar day follows odc-stac's ``groupby="solar_day"``: the UTC acquisition time shifted by
    ``int(lon / 15)`` hours, ``lon`` being the longitude of the footprint centre (centroid of the
    item ``geometry``, else the ``bbox`` centre, else the UTM zone's central meridian), then its
    date.

    Parameters
    ----------
    scenes
        Normalised scenes (anything with ``.datetime`` (UTC), ``.item`` and ``.epsg``).

    Returns
    -------
    numpy.ndarray
        ``(len(scenes),)`` int64 observation ids ``0..n-1``, numbered by first appearance.

    Examples
    --------
    >>> from datetime import datetime
    >>> from types import SimpleNamespace
    >>> def scene(when, lon, platform="sentinel-2a"):
    ...     item = {"bbox": [lon, 47, lon, 48], "properties": {"platform": platform}}
    ...     return SimpleNamespace(datetime=datetime.fromisoformat(when), item=item, epsg=32633)
    >>> observation_ids([
    ...     scene("2024-07-01T10:00:00+00:00", 12.9),  # tile 32TQT
    ...     scene("2024-07-01T10:00:03+00:00", 13.4),  # tile 33TTN, same pass
    ...     scene("2024-07-04T10:10:00+00:00", 13.4),  # three days later
    ...     scene("2024-07-01T10:00:00+00:00", 13.4, "sentinel-2b"),  # other satellite
    ... ]).tolist()
    [0, 0, 1, 2]
    """
    ids: dict[tuple[str | None, date], int] = {}
    return np.array([ids.setdefault(_pass_key(s), len(ids)) for s in scenes], dtype=np.int64)


def _pass_key(scene: Scene) -> tuple[str | None, date]:
    """``(platform, solar day)`` of a scene; the scenes of one pass share it."""
    platform = (scene.item.get("properties") or {}).get("platform")
    shift = timedelta(hours=int(_centre_lon(scene) / 15))  # odc-stac: truncated to whole hours
    return (None if platform is None else str(platform).lower(), (scene.datetime + shift).date())


def _centre_lon(scene: Scene) -> float:
    """Longitude of the footprint centre: geometry centroid, bbox centre or zone meridian."""
    if scene.item.get("geometry"):
        return float(shape(scene.item["geometry"]).centroid.x)
    bbox = scene.item.get("bbox")
    if bbox:
        return (float(bbox[0]) + float(bbox[len(bbox) // 2])) / 2  # 2-D or 3-D bbox
    return (scene.epsg % 100) * 6 - 183.0


# ------------------------------------------------------------------------------------------- zarr
def write_cube(
    obj: xr.DataArray | xr.Dataset,
    store: str | Path,
    *,
    group: str | None = None,
    mode: str = "w-",
    progress: Callable[[Any], Any] | None = None,
) -> None:
    """Write a cube or composite to a Zarr v3 store, with CRS and transform for rioxarray.

    ``mode="w-"`` refuses to overwrite an existing store (or group); ``mode="w"`` replaces it.
    ``progress`` receives the delayed write and must compute it (e.g. with a progress bar).
    """
    ds = obj.to_dataset(name=obj.name or "reflectance") if isinstance(obj, xr.DataArray) else obj
    crs = ds.rio.crs
    if crs is None:
        raise GridMismatchError("cube has no CRS; set one with .rio.write_crs('EPSG:...')")
    ds = ds.rio.write_crs(crs).rio.write_transform(ds.rio.transform())
    # Fixed-width unicode has no stable Zarr v3 data type; variable-length strings do.
    for name, coord in ds.coords.items():
        if coord.dtype.kind == "U":
            ds = ds.assign_coords({name: coord.astype(object)})
    for name in list(ds.data_vars):
        if {"y", "x"} <= set(ds[name].dims):
            ds[name].encoding.pop("chunks", None)
            ds[name].encoding.pop("preferred_chunks", None)
    ds = ds.drop_encoding()
    target = Path(str(store)) / group if group else Path(str(store))
    if mode == "w-" and target.exists():
        raise ConfigError(f"Zarr store {str(target)!r} exists; choose another path or overwrite")
    delayed = ds.to_zarr(
        str(store), group=group, mode=mode, zarr_format=3, consolidated=False, compute=False
    )
    if progress is not None:
        progress(delayed)
    else:
        delayed.compute()


def read_cube(store: str | Path, *, group: str | None = None) -> xr.Dataset:
    """Open a store written by :func:`write_cube`; ``.rio.crs`` and ``.rio.transform()`` work."""
    if not str(store).startswith(("s3://", "gs://", "http")) and not Path(str(store)).exists():
        raise ReadError(f"Zarr store {str(store)!r} does not exist")
    return xr.open_zarr(
        str(store), group=group, zarr_format=3, consolidated=False, decode_coords="all"
    )
