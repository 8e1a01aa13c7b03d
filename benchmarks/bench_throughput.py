"""Throughput of super-resolution on the current device, in Mpx/s of 5 m output.

In one run, on one device (CUDA where available, else the CPU):

- ``sweep``: the raw batched model for every generator x autocast dtype x batch size x tile
  edge: forward passes on device-resident random tiles, no host transfers;
- per generator, at the chosen ``--tile`` / ``--batch`` / default dtype, on one textured image:
  ``raw_model_mpx_s`` (as in the sweep), ``naive_loop_mpx_s`` (batch 1, crop-and-paste tiles with
  Real-ESRGAN's 10 px tile padding, host -> device -> host per tile, no blending),
  ``bicubic_mpx_s`` (torch bicubic interpolation of the same image, same transfers) and
  ``end_to_end_mpx_s`` (read a 10 m Zarr composite -> ``s2scale.upscale``: halo, feathered
  sub-tiles, GPU-annotated tasks -> write the 5 m Zarr) on a local Dask cluster with 1 and with
  2 workers (``end_to_end_by_workers``; ``end_to_end_mpx_s`` is the 1-worker value, the rate of
  one GPU worker that the dry-run estimate divides by).

Where the time goes (``split``, per generator, ONE CPU thread, threads scheduler, a 1024 px
image, ``upscale``'s defaults): ``bare_network_mpx_s`` (the network alone over the same pixels,
256 px tiles, no halo), ``end_to_end_mpx_s`` (Zarr in -> ``upscale`` -> Zarr out),
``pipeline_mpx_s_per_core`` (the same with the network replaced by a zero-cost nearest
upsampler: fill, projection, blending, reads, writes, scheduling), ``end_to_end_vs_bare``,
``network_px_per_output_px`` and ``overlap_share_of_network_work`` (network input px per output
px of the tile layout, and the share of network work spent on context), and seconds per stage
(``-stages.png``). The cluster runs also record a Dask performance report per model and worker
count (``-performance.html``) and, from the task stream, the share of the run each worker spent
in model tasks.

Targets on this CPU: end to end >= 0.8x the bare network, pipeline >= 5 Mpx/s per core.
Targets (on an H200): end to end >= 80 % of the raw batched model and >= 3x the naive loop.
The record (``benchmarks/results/throughput-<time>.json``, plus a ``.png`` beside it) names the
device kind in ``results.device`` (``cpu`` or ``cuda``); ``s2scale upscale --dry-run`` estimates
from the newest record of the plan's device kind. Run from a clean checkout::

    python benchmarks/bench_throughput.py                     # --quick: a few minutes, 2 CPU cores
    python benchmarks/bench_throughput.py --full              # the whole grid (GPU machines)
    python benchmarks/bench_throughput.py --random-weights --full   # full-size untrained nets

The record says whether random weights were used; ``--allow-dirty`` writes one from a modified
tree (its ``git_commit`` then ends in ``-dirty``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import itertools
import platform
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import dask
import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from _record import cluster_context, git_commit, write_record
from distributed import get_task_stream, performance_report

import s2scale
from s2scale.cluster import make_client
from s2scale.config import ClusterConfig
from s2scale.infer import get_model, weights_path
from s2scale.models import build_generator
from s2scale.resumable import reflectance_compressors

BOKEH = importlib.util.find_spec("bokeh") is not None
"""Dask's performance report (an HTML file beside the record) needs bokeh; the task-stream
summary in the record does not."""
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
REAL_ESRGAN_TILE_PAD = 10  # Real-ESRGAN's default --tile_pad (input px around each tile)
GRIDS = {
    # sweep grid (batch x tile), then the matched run: image edge, tile, batch, repeats, chunk
    "quick": {"batch": (1, 4), "tile": (64, 128), "size": 512, "match_tile": 256,
              "match_batch": 2, "repeats": 2, "chunk_px": 512},
    "full": {"batch": (1, 4, 8, 16), "tile": (128, 256, 512), "size": 4096, "match_tile": 512,
             "match_batch": 8, "repeats": 10, "chunk_px": 2048},
}  # fmt: skip


def _texture(size: int, bands: int, seed: int = 0) -> np.ndarray:
    """A smooth-plus-edges uint16 test image (harmonised DN)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(bands, size // 16 + 2, size // 16 + 2)).astype(np.float32)
    img = torch.nn.functional.interpolate(
        torch.from_numpy(base)[None], size=(size, size), mode="bicubic", align_corners=False
    )[0].numpy()
    img += 0.3 * rng.normal(size=img.shape).astype(np.float32)
    return np.clip(1500 + 600 * img, 1, 10000).astype(np.uint16)


REAL_SCENE = "s2/S2_L1C_T33UUU_20170216_B02_B03_B04_B08_10m.tif"  # 768 x 1536 px, 10 m


def _real_image(size: int) -> np.ndarray:
    """``size`` x ``size`` px of a real Sentinel-2 scene (B02, B03, B04, B08, uint16 DN).

    The scene is 768 rows tall: larger images continue it with its rows mirrored (the
    symmetric extension), so every pixel is a real one, as the Zarr codec and the no-data
    fill see real imagery.
    """
    import os

    import rasterio

    root = os.environ.get("S2SCALE_SHARED_DATA")
    if not root or not (Path(root) / REAL_SCENE).is_file():
        raise SystemExit(
            f"the split reads {REAL_SCENE} under $S2SCALE_SHARED_DATA (set it to the shared "
            "data folder), or pass --split-image texture"
        )
    with rasterio.open(Path(root) / REAL_SCENE) as src:
        arr = src.read(window=((0, min(size, src.height)), (0, min(size, src.width))))
    pad = ((0, 0), (0, size - arr.shape[1]), (0, size - arr.shape[2]))
    return np.pad(arr, pad, mode="symmetric").astype(np.uint16)


def _net(name: str, random_weights: bool, device: torch.device):
    """The generator as the pipeline runs it (``channels_last``, which the inputs follow)."""
    if random_weights:
        net = build_generator(name, bands=4, scale=2, seed=0).to(device).eval()
        return net.to(memory_format=torch.channels_last)
    return get_model(str(weights_path(name)), str(device), "float32", False)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _amp(device: torch.device, dtype: torch.dtype):
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def raw_model(net, device, dtype, tile: int, batch: int, repeats: int) -> float:
    """Batched forward passes on device-resident tiles: 5 m output Mpx/s."""
    x = torch.rand(batch, 4, tile, tile, device=device)
    with torch.inference_mode(), _amp(device, dtype):
        net(x)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            net(x)
        _sync(device)
    return repeats * batch * (2 * tile) ** 2 / (time.perf_counter() - t0) / 1e6


def naive_loop(net, device, dtype, image: np.ndarray, tile: int) -> float:
    """Real-ESRGAN's tile mode: batch 1, each tile with padding in, its core pasted out."""
    _, h, w = image.shape
    pad = REAL_ESRGAN_TILE_PAD
    out = np.zeros((4, 2 * h, 2 * w), np.uint16)
    t0 = time.perf_counter()
    with torch.inference_mode(), _amp(device, dtype):
        for y in range(0, h, tile):
            for x in range(0, w, tile):
                y0, x0 = max(y - pad, 0), max(x - pad, 0)
                y1, x1 = min(y + tile + pad, h), min(x + tile + pad, w)
                crop = torch.from_numpy(image[:, y0:y1, x0:x1].astype(np.float32))
                sr = net((crop[None] / 10000).to(device))[0].float().cpu().numpy()
                ty, tx = min(tile, h - y), min(tile, w - x)
                core = sr[:, 2 * (y - y0) : 2 * (y - y0 + ty), 2 * (x - x0) : 2 * (x - x0 + tx)]
                out[:, 2 * y : 2 * (y + ty), 2 * x : 2 * (x + tx)] = np.clip(core * 10000, 0, 65535)
    _sync(device)
    return 4 * h * w / (time.perf_counter() - t0) / 1e6


def bicubic(device, image: np.ndarray, tile: int) -> float:
    """Bicubic 2x of the same image tile by tile, with the same host <-> device transfers."""
    _, h, w = image.shape
    out = np.zeros((4, 2 * h, 2 * w), np.uint16)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for y in range(0, h, tile):
            for x in range(0, w, tile):
                crop = torch.from_numpy(image[:, y : y + tile, x : x + tile].astype(np.float32))
                up = torch.nn.functional.interpolate(
                    crop[None].to(device), scale_factor=2, mode="bicubic", align_corners=False
                )
                sr = up[0].cpu().numpy()
                out[:, 2 * y : 2 * y + sr.shape[1], 2 * x : 2 * x + sr.shape[2]] = sr.clip(0, 65535)
    _sync(device)
    return 4 * h * w / (time.perf_counter() - t0) / 1e6


def _encoding(name: str) -> dict:
    """The codec of s2scale's stores (:func:`s2scale.resumable.reflectance_compressors`)."""
    return {name: {"compressors": reflectance_compressors()}}


def codecs(image: np.ndarray, repeats: int = 4) -> dict:
    """Zarr codecs on 5 m output of ``image`` (its bicubic x2, uint16): seconds and ratio.

    One thread, the best of ``repeats`` writes of one chunk to memory; the stores' codec
    (:func:`s2scale.resumable.reflectance_compressors`) against Zarr's default and Blosc lz4.
    """
    import zarr
    from zarr.codecs import BloscCodec

    x = torch.from_numpy(image.astype(np.float32))[None]
    out = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)[0]
    sr = out.round().clamp(0, 65535).numpy().astype(np.uint16)
    candidates = {
        "s2scale (blosc zstd 1 bitshuffle)": reflectance_compressors(),
        "zarr default (zstd 3)": "auto",
        "blosc lz4 5 shuffle": (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle",
                                           typesize=2),),
    }  # fmt: skip
    from numcodecs import blosc

    blosc_threads = blosc.use_threads
    blosc.use_threads = False  # as on a Dask worker thread: Blosc runs in the calling thread
    rows = {}
    try:
        with zarr.config.set({"threading.max_workers": 1}):
            for label, compressors in candidates.items():
                best, written = float("inf"), {}
                for _ in range(repeats):
                    written = {}
                    arr = zarr.create_array(zarr.storage.MemoryStore(written), shape=sr.shape,
                                            chunks=sr.shape, dtype="uint16",
                                            compressors=compressors)  # fmt: skip
                    t0 = time.perf_counter()
                    arr[...] = sr
                    best = min(best, time.perf_counter() - t0)
                stored = sum(len(v.to_bytes()) for k, v in written.items()
                             if not k.endswith("zarr.json"))  # fmt: skip
                rows[label] = {"seconds": round(best, 3), "ratio": round(sr.nbytes / stored, 3)}
    finally:
        blosc.use_threads = blosc_threads
    return {"output_px": list(sr.shape), **rows}


