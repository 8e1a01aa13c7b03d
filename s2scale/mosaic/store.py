"""Resumable Zarr v3 output of a mosaic: one write per region, a run manifest, crash-safe reruns.

Store layout::

    store/zarr.json                  root group
    store/reflectance/               (band, y, x) uint16, chunks = regions, fill 0 = no data
    store/x, store/y, store/band     pixel-centre coordinates and band names
    store/spatial_ref                CRS (rioxarray), so ``open_mosaic(store).rio.crs`` works
    store/_s2scale/zarr.json         group whose attributes are the run manifest (grid, chunks,
                                     bands, config fingerprint), written once at creation
    store/_s2scale/done/             (block_y, block_x) uint8 array with one chunk per region:
                                     a region's chunk exists (value 1) once it is fully written

Every region is written exactly once by its own task, which then writes its own ``done`` chunk: no
two tasks touch the same object, so there are no concurrent updates to merge. A rerun after a
crash (client or worker killed) reads ``done`` and computes only the missing regions; a region
that was written but not marked is simply written again with the same bytes. Locations, the
manifest, the overwrite rule and the done marks are those of :mod:`s2scale.resumable`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from s2scale import resumable
from s2scale.errors import ConfigError, GridMismatchError, ReadError
from s2scale.grid import TargetGrid
from s2scale.mosaic.blend import Region
from s2scale.resumable import redact_url

__all__ = [
    "StoreHandle",
    "WriteReport",
    "done_regions",
    "open_mosaic",
    "prepare_store",
    "redact_url",
    "write_mosaic",
    "write_region",
]

log = logging.getLogger(__name__)

_FORMAT = "s2scale.mosaic/1"
_KIND = resumable.StoreKind(
    name="mosaic store", fix="pass overwrite=True to replace it or write to another store"
)
_DONE = "done"
_VAR = "reflectance"


@dataclass(frozen=True)
class WriteReport:
    """What :func:`write_mosaic` did."""

    store: str
    """The store, with any credentials in the URL removed."""
    regions_total: int
    """Regions the mosaic consists of."""
    regions_computed: int
    """Regions computed and written by this call."""
    regions_reused: int
    """Regions already finished by an earlier (interrupted) run and left as they were."""
    created: bool
    """True if this call created (or replaced) the store."""
    seconds: float
    """Wall time of the call."""


def open_mosaic(store: str | Path) -> xr.Dataset:
    """Open a store written by :func:`write_mosaic` (lazily).

    Returns
    -------
    xarray.Dataset
        ``reflectance`` ``(band, y, x)`` uint16 DN (0 = no data) with ``.rio.crs`` and
        ``.rio.transform()`` set. The store has no consolidated metadata (not part of Zarr v3), so
        plain ``xr.open_zarr`` needs ``consolidated=False``.
    """
    loc = resumable.resolve_store(store)
    if not loc.has("zarr.json"):
        raise ReadError(f"no Zarr store at {loc.shown!r}")
    return xr.open_zarr(loc.target, zarr_format=3, consolidated=False)


def _manifest(
    arr: xr.DataArray, grid: TargetGrid, chunks: tuple[int, int], fingerprint: dict
) -> dict[str, Any]:
    """The description a store must match to be resumed (JSON-normalised on creation)."""
    bands = [str(b) for b in arr["band"].values] if "band" in arr.coords else arr.sizes["band"]
    return {
        "format": _FORMAT,
        "grid": {"crs": grid.crs, "resolution_m": grid.resolution_m, "bounds": list(grid.bounds)},
        "chunks": list(chunks),
        "bands": bands,
        "config_fingerprint": fingerprint,
    }


def _coerce_mosaic(arr: xr.DataArray, grid: TargetGrid) -> tuple[xr.DataArray, tuple[int, int]]:
    """Check dims, dtype, shape and chunking; return the array and its ``(y, x)`` chunk size."""
    if tuple(arr.dims) != ("band", "y", "x") or arr.dtype != np.uint16:
        raise GridMismatchError(
            f"mosaic has dims {tuple(arr.dims)} and dtype {arr.dtype}; expected ('band', 'y', "
            "'x') uint16, as returned by s2scale.mosaic.mosaic"
        )
    if arr.shape[1:] != grid.shape:
        raise GridMismatchError(
            f"mosaic shape {arr.shape[1:]} differs from the grid's {grid.shape}; build the mosaic "
            "with the same grid"
        )
    if not isinstance(arr.data, da.Array):
        arr = arr.chunk({"band": -1, "y": 2048, "x": 2048})
    if len(arr.chunks[0]) != 1:
        arr = arr.chunk({"band": -1})
    cy, cx = arr.chunks[1][0], arr.chunks[2][0]
    for name, sizes, size in (("y", arr.chunks[1], cy), ("x", arr.chunks[2], cx)):
        if any(c != size for c in sizes[:-1]) or sizes[-1] > size:
            raise GridMismatchError(
                f"mosaic {name} chunks {sizes[:4]}... are irregular; Zarr chunks must equal "
                "regions: rechunk to a fixed size (arr.chunk({'y': n, 'x': n}))"
            )
    return arr, (cy, cx)


@dataclass(frozen=True)
class StoreHandle:
    """An open mosaic store, ready for region writes (see :func:`prepare_store`)."""

    target: str
    """What zarr and xarray open: a local path or an fsspec URL."""
    shown: str
    """The store as it may be logged (credentials removed)."""
    chunks: tuple[int, int]
    """``(y, x)`` chunk size: one region."""
    created: bool
    """True if :func:`prepare_store` created (or replaced) the store."""


def prepare_store(
    template: xr.DataArray,
    store: str | Path,
    *,
    grid: TargetGrid,
    config_fingerprint: dict,
    overwrite: bool = False,
) -> StoreHandle:
    """Create a mosaic store for ``template`` or check that an existing one may be resumed.

    ``template`` is a lazy ``(band, y, x)`` uint16 array on ``grid`` whose chunks are the regions
    (nothing of it is computed: only its shape, chunks, bands and coordinates are written).
    Raises :class:`GridMismatchError` naming each manifest entry that differs from the stored one
    (including the keys of ``config_fingerprint``) unless ``overwrite`` is True.
    """
    arr, chunks = _coerce_mosaic(template, grid)
    return _prepare(arr, chunks, store, grid, config_fingerprint, overwrite)


def _prepare(
    arr: xr.DataArray,
    chunks: tuple[int, int],
    store: str | Path,
    grid: TargetGrid,
    config_fingerprint: dict,
    overwrite: bool,
) -> StoreHandle:
    """:func:`prepare_store` for an array already checked by :func:`_coerce_mosaic`."""
    manifest = _manifest(arr, grid, chunks, config_fingerprint)
    loc, created = resumable.open_or_create(
        store,
        _KIND,
        manifest,
        create=lambda loc: _create(arr, loc, grid, chunks),
        overwrite=overwrite,
    )
    return StoreHandle(target=loc.target, shown=loc.shown, chunks=chunks, created=created)


def done_regions(handle: StoreHandle) -> np.ndarray:
    """``(block_y, block_x)`` bool: which regions of the store are completely written."""
    return resumable.read_done(handle.target, _DONE)


def write_mosaic(
    mosaic_da: xr.DataArray,
    store: str | Path,
    *,
    grid: TargetGrid,
    config_fingerprint: dict,
    overwrite: bool = False,
    regions: Sequence[Region] | None = None,
    progress: Callable[[Any], Any] | None = None,
) -> WriteReport:
    """Write a mosaic to Zarr v3, region by region, resuming an interrupted run.

    Parameters
    ----------
    mosaic_da
        ``(band, y, x)`` uint16 DN on ``grid`` (0 = no data), e.g. :func:`~s2scale.mosaic.mosaic`.
        Its Dask chunks become the Zarr chunks and the regions.
    store
        Local path, ``file://`` or any fsspec URL (``s3://``, ``memory://``). Credentials come from
        the environment; URLs are logged without user info or query.
    grid
        The grid the mosaic is on; recorded in the manifest and checked on reruns.
    config_fingerprint
        JSON-serialisable description of everything that shapes the values (model, checkpoint
        hash, feather width, ...). A store is resumed only if it matches.
    overwrite
        Replace an existing store of another grid or fingerprint instead of refusing.
    regions
        ``(row0, row1, col0, col1)`` chunks to write (e.g. the AOI chunks of
        :func:`~s2scale.grid.plan_chunks`); default all chunks. Unwritten chunks read as 0.
    progress
        Receives the delayed write of the missing regions and must compute it (e.g. wrap it in a
        progress bar); default ``.compute()`` with the current Dask scheduler or client.

    Returns
    -------
    WriteReport
        How many regions were computed and how many were reused from an earlier run.

    Raises
    ------
    GridMismatchError
        The array does not fit ``grid``, or the store holds another grid, chunking, bands or
        fingerprint (or is not an s2scale mosaic) and ``overwrite`` is False.

    Notes
    -----
    Each region task takes its block of ``mosaic_da`` as one of the array's own chunk tasks
    (``to_delayed(optimize_graph=False)``), so the ``GPU`` resource annotations of model tasks
    upstream survive; slicing the array inside ``dask.delayed`` would drop them. This writes the
    whole graph at once: for national runs use :mod:`s2scale.pipeline`, which submits work units
    in bounded waves.
    """
    start = time.perf_counter()
    _check_pinning(mosaic_da)
    arr, (cy, cx) = _coerce_mosaic(mosaic_da, grid)
    handle = _prepare(arr, (cy, cx), store, grid, config_fingerprint, overwrite)
    wanted = _coerce_regions(regions, arr, (cy, cx))
    done = done_regions(handle)
    missing = [r for r in wanted if not done[r[0] // cy, r[2] // cx]]
    log.info(
        "write_mosaic %s: %d regions, %d to compute, %d already written",
        handle.shown,
        len(wanted),
        len(missing),
        len(wanted) - len(missing),
    )
    blocks = arr.data.to_delayed(optimize_graph=False)
    tasks = [
        dask.delayed(write_region, pure=True)(
            blocks[0, r0 // cy, c0 // cx],
            target=handle.target,
            region=(r0, r1, c0, c1),
            chunks=(cy, cx),
        )
        for r0, r1, c0, c1 in missing
    ]
    job = dask.delayed(len, pure=True)(tasks)
    if progress is not None:
        progress(job)
    else:
        job.compute()
    return WriteReport(
        store=handle.shown,
        regions_total=len(wanted),
        regions_computed=len(missing),
        regions_reused=len(wanted) - len(missing),
        created=handle.created,
        seconds=time.perf_counter() - start,
    )


def _fuse_setting() -> Any:
    """Scheduler-side: the scheduler's ``optimization.fuse.active`` setting."""
    return dask.config.get("optimization.fuse.active", None)


