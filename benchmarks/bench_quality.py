"""Quality of the shipped generators on real imagery, against bicubic, through ``s2scale.upscale``.

Wald protocol on real Sentinel-2: the held-out east 30 % of every real scene in
``$S2SCALE_SHARED_DATA/s2`` (never cut into training patches; see
``s2scale.train.realscenes.validation_scenes``) is degraded 10 m -> 20 m by the nominal
Sentinel-2 PSF (MTF 0.30 at Nyquist) and a 2x2 mean (``s2scale.degradation.degrade_nominal``),
rounded to whole DN, super-resolved x2 with ``s2scale.upscale(..., model=NAME)`` (default
settings, and with ``consistency=False`` for the raw network), and scored against the real 10 m
bands: PSNR, SSIM (reflectance, data range 1), LPIPS v0.1 AlexNet (RGB, reflectance 0-0.3 ->
[-1, 1]), mean reflectance bias per band, and consistency (the output degraded by the nominal
PSF against the input). The held-out part of the real orthophoto is scored the same way
(labelled "simulated LR"), and so is the simulator's held-out world on the study's task (its
Sentinel-2 10 m image against its 5 m truth: an LR that the nominal operator did not make).
The real scenes are also degraded by off-nominal operators (a plain 2x2 mean, and Gaussian PSFs
of MTF 0.15 and 0.45 at Nyquist, whole DN): whether the consistency projection, which assumes
the nominal PSF, still helps when the real optics differ from it (mean PSNR and LPIPS, with and
without the projection). Every table carries bicubic, Lanczos and bicubic + the consistency
projection (the strongest non-learned method). This is the second check; the first is
``bench_colocated.py`` on real co-located pairs.
Targets are checked and recorded; a PNG shows crops side by side.
Run from a clean tree (the record carries the commit)::

    S2SCALE_SHARED_DATA=../shared/data python benchmarks/bench_quality.py

``--out DIR`` writes the record elsewhere; ``--models`` picks generators; ``--no-record`` prints
the results without writing a record (for checks).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from _record import RESULTS, write_record

import s2scale
from s2scale.config import InferConfig
from s2scale.degradation import SensorDegradationConfig, block_mean, degrade_sensor
from s2scale.evaluate.score import LANCZOS, PROJECTED_BICUBIC, baseline_dn
from s2scale.metrics import RGB_STRETCH, load_perceptual, upsample_bicubic
from s2scale.sentinel2 import BANDS, DN_SCALE
from s2scale.train.evaluation import heldout_scene, mean_scores, score, wald_input
from s2scale.train.realscenes import heldout_ortho, validation_scenes
from s2scale.train.sources import HELD_OUT_SEED

MODELS = ("srcnn", "srresnet", "esrgan", "realesrgan")
PSNR_TARGETS = {"srresnet": (3.5, 2.5), "srcnn": (2.0, 1.0)}  # (mean, every scene) dB over bicubic
GAN_MODELS = ("esrgan", "realesrgan")
BIAS_LIMIT = 0.005
OFF_NOMINAL = ("mean", 0.15, 0.45)
"""Off-nominal Wald operators: a plain 2x2 mean, and Gaussian PSFs of these MTFs at Nyquist
(nominal 0.30; shipped configs train 0.2-0.45)."""


def off_nominal_input(hr: np.ndarray, mtf: float | str) -> np.ndarray:
    """Wald input made by an off-nominal operator (``"mean"`` or a Gaussian MTF), whole DN."""
    if mtf == "mean":
        return np.round(block_mean(hr, 2) * DN_SCALE) / DN_SCALE
    cfg = SensorDegradationConfig(mtf_range=(mtf, mtf), anisotropic=False,
                                  shift_range_px=(0.0, 0.0), noise_range=(0.0, 0.0),
                                  quantize_dn=True)  # fmt: skip
    return degrade_sensor(hr, 2, cfg, np.random.default_rng(0))


def off_nominal(real: list[Any], fns: dict[str, Any], metric: Any) -> dict[str, Any]:
    """Mean PSNR / SSIM / LPIPS / bias over the real scenes for each off-nominal PSF.

    ``real``: the ``(scene, hr, column)`` tuples of ``validation_scenes()``, read once by ``main``.

    ``projection_gain_db``: default (projection on) minus raw network, per model.
    """
    out: dict[str, Any] = {}
    for mtf in OFF_NOMINAL:
        scenes = {}
        for scene, hr, _ in real:
            lr = off_nominal_input(hr, mtf)
            scenes[scene.name] = {n: score(f(lr), hr, lr, metric=metric) for n, f in fns.items()}
        mean = mean_scores(scenes, list(fns))
        gains = {n: round(mean[n]["psnr"] - mean["bicubic"]["psnr"], 3) for n in fns}
        proj = {n: round(mean[n]["psnr"] - mean[f"{n}-raw"]["psnr"], 3)
                for n in fns if f"{n}-raw" in fns}  # fmt: skip
        worst = {n: round(min(s[n]["psnr"] - s["bicubic"]["psnr"] for s in scenes.values()), 3)
                 for n in fns}  # fmt: skip
        key = "plain_mean" if mtf == "mean" else f"mtf_{mtf}"
        out[key] = {"psnr_gain_mean_db": gains, "psnr_gain_min_db": worst,
                    "projection_gain_db": proj, "mean": mean}  # fmt: skip
        print(f"off-nominal {mtf}: gain {gains} projection {proj}", flush=True)
    return out


def as_cube(lr: np.ndarray, crs: str = "EPSG:32633", res: float = 20.0) -> xr.DataArray:
    """An LR reflectance image as the uint16 DN ``(band, y, x)`` cube ``upscale`` takes."""
    dn = np.clip(np.round(lr * DN_SCALE), 1, 65535).astype(np.uint16)
    h, w = dn.shape[1:]
    x = 500_000.0 + res * (np.arange(w) + 0.5)
    y = 5_800_000.0 - res * (np.arange(h) + 0.5)
    da = xr.DataArray(dn, dims=("band", "y", "x"), coords={"band": list(BANDS), "y": y, "x": x})
    return da.rio.write_crs(crs)


def run_upscale(model: str, lr: np.ndarray, *, consistency: bool) -> np.ndarray:
    """``s2scale.upscale`` of an LR reflectance image on the CPU, back to reflectance."""
    out = s2scale.upscale(as_cube(lr), model, device="cpu", consistency=consistency)
    return out.compute(scheduler="threads").values.astype(np.float64) / DN_SCALE


FULL_PROJECTION = "bicubic+full-projection"
"""Bicubic projected pixel-exactly (``consistency_lowpass_px=0``): the strongest non-learned
method when the LR was made by the nominal operator (the Wald protocol's)."""


def _baseline(method: str, lowpass_px: float | None = None) -> Any:
    """``f(lr) -> sr`` of a non-learned baseline on reflectance (through whole DN)."""

    def run(lr: np.ndarray) -> np.ndarray:
        dn = np.clip(np.round(lr * DN_SCALE), 1, 65535).astype(np.uint16)
        return baseline_dn(dn, method, lowpass_px=lowpass_px).astype(np.float64) / DN_SCALE

    return run


def upscalers(models: list[str]) -> dict[str, Any]:
    """Name -> ``f(lr) -> sr``: the baselines, each model by default, each raw network."""
    fns: dict[str, Any] = {"bicubic": lambda lr: upsample_bicubic(lr, 2),
                           LANCZOS: _baseline(LANCZOS),
                           PROJECTED_BICUBIC: _baseline(PROJECTED_BICUBIC),
                           FULL_PROJECTION: _baseline(PROJECTED_BICUBIC, 0.0)}  # fmt: skip
    for m in models:
        fns[m] = lambda lr, m=m: run_upscale(m, lr, consistency=True)
        fns[f"{m}-raw"] = lambda lr, m=m: run_upscale(m, lr, consistency=False)
    return fns


def check_targets(scenes: dict[str, Any], models: list[str]) -> dict[str, Any]:
    """The issue's targets on the real Sentinel-2 scenes: pass/fail with the numbers."""
    out: dict[str, Any] = {}

    def gains(name: str, key: str) -> list[float]:
        return [s[name][key] - s["bicubic"][key] for s in scenes.values()]

    for m in models:
        t: dict[str, Any] = {}
        g = gains(m, "psnr")
        t["psnr_gain_mean_db"], t["psnr_gain_min_db"] = round(np.mean(g), 3), round(min(g), 3)
        if m in PSNR_TARGETS:
            mean_t, every_t = PSNR_TARGETS[m]
            t["psnr_target"] = f">= +{mean_t} dB mean, >= +{every_t} dB every scene"
            t["psnr_ok"] = bool(np.mean(g) >= mean_t and min(g) >= every_t)
        if m in GAN_MODELS and "lpips" in scenes[next(iter(scenes))][m]:
            lp = {n: [s[n]["lpips"] for s in scenes.values()] for n in ("bicubic", "srresnet", m)
                  if n in scenes[next(iter(scenes))]}  # fmt: skip
            wins = [
                a < b and a < c
                for a, b, c in zip(
                    lp[m], lp["bicubic"], lp.get("srresnet", lp["bicubic"]), strict=True
                )
            ]
            t["lpips_mean"] = {n: round(float(np.mean(v)), 5) for n, v in lp.items()}
            t["lpips_scenes_won"] = f"{sum(wins)}/{len(wins)}"
            t["gan_ok"] = bool(
                all(np.mean(lp[m]) < np.mean(v) for n, v in lp.items() if n != m)
                and sum(wins) > len(wins) / 2
                and np.mean(g) >= 1.0
            )
        for variant in (m, f"{m}-raw"):
            worst = max(s[variant]["bias_max_abs"] for s in scenes.values())
            t[f"bias_max_abs{'_raw' if variant.endswith('-raw') else ''}"] = round(worst, 5)
        t["bias_ok"] = bool(t["bias_max_abs"] <= BIAS_LIMIT)
        out[m] = t
    measures = ("psnr", "ssim", "lpips")
    out["default_model"] = default = InferConfig().model
    if default in models:
        better = all(
            (s[default][k] > s["bicubic"][k]) if k != "lpips" else (s[default][k] < s["bicubic"][k])
            for s in scenes.values()
            for k in measures
            if k in s[default]
        )
        out["default_beats_bicubic_everywhere"] = bool(better and out[default]["bias_ok"])
    return out


def baseline_targets(mean: dict[str, Any], off: dict[str, Any], models: list[str]) -> dict:
    """Wald targets against the baselines: every model (upscale defaults) above projected bicubic
    (the better of the default and the pixel-exact projection) at the nominal operator, and above
    bicubic at the plain-mean operator (mean PSNR, dB)."""
    plain = off["plain_mean"]["mean"]
    best_proj = max(mean[PROJECTED_BICUBIC]["psnr"], mean[FULL_PROJECTION]["psnr"])
    out: dict[str, Any] = {}
    for m in models:
        over_proj = mean[m]["psnr"] - best_proj
        over_bicubic_mean = plain[m]["psnr"] - plain["bicubic"]["psnr"]
        out[m] = {"nominal_over_projected_bicubic_db": round(over_proj, 3),
                  "plain_mean_over_bicubic_db": round(over_bicubic_mean, 3),
                  "ok": bool(over_proj > 0 and over_bicubic_mean > 0)}  # fmt: skip
    return out


def _stretch(img: np.ndarray) -> np.ndarray:
    """True-colour uint8 ``(y, x, 3)`` of a reflectance image (RGB_STRETCH)."""
    lo, hi = RGB_STRETCH
    rgb = np.clip((img[[2, 1, 0]] - lo) / (hi - lo), 0, 1)
    return (rgb.transpose(1, 2, 0) * 255).round().astype(np.uint8)


def crops_png(rows: list[tuple[str, dict[str, np.ndarray]]], path: Path) -> Path:
    """Side-by-side crops (one row per case: LR | bicubic | models | HR) as a PNG."""
    from PIL import Image, ImageDraw

    tiles = []
    for _, images in rows:
        tiles.append([_stretch(v) for v in images.values()])
    names = list(rows[0][1])
    size = tiles[0][0].shape[0]
    pad, head = 4, 14
    canvas = Image.new("RGB", (len(names) * (size + pad), len(rows) * (size + pad) + head), "white")
    draw = ImageDraw.Draw(canvas)
    for j, n in enumerate(names):
        draw.text((j * (size + pad) + 2, 1), n, fill="black")
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            img = Image.fromarray(tile).resize((size, size), Image.NEAREST)
            canvas.paste(img, (j * (size + pad), head + i * (size + pad)))
    canvas.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--out", type=Path, default=None, help="record folder [results/]")
    parser.add_argument("--no-record", action="store_true", help="print, write nothing")
    parser.add_argument("--crop", type=int, default=96, help="crop edge of the PNG, HR px")
    args = parser.parse_args()
    metric = load_perceptual("auto", "alex")
    fns = upscalers(args.models)
    t0 = time.perf_counter()
    scenes: dict[str, Any] = {}
    png_rows = []
    real = list(validation_scenes())  # read once: the off-nominal inputs reuse them
    for scene, hr, col0 in real:
        lr = wald_input(hr)
        entry: dict[str, Any] = {"hr_shape": list(hr.shape), "columns_from": col0,
                                 "date": scene.date, "product": scene.product}  # fmt: skip
        outs = {}
        for name, fn in fns.items():
            t = time.perf_counter()
            outs[name] = fn(lr)
            entry[name] = {**score(outs[name], hr, lr, metric=metric),
                           "seconds": round(time.perf_counter() - t, 2)}  # fmt: skip
        scenes[scene.name] = entry
        if scene.name.endswith("l1c") or scene.date == "2018-07-08":
            c, y0 = args.crop, (hr.shape[1] - args.crop) // 2
            sl = np.s_[:, y0 : y0 + c, 8 : 8 + c]
            lr_up = np.repeat(np.repeat(lr, 2, 1), 2, 2)
            images = {"LR 20 m": lr_up[sl]}
            images |= {n: o[sl] for n, o in outs.items() if not n.endswith("-raw")}
            png_rows.append((scene.name, {**images, "HR 10 m (real)": hr[sl]}))
        print(scene.name, {k: v.get("psnr") for k, v in entry.items() if isinstance(v, dict)},
              flush=True)  # fmt: skip
    ortho: dict[str, Any] = {}
    for pixel_m in (2.5, 1.0):
        pair = heldout_ortho(pixel_m)
        if pair is None:
            ortho[f"{pixel_m}m"] = "skipped: no orthophotos (set S2SCALE_SHARED_DATA)"
            continue
        lr, hr = pair
        lr = np.round(lr * DN_SCALE) / DN_SCALE
        ortho[f"{pixel_m}m"] = {"hr_shape": list(hr.shape),
                                **{n: score(f(lr), hr, lr, metric=metric)
                                   for n, f in fns.items()}}  # fmt: skip
    # The simulator's study task (its Sentinel-2 10 m -> its 5 m truth): an LR formed by the
    # simulator's own sensor model, not by the nominal operator the consistency projection uses.
    lr, hr = heldout_scene(HELD_OUT_SEED)
    lr, hr = lr.astype(np.float64), hr.astype(np.float64)
    sim_study = {"seed": HELD_OUT_SEED, "hr_shape": list(hr.shape),
                 **{n: score(f(lr), hr, lr, metric=metric) for n, f in fns.items()}}  # fmt: skip
    off = off_nominal(real, fns, metric)
    results = {
        "protocol": "Wald protocol on real Sentinel-2 (held-out east 30 % of each scene, nominal "
        "PSF MTF 0.30 + 2x2 mean, LR rounded to DN); orthophoto: simulated LR",
        "perceptual": f"{metric.label} ({metric.backbone}), RGB, reflectance 0-0.3 -> [-1, 1]",
        "upscale": "s2scale.upscale defaults (name) and consistency=False (name-raw), CPU",
        "real_s2_wald": {"scenes": scenes, "mean": mean_scores(scenes, list(fns))},
        "real_s2_wald_off_nominal_psf": off,
        "ortho_simulated_lr": ortho,
        "sim_study_10m_to_5m": sim_study,
        "targets": check_targets(scenes, args.models),
        "targets_vs_baselines": baseline_targets(mean_scores(scenes, list(fns)), off, args.models),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    config = {"models": args.models, "crop": args.crop, "border_px": 8, "stretch": RGB_STRETCH}
    if args.no_record:
        print(json.dumps(results["targets"], indent=2))
        print(json.dumps(results["targets_vs_baselines"], indent=2))
        print(json.dumps(results["real_s2_wald"]["mean"], indent=2))
        return
    record = write_record("quality", config, results, out_dir=args.out)
    png = crops_png(png_rows, (args.out or RESULTS) / f"{record.stem}.png")
    print(f"wrote {record} and {png}")
    print(json.dumps(results["targets"], indent=2))
    print(json.dumps(results["targets_vs_baselines"], indent=2))


if __name__ == "__main__":
    main()
