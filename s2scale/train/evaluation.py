"""Held-out evaluation of trained generators against bicubic (the numbers of the model cards).

The main case is **Wald's protocol on real Sentinel-2**: the held-out east part of every real
scene (:func:`s2scale.train.realscenes.validation_scenes`, never cut into training patches) is
degraded 10 m -> 20 m with the nominal Sentinel-2 PSF and a 2x2 mean
(:func:`s2scale.degradation.degrade_nominal`), rounded to whole DN, upscaled x2 and scored
against the real 10 m bands. The held-out part of the real orthophoto is scored the same way
("simulated LR": its LR is the degradation model's), and the held-out simulator world on the
study's task (simulated 10 m -> 5 m truth).

Scores (:func:`score`) are :func:`s2scale.metrics.score_image`'s, the scoring of every s2scale
report: PSNR and SSIM on reflectance (data range 1, the output clipped at 0), LPIPS v0.1
(AlexNet) on the RGB bands with the true-colour stretch :data:`s2scale.metrics.RGB_STRETCH`
(ST-LPIPS, labelled, only where the LPIPS weights were not imported), the mean reflectance bias
per band of the output against the reference, and the consistency of the output with its own
input (the output degraded by the nominal PSF against the LR), all inside the same border and
without no-data pixels; :func:`score` only renames and rounds them for the model cards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from s2scale.degradation import degrade_nominal
from s2scale.metrics import PerceptualMetric
from s2scale.pairs import wald_pairs
from s2scale.sentinel2 import DN_SCALE, to_reflectance
from s2scale.train.realscenes import heldout_ortho, real_s2_dir, validation_scenes
from s2scale.train.sources import (
    HELD_OUT_SEED,
    SHARED_DATA_ENV,
    sim_landscape,
    sim_window,
    simulate_s2_dn,
)

__all__ = [
    "bicubic",
    "evaluate_all",
    "evaluate_generator",
    "evaluate_real_s2",
    "heldout_real_ortho",
    "heldout_scene",
    "run_model",
    "score",
    "wald_input",
]

Upscaler = Callable[[np.ndarray], np.ndarray]
"""``f(lr (C, h, w) reflectance) -> (C, 2h, 2w) reflectance``."""


def bicubic(lr: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """Bicubic upsampling of ``(N, C, h, w)`` (``align_corners=False``), the baseline."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)


def wald_input(hr: np.ndarray, scale: int = 2) -> np.ndarray:
    """The Wald-protocol input of an HR reflectance image: nominal degradation, whole DN."""
    return np.round(degrade_nominal(hr, scale) * DN_SCALE) / DN_SCALE


