"""Held-out evaluation of trained generators against bicubic (the numbers of the model cards).

Cases: the held-out simulator seed (the study's task, and Wald's protocol on the simulated 10 m
image) and the held-out east part of the real Zürich orthophoto with a simulated LR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from s2scale.pairs import wald_pairs
from s2scale.sentinel2 import to_reflectance
from s2scale.train.sources import (
    HELD_OUT_ORTHO,
    HELD_OUT_SEED,
    SHARED_DATA_ENV,
    real_ortho_dir,
    real_ortho_image,
    sim_landscape,
    sim_window,
    simulate_s2_dn,
)

__all__ = [
    "bicubic",
    "evaluate_all",
    "evaluate_generator",
    "heldout_real_ortho",
    "heldout_scene",
]


def bicubic(lr: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """Bicubic upsampling of ``(N, C, h, w)`` (``align_corners=False``), the baseline."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)


def heldout_scene(
    seed: int = HELD_OUT_SEED, *, size_m: float = 2880.0, wald: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """A simulated evaluation pair in reflectance ``(lr (4, h, w), hr (4, 2h, 2w))`` float32.

    ``wald=False``: the study's task, simulated S2 10 m (clear sky) -> 5 m truth. ``wald=True``:
    Wald's protocol on the simulated S2 10 m image (Gaussian PSF sigma 0.55 LR px + 2x2 mean to
    20 m, no added noise), as the real-S2 check does.
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
    pixel_m: float = 5.0, *, ortho_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Held-out real Zürich orthophoto pair (SIMULATED LR), reflectance; ``None`` if absent.

    The east 40 % of ``1091-322_00_big.tif`` (never trained on), pseudo-reflectance with
    synthetic NIR, area-averaged to ``pixel_m`` (HR) and degraded by Wald's protocol (PSF sigma
    0.55 LR px + 2x2 mean) to the LR.
    """
    folder = Path(ortho_dir) if ortho_dir is not None else real_ortho_dir()
    path = folder / HELD_OUT_ORTHO[0] if folder is not None else None
    if path is None or not path.is_file():
        return None
    hr = real_ortho_image(path, HELD_OUT_ORTHO[1], pixel_m)
    lr, hr = wald_pairs(hr, 2, 0.55)
    return lr, hr


@torch.no_grad()
def _upscale(model: nn.Module, lr: np.ndarray) -> np.ndarray:
    """Run ``model`` on one ``(C, h, w)`` reflectance image (float32, CPU).

    The image is reflect-padded to even sizes (the Real-ESRGAN x2 layout pixel-unshuffles by 2)
    and the output cropped back.
    """
    x = torch.from_numpy(np.ascontiguousarray(lr, np.float32))[None]
    h, w = x.shape[-2:]
    x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    scale = int(getattr(model, "scale", 2))
    return model(x)[0, :, : h * scale, : w * scale].float().numpy()


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

    ``lr`` ``(C, h, w)`` and ``hr`` ``(C, 2h, 2w)`` are float reflectance; ``border_px`` HR pixels
    are cropped on every side before scoring. ST-LPIPS (shift-tolerant, AlexNet-shaped,
    human-judgement-trained; :func:`s2scale.metrics.stlpips_score`) uses the RGB bands with
    reflectance ``[0, 1]`` mapped to ``[-1, 1]``; it needs >= 32 px after cropping.
    """
    from s2scale.metrics import psnr, ssim, stlpips_score

    if model is None:
        sr = bicubic(torch.from_numpy(np.ascontiguousarray(lr, np.float32))[None])[0].numpy()
    else:
        sr = _upscale(model, lr)
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


def evaluate_all(model: nn.Module, *, seed: int = HELD_OUT_SEED) -> dict[str, Any]:
    """Model and bicubic scores on the held-out simulator seed and the held-out real orthophoto."""
    from s2scale.metrics import load_stlpips

    net = load_stlpips("alex")
    cases: dict[str, tuple[np.ndarray, np.ndarray] | None] = {
        f"sim{seed}_s2_to_truth": heldout_scene(seed),
        f"sim{seed}_wald_s2_10m_to_20m": heldout_scene(seed, wald=True),
        "zurich_real_ortho_5m_simulated_lr": heldout_real_ortho(5.0),
        "zurich_real_ortho_2.5m_simulated_lr": heldout_real_ortho(2.5),
    }
    out: dict[str, Any] = {}
    for name, pair in cases.items():
        if pair is None:
            out[name] = f"skipped: no orthophotos (set {SHARED_DATA_ENV})"
            continue
        lr, hr = pair
        out[name] = {
            "model": evaluate_generator(model, lr, hr, stlpips_model=net),
            "bicubic": evaluate_generator(None, lr, hr, stlpips_model=net),
            "hr_shape": list(hr.shape),
        }
    return out
