"""The two stages of a national run, each one plan executed in waves of work units.

- :func:`run_cube`: search -> per-zone composites, written region by region to a resumable store.
- :func:`run_upscale`: search (or a composite store) -> per-unit composite, super-resolution,
  blend -> the national mosaic, written region by region to a resumable store; COG and STAC.

Both build their :class:`~s2scale.pipeline.plan.Plan` once, print it with ``dry_run`` and submit
units with :func:`~s2scale.pipeline.waves.run_waves` (bounded graphs, retries, watchdog).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from s2scale import catalog, cubestore
from s2scale.cluster import close_client
from s2scale.config import RunConfig
from s2scale.errors import ClusterError, ConfigError
from s2scale.grid import TargetGrid
from s2scale.pipeline.common import redact, run_search, timed
from s2scale.pipeline.estimate import Records, estimate_gpu_seconds
from s2scale.pipeline.plan import (
    CubeUnit,
    Plan,
    build_plan,
    cube_units,
    fingerprint,
    plan_zones,
)
from s2scale.pipeline.units import (
    StacComposites,
    StoreComposites,
    count_tasks,
    stac_composite,
    submit_unit,
)
from s2scale.pipeline.waves import default_in_flight, run_waves, wait_for_gpu_workers
from s2scale.sentinel2 import BANDS

__all__ = ["plan_upscale", "run_cube", "run_upscale"]

log = logging.getLogger(__name__)


def _device_kind(device: str) -> str:
    """Worker function: what ``device`` resolves to in this worker process."""
    from s2scale.infer import resolve_device

    return resolve_device(device).type


def _client(cfg: RunConfig, client: Any, timings: dict[str, float]) -> tuple[Any, bool]:
    """The given client, or a new one for ``cfg.cluster`` (then owned by the caller)."""
    if client is not None:
        return client, False
    from s2scale.cluster import make_client

    with timed("cluster", timings):
        client = make_client(cfg.cluster)
    log.warning("dashboard: %s", client.dashboard_link)
    return client, True


def plan_upscale(
    cfg: RunConfig, *, from_cube: str | Path | None = None, records: Records | None = None
) -> tuple[Plan, dict]:
    """Search (or open the composite store) and plan; returns the plan and the dry-run report.

    ``records``: throughput records for the GPU-time estimate (a folder or files; default the
    folder in ``$S2SCALE_THROUGHPUT_RECORDS``, :mod:`s2scale.pipeline.estimate`).
    """
    timings: dict[str, float] = {}
    store = cubestore.open_cube_store(from_cube) if from_cube else None
    with timed("search", timings):
        result = run_search(cfg) if store is None else catalog.SearchResult(scenes=())
    with timed("plan", timings):
        plan = build_plan(cfg, result, store=store)
        tasks = count_tasks(plan, _reader(plan))
    report = plan.to_json(tasks)
    report["estimated_gpu_time"] = estimate_gpu_seconds(
        cfg.infer.model, report["output_pixels"], cfg.infer.device, records=records
    )
    report["timings_s"] = timings
    return plan, report


def run_upscale(
    cfg: RunConfig,
    out: str | Path,
    *,
    dry_run: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    client: Any | None = None,
    from_cube: str | Path | None = None,
    plan: Plan | None = None,
) -> dict[str, Any]:
    """Super-resolve and mosaic onto the national grid, unit by unit, into a resumable store.

    Parameters
    ----------
    cfg
        The run configuration.
    out
        Output Zarr store (path or fsspec URL).
    dry_run
        Return the plan (``tasks_total``, ``regions``, units, scenes, ...) without reading pixels.
    overwrite
        Replace a store of another configuration; a store of the same one is resumed.
    progress
        Show a units progress bar with ETA on stderr.
    client
        A distributed client to use (default: one from ``cfg.cluster``, closed at the end).
    from_cube
        Read composites from this ``s2scale cube`` store instead of searching and compositing.
    plan
        A plan built before (:func:`plan_upscale`) to run instead of building one.

    Returns
    -------
    dict
        The plan summary plus what was computed, reused and left failed (``skip_errors``).

    Raises
    ------
    GridMismatchError
        The store holds a mosaic of another configuration (the message names what differs).
    ClusterError
        No GPU worker, mixed devices, or the cluster was lost for ``cluster.lost_timeout_s``.
    ReadError
        A unit could not be read (without ``catalog.skip_errors``).
    """
    from s2scale.mosaic import done_regions, prepare_store

    report: dict[str, Any]
    if plan is None:
        plan, report = plan_upscale(cfg, from_cube=from_cube)
    else:
        report = {**plan.to_json(count_tasks(plan, _reader(plan))), "timings_s": {}}
    report["out"] = redact(out)
    if dry_run:
        report["dry_run"] = True
        return report
    timings = report["timings_s"]
    client, own = _client(cfg, client, timings)
    try:
        report["dashboard"] = client.dashboard_link
        device_kind, dtype = _resolve_device(cfg, client)
        fp = fingerprint(plan, device_kind=device_kind, dtype=dtype)
        if plan.source != "stac":
            fp["cube"] = cubestore.open_cube_store(plan.source).fingerprint
        report["device_kind"], report["dtype"] = device_kind, dtype
        grid, chunk = plan.grid, cfg.mosaic.chunk_px
        handle = prepare_store(_template(grid, chunk), str(out), grid=grid,
                               config_fingerprint=fp, overwrite=overwrite)  # fmt: skip
        done = done_regions(handle)
        todo = [u for u in plan.units if not done[u.region[0] // chunk, u.region[2] // chunk]]
        reader = _reader(plan)
        token = _token(fp, handle.target)
        log.info(
            "upscale: %d units, %d written before", len(plan.units), len(plan.units) - len(todo)
        )
        with timed("units", timings):
            waves = run_waves(
                client, todo,
                lambda u: submit_unit(client, plan, u, reader=reader, handle=handle, token=token),
                in_flight=cfg.cluster.units_in_flight or default_in_flight(client),
                retries=cfg.cluster.unit_retries, lost_timeout_s=cfg.cluster.lost_timeout_s,
                skip_errors=cfg.catalog.skip_errors, progress=progress, label="upscale",
                describe=lambda u: {"unit": u.index, "region": list(u.region)},
            )  # fmt: skip
    finally:
        if own:
            close_client(client)
    report["regions_computed"] = waves.finished
    report["regions_reused"] = len(plan.units) - len(todo)
    report["regions_failed"] = waves.failed
    report["retried"] = waves.retried
    report["random_weights"] = cfg.infer.random_weights
    if (
        cfg.mosaic.cog
        and not waves.failed
        and not str(out).startswith(("s3://", "gs://", "az://", "memory://"))
    ):
        with timed("export", timings):
            report.update(_export(cfg, Path(str(out)), plan.grid))
    return report


def _resolve_device(cfg: RunConfig, client: Any) -> tuple[str, str]:
    """``(device kind, autocast dtype)`` that the GPU workers resolve the config to."""
    gpus = wait_for_gpu_workers(client, cfg.cluster.lost_timeout_s)
    kinds = set(client.run(_device_kind, cfg.infer.device, workers=gpus).values())
    if len(kinds) != 1:
        raise ClusterError(
            f"the GPU workers resolve device={cfg.infer.device!r} to different devices "
            f"({sorted(kinds)}); one store must come from one kind of device: give --device "
            "or run on a uniform cluster"
        )
    kind = kinds.pop()
    dtype = cfg.infer.dtype
    if dtype == "auto":
        dtype = "bfloat16" if kind == "cuda" else "float32"
    return kind, dtype


def _reader(plan: Plan) -> Any:
    """Where the units' composites come from."""
    c = plan.config.cube
    if plan.source == "stac":
        return StacComposites(chunk_px=c.chunk_px, time_chunk=c.time_chunk,
                              mask_snow=c.mask_snow)  # fmt: skip
    store = cubestore.open_cube_store(plan.source)
    return StoreComposites(arrays={z.epsg: store.reflectance(z) for z in store.zones})


