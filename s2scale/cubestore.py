"""A resumable Zarr v3 store of per-zone 10 m composites (the output of ``s2scale cube``).

Layout::

    store/zarr.json                      root group
    store/epsg326NN/reflectance          (band, y, x) uint16 harmonised DN, 0 = no data
    store/epsg326NN/clear_count          (y, x) uint16 clear observations
    store/epsg326NN/{x,y,band,spatial_ref}  coordinates and CRS (rioxarray reads them)
    store/_s2scale/                      attributes: the manifest (zones, chunks, fingerprint)
    store/_s2scale/done_epsg326NN        (block_y, block_x) uint8, one chunk per region

Every region (one Zarr chunk of one zone) is written once by its own task, which then marks it
done, as in :mod:`s2scale.mosaic.store`; a rerun computes only unmarked regions. ``s2scale upscale
--from-cube`` reads windows of these arrays instead of searching and compositing again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
import zarr
from affine import Affine

from s2scale.config import diff_entries
from s2scale.errors import GridMismatchError, ReadError
from s2scale.grid import Bounds
from s2scale.sentinel2 import RESOLUTION_M

__all__ = ["CubeStore", "ZoneSpec", "create_cube_store", "open_cube_store", "write_cube_region"]

log = logging.getLogger(__name__)

_FORMAT = "s2scale.cube/1"
_META = "_s2scale"


@dataclass(frozen=True)
class ZoneSpec:
    """One zone's composite array in the store."""

    epsg: int
    """The zone's CRS."""
    bounds: Bounds
    """Outer edges in the zone's CRS (10 m lattice)."""

    @property
    def group(self) -> str:
        """Zarr group name, ``epsg326NN``."""
        return f"epsg{self.epsg}"

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``."""
        minx, miny, maxx, maxy = self.bounds
        return round((maxy - miny) / RESOLUTION_M), round((maxx - minx) / RESOLUTION_M)


@dataclass(frozen=True)
class CubeStore:
    """An opened composite store."""

    path: str
    """Store location."""
    zones: tuple[ZoneSpec, ...]
    """The zone arrays."""
    chunk_px: int
    """Region edge (10 m px)."""
    bands: tuple[str, ...]
    """Band names of ``reflectance``."""
    fingerprint: dict[str, Any]
    """What made the composites (catalog, masks)."""

    def done(self, zone: ZoneSpec) -> np.ndarray:
        """``(block_y, block_x)`` bool: regions of ``zone`` completely written."""
        arr = zarr.open_array(self.path, path=f"{_META}/done_{zone.group}", mode="r")
        return np.asarray(arr[...]).astype(bool)

    def reflectance(self, zone: ZoneSpec) -> da.Array:
        """Lazy ``(band, y, x)`` uint16 of a zone, chunked as stored."""
        arr = zarr.open_array(self.path, path=f"{zone.group}/reflectance", mode="r")
        return da.from_zarr(arr)

    def open_zone(self, zone: ZoneSpec) -> xr.Dataset:
        """The zone's group as an xarray Dataset with its CRS and transform (rioxarray)."""
        ds = xr.open_zarr(
            self.path, group=zone.group, zarr_format=3, consolidated=False, decode_coords="all"
        )
        minx, _, _, maxy = zone.bounds
        transform = Affine(RESOLUTION_M, 0, minx, 0, -RESOLUTION_M, maxy)
        ds = ds.rio.write_crs(f"EPSG:{zone.epsg}").rio.write_transform(transform)
        for name in ds.data_vars:
            ds[name] = ds[name].rio.write_crs(f"EPSG:{zone.epsg}").rio.write_transform(transform)
        return ds


def _template(zone: ZoneSpec, bands: Sequence[str], chunk_px: int) -> xr.Dataset:
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
    transform = Affine(RESOLUTION_M, 0, minx, 0, -RESOLUTION_M, maxy)
    return ds.rio.write_crs(f"EPSG:{zone.epsg}").rio.write_transform(transform)


