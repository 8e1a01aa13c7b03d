"""Training data from real imagery: Sentinel-2 Wald pairs, orthophoto study pairs, mixing.

:func:`build_mixed_store` writes the patch store of a :class:`~s2scale.train.config.DataConfig`
from three kinds of source:

- ``real-s2-wald``: real Sentinel-2 10 m bands
  (:data:`~s2scale.train.realscenes.REAL_S2_SCENES`, read from ``$S2SCALE_SHARED_DATA/s2``) as
  HR targets; the LR inputs are the same patches degraded to 20 m by the Sentinel-2 degradation
  model (:mod:`s2scale.degradation`): the nominal setting in the store, a fresh draw from the
  training ranges on every epoch when the training config sets ``sensor_degradation``. Learning
  20 m -> 10 m and applying the network at 10 m -> 5 m relies on the scale invariance of the
  image statistics (Wald's protocol).
- ``real-ortho-study``: the reference study's orthophoto pairs from real orthophotos
  (``$S2SCALE_SHARED_DATA/orthophoto`` and user files): the RGB photo is turned into
  pseudo-reflectance (NIR synthesised from greenness, :func:`~s2scale.train.sources.
  ortho_to_reflectance`), mean-filtered and resampled to the HR pixel (block mean), and
  histogram-matched band by band to Sentinel-2 (the real scenes' training parts); no
  co-located Sentinel-2 exists for them, so their LR is simulated by the degradation model.
- ``sim-wald-s2``: the simulator's Sentinel-2 10 m image of a few worlds, as Wald pairs;
- ``real-colocated``: real cross-sensor pairs (:mod:`s2scale.pairs.colocated`, default folder
  ``$S2SCALE_SHARED_DATA/worldstrat``): the real Sentinel-2 revisit is the input (stored and
  never re-synthesised: :class:`~s2scale.train.data.PairDataset`'s ``fixed_lr``) and the
  co-located sharper image on the nested grid the target. Only the sites of the ``train`` split
  are cut; the validation and test sites are never seen in training.

Patches are cut from the training parts of the real scenes only: their held-out east parts
(:func:`~s2scale.train.realscenes.split_columns`) are for :mod:`s2scale.train.evaluation`.
Inside the training parts a share of spatial blocks forms the training loop's own validation
split.

The store (:func:`s2scale.pairs.write_patch_store`) records, per patch, its source record
(``source`` index into ``attrs["sources"]``: kind, file, date, product, region, licence) and its
position in that source (``origin_px``: HR row and column of the top-left pixel, in the source
image's full grid). :func:`mixed_indices` draws an epoch's patches with the configured weights.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from s2scale.degradation import degrade_nominal
from s2scale.errors import ConfigError
from s2scale.pairs import (
    PatchSet,
    match_histograms_block,
    split_blocks,
    write_patch_store,
)
from s2scale.sentinel2 import BANDS, DN_SCALE
from s2scale.train.config import DataConfig
from s2scale.train.realscenes import (
    REAL_S2_SCENES,
    ortho_reflectance,
    read_real_scene,
    real_s2_dir,
    split_columns,
)
from s2scale.train.sources import (
    SHARED_DATA_ENV,
    TRAIN_ORTHO,
    real_ortho_dir,
    sim_landscape,
    sim_window,
    simulate_s2_dn,
)

__all__ = ["build_mixed_store", "mixed_indices"]

log = logging.getLogger(__name__)

Progress = Callable[[Iterable[Any]], Iterable[Any]]


# ------------------------------------------------------------------------------ patches
def _cut_patches(
    hr_dn: np.ndarray,
    *,
    scale: int,
    lr_patch_px: int,
    stride_px: int,
    block_px: int,
    val_fraction: float,
    seed: int,
    record: Mapping[str, Any],
    origin_offset: tuple[int, int] = (0, 0),
) -> tuple[PatchSet, np.ndarray]:
    """HR patches of one uint16 image (fully valid only), their nominal LR, split and origins."""
    p = lr_patch_px * scale
    rows, cols = hr_dn.shape[1] - p, hr_dn.shape[2] - p
    step = stride_px * scale
    if rows < 0 or cols < 0:
        log.warning("%s: %s px is smaller than one %d px patch; skipped",
                    record.get("name"), hr_dn.shape[1:], p)  # fmt: skip
        return PatchSet(*_empty(hr_dn.shape[0], lr_patch_px, scale), sources=[dict(record)]), (
            np.zeros((0, 2), np.int32)
        )
    valid = (hr_dn > 0).all(0)
    origins = np.array(
        [
            (r, c)
            for r in range(0, rows + 1, step)
            for c in range(0, cols + 1, step)
            if valid[r : r + p, c : c + p].all()
        ],
        dtype=np.int64,
    ).reshape(-1, 2)
    hr = np.stack([hr_dn[:, r : r + p, c : c + p] for r, c in origins]) if len(origins) else None
    if hr is None:
        return PatchSet(*_empty(hr_dn.shape[0], lr_patch_px, scale), sources=[dict(record)]), (
            np.zeros((0, 2), np.int32)
        )
    lr = degrade_nominal(hr.astype(np.float64), scale, bands=BANDS[: hr.shape[1]])
    lr = np.clip(np.round(lr), 1, 65535).astype(np.uint16)
    split = split_blocks(
        origins // scale,
        patch_px=lr_patch_px,
        block_px=block_px,
        fractions=(1 - val_fraction, val_fraction, 0.0),
        seed=seed,
    )
    keep = split >= 0
    info = dict(record)
    info.update(patches=int(keep.sum()), lr="nominal Sentinel-2 degradation (stored); training "
                "draws from sensor_degradation when set")  # fmt: skip
    patches = PatchSet(
        lr=lr[keep],
        hr=hr[keep],
        split=split[keep].astype(np.int8),
        source=np.zeros(int(keep.sum()), np.int16),
        sources=[info],
    )
    return patches, (origins[keep] + np.asarray(origin_offset)).astype(np.int32)


def _empty(bands: int, lr_patch_px: int, scale: int) -> tuple[np.ndarray, ...]:
    """Arrays of an empty :class:`PatchSet`."""
    p = lr_patch_px * scale
    return (
        np.zeros((0, bands, lr_patch_px, lr_patch_px), np.uint16),
        np.zeros((0, bands, p, p), np.uint16),
        np.zeros(0, np.int8),
        np.zeros(0, np.int16),
    )


def _real_s2_parts(cfg: DataConfig, folder: Path | None, scale: int) -> list[tuple[PatchSet, Any]]:
    """``real-s2-wald`` patches of the training parts of every real scene."""
    parts = []
    for scene in REAL_S2_SCENES:
        dn = read_real_scene(scene, folder)
        cols = split_columns(dn.shape[2], cfg.val_fraction, cfg.guard_px)[0]
        record = {
            "kind": "real-s2-wald",
            "name": scene.name,
            "file": scene.file,
            "date": scene.date,
            "product": scene.product,
            "place": scene.place,
            "licence": scene.licence,
            "columns": [cols.start, cols.stop],
            "held_out_columns_from": split_columns(dn.shape[2], cfg.val_fraction)[1].start,
            "hr": "real Sentinel-2 10 m",
        }
        parts.append(
            _cut_patches(
                dn[:, :, cols],
                scale=scale,
                lr_patch_px=cfg.lr_patch_px,
                stride_px=cfg.stride_px,
                block_px=cfg.block_px,
                val_fraction=cfg.internal_val_fraction,
                seed=cfg.seed,
                record=record,
            )
        )
    return parts


def _s2_reference(folder: Path | None, cfg: DataConfig, n: int = 20000) -> np.ndarray:
    """``(4, 1, n * scenes)`` DN sample of the real scenes' training parts (equal shares)."""
    rng = np.random.default_rng([cfg.seed, 5])
    samples = []
    for scene in REAL_S2_SCENES:
        dn = read_real_scene(scene, folder)
        part = dn[:, :, split_columns(dn.shape[2], cfg.val_fraction, cfg.guard_px)[0]]
        flat = part.reshape(4, -1)
        flat = flat[:, (flat > 0).all(0)]
        samples.append(flat[:, rng.choice(flat.shape[1], min(n, flat.shape[1]), replace=False)])
    return np.concatenate(samples, axis=1)[:, None, :]


