"""Held-out evaluation of trained generators against bicubic (the numbers of the model cards).

The main case is **Wald's protocol on real Sentinel-2**: the held-out east part of every real
scene (:func:`s2scale.train.realdata.validation_scenes`, never cut into training patches) is
degraded 10 m -> 20 m with the nominal Sentinel-2 PSF and a 2x2 mean
(:func:`s2scale.degradation.degrade_nominal`), rounded to whole DN, upscaled x2 and scored
against the real 10 m bands. The held-out part of the real orthophoto is scored the same way
("simulated LR": its LR is the degradation model's), and the held-out simulator world on the
study's task (simulated 10 m -> 5 m truth).

Scores (:func:`score`): PSNR and SSIM on reflectance (data range 1), LPIPS v0.1 (AlexNet) on the
RGB bands with the true-colour stretch :data:`s2scale.metrics.RGB_STRETCH` (ST-LPIPS, labelled,
only where the LPIPS weights were not imported), the mean reflectance bias per band of the output
against the reference, and the consistency of the output with its own input (the output degraded
by the nominal PSF against the LR).
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
from s2scale.pairs import wald_pairs
from s2scale.sentinel2 import DN_SCALE, to_reflectance
from s2scale.train.realdata import heldout_ortho, real_s2_dir, validation_scenes
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

    See :func:`s2scale.train.realdata.heldout_ortho`; the LR is rounded to whole DN.
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


def score(
    sr: np.ndarray,
    hr: np.ndarray,
    lr: np.ndarray | None = None,
    *,
    metric: Any | None = None,
    border_px: int = 8,
    scale: int = 2,
) -> dict[str, Any]:
    """Scores of one output against its HR reference (and its LR input).

    Parameters
    ----------
    sr, hr
        ``(C, H, W)`` reflectance (output, reference); ``sr`` is clipped at 0 for PSNR, SSIM
        and LPIPS, not for the bias.
    lr
        ``(C, H / scale, W / scale)`` input reflectance, for the consistency scores.
    metric
        A :class:`s2scale.metrics.PerceptualMetric` (LPIPS, or ST-LPIPS as its labelled
        fallback); ``None`` skips the perceptual score.
    border_px
        HR pixels cropped on every side before PSNR, SSIM and LPIPS.
    scale
        Upscaling factor.

    Returns
    -------
    dict
        ``psnr``, ``ssim``, ``lpips`` (or ``stlpips``; ``None`` when under 32 px),
        ``bias`` (per band, relative: ``mean(sr) / mean(hr) - 1``), ``bias_max_abs`` and, with
        ``lr``, ``consistency_psnr`` and ``consistency_bias_max_abs``.
    """
    from s2scale.metrics import RGB_STRETCH, consistency, psnr, reflectance_bias, ssim

    b = border_px
    crop = np.s_[:, b : sr.shape[1] - b, b : sr.shape[2] - b]
    pos, ref = np.clip(sr, 0.0, None)[crop], np.asarray(hr, np.float64)[crop]
    bias = reflectance_bias(np.asarray(sr, np.float64), np.asarray(hr, np.float64))
    out: dict[str, Any] = {
        "psnr": round(psnr(pos, ref, 1.0), 4),
        "ssim": round(ssim(pos, ref, 1.0), 5),
        "bias": [round(float(v), 6) for v in bias],
        "bias_max_abs": round(float(np.nanmax(np.abs(bias))), 6),
    }
    if metric is not None:
        key = "lpips" if metric.kind == "lpips" else "stlpips"
        big = min(pos.shape[1:]) >= 32
        out[key] = round(metric(pos, ref, stretch=RGB_STRETCH), 5) if big else None
    if lr is not None:
        cons = consistency(sr, lr, scale=scale)
        out["consistency_psnr"] = round(cons["psnr_db"], 3)
        out["consistency_bias_max_abs"] = round(float(np.nanmax(np.abs(cons["bias"]))), 6)
    return out


def evaluate_generator(
    model: nn.Module | None,
    lr: np.ndarray,
    hr: np.ndarray,
    *,
    border_px: int = 8,
    stlpips: bool = True,
    stlpips_model: nn.Module | None = None,
) -> dict[str, float]:
    """PSNR, SSIM (data range 1 on reflectance) and ST-LPIPS of ``model`` (or bicubic if None).

    A quick check for simulated pairs: ``lr`` ``(C, h, w)`` and ``hr`` ``(C, 2h, 2w)`` float
    reflectance, ``border_px`` cropped; ST-LPIPS (:func:`s2scale.metrics.stlpips_score`) on the
    RGB bands with reflectance ``[0, 1]`` mapped to ``[-1, 1]``, if >= 32 px after cropping. The
    model cards use :func:`evaluate_all` (LPIPS, real Sentinel-2).
    """
    from s2scale.metrics import psnr, ssim, stlpips_score

    if model is None:
        sr = bicubic(torch.from_numpy(np.ascontiguousarray(lr, np.float32))[None])[0].numpy()
    else:
        sr = run_model(model, np.asarray(lr, np.float64))
    sr = np.clip(sr, 0.0, 1.0)
    b = border_px
    sr, ref = (
        sr[:, b : sr.shape[1] - b, b : sr.shape[2] - b],
        hr[:, b : hr.shape[1] - b, b : hr.shape[2] - b],
    )
    out = {"psnr": psnr(sr, ref, 1.0), "ssim": ssim(sr, ref, 1.0)}
    if stlpips and min(sr.shape[1:]) >= 32:
        out["stlpips_alex"] = stlpips_score(sr, ref, net="alex", model=stlpips_model).value
    return {k: round(float(v), 5) for k, v in out.items()}


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
    metric: Any | None = None,
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
