"""Jobs that are not national runs: the sample, training pairs and training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s2scale.pipeline.common import timed

__all__ = ["run_pairs", "run_sample", "run_train"]


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
    out: str | Path, *, seeds: list[int], include_real_ortho: bool = True
) -> dict[str, Any]:
    """Build the training patch store (see :func:`s2scale.train.recipes.build_training_data`)."""
    from s2scale.train.recipes import build_training_data

    timings: dict[str, float] = {}
    with timed("pairs", timings):
        build_training_data(Path(out), seeds=tuple(seeds), include_real_ortho=include_real_ortho)
    return {"store": str(out), "seeds": seeds, "timings_s": timings}


def run_train(
    config: str | Path,
    out: str | Path,
    *,
    data: str | Path | None,
    work: str | Path,
    warm: bool = True,
    evaluate: bool = True,
) -> dict[str, Any]:
    """Train the generator of a TrainConfig (YAML path or shipped name) into ``out/<stem>.pt``."""
    from s2scale.train.recipes import resolve_config, train_shipped

    path = resolve_config(config)
    timings: dict[str, float] = {}
    with timed("train", timings):
        ckpt = train_shipped(path.stem, Path(out), config=path, store=data, work_dir=work,
                             warm=warm, evaluate=evaluate)  # fmt: skip
    return {"checkpoint": str(ckpt), "work": str(work), "timings_s": timings}
