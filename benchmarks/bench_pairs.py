"""Training pairs per second on a local Dask cluster of 1 and 2 workers (``s2scale pairs``).

The data is simulated first (not timed): a sample east of 12 deg E with three clear passes
and one cloudy pass, whose 1 m orthophoto (EPSG:31287) is cut into tiles, as an orthophoto
archive comes. Each run then makes the pairs of every (tile x nearest clear observation) with
:func:`s2scale.pipeline.run_pairs` on a fresh ``LocalCluster`` of N worker processes x 1 thread
into a fresh store. ``pairs_per_s`` is kept patches per second of the group stage (the cluster
work: reading the Sentinel-2 and orthophoto windows, alignment, co-registration, matching,
SSIM, split, writing); ``total_s`` includes planning, the scene survey and the store's
consolidation. Run::

    python benchmarks/bench_pairs.py                  # writes benchmarks/results/pairs-*.json
    python benchmarks/bench_pairs.py --dry-run --tiles 2x1 --workers 1   # check, no record
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # before distributed loads

import numpy as np
import rasterio
from _record import cluster_context, git_commit, machine, write_record

from s2scale.cluster import make_client
from s2scale.config import CatalogConfig, ClusterConfig, RunConfig
from s2scale.pairs import PairsConfig
from s2scale.pipeline import run_pairs
from s2scale.sim import SceneSpec, write_sample

AOI = (12.03, 47.465, 12.11, 47.515)
SCENES = (
    SceneSpec(datetime(2024, 7, 8, 10, 15, 59), "sentinel-2b", "05.10", 0.0),
    SceneSpec(datetime(2024, 7, 11, 10, 15, 51), "sentinel-2c", "05.10", 1.0),
    SceneSpec(datetime(2024, 7, 12, 10, 15, 51), "sentinel-2a", "05.10", 0.0),
    SceneSpec(datetime(2024, 7, 18, 10, 15, 59), "sentinel-2b", "05.10", 0.0),
)


def make_data(root: Path, ortho_m: tuple[float, float], tiles: tuple[int, int]) -> Path:
    """Simulate the sample and cut its orthophoto into ``tiles`` (columns x rows) files."""
    info = write_sample(root, aoi=AOI, margin_m=500.0, scenes=SCENES, ortho_size_m=ortho_m)
    assert info.orthophoto is not None
    nx, ny = tiles
    out = root / "tiles"
    out.mkdir()
    with rasterio.open(info.orthophoto) as src:
        data, profile, tags = src.read(), src.profile, src.tags()
        names = src.descriptions
        ys = np.linspace(0, src.height, ny + 1).astype(int)
        xs = np.linspace(0, src.width, nx + 1).astype(int)
        for r in range(ny):
            for c in range(nx):
                win = rasterio.windows.Window(xs[c], ys[r], xs[c + 1] - xs[c], ys[r + 1] - ys[r])
                part = data[:, ys[r] : ys[r + 1], xs[c] : xs[c + 1]]
                prof = profile | {
                    "driver": "GTiff", "width": part.shape[2], "height": part.shape[1],
                    "transform": src.window_transform(win), "tiled": True,
                    "blockxsize": 256, "blockysize": 256, "compress": "deflate",
                }  # fmt: skip
                with rasterio.open(out / f"tile_{r}_{c}.tif", "w", **prof) as dst:
                    dst.write(part)
                    dst.update_tags(**tags)
                    for i, n in enumerate(names, start=1):
                        dst.set_band_description(i, n)
    return info.catalog


def measure(catalog: Path, tiles_dir: Path, workers: int, cfg: PairsConfig, tmp: Path) -> dict:
    client = make_client(ClusterConfig(kind="local", n_workers=workers, threads_per_worker=1))
    try:
        context = cluster_context(client)
        run = RunConfig(catalog=CatalogConfig(stac=str(catalog)))
        t0 = time.perf_counter()
        report = run_pairs(tmp / f"pairs-{workers}.zarr", config=cfg, run=run, client=client,
                           progress=False)  # fmt: skip
        total = time.perf_counter() - t0
    finally:
        client.close()
    return {
        "cluster": context,
        "groups": report["groups"],
        "patches": report["patches"],
        "counts": report["counts"],
        "dropped": report["dropped"],
        "groups_s": report["timings_s"]["groups"],
        "pairs_per_s": report["pairs_per_s"],
        "groups_per_s": round(report["groups"] / report["timings_s"]["groups"], 3),
        "total_s": round(total, 2),
        "timings_s": report["timings_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", default="1,2", help="worker counts to run [1,2]")
    parser.add_argument("--tiles", default="4x3", help="orthophoto tiles, COLSxROWS [4x3]")
    parser.add_argument("--ortho-m", default="4000x3000", help="orthophoto size in metres")
    parser.add_argument("--lr-patch-px", type=int, default=48, help="LR patch edge [48]")
    parser.add_argument("--observations", type=int, default=3, help="clear passes per tile")
    parser.add_argument("--out", type=Path, default=None, help="record folder [results/]")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the record instead of writing it"
    )
    args = parser.parse_args()
    tiles = tuple(int(v) for v in args.tiles.split("x"))
    ortho_m = tuple(float(v) for v in args.ortho_m.split("x"))
    cfg = PairsConfig(orthophotos=(), lr_patch_px=args.lr_patch_px,
                      observations=args.observations)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-pairs-") as name:
        tmp = Path(name)
        t0 = time.perf_counter()
        catalog = make_data(tmp / "data", ortho_m, tiles)  # type: ignore[arg-type]
        simulate_s = time.perf_counter() - t0
        cfg = cfg.replace(orthophotos=(str(tmp / "data" / "tiles" / "*.tif"),))
        results: dict = {"simulate_s": round(simulate_s, 2), "runs": {}}
        for w in (int(v) for v in args.workers.split(",")):
            results["runs"][str(w)] = measure(catalog, tmp / "data" / "tiles", w, cfg, tmp)
            print(f"{w} worker(s): {results['runs'][str(w)]['pairs_per_s']} pairs/s",
                  file=sys.stderr)  # fmt: skip
    runs = results["runs"]
    if "1" in runs and "2" in runs and runs["1"]["pairs_per_s"]:
        results["speedup_2_over_1"] = round(runs["2"]["pairs_per_s"] / runs["1"]["pairs_per_s"], 2)
    config = {
        "pairs": cfg.fingerprint(), "tiles": list(tiles), "ortho_m": list(ortho_m),
        "aoi": list(AOI), "scenes": [s.when.isoformat() for s in SCENES],
        "threads_per_worker": 1,
    }  # fmt: skip
    if args.dry_run:
        record = {"benchmark": "pairs", "git_commit": git_commit(), "config": config,
                  "machine": machine(), "results": results}  # fmt: skip
        print(json.dumps(record, indent=2, default=str))
        return
    path = write_record("pairs", config, results, out_dir=args.out)
    print(path)


if __name__ == "__main__":
    main()