def _write_input(image: np.ndarray, chunk_px: int, path: Path) -> None:
    size = image.shape[1]
    coords = {
        "band": np.array(["blue", "green", "red", "nir"], dtype=object),  # Zarr v3 strings
        "y": 5_300_000 - 5 - 10.0 * np.arange(size),
        "x": 500_005 + 10.0 * np.arange(size),
    }
    src = xr.DataArray(image, dims=("band", "y", "x"), coords=coords, name="reflectance")
    src = src.rio.write_crs("EPSG:32633").chunk({"band": -1, "y": chunk_px, "x": chunk_px})
    src.to_dataset().to_zarr(path, mode="w", zarr_format=3, consolidated=False,
                             encoding=_encoding("reflectance"))  # fmt: skip


def end_to_end(name: str, args, src: Path, out: Path, dtype: str) -> float:
    """Read the 10 m Zarr -> s2scale.upscale -> write the 5 m Zarr, on the current client."""
    cube = xr.open_zarr(src, consolidated=False)["reflectance"].rio.write_crs("EPSG:32633")
    sr = s2scale.upscale(cube, name, chunk_px=args.chunk_px, tile_px=args.tile,
                         batch_size=args.batch, dtype=dtype,
                         random_weights=args.random_weights)  # fmt: skip
    data = sr.to_dataset(name="sr").drop_encoding()
    t0 = time.perf_counter()
    with dask.config.set({"optimization.fuse.active": False}):
        data.to_zarr(out, mode="w", zarr_format=3, consolidated=False, encoding=_encoding("sr"))
    return 4 * cube.sizes["y"] * cube.sizes["x"] / (time.perf_counter() - t0) / 1e6


