"""The composite stage: search -> per-zone composites, one work unit per store chunk.

:func:`run_cube` writes them region by region to a resumable composite store
(:mod:`s2scale.cubestore`) in waves (:func:`~s2scale.pipeline.waves.run_waves`); ``s2scale upscale
--from-cube`` (:mod:`s2scale.pipeline.upscale_run`) reads it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from s2scale import cubestore
from s2scale.cluster import close_client
from s2scale.config import RunConfig
from s2scale.errors import ConfigError
from s2scale.pipeline.common import open_client, redact, run_search, run_token, timed
from s2scale.pipeline.plan import CubeUnit, cube_units, plan_zones
from s2scale.pipeline.units import stac_composite
from s2scale.pipeline.waves import run_waves
from s2scale.sentinel2 import BANDS

__all__ = ["run_cube"]

log = logging.getLogger(__name__)


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
    store = cubestore.create_cube_store(
        str(out), zones, bands=BANDS, chunk_px=cfg.cube.chunk_px,
        fingerprint=_cube_fingerprint(cfg), overwrite=overwrite,
    )  # fmt: skip
    done = {z.group: store.done(z) for z in store.zones}
    chunk = cfg.cube.chunk_px

    def is_done(u: CubeUnit) -> bool:
        return bool(done[zones[u.zone].group][u.window[0] // chunk, u.window[2] // chunk])

    todo = [u for u in units if not is_done(u)]

    token = run_token(report["zones"], store.path)

    def submit(u: CubeUnit) -> Any:
        zone = zones[u.zone]
        both = client.compute(_composite_both(scenes, zone, u, cfg), priority=-u.index)
        return client.submit(
            cubestore.write_cube_region, both, path=store.path, group=zones[u.zone].group,
            window=u.window, chunk_px=chunk, key=f"write-cube-{token}-{u.index}",
            priority=-u.index,
        )  # fmt: skip

    client, own = open_client(cfg.cluster, client, timings)
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
    report["written"] = [{"group": s.group, "shape": [len(BANDS), *s.shape]} for s in zones]
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
