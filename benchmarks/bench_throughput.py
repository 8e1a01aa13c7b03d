"""Throughput of super-resolution: raw batched model, naive tile loop, and end to end.

For each generator, in one run on the same device:

- ``raw_model_mpx_s``: batched forward passes on device-resident tiles (5 m output Mpx/s);
- ``naive_loop_mpx_s``: a batch-1 crop-and-paste tile loop as Real-ESRGAN's tile mode does it
  (host -> device -> host per tile, no overlap blending);
- ``end_to_end_mpx_s``: read a 10 m Zarr composite -> ``s2scale.upscale`` (halo, feathered
  sub-tiles, GPU-annotated tasks) -> write the 5 m Zarr, on a Dask cluster
  (``local-gpu`` where CUDA GPUs exist, else ``local``).

Targets (issue: seamless distributed upscaling): end to end >= 70 % of the raw model and >= 3x
the naive loop, on the H100. Run::

    python benchmarks/bench_throughput.py --models srresnet realesrgan --size 4096
    python benchmarks/bench_throughput.py --models srresnet --random-weights   # full-size nets

The record says whether random weights were used.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import torch
import xarray as xr
from _record import write_record

import s2scale
from s2scale.cluster import make_client
from s2scale.config import ClusterConfig
from s2scale.infer import get_model, weights_path
from s2scale.models import build_generator


def _texture(size: int, bands: int, seed: int = 0) -> np.ndarray:
    """A smooth-plus-edges uint16 test image (harmonised DN)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(bands, size // 16 + 2, size // 16 + 2)).astype(np.float32)
    img = torch.nn.functional.interpolate(
        torch.from_numpy(base)[None], size=(size, size), mode="bicubic", align_corners=False
    )[0].numpy()
    img += 0.3 * rng.normal(size=img.shape).astype(np.float32)
    return np.clip(1500 + 600 * img, 1, 10000).astype(np.uint16)


def _net(name: str, random_weights: bool, device: torch.device, dtype: torch.dtype):
    if random_weights:
        return build_generator(name, bands=4, scale=2, seed=0).to(device).eval()
    return get_model(str(weights_path(name)), device.type, dtype_name(dtype), False)


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(dtype, "float32")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def raw_model(net, device, dtype, tile: int, batch: int, repeats: int) -> float:
    x = torch.rand(batch, 4, tile, tile, device=device)
    amp = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with torch.inference_mode(), amp:
        net(x)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            net(x)
        _sync(device)
    dt = time.perf_counter() - t0
    return repeats * batch * (2 * tile) ** 2 / dt / 1e6


def naive_loop(net, device, dtype, image: np.ndarray, tile: int) -> float:
    _, h, w = image.shape
    out = np.zeros((4, 2 * h, 2 * w), np.uint16)
    amp = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    t0 = time.perf_counter()
    with torch.inference_mode(), amp:
        for y in range(0, h, tile):
            for x in range(0, w, tile):
                crop = torch.from_numpy(image[:, y : y + tile, x : x + tile].astype(np.float32))
                sr = net((crop[None] / 10000).to(device))[0].float().cpu().numpy()
                out[:, 2 * y : 2 * y + sr.shape[1], 2 * x : 2 * x + sr.shape[2]] = np.clip(
                    sr * 10000, 0, 65535
                )
    dt = time.perf_counter() - t0
    return 4 * h * w / dt / 1e6


def end_to_end(
    name: str, random_weights: bool, image: np.ndarray, chunk_px: int, tmp: Path, client
) -> float:
    size = image.shape[1]
    coords = {
        "band": np.array(["blue", "green", "red", "nir"], dtype=object),  # Zarr v3 strings
        "y": 5_300_000 - 5 - 10.0 * np.arange(size),
        "x": 500_005 + 10.0 * np.arange(size),
    }
    src = xr.DataArray(image, dims=("band", "y", "x"), coords=coords, name="reflectance")
    src = src.rio.write_crs("EPSG:32633").chunk({"band": -1, "y": chunk_px, "x": chunk_px})
    src.to_dataset().to_zarr(tmp / "in.zarr", mode="w", zarr_format=3, consolidated=False)
    cube = xr.open_zarr(tmp / "in.zarr", consolidated=False)["reflectance"]
    cube = cube.rio.write_crs("EPSG:32633")
    sr = s2scale.upscale(cube, name, chunk_px=chunk_px, random_weights=random_weights)
    out = sr.to_dataset(name="sr").drop_encoding()
    t0 = time.perf_counter()
    with dask.config.set({"optimization.fuse.active": False}):
        out.to_zarr(tmp / "out.zarr", mode="w", zarr_format=3, consolidated=False)
    dt = time.perf_counter() - t0
    return 4 * size * size / dt / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["srresnet", "realesrgan"])
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="full-size untrained nets instead of the shipped checkpoints",
    )
    parser.add_argument("--size", type=int, default=2048, help="LR image edge for loop/e2e")
    parser.add_argument("--tile", type=int, default=256, help="tile edge (raw and naive)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--chunk-px", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    image = _texture(args.size, 4)
    results: dict = {
        "device": str(device),
        "dtype": str(dtype),
        "random_weights": args.random_weights,
    }
    client = make_client(
        ClusterConfig(kind="auto", threads_per_worker=4 if device.type == "cuda" else 1)
    )
    try:
        for name in args.models:
            net = _net(name, args.random_weights, device, dtype)
            raw = raw_model(net, device, dtype, args.tile, args.batch, args.repeats)
            naive = naive_loop(net, device, dtype, image, args.tile)
            with tempfile.TemporaryDirectory() as tmp:
                e2e = end_to_end(name, args.random_weights, image, args.chunk_px, Path(tmp), client)
            results[name] = {
                "raw_model_mpx_s": round(raw, 3),
                "naive_loop_mpx_s": round(naive, 3),
                "end_to_end_mpx_s": round(e2e, 3),
                "e2e_vs_raw": round(e2e / raw, 3),
                "e2e_vs_naive": round(e2e / naive, 3),
            }
            print(name, results[name], flush=True)
        config = vars(args) | {"out": None}
        path = write_record("throughput", config, results, client=client, out_dir=args.out)
    finally:
        client.close()
    print(path)


if __name__ == "__main__":
    main()