def heldout_scene(
    seed: int = HELD_OUT_SEED, *, size_m: float = 2880.0, wald: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """A simulated evaluation pair in reflectance ``(lr (4, h, w), hr (4, 2h, 2w))`` float32.

    ``wald=False``: the study's task, simulated S2 10 m (clear sky) -> 5 m truth. ``wald=True``:
    Wald's protocol on the simulated S2 10 m image (Gaussian PSF sigma 0.55 LR px + 2x2 mean to
    20 m, no added noise).
    """
    grid = sim_window(seed, size_m)
    landscape = sim_landscape(seed, grid)
    s2, layers = simulate_s2_dn(landscape, grid, seed)
    if wald:
        lr, hr = wald_pairs(s2, 2, 0.55)
    else:
        from s2scale.sim import to_dn

        lr, hr = s2, to_dn(layers.truth())
    return to_reflectance(lr), to_reflectance(hr)


def heldout_real_ortho(
    pixel_m: float = 2.5, *, ortho_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Held-out real orthophoto pair (SIMULATED LR), reflectance; ``None`` if absent.

    See :func:`s2scale.train.realscenes.heldout_ortho`; the LR is rounded to whole DN.
    """
    pair = heldout_ortho(pixel_m, ortho_dir=ortho_dir)
    if pair is None:
        return None
    lr, hr = pair
    return np.round(lr * DN_SCALE) / DN_SCALE, hr


@torch.no_grad()
def run_model(model: nn.Module, lr: np.ndarray) -> np.ndarray:
    """Run ``model`` on one ``(C, h, w)`` reflectance image on the CPU; reflectance out, float64.

    The model's own normalisation (``model.normalization``, default DN / 10000) is applied; the
    image is edge-padded to even sizes (the Real-ESRGAN x2 layout pixel-unshuffles by 2) and the
    output cropped back.
    """
    from s2scale.models.checkpoint import Normalization

    norm = getattr(model, "normalization", None) or Normalization()
    x = torch.from_numpy(np.asarray(norm.normalize(lr * DN_SCALE), np.float32))[None]
    h, w = x.shape[-2:]
    x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    scale = int(getattr(model, "scale", 2))
    out = model(x)[0, :, : h * scale, : w * scale].double().numpy()
    return np.asarray(norm.denormalize(out)) / DN_SCALE


_CARD_KEYS = (
    ("psnr_db", "psnr", 1, 4),
    ("ssim", "ssim", 1, 5),
    ("bias_pct", "bias", 100, 6),
    ("bias_max_abs_pct", "bias_max_abs", 100, 6),
    ("lpips", "lpips", 1, 5),
    ("stlpips", "stlpips", 1, 5),
    ("consistency_psnr_db", "consistency_psnr", 1, 3),
)
"""``(score_image key, model-card key, divisor, decimals)`` of :func:`score`'s format."""


def score(
    sr: np.ndarray,
    hr: np.ndarray,
    lr: np.ndarray | None = None,
    *,
    metric: PerceptualMetric | None = None,
    border_px: int = 8,
    scale: int = 2,
) -> dict[str, Any]:
    """Scores of one output against its HR reference (and its LR input), as model cards keep them.

    The numbers are :func:`s2scale.metrics.score_image`'s for reflectance input (border crop,
    no-data pixels left out, ``sr`` clipped at 0 for PSNR, SSIM and LPIPS only), renamed to the
    keys that checkpoints, model cards and the quality benchmark's records use, and rounded.

    Parameters
    ----------
    sr, hr
        ``(C, H, W)`` reflectance (output, reference).
    lr
        ``(C, H / scale, W / scale)`` input reflectance, for the consistency scores.
    metric
        A :class:`s2scale.metrics.PerceptualMetric` (LPIPS, or ST-LPIPS as its labelled
        fallback); ``None`` skips the perceptual score.
    border_px
        HR pixels left out on every side (LR pixels: ``border_px // scale + 2``).
    scale
        Upscaling factor.

    Returns
    -------
    dict
        ``psnr`` (dB, 4 decimals), ``ssim`` (5), ``lpips`` or ``stlpips`` (5; ``None`` when the
        cropped image is under 32 px), ``bias`` (per band, relative: ``mean(sr) / mean(hr) -
        1``, 6) and ``bias_max_abs`` (6); with ``lr``, ``consistency_psnr`` (dB, 3) and
        ``consistency_bias_max_abs`` (relative, 6).

    Examples
    --------
    >>> hr = np.full((4, 48, 48), 0.1)
    >>> score(hr * 1.01, hr)["bias"]
    [0.01, 0.01, 0.01, 0.01]
    """
    from s2scale.metrics import score_image

    scores = score_image(sr, hr, lr, border_px=border_px, scale=scale, perceptual=metric)
    if metric is not None:
        scores.setdefault(metric.kind, None)
    out: dict[str, Any] = {}
    for key, card_key, divisor, decimals in _CARD_KEYS:
        if key not in scores:
            continue
        value = scores[key]
        if value is None:
            out[card_key] = None  # the perceptual score of an image under 32 px
        elif isinstance(value, list):
            out[card_key] = [round(float(v) / divisor, decimals) for v in value]
        else:
            out[card_key] = round(float(value) / divisor, decimals)
    if "consistency_bias_pct" in scores:
        worst = float(np.nanmax(np.abs(scores["consistency_bias_pct"]))) / 100
        out["consistency_bias_max_abs"] = round(worst, 6)
    return out


def evaluate_generator(
    model: nn.Module | None,
    lr: np.ndarray,
    hr: np.ndarray,
    *,
    border_px: int = 8,
    stlpips: bool = True,
    stlpips_model: nn.Module | None = None,
) -> dict[str, Any]:
    """:func:`s2scale.metrics.score_image` of ``model`` (or bicubic if None), with ST-LPIPS.

    A quick check for simulated pairs: ``lr`` ``(C, h, w)`` and ``hr`` ``(C, 2h, 2w)`` float
    reflectance, ``border_px`` cropped; ST-LPIPS (:func:`s2scale.metrics.stlpips_metric`,
    ``stlpips_model`` a loaded network to reuse) on the RGB bands with the true-colour stretch,
    if >= 32 px after cropping. Returns the keys of :data:`s2scale.metrics.SCORE_KEYS`
    (``psnr_db``, ``ssim``, ``stlpips``, ``bias_pct``, ..., the consistency scores). The model
    cards use :func:`evaluate_all` (LPIPS, real Sentinel-2).
    """
    from s2scale.metrics import score_image, stlpips_metric

    if model is None:
        sr = bicubic(torch.from_numpy(np.ascontiguousarray(lr, np.float32))[None])[0].numpy()
    else:
        sr = run_model(model, np.asarray(lr, np.float64))
    metric: PerceptualMetric | None = stlpips_metric("alex", stlpips_model) if stlpips else None
    scale = sr.shape[-1] // np.shape(lr)[-1]
    return score_image(sr, hr, lr, border_px=border_px, scale=scale, perceptual=metric)


def _upscalers(model: nn.Module | None) -> dict[str, Upscaler]:
    """``{"bicubic": ..., "model": ...}`` upscalers of reflectance images."""
    from s2scale.metrics import upsample_bicubic

    out: dict[str, Upscaler] = {"bicubic": lambda lr: upsample_bicubic(lr, 2)}
    if model is not None:
        out["model"] = lambda lr: run_model(model, lr)
    return out


def evaluate_real_s2(
    upscalers: dict[str, Upscaler],
    *,
    metric: PerceptualMetric | None = None,
    folder: str | Path | None = None,
    val_fraction: float = 0.3,
) -> dict[str, Any]:
    """Wald protocol on the held-out parts of the real Sentinel-2 scenes, per scene and name.

    Parameters
    ----------
    upscalers
        Name -> ``f(lr reflectance (C, h, w)) -> (C, 2h, 2w)``; e.g. bicubic and a model.
    metric
        Perceptual metric (:func:`s2scale.metrics.load_perceptual`), or ``None``.
    folder
        The ``s2`` folder (default ``$S2SCALE_SHARED_DATA/s2``).
    val_fraction
        Held-out east share (the training data's).

    Returns
    -------
    dict
        ``scenes``: scene name -> ``{"hr_shape", "columns_from", name: scores}``; ``mean``:
        name -> mean of each score over the scenes.
    """
    scenes: dict[str, Any] = {}
    for scene, hr, col0 in validation_scenes(folder, val_fraction=val_fraction):
        lr = wald_input(hr)
        entry: dict[str, Any] = {"hr_shape": list(hr.shape), "columns_from": col0}
        for name, fn in upscalers.items():
            entry[name] = score(fn(lr), hr, lr, metric=metric)
        scenes[scene.name] = entry
    return {"scenes": scenes, "mean": mean_scores(scenes, list(upscalers))}


def mean_scores(scenes: dict[str, Any], names: list[str]) -> dict[str, dict[str, float]]:
    """Mean of every scalar score over the scenes, per upscaler name."""
    out: dict[str, dict[str, float]] = {}
    for name in names:
        rows = [s[name] for s in scenes.values() if name in s]
        keys = [k for k, v in rows[0].items() if isinstance(v, float | int)] if rows else []
        out[name] = {
            k: round(float(np.mean([r[k] for r in rows if r.get(k) is not None])), 5) for k in keys
        }
    return out


def evaluate_all(model: nn.Module, *, seed: int = HELD_OUT_SEED) -> dict[str, Any]:
    """Model and bicubic scores on the held-out real Sentinel-2 parts, orthophoto and world.

    Keys: ``protocol`` and ``perceptual`` (labels), ``real_s2_wald`` (see
    :func:`evaluate_real_s2`), ``ortho_2.5m_simulated_lr`` and ``ortho_1.0m_simulated_lr`` (the
    held-out real orthophoto part), ``sim{seed}_s2_to_truth`` (the simulator's study task).
    Cases whose data are absent say so.
    """
    from s2scale.metrics import load_perceptual

    metric = load_perceptual("auto", "alex")
    ups = _upscalers(model)
    out: dict[str, Any] = {
        "protocol": "Wald protocol on real Sentinel-2 (held-out east 30 % of each scene; 10 m "
        "-> 20 m by the nominal Sentinel-2 PSF, MTF 0.30 at Nyquist, + 2x2 mean; x2; scored "
        "against the real 10 m)",
        "perceptual": f"{metric.label}, {metric.backbone}, RGB bands, reflectance 0-0.3 -> [-1, 1]",
    }
    folder = real_s2_dir()
    if folder is not None and folder.is_dir():
        out["real_s2_wald"] = evaluate_real_s2(ups, metric=metric, folder=folder)
    else:
        out["real_s2_wald"] = f"skipped: no real Sentinel-2 (set {SHARED_DATA_ENV})"
    for pixel_m in (2.5, 1.0):
        pair = heldout_real_ortho(pixel_m)
        key = f"ortho_{pixel_m}m_simulated_lr"
        if pair is None:
            out[key] = f"skipped: no orthophotos (set {SHARED_DATA_ENV})"
            continue
        lr, hr = pair
        out[key] = {"hr_shape": list(hr.shape),
                    **{n: score(f(lr), hr, lr, metric=metric) for n, f in ups.items()}}  # fmt: skip
    lr, hr = heldout_scene(seed)
    lr64, hr64 = lr.astype(np.float64), hr.astype(np.float64)
    out[f"sim{seed}_s2_to_truth"] = {
        "hr_shape": list(hr.shape),
        **{n: score(f(lr64), hr64, metric=metric) for n, f in ups.items()},
    }
    return out
