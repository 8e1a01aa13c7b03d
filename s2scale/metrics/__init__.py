"""Image-quality metrics as pure functions, and the one scoring function every report uses.

Modules, one job each:

- :mod:`~s2scale.metrics.pixel`: :func:`psnr`, :func:`ssim` (numpy, ``valid`` masks) and
  :func:`psnr_torch`, :func:`ssim_torch` (torch batches, the training loop's validation).
- :mod:`~s2scale.metrics.radiometry`: :func:`reflectance_bias`, :func:`spectral_angle` and the
  no-reference checks :func:`consistency`, :func:`high_frequency_energy`, :func:`no_reference`
  (with :func:`upsample_bicubic`, their baseline).
- :mod:`~s2scale.metrics.seams`: :func:`seam_ratio`, :func:`column_seams`.
- :mod:`~s2scale.metrics.perceptual`: LPIPS and ST-LPIPS scoring with a loaded network
  (:class:`PerceptualMetric`, :func:`lpips_score`, :func:`stlpips_score`, :func:`load_perceptual`);
  the networks and their weights are loaded by :mod:`s2scale.models.backbones`.
- :mod:`~s2scale.metrics.score`: :func:`score_image`, the one scoring function (units, border,
  no data, clipping, LPIPS stretch, bias, spectral angle, consistency), used by
  ``s2scale evaluate``, the training recipes' held-out evaluation and model cards, and the demo.

Images are ``(band, y, x)`` arrays, usually surface reflectance (harmonised DN / 10000, data
range 1.0). This package depends only on numpy, scipy, scikit-image, torch (imported inside the
functions that need it, so importing the package stays cheap), :mod:`s2scale.errors` and
:mod:`s2scale.degradation`; perceptual networks come from :mod:`s2scale.models.backbones` when
they are loaded. ``LPIPS_BACKBONE_FILES``, ``STLPIPS_NETS`` and ``load_stlpips`` are that
module's, re-exported here on first use.
"""

from __future__ import annotations

from typing import Any

from s2scale.metrics.perceptual import (
    RGB_BANDS,
    RGB_STRETCH,
    LpipsResult,
    PerceptualMetric,
    StLpipsResult,
    load_lpips,
    load_perceptual,
    lpips_score,
    stlpips_metric,
    stlpips_score,
)
from s2scale.metrics.pixel import SSIM_SIGMA, SSIM_WINDOW_PX, psnr, psnr_torch, ssim, ssim_torch
from s2scale.metrics.radiometry import (
    Degrade,
    consistency,
    high_frequency_energy,
    no_reference,
    reflectance_bias,
    spectral_angle,
    upsample_bicubic,
)
from s2scale.metrics.score import SCORE_KEYS, score_image
from s2scale.metrics.seams import column_seams, seam_ratio

__all__ = [
    "LPIPS_BACKBONE_FILES",
    "RGB_BANDS",
    "RGB_STRETCH",
    "SCORE_KEYS",
    "SSIM_SIGMA",
    "SSIM_WINDOW_PX",
    "STLPIPS_NETS",
    "Degrade",
    "LpipsResult",
    "PerceptualMetric",
    "StLpipsResult",
    "column_seams",
    "consistency",
    "high_frequency_energy",
    "load_lpips",
    "load_perceptual",
    "load_stlpips",
    "lpips_score",
    "no_reference",
    "psnr",
    "psnr_torch",
    "reflectance_bias",
    "score_image",
    "seam_ratio",
    "spectral_angle",
    "ssim",
    "ssim_torch",
    "stlpips_metric",
    "stlpips_score",
    "upsample_bicubic",
]

_FROM_BACKBONES = ("LPIPS_BACKBONE_FILES", "STLPIPS_NETS", "load_stlpips")


def __getattr__(name: str) -> Any:
    """The names of :mod:`s2scale.models.backbones` re-exported here, imported on first use."""
    if name in _FROM_BACKBONES:
        from s2scale.models import backbones

        return getattr(backbones, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """Module attributes, with the lazily re-exported names."""
    return sorted(set(globals()) | set(_FROM_BACKBONES))
