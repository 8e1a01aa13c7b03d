"""The built-in sample (COGs + STAC items over a small AOI) and a national metadata-only catalog.

:func:`write_sample` simulates the Sentinel-2 tiles 32TQT and 33TTN around Woergl (Tyrol), which
straddle the 12 deg E boundary of UTM zones 32 and 33, on five summer 2024 dates and one 2021 date
(old baseline, no BOA offset). Only a window of each tile grid (the AOI plus about 1 km, on the
tile's 60 m lattice) is written; the items' ``proj:transform``/``proj:shape`` describe that window.
Items follow the Earth Search v1 ``sentinel-2-l2a`` shape (asset keys, ``raster:bands`` scale and
offset, ``earthsearch:boa_offset_applied``, ``mgrs:*``), but carry ``proj:code`` (projection v2).
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from urllib.parse import urljoin

import numpy as np
import shapely
from pyproj import Transformer
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping
from shapely.ops import transform as shapely_transform

from s2scale.grid import AOI, Bounds, MgrsTile, TargetGrid, resolve_aoi, tiles_for_aoi
from s2scale.sentinel2 import RESOLUTION_M, WAVELENGTHS_UM
from s2scale.sim.landscape import BANDS, WORLD_CRS, Landscape
from s2scale.sim.scenes import (
    PAD_5M,
    S2_PSF_SIGMA_M,
    SCL,
    TRUTH_PSF_SIGMA_M,
    SceneSpec,
    SimulatedScene,
    render_orthophoto,
    scene_layers,
    simulate_scene,
    tile_window,
    to_dn,
    write_cog,
)

__all__ = [
    "NATIONAL_BASE_HREF",
    "ORTHO_DATE_TAG",
    "SAMPLE_AOI",
    "SAMPLE_ORTHO_DATE",
    "SAMPLE_SCENES",
    "SampleInfo",
    "make_collection",
    "make_item",
    "national_items",
    "with_base_href",
    "write_sample",
]

log = logging.getLogger(__name__)

SAMPLE_AOI: Bounds = (11.97, 47.47, 12.03, 47.51)
"""Lon/lat bbox of the sample near Woergl, Tyrol, across the UTM 32/33 boundary."""
NATIONAL_BASE_HREF = "s3://s2scale-sample/sentinel-s2-l2a-cogs/"
"""Where the national catalog's (never written) pixels would live."""
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"

SAMPLE_SCENES: tuple[SceneSpec, ...] = (
    SceneSpec(datetime(2024, 6, 18, 10, 15, 59), "sentinel-2b", "05.10", 0.15, cirrus=0.8),
    SceneSpec(datetime(2024, 7, 8, 10, 15, 59), "sentinel-2b", "05.10", 0.0),
    SceneSpec(datetime(2024, 7, 13, 10, 15, 51), "sentinel-2a", "05.10", 0.8),
    SceneSpec(
        datetime(2024, 7, 28, 10, 15, 59), "sentinel-2b", "05.11", 0.1, swath_edge=(11.992, 47.49)
    ),
    SceneSpec(datetime(2024, 8, 12, 10, 15, 51), "sentinel-2a", "05.11", 0.35),
    SceneSpec(datetime(2021, 7, 14, 10, 15, 59), "sentinel-2b", "03.01", 0.15),
)
"""Cirrus day, nearly clear day, very cloudy day, no-data wedge, cloudy day, 2021 (no offset)."""

SAMPLE_ORTHO_DATE = date(2024, 7, 10)
"""Acquisition date of the sample's orthophoto (flown two days after the nearly clear scene)."""
ORTHO_DATE_TAG = "ACQUISITION_DATE"
"""GDAL metadata item with the orthophoto's acquisition date (read by :mod:`s2scale.pairs`)."""