def create_cube_store(
    path: str | Path,
    zones: Sequence[ZoneSpec],
    *,
    bands: Sequence[str],
    chunk_px: int,
    fingerprint: dict[str, Any],
    overwrite: bool = False,
) -> CubeStore:
    """Create the store (metadata only) or check that an existing one may be resumed.

    Raises
    ------
    GridMismatchError
        The path holds another store (other zones, chunks, bands or fingerprint) or something
        that is not a composite store, and ``overwrite`` is False; the message names what differs.
    """
    path = str(path)
    manifest = json.loads(json.dumps({
        "format": _FORMAT, "chunk_px": chunk_px, "bands": list(bands),
        "zones": [{"epsg": z.epsg, "bounds": list(z.bounds)} for z in zones],
        "fingerprint": fingerprint,
    }, sort_keys=True))  # fmt: skip
    root = Path(path)
    if (root / "zarr.json").exists() and not overwrite:
        stored = _read_manifest(path)
        if stored.get("format") != _FORMAT:
            raise GridMismatchError(
                f"{path!r} is a Zarr store but not an s2scale composite store; choose another "
                "--out or pass --overwrite to replace it"
            )
        diffs = diff_entries(stored, manifest)
        if diffs:
            raise GridMismatchError(
                f"composite store {path!r} was made with another configuration "
                f"({'; '.join(diffs)}); pass --overwrite to replace it or use another --out"
            )
        return open_cube_store(path)
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise GridMismatchError(
            f"{path!r} exists and is not a Zarr store; choose another --out or pass --overwrite"
        )
    if root.exists() and overwrite:
        import shutil

        shutil.rmtree(root)
    zarr.open_group(path, mode="w", zarr_format=3)
    for zone in zones:
        ds = _template(zone, bands, chunk_px)
        gm = {"grid_mapping": "spatial_ref", "fill_value": 0}
        enc = {"reflectance": {"chunks": (len(bands), chunk_px, chunk_px), **gm},
               "clear_count": {"chunks": (chunk_px, chunk_px), **gm}}  # fmt: skip
        ds.to_zarr(path, group=zone.group, mode="w", compute=False, zarr_format=3,
                   consolidated=False, encoding=enc)  # fmt: skip
    meta = zarr.open_group(path, path=_META, mode="w", zarr_format=3)
    for zone in zones:
        rows, cols = zone.shape
        meta.create_array(
            f"done_{zone.group}", shape=(-(-rows // chunk_px), -(-cols // chunk_px)),
            chunks=(1, 1), dtype="uint8", fill_value=0, dimension_names=("block_y", "block_x"),
        )  # fmt: skip
    meta.attrs.update(manifest)
    return open_cube_store(path)


def _read_manifest(path: str) -> dict[str, Any]:
    try:
        return dict(zarr.open_group(path, path=_META, mode="r").attrs)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return {}


def open_cube_store(path: str | Path) -> CubeStore:
    """Open a store written by ``s2scale cube`` (raises :class:`ReadError` if it is none)."""
    path = str(path)
    if not (Path(path) / "zarr.json").exists():
        raise ReadError(f"no composite store at {path!r}; write one with 's2scale cube --out'")
    m = _read_manifest(path)
    if m.get("format") != _FORMAT:
        raise ReadError(
            f"{path!r} is not an s2scale composite store (no {_FORMAT} manifest); write one "
            "with 's2scale cube --out'"
        )
    zones = tuple(ZoneSpec(epsg=z["epsg"], bounds=tuple(z["bounds"])) for z in m["zones"])
    return CubeStore(path=path, zones=zones, chunk_px=m["chunk_px"], bands=tuple(m["bands"]),
                     fingerprint=m["fingerprint"])  # fmt: skip


def write_cube_region(
    both: np.ndarray, *, path: str, group: str, window: tuple[int, int, int, int], chunk_px: int
) -> tuple[int, int, int, int]:
    """Task: write one region's ``(band + 1, y, x)`` (composite, then clear count), then mark it."""
    y0, y1, x0, x1 = window
    refl = zarr.open_array(path, path=f"{group}/reflectance", mode="r+")
    count = zarr.open_array(path, path=f"{group}/clear_count", mode="r+")
    refl[:, y0:y1, x0:x1] = both[:-1]
    count[y0:y1, x0:x1] = both[-1]
    done = zarr.open_array(path, path=f"{_META}/done_{group}", mode="r+")
    done[y0 // chunk_px, x0 // chunk_px] = 1
    return window
