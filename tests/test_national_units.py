"""National runs in work units: plans sized by overlapping scenes, GPU pinning on real clusters.

The pinning tests run on a cluster of separately started processes (a scheduler, one worker with
``--resources GPU=1``, one without), as on a real cluster, and ask each worker how many model
forward passes it ran.
"""

from __future__ import annotations

import copy
import json

import dask
import distributed
import numpy as np
import pytest
from cluster_procs import NO_FUSE_ENV, ProcessCluster

from s2scale import catalog
from s2scale.config import RunConfig
from s2scale.errors import ConfigError
from s2scale.infer import forward_count
from s2scale.items import normalize_item
from s2scale.pipeline import build_plan, plan_upscale, run_upscale
from s2scale.pipeline.units import count_tasks
from s2scale.pipeline.upscale_run import _reader
from s2scale.sim import SAMPLE_AOI

AOI = ",".join(map(str, SAMPLE_AOI))
SUMMER = "2024-06-01/2024-08-31"


def _cfg(sample, ckpt):
    cfg = RunConfig().replace("catalog", stac=str(sample.catalog), aoi=AOI, datetime=SUMMER)
    cfg = cfg.replace("cube", chunk_px=256).replace("infer", model=str(ckpt))
    return cfg.replace("mosaic", chunk_px=256, cog=False)


def _far_away(item: dict, shift_m: float, k: int) -> dict:
    """A copy of ``item`` moved ``shift_m`` east in its own zone (geometry and grids)."""
    from pyproj import Transformer

    out = copy.deepcopy(item)
    out["id"] = f"{item['id']}-far{k}"
    epsg = int(str(item["properties"].get("proj:code", item["properties"].get("proj:epsg")))
               .split(":")[-1])  # fmt: skip
    to_utm = Transformer.from_crs(4326, epsg, always_xy=True)
    to_ll = Transformer.from_crs(epsg, 4326, always_xy=True)

    def move(lon: float, lat: float) -> list[float]:
        x, y = to_utm.transform(lon, lat)
        return list(to_ll.transform(x + shift_m, y))

    out["geometry"]["coordinates"] = [[move(*p[:2]) for p in ring]
                                      for ring in item["geometry"]["coordinates"]]  # fmt: skip
    lons = [p[0] for ring in out["geometry"]["coordinates"] for p in ring]
    lats = [p[1] for ring in out["geometry"]["coordinates"] for p in ring]
    out["bbox"] = [min(lons), min(lats), max(lons), max(lats)]
    for asset in out["assets"].values():
        if "proj:transform" in asset:
            t = list(asset["proj:transform"])
            t[2] += shift_m
            asset["proj:transform"] = t
    return out


def test_far_away_scenes_leave_every_unit_unchanged(sample, tiny_ckpt):
    """Scenes elsewhere in the same zone change neither the units' scenes nor their tasks."""
    cfg = _cfg(sample, tiny_ckpt)
    result = catalog.search(AOI, SUMMER, stac=str(sample.catalog))
    base = build_plan(cfg, result)
    items = json.loads(sample.catalog.read_text())["features"]
    summer = {s.id for s in result}
    far = [
        normalize_item(_far_away(it, shift_m, k), base_dir=sample.catalog.parent)
        for k, shift_m in enumerate((60_000.0, 150_000.0, 300_000.0))
        for it in items
        if it["id"] in summer
    ]
    assert len(far) == 3 * len(result)
    grown = build_plan(cfg, catalog.SearchResult(scenes=(*result.scenes, *far)))
    assert len(grown.zones) == len(base.zones)
    for z0, z1 in zip(base.zones, grown.zones, strict=True):
        assert z1.bounds == z0.bounds and len(z1.scenes) == 4 * len(z0.scenes)
    ids = lambda plan, u: [[plan.scenes[i].id for i in w.scenes] for w in u.windows]  # noqa: E731
    assert [ids(base, u) for u in base.units] == [ids(grown, u) for u in grown.units]
    assert count_tasks(base, _reader(base)) == count_tasks(grown, _reader(grown))


def test_counted_tasks_match_the_graph_of_a_unit(sample, tiny_ckpt):
    """``tasks_total`` counts what the cluster gets: the optimised composite graph + 3 tasks."""
    plan, report = plan_upscale(_cfg(sample, tiny_ckpt))
    reader = _reader(plan)
    unit = max(plan.units, key=lambda u: len(u.windows))
    expected = 2
    for w in unit.windows:
        (opt,) = dask.optimize(reader.window(plan, w))
        expected += len(opt.__dask_graph__()) + 1
    assert count_tasks(plan, reader)[unit.index] == expected
    assert report["tasks_total"] == sum(count_tasks(plan, reader))
    assert report["regions"] == report["units"] == len(plan.units)


