"""Scene choice: the Sentinel-2 observations that pair with an orthophoto.

For each orthophoto, :func:`candidate_observations` keeps the scenes whose footprint meets the
orthophoto and whose date is within ``window_days`` of its acquisition, picks ONE UTM zone (the
zone whose tiles cover most of the orthophoto; the orthophoto's own zone on a tie), so that every
pair of one orthophoto lies on one Sentinel-2 grid, and groups that zone's scenes into
observations (one pass of one satellite, its tiles merged; :func:`s2scale.cube.observation_ids`),
sorted by time distance. :func:`survey_observations` then reads the SCL band over the
orthophoto's footprint, nearest observation first, and accepts those whose footprint is clear and
valid, until it has as many as asked.

Windows are on the zone's 10 m grid, snapped outwards to the patch lattice (multiples of
``lattice_m``), so that the patches of all observations of an orthophoto lie at the same places.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from s2scale.composite import INVALID_SCL, SNOW_SCL, merge_observations_block
from s2scale.cube import load_cube
from s2scale.cube import observation_ids as _observation_ids
from s2scale.errors import ConfigError
from s2scale.grid import Bounds, TargetGrid, utm_zone_of
from s2scale.items import Scene
from s2scale.pairs.ortho import OrthoInfo
from s2scale.sentinel2 import RESOLUTION_M

__all__ = [
    "Observation",
    "candidate_observations",
    "clear_fractions_block",
    "footprint_mask",
    "pair_window",
    "survey_observations",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observation:
    """One pass of one satellite over an orthophoto, in one UTM zone (its tiles merged)."""

    key: str
    """``<platform>_<YYYYMMDD>`` of the pass (UTC date), e.g. ``sentinel-2b_20240708``."""
    epsg: int
    """UTM zone CRS of its tiles."""
    scenes: tuple[Scene, ...]
    """Its scenes (tiles) in that zone, in search order."""
    days: float
    """Time distance to the orthophoto's acquisition, days."""

    @property
    def datetime(self) -> datetime:
        """Acquisition time of the first tile (UTC)."""
        return self.scenes[0].datetime

    @property
    def scene_ids(self) -> list[str]:
        """Ids of its scenes."""
        return [s.id for s in self.scenes]

    def to_json(self) -> dict[str, Any]:
        """JSON summary."""
        return {
            "key": self.key,
            "crs": f"EPSG:{self.epsg}",
            "scenes": self.scene_ids,
            "datetime": self.datetime.isoformat().replace("+00:00", "Z"),
            "days": round(self.days, 3),
        }


def _asset_box(scene: Scene) -> Any:
    """Polygon of the scene's 10 m asset grid in its UTM CRS."""
    from shapely.geometry import box

    asset = scene.item["assets"]["blue"]
    a, _, c, _, e, f = asset["proj:transform"][:6]
    rows, cols = asset["proj:shape"]
    return box(c, f + e * rows, c + a * cols, f)


def _footprint_ll(scene: Scene) -> Any:
    """The scene's lon/lat footprint (item geometry, else its bbox)."""
    from shapely.geometry import box, shape

    if scene.item.get("geometry"):
        return shape(scene.item["geometry"])
    bbox = scene.item.get("bbox")
    if bbox:
        n = len(bbox) // 2
        return box(bbox[0], bbox[1], bbox[n], bbox[n + 1])
    return None


def _pass_name(scene: Scene) -> str:
    """``<platform>_<YYYYMMDD>`` of the pass of ``scene`` (UTC date of its first tile)."""
    platform = str((scene.item.get("properties") or {}).get("platform") or "sentinel-2")
    return f"{re.sub(r'[^A-Za-z0-9-]', '-', platform.lower())}_{scene.datetime:%Y%m%d}"


def candidate_observations(
    ortho: OrthoInfo, scenes: Sequence[Scene], *, window_days: float
) -> tuple[int | None, list[Observation]]:
    """The zone and the observations (nearest in time first) that may pair with ``ortho``.

    Parameters
    ----------
    ortho
        The orthophoto.
    scenes
        Searched scenes (any zones, any dates).
    window_days
        Largest time distance, in days, between the scene's date and the orthophoto's.

    Returns
    -------
    tuple
        The EPSG code of the chosen UTM zone (``None`` when no scene fits) and its observations
        sorted by time distance, then time, then key.
    """
    ll = ortho.footprint(4326)
    day0 = ortho.acquired.date()
    near = []
    for s in scenes:
        if abs((s.datetime.date() - day0).days) > window_days:
            continue
        fp = _footprint_ll(s)
        if fp is not None and not fp.intersects(ll):
            continue
        near.append(s)
    if not near:
        return None, []
    cover: dict[int, Any] = {}
    for s in near:
        box_ = _asset_box(s)
        cover[s.epsg] = box_ if s.epsg not in cover else cover[s.epsg].union(box_)
    own_zone = utm_zone_of(ll.centroid.x)
    scores = []
    for epsg, union in cover.items():
        fp = ortho.footprint(epsg)
        share = fp.intersection(union).area / fp.area if fp.area > 0 else 0.0
        scores.append((round(share, 6), (epsg % 100) == own_zone, -epsg, epsg))
    best = max(scores)
    if best[0] <= 0:
        return None, []
    epsg = best[3]
    zone_scenes = [s for s in near if s.epsg == epsg]
    ids = _observation_ids(zone_scenes)
    groups: dict[int, list[Scene]] = {}
    for s, i in zip(zone_scenes, ids.tolist(), strict=True):
        groups.setdefault(i, []).append(s)
    t0 = ortho.acquired
    out = []
    for members in groups.values():
        days = abs((members[0].datetime - t0).total_seconds()) / 86400.0
        out.append(
            Observation(
                key=_pass_name(members[0]),
                epsg=epsg,
                scenes=tuple(members),
                days=days,
            )
        )
    out.sort(key=lambda o: (round(o.days, 6), o.datetime, o.key))
    return epsg, out


