"""Foundation timings: sample generation, national catalog, national dry-run plan, demo cube.

Targets (issue: foundation): sample < 30 s and the national dry-run plan < 30 s on 2 cores, the
quickstart main job < 2 minutes. Run: ``python benchmarks/bench_foundation.py``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _record import write_record

from s2scale.config import RunConfig
from s2scale.pipeline import run_cube, run_demo, run_upscale
from s2scale.sim import write_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        write_sample(tmp / "sample")
        results["sample_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        national = write_sample(tmp / "national", national=True)
        results["national_catalog_s"] = round(time.perf_counter() - t0, 2)
        cfg = RunConfig().replace(
            "catalog", stac=str(national.catalog), aoi="austria", datetime="2024-06-01/2024-08-31"
        )
        t0 = time.perf_counter()
        plan = run_cube(cfg, tmp / "unused.zarr", dry_run=True)
        results["national_cube_dry_run_s"] = round(time.perf_counter() - t0, 2)
        results["national_cube_plan"] = {k: plan[k] for k in ("scenes", "units", "tasks_total",
                                                              "tasks_per_unit")}  # fmt: skip
        t0 = time.perf_counter()
        plan = run_upscale(cfg.replace("infer", model="realesrgan"), "unused.zarr", dry_run=True)
        results["national_upscale_dry_run_s"] = round(time.perf_counter() - t0, 2)
        results["national_upscale_plan"] = {
            k: plan[k]
            for k in ("scenes", "units", "regions", "tasks_total", "tasks_per_unit",
                      "scenes_per_unit", "output_pixels", "timings_s")
        }  # fmt: skip
        t0 = time.perf_counter()
        run_demo(tmp / "demo")
        results["demo_s"] = round(time.perf_counter() - t0, 2)
    path = write_record("foundation", {"sample_seed": 0}, results, out_dir=args.out)
    print(path)
    print(results)


if __name__ == "__main__":
    main()
