"""Linear cost: the upscale job on 1x, 4x and 16x the sample's area, with the same settings.

Targets (issue: national scale): seconds per output megapixel within 1.35x of the 1x run, peak
worker memory and peak client memory within 1.25x. Each run simulates its AOI first (not timed),
then runs ``run_upscale`` on a fresh local cluster of 2 worker processes x 1 thread; a sampler
thread reads every worker's and the client's resident memory (RSS) every 0.2 s, and the task
stream says where the time goes (read + composite, SR, blend, write; summed task seconds).
The client's peak is measured in a process that did nothing before (the AOI is simulated by
``s2scale sample --aoi`` in a subprocess). Run::

    python benchmarks/bench_scaling.py                 # shipped srresnet, areas 1, 4, 16
    python benchmarks/bench_scaling.py --areas 1,4     # quicker
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from _record import write_record
from bench_memory import _grow, _rss

from s2scale.cluster import make_client
from s2scale.config import ClusterConfig, RunConfig
from s2scale.pipeline import run_upscale
from s2scale.sim import SAMPLE_AOI

_STAGES = (  # task key prefix -> stage
    ("asset-table", "read"), ("asset_table", "read"), ("fetch_raster_window", "read"),
    # stackstac's reads are fused with the masks into one task per chunk: "composite" includes
    # reading and decoding the COG windows.
    ("harmonise", "composite"), ("mask", "composite"), ("getitem", "composite"),
    ("composite", "composite"), ("concatenate", "composite"), ("rechunk", "composite"),
    ("upscale", "sr"), ("blend", "blend"), ("write", "write"),
)  # fmt: skip


def _stage(key: object) -> str:
    name = str(key[0] if isinstance(key, tuple) else key).lower()
    for prefix, stage in _STAGES:
        if prefix in name:
            return stage
    return "other"


def measure(area: float, model: str, tmp: Path) -> dict:
    from distributed import get_task_stream

    aoi = _grow(SAMPLE_AOI, area)
    # Simulate in another process, so that this process's memory is the client's alone.
    bbox = ",".join(f"{v:.6f}" for v in aoi)
    subprocess.run(
        [sys.executable, "-m", "s2scale.cli", "sample", "--out", str(tmp / f"sample{area:g}"),
         "--aoi", bbox], check=True, capture_output=True,
    )  # fmt: skip
    catalog = tmp / f"sample{area:g}" / "catalog.json"
    cfg = RunConfig().replace(
        "catalog", stac=str(catalog), aoi=bbox,
        datetime="2024-06-01/2024-08-31",
    )  # fmt: skip
    cfg = cfg.replace("cube", chunk_px=512).replace("infer", model=model)
    cfg = cfg.replace("mosaic", chunk_px=512, cog=False)
    client = make_client(ClusterConfig(kind="local", n_workers=2, threads_per_worker=1))
    peaks: dict[str, int] = {}
    client_peak = [_rss()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for worker, rss in client.run(_rss).items():
                peaks[worker] = max(peaks.get(worker, 0), rss)
            client_peak[0] = max(client_peak[0], _rss())
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    baseline = client.run(_rss)
    client_base = _rss()
    thread.start()
    t0 = time.perf_counter()
    try:
        with get_task_stream(client) as ts:
            report = run_upscale(cfg, tmp / f"mosaic{area:g}.zarr", client=client, progress=False)
        seconds = time.perf_counter() - t0
    finally:
        stop.set()
        thread.join()
        client.close()
    stages: dict[str, float] = defaultdict(float)
    for rec in ts.data:
        for ss in rec.get("startstops", ()):
            if ss.get("action") == "compute":
                stages[_stage(rec["key"])] += ss["stop"] - ss["start"]
    mpx = report["output_pixels"] / 1e6
    return {
        "area_factor": area,
        "aoi": aoi,
        "output_mpx": round(mpx, 3),
        "units": report["units"],
        "tasks_total": report["tasks_total"],
        "seconds": round(seconds, 1),
        "seconds_per_mpx": round(seconds / mpx, 2),
        "task_seconds_by_stage": {k: round(v, 1) for k, v in sorted(stages.items())},
        "task_seconds_per_mpx_by_stage": {k: round(v / mpx, 2) for k, v in sorted(stages.items())},
        "baseline_rss_mb": {w: round(v / 2**20) for w, v in baseline.items()},
        "max_peak_rss_mb": round(max(peaks.values()) / 2**20),
        "client_rss_mb": {
            "baseline": round(client_base / 2**20),
            "peak": round(client_peak[0] / 2**20),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="srresnet")
    parser.add_argument("--areas", default="1,4,16")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()
    areas = [float(a) for a in args.areas.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        runs = [measure(a, args.model, Path(tmp)) for a in areas]
    base = runs[0]
    ratios = [
        {
            "area_factor": r["area_factor"],
            "seconds_per_mpx": round(r["seconds_per_mpx"] / base["seconds_per_mpx"], 3),
            "peak_worker_rss": round(r["max_peak_rss_mb"] / base["max_peak_rss_mb"], 3),
            "peak_client_rss": round(r["client_rss_mb"]["peak"] / base["client_rss_mb"]["peak"], 3),
        }
        for r in runs
    ]
    met = all(
        q["seconds_per_mpx"] <= 1.35
        and q["peak_worker_rss"] <= 1.25
        and q["peak_client_rss"] <= 1.25
        for q in ratios
    )
    results = {
        "runs": runs,
        "ratios_to_first": ratios,
        "targets": {"seconds_per_mpx": "<= 1.35", "peak_worker_rss": "<= 1.25",
                    "peak_client_rss": "<= 1.25"},
        "met": met,
    }  # fmt: skip
    config = {"model": args.model, "areas": areas, "cluster": "local, 2 workers x 1 thread",
              "cube.chunk_px": 512, "mosaic.chunk_px": 512}  # fmt: skip
    path = write_record("scaling", config, results, out_dir=args.out)
    print(ratios, met)
    print(path)


if __name__ == "__main__":
    main()