# ---------------------------------------------------------------- where the time goes (1 thread)
class _ZeroCostUpsampler(torch.nn.Module):
    """Nearest-neighbour x2 in place of the network: the pipeline's own cost, network excluded."""

    def __init__(self, like: torch.nn.Module) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
        self.arch, self.scale = like.arch, int(like.scale)
        self.normalization = like.normalization
        self.band_names = getattr(like, "band_names", ())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # one pass, as a network writes its output
        return torch.nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")


def bare_network(net, image: np.ndarray, tile: int, batch: int) -> float:
    """The network alone over the image's pixels: tiles without halo, batched; Mpx/s out."""
    _, h, w = image.shape
    x = torch.from_numpy(image.astype(np.float32) / 10000)
    tiles = [x[:, y : y + tile, c : c + tile] for y in range(0, h, tile) for c in range(0, w, tile)]
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(tiles), batch):
            net(torch.stack(tiles[i : i + batch]).contiguous(memory_format=torch.channels_last))
    return 4 * h * w / (time.perf_counter() - t0) / 1e6


def _upscale_threads(
    name: str,
    args,
    src: Path,
    out: Path,
    dtype: str,
    compile: bool = False,
    tile_px: int | None = None,
) -> tuple[float, dict]:
    """``upscale`` end to end on one thread (threads scheduler): Mpx/s and seconds per stage.

    ``tile_px`` overrides the CPU sub-tile edge (None: the default of the generator).
    """
    from dataclasses import replace

    from s2scale.infer import ops
    from s2scale.infer.upscale import _wrap, prepare_model, upscale_dask

    cube = xr.open_zarr(src, consolidated=False)["reflectance"].rio.write_crs("EPSG:32633")
    setup = prepare_model(name, bands=tuple(str(b) for b in cube.band.values), dtype=dtype,
                          device="cpu", random_weights=args.random_weights,
                          compile=compile)  # fmt: skip
    setup = replace(setup, predictor=replace(setup.predictor, timed=True, tile_px=tile_px))
    arr = upscale_dask(cube.data, setup.predictor, margin_px=setup.halo_px, scale=setup.scale,
                       chunk_px=args.split_chunk_px, align=setup.align)  # fmt: skip
    data = _wrap(cube, arr, setup).to_dataset(name="sr").drop_encoding()
    ops.stage_times(reset=True)
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=1):
        data.to_zarr(out, mode="w", zarr_format=3, consolidated=False, encoding=_encoding("sr"))
    total = time.perf_counter() - t0
    stages = {k: round(v, 3) for k, v in ops.stage_times(reset=True).items()}
    stages["read, overlap, write, scheduling"] = round(total - sum(stages.values()), 3)
    return 4 * cube.sizes["y"] * cube.sizes["x"] / total / 1e6, stages