def test_austria_plan_is_bounded(national_sample):
    """Austria's dry-run plan (national catalog, summer 2024, realesrgan) stays small."""
    cfg = RunConfig().replace(
        "catalog", stac=str(national_sample.catalog), aoi="austria", datetime=SUMMER
    )
    report = run_upscale(cfg, "unused.zarr", dry_run=True)
    assert isinstance(report["tasks_total"], int) and report["tasks_total"] <= 500_000
    assert report["units"] == report["regions"] > 800
    assert report["tasks_per_unit"]["max"] < 1000
    assert report["scenes"] == len(national_sample.item_ids)


def _forwards() -> int:
    return forward_count()


_MIXED = [{"name": "gpu", "resources": {"GPU": 1}}, {"name": "cpu"}]


@pytest.fixture(scope="module")
def mixed_cluster():
    """A scheduler with dask's default settings, a GPU worker and a CPU-only worker."""
    with ProcessCluster(workers=_MIXED) as cluster:
        yield cluster


def _per_worker(client: distributed.Client, names: dict[str, str]) -> dict[str, int]:
    counts = client.run(_forwards)
    return {names[addr]: n for addr, n in counts.items()}


def test_pipeline_runs_model_tasks_only_on_the_gpu_worker(mixed_cluster, sample, tiny_ckpt,
                                                          tmp_path):  # fmt: skip
    with distributed.Client(mixed_cluster.address) as client:
        names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
        before = _per_worker(client, names)
        report = run_upscale(_cfg(sample, tiny_ckpt), tmp_path / "m.zarr", client=client,
                             progress=False)  # fmt: skip
        after = _per_worker(client, names)
    assert report["regions_computed"] == report["units"] > 1
    assert after["gpu"] > before["gpu"]
    assert after["cpu"] == before["cpu"]  # no model forward ran without the GPU resource


def test_cli_on_separately_started_processes(mixed_cluster, sample, tiny_ckpt, tmp_path):
    """`s2scale upscale --cluster tcp://...`: completes; model forwards only on the GPU worker."""
    import subprocess
    import sys

    out = tmp_path / "cli.zarr"
    cmd = [sys.executable, "-m", "s2scale.cli", "upscale", "--stac", str(sample.catalog),
           "--aoi", AOI, "--datetime", SUMMER, "--model", str(tiny_ckpt), "--region-px", "256",
           "--out", str(out), "--cluster", mixed_cluster.address]  # fmt: skip
    with distributed.Client(mixed_cluster.address) as client:
        names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
        before = _per_worker(client, names)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        after = _per_worker(client, names)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["regions_computed"] == report["units"] and "units" in proc.stderr
    assert after["gpu"] > before["gpu"] and after["cpu"] == before["cpu"]
    assert (tmp_path / "cli.tif").exists()


def test_lazy_api_is_pinned_or_refused(mixed_cluster, sample, tiny_ckpt, tmp_path):
    """upscale -> mosaic -> write_mosaic: pinned on a non-fusing scheduler, refused otherwise."""
    from s2scale import composite, cube
    from s2scale.grid import target_grid
    from s2scale.infer import upscale
    from s2scale.mosaic import mosaic, write_mosaic

    result = catalog.search(AOI, SUMMER, stac=str(sample.catalog))
    grid = target_grid(AOI)
    sources = []
    for p in cube.plan_cubes(list(result), AOI):
        stack = cube.load_cube(p.scenes, bounds=p.bounds, bands=("blue", "green", "red", "nir",
                               "scl"), chunk_px=256)  # fmt: skip
        comp = composite.composite(composite.mask_clouds(stack)).reflectance
        sources.append(upscale(comp, str(tiny_ckpt), chunk_px=256, device="cpu"))
    mos = mosaic(sources, grid, chunk_px=256, aoi=AOI)
    with (
        ProcessCluster(workers=_MIXED, env=NO_FUSE_ENV) as no_fuse,  # as deploy/ starts it
        distributed.Client(no_fuse.address) as client,
    ):
        names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
        before = _per_worker(client, names)
        write_mosaic(mos, tmp_path / "lazy.zarr", grid=grid, config_fingerprint={"t": 1})
        after = _per_worker(client, names)
    assert after["gpu"] > before["gpu"] and after["cpu"] == before["cpu"]
    with distributed.Client(mixed_cluster.address), pytest.raises(ConfigError, match="FUSE"):
        write_mosaic(mos, tmp_path / "refused.zarr", grid=grid, config_fingerprint={"t": 1})
    assert not (tmp_path / "refused.zarr").exists()
    np.testing.assert_array_equal(
        np.asarray(__import__("s2scale").open_mosaic(tmp_path / "lazy.zarr")["reflectance"]),
        mos.compute(scheduler="sync").values,
    )
