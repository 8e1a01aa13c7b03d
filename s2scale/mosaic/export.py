"""Files for other tools: Cloud-Optimised GeoTIFFs, STAC metadata and quicklook PNGs."""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
import rasterio.shutil
import xarray as xr
from rasterio.windows import Window

from s2scale import __version__
from s2scale.errors import ConfigError, GridMismatchError
from s2scale.grid import Bounds, TargetGrid
from s2scale.mosaic.store import open_mosaic

__all__ = ["export_cog", "quicklook", "write_stac"]

log = logging.getLogger(__name__)

SCALE = 0.0001
"""DN -> reflectance (harmonised DN = reflectance * 10000, offset 0)."""
COG_BLOCK_PX = 512
_WRITE_BLOCK_PX = 2048
# Sentinel-2 10 m bands by asset key (Earth Search v1 names and band ids): (common name, um, fwhm).
_EO_BANDS: dict[str, tuple[str, float, float]] = {
    "blue": ("blue", 0.49, 0.098),
    "green": ("green", 0.56, 0.045),
    "red": ("red", 0.665, 0.038),
    "nir": ("nir", 0.842, 0.145),
}
_EO_BANDS.update({"B02": _EO_BANDS["blue"], "B03": _EO_BANDS["green"]})
_EO_BANDS.update({"B04": _EO_BANDS["red"], "B08": _EO_BANDS["nir"]})
_PROCESSING_EXT = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"