PIPELINE_REPEATS = 3  # pipeline-alone runs per split repeat (about a second each)


def split(name: str, args, image: np.ndarray, tmp: Path, dtype: str) -> dict:
    """Bare network, end to end and the pipeline's own cost on ONE CPU thread, same pixels."""
    from unittest import mock

    from s2scale.infer import predictor as predictor_module
    from s2scale.infer.tiling import default_batch_size, default_tile_px, network_px
    from s2scale.infer.upscale import prepare_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        src, warm = tmp / "split-in.zarr", tmp / "split-warm-in.zarr"
        _write_input(image, args.split_chunk_px, src)
        _write_input(image[:, :256, :256], args.split_chunk_px, warm)
        device = torch.device("cpu")
        net = _net(name, args.random_weights, device)
        bare_network(net, image[:, :64, :64], 64, 1)  # warm up
        # repeats, interleaved, best of each: this shared VM loses 5-10 % of its CPU to steal
        # time, in bursts; the best run is the one least disturbed (all runs are recorded)
        runs: dict[str, list] = {"bare": [], "bare_b1": [], "e2e": [], "pipe": []}
        by_tile: dict[int, list] = {t: [] for t in args.split_tiles or ()}
        _upscale_threads(name, args, warm, tmp / "split-warm.zarr", dtype)
        real_get_model = predictor_module.get_model

        def zero_cost(*a, **k):
            return _ZeroCostUpsampler(real_get_model(*a, **k))

        for _ in range(args.split_repeats):
            runs["bare"].append(bare_network(net, image, args.bare_tile, args.bare_batch))
            runs["bare_b1"].append(bare_network(net, image, args.bare_tile, 1))
            runs["e2e"].append(_upscale_threads(name, args, src, tmp / "split-out.zarr", dtype))
            for t, tile_runs in by_tile.items():
                out = tmp / "split-tile.zarr"
                tile_runs.append(_upscale_threads(name, args, src, out, dtype, tile_px=t)[0])
            with mock.patch.object(predictor_module, "get_model", zero_cost):
                for _ in range(PIPELINE_REPEATS):
                    runs["pipe"].append(
                        _upscale_threads(name, args, src, tmp / "split-pipe.zarr", dtype)
                    )
        bare, bare_b1 = max(runs["bare"]), max(runs["bare_b1"])
        e2e, e2e_stages = max(runs["e2e"], key=lambda r: r[0])
        pipe, pipe_stages = max(runs["pipe"], key=lambda r: r[0])
        compiled = _compiled(name, args, net, image, src, tmp, dtype) if args.compile else None
    finally:
        torch.set_num_threads(threads)
    setup = prepare_model(name, bands=4, device="cpu", random_weights=args.random_weights)
    p = setup.predictor
    size = image.shape[1]
    chunk = min(args.split_chunk_px, size)
    starts = list(range(0, size, chunk))
    ring = setup.halo_px - p.context_px  # network halo + the projection's reach
    # the network's input per chunk along one axis: its halo alone on a side where the array ends
    lengths = [min(chunk, size - a) + (p.halo_px if a == 0 else ring)
               + (p.halo_px if a + chunk >= size else ring) for a in starts]  # fmt: skip
    tile = p.tile_px or default_tile_px("cpu", setup.arch)

    def net_px_of(tile: int) -> int:
        return sum(network_px((ly, lx), tile, p.overlap_px, p.halo_px, setup.align)
                   for ly in lengths for lx in lengths)  # fmt: skip

    net_px = net_px_of(tile)
    tiles = {str(t): {"end_to_end_mpx_s": [round(v, 4) for v in v_runs],
                      "end_to_end_vs_bare": round(max(v_runs) / bare, 3),
                      "end_to_end_vs_bare_median": round(float(np.median(v_runs)
                                                               / np.median(runs["bare"])), 3),
                      "network_px_per_output_px": round(net_px_of(t) / size**2, 3)}
             for t, v_runs in by_tile.items()}  # fmt: skip
    return {
        "threads": 1, "bare_network_mpx_s": round(bare, 4), "bare_tile": args.bare_tile,
        "bare_batch": args.bare_batch, "bare_network_batch_1_mpx_s": round(bare_b1, 4),
        "end_to_end_mpx_s": round(e2e, 4), "pipeline_mpx_s_per_core": round(pipe, 3),
        "pipeline_mpx_s_per_core_median": round(float(np.median([r[0] for r in runs["pipe"]])), 3),
        "runs_mpx_s": {"bare_network": [round(v, 4) for v in runs["bare"]],
                       "bare_network_batch_1": [round(v, 4) for v in runs["bare_b1"]],
                       "end_to_end": [round(r[0], 4) for r in runs["e2e"]],
                       "pipeline": [round(r[0], 3) for r in runs["pipe"]]},
        "end_to_end_vs_bare_median": round(float(np.median([r[0] for r in runs["e2e"]])
                                                 / np.median(runs["bare"])), 3),
        "image": args.split_image,
        "end_to_end_vs_bare": round(e2e / bare, 3),
        "end_to_end_vs_best_bare": round(e2e / max(bare, bare_b1), 3),
        "network_px_per_output_px": round(net_px / size**2, 3),
        "overlap_share_of_network_work": round(1 - size**2 / net_px, 3),
        "halo_px": setup.halo_px, "network_halo_px": setup.network_halo_px,
        "tile_px": tile, "batch_size": p.batch_size or default_batch_size("cpu"),
        "overlap_px": p.overlap_px, "chunk_px": chunk,
        "stages_s_end_to_end": e2e_stages, "stages_s_pipeline": pipe_stages,
    } | ({} if compiled is None else {"compiled": compiled}) | (
        {"end_to_end_by_tile": tiles} if tiles else {})  # fmt: skip


