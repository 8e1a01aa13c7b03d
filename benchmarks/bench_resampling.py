"""What resampling onto the national grid costs the sharpness that super-resolution added.

Wald protocol on real Sentinel-2 (the L1C scene of ``$S2SCALE_SHARED_DATA/s2``, tile 33UUU): its
real 10 m bands are the HR reference; they are degraded to 20 m with the nominal Sentinel-2 PSF
(:func:`s2scale.degradation.degrade_nominal`) and brought back to 10 m in their own UTM grid by
bicubic and by the shipped generators. That native-UTM result is what a per-zone output keeps.
Each result is then warped onto an EPSG:3035 grid of the same pixel size with each kernel of
:func:`s2scale.mosaic.blend.reproject_block` (nearest, bilinear, cubic, lanczos), and back onto
its UTM grid with the same kernel (a round trip: no reference on the EPSG:3035 grid is needed,
and what the warp loses it loses twice). Reported per model and kernel:

- PSNR on reflectance (data range 1) of the round trip vs the real 10 m, its loss against the
  UTM result, and the model's gain over bicubic after the round trip (how much of what the
  network added survives the national grid);
- PSNR of the round trip vs the UTM result itself (the warp's own fidelity);
- high-frequency energy (variance of the image minus its Gaussian blur, sigma 1 px) of the one-way
  EPSG:3035 result relative to the UTM result's (below 1: blurred; above 1: aliasing/ringing);
- mean reflectance bias of the round trip vs the UTM result over the same pixels (per band, %);
- one-way warp speed (Mpx/s of EPSG:3035 output, 4 bands + weight, one thread).

Run::

    python benchmarks/bench_resampling.py [--models bicubic srresnet realesrgan] [--size 384]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr
from _record import write_record
from affine import Affine
from scipy import ndimage

from s2scale.degradation import degrade_nominal
from s2scale.metrics import psnr
from s2scale.mosaic.blend import reproject_block

SCENE = "s2/S2_L1C_T33UUU_20170216_B02_B03_B04_B08_10m.tif"
KERNELS = ("nearest", "bilinear", "cubic", "lanczos")
BORDER = 16  # output pixels dropped on every side (warp and network edges)


def _real_scene(size: int) -> tuple[np.ndarray, Affine, str]:
    root = os.environ.get("S2SCALE_SHARED_DATA")
    if not root or not (Path(root) / SCENE).is_file():
        raise SystemExit(f"set S2SCALE_SHARED_DATA to the folder holding {SCENE}")
    with rasterio.open(Path(root) / SCENE) as src:
        arr = src.read(window=((0, size), (0, size))).astype(np.float32) / 10000.0
        return arr, src.transform, str(src.crs)


def _super_resolve(name: str, lr: np.ndarray, lr_transform: Affine, crs: str) -> np.ndarray:
    """``(band, 2h, 2w)`` reflectance from the 20 m LR (bicubic or a shipped generator)."""
    if name == "bicubic":
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(lr)[None]
        return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)[0].numpy()
    from s2scale.infer import upscale

    h, w = lr.shape[1:]
    res = lr_transform.a
    y = lr_transform.f - res * (np.arange(h) + 0.5)
    x = lr_transform.c + res * (np.arange(w) + 0.5)
    dn = np.clip(np.rint(lr * 10000), 1, 65535).astype(np.uint16)
    coords = {"band": ["blue", "green", "red", "nir"], "y": y, "x": x}
    arr = xr.DataArray(dn, dims=("band", "y", "x"), coords=coords)
    arr = arr.rio.write_crs(crs)
    out = upscale(arr, model=name, device="cpu")
    return np.asarray(out.values, np.float32) / 10000.0


def _hf_energy(img: np.ndarray) -> float:
    core = img[:, BORDER:-BORDER, BORDER:-BORDER]
    return float(np.mean([np.var(b - ndimage.gaussian_filter(b, 1.0)) for b in core]))


def _dst_grid(src_transform: Affine, shape: tuple[int, int], crs: str) -> tuple[Affine, tuple]:
    """An EPSG:3035 grid of the same pixel size inside the source footprint."""
    from rasterio.warp import transform_bounds

    h, w = shape
    res = src_transform.a
    b = transform_bounds(crs, "EPSG:3035", src_transform.c, src_transform.f - h * res,
                         src_transform.c + w * res, src_transform.f)  # fmt: skip
    pad = 4 * res
    x0, y1 = np.ceil((b[0] + pad) / res) * res, np.floor((b[3] - pad) / res) * res
    x1, y0 = np.floor((b[2] - pad) / res) * res, np.ceil((b[1] + pad) / res) * res
    # the rotated footprint: keep the inscribed part (about 90 % of each edge)
    cols, rows = int((x1 - x0) / res * 0.9), int((y1 - y0) / res * 0.9)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    t = Affine(res, 0, np.floor((cx - cols * res / 2) / res) * res, 0, -res,
               np.floor((cy + rows * res / 2) / res) * res)  # fmt: skip
    return t, (rows, cols)


def _warp(img: np.ndarray, src_t: Affine, crs: str, dst_t: Affine, shape: tuple, kernel: str):
    vals, _ = reproject_block(img, np.ones(img.shape[1:], np.float32), src_transform=src_t,
                              src_crs=crs, dst_transform=dst_t, dst_crs="EPSG:3035",
                              dst_shape=shape, resampling=kernel)  # fmt: skip
    return vals


def main() -> None:
    """Run the benchmark and write its record."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["bicubic", "srresnet", "realesrgan"])
    ap.add_argument("--size", type=int, default=512, help="HR (real 10 m) crop edge in pixels")
    ap.add_argument("--out", type=Path, default=None, help="record folder [benchmarks/results]")
    args = ap.parse_args()
    t0 = time.perf_counter()
    hr, hr_t, crs = _real_scene(args.size)
    lr = degrade_nominal(hr, 2)
    lr_t = hr_t * Affine.scale(2)
    dst_t, shape = _dst_grid(hr_t, hr.shape[1:], crs)
    core = (slice(None), slice(BORDER, -BORDER), slice(BORDER, -BORDER))
    results: dict[str, dict] = {}
    warp_s: dict[str, float] = {}
    for name in args.models:
        sr = np.clip(_super_resolve(name, lr, lr_t, crs), 0, 1)
        utm_psnr = psnr(sr[core], hr[core], 1.0)
        utm_hf = _hf_energy(sr)
        row: dict[str, dict] = {"utm": {"psnr_db": round(utm_psnr, 3)}}
        for kernel in KERNELS:
            t = time.perf_counter()
            national = _warp(sr, hr_t, crs, dst_t, shape, kernel)
            warp_s[kernel] = time.perf_counter() - t
            back, weight = reproject_block(
                national, (national[0] > 0).astype(np.float32), src_transform=dst_t,
                src_crs="EPSG:3035", dst_transform=hr_t, dst_crs=crs, dst_shape=sr.shape[1:],
                resampling=kernel,
            )  # fmt: skip
            ok = weight[core[1:]] > 0.999  # inside the EPSG:3035 footprint
            rt = psnr(back[core][:, ok], hr[core][:, ok], 1.0)
            row[kernel] = {
                "roundtrip_psnr_db": round(rt, 3),
                "psnr_loss_db": round(psnr(sr[core][:, ok], hr[core][:, ok], 1.0) - rt, 3),
                "warp_fidelity_db": round(psnr(back[core][:, ok], sr[core][:, ok], 1.0), 3),
                "hf_energy_rel": round(_hf_energy(national) / utm_hf, 4),
                "bias_pct": [round(100 * (float(back[i][core[1:]][ok].mean())
                                          / float(sr[i][core[1:]][ok].mean()) - 1), 3)
                             for i in range(sr.shape[0])],
                "warp_mpx_per_s": round(shape[0] * shape[1] / 1e6 / warp_s[kernel], 2),
            }  # fmt: skip
        results[name] = row
        print(name, {k: (v.get("roundtrip_psnr_db", v.get("psnr_db")), v.get("hf_energy_rel"))
                     for k, v in row.items()})  # fmt: skip
    if "bicubic" in results:
        for name in results:
            if name != "bicubic":
                base = results["bicubic"]
                results[name]["gain_over_bicubic_db"] = {
                    "utm": round(results[name]["utm"]["psnr_db"] - base["utm"]["psnr_db"], 3),
                    **{k: round(results[name][k]["roundtrip_psnr_db"]
                                - base[k]["roundtrip_psnr_db"], 3) for k in KERNELS},
                }  # fmt: skip
                print(name, "gain over bicubic", results[name]["gain_over_bicubic_db"])
    config = {"scene": SCENE, "size": args.size, "models": args.models, "kernels": KERNELS,
              "protocol": "Wald protocol on real Sentinel-2 (degrade_nominal 10 m -> 20 m)",
              "dst_crs": "EPSG:3035", "dst_shape": list(shape)}  # fmt: skip
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    print(write_record("resampling", config, results, out_dir=args.out))


if __name__ == "__main__":
    main()
