"""A resumable Zarr v3 store of per-zone 10 m composites (the output of ``s2scale cube``).

Layout::

    store/zarr.json                      root group
    store/epsg326NN/reflectance          (band, y, x) uint16 harmonised DN, 0 = no data
    store/epsg326NN/clear_count          (y, x) uint16 clear observations
    store/epsg326NN/{x,y,band,spatial_ref}  coordinates and CRS (rioxarray reads them)
    store/_s2scale/                      attributes: the manifest (zones, chunks, fingerprint)
    store/_s2scale/done_epsg326NN        (block_y, block_x) uint8, one chunk per region

Every region (one Zarr chunk of one zone) is written once by its own task, which then marks it
done, as in :mod:`s2scale.mosaic.store`; a rerun computes only unmarked regions. Locations
(paths or fsspec URLs), the manifest, the overwrite rule and the done marks are those of
:mod:`s2scale.resumable`; the zones are :class:`s2scale.cube.Zone` records. ``s2scale upscale
--from-cube`` reads windows of these arrays instead of searching and compositing again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
import zarr

from s2scale import resumable
from s2scale.cube import Zone
from s2scale.errors import ReadError
from s2scale.sentinel2 import RESOLUTION_M

__all__ = ["CubeStore", "create_cube_store", "open_cube_store", "write_cube_region"]

log = logging.getLogger(__name__)

_FORMAT = "s2scale.cube/1"
_KIND = resumable.StoreKind(
    name="composite store", fix="pass --overwrite to replace it or use another --out"
)


@dataclass(frozen=True)
class CubeStore:
    """An opened composite store."""

    path: str
    """What zarr and xarray open: a local path or an fsspec URL."""
    zones: tuple[Zone, ...]
    """The zone arrays (zones without scenes)."""
    chunk_px: int
    """Region edge (10 m px)."""
    bands: tuple[str, ...]
    """Band names of ``reflectance``."""
    fingerprint: dict[str, Any]
    """What made the composites (catalog, masks)."""

    def done(self, zone: Zone) -> np.ndarray:
        """``(block_y, block_x)`` bool: regions of ``zone`` completely written."""
        return resumable.read_done(self.path, f"done_{zone.group}")

    def reflectance(self, zone: Zone) -> da.Array:
        """Lazy ``(band, y, x)`` uint16 of a zone, chunked as stored."""
        arr = zarr.open_array(self.path, path=f"{zone.group}/reflectance", mode="r")
        return da.from_zarr(arr)

    def open_zone(self, zone: Zone) -> xr.Dataset:
        """The zone's group as an xarray Dataset with its CRS and transform (rioxarray)."""
        ds = xr.open_zarr(
            self.path, group=zone.group, zarr_format=3, consolidated=False, decode_coords="all"
        )
        ds = ds.rio.write_crs(zone.crs).rio.write_transform(zone.transform)
        for name in ds.data_vars:
            ds[name] = ds[name].rio.write_crs(zone.crs).rio.write_transform(zone.transform)
        return ds


def _template(zone: Zone, bands: Sequence[str], chunk_px: int) -> xr.Dataset:
    """A lazy all-zero Dataset with the zone's coordinates (only its metadata is written)."""
    rows, cols = zone.shape
    minx, _, _, maxy = zone.bounds
    half = RESOLUTION_M / 2
    x = minx + half + RESOLUTION_M * np.arange(cols)
    y = maxy - half - RESOLUTION_M * np.arange(rows)
    refl = da.zeros(
        (len(bands), rows, cols), dtype=np.uint16, chunks=(len(bands), chunk_px, chunk_px)
    )
    count = da.zeros((rows, cols), dtype=np.uint16, chunks=(chunk_px, chunk_px))
    ds = xr.Dataset(
        {
            "reflectance": (("band", "y", "x"), refl, {"nodata": 0,
                            "units": "harmonised DN (reflectance * 10000)"}),
            "clear_count": (("y", "x"), count, {"long_name": "clear observations"}),
        },
        coords={"band": np.array(list(bands), dtype=object), "y": y, "x": x},
    )  # fmt: skip
    return ds.rio.write_crs(zone.crs).rio.write_transform(zone.transform)