_EXTENSIONS = [
    f"https://stac-extensions.github.io/{e}/schema.json"
    for e in (
        "view/v1.0.0",
        "projection/v2.0.0",
        "grid/v1.1.0",
        "sentinel-2/v1.0.0",
        "eo/v1.1.0",
        "processing/v1.1.0",
        "mgrs/v1.0.0",
        "raster/v1.1.0",
    )
]
_BANDS = WAVELENGTHS_UM  # asset key: (file, title, centre wavelength, FWHM)


@dataclass(frozen=True)
class SampleInfo:
    """What :func:`write_sample` wrote."""

    root: Path
    """The output folder."""
    catalog: Path
    """``catalog.json``: ItemCollection with hrefs relative to it."""
    collection: Path
    """``collection.json``: the STAC Collection."""
    manifest: Path
    """``sample.json``: seed, AOI, dates and everything made."""
    aoi: Bounds
    """Lon/lat bbox of the AOI."""
    dates: tuple[str, ...]
    """ISO dates of the scenes, sorted."""
    tiles: tuple[str, ...]
    """MGRS tiles."""
    item_ids: tuple[str, ...]
    """Ids of all items."""
    cogs: tuple[Path, ...] = ()
    """All S2 COGs (empty for the national catalog)."""
    orthophoto: Path | None = None
    """The EPSG:31287 orthophoto COG."""
    truth: tuple[Path, ...] = ()
    """5 m truth COGs, one per UTM zone."""
    seed: int = 0
    """Seed used."""
    national: bool = False
    """True for the metadata-only national catalog."""


def _item_id(tile: MgrsTile, spec: SceneSpec) -> str:
    return f"S2{spec.platform[-1].upper()}_{tile.name}_{spec.when:%Y%m%d}_0_L2A"


