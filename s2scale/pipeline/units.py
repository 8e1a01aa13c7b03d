"""The graph of one work unit, submitted to the cluster as a handful of futures.

A unit (see :mod:`s2scale.pipeline.plan`) becomes, per zone window, a composite graph (stackstac
reads of the window's scenes, SCL masks, observation median; or a read from a composite store)
and one super-resolution task; then one blend task and one write task for its region::

    composite(zone a) -> SR(zone a) --\
                                        >-- blend(region) -- write(region) + done mark
    composite(zone b) -> SR(zone b) --/

The SR tasks are submitted with ``resources={"GPU": 1}``, so they run only on workers that
advertise a ``GPU`` resource, one at a time per GPU, whatever path built the run; everything else
(reading, decoding, compositing, blending, writing) runs on any worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import dask.array as da
import xarray as xr

from s2scale import composite, cube
from s2scale.grid import Bounds
from s2scale.infer import upscale_window_block
from s2scale.items import Scene
from s2scale.mosaic import StoreHandle, mosaic_region_block, write_region
from s2scale.pipeline.plan import Plan, Unit, ZoneWindow
from s2scale.sentinel2 import BANDS, MASK_BAND

__all__ = [
    "CompositeReader",
    "StacComposites",
    "StoreComposites",
    "count_tasks",
    "stac_composite",
    "submit_unit",
]

GPU = {"GPU": 1}
"""The resource every model task needs."""


def stac_composite(
    scenes: Sequence[Scene], bounds: Bounds, *, chunk_px: int, time_chunk: int, mask_snow: bool
) -> xr.Dataset:
    """Lazy cloud-free composite of ``bounds`` (one zone's CRS) from ``scenes``.

    stackstac reads ``time_chunk`` scenes per task, SCL masks, the median of clear observations
    and their count (:func:`s2scale.composite.composite`).
    """
    stack = cube.load_cube(
        scenes, bounds=bounds, bands=(*BANDS, MASK_BAND), chunk_px=chunk_px,
        time_chunk=time_chunk,
    )  # fmt: skip
    return composite.composite(composite.mask_clouds(stack, mask_snow=mask_snow))


class CompositeReader(Protocol):
    """Where zone windows of 10 m composites come from (a lazy ``(band, y, x)`` uint16 array)."""

    def window(self, plan: Plan, w: ZoneWindow) -> da.Array:
        """The composite of ``w.lr_window`` of zone ``w.zone``."""
        ...


@dataclass(frozen=True)
class StacComposites:
    """Composites made from the window's scenes: stackstac reads, SCL masks, median."""

    chunk_px: int
    """Spatial chunk of the reads (10 m px)."""
    time_chunk: int
    """Scenes per read task."""
    mask_snow: bool = False
    """Also mask snow."""

    def window(self, plan: Plan, w: ZoneWindow) -> da.Array:
        """Lazy cloud-free composite of one zone window, read from that window's scenes only."""
        comp = stac_composite(
            [plan.scenes[i] for i in w.scenes], plan.zones[w.zone].window_bounds(w.lr_window),
            chunk_px=_even_chunk(w.lr_window, self.chunk_px), time_chunk=self.time_chunk,
            mask_snow=self.mask_snow,
        )  # fmt: skip
        return comp.reflectance.data


def _even_chunk(window: tuple[int, int, int, int], chunk_px: int) -> int:
    """A spatial chunk of at most ``chunk_px`` that cuts the window into near-equal pieces.

    Examples
    --------
    >>> _even_chunk((0, 1196, 0, 1190), 1024)
    598
    """
    y0, y1, x0, x1 = window
    edge = max(y1 - y0, x1 - x0)
    return -(-edge // -(-edge // chunk_px))


@dataclass(frozen=True)
class StoreComposites:
    """Composites read from a store written by ``s2scale cube`` (one group per zone)."""

    arrays: dict[int, da.Array]
    """Each zone's ``reflectance`` ``(band, y, x)``, keyed by EPSG, lazily opened once."""

    def window(self, plan: Plan, w: ZoneWindow) -> da.Array:
        """The stored composite of one zone window."""
        y0, y1, x0, x1 = w.lr_window
        return self.arrays[plan.zones[w.zone].epsg][:, y0:y1, x0:x1]


def count_tasks(plan: Plan, reader: CompositeReader) -> list[int]:
    """Tasks each unit puts on the cluster, counted on built (optimised) graphs, reading nothing.

    A window's graph depends only on its number of scenes and its size, so one graph is built
    per distinct ``(scenes, rows, cols)`` and the count reused: Austria needs a few dozen.
    """
    import dask

    cache: dict[tuple[int, int, int], int] = {}
    out = []
    for unit in plan.units:
        total = 2  # blend, write
        for w in unit.windows:
            y0, y1, x0, x1 = w.lr_window
            key = (len(w.scenes), y1 - y0, x1 - x0)
            if key not in cache:
                (opt,) = dask.optimize(reader.window(plan, w))
                cache[key] = len(opt.__dask_graph__()) + 1  # + the model task
            total += cache[key]
        out.append(total)
    return out


def submit_unit(
    client: Any,
    plan: Plan,
    unit: Unit,
    *,
    reader: CompositeReader,
    handle: StoreHandle,
    token: str,
) -> Any:
    """Submit one unit; returns the future of its write (the region, once written and marked)."""
    m = plan.config.mosaic
    prefix = f"{token}-u{unit.index}"
    srs = []
    for w in unit.windows:
        comp = client.compute(reader.window(plan, w), priority=-unit.index)
        sr = client.submit(
            upscale_window_block, comp, predict=plan.setup.predictor, margin=plan.halo_px,
            scale=plan.scale, pad=w.lr_pad, crop=w.sr_crop, resources=GPU,
            key=f"upscale-{prefix}-z{w.zone}", priority=-unit.index,
        )  # fmt: skip
        srs.append(sr)
    blended = client.submit(
        mosaic_region_block, *srs, metas=tuple(w.meta for w in unit.windows), grid=plan.grid,
        region=unit.region, n_bands=len(BANDS), feather_px=m.feather_px,
        resampling=m.resampling, key=f"blend-{prefix}", priority=-unit.index,
    )  # fmt: skip
    return client.submit(
        write_region, blended, target=handle.target, region=unit.region, chunks=handle.chunks,
        key=f"write-{prefix}", priority=-unit.index,
    )  # fmt: skip