def targets(results: dict) -> dict:
    """The issue's targets against this record: value, median where repeated, met or not.

    CPU: end to end >= 0.8x the bare network and the pipeline >= 5 Mpx/s per core (one thread,
    the split). CUDA: end to end >= 0.8x the raw batched model at the best batch and tile of the
    sweep. A target this device cannot check says so instead of being left out.
    """
    out: dict = {}
    for name in results["models"]:
        r, t = results[name], {}
        sp = r.get("split")
        if results["device"] == "cpu" and sp:
            t["end_to_end_vs_bare_network"] = {
                "target": 0.8, "value": sp["end_to_end_vs_bare"],
                "median": sp["end_to_end_vs_bare_median"],
                "met": sp["end_to_end_vs_bare"] >= 0.8}  # fmt: skip
            t["pipeline_mpx_s_per_core"] = {
                "target": 5.0, "value": sp["pipeline_mpx_s_per_core"],
                "median": sp["pipeline_mpx_s_per_core_median"],
                "met": sp["pipeline_mpx_s_per_core"] >= 5.0}  # fmt: skip
            t["gpu_end_to_end_vs_best_raw"] = {
                "target": 0.8, "value": None, "met": None,
                "note": "not measured: this run had no CUDA device"}  # fmt: skip
        elif results["device"] == "cuda":
            best = max(row["mpx_s"] for row in results["sweep"] if row["model"] == name)
            ratio = round(r["end_to_end_by_workers"]["1"] / best, 3)
            t["gpu_end_to_end_vs_best_raw"] = {"target": 0.8, "value": ratio, "met": ratio >= 0.8,
                                               "best_raw_mpx_s": best}  # fmt: skip
        out[name] = t
    return out


def _compiled(name: str, args, net, image: np.ndarray, src: Path, tmp: Path, dtype: str) -> dict:
    """``torch.compile`` measured (``--compile``): the bare network and end to end, one thread.

    The first call per input shape compiles (``compile_s``: the bare tile's; the end-to-end run
    is warmed up on the same image, so its tile shapes are compiled before it is timed).
    """
    cnet = torch.compile(net)
    t0 = time.perf_counter()
    bare_network(cnet, image[:, : args.bare_tile, : args.bare_tile], args.bare_tile, 1)
    compile_s = time.perf_counter() - t0
    bare = bare_network(cnet, image, args.bare_tile, 1)
    _upscale_threads(name, args, src, tmp / "split-compile-warm.zarr", dtype, compile=True)
    e2e, stages = _upscale_threads(name, args, src, tmp / "split-compile.zarr", dtype, compile=True)
    return {
        "bare_network_batch_1_mpx_s": round(bare, 4), "end_to_end_mpx_s": round(e2e, 4),
        "end_to_end_vs_bare": round(e2e / bare, 3), "compile_s": round(compile_s, 1),
        "stages_s_end_to_end": stages,
    }  # fmt: skip