def _check_pinning(arr: xr.DataArray) -> None:
    """Refuse to run GPU-annotated model tasks on a distributed scheduler that fuses tasks.

    The scheduler builds the task graph with its own configuration; low-level fusion there merges
    each model task with its neighbours and drops the ``GPU`` resource annotation, so model
    forwards would run on any worker.
    """
    if not isinstance(arr.data, da.Array):
        return
    layers = arr.data.__dask_graph__().layers.values()
    if not any("resources" in (getattr(layer, "annotations", None) or {}) for layer in layers):
        return
    try:
        from distributed import get_client

        client = get_client()
    except (ImportError, ValueError):
        return
    if client.run_on_scheduler(_fuse_setting) is not False:
        raise ConfigError(
            f"the Dask scheduler at {client.scheduler.address} fuses tasks "
            "(optimization.fuse.active is not False there), which drops the GPU resource of the "
            "model tasks: start the scheduler with DASK_OPTIMIZATION__FUSE__ACTIVE=False (for an "
            "in-process LocalCluster: dask.config.set({'optimization.fuse.active': False})), or "
            "run s2scale.pipeline.run_upscale, which pins model tasks without annotations"
        )


def _coerce_regions(
    regions: Sequence[Region] | None, arr: xr.DataArray, chunks: tuple[int, int]
) -> list[Region]:
    """All chunks of ``arr``, or the given regions after checking that each is one chunk."""
    cy, cx = chunks
    rows, cols = arr.shape[1:]
    if regions is None:
        return [
            (r0, min(r0 + cy, rows), c0, min(c0 + cx, cols))
            for r0 in range(0, rows, cy)
            for c0 in range(0, cols, cx)
        ]
    out = []
    for region in regions:
        r0, r1, c0, c1 = (int(v) for v in region)
        if r0 % cy or c0 % cx or r1 != min(r0 + cy, rows) or c1 != min(c0 + cx, cols):
            raise GridMismatchError(
                f"region {region} is not one ({cy}, {cx}) chunk of the mosaic; use "
                "plan_chunks(grid, chunk_px) with the chunk_px the mosaic was built with"
            )
        out.append((r0, r1, c0, c1))
    return out


