"""The plan of a run: what will be read, computed and written, built once and never changed.

A national run is cut into **work units**, one per output region of the target grid (a Zarr chunk
of the mosaic). For each UTM zone that overlaps a region, the unit holds the window of that zone's
10 m composite it needs (the region's footprint, plus the blending pad and the model's halo) and
the scenes whose footprints intersect that window. A unit's graph therefore depends only on the
scenes that overlap it, never on the size of the zone or the country, and the client holds the
graphs of a bounded number of units at a time (:mod:`s2scale.pipeline.upscale_run`,
:mod:`s2scale.pipeline.cube_run`).

Each zone is a *virtual* array: the AOI's bounding box in the zone's CRS, clipped to the zone's
scene grids, on the 10 m lattice (:func:`s2scale.cube.plan_cubes`). Windows are clipped to it and
flagged where they meet its edges, exactly as the lazy :func:`s2scale.mosaic.mosaic` does for
whole-zone arrays, so both give the same pixels.

Nothing here reads pixels; :func:`build_plan` is quick enough for Austria on a laptop.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from affine import Affine
from pyproj import Transformer

from s2scale import catalog, cube
from s2scale.config import RunConfig
from s2scale.cube import Zone
from s2scale.cubestore import CubeStore
from s2scale.errors import ConfigError
from s2scale.grid import TargetGrid, plan_chunks, target_grid
from s2scale.infer.consistency import coerce_lowpass_px
from s2scale.infer.tiling import default_batch_size, default_tile_px
from s2scale.items import Scene
from s2scale.mosaic import Region, SourceGrid, region_windows
from s2scale.mosaic.graph import SourceMeta, Window
from s2scale.sentinel2 import BANDS

if TYPE_CHECKING:
    from s2scale.infer import ModelSetup

__all__ = [
    "CubeUnit",
    "Plan",
    "Unit",
    "ZoneWindow",
    "build_plan",
    "cube_units",
    "fingerprint",
    "model_setup",
    "plan_zones",
]


@dataclass(frozen=True)
class ZoneWindow:
    """What one unit needs of one zone."""

    zone: int
    """Index into :attr:`Plan.zones`."""
    lr_window: Window
    """``(row0, row1, col0, col1)`` of the 10 m composite to read: core plus halo, clipped."""
    lr_pad: tuple[int, int, int, int]
    """Halo missing (mirrored) on the ``(top, bottom, left, right)`` where the zone ends."""
    sr_crop: Window
    """The super-resolved source window, relative to the upscaled core of ``lr_window``."""
    meta: SourceMeta
    """``(transform, CRS, edges)`` of the super-resolved source window, for the blend."""
    scenes: tuple[int, ...]
    """Indices into :attr:`Plan.scenes` whose footprints intersect ``lr_window``."""


@dataclass(frozen=True)
class Unit:
    """One work unit: one output region and the zone windows it is made of."""

    index: int
    """Position in :attr:`Plan.units` (and in the run's progress)."""
    region: Region
    """``(row0, row1, col0, col1)`` of the output grid (one Zarr chunk)."""
    windows: tuple[ZoneWindow, ...]
    """One per zone with scenes overlapping the region (empty: the region stays no data)."""


@dataclass(frozen=True)
class Plan:
    """Everything a run will do, built once by :func:`build_plan` and passed to every stage."""

    config: RunConfig
    """The run configuration."""
    scenes: tuple[Scene, ...]
    """All scenes found (normalised), sorted by datetime."""
    skipped_items: tuple[tuple[str, str], ...]
    """``(item id, reason)`` of items the search skipped."""
    grid: TargetGrid
    """The output grid."""
    zones: tuple[Zone, ...]
    """The UTM zones' virtual composites (with their scenes, unless read from a store)."""
    units: tuple[Unit, ...] = field(repr=False)
    """Work units, in row-major order of their regions."""
    setup: ModelSetup = field(repr=False)
    """The resolved model: the predictor the SR tasks carry, scale, halo, input multiple."""
    model: dict[str, Any]
    """Resolved model facts: name, arch, checkpoint, sha256, bands, align."""
    source: str = "stac"
    """``"stac"`` (search and composite) or the path of a composite store (``--from-cube``)."""

    @property
    def scale(self) -> int:
        """The model's upscaling factor."""
        return self.setup.scale

    @property
    def halo_px(self) -> int:
        """Context per window side in 10 m px."""
        return self.setup.halo_px

    @property
    def regions(self) -> list[Region]:
        """The units' regions."""
        return [u.region for u in self.units]

    def to_json(self, tasks_per_unit: list[int] | None = None) -> dict[str, Any]:
        """The plan as ``--dry-run`` prints it (summary statistics; no per-unit list).

        ``tasks_per_unit`` comes from :func:`s2scale.pipeline.units.count_tasks`.
        """
        tasks = np.array(tasks_per_unit or [0])
        scenes = np.array([sum(len(w.scenes) for w in u.windows) for u in self.units] or [0])
        out_px = sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in self.regions)
        g = self.grid
        return {
            "source": self.source,
            "scenes": len(self.scenes),
            "skipped_items": [list(s) for s in self.skipped_items],
            "tiles": sorted({s.mgrs_tile for s in self.scenes}),
            "zones": [z.to_json() for z in self.zones],
            "grid": {"crs": g.crs, "resolution_m": g.resolution_m, "bounds": list(g.bounds),
                     "shape": list(g.shape)},
            "regions": len(self.units),
            "regions_total": math.ceil(g.shape[0] / self.config.mosaic.chunk_px)
            * math.ceil(g.shape[1] / self.config.mosaic.chunk_px),
            "units": len(self.units),
            "tasks_total": int(tasks.sum()),
            "tasks_per_unit": {"mean": round(float(tasks.mean()), 1), "max": int(tasks.max())},
            "scenes_per_unit": {"mean": round(float(scenes.mean()), 1), "max": int(scenes.max())},
            "output_pixels": out_px,
            "output_bytes": out_px * len(BANDS) * 2,
            "model": self.model,
            "halo_px": self.halo_px,
            "scale": self.scale,
        }  # fmt: skip