def task_stream_summary(stream: list[dict]) -> dict:
    """Busy share of each worker over the run, and its compute seconds per task prefix.

    From a Dask task stream (``get_task_stream``). With ``to_zarr`` the model tasks may be
    fused with the store's (prefix ``store-map`` or similar): the prefixes say what ran where.
    """
    busy: dict[str, float] = {}
    by_prefix: dict[str, dict[str, float]] = {}
    t_lo, t_hi = float("inf"), 0.0
    for task in stream:
        key = task["key"]
        name = str(key[0] if isinstance(key, tuple) else key)
        prefix = name.rsplit("-", 1)[0] if len(name.rsplit("-", 1)[-1]) == 32 else name
        for ss in task.get("startstops", ()):
            if ss["action"] != "compute":
                continue
            t_lo, t_hi = min(t_lo, ss["start"]), max(t_hi, ss["stop"])
            seconds = ss["stop"] - ss["start"]
            busy[task["worker"]] = busy.get(task["worker"], 0.0) + seconds
            per = by_prefix.setdefault(task["worker"], {})
            per[prefix] = per.get(prefix, 0.0) + seconds
    wall = max(t_hi - t_lo, 1e-9)
    return {
        "wall_s": round(wall, 2),
        "busy_share_by_worker": {w: round(v / wall, 3) for w, v in sorted(busy.items())},
        "compute_s_by_worker_and_task": {
            w: {p: round(v, 2) for p, v in sorted(per.items(), key=lambda kv: -kv[1])[:6]}
            for w, per in sorted(by_prefix.items())
        },
    }


