"""Quality on real co-located pairs: Sentinel-2 10 m against SPOT 6/7 of the same place at 5 m.

Protocol ("real co-located S2/SPOT pairs"): the WorldStrat sites in
``$S2SCALE_SHARED_DATA/worldstrat`` become pairs by :mod:`s2scale.pairs.colocated` (SPOT
multispectral pan-sharpened with its 1.5 m pan band by GDAL's weighted Brovey, area-averaged to
the 5 m grid nested in each Sentinel-2 revisit, registered to it by phase correlation, mapped
to its reflectance per band by a linear fit at 10 m; pairs kept when |delta| <= 30 days and the
red band correlates >= 0.8 at 10 m). Sites are split whole into train / val / test; the models
were trained on the train sites only, the defaults chosen on the val sites (the sweep below),
and the targets are checked on the test sites. Every table carries bicubic, Lanczos and
bicubic + the consistency projection, and each network with ``s2scale.upscale``'s defaults and
raw (``NAME:raw``, no projection). Scores are those of ``s2scale evaluate --pairs`` (the same
code): PSNR / SSIM on reflectance (range 1), LPIPS v0.1 AlexNet on RGB, bias per band.

Run from a clean tree (the record carries the commit)::

    S2SCALE_SHARED_DATA=../shared/data python benchmarks/bench_colocated.py

``--no-record`` prints without writing; ``--skip-sweep`` leaves out the projection-strength sweep.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _record import write_record

from s2scale.config import InferConfig
from s2scale.evaluate.run import evaluate_colocated
from s2scale.evaluate.score import BASELINES, BICUBIC, PROJECTED_BICUBIC, EvaluateConfig
from s2scale.infer.consistency import CONSISTENCY_LOWPASS_PX

MODELS = ("srcnn", "srresnet", "esrgan", "realesrgan")
SWEEP_LOWPASS_PX = (0.0, 2.0, 4.0, 8.0)
"""Projection strengths compared on the validation sites (0 = the full projection)."""
TARGETS = {
    "default_psnr_over_bicubic_db": 0.0,  # mean over test sites, > this
    "default_lpips_ratio_max": 0.75,  # x bicubic's mean LPIPS
    "srresnet_psnr_over_bicubic_db": 0.5,
    "default_worst_site_db": -0.5,
}


def _site_means(report: dict[str, Any], key: str) -> dict[str, dict[str, float]]:
    """``{site: {model: mean key}}`` of an evaluate report."""
    return {s: {m: float(v[key]) for m, v in part["models"].items() if key in v}
            for s, part in report["sites"].items()}  # fmt: skip


def _split_mean(report: dict[str, Any], split: str, key: str) -> dict[str, float]:
    """Mean over the sites of a split (each site weighs the same) per model."""
    sites = [s for s, part in report["sites"].items() if part["split"] == split]
    per = _site_means(report, key)
    models = list(per[sites[0]])
    return {m: round(float(np.mean([per[s][m] for s in sites])), 4) for m in models}


def _site_record(part: dict[str, Any]) -> dict[str, Any]:
    """Split, pair count and per-model means of one site."""
    out: dict[str, Any] = {"split": part["split"], "pairs": part["n"]}
    for key, digits in (("psnr_db", 3), ("ssim", 4), ("lpips", 4), ("bias_max_abs_pct", 3)):
        out[key] = {m: round(float(v[key]), digits) for m, v in part["models"].items()}
    return out


OPERATOR_MTFS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
"""Gaussian PSFs (MTF at the 10 m Nyquist) tried as the operator from 5 m reference to 10 m."""


def operator_fit(root: Path) -> dict[str, float]:
    """PSNR (dB, reflectance) of degrade(reference 5 m) against the real revisit, per MTF, over
    the kept pairs of the training sites: which operator maps the references to Sentinel-2."""
    from s2scale.infer.consistency import degrade_block
    from s2scale.pairs.colocated import colocated_pairs

    pairs, _ = colocated_pairs(root, splits=["train"])
    out = {}
    for mtf in OPERATOR_MTFS:
        errs = []
        for p in pairs:
            ok = np.all(p.hr > 0, 0).reshape(p.lr.shape[1], 2, p.lr.shape[2], 2).all((1, 3))
            ok &= np.all(p.lr > 0, 0)
            ok[:6], ok[-6:], ok[:, :6], ok[:, -6:] = False, False, False, False
            d = degrade_block(p.hr.astype(np.float32), 2, (mtf,) * 4)
            errs.append(np.mean(((d - p.lr)[:, ok] / 1e4) ** 2))
        out[str(mtf)] = round(float(10 * np.log10(1 / np.mean(errs))), 3)
    return out


def check_targets(report: dict[str, Any], default: str) -> dict[str, Any]:
    """The issue's targets on the test sites (site means; every site weighs the same)."""
    psnr = _split_mean(report, "test", "psnr_db")
    lp = _split_mean(report, "test", "lpips")
    sites = [s for s, p in report["sites"].items() if p["split"] == "test"]
    per = _site_means(report, "psnr_db")
    worst = min(per[s][default] - per[s][BICUBIC] for s in sites)
    nets = [m for m in psnr if m not in BASELINES]
    out = {
        "test_sites": sites,
        "default_model": default,
        "default_psnr_over_bicubic_db": round(psnr[default] - psnr[BICUBIC], 3),
        "default_lpips_ratio": round(lp[default] / lp[BICUBIC], 3),
        "default_worst_site_db": round(worst, 3),
        "models_over_projected_bicubic_db": {
            m: round(psnr[m] - psnr[PROJECTED_BICUBIC], 3) for m in nets
        },
    }
    if "srresnet" in psnr:
        out["srresnet_psnr_over_bicubic_db"] = round(psnr["srresnet"] - psnr[BICUBIC], 3)
    out["ok"] = {
        "default_beats_bicubic": out["default_psnr_over_bicubic_db"] > 0,
        "default_lpips_at_most_0.75x_bicubic": out["default_lpips_ratio"] <= 0.75,
        "srresnet_0.5db_over_bicubic": out.get("srresnet_psnr_over_bicubic_db", -99) >= 0.5,
        "no_site_default_below_bicubic_by_0.5db": worst >= -0.5,
        "every_model_beats_projected_bicubic": all(
            v > 0 for v in out["models_over_projected_bicubic_db"].values()
        ),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--pairs", type=Path, default=None,
                        help="sites folder [$S2SCALE_SHARED_DATA/worldstrat]")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="record folder [results/]")
    parser.add_argument("--no-record", action="store_true", help="print, write nothing")
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()
    shared = Path(os.environ.get("S2SCALE_SHARED_DATA", "../shared/data"))
    root = args.pairs or shared / "worldstrat"
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-colocated-"))
    names = [*BASELINES, *(n for m in args.models for n in (m, f"{m}:raw"))]
    cfg = EvaluateConfig(models=tuple(names), perceptual="lpips", device="cpu")
    report = evaluate_colocated(root, work / "main", cfg, splits=["val", "test"])
    results: dict[str, Any] = {
        "protocol": "real co-located S2/SPOT pairs (WorldStrat sites; SPOT pan-sharpened, "
        "area-averaged to 5 m, registered, linear fit to S2 reflectance at 10 m)",
        "selection": report["data"]["selection"],
        "sites": report["data"]["sites"],
        "consistency_lowpass_px": CONSISTENCY_LOWPASS_PX,
        "per_site": {s: _site_record(p) for s, p in report["sites"].items()},
        "mean_of_sites": {
            split: {k: _split_mean(report, split, k) for k in ("psnr_db", "ssim", "lpips")}
            for split in ("val", "test")
        },
        "pair_records": report["data"]["records"],
        "targets": check_targets(report, InferConfig().model),
    }
    results["operator_fit_train_sites_psnr_db"] = operator_fit(root)
    print(json.dumps(results["mean_of_sites"], indent=1), flush=True)
    print("operator fit", results["operator_fit_train_sites_psnr_db"], flush=True)
    if not args.skip_sweep:
        sweep: dict[str, Any] = {}
        nets = [PROJECTED_BICUBIC, *args.models]
        for lowpass in SWEEP_LOWPASS_PX:
            c = EvaluateConfig(models=tuple(nets), perceptual="lpips", device="cpu",
                               consistency_lowpass_px=lowpass)  # fmt: skip
            rep = evaluate_colocated(root, work / f"sweep-{lowpass}", c, splits=["val"])
            sweep[str(lowpass)] = {k: _split_mean(rep, "val", k)
                                   for k in ("psnr_db", "lpips")}  # fmt: skip
            print("sweep", lowpass, sweep[str(lowpass)]["psnr_db"], flush=True)
        raw = {k: {m: v for m, v in results["mean_of_sites"]["val"][k].items() if ":raw" in m}
               for k in ("psnr_db", "lpips")}  # fmt: skip
        results["val_projection_sweep"] = {"lowpass_px": sweep, "no_projection": raw}
    results["seconds"] = round(time.perf_counter() - t0, 1)
    config = {"models": args.models, "splits": ["val", "test"], "perceptual": "lpips alex"}
    print(json.dumps(results["targets"], indent=1))
    if args.no_record:
        return
    record = write_record("colocated", config, results, out_dir=args.out)
    print(f"wrote {record}")


if __name__ == "__main__":
    main()
