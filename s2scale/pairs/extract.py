"""One task group: one orthophoto x one Sentinel-2 observation -> patches in the pair store.

A group reads the observation's 10 m bands and SCL over the orthophoto's window on the tile's own
UTM grid (:func:`read_lr`: clouds masked, tiles of the pass merged, or the median composite of
several observations), reads the orthophoto around the same window (:func:`read_ortho`), and
:func:`extract_group` runs :func:`~s2scale.pairs.study.study_pairs` on them (HR at 5 m nested in
the 10 m pixels, co-registration check and correction, histogram matching, SSIM filter), splits
the patches by location (:func:`~s2scale.pairs.splits.location_splits` on a fixed block grid)
and writes them with their provenance (:meth:`~s2scale.pairs.store.PairStore.write_group`).
:func:`survey_task` makes the scene choice of one orthophoto. These functions are what the Dask
tasks of :mod:`s2scale.pipeline.pairs_run` call; they take plain values and paths.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from s2scale.grid import Bounds, TargetGrid
from s2scale.pairs.config import PairsConfig
from s2scale.pairs.kernels import SPLITS
from s2scale.pairs.ortho import OrthoInfo
from s2scale.pairs.ortho_pixels import OrthoWindow, nested_grid, read_ortho_window, render_hr
from s2scale.pairs.scenes import Observation, survey_observations
from s2scale.pairs.splits import location_splits
from s2scale.pairs.store import PairStore
from s2scale.pairs.study import study_pairs
from s2scale.sentinel2 import RESOLUTION_M

__all__ = [
    "PAIR_KIND",
    "GroupSpec",
    "extract_group",
    "patch_bounds",
    "read_lr",
    "read_ortho",
    "survey_task",
]

log = logging.getLogger(__name__)

PAIR_KIND = "ortho-s2"
"""``kind`` of the source records of orthophoto + Sentinel-2 pairs in a patch store."""


@dataclass(frozen=True)
class GroupSpec:
    """What one task group pairs: an orthophoto, its observation(s) and the window."""

    gid: str
    """Group id: ``<orthophoto id>__<observation key>`` (or ``__composite``)."""
    ortho: OrthoInfo
    """The orthophoto."""
    observations: tuple[Observation, ...]
    """One observation, or those of the composite."""
    bounds: Bounds
    """The LR window in the observations' UTM CRS (10 m, on the patch lattice)."""
    bands: tuple[str, ...]
    """Bands of the store (Sentinel-2 asset keys)."""
    composite: bool = False
    """The LR is the median composite of ``observations``."""

    @property
    def epsg(self) -> int:
        """UTM zone CRS of the window."""
        return self.observations[0].epsg

    @property
    def grid(self) -> TargetGrid:
        """The LR window's 10 m grid."""
        return TargetGrid(f"EPSG:{self.epsg}", RESOLUTION_M, self.bounds)

    @property
    def scene_ids(self) -> list[str]:
        """Ids of every scene the LR is made of."""
        return [i for o in self.observations for i in o.scene_ids]


def read_lr(spec: GroupSpec, *, mask_snow: bool = False) -> np.ndarray:
    """The Sentinel-2 window of a group: ``(band, y, x)`` uint16 harmonised DN, 0 = not clear.

    Clouds, shadows, cirrus and no data are masked with the SCL
    (:func:`s2scale.composite.mask_clouds`); the tiles of one pass are merged
    (:func:`s2scale.composite.merge_observations_block`), several observations are composited
    by their median (:func:`s2scale.composite.composite_block`).
    """
    import dask

    from s2scale.composite import composite_block, mask_clouds, merge_observations_block
    from s2scale.cube import load_cube

    scenes = [s for o in spec.observations for s in o.scenes]
    groups = np.array([i for i, o in enumerate(spec.observations) for _ in o.scenes], np.int64)
    cube = load_cube(
        scenes, bounds=spec.bounds, bands=(*spec.bands, "scl"), chunk_px=max(spec.grid.shape)
    )
    masked = mask_clouds(cube, mask_snow=mask_snow)
    with dask.config.set(scheduler="synchronous"):
        stack = np.asarray(masked.values)
    if spec.composite:
        return composite_block(stack, groups)[0]
    return merge_observations_block(stack, groups)[0]


def read_ortho(
    ortho: OrthoInfo, bounds: Bounds, epsg: int, bands: Sequence[str], *, margin_m: float
) -> OrthoWindow:
    """The orthophoto around a pair window (``bounds`` in ``epsg``), ``margin_m`` wider.

    The window depends on the orthophoto only, so the groups of one orthophoto share it.
    """
    from rasterio.warp import transform_bounds

    b = bounds
    grown = (b[0] - margin_m, b[1] - margin_m, b[2] + margin_m, b[3] + margin_m)
    ortho_bounds = transform_bounds(f"EPSG:{epsg}", ortho.crs, *grown, densify_pts=21)
    return read_ortho_window(ortho, ortho_bounds, bands)  # same band names as the store


def patch_bounds(origins: np.ndarray, grid: TargetGrid, patch_px: int) -> np.ndarray:
    """``(N, 4)`` float64 bounds of LR patches at ``origins`` (row, col) of ``grid``.

    Examples
    --------
    >>> g = TargetGrid("EPSG:32633", 10.0, (1000.0, 0.0, 2000.0, 500.0))
    >>> patch_bounds(np.array([[0, 0], [2, 3]]), g, 2).tolist()
    [[1000.0, 480.0, 1020.0, 500.0], [1030.0, 460.0, 1050.0, 480.0]]
    """
    res = grid.resolution_m
    minx, _, _, maxy = grid.bounds
    o = np.asarray(origins, np.float64).reshape(-1, 2)
    x0 = minx + o[:, 1] * res
    y1 = maxy - o[:, 0] * res
    return np.stack([x0, y1 - patch_px * res, x0 + patch_px * res, y1], axis=1)