def plot_stages(results: dict, path: Path) -> Path:
    """Stacked bars: seconds per stage of the end-to-end run and of the pipeline alone."""
    from PIL import Image, ImageDraw

    colours = {
        "fill": (230, 160, 60),
        "network": (40, 70, 140),
        "projection": (120, 170, 90),
        "output": (180, 80, 80),
        "read, overlap, write, scheduling": (160, 160, 160),
    }
    rows = [(f"{m} {kind}", results[m]["split"][key]) for m in results["models"]
            for kind, key in (("end to end", "stages_s_end_to_end"),
                              ("pipeline (zero-cost net)", "stages_s_pipeline"))]  # fmt: skip
    width, label_w = 760, 230
    canvas = Image.new("RGB", (width, 60 + 26 * len(rows) + 22 * len(colours)), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((6, 6), "where the time goes, one CPU thread (s per run)", fill="black")
    top = max(sum(st.values()) for _, st in rows)
    for i, (label, st) in enumerate(rows):
        y, x = 30 + 26 * i, label_w
        draw.text((6, y + 3), label, fill="black")
        for stage, seconds in st.items():
            dx = int((width - label_w - 60) * max(seconds, 0) / top)
            draw.rectangle([x, y, x + dx, y + 18], fill=colours.get(stage, (0, 0, 0)))
            x += dx
        draw.text((x + 4, y + 3), f"{sum(st.values()):.2f}", fill="black")
    for j, (stage, colour) in enumerate(colours.items()):
        y = 40 + 26 * len(rows) + 22 * j
        draw.rectangle([6, y, 22, y + 14], fill=colour)
        draw.text((28, y + 1), stage, fill="black")
    canvas.save(path)
    return path


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for pkg in ("s2scale", "torch", "numpy", "dask", "distributed", "xarray", "zarr"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "missing"
    return out


def plot(results: dict, path: Path) -> Path:
    """Horizontal bars per generator: naive loop, bicubic, raw model, end to end (1, 2 workers)."""
    from PIL import Image, ImageDraw

    models = list(results["models"])
    rows = [("naive loop (batch 1)", "naive_loop_mpx_s"), ("raw batched model", "raw_model_mpx_s"),
            ("end to end, 1 worker", "e2e1"), ("end to end, 2 workers", "e2e2"),
            ("bicubic", "bicubic_mpx_s")]  # fmt: skip
    panel_h, bar_h, label_w, width = 24 + len(rows) * 20, 15, 150, 640
    canvas = Image.new("RGB", (width, 26 + len(models) * panel_h), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((6, 6), f"s2scale throughput, 5 m output Mpx/s - {results['device_name']} "
                      f"({results['device']}, {results['dtype']})", fill="black")  # fmt: skip
    for i, name in enumerate(models):
        entry = results[name]
        values = {**entry, "e2e1": entry["end_to_end_by_workers"]["1"],
                  "e2e2": entry["end_to_end_by_workers"]["2"]}  # fmt: skip
        top = max(values[k] for _, k in rows[:-1])  # bicubic may run far off the scale
        y0 = 26 + i * panel_h
        draw.text((6, y0 + 2), name, fill="black")
        for j, (label, key) in enumerate(rows):
            y = y0 + 20 + j * 20
            v = values[key]
            length = int((width - label_w - 80) * min(v / top, 1.0))
            draw.text((6, y + 2), label, fill="black")
            colour = (40, 70, 140) if key.startswith("e2e") else (150, 170, 210)
            draw.rectangle([label_w, y, label_w + max(length, 1), y + bar_h], fill=colour)
            draw.text((label_w + max(length, 1) + 4, y + 2), f"{v:.3g}", fill="black")
    canvas.save(path)
    return path


def table(record: dict) -> str:
    """The README table of a throughput record (markdown)."""
    r, m = record["results"], record["machine"]
    lines = [
        f"Record `{record['benchmark']}-{record['time']}.json` (commit "
        f"`{record['git_commit'][:12]}`): {r['device_name']} ({r['device']}, autocast "
        f"{r['dtype']}), {m.get('cpu_count')} CPU cores, torch {m.get('torch')}, image "
        f"{r['image_px']} px, tile {record['config']['tile']}, batch {record['config']['batch']}, "
        f"chunk {record['config']['chunk_px']}{', random weights' if r['random_weights'] else ''}.",
        "",
        "| model | naive loop | raw batched | end to end (1 worker) | end to end (2 workers) "
        "| bicubic | e2e / raw | e2e / naive |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in r["models"]:
        e = r[name]
        w = e["end_to_end_by_workers"]
        lines.append(
            f"| {name} | {e['naive_loop_mpx_s']} | {e['raw_model_mpx_s']} | {w['1']} | {w['2']} "
            f"| {e['bicubic_mpx_s']} | {e['e2e_vs_raw']} | {e['e2e_vs_naive']} |"
        )
    best: dict = {}
    for row in r["sweep"]:
        key = (row["model"], row["dtype"])
        if key not in best or row["mpx_s"] > best[key]["mpx_s"]:
            best[key] = row
    lines += ["", "Best raw batched configuration per generator and dtype (sweep):", "",
              "| model | dtype | batch | tile | Mpx/s |", "|---|---|---|---|---|"]  # fmt: skip
    for (name, dt), row in best.items():
        lines.append(f"| {name} | {dt} | {row['batch']} | {row['tile']} | {row['mpx_s']} |")
    if "targets" in r:
        lines += ["", "Targets (best run; median of the repeats in brackets):", "",
                  "| model | target | goal | value | met |", "|---|---|---|---|---|"]  # fmt: skip
        for name, ts in r["targets"].items():
            for key, t in ts.items():
                value = t.get("note") if t["value"] is None else t["value"]
                if "median" in t:
                    value = f"{value} ({t['median']})"
                met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
                lines.append(f"| {name} | {key} | {t['target']} | {value} | {met} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["srresnet", "realesrgan"])
    grid = parser.add_mutually_exclusive_group()
    grid.add_argument(
        "--quick",
        dest="grid",
        action="store_const",
        const="quick",
        help="small grid and image (default; minutes on 2 CPU cores)",
    )
    grid.add_argument(
        "--full",
        dest="grid",
        action="store_const",
        const="full",
        help="batch 1-16, tiles 128-512, 2048 px image",
    )
    parser.set_defaults(grid="quick")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="full-size untrained nets instead of the shipped checkpoints",
    )
    parser.add_argument("--size", type=int, default=None, help="LR image edge (naive/e2e)")
    parser.add_argument(
        "--tile",
        type=int,
        default=None,
        help="tile edge (input px) of the matched raw, naive and e2e runs",
    )
    parser.add_argument("--batch", type=int, default=None, help="batch of the matched raw/e2e")
    parser.add_argument(
        "--sweep-tiles",
        type=int,
        nargs="+",
        default=None,
        help="tile edges of the sweep (default: the grid's)",
    )
    parser.add_argument("--sweep-batches", type=int, nargs="+", default=None,
                        help="batch sizes of the sweep (default: the grid's)")  # fmt: skip
    parser.add_argument("--chunk-px", type=int, default=None, help="Dask chunk edge (e2e)")
    parser.add_argument(
        "--bare-tile",
        type=int,
        default=256,
        help="tile edge of the bare-network reference (no halo)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also measure torch.compile in the one-thread split (bare network and end to end)",
    )
    parser.add_argument(
        "--bare-batch",
        type=int,
        default=4,
        help="batch of the bare-network reference (the issue's: 4; batch 1 is measured too)",
    )
    parser.add_argument(
        "--split-size",
        type=int,
        default=1024,
        help="image edge of the one-thread split (bare, e2e, pipeline)",
    )
    parser.add_argument("--split-repeats", type=int, default=3,
                        help="repeats of the split's runs (the best is reported)")  # fmt: skip
    parser.add_argument("--split-tiles", type=int, nargs="+", default=None,
                        help="CPU sub-tile edges whose end-to-end runs the split adds, "
                        "interleaved with its repeats")  # fmt: skip
    parser.add_argument("--split-image", choices=("real", "texture"), default="real",
                        help="image of the one-thread split: a real Sentinel-2 scene "
                        "($S2SCALE_SHARED_DATA) or the synthetic texture")  # fmt: skip
    parser.add_argument("--split-chunk-px", type=int, default=1024,
                        help="chunk edge of the split's end-to-end run")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=None, help="timed raw passes")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="write a record from a modified tree")  # fmt: skip
    parser.add_argument(
        "--table", type=Path, default=None, help="print the README table of this record and exit"
    )
    args = parser.parse_args()
    if args.table is not None:
        import json

        print(table(json.loads(args.table.read_text())))
        return
    g = dict(GRIDS[args.grid])
    g["tile"] = tuple(args.sweep_tiles or g["tile"])
    g["batch"] = tuple(args.sweep_batches or g["batch"])
    args.size = args.size or g["size"]
    args.tile = args.tile or g["match_tile"]
    args.batch = args.batch or g["match_batch"]
    args.chunk_px = args.chunk_px or g["chunk_px"]
    args.repeats = args.repeats or g["repeats"]
    commit = git_commit()
    if commit.endswith("-dirty") and not args.allow_dirty:
        sys.exit(f"the tree has changes ({commit}); commit first, or pass --allow-dirty")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype_name = "bfloat16" if device.type == "cuda" else "float32"
    sweep_dtypes = ("float32", "bfloat16", "float16") if device.type == "cuda" else ("float32",)
    if args.grid == "full" and device.type == "cpu":
        sweep_dtypes = ("float32", "bfloat16")
    image = _texture(args.size, 4)
    reports: dict = {}
    results: dict = {
        "device": device.type, "device_name": device_name(device), "dtype": dtype_name,
        "random_weights": args.random_weights, "versions": versions(), "models": args.models,
        "image_px": args.size, "sweep": [],
    }  # fmt: skip
    for name in args.models:
        net = _net(name, args.random_weights, device)
        for dt, batch, tile in itertools.product(sweep_dtypes, g["batch"], g["tile"]):
            mpx = raw_model(net, device, DTYPES[dt], tile, batch, args.repeats)
            row = {"model": name, "dtype": dt, "batch": batch, "tile": tile, "mpx_s": round(mpx, 3)}
            results["sweep"].append(row)
            print("sweep", row, flush=True)
        amp = DTYPES[dtype_name]
        results[name] = {
            "raw_model_mpx_s": round(raw_model(net, device, amp, args.tile, args.batch,
                                               args.repeats), 3),
            "naive_loop_mpx_s": round(naive_loop(net, device, amp, image, args.tile), 3),
            "bicubic_mpx_s": round(bicubic(device, image, args.tile), 3),
            "end_to_end_by_workers": {},
        }  # fmt: skip
    results["clusters"] = {}
    with tempfile.TemporaryDirectory() as tmp:
        split_image = (_real_image(args.split_size) if args.split_image == "real"
                       else _texture(args.split_size, 4, seed=1))  # fmt: skip
        for name in args.models:
            results[name]["split"] = split(name, args, split_image, Path(tmp), dtype_name)
            print(name, "split", results[name]["split"], flush=True)
        results["codecs"] = codecs(split_image)
        print("codecs", results["codecs"], flush=True)
        src, warm = Path(tmp) / "in.zarr", Path(tmp) / "warm.zarr"
        _write_input(image, args.chunk_px, src)
        edge = min(args.chunk_px, args.size) // 2  # loads the model on each worker, quickly
        _write_input(image[:, :edge, :edge], args.chunk_px, warm)
        for workers in (1, 2):
            client = make_client(ClusterConfig(kind="local", n_workers=workers,
                                               threads_per_worker=2))  # fmt: skip
            try:
                results["clusters"][str(workers)] = cluster_context(client)
                for name in args.models:
                    end_to_end(name, args, warm, Path(tmp) / "w.zarr", dtype_name)  # load models
                    report = Path(tmp) / f"performance-{name}-{workers}.html"
                    perf = performance_report(filename=str(report)) if BOKEH else nullcontext()
                    with perf, get_task_stream() as ts:
                        e2e = end_to_end(name, args, src, Path(tmp) / "out.zarr", dtype_name)
                    summary = task_stream_summary(ts.data)
                    results[name].setdefault("task_stream", {})[str(workers)] = summary
                    if BOKEH:
                        reports[(name, workers)] = report.read_bytes()
                    results[name]["end_to_end_by_workers"][str(workers)] = round(e2e, 3)
                    print(name, workers, "workers:", round(e2e, 3), "Mpx/s", flush=True)
            finally:
                client.close()
    for name in args.models:
        r = results[name]
        e2e = r["end_to_end_by_workers"]["1"]
        r["end_to_end_mpx_s"] = e2e
        r["e2e_vs_raw"] = round(e2e / r["raw_model_mpx_s"], 3)
        r["e2e_vs_naive"] = round(e2e / r["naive_loop_mpx_s"], 3)
        r["e2e_2_workers_vs_1"] = round(r["end_to_end_by_workers"]["2"] / e2e, 3)
        print(name, r, flush=True)
    results["targets"] = targets(results)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config |= {"out": None, "grid_batch": list(g["batch"]), "grid_tile": list(g["tile"]),
               "sweep_dtypes": list(sweep_dtypes), "threads_per_worker": 2}  # fmt: skip
    path = write_record("throughput", config, results, out_dir=args.out)
    plot(results, path.with_suffix(".png"))
    plot_stages(results, path.with_name(path.stem + "-stages.png"))
    for (name, workers), html in reports.items():
        path.with_name(f"{path.stem}-{name}-{workers}w-performance.html").write_bytes(html)
    print(path)


if __name__ == "__main__":
    main()