def _token(fp: dict, target: str) -> str:
    from dask.base import tokenize

    return tokenize(fp, target)[:8]


def _template(grid: TargetGrid, chunk_px: int) -> xr.DataArray:
    """A lazy all-zero mosaic on ``grid`` whose chunks are the regions (only metadata is used)."""
    rows, cols = grid.shape
    data = da.zeros(
        (len(BANDS), rows, cols), dtype=np.uint16, chunks=(len(BANDS), chunk_px, chunk_px)
    )
    y, x = grid.coords()
    arr = xr.DataArray(data, dims=("band", "y", "x"), coords={"band": list(BANDS), "y": y, "x": x})
    return arr.rio.write_crs(grid.crs).rio.write_transform(grid.transform)


def _export(cfg: RunConfig, store: Path, grid: TargetGrid) -> dict[str, Any]:
    """COG of the mosaic beside the store, and a STAC collection describing it."""
    from s2scale.mosaic import export_cog, write_stac

    cog = store.with_suffix(".tif")
    export_cog(store, cog)
    start, end = catalog.parse_datetime_range(cfg.catalog.datetime)
    props = {
        "start_datetime": (start or end).isoformat(), "end_datetime": (end or start).isoformat(),
        "s2scale:model": cfg.infer.model, "s2scale:random_weights": cfg.infer.random_weights,
    }  # fmt: skip
    stac = write_stac(store.parent / f"{store.stem}-stac", cogs=[cog], grid=grid, properties=props)
    return {"cog": str(cog), "stac": str(stac)}


# ------------------------------------------------------------------------------ composite stage
def _cube_fingerprint(cfg: RunConfig) -> dict[str, Any]:
    c = cfg.catalog
    return {
        "stac": c.stac, "aoi": c.aoi, "datetime": c.datetime, "collection": c.collection,
        "max_cloud_cover": c.max_cloud_cover, "mask_snow": cfg.cube.mask_snow,
    }  # fmt: skip