def pair_window(ortho: OrthoInfo, epsg: int, *, lattice_m: float) -> Bounds:
    """The orthophoto's bounding box in ``epsg``, snapped outwards to ``lattice_m`` multiples.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> info = OrthoInfo("t", "t.tif", "EPSG:32633", (1.0, 0.0, 1005.0, 0.0, -1.0, 2995.0),
    ...                  (990, 990), ("red", "green", "blue"), "uint8", None,
    ...                  datetime(2024, 7, 1, tzinfo=UTC), "given")
    >>> pair_window(info, 32633, lattice_m=160.0)
    (960.0, 1920.0, 2080.0, 3040.0)
    """
    if not lattice_m > 0:
        raise ConfigError(f"lattice_m={lattice_m} must be > 0")
    minx, miny, maxx, maxy = ortho.footprint(epsg).bounds
    q = lattice_m
    return (
        math.floor(minx / q) * q,
        math.floor(miny / q) * q,
        math.ceil(maxx / q) * q,
        math.ceil(maxy / q) * q,
    )


def footprint_mask(ortho: OrthoInfo, grid: TargetGrid) -> np.ndarray:
    """``(rows, cols)`` bool: pixels of ``grid`` whose centre lies inside the orthophoto."""
    from rasterio.features import geometry_mask

    return geometry_mask(
        [ortho.footprint(grid.crs)], out_shape=grid.shape, transform=grid.transform, invert=True
    )


def clear_fractions_block(
    scl: np.ndarray, footprint: np.ndarray, *, mask_snow: bool = False
) -> tuple[float, float]:
    """Shares of a footprint that are valid (SCL not 0) and clear (not masked, see ``cube``).

    Parameters
    ----------
    scl
        ``(y, x)`` SCL classes, 0 = no data.
    footprint
        ``(y, x)`` bool, the pixels that count.
    mask_snow
        Count snow (SCL 11) as not clear.

    Returns
    -------
    tuple of float
        ``(valid, clear)`` fractions of the footprint's pixels (0 for an empty footprint).

    Examples
    --------
    >>> scl = np.array([[4, 4, 9, 0]])
    >>> clear_fractions_block(scl, np.ones((1, 4), bool))
    (0.75, 0.5)
    """
    n = int(footprint.sum())
    if n == 0:
        return 0.0, 0.0
    classes = (*INVALID_SCL, SNOW_SCL) if mask_snow else INVALID_SCL
    inside = scl[footprint]
    return float((inside != 0).sum() / n), float((~np.isin(inside, classes)).sum() / n)


def survey_observations(
    ortho: OrthoInfo,
    observations: Sequence[Observation],
    bounds: Bounds,
    *,
    wanted: int,
    min_clear: float,
    mask_snow: bool = False,
) -> list[dict[str, Any]]:
    """Read each observation's SCL over the orthophoto, nearest first, until ``wanted`` are clear.

    Parameters
    ----------
    ortho
        The orthophoto.
    observations
        Its candidates, nearest first (:func:`candidate_observations`).
    bounds
        The pair window in the observations' zone CRS (:func:`pair_window`).
    wanted
        How many observations to accept.
    min_clear
        Least clear share of the footprint (valid and not cloud, shadow or cirrus), 0..1.
    mask_snow
        Count snow as not clear.

    Returns
    -------
    list of dict
        One record per observation read: ``key``, ``valid``, ``clear``, ``accepted`` and, when
        not accepted, ``reason`` (``nodata`` or ``cloudy``).
    """
    import dask

    if not observations:
        return []
    epsg = observations[0].epsg
    grid = TargetGrid(f"EPSG:{epsg}", RESOLUTION_M, bounds)
    mask = footprint_mask(ortho, grid)
    out: list[dict[str, Any]] = []
    accepted = 0
    for obs in observations:
        if accepted >= wanted:
            break
        cube = load_cube(list(obs.scenes), bounds=bounds, bands=("scl",), chunk_px=max(grid.shape))
        with dask.config.set(scheduler="synchronous"):
            stack = np.asarray(cube.values)
        scl = merge_observations_block(stack, np.zeros(len(obs.scenes), np.int64))[0, 0]
        valid, clear = clear_fractions_block(scl, mask, mask_snow=mask_snow)
        ok = clear >= min_clear
        rec: dict[str, Any] = {
            "key": obs.key,
            "valid": round(valid, 4),
            "clear": round(clear, 4),
            "accepted": ok,
        }
        if not ok:
            rec["reason"] = "nodata" if valid < min_clear else "cloudy"
        accepted += ok
        out.append(rec)
    return out
