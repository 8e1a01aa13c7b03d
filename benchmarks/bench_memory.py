"""Peak memory per worker as the AOI grows: the upscale job on 1x and 4x the sample's area.

Target (issue: seamless distributed upscaling): peak memory per worker grows by less than 10 %
from 1x to 4x area, because work streams through fixed-size chunks and regions. Each run uses
the same cluster shape (2 worker processes x 1 thread); a sampler thread reads every worker's
resident memory (RSS) every 0.2 s. Run::

    python benchmarks/bench_memory.py            # shipped srresnet
    python benchmarks/bench_memory.py --model realesrgan
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from _record import write_record

from s2scale.cluster import make_client
from s2scale.config import ClusterConfig, RunConfig
from s2scale.pipeline import run_upscale
from s2scale.sim import SAMPLE_AOI, write_sample


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _grow(aoi: tuple[float, float, float, float], factor: float) -> tuple[float, ...]:
    """The AOI scaled about its centre so that its area is ``factor`` times larger."""
    minx, miny, maxx, maxy = aoi
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    k = factor**0.5 / 2
    return (
        cx - k * (maxx - minx),
        cy - k * (maxy - miny),
        cx + k * (maxx - minx),
        cy + k * (maxy - miny),
    )


def measure(area: float, model: str, tmp: Path) -> dict:
    aoi = _grow(SAMPLE_AOI, area)
    info = write_sample(tmp / f"sample{area:g}", aoi=aoi)
    cfg = RunConfig().replace(
        "catalog",
        stac=str(info.catalog),
        aoi=",".join(map(str, aoi)),
        datetime="2024-06-01/2024-08-31",
    )
    cfg = cfg.replace("cube", chunk_px=256).replace("infer", model=model, chunk_px=256)
    cfg = cfg.replace("mosaic", chunk_px=512, cog=False)
    client = make_client(ClusterConfig(kind="local", n_workers=2, threads_per_worker=1))
    peaks: dict[str, int] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for worker, rss in client.run(_rss).items():
                peaks[worker] = max(peaks.get(worker, 0), rss)
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    baseline = client.run(_rss)
    thread.start()
    t0 = time.perf_counter()
    try:
        report = run_upscale(cfg, tmp / f"mosaic{area:g}.zarr", client=client, progress=False)
    finally:
        stop.set()
        thread.join()
        client.close()
    return {
        "area_factor": area,
        "aoi": aoi,
        "output_pixels": report["output_pixels"],
        "regions": report["regions"],
        "seconds": round(time.perf_counter() - t0, 1),
        "baseline_rss_mb": {w: round(v / 2**20) for w, v in baseline.items()},
        "peak_rss_mb_per_worker": {w: round(v / 2**20) for w, v in peaks.items()},
        "max_peak_rss_mb": round(max(peaks.values()) / 2**20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="srresnet")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [measure(a, args.model, Path(tmp)) for a in (1.0, 4.0)]
    growth = runs[1]["max_peak_rss_mb"] / runs[0]["max_peak_rss_mb"] - 1
    results = {
        "runs": runs,
        "peak_growth_1x_to_4x": round(growth, 4),
        "target": "< 0.10",
        "met": growth < 0.10,
    }
    path = write_record("memory", {"model": args.model, "areas": [1, 4]}, results, out_dir=args.out)
    print(results)
    print(path)


if __name__ == "__main__":
    main()