def _bounds_in(bounds: np.ndarray, src_crs: str, dst_crs: str, pts: int = 5) -> np.ndarray:
    """Bounding boxes in ``dst_crs`` of boxes in ``src_crs`` (edges densified, vectorised)."""
    from pyproj import Transformer

    if len(bounds) == 0:
        return np.zeros((0, 4))
    t = np.linspace(0.0, 1.0, pts)
    minx, miny, maxx, maxy = (bounds[:, i : i + 1] for i in range(4))
    xs = np.concatenate(
        [minx + (maxx - minx) * t, maxx + 0 * t, minx + (maxx - minx) * t, minx + 0 * t], axis=1
    )
    ys = np.concatenate(
        [miny + 0 * t, miny + (maxy - miny) * t, maxy + 0 * t, miny + (maxy - miny) * t], axis=1
    )
    tx, ty = Transformer.from_crs(src_crs, dst_crs, always_xy=True).transform(xs, ys)
    return np.stack([tx.min(1), ty.min(1), tx.max(1), ty.max(1)], axis=1)


def extract_group(
    spec: GroupSpec, lr: np.ndarray, window: OrthoWindow, *, cfg: PairsConfig, store: str
) -> dict[str, Any]:
    """Make and store the pairs of one group; returns its record (counts, provenance).

    Parameters
    ----------
    spec
        The group.
    lr
        Its Sentinel-2 window (:func:`read_lr`).
    window
        Its orthophoto window (:func:`read_ortho`).
    cfg
        The pair configuration.
    store
        Path of the :class:`~s2scale.pairs.store.PairStore` to write into.

    Returns
    -------
    dict
        The group's record as stored (``patches``, ``counts`` per split, ``dropped`` per
        reason, the correction applied, the scenes and the orthophoto).
    """
    hr_grid = nested_grid(spec.grid, cfg.scale)

    def render(offset: tuple[float, float]) -> np.ndarray:
        return render_hr(
            window,
            hr_grid,
            offset,
            lr_resolution_m=RESOLUTION_M,
            mean_filter_m=cfg.mean_filter_m,
        )

    pairs = study_pairs(
        lr,
        render,
        scale=cfg.scale,
        lr_patch_px=cfg.lr_patch_px,
        stride_px=cfg.stride_px,
        max_shift_px=cfg.max_shift_px,
        coregister=cfg.coregister,
        ssim_min=cfg.ssim_min,
    )
    bounds = patch_bounds(pairs.origins, spec.grid, cfg.lr_patch_px)
    split = location_splits(
        _bounds_in(bounds, spec.grid.crs, cfg.split_crs),
        block_m=cfg.split_block_m,
        fractions=cfg.split_fractions,
        seed=cfg.seed,
    )
    keep = split >= 0
    n = int(keep.sum())
    p, q = cfg.lr_patch_px, cfg.lr_patch_px * cfg.scale
    arrays = {
        "lr": pairs.lr[keep],
        "hr": pairs.hr[keep],
        "lr_mask": np.ones((n, p, p), bool),  # patches are fully valid by construction
        "hr_mask": np.ones((n, q, q), bool),
        "split": split[keep].astype(np.int8),
        "ssim": pairs.ssim[keep].astype(np.float32),
        "shift": pairs.shift[keep].astype(np.float32),
        "bounds": bounds[keep],
    }
    dy, dx = pairs.offset
    obs = spec.observations
    record = {
        "kind": PAIR_KIND,
        "name": spec.gid,
        "ortho_id": spec.ortho.id,
        "ortho": spec.ortho.to_json(),
        "observation": "composite" if spec.composite else obs[0].key,
        "observations": [o.to_json() for o in obs],
        "scene_ids": spec.scene_ids,
        "crs": spec.grid.crs,
        "window": [float(v) for v in spec.bounds],
        "bands": list(spec.bands),
        "clear_fraction": round(float((lr > 0).all(0).mean()), 4),
        "offset_lr_px": [round(dy, 4), round(dx, 4)],
        "offset_m": [round(dx * RESOLUTION_M, 3), round(-dy * RESOLUTION_M, 3)],
        "radiometry": pairs.radiometry,
        "candidates": pairs.counts["candidates"],
        "dropped": {
            "shift": pairs.counts["dropped_shift"],
            "ssim": pairs.counts["dropped_ssim"],
            "split_guard": int((~keep).sum()),
        },
        "counts": {s: int((arrays["split"] == i).sum()) for i, s in enumerate(SPLITS)},
    }
    out = PairStore(store).write_group(spec.gid, arrays, record)
    log.debug("pairs %s: %d of %d candidates kept", spec.gid, n, pairs.counts["candidates"])
    return {k: out[k] for k in ("group", "patches", "counts", "dropped")}


def survey_task(
    ortho: OrthoInfo,
    observations: Sequence[Observation],
    bounds: Bounds,
    *,
    wanted: int,
    min_clear: float,
    mask_snow: bool,
    store: str,
) -> dict[str, Any]:
    """Choose the observations of one orthophoto and record the choice in the store."""
    found = survey_observations(
        ortho, observations, bounds, wanted=wanted, min_clear=min_clear, mask_snow=mask_snow
    )
    record = {
        "ortho_id": ortho.id,
        "crs": f"EPSG:{observations[0].epsg}" if observations else None,
        "window": [float(v) for v in bounds],
        "candidates": len(observations),
        "read": found,
        "accepted": [r["key"] for r in found if r["accepted"]],
    }
    PairStore(store).write_survey(ortho.id, record)
    return record