def _create(
    arr: xr.DataArray, loc: resumable.StoreLocation, grid: TargetGrid, chunks: tuple[int, int]
) -> None:
    """Write all metadata (lazy template, nothing computed) and the empty done marks."""
    ds = arr.to_dataset(name=_VAR)
    ds = ds.assign_coords(band=ds["band"].astype(object)) if ds["band"].dtype.kind == "U" else ds
    ds = ds.rio.write_crs(grid.crs).rio.write_transform(grid.transform)
    ds = ds.drop_encoding()
    ds[_VAR].encoding.update({"coordinates": "spatial_ref", "grid_mapping": "spatial_ref"})
    encoding = {_VAR: {"chunks": (arr.shape[0], *chunks), "fill_value": 0,
                       "compressors": resumable.reflectance_compressors()}}  # fmt: skip
    ds.to_zarr(
        loc.target, mode="w", compute=False, zarr_format=3, consolidated=False, encoding=encoding
    )
    resumable.create_done_grid(loc.target, _DONE, (len(arr.chunks[1]), len(arr.chunks[2])))


def write_region(
    data: np.ndarray, *, target: str, region: Region, chunks: tuple[int, int]
) -> Region:
    """Task: write one region's ``(band, rows, cols)`` uint16, then mark it done.

    The mark comes last, so a region is never marked before its bytes are in the store.
    """
    r0, r1, c0, c1 = region
    ds = xr.Dataset({_VAR: (("band", "y", "x"), data)})
    ds.to_zarr(
        target,
        region={"y": slice(r0, r1), "x": slice(c0, c1)},
        mode="r+",
        zarr_format=3,
        consolidated=False,
    )
    resumable.mark_done(target, _DONE, (r0 // chunks[0], c0 // chunks[1]))
    log.debug("region %s written", region)
    return region