# ------------------------------------------------------------------------------------------- COG
def export_cog(
    store_or_da: str | Path | xr.DataArray | xr.Dataset,
    path: str | Path,
    *,
    bounds: Bounds | None = None,
    overviews: bool = True,
) -> Path:
    """Write the mosaic, or a window of it, as a Cloud-Optimised GeoTIFF.

    The mosaic is read and written in blocks of 2048 px into a temporary tiled GeoTIFF beside
    ``path`` (memory stays bounded for a national mosaic), then copied with GDAL's COG driver:
    512 px internal tiles, DEFLATE with horizontal predictor 2, average overviews, nodata 0, band
    descriptions = band names, scale 0.0001 and offset 0 (DN -> reflectance).

    Parameters
    ----------
    store_or_da
        A store written by :func:`~s2scale.mosaic.write_mosaic` (path or URL), its Dataset, or a
        ``(band, y, x)`` uint16 DataArray with a rioxarray CRS.
    path
        Output ``.tif`` (local path).
    bounds
        ``(minx, miny, maxx, maxy)`` in the mosaic's CRS; pixels whose centres fall inside are
        written. Default: everything.
    overviews
        Build internal overviews (``OVERVIEWS=AUTO``: halvings until smaller than one tile).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    arr = _coerce_raster(store_or_da)
    if bounds is not None:
        arr = _select_bounds(arr, bounds)
    crs = arr.rio.crs
    transform = arr.rio.transform()
    n_bands, rows, cols = arr.shape
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.tif")
    names = [str(b) for b in arr["band"].values] if "band" in arr.coords else []
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": n_bands,
        "dtype": "uint16",
        "crs": crs,
        "transform": transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": COG_BLOCK_PX,
        "blockysize": COG_BLOCK_PX,
        "compress": "deflate",
        "predictor": 2,
        "zlevel": 1,
        "bigtiff": "IF_SAFER",
    }
    # Two steps on purpose: GDAL's COG driver has CreateCopy() only, no Create(), so a raster
    # produced block by block needs a source dataset to copy from. rasterio's "COG" write mode
    # buffers the whole raster in memory for that (a national mosaic does not fit), and
    # rio-cogeo's cog_translate makes the same intermediate GTiff around the same GDAL call.
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            for r0 in range(0, rows, _WRITE_BLOCK_PX):
                for c0 in range(0, cols, _WRITE_BLOCK_PX):
                    r1, c1 = min(r0 + _WRITE_BLOCK_PX, rows), min(c0 + _WRITE_BLOCK_PX, cols)
                    block = np.asarray(arr[:, r0:r1, c0:c1].values, dtype=np.uint16)
                    dst.write(block, window=Window(c0, r0, c1 - c0, r1 - r0))
            for i in range(n_bands):
                if i < len(names):
                    dst.set_band_description(i + 1, names[i])
            dst.scales = (SCALE,) * n_bands
            dst.offsets = (0.0,) * n_bands
        rasterio.shutil.copy(
            tmp,
            path,
            driver="COG",
            BLOCKSIZE=COG_BLOCK_PX,
            COMPRESS="DEFLATE",
            PREDICTOR="2",
            OVERVIEWS="AUTO" if overviews else "NONE",
            OVERVIEW_RESAMPLING="AVERAGE",
            BIGTIFF="IF_SAFER",
        )
    finally:
        if tmp.exists():
            tmp.unlink()
    log.info("export_cog: %s (%d bands, %dx%d px)", path, n_bands, rows, cols)
    return path


def _coerce_raster(obj: str | Path | xr.DataArray | xr.Dataset) -> xr.DataArray:
    """The ``(band, y, x)`` array to export, with a CRS."""
    if isinstance(obj, str | Path | os.PathLike):
        obj = open_mosaic(obj)
    if isinstance(obj, xr.Dataset):
        if "reflectance" not in obj:
            raise GridMismatchError(f"dataset has no 'reflectance' variable: {list(obj.data_vars)}")
        obj = obj["reflectance"]
    if tuple(obj.dims) != ("band", "y", "x"):
        raise GridMismatchError(f"expected dims ('band', 'y', 'x'), got {tuple(obj.dims)}")
    if obj.rio.crs is None:
        raise GridMismatchError("the mosaic has no CRS; set it with .rio.write_crs('EPSG:...')")
    return obj


def _select_bounds(arr: xr.DataArray, bounds: Bounds) -> xr.DataArray:
    """Pixels whose centres lie within ``bounds``."""
    minx, miny, maxx, maxy = bounds
    x, y = arr["x"].values, arr["y"].values
    cols = np.flatnonzero((x >= minx) & (x <= maxx))
    rows = np.flatnonzero((y >= miny) & (y <= maxy))
    if not cols.size or not rows.size:
        raise ConfigError(
            f"bounds {bounds} do not overlap the mosaic "
            f"({x.min():.0f}..{x.max():.0f}, {y.min():.0f}..{y.max():.0f} in {arr.rio.crs})"
        )
    return arr.isel(y=slice(rows[0], rows[-1] + 1), x=slice(cols[0], cols[-1] + 1))


# ------------------------------------------------------------------------------------------ STAC
def write_stac(
    out_dir: str | Path,
    *,
    cogs: Sequence[str | Path],
    grid: TargetGrid,
    properties: Mapping[str, Any],
    collection_id: str = "s2scale-mosaic",
    description: str = "Sentinel-2 10 m bands super-resolved to 5 m (s2scale)",
) -> Path:
    """Describe COGs with a self-contained STAC Collection, one Item per COG.

    Items carry ``proj:code``/``proj:bbox``/``proj:shape``/``proj:transform`` (projection v2.0),
    ``gsd``, ``eo:bands`` and ``raster:bands`` (``scale`` 0.0001, ``offset`` 0, nodata 0) on the
    asset, ``processing:software`` and the datetime range; all links and hrefs are relative.

    Parameters
    ----------
    out_dir
        Folder for ``collection.json`` and ``<item id>/<item id>.json``.
    cogs
        COG files (e.g. from :func:`export_cog`); item ids are their file stems.
    grid
        The mosaic grid (``gsd`` and collection summaries).
    properties
        Extra item properties; must give the time range as ``start_datetime`` and
        ``end_datetime`` (ISO 8601) or ``datetime`` as ``"START/END"``.

    Returns
    -------
    pathlib.Path
        The ``collection.json``. Items are checked with ``pystac.Item.from_dict``; the collection
        is validated against the STAC core schemas (offline) where ``jsonschema`` is installed.
    """
    if not cogs:
        raise ConfigError("cogs is empty; export at least one COG first")
    out_dir = Path(out_dir).resolve()
    props = dict(properties)
    start, end = _time_range(props)
    items = [_item(Path(c).resolve(), grid, props, start, end) for c in cogs]
    bboxes = np.array([i.bbox for i in items])
    extent = pystac.Extent(
        pystac.SpatialExtent(
            [[*map(float, bboxes[:, :2].min(axis=0)), *map(float, bboxes[:, 2:].max(axis=0))]]
        ),
        pystac.TemporalExtent([[start, end]]),
    )
    collection = pystac.Collection(
        id=collection_id,
        description=description,
        extent=extent,
        license="proprietary",
        summaries=pystac.Summaries({"gsd": [grid.resolution_m], "proj:code": [grid.crs]}),
    )
    collection.add_items(items)
    collection.normalize_hrefs(str(out_dir))
    collection.make_all_asset_hrefs_relative()
    for item in items:
        pystac.Item.from_dict(item.to_dict())
    collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    _validate(collection)
    path = out_dir / "collection.json"
    log.info("write_stac: %s (%d items)", path, len(items))
    return path


def _time_range(props: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    """Start and end datetimes from the properties (``datetime`` interval moved out)."""
    if "datetime" in props and isinstance(props["datetime"], str) and "/" in props["datetime"]:
        props["start_datetime"], props["end_datetime"] = props.pop("datetime").split("/")
    try:
        start = pystac.utils.str_to_datetime(str(props.pop("start_datetime")))
        end = pystac.utils.str_to_datetime(str(props.pop("end_datetime")))
    except (KeyError, ValueError) as err:
        raise ConfigError(
            "properties need the time range: start_datetime and end_datetime (ISO 8601) or "
            f"datetime='START/END'; got {sorted(props)}"
        ) from err
    return start, end


def _item(
    cog: Path, grid: TargetGrid, props: dict, start: dt.datetime, end: dt.datetime
) -> pystac.Item:
    """One STAC Item describing one COG."""
    from rasterio.warp import transform_bounds, transform_geom
    from shapely.geometry import box, mapping, shape

    with rasterio.open(cog) as src:
        crs, t, rows, cols = src.crs, src.transform, src.height, src.width
        bounds, names, dtype = tuple(src.bounds), src.descriptions, src.dtypes[0]
        scales, offsets, nodata = src.scales, src.offsets, src.nodata
    geom = transform_geom(crs, "EPSG:4326", mapping(box(*bounds)), precision=7)
    bbox = [float(v) for v in transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21)]
    epsg = crs.to_epsg()
    item = pystac.Item(
        id=cog.stem,
        geometry=mapping(shape(geom)),
        bbox=bbox,
        datetime=None,
        start_datetime=start,
        end_datetime=end,
        properties={
            **props,
            "gsd": grid.resolution_m,
            "proj:code": f"EPSG:{epsg}" if epsg else None,
            "proj:bbox": [float(v) for v in bounds],
            "proj:shape": [rows, cols],
            "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
            "processing:software": {"s2scale": __version__},
        },
    )
    eo_bands, raster_bands = [], []
    for i, name in enumerate(names):
        label = name or f"band{i + 1}"
        common, centre, fwhm = _EO_BANDS.get(label, (None, None, None))
        eo_bands.append(
            {"name": label}
            | ({"common_name": common, "center_wavelength": centre} if common else {})
            | ({"full_width_half_max": fwhm} if fwhm else {})
        )
        raster_bands.append(
            {
                "nodata": nodata if nodata is not None else 0,
                "data_type": dtype,
                "scale": scales[i] if scales[i] and not math.isnan(scales[i]) else SCALE,
                "offset": offsets[i] or 0.0,
                "spatial_resolution": grid.resolution_m,
            }
        )
    item.add_asset(
        "reflectance",
        pystac.Asset(
            href=str(cog),
            media_type=pystac.MediaType.COG,
            roles=["data"],
            title="Surface reflectance x 10000 (5 m)",
            extra_fields={"eo:bands": eo_bands, "raster:bands": raster_bands},
        ),
    )
    from pystac.extensions.eo import EOExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import RasterExtension

    item.stac_extensions = sorted(
        {
            ProjectionExtension.get_schema_uri(),
            RasterExtension.get_schema_uri(),
            EOExtension.get_schema_uri(),
            _PROCESSING_EXT,
        }
    )
    return item


def _validate(collection: pystac.Collection) -> None:
    """Validate every object against the STAC core JSON schemas that ship with pystac (offline).

    Extension schemas (proj, raster, eo, processing) are not shipped and would be fetched over the
    network, so they are not checked here; ``pystac.Item.from_dict`` has read each item back.
    """
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        log.debug("jsonschema not installed; STAC schema validation skipped")
        return
    from pystac.validation import validate_dict

    for obj in (collection, *collection.get_items(recursive=True)):
        validate_dict(obj.to_dict(), extensions=[], href=obj.get_self_href())


# ------------------------------------------------------------------------------------- quicklook
def quicklook(
    panels: Sequence[tuple[str, np.ndarray]],
    path: str | Path,
    *,
    stretch: tuple[float, float] = (0, 2000),
) -> Path:
    """Side-by-side RGB PNG of several images, each under a title.

    Parameters
    ----------
    panels
        ``(title, rgb)`` pairs; ``rgb`` is ``(3, y, x)`` uint16 DN (red, green, blue order),
        0 = no data (drawn black).
    path
        Output ``.png``.
    stretch
        DN mapped to black and white (linear, clipped).

    Returns
    -------
    pathlib.Path
        ``path``; the image is ``sum(widths) + 4 * (n - 1)`` px wide and ``max(heights) + 20``
        px high (a 20 px title bar, 4 px gaps).
    """
    from PIL import Image, ImageDraw

    if not panels:
        raise ConfigError("quicklook needs at least one (title, rgb) panel")
    lo, hi = stretch
    if not hi > lo:
        raise ConfigError(f"stretch={stretch} must be (low, high) with high > low")
    for title, rgb in panels:
        if np.ndim(rgb) != 3 or np.shape(rgb)[0] != 3:
            raise ConfigError(f"panel {title!r} has shape {np.shape(rgb)}; expected (3, y, x)")
    title_px, gap_px = 20, 4
    widths = [p[1].shape[2] for p in panels]
    height = max(p[1].shape[1] for p in panels) + title_px
    canvas = Image.new("RGB", (sum(widths) + gap_px * (len(panels) - 1), height), "white")
    draw = ImageDraw.Draw(canvas)
    x0 = 0
    for (title, rgb), width in zip(panels, widths, strict=True):
        scaled = (np.asarray(rgb, dtype=np.float32) - lo) * (255.0 / (hi - lo))
        img = np.clip(scaled, 0, 255).astype(np.uint8).transpose(1, 2, 0)
        canvas.paste(Image.fromarray(np.ascontiguousarray(img), "RGB"), (x0, title_px))
        draw.text((x0 + 2, 3), str(title), fill="black")
        x0 += width + gap_px
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
