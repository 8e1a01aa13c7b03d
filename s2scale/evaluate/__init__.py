"""Score super-resolution on any data: rasters, Wald pairs, patch stores and mosaics.

``s2scale evaluate`` (:mod:`s2scale.evaluate.cli`) and the functions below run the models
(``bicubic``, registry names with shipped weights, or checkpoint paths) through the same code as
``s2scale upscale`` and write ``report.json``, ``report.md``, ``crops.png`` and ``metrics.png``:

- :func:`evaluate_rasters`: an LR raster and its HR on the exact 2x nested grid (or the LR
  alone: the no-reference checks);
- :func:`evaluate_wald`: Wald's protocol, the LR made from the HR with the nominal Sentinel-2
  degradation (:func:`s2scale.degradation.degrade_nominal`);
- :func:`evaluate_patches`: a patch store, mean and std per split (the study's table);
- :func:`evaluate_mosaic`: a mosaic store against a reference raster at its resolution, or
  against its own 10 m input (no-reference checks).

Metrics come from :mod:`s2scale.metrics`: PSNR and SSIM on reflectance, LPIPS v0.1 (AlexNet) on
the RGB bands with a stated stretch (ST-LPIPS as the labelled fallback where the LPIPS weights
were not imported), mean reflectance bias per band, spectral angle, consistency with the input
and high-frequency energy added.

Layers: :mod:`~s2scale.evaluate.data` (inputs), :mod:`~s2scale.evaluate.score` (models and
scores), :mod:`~s2scale.evaluate.report` (tables and figures), :mod:`~s2scale.evaluate.run`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s2scale.evaluate.run import (
        evaluate_mosaic,
        evaluate_patches,
        evaluate_rasters,
        evaluate_wald,
    )
    from s2scale.evaluate.score import BICUBIC, EvaluateConfig, ModelEntry, resolve_models

__all__ = [
    "BICUBIC",
    "EvaluateConfig",
    "ModelEntry",
    "evaluate_mosaic",
    "evaluate_patches",
    "evaluate_rasters",
    "evaluate_wald",
    "resolve_models",
]

_HOMES = {
    "BICUBIC": "score", "EvaluateConfig": "score", "ModelEntry": "score",
    "resolve_models": "score", "evaluate_mosaic": "run", "evaluate_patches": "run",
    "evaluate_rasters": "run", "evaluate_wald": "run",
}  # fmt: skip


def __getattr__(name: str) -> object:
    """Import the public names on first use, so ``s2scale --help`` stays fast."""
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"s2scale.evaluate.{_HOMES[name]}"), name)
    raise AttributeError(f"module 's2scale.evaluate' has no attribute {name!r}")