def _composite_both(plan_scenes: tuple, zone: Any, unit: CubeUnit, cfg: RunConfig) -> da.Array:
    """Lazy ``(band + 1, y, x)``: the composite of one store chunk and its clear count last."""
    c = cfg.cube
    comp = stac_composite(
        [plan_scenes[i] for i in unit.scenes], zone.window_bounds(unit.window),
        chunk_px=c.chunk_px, time_chunk=c.time_chunk, mask_snow=c.mask_snow,
    )  # fmt: skip
    return da.concatenate([comp.reflectance.data, comp.clear_count.data[None]], axis=0)


def run_cube(
    cfg: RunConfig,
    out: str | Path,
    *,
    dry_run: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    client: Any | None = None,
) -> dict[str, Any]:
    """Search, composite per zone chunk by chunk, and write a resumable composite store.

    The store (:mod:`s2scale.cubestore`) holds one group per UTM zone with ``reflectance``
    ``(band, y, x)`` and ``clear_count`` ``(y, x)``; each chunk is one work unit that reads only
    the scenes overlapping it. A rerun of the same configuration computes only missing chunks;
    ``s2scale upscale --from-cube`` reads it. With ``dry_run`` nothing is read or written.
    """
    timings: dict[str, float] = {}
    with timed("search", timings):
        result = run_search(cfg)
    scenes = tuple(result.scenes)
    with timed("plan", timings):
        zones = plan_zones(cfg, scenes)
        units = cube_units(cfg, scenes, zones)
    tasks = _cube_tasks(cfg, scenes, zones, units) or [0]
    report: dict[str, Any] = {
        "scenes": len(result),
        "skipped_items": [list(s) for s in result.skipped],
        "tiles": sorted({s.mgrs_tile for s in result}),
        "zones": [z.to_json() for z in zones],
        "units": len(units),
        "tasks_total": int(sum(tasks)),
        "tasks_per_unit": {"mean": round(float(np.mean(tasks)), 1), "max": int(max(tasks))},
        "out": redact(out),
        "timings_s": timings,
    }
    if dry_run:
        report["dry_run"] = True
        return report
    if not units:
        raise ConfigError("no scene overlaps the AOI's regions; check --aoi and --datetime")
    specs = zones
    store = cubestore.create_cube_store(
        str(out), specs, bands=BANDS, chunk_px=cfg.cube.chunk_px,
        fingerprint=_cube_fingerprint(cfg), overwrite=overwrite,
    )  # fmt: skip
    done = {z.group: store.done(z) for z in store.zones}
    chunk = cfg.cube.chunk_px

    def is_done(u: CubeUnit) -> bool:
        return bool(done[specs[u.zone].group][u.window[0] // chunk, u.window[2] // chunk])

    todo = [u for u in units if not is_done(u)]

    token = _token(report["zones"], store.path)

    def submit(u: CubeUnit) -> Any:
        zone = zones[u.zone]
        both = client.compute(_composite_both(scenes, zone, u, cfg), priority=-u.index)
        return client.submit(
            cubestore.write_cube_region, both, path=store.path, group=specs[u.zone].group,
            window=u.window, chunk_px=chunk, key=f"write-cube-{token}-{u.index}",
            priority=-u.index,
        )  # fmt: skip

    client, own = _client(cfg, client, timings)
    try:
        with timed("units", timings):
            waves = run_waves(
                client, todo, submit,
                in_flight=cfg.cluster.units_in_flight or max(2, 2 * _n_workers(client)),
                retries=cfg.cluster.unit_retries, lost_timeout_s=cfg.cluster.lost_timeout_s,
                skip_errors=cfg.catalog.skip_errors, progress=progress, label="cube",
                describe=lambda u: {"unit": u.index, "zone": zones[u.zone].crs,
                                    "window": list(u.window)},
            )  # fmt: skip
    finally:
        if own:
            close_client(client)
    report["regions_computed"] = waves.finished
    report["regions_reused"] = len(units) - len(todo)
    report["regions_failed"] = waves.failed
    report["written"] = [{"group": s.group, "shape": [len(BANDS), *s.shape]} for s in specs]
    return report


def _cube_tasks(cfg: RunConfig, scenes: tuple, zones: tuple, units: list[CubeUnit]) -> list[int]:
    """Tasks per composite unit, counted on built graphs (one per distinct scene count)."""
    import dask

    cache: dict[int, int] = {}
    out = []
    for u in units:
        if len(u.scenes) not in cache:
            (opt,) = dask.optimize(_composite_both(scenes, zones[u.zone], u, cfg))
            cache[len(u.scenes)] = len(opt.__dask_graph__()) + 1  # + the write
        out.append(cache[len(u.scenes)])
    return out


def _n_workers(client: Any) -> int:
    return len(client.scheduler_info(n_workers=-1).get("workers", {}))
