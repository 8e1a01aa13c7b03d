"""Jobs that are not national runs: the sample, training pairs and training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2scale.config import RunConfig
from s2scale.errors import ConfigError
from s2scale.pipeline.common import timed

if TYPE_CHECKING:
    from s2scale.pairs import PairsConfig

__all__ = ["run_colocated_pairs", "run_pairs", "run_sample", "run_train"]


def run_sample(
    out: str | Path,
    *,
    national: bool = False,
    seed: int = 0,
    aoi: str | tuple[float, float, float, float] | None = None,
) -> dict[str, Any]:
    """Write the built-in sample, a simulated sample of ``aoi``, or the national catalog."""
    from s2scale.sim import SAMPLE_AOI, write_sample

    timings: dict[str, float] = {}
    with timed("sample", timings):
        info = write_sample(Path(out), seed=seed, national=national, aoi=aoi or SAMPLE_AOI)
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


def run_pairs(
    out: str | Path,
    *,
    seeds: Sequence[int] | None = None,
    include_real_ortho: bool = True,
    config: PairsConfig | None = None,
    run: RunConfig | None = None,
    client: Any | None = None,
    progress: bool = True,
    overwrite: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Build a training patch store: from orthophotos and Sentinel-2, or from the simulator.

    With ``config.orthophotos``, the pairs of the reference study are made on a Dask cluster
    from those orthophotos and the Sentinel-2 catalog of ``run.catalog`` (see
    :func:`s2scale.pipeline.pairs_run.run_stac_pairs`; ``client``, ``progress``, ``overwrite``
    and ``dry_run`` apply to it). Otherwise the simulator's training data is written for
    ``seeds`` (see :func:`s2scale.train.recipes.build_training_data`).
    """
    if config is not None and config.orthophotos:
        if seeds:
            raise ConfigError("give orthophotos or simulator seeds, not both")
        from s2scale.pipeline.pairs_run import run_stac_pairs

        return run_stac_pairs(config, run or RunConfig(), out, client=client, progress=progress,
                              overwrite=overwrite, dry_run=dry_run)  # fmt: skip
    from s2scale.train.recipes import DEFAULT_SEEDS, build_training_data

    chosen = tuple(seeds) if seeds else DEFAULT_SEEDS
    timings: dict[str, float] = {}
    with timed("pairs", timings):
        build_training_data(Path(out), seeds=chosen, include_real_ortho=include_real_ortho)
    return {"store": str(out), "seeds": list(chosen), "timings_s": timings}


def run_colocated_pairs(
    root: str | Path,
    out: str | Path,
    *,
    lr_patch_px: int = 96,
    stride_px: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Patch store of real co-located pairs (:mod:`s2scale.pairs.colocated`), split by site.

    Every kept pair of the sites under ``root`` is cut into fully valid ``lr_patch_px`` patches
    (the study's 96 px by default); each patch takes its site's split, so ``s2scale evaluate
    --patches STORE --split test`` scores test sites only. The store's provenance holds the
    selection config, every site's split and every pair's record (kept or dropped, and why).

    Raises
    ------
    ConfigError
        If ``out`` exists and ``overwrite`` is not set.
    """
    from s2scale.pairs import write_patch_store
    from s2scale.pairs.colocated import ColocatedConfig, colocated_pairs, colocated_patches

    if Path(out).exists() and not overwrite:
        raise ConfigError(f"{str(out)!r} exists; choose another --out or pass --overwrite")
    timings: dict[str, float] = {}
    with timed("pairs", timings):
        pairs, summary = colocated_pairs(root, ColocatedConfig())
        patches, _ = colocated_patches(pairs, lr_patch_px=lr_patch_px, stride_px=stride_px)
        provenance = {"builder": "s2scale.pairs.colocated", **summary}
        write_patch_store(Path(out), patches, provenance=provenance)
    counts = {s: int((patches.split == i).sum()) for i, s in enumerate(("train", "val", "test"))}
    return {"store": str(out), "pairs": summary["kept"], "pairs_seen": summary["total"],
            "patches": counts, "sites": summary["sites"], "timings_s": timings}  # fmt: skip


def run_train(
    config: str | Path,
    out: str | Path,
    *,
    data: str | Path | None,
    work: str | Path,
    warm: bool = True,
    evaluate: bool = True,
    resume: str | Path | None = None,
) -> dict[str, Any]:
    """Train the generator of a TrainConfig (YAML path or shipped name) into ``out/<stem>.pt``.

    ``resume``: a training checkpoint of the run to continue from (see
    :func:`s2scale.train.recipes.train_shipped`).
    """
    from s2scale.train.recipes import resolve_config, train_shipped

    path = resolve_config(config)
    timings: dict[str, float] = {}
    with timed("train", timings):
        ckpt = train_shipped(path.stem, Path(out), config=path, store=data, work_dir=work,
                             warm=warm, evaluate=evaluate, resume=resume)  # fmt: skip
    return {"checkpoint": str(ckpt), "work": str(work), "timings_s": timings}