@lru_cache(maxsize=16)
def _transformer(src: int | str, dst: int | str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def _s3_path(base_href: str, tile: MgrsTile, spec: SceneSpec) -> str:
    """Earth Search's folder layout: ``<base>/<zone>/<band>/<square>/<year>/<month>/<id>``."""
    sq = f"{tile.zone}/{tile.latitude_band}/{tile.grid_square}"
    return f"{base_href.rstrip('/')}/{sq}/{spec.when.year}/{spec.when.month}/{_item_id(tile, spec)}"


def _asset_hrefs(prefix: str) -> dict[str, str]:
    """Hrefs of the five assets of an item whose files lie under ``prefix``."""
    return {k: f"{prefix}/{v[0]}.tif" for k, v in _BANDS.items()} | {"scl": f"{prefix}/SCL.tif"}


def _footprint(grid: TargetGrid) -> shapely.Polygon:
    poly = shapely.segmentize(box(*grid.bounds), 5_000.0)
    return shapely.set_precision(
        shapely_transform(_transformer(grid.crs, 4326).transform, poly), 1e-7
    )


def make_item(
    tile: MgrsTile,
    spec: SceneSpec,
    grid: TargetGrid,
    hrefs: dict[str, str],
    stats: dict[str, float],
) -> dict:
    """An Earth Search v1-shaped STAC item dict for one tile (window) and date.

    ``grid`` is the 10 m grid the assets cover, ``hrefs`` maps asset keys (blue, green, red, nir,
    scl) to hrefs and ``stats`` holds property values (``eo:cloud_cover``, ``view:sun_*``, ...).
    """
    geom = _footprint(grid)
    c = geom.centroid
    gen = spec.when + timedelta(hours=2, minutes=11, seconds=7)
    orbit = 22 if spec.when.toordinal() % 10 < 5 else 65
    uri = (
        f"S2{spec.platform[-1].upper()}_MSIL2A_{spec.when:%Y%m%dT%H%M%S}"
        f"_N{spec.baseline.replace('.', '')}_R{orbit:03d}_T{tile.name}_{gen:%Y%m%dT%H%M%S}.SAFE"
    )
    iid = _item_id(tile, spec)
    assets: dict[str, dict] = {}
    for key, (_, title, cw, fwhm) in _BANDS.items():
        assets[key] = {
            "href": hrefs[key],
            "type": COG_TYPE,
            "title": title,
            "eo:bands": [
                {
                    "name": _BANDS[key][0],
                    "common_name": key,
                    "center_wavelength": cw,
                    "full_width_half_max": fwhm,
                }
            ],
            "gsd": 10,
            "proj:shape": list(grid.shape),
            "proj:transform": list(grid.transform)[:6],
            "raster:bands": [
                {
                    "nodata": 0,
                    "data_type": "uint16",
                    "spatial_resolution": 10,
                    "scale": 0.0001,
                    "offset": -spec.offset / 10000,
                }
            ],
            "roles": ["data", "reflectance"],
        }
    g20 = TargetGrid(grid.crs, 20.0, grid.bounds)
    assets["scl"] = {
        "href": hrefs["scl"],
        "type": COG_TYPE,
        "title": "Scene classification map (SCL)",
        "gsd": 20,
        "proj:shape": list(g20.shape),
        "proj:transform": list(g20.transform)[:6],
        "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}],
        "roles": ["data"],
    }
    when = spec.when.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    props = {
        "created": f"{gen:%Y-%m-%dT%H:%M:%S}.000Z",
        "platform": spec.platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        **stats,
        "proj:code": f"EPSG:{tile.epsg}",
        "proj:centroid": {"lat": round(c.y, 5), "lon": round(c.x, 5)},
        "mgrs:utm_zone": tile.zone,
        "mgrs:latitude_band": tile.latitude_band,
        "mgrs:grid_square": tile.grid_square,
        "grid:code": f"MGRS-{tile.name}",
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": spec.baseline,
        "s2:product_uri": uri,
        "s2:generation_time": f"{gen:%Y-%m-%dT%H:%M:%S}.000000Z",
        "s2:sequence": "0",
        "datetime": when,
        "earthsearch:boa_offset_applied": spec.offset > 0,
        "earthsearch:s3_path": _s3_path(NATIONAL_BASE_HREF, tile, spec),
        "updated": f"{gen:%Y-%m-%dT%H:%M:%S}.000Z",
    }
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": _EXTENSIONS,
        "id": iid,
        "geometry": mapping(geom),
        "bbox": [round(v, 7) for v in geom.bounds],
        "properties": props,
        "links": [],
        "assets": assets,
        "collection": "sentinel-2-l2a",
    }


def _scene_stats(scene: SimulatedScene) -> dict[str, float]:
    """Item properties computed from the simulated SCL (percentages of the written window)."""
    return {
        "eo:cloud_cover": scene.percent(SCL["cloud_medium"], SCL["cloud_high"], SCL["cirrus"]),
        "view:sun_azimuth": round(scene.sun_azimuth, 6),
        "view:sun_elevation": round(scene.sun_elevation, 6),
        "s2:nodata_pixel_percentage": scene.percent(SCL["nodata"]),
        "s2:cloud_shadow_percentage": scene.percent(SCL["shadow"]),
        "s2:vegetation_percentage": scene.percent(SCL["vegetation"]),
        "s2:not_vegetated_percentage": scene.percent(SCL["not_vegetated"]),
        "s2:water_percentage": scene.percent(SCL["water"]),
        "s2:medium_proba_clouds_percentage": scene.percent(SCL["cloud_medium"]),
        "s2:high_proba_clouds_percentage": scene.percent(SCL["cloud_high"]),
        "s2:thin_cirrus_percentage": scene.percent(SCL["cirrus"]),
        "s2:snow_ice_percentage": 0.0,
    }