def _ortho_parts(
    cfg: DataConfig, folder: Path | None, s2_folder: Path | None, scale: int
) -> list[tuple[PatchSet, Any]]:
    """``real-ortho-study`` patches: training orthophotos, resampled, histogram-matched."""
    files: list[tuple[Path, tuple[float, float] | None, str]] = []
    if folder is not None and folder.is_dir():
        files += [(folder / f, rng_, "OGD Kanton Zürich (Orthofoto Sommer 2014)")
                  for f, rng_ in TRAIN_ORTHO.items() if (folder / f).is_file()]  # fmt: skip
    files += [(Path(p), None, "user-given") for p in cfg.ortho_paths]
    if not files:
        raise ConfigError(
            f"data.mix asks for real-ortho-study but no orthophoto was found (set "
            f"{SHARED_DATA_ENV} to the folder with orthophoto/, or list data.ortho_paths)"
        )
    reference = _s2_reference(s2_folder, cfg)
    parts = []
    for path, x_range, licence in files:
        for pixel_m in cfg.ortho_pixels_m:
            refl = ortho_reflectance(path, x_range, pixel_m)
            matched = match_histograms_block(refl * DN_SCALE, reference, nodata=0)
            hr = np.clip(np.round(matched), 1, 65535).astype(np.uint16)
            record = {
                "kind": "real-ortho-study",
                "name": f"{path.name}@{pixel_m}m",
                "file": str(path.name),
                "x_range": list(x_range) if x_range else None,
                "hr_pixel_m": pixel_m,
                "hr": "real orthophoto, mean filter + block-mean resampling, histogram-matched "
                "per band to the real Sentinel-2 training parts",
                "nir": "SYNTHETIC from RGB greenness",
                "lr_label": "simulated LR (Sentinel-2 degradation model)",
                "licence": licence,
            }
            parts.append(
                _cut_patches(
                    hr,
                    scale=scale,
                    lr_patch_px=cfg.lr_patch_px,
                    stride_px=max(4, cfg.stride_px // 2),
                    block_px=10**6,
                    val_fraction=0.0,
                    seed=cfg.seed,
                    record=record,
                )
            )
    return parts


def _sim_parts(
    cfg: DataConfig, scale: int, progress: Progress | None
) -> list[tuple[PatchSet, Any]]:
    """``sim-wald-s2`` patches: the simulator's Sentinel-2 10 m image of each seed."""
    parts = []
    for seed in progress(cfg.sim_seeds) if progress else cfg.sim_seeds:
        grid = sim_window(seed, cfg.sim_area_m)
        dn, _ = simulate_s2_dn(sim_landscape(seed, grid), grid, seed)
        record = {
            "kind": "sim-wald-s2",
            "name": f"sim{seed}",
            "seed": seed,
            "crs": grid.crs,
            "bounds": list(grid.bounds),
            "hr": "simulated Sentinel-2 10 m (s2scale.sim)",
        }
        parts.append(
            _cut_patches(
                dn,
                scale=scale,
                lr_patch_px=cfg.lr_patch_px,
                stride_px=cfg.stride_px,
                block_px=cfg.block_px,
                val_fraction=cfg.internal_val_fraction,
                seed=cfg.seed + seed,
                record=record,
            )
        )
    return parts


def build_mixed_store(
    out_store: str | Path,
    cfg: DataConfig,
    *,
    scale: int = 2,
    s2_folder: str | Path | None = None,
    ortho_folder: str | Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write the patch store of ``cfg`` (every source kind with a positive weight).

    Parameters
    ----------
    out_store
        Zarr v3 store to (over)write.
    cfg
        Sources, weights, patch sizes and held-out parts.
    scale
        HR pixels per LR pixel edge.
    s2_folder, ortho_folder
        Real Sentinel-2 and orthophoto folders (default ``$S2SCALE_SHARED_DATA/s2`` and
        ``/orthophoto``).
    progress
        Wraps the iterable of simulator seeds, e.g. ``tqdm.tqdm``.

    Returns
    -------
    pathlib.Path
        The store: arrays ``lr`` (nominal degradation), ``hr``, ``split``, ``source``,
        ``origin_px``; attrs ``sources`` (one record per source) and ``provenance`` (``data``:
        the DataConfig, ``mix``: the normalised weights).

    Raises
    ------
    ConfigError
        If a weighted source has no data (the message says which folder to set).
    """
    t0 = time.perf_counter()
    s2_dir = Path(s2_folder) if s2_folder is not None else real_s2_dir()
    ortho_dir = Path(ortho_folder) if ortho_folder is not None else real_ortho_dir()
    weights = cfg.weights
    if {"real-s2-wald", "real-ortho-study"} & set(weights) and (
        s2_dir is None or not s2_dir.is_dir()
    ):
        raise ConfigError(
            f"data.mix uses real data but the Sentinel-2 folder {s2_dir} is absent; set "
            f"{SHARED_DATA_ENV} to the reference data folder (with s2/ and orthophoto/) or give "
            "real-s2-wald and real-ortho-study weight 0"
        )
    parts: list[tuple[PatchSet, Any]] = []
    colocated_sites: dict[str, str] | None = None
    if "real-colocated" in weights:
        colocated, colocated_sites = _colocated_parts(cfg, scale)
        parts += colocated
    if "real-s2-wald" in weights:
        parts += _real_s2_parts(cfg, s2_dir, scale)
    if "real-ortho-study" in weights:
        parts += _ortho_parts(cfg, ortho_dir, s2_dir, scale)
    if "sim-wald-s2" in weights:
        parts += _sim_parts(cfg, scale, progress)
    parts = [(p, o) for p, o in parts if len(p)]
    patches = PatchSet.concat([p for p, _ in parts])
    origins = np.concatenate([o for _, o in parts])
    provenance = {
        "builder": "s2scale.train.realdata.build_mixed_store",
        "data": asdict(cfg),
        "mix": weights,
        "scale": scale,
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    if colocated_sites is not None:
        provenance["colocated_sites"] = colocated_sites
    path = write_patch_store(out_store, patches, bands=BANDS, scale=scale, provenance=provenance)
    _write_origins(path, origins)
    log.info("mixed store %s: %d patches from %d sources in %.0fs",
             path, len(patches), len(patches.sources), time.perf_counter() - t0)  # fmt: skip
    return path


def colocated_dir(cfg: DataConfig) -> Path:
    """Folder of the co-located sites: ``cfg.colocated_dir`` or ``$S2SCALE_SHARED_DATA/worldstrat``.

    Raises
    ------
    ConfigError
        If neither is set or the folder is absent.
    """
    root = cfg.colocated_dir or (
        str(Path(os.environ[SHARED_DATA_ENV]) / "worldstrat") if SHARED_DATA_ENV in os.environ
        else None
    )  # fmt: skip
    if root is None or not Path(root).is_dir():
        raise ConfigError(
            f"data.mix uses real-colocated but the sites folder {root} is absent; set "
            f"data.colocated_dir or {SHARED_DATA_ENV} (with worldstrat/), or give it weight 0"
        )
    return Path(root)


def _colocated_parts(
    cfg: DataConfig, scale: int
) -> tuple[list[tuple[PatchSet, Any]], dict[str, str]]:
    """``real-colocated`` patches of the training sites' kept pairs, and every site's split.

    The LR of each patch is the real revisit (stored); the split is ``train``, ``val``, ``test``
    or ``unused`` (no pair kept).
    """
    from s2scale.pairs.colocated import colocated_pairs, colocated_patches

    root = colocated_dir(cfg)
    pairs, summary = colocated_pairs(root, splits=["train"])
    if not pairs:
        raise ConfigError(f"no co-located training pair under {str(root)!r} passes the selection")
    patches, origins = colocated_patches(pairs, lr_patch_px=cfg.lr_patch_px,
                                         stride_px=cfg.stride_px)  # fmt: skip
    # inside the training sites, spatial blocks form the loop's own validation split
    split = split_blocks(origins, patch_px=cfg.lr_patch_px, block_px=cfg.block_px,
                         fractions=(1 - cfg.internal_val_fraction, cfg.internal_val_fraction,
                                    0.0), seed=cfg.seed)  # fmt: skip
    keep = split >= 0
    for i, record in enumerate(patches.sources):
        record["patches"] = int((keep & (patches.source == i)).sum())
    patches = PatchSet(lr=patches.lr[keep], hr=patches.hr[keep],
                       split=split[keep].astype(np.int8), source=patches.source[keep],
                       sources=patches.sources)  # fmt: skip
    parts = [(patches, (origins[keep] * scale).astype(np.int32))]
    log.info("real-colocated: %d patches from %d pairs of the training sites %s",
             len(patches), len(pairs),
             sorted(n for n, v in summary["sites"].items() if v == "train"))  # fmt: skip
    return parts, dict(summary["sites"])


def _write_origins(path: Path, origins: np.ndarray) -> None:
    """Add the ``origin_px`` array (N, 2) int32 to a patch store."""
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    arr = group.create_array("origin_px", shape=origins.shape, dtype=np.int32,
                             chunks=(max(1, min(4096, len(origins))), 2))  # fmt: skip
    arr[...] = origins
    arr.attrs["description"] = "HR (row, col) of each patch's top-left pixel in its source image"


def mixed_indices(
    kinds: Sequence[str],
    weights: Mapping[str, float],
    n: int,
    seed: int = 0,
    *,
    groups: Sequence[str] | None = None,
) -> np.ndarray:
    """Patch indices of one epoch in which each kind has its share ``weights[kind]`` of ``n``.

    A kind with fewer patches than its share is repeated (each repeat gets its own flips and
    degradation draw in :class:`~s2scale.train.data.PairDataset`); one with more is subsampled.

    Parameters
    ----------
    kinds
        Source kind of every patch.
    weights
        Kind -> weight (normalised here); kinds not listed are left out.
    n
        Patches per epoch.
    seed
        Seed of the draw.
    groups
        Source group (e.g. file) of every patch: a kind's share is then split equally over its
        groups (``DataConfig.balance="files"``); ``None`` draws uniformly over its patches.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` int64 indices, grouped by kind (the sampler shuffles them).

    Raises
    ------
    ConfigError
        If a weighted kind has no patch.

    Examples
    --------
    >>> idx = mixed_indices(["a", "a", "a", "b"], {"a": 0.5, "b": 0.5}, 8)
    >>> sorted(idx.tolist()).count(3)
    4
    """
    kinds_arr = np.asarray(list(kinds))
    active = {k: float(w) for k, w in weights.items() if w > 0}
    total = sum(active.values())
    if not total > 0 or n < 1:
        raise ConfigError(f"mixing needs positive weights and n >= 1, got {dict(weights)}, n={n}")
    rng = np.random.default_rng([seed, 6])
    counts = {k: round(n * w / total) for k, w in active.items()}
    last = max(counts, key=lambda k: counts[k])
    counts[last] += n - sum(counts.values())
    out = []
    for kind, count in counts.items():
        pool = np.flatnonzero(kinds_arr == kind)
        if not len(pool):
            raise ConfigError(
                f"data.mix gives {kind!r} weight {active[kind]:g} but the store has no such "
                f"patch (kinds present: {sorted(set(kinds_arr.tolist()))}); rebuild the store "
                "or set its weight to 0"
            )
        if groups is None:
            out.append(_draw(pool, count, rng))
            continue
        group_of = np.asarray(list(groups))[pool]
        names = sorted(set(group_of.tolist()))
        shares = [count // len(names) + (i < count % len(names)) for i in range(len(names))]
        out += [_draw(pool[group_of == g], c, rng) for g, c in zip(names, shares, strict=True)]
    return np.concatenate(out).astype(np.int64)


def _draw(pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` indices from ``pool``: whole permutations, repeated as needed, then a part."""
    reps = -(-count // len(pool))
    return np.concatenate([rng.permutation(pool) for _ in range(reps)])[:count]