# -------------------------------------------------------------------------------------- building
def model_setup(cfg: RunConfig) -> ModelSetup:
    """The resolved model of ``cfg.infer`` (checkpoint header read here; no model is built)."""
    from s2scale.infer import prepare_model

    inf = cfg.infer
    return prepare_model(
        inf.model, bands=BANDS, halo_px=inf.halo_px, tile_px=inf.tile_px,
        batch_size=inf.batch_size, device=inf.device, dtype=inf.dtype,  # type: ignore[arg-type]
        compile=inf.compile, random_weights=inf.random_weights,
        consistency=inf.consistency, fill_nodata=inf.fill_nodata,
        consistency_lowpass_px=inf.consistency_lowpass_px,
    )  # fmt: skip


def build_plan(
    cfg: RunConfig,
    result: catalog.SearchResult,
    *,
    store: CubeStore | None = None,
) -> Plan:
    """Plan a run of ``cfg`` over the scenes of ``result`` (reads no pixels).

    With ``store`` (a composite store of ``s2scale cube``), the zones are the store's and every
    window that overlaps a zone is read from it; ``result`` may then be empty.

    Raises
    ------
    ConfigError
        Bad model options (see :func:`s2scale.infer.prepare_model`).
    """
    inf = cfg.infer
    setup = model_setup(cfg)
    scenes = tuple(result.scenes)
    aoi = cfg.catalog.aoi
    m = cfg.mosaic
    grid = target_grid(aoi, crs=m.crs, resolution_m=m.resolution_m)
    if store is None:
        zones = plan_zones(cfg, scenes)
        trees = [_footprint_tree(z) for z in zones]
    else:
        zones = store.zones
        trees = [None] * len(zones)
    index = _scene_index(scenes)
    sr_grids = [_sr_grid(z, setup.scale) for z in zones]
    units = []
    for region in plan_chunks(grid, m.chunk_px, aoi):
        found = region_windows(
            region,
            grid,
            sr_grids,
            feather_px=m.feather_px,
            resampling=m.resampling,  # type: ignore[arg-type]
        )
        windows = []
        for i, sr_win, meta in found:
            w = _zone_window(i, zones[i], sr_win, meta, setup.scale, setup.halo_px, setup.align)
            tree = trees[i]
            if tree is None:
                windows.append(w)
                continue
            hits = tree.query(shapely.box(*zones[i].window_bounds(w.lr_window)),
                              predicate="intersects")  # fmt: skip
            if len(hits):
                ids = tuple(sorted(index[zones[i].scenes[j].id] for j in hits))
                windows.append(ZoneWindow(**{**w.__dict__, "scenes": ids}))
        units.append(Unit(index=len(units), region=region, windows=tuple(windows)))
    model = {
        "name": inf.model, "arch": setup.arch, "checkpoint": setup.checkpoint,
        "sha256": _sha256(setup.checkpoint), "bands": list(setup.bands), "align": setup.align,
        "random_weights": inf.random_weights,
    }  # fmt: skip
    return Plan(
        config=cfg, scenes=scenes, skipped_items=tuple(result.skipped), grid=grid, zones=zones,
        units=tuple(units), setup=setup, model=model,
        source="stac" if store is None else store.path,
    )  # fmt: skip