def national_items(
    *,
    seed: int = 0,
    start: date = date(2024, 6, 1),
    end: date = date(2024, 8, 31),
    step_days: int = 5,
    base_href: str = NATIONAL_BASE_HREF,
) -> list[dict]:
    """Metadata-only items for all 27 tiles of Austria every ``step_days`` (full 10980 px grids).

    Hrefs point to where the data would be (``base_href``); no pixels exist. Cloud cover, no-data
    share and sun angles are drawn from ``np.random.default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)
    tiles = tiles_for_aoi("austria")
    items = []
    day = start
    while day <= end:
        a = (day.toordinal() // step_days) % 2 == 0
        when = datetime(day.year, day.month, day.day, 10, 15, 59 if a else 51)
        spec = SceneSpec(
            when,
            "sentinel-2a" if a else "sentinel-2b",
            "05.10" if day < date(2024, 7, 23) else "05.11",
        )
        for tile in tiles:
            grid = TargetGrid(f"EPSG:{tile.epsg}", RESOLUTION_M, tile.bounds)
            hrefs = _asset_hrefs(_s3_path(base_href, tile, spec))
            cloud = float(np.round(100 * rng.beta(0.6, 1.2), 6))
            stats = {
                "eo:cloud_cover": cloud,
                "view:sun_azimuth": round(float(rng.uniform(145, 160)), 6),
                "view:sun_elevation": round(float(rng.uniform(50, 64)), 6),
                "s2:nodata_pixel_percentage": float(
                    np.round(rng.choice([0, 0, 0, rng.uniform(5, 80)]), 6)
                ),
            }
            items.append(make_item(tile, spec, grid, hrefs, stats))
        day += timedelta(days=step_days)
    return items


def make_collection(items: Sequence[dict]) -> dict:
    """A STAC Collection dict (``sentinel-2-l2a``) whose extent covers ``items``."""
    bbox = np.array([it["bbox"] for it in items])
    times = sorted(it["properties"]["datetime"] for it in items)
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": "sentinel-2-l2a",
        "title": "Sentinel-2 Level-2A (simulated by s2scale.sim)",
        "description": "Simulated Sentinel-2 L2A scenes shaped like Earth Search v1 items.",
        "license": "CC0-1.0",
        "keywords": ["sentinel-2", "simulated"],
        "providers": [{"name": "s2scale", "roles": ["producer", "processor"]}],
        "extent": {
            "spatial": {"bbox": [[*bbox[:, :2].min(0).tolist(), *bbox[:, 2:].max(0).tolist()]]},
            "temporal": {"interval": [[times[0], times[-1]]]},
        },
        "summaries": {
            "platform": sorted({it["properties"]["platform"] for it in items}),
            "constellation": ["sentinel-2"],
            "instruments": ["msi"],
            "gsd": [10, 20],
        },
        "links": [],
    }


def with_base_href(items: Sequence[dict], base_href: str) -> list[dict]:
    """Copies of ``items`` whose relative asset and link hrefs are made absolute against a base.

    ``base_href`` is a directory path or a URL such as ``http://127.0.0.1:8000/``; absolute
    hrefs (``s3://``, ``http://``, ``/...``) are kept.

    Examples
    --------
    >>> it = {"assets": {"blue": {"href": "cogs/a/B02.tif"}}, "links": []}
    >>> with_base_href([it], "http://127.0.0.1:8000")[0]["assets"]["blue"]["href"]
    'http://127.0.0.1:8000/cogs/a/B02.tif'
    """

    def join(href: str) -> str:
        if "://" in href or href.startswith("/"):
            return href
        if "://" in base_href:
            return urljoin(base_href.rstrip("/") + "/", href)
        return os.path.join(base_href, href)

    out = []
    for item in items:
        new = copy.deepcopy(item)
        for asset in new.get("assets", {}).values():
            asset["href"] = join(asset["href"])
        for link in new.get("links", []):
            link["href"] = join(link["href"])
        out.append(new)
    return out


def _write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj, indent=1) + "\n")
    return path


def write_sample(
    out_dir: str | Path,
    *,
    seed: int = 0,
    national: bool = False,
    aoi: AOI = SAMPLE_AOI,
    margin_m: float = 1000.0,
    scenes: Sequence[SceneSpec] = SAMPLE_SCENES,
    ortho_size_m: tuple[float, float] = (1600.0, 1200.0),
    ortho_date: date = SAMPLE_ORTHO_DATE,
) -> SampleInfo:
    """Write the sample: COGs, STAC catalog and collection, orthophoto, 5 m truth and a manifest.

    Parameters
    ----------
    out_dir
        Output folder (created). Layout: ``catalog.json`` (ItemCollection, asset hrefs relative to
        it, e.g. ``cogs/S2B_33TTN_20240708_0_L2A/B02.tif``), ``collection.json``,
        ``cogs/<item id>/{B02,B03,B04,B08,SCL}.tif``, ``orthophoto/ortho_31287.tif`` (R, G, B,
        NIR uint8, 1 m, EPSG:31287, acquisition date in its metadata),
        ``truth/truth_5m_epsg326NN.tif`` (B02, B03, B04, B08 uint16 harmonised DN = reflectance *
        10000, 5 m, nested in the 10 m pixels) and ``sample.json``.
    seed
        Seed of the landscape, clouds and noise; the same seed gives byte-identical files.
    national
        Write only a metadata catalog of all of Austria (:func:`national_items`), no pixels.
    aoi, margin_m, scenes, ortho_size_m
        The area (lon/lat), the margin around it (m), the acquisitions and the orthophoto size
        ``(width, height)`` in metres; the defaults make the built-in sample, smaller values
        make quick test fixtures.
    ortho_date
        Acquisition date written into the orthophoto's metadata (:data:`ORTHO_DATE_TAG`).

    Returns
    -------
    SampleInfo
        Paths and what was made.
    """
    root = Path(out_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    bbox: Bounds = resolve_aoi("austria" if national else aoi).bounds
    if national:
        items = national_items(seed=seed)
        cogs: list[Path] = []
        truth: list[Path] = []
        ortho = None
        tiles = sorted({it["properties"]["grid:code"][5:] for it in items})
    else:
        landscape = Landscape(seed=seed)
        tiles = [t.name for t in tiles_for_aoi(aoi)]
        items, cogs, truth = _write_scenes(root, landscape, aoi, margin_m, scenes, seed)
        ortho = _write_orthophoto(root, landscape, bbox, ortho_size_m, seed, ortho_date)
    items.sort(key=lambda it: (it["properties"]["datetime"], it["id"]))
    _write_json(root / "catalog.json", {"type": "FeatureCollection", "features": items})
    _write_json(root / "collection.json", make_collection(items))
    dates = tuple(sorted({it["properties"]["datetime"][:10] for it in items}))
    manifest = {
        "generator": "s2scale.sim.write_sample",
        "seed": seed,
        "national": national,
        "aoi": "austria" if national else list(bbox),
        "margin_m": None if national else margin_m,
        "dates": dates,
        "tiles": tiles,
        "items": [it["id"] for it in items],
        "eo:cloud_cover": {it["id"]: it["properties"]["eo:cloud_cover"] for it in items},
        "hrefs": NATIONAL_BASE_HREF if national else "relative to catalog.json",
        "dn": {"scale": 1e-4, "nodata": 0, "boa_add_offset": 1000, "offset_from_baseline": "04.00"},
        "psf_sigma_m": {"s2_10m": S2_PSF_SIGMA_M, "truth_5m": TRUTH_PSF_SIGMA_M},
        "truth": [p.relative_to(root).as_posix() for p in truth],
        "orthophoto": None if ortho is None else ortho.relative_to(root).as_posix(),
        "orthophoto_date": None if ortho is None else ortho_date.isoformat(),
    }
    _write_json(root / "sample.json", manifest)
    return SampleInfo(
        root=root,
        catalog=root / "catalog.json",
        collection=root / "collection.json",
        manifest=root / "sample.json",
        aoi=tuple(float(v) for v in bbox),  # type: ignore[arg-type]
        dates=dates,
        tiles=tuple(tiles),
        item_ids=tuple(it["id"] for it in items),
        cogs=tuple(cogs),
        orthophoto=ortho,
        truth=tuple(truth),
        seed=seed,
        national=national,
    )


def _write_scenes(
    root: Path,
    landscape: Landscape,
    aoi: AOI,
    margin_m: float,
    scenes: Sequence[SceneSpec],
    seed: int,
) -> tuple[list[dict], list[Path], list[Path]]:
    """Simulate and write every tile window on every date, and the 5 m truth per window."""
    windows = [(t, tile_window(t, aoi, margin_m)) for t in tiles_for_aoi(aoi)]
    # One fine raster for every window (5 m grids plus the PSF margin), reused by all renders.
    grow = np.array([-1.0, -1.0, 1.0, 1.0]) * (PAD_5M * 5.0 + 20.0)
    need = np.array([transform_bounds(g.crs, WORLD_CRS, *(g.bounds + grow)) for _, g in windows])
    fine = landscape.rasterize((*need[:, :2].min(0), *need[:, 2:].max(0)), 2.5)
    items, cogs, truth = [], [], []
    for tile, grid in windows:
        layers = scene_layers(landscape, grid, fine=fine)
        g5, g20 = (TargetGrid(grid.crs, r, grid.bounds) for r in (5.0, 20.0))
        path = root / "truth" / f"truth_5m_epsg{tile.epsg}.tif"
        truth.append(
            write_cog(
                path,
                to_dn(layers.truth()),
                crs=grid.crs,
                transform=g5.transform,
                descriptions=BANDS,
            )
        )
        for spec in scenes:
            scene = simulate_scene(landscape, grid, spec, seed=seed, layers=layers)
            hrefs = _asset_hrefs(f"cogs/{_item_id(tile, spec)}")
            for key, arr in scene.bands.items():
                cogs.append(
                    write_cog(root / hrefs[key], arr, crs=grid.crs, transform=grid.transform)
                )
            cogs.append(
                write_cog(
                    root / hrefs["scl"],
                    scene.scl,
                    crs=grid.crs,
                    transform=g20.transform,
                    resampling="nearest",
                )
            )
            items.append(make_item(tile, spec, grid, hrefs, _scene_stats(scene)))
            log.debug("sample: wrote %s", hrefs["scl"])
    return items, cogs, truth


def _write_orthophoto(
    root: Path,
    landscape: Landscape,
    bbox: Bounds,
    size_m: tuple[float, float],
    seed: int,
    acquired: date = SAMPLE_ORTHO_DATE,
) -> Path:
    """Render and write the 1 m EPSG:31287 orthophoto (R, G, B, NIR) centred on the AOI.

    A COG like :func:`~s2scale.sim.scenes.write_cog` writes, whose GDAL metadata carries the
    acquisition date (:data:`ORTHO_DATE_TAG` and ``TIFFTAG_DATETIME``).
    """
    import rasterio

    cx, cy = _transformer(4326, 31287).transform((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2)
    x0, y0 = round(cx - size_m[0] / 2), round(cy - size_m[1] / 2)
    grid = TargetGrid("EPSG:31287", 1.0, (x0, y0, x0 + round(size_m[0]), y0 + round(size_m[1])))
    img = render_orthophoto(landscape, grid, seed=seed)
    path = root / "orthophoto" / "ortho_31287.tif"
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(
        driver="COG", width=img.shape[2], height=img.shape[1], count=img.shape[0],
        dtype=img.dtype, crs=grid.crs, transform=grid.transform, nodata=None,
        compress="DEFLATE", predictor=2, blocksize=256, overview_resampling="average",
        overviews="AUTO", bigtiff="NO",
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(img)
        for i, name in enumerate(("red", "green", "blue", "nir"), start=1):
            dst.set_band_description(i, name)
        dst.update_tags(
            **{ORTHO_DATE_TAG: acquired.isoformat()},
            TIFFTAG_DATETIME=f"{acquired:%Y:%m:%d} 00:00:00",
        )
    return path
