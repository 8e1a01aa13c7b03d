"""Orchestration: runs the stages in order, computes, writes, and reports.

The only module (with :mod:`s2scale.cli`) that computes Dask graphs or writes outputs. Each
function returns a JSON-serialisable report of what it did.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from s2scale import catalog, cube
from s2scale.config import RunConfig
from s2scale.errors import ConfigError

__all__ = ["run_cube", "run_demo", "run_sample", "run_search", "timed"]

log = logging.getLogger(__name__)

DEMO_DATETIME = "2024-06-01/2024-08-31"
"""The summer of the built-in sample (its 2021 scene is left out)."""


@contextlib.contextmanager
def timed(stage: str, timings: dict[str, float] | None = None) -> Iterator[None]:
    """Log how long a stage took (failures included) and record it in ``timings``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        dt = time.perf_counter() - t0
        log.debug("%s took %.1fs", stage, dt)
        if timings is not None:
            timings[stage] = round(dt, 3)


def _compute(delayed: Any, *, progress: bool) -> None:
    """Compute with a progress bar: the distributed one if a client is active, else dask's."""
    if not progress:
        delayed.compute()
        return
    try:
        from distributed import get_client
        from distributed import progress as dist_progress

        client = get_client()
    except (ImportError, ValueError):
        from dask.diagnostics import ProgressBar

        with ProgressBar(minimum=1.0, out=sys.stderr):
            delayed.compute()
        return
    future = client.compute(delayed)
    dist_progress(future)
    future.result()


def run_sample(out: str | Path, *, national: bool = False, seed: int = 0) -> dict[str, Any]:
    """Write the built-in sample (or the national metadata-only catalog) to ``out``."""
    from s2scale.testing import write_sample

    timings: dict[str, float] = {}
    with timed("sample", timings):
        info = write_sample(Path(out), seed=seed, national=national)
    summary = {
        "root": str(info.root),
        "catalog": str(info.catalog),
        "aoi": list(info.aoi),
        "dates": list(info.dates),
        "tiles": list(info.tiles),
        "items": len(info.item_ids),
        "cogs": len(info.cogs),
        "orthophoto": str(info.orthophoto) if info.orthophoto else None,
        "truth": [str(p) for p in info.truth],
        "national": info.national,
    }
    return {"sample": summary, "timings_s": timings}


def run_search(cfg: RunConfig) -> catalog.SearchResult:
    """Search the catalog of ``cfg.catalog``."""
    c = cfg.catalog
    if not c.stac:
        raise ConfigError("no STAC source given; pass --stac URL|FILE (or catalog.stac in YAML)")
    return catalog.search(
        c.aoi,
        c.datetime,
        stac=c.stac,
        max_cloud_cover=c.max_cloud_cover,
        collection=c.collection,
        skip_errors=c.skip_errors,
    )


def run_cube(
    cfg: RunConfig,
    out: str | Path,
    *,
    dry_run: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Search, load one cube per UTM zone, mask clouds, composite and write Zarr.

    The store holds one group per zone (``epsg32632``, ``epsg32633``, ...) with ``reflectance``
    ``(band, y, x)`` and ``clear_count`` ``(y, x)``. With ``dry_run`` nothing is read or written:
    the report holds the plan (scenes, tiles, zones, chunks, bytes).
    """
    timings: dict[str, float] = {}
    with timed("search", timings):
        result = run_search(cfg)
    plans = cube.plan_cubes(result, cfg.catalog.aoi, chunk_px=cfg.cube.chunk_px)
    report: dict[str, Any] = {
        "scenes": len(result),
        "skipped_items": [list(s) for s in result.skipped],
        "tiles": sorted({s.mgrs_tile for s in result}),
        "zones": [p.to_json() for p in plans],
        "bytes": sum(p.nbytes for p in plans),
        "chunks": sum(p.n_chunks for p in plans),
        "out": str(out),
    }
    if dry_run:
        report["dry_run"] = True
        report["timings_s"] = timings
        return report
    store = Path(str(out))
    if store.exists() and not overwrite:
        raise ConfigError(f"output {str(store)!r} exists; pass --overwrite to replace it")
    with timed("check_assets", timings):
        scenes, skipped = cube.check_assets(result.scenes, skip_errors=cfg.catalog.skip_errors)
    report["skipped_assets"] = [list(s) for s in skipped]
    written = []
    mode = "w"
    for plan in cube.plan_cubes(scenes, cfg.catalog.aoi, chunk_px=cfg.cube.chunk_px):
        group = f"epsg{plan.epsg}"
        with timed(f"cube_{group}", timings):
            stack = cube.load_cube(
                plan.scenes,
                bounds=plan.bounds,
                bands=(*catalog.BANDS, "scl"),
                chunk_px=cfg.cube.chunk_px,
                skip_errors=cfg.catalog.skip_errors,
            )
            comp = cube.composite(cube.mask_clouds(stack, mask_snow=cfg.cube.mask_snow))
            comp.attrs.update({"scenes": [s.id for s in plan.scenes], "crs": f"EPSG:{plan.epsg}"})
            cube.write_cube(
                comp,
                store,
                group=group,
                mode=mode,
                progress=lambda d: _compute(d, progress=progress),
            )
        mode = "a"
        written.append(
            {"group": group, "shape": list(comp.reflectance.shape), "scenes": len(plan.scenes)}
        )
    report["written"] = written
    report["timings_s"] = timings
    return report


def run_demo(out: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """The main job on the built-in sample: simulate, search, cube, composite, write Zarr."""
    from s2scale.testing import SAMPLE_AOI

    out = Path(out)
    report: dict[str, Any] = {}
    sample_dir = out / "sample"
    if sample_dir.exists() and not overwrite:
        raise ConfigError(f"{str(sample_dir)!r} exists; pass --overwrite or choose another --out")
    report["sample"] = run_sample(sample_dir)
    aoi = ",".join(str(v) for v in SAMPLE_AOI)
    cfg = (
        RunConfig()
        .replace("catalog", stac=str(sample_dir / "catalog.json"), aoi=aoi, datetime=DEMO_DATETIME)
        .replace("cube", chunk_px=256)
    )
    report["cube"] = run_cube(cfg, out / "composite.zarr", overwrite=overwrite)
    return report