@dataclass(frozen=True)
class CubeUnit:
    """One work unit of the composite stage: one chunk of one zone's 10 m composite."""

    index: int
    """Position in the list of units."""
    zone: int
    """Index into :attr:`Plan.zones`."""
    window: Window
    """``(row0, row1, col0, col1)`` of the zone array (one store chunk)."""
    scenes: tuple[int, ...]
    """Indices into :attr:`Plan.scenes` whose footprints intersect the window."""


def plan_zones(cfg: RunConfig, scenes: tuple[Scene, ...]) -> tuple[Zone, ...]:
    """The UTM zones' virtual composites over the AOI (see :func:`s2scale.cube.plan_cubes`)."""
    return tuple(cube.plan_cubes(scenes, cfg.catalog.aoi))


def _scene_index(scenes: tuple[Scene, ...]) -> dict[str, int]:
    """Position in ``scenes`` by scene id."""
    return {s.id: i for i, s in enumerate(scenes)}


def _sr_grid(zone: Zone, scale: int) -> SourceGrid:
    """The zone's super-resolved array (``scale`` times finer, same origin)."""
    rows, cols = zone.shape
    t = zone.transform
    hr = Affine(t.a / scale, 0.0, t.c, 0.0, t.e / scale, t.f)
    return SourceGrid(transform=hr, crs=zone.crs, shape=(rows * scale, cols * scale))


def cube_units(
    cfg: RunConfig,
    scenes: tuple[Scene, ...],
    zones: tuple[Zone, ...],
    *,
    margin_m: float = 2000.0,
) -> list[CubeUnit]:
    """The composite stage's units: zone chunks that the upscale stage reads and a scene overlaps.

    A chunk is kept when it lies within ``margin_m`` of an output region of the AOI (the upscale
    stage computes whole regions, and its windows reach a halo and a blending pad beyond them),
    and at least one scene footprint intersects it.
    """
    chunk = cfg.cube.chunk_px
    m = cfg.mosaic
    grid = target_grid(cfg.catalog.aoi, crs=m.crs, resolution_m=m.resolution_m)
    t = grid.transform
    boxes = [shapely.box(t.c + c0 * t.a, t.f + r1 * t.e, t.c + c1 * t.a, t.f + r0 * t.e)
             for r0, r1, c0, c1 in plan_chunks(grid, m.chunk_px, cfg.catalog.aoi)]  # fmt: skip
    regions = shapely.union_all(boxes) if boxes else shapely.Polygon()
    index = _scene_index(scenes)
    out: list[CubeUnit] = []
    for zi, zone in enumerate(zones):
        tree = _footprint_tree(zone)
        to_zone = Transformer.from_crs(grid.crs, zone.crs, always_xy=True)
        near = shapely.transform(
            shapely.segmentize(regions, 1000.0),
            lambda xy, tz=to_zone: np.column_stack(tz.transform(xy[:, 0], xy[:, 1])),
        ).buffer(margin_m)
        shapely.prepare(near)
        rows, cols = zone.shape
        for y0 in range(0, rows, chunk):
            for x0 in range(0, cols, chunk):
                window = (y0, min(y0 + chunk, rows), x0, min(x0 + chunk, cols))
                box = shapely.box(*zone.window_bounds(window))
                if not near.intersects(box):
                    continue
                hits = tree.query(box, predicate="intersects")
                if len(hits):
                    ids = tuple(sorted(index[zone.scenes[j].id] for j in hits))
                    out.append(CubeUnit(index=len(out), zone=zi, window=window, scenes=ids))
    return out