def create_cube_store(
    path: str | Path,
    zones: Sequence[Zone],
    *,
    bands: Sequence[str],
    chunk_px: int,
    fingerprint: dict[str, Any],
    overwrite: bool = False,
) -> CubeStore:
    """Create the store (metadata only) or check that an existing one may be resumed.

    ``path`` is a local path or fsspec URL. Only the zones' ``epsg`` and ``bounds`` are stored.

    Raises
    ------
    GridMismatchError
        The path holds another store (other zones, chunks, bands or fingerprint) or something
        that is not a composite store, and ``overwrite`` is False; the message names what differs.
    """
    manifest = {
        "format": _FORMAT, "chunk_px": chunk_px, "bands": list(bands),
        "zones": [{"epsg": z.epsg, "bounds": list(z.bounds)} for z in zones],
        "fingerprint": fingerprint,
    }  # fmt: skip
    create = partial(_create, zones=zones, bands=bands, chunk_px=chunk_px)
    loc, _ = resumable.open_or_create(path, _KIND, manifest, create=create, overwrite=overwrite)
    return open_cube_store(loc.target)


def _create(
    loc: resumable.StoreLocation, zones: Sequence[Zone], bands: Sequence[str], chunk_px: int
) -> None:
    """Write the zones' groups (metadata only) and their empty done marks."""
    zarr.open_group(loc.target, mode="w", zarr_format=3)
    for zone in zones:
        ds = _template(zone, bands, chunk_px)
        gm = {"grid_mapping": "spatial_ref", "fill_value": 0}
        enc = {"reflectance": {"chunks": (len(bands), chunk_px, chunk_px), **gm,
                               "compressors": resumable.reflectance_compressors()},
               "clear_count": {"chunks": (chunk_px, chunk_px), **gm}}  # fmt: skip
        ds.to_zarr(loc.target, group=zone.group, mode="w", compute=False, zarr_format=3,
                   consolidated=False, encoding=enc)  # fmt: skip
    for zone in zones:
        rows, cols = zone.shape
        n_blocks = (-(-rows // chunk_px), -(-cols // chunk_px))
        resumable.create_done_grid(loc.target, f"done_{zone.group}", n_blocks)


def open_cube_store(path: str | Path) -> CubeStore:
    """Open a store written by ``s2scale cube`` (raises :class:`ReadError` if it is none)."""
    loc = resumable.resolve_store(path)
    if not loc.has("zarr.json"):
        raise ReadError(f"no composite store at {loc.shown!r}; write one with 's2scale cube --out'")
    m = resumable.read_manifest(loc.target, _KIND)
    if m.get("format") != _FORMAT:
        raise ReadError(
            f"{loc.shown!r} is not an s2scale composite store (no {_FORMAT} manifest); write one "
            "with 's2scale cube --out'"
        )
    zones = tuple(Zone(epsg=z["epsg"], bounds=tuple(z["bounds"])) for z in m["zones"])
    return CubeStore(path=loc.target, zones=zones, chunk_px=m["chunk_px"],
                     bands=tuple(m["bands"]), fingerprint=m["fingerprint"])  # fmt: skip


def write_cube_region(
    both: np.ndarray, *, path: str, group: str, window: tuple[int, int, int, int], chunk_px: int
) -> tuple[int, int, int, int]:
    """Task: write one region's ``(band + 1, y, x)`` (composite, then clear count), then mark it."""
    y0, y1, x0, x1 = window
    refl = zarr.open_array(path, path=f"{group}/reflectance", mode="r+")
    count = zarr.open_array(path, path=f"{group}/clear_count", mode="r+")
    refl[:, y0:y1, x0:x1] = both[:-1]
    count[y0:y1, x0:x1] = both[-1]
    resumable.mark_done(path, f"done_{group}", (y0 // chunk_px, x0 // chunk_px))
    return window
