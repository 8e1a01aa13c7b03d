"""Evaluation runs: score every model on every input and write the report files."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s2scale import __version__
from s2scale.evaluate import data as evdata
from s2scale.evaluate import report as evreport
from s2scale.evaluate.data import EvalImage, Window
from s2scale.evaluate.score import (
    EvaluateConfig,
    aggregate,
    resolve_models,
    score_output,
    timed_outputs,
)

__all__ = [
    "evaluate_colocated",
    "evaluate_mosaic",
    "evaluate_patches",
    "evaluate_rasters",
    "evaluate_wald",
]

log = logging.getLogger(__name__)


def _perceptual(cfg: EvaluateConfig) -> Any:
    """The perceptual metric and its description for every output."""
    from s2scale.metrics import load_perceptual

    metric = load_perceptual(cfg.perceptual, cfg.lpips_net)
    lo, hi = cfg.stretch
    desc = {
        "metric": metric.kind, "label": metric.label, "backbone": metric.backbone,
        "input": f"red, green, blue; reflectance {lo:g}-{hi:g} mapped linearly to [-1, 1] "
        "(clipped)",
    }  # fmt: skip
    if metric.kind != "lpips":
        desc["note"] = (
            "ST-LPIPS, not LPIPS: the LPIPS weights were not found (import them "
            "with `s2scale weights import-lpips`); not comparable to LPIPS values"
        )
    return metric, desc


def _notes(cfg: EvaluateConfig) -> dict[str, str]:
    return {
        "scores": (
            f"on reflectance (DN / 10000, data range 1.0), {cfg.border_px} output px left out "
            "along every edge; PSNR and SSIM (Gaussian window 11, sigma 1.5, per band, "
            "averaged) by scikit-image; bias = mean(output) / mean(reference) - 1 per band; SAM "
            "= mean spectral angle; consistency = output degraded by the nominal Sentinel-2 PSF "
            f"and a {cfg.scale}x{cfg.scale} mean vs the input; HF energy = share of spectral "
            "power above the input's Nyquist frequency, as a ratio to bicubic's"
        ),
    }


def _finish(
    report: dict[str, Any],
    out: Path,
    titles: list[str],
    rows: list[list[np.ndarray]],
) -> dict[str, Any]:
    """Write report.json, report.md, crops.png and metrics.png into ``out``."""
    files = {
        k: str(out / f)
        for k, f in (
            ("json", "report.json"),
            ("markdown", "report.md"),
            ("crops", "crops.png"),
            ("metrics", "metrics.png"),
        )
    }
    report["files"] = files
    p = report.get("perceptual")
    title = "s2scale evaluate" + (f" - {p['label']}, {p['backbone']}" if p else "")
    evreport.metrics_figure(report["models"], out / "metrics.png", perceptual=p,
                            reference=report.get("reference"), title=title)  # fmt: skip
    evreport.crops_figure(titles, rows, out / "crops.png")
    (out / "report.md").write_text(evreport.markdown(report))
    evreport.write_json(report, out / "report.json")
    log.info("evaluate: wrote %s", files["json"])
    return report


def _nearest(lr: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(lr, scale, axis=-2), scale, axis=-1)


def _evaluate_images(
    images: Sequence[EvalImage],
    info: dict[str, Any],
    cfg: EvaluateConfig,
    out: Path,
    *,
    patches: bool = False,
) -> dict[str, Any]:
    """Run every model on ``images``, score, aggregate (per split) and write the report."""
    out.mkdir(parents=True, exist_ok=True)
    entries, skipped = resolve_models(cfg.models, skip_missing=cfg.skip_missing)
    has_hr = all(im.hr is not None for im in images)
    metric, desc = _perceptual(cfg) if has_hr else (None, None)
    scores: dict[str, list[dict[str, Any]]] = {}
    outputs: dict[str, list[np.ndarray]] = {}
    timings: dict[str, float] = {}
    for entry in entries:
        outs, seconds = timed_outputs(entry, images, cfg, patches=patches)
        timings[entry.name] = round(seconds, 2)
        scores[entry.name] = [
            score_output(sr, np.asarray(im.lr.values), im.hr, perceptual=metric, cfg=cfg)
            for sr, im in zip(outs, images, strict=True)
        ]
        outputs[entry.name] = outs
        log.info("evaluate: %s on %d images in %.1f s", entry.name, len(images), seconds)
    report: dict[str, Any] = {
        "s2scale_version": __version__, "data": info, "perceptual": desc, "notes": _notes(cfg),
        "models": {}, "model_cards": {e.name: e.card for e in entries}, "skipped": skipped,
        "timings_s": timings,
    }  # fmt: skip
    if patches and info.get("mode") == "colocated":
        report["sites"] = {}
        for site in dict.fromkeys(im.name.split("/")[0] for im in images):
            idx = [i for i, im in enumerate(images) if im.name.split("/")[0] == site]
            part = {name: aggregate([rows[i] for i in idx]) for name, rows in scores.items()}
            report["sites"][site] = {"split": images[idx[0]].split, "n": len(idx),
                                     "models": part}  # fmt: skip
    if patches:
        report["splits"] = {}
        for split in dict.fromkeys(im.split for im in images):
            idx = [i for i, im in enumerate(images) if im.split == split]
            part = {name: aggregate([rows[i] for i in idx]) for name, rows in scores.items()}
            report["splits"][split] = {"n": len(idx), "models": part}
        report["models"] = {name: aggregate(rows) for name, rows in scores.items()}
    else:
        report["models"] = {name: rows[0] for name, rows in scores.items()}
    if has_hr and not patches:
        from s2scale.metrics import high_frequency_energy, upsample_bicubic

        im = images[0]
        hr = np.asarray(im.hr, np.float64) / 1e4
        up = upsample_bicubic(np.asarray(im.lr.values, np.float64) / 1e4, cfg.scale)
        cut = 0.5 / cfg.scale
        report["reference"] = {"hf_energy_ratio": high_frequency_energy(hr, cutoff=cut)
                               / high_frequency_energy(up, cutoff=cut)}  # fmt: skip
    titles = ["input (nearest)", *outputs, *(["reference"] if has_hr else [])]
    rows: list[list[np.ndarray]] = []
    if patches:
        texture = [float(np.asarray(im.hr, np.float32)[:3].mean(0).std()) for im in images]
        for i in np.argsort(texture)[::-1][: cfg.crops]:
            im = images[int(i)]
            rows.append(
                [
                    _nearest(np.asarray(im.lr.values), cfg.scale),
                    *(o[int(i)] for o in outputs.values()),
                    *([im.hr] if has_hr else []),
                ]
            )
    else:
        im = images[0]
        base = im.hr if has_hr else next(iter(outputs.values()))[0]
        size = min(cfg.crop_px, *base.shape[-2:])
        lr_up = _nearest(np.asarray(im.lr.values), cfg.scale)
        for r, c in evreport.choose_crops(base, cfg.crops, size):
            cut = np.s_[:, r : r + size, c : c + size]
            rows.append([lr_up[cut], *(o[0][cut] for o in outputs.values()),
                         *([im.hr[cut]] if has_hr else [])])  # fmt: skip
    return _finish(report, out, titles, rows)


def evaluate_rasters(
    lr: str | Path,
    hr: str | Path | None,
    out: str | Path,
    cfg: EvaluateConfig,
    *,
    window: Window | None = None,
    bands: Sequence[int] | None = None,
    dn_scale: float | None = None,
) -> dict[str, Any]:
    """Score the models on an LR raster against its HR on the nested grid; write the report.

    Without ``hr`` only the no-reference checks are made. Writes ``out/report.json``,
    ``report.md``, ``crops.png`` and ``metrics.png``.

    Returns
    -------
    dict
        The report (``report["models"][name]`` holds the scores, names as given).

    Raises
    ------
    GridMismatchError
        The HR is not exactly ``cfg.scale`` times the LR on the same grid.
    CheckpointError
        A model without weights (see :attr:`EvaluateConfig.skip_missing`), or
        ``cfg.perceptual="lpips"`` without LPIPS weights.
    """
    images, info = evdata.raster_images(lr, hr, scale=cfg.scale, window=window, bands=bands,
                                        dn_scale=dn_scale)  # fmt: skip
    return _evaluate_images(images, info, cfg, Path(out))


def evaluate_wald(
    hr: str | Path,
    out: str | Path,
    cfg: EvaluateConfig,
    *,
    window: Window | None = None,
    bands: Sequence[int] | None = None,
    dn_scale: float | None = None,
    pixel_m: float | None = None,
) -> dict[str, Any]:
    """Wald's protocol on an HR raster: its nominal Sentinel-2 degradation is the input.

    See :func:`evaluate_rasters` for the outputs; ``pixel_m`` area-averages the HR first.
    """
    images, info = evdata.wald_images(hr, scale=cfg.scale, window=window, bands=bands,
                                      dn_scale=dn_scale, pixel_m=pixel_m)  # fmt: skip
    return _evaluate_images(images, info, cfg, Path(out))


def evaluate_patches(
    store: str | Path,
    out: str | Path,
    cfg: EvaluateConfig,
    *,
    splits: Sequence[str] | None = None,
    max_patches: int | None = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """The study's table on a patch store: mean and std per split (and over all splits).

    ``report["splits"][split]["models"][name]`` holds ``{metric: mean, metric_std: std, n}``;
    ``report["models"]`` the same over every scored patch.
    """
    images, info = evdata.patch_images(store, splits=splits, max_patches=max_patches, seed=seed)
    return _evaluate_images(images, info, cfg, Path(out), patches=True)


def evaluate_colocated(
    root: str | Path,
    out: str | Path,
    cfg: EvaluateConfig,
    *,
    splits: Sequence[str] | None = None,
    config: Any = None,
) -> dict[str, Any]:
    """Score on real co-located pairs (:mod:`s2scale.pairs.colocated`): per site and split.

    Every kept revisit of every site is one image, run whole through the block kernel with
    mirrored context (as at an array edge). ``report["sites"][site]`` holds the site's split,
    its pair count and per-model means; ``report["splits"][split]`` the means per split;
    ``report["data"]["records"]`` every pair's selection record (kept or dropped, and why).
    """
    images, info = evdata.colocated_images(root, splits=splits, config=config)
    return _evaluate_images(images, info, cfg, Path(out), patches=True)


def evaluate_mosaic(
    store: str | Path,
    reference: str | Path,
    out: str | Path,
    cfg: EvaluateConfig,
    *,
    window: Window | None = None,
    bands: Sequence[int] | None = None,
    dn_scale: float | None = None,
) -> dict[str, Any]:
    """Score a mosaic store against a reference raster.

    A reference at the mosaic's pixel size is a full reference; one ``cfg.scale`` times coarser
    (e.g. the mosaic's own 10 m input) gets the no-reference checks.

    The mosaic is reported under its store name (e.g. ``"mosaic.zarr"``).
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sr, hr, lr, info = evdata.mosaic_images(store, reference, scale=cfg.scale, window=window,
                                            bands=bands, dn_scale=dn_scale)  # fmt: skip
    metric, desc = _perceptual(cfg) if hr is not None else (None, None)
    name = Path(str(store).rstrip("/")).name
    scores = score_output(sr, lr, hr, perceptual=metric, cfg=cfg)
    report: dict[str, Any] = {
        "s2scale_version": __version__, "data": info, "perceptual": desc, "notes": _notes(cfg),
        "models": {name: scores}, "model_cards": {}, "skipped": {},
        "timings_s": {name: round(time.perf_counter() - t0, 2)},
    }  # fmt: skip
    base = hr if hr is not None else sr
    size = min(cfg.crop_px, *base.shape[-2:])
    titles = [*(["input (nearest)"] if lr is not None else []), name,
              *(["reference"] if hr is not None else [])]  # fmt: skip
    rows = []
    for r, c in evreport.choose_crops(base, cfg.crops, size):
        cut = np.s_[:, r : r + size, c : c + size]
        row = [sr[cut]] if lr is None else [_nearest(lr, cfg.scale)[cut], sr[cut]]
        rows.append(row + ([hr[cut]] if hr is not None else []))
    return _finish(report, out, titles, rows)