def _zone_window(
    zone_index: int,
    zone: Zone,
    sr_win: Window,
    meta: SourceMeta,
    scale: int,
    halo: int,
    align: int,
) -> ZoneWindow:
    """The 10 m window (core aligned to the model's input multiple, plus halo) of a window."""
    y0, y1, x0, x1 = sr_win
    rows, cols = zone.shape

    def core(a: int, b: int, size: int) -> tuple[int, int]:
        lo = a // scale // align * align
        hi = -(-b // scale)  # ceil
        return lo, min(-(-hi // align) * align, size)

    cy0, cy1 = core(y0, y1, rows)
    cx0, cx1 = core(x0, x1, cols)
    ly0, ly1 = max(cy0 - halo, 0), min(cy1 + halo, rows)
    lx0, lx1 = max(cx0 - halo, 0), min(cx1 + halo, cols)
    pad = (halo - (cy0 - ly0), halo - (ly1 - cy1), halo - (cx0 - lx0), halo - (lx1 - cx1))
    crop = (y0 - cy0 * scale, y1 - cy0 * scale, x0 - cx0 * scale, x1 - cx0 * scale)
    return ZoneWindow(
        zone=zone_index, lr_window=(ly0, ly1, lx0, lx1), lr_pad=pad, sr_crop=crop, meta=meta,
        scenes=(),
    )  # fmt: skip


def _footprint_tree(zone: Zone) -> shapely.STRtree:
    """An R-tree of the zone's scene footprints in the zone's CRS (in ``zone.scenes`` order)."""
    to_zone = Transformer.from_crs(4326, zone.epsg, always_xy=True)
    geoms = []
    for scene in zone.scenes:
        item = scene.item
        geom = shapely.geometry.shape(item["geometry"]) if item.get("geometry") else None
        if geom is None or geom.is_empty:
            geom = shapely.box(*item["bbox"])
        geom = shapely.segmentize(geom, 0.05)
        geoms.append(shapely.transform(geom, lambda xy: np.column_stack(to_zone.transform(
            xy[:, 0], xy[:, 1]))))  # fmt: skip
    return shapely.STRtree(geoms)


def _sha256(path: str | None) -> str | None:
    """First 16 hex digits of a file's SHA-256 (None for no file)."""
    if path is None or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def fingerprint(plan: Plan, *, device_kind: str, dtype: str) -> dict[str, Any]:
    """Everything that changes the output's bytes; a store written with another one is refused.

    ``device_kind`` (``"cuda"``/``"cpu"``) and ``dtype`` are what the workers resolved ``auto``
    to, so a run started on CPU in float32 is never resumed on a GPU in bfloat16.
    """
    cfg = plan.config
    c, inf, m = cfg.catalog, cfg.infer, cfg.mosaic
    out = {
        "source": plan.source if plan.source == "stac" else "cube",
        "stac": c.stac, "aoi": c.aoi, "datetime": c.datetime, "collection": c.collection,
        "max_cloud_cover": c.max_cloud_cover, "mask_snow": cfg.cube.mask_snow,
        "model": inf.model, "model_sha256": plan.model["sha256"],
        "random_weights": inf.random_weights, "scale": plan.scale, "halo_px": plan.halo_px,
        "tile_px": inf.tile_px or default_tile_px(device_kind, plan.model.get("arch")),
        "batch_size": inf.batch_size or default_batch_size(device_kind),
        "compile": inf.compile,
        "consistency": inf.consistency,
        "consistency_lowpass_px": coerce_lowpass_px(inf.consistency_lowpass_px)
        if inf.consistency else 0.0,
        "fill_nodata": inf.fill_nodata, "device_kind": device_kind, "dtype": dtype,
        "feather_px": m.feather_px, "resampling": m.resampling,
    }  # fmt: skip
    try:
        json.dumps(out)
    except TypeError as err:  # pragma: no cover - config values are plain
        raise ConfigError(f"run configuration is not JSON-serialisable: {err}") from err
    return out
