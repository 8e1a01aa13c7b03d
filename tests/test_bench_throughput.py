"""The throughput benchmark's own logic: the targets it reports and its codec comparison."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import bench_throughput as bench

RECORD = Path(__file__).parents[1] / "benchmarks/results/throughput-20261207T050800.json"


def _split(e2e_vs_bare: float, pipeline: float) -> dict:
    return {"end_to_end_vs_bare": e2e_vs_bare, "end_to_end_vs_bare_median": e2e_vs_bare - 0.05,
            "pipeline_mpx_s_per_core": pipeline,
            "pipeline_mpx_s_per_core_median": pipeline - 0.5}  # fmt: skip


def test_targets_say_met_missed_and_unmeasured_on_the_cpu():
    results = {"device": "cpu", "models": ["a", "b"],
               "a": {"split": _split(0.85, 5.4)}, "b": {"split": _split(0.79, 4.9)}}  # fmt: skip
    t = bench.targets(results)
    assert t["a"]["end_to_end_vs_bare_network"]["met"] is True
    assert t["a"]["pipeline_mpx_s_per_core"] == {
        "target": 5.0, "value": 5.4, "median": 4.9, "met": True}  # fmt: skip
    assert t["b"]["end_to_end_vs_bare_network"]["met"] is False
    assert t["b"]["pipeline_mpx_s_per_core"]["met"] is False
    gpu = t["a"]["gpu_end_to_end_vs_best_raw"]
    assert gpu["met"] is None and "no CUDA device" in gpu["note"]
    record = json.loads(RECORD.read_text())
    record["results"]["targets"] = t
    table = bench.table(record)
    assert "| b | end_to_end_vs_bare_network | 0.8 | 0.79 (0.74) | **no** |" in table


def test_targets_on_cuda_compare_with_the_best_raw_configuration():
    results = {"device": "cuda", "models": ["a"],
               "sweep": [{"model": "a", "mpx_s": 100.0}, {"model": "a", "mpx_s": 150.0}],
               "a": {"end_to_end_by_workers": {"1": 123.0}}}  # fmt: skip
    gpu = bench.targets(results)["a"]["gpu_end_to_end_vs_best_raw"]
    assert gpu == {"target": 0.8, "value": 0.82, "met": True, "best_raw_mpx_s": 150.0}


def test_codecs_round_trip_sizes_and_the_stores_codec_wins_on_ratio():
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(-20, 21, size=(4, 128, 128)), axis=-1)
    image = np.clip(2000 + smooth, 1, 10000).astype(np.uint16)
    rows = bench.codecs(image, repeats=1)
    assert rows["output_px"] == [4, 256, 256]
    ratios = {k: v["ratio"] for k, v in rows.items() if k != "output_px"}
    assert len(ratios) == 3 and all(r > 1 for r in ratios.values())
    assert max(ratios, key=ratios.get).startswith("s2scale")
