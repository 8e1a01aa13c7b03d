"""The upscale job end to end on the simulated sample: plan, run, resume after kills, bad input.

A tiny checkpoint stands in for the shipped generators so that the runs take seconds on CPU;
the consistency projection and the no-data fill (tested in tests/infer, and on in the demo and
tests/test_national_units.py) are off here, so the halo stays the network's own.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from s2scale.config import ClusterConfig, RunConfig
from s2scale.errors import ConfigError, GridMismatchError, NoScenesFoundError
from s2scale.pipeline import run_upscale
from s2scale.sim import SAMPLE_AOI

AOI = ",".join(map(str, SAMPLE_AOI))
SUMMER = "2024-06-01/2024-08-31"


def _cfg(sample, ckpt, **mosaic):
    cfg = RunConfig(cluster=ClusterConfig(kind="local", n_workers=2, threads_per_worker=1))
    cfg = cfg.replace("catalog", stac=str(sample.catalog), aoi=AOI, datetime=SUMMER)
    cfg = cfg.replace("cube", chunk_px=256)
    cfg = cfg.replace("infer", model=str(ckpt), consistency=False, fill_nodata=False)
    return cfg.replace("mosaic", chunk_px=256, cog=False, **mosaic)


def _config_yaml(tmp_path, sample, ckpt):
    path = tmp_path / "run.yaml"
    path.write_text(
        f"catalog: {{stac: '{sample.catalog}', aoi: '{AOI}', datetime: '{SUMMER}'}}\n"
        "cube: {chunk_px: 256}\n"
        f"infer: {{model: '{ckpt}', consistency: false, fill_nodata: false}}\n"
        "mosaic: {chunk_px: 256, cog: false}\n"
        "cluster: {kind: local, n_workers: 2, threads_per_worker: 1}\n"
    )
    return path


def _chunk_bytes(store):
    root = Path(store) / "reflectance"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _done(store):
    try:
        done = zarr.open_array(str(Path(store) / "_s2scale" / "done"), mode="r")
        return int(np.asarray(done[:]).sum())
    except (FileNotFoundError, KeyError, ValueError, zarr.errors.NodeNotFoundError):
        return 0


@pytest.fixture(scope="module")
def reference(sample, tiny_ckpt, tmp_path_factory):
    """An uninterrupted run: its report and chunk bytes."""
    store = tmp_path_factory.mktemp("ref") / "mosaic.zarr"
    report = run_upscale(_cfg(sample, tiny_ckpt), store, progress=False)
    return report, _chunk_bytes(store)


def test_upscale_writes_the_national_grid(reference, sample):
    import xarray as xr

    report, _ = reference
    assert report["regions_computed"] == report["regions"] > 4 and report["regions_reused"] == 0
    store = Path(report["out"])
    ds = xr.open_zarr(store, consolidated=False)
    sr = ds["reflectance"]
    assert sr.dims == ("band", "y", "x") and sr.dtype == np.uint16
    assert sr.rio.crs.to_epsg() == 3035 and sr.rio.transform().a == 5.0
    values = sr.values
    assert (values > 0).all(axis=0).mean() > 0.5  # the AOI is inside the grid's bounding box
    assert values.max() < 10000


def test_dry_run_plans_without_reading(sample, tiny_ckpt, tmp_path):
    plan = run_upscale(_cfg(sample, tiny_ckpt), tmp_path / "x.zarr", dry_run=True)
    assert plan["dry_run"] and not (tmp_path / "x.zarr").exists()
    assert plan["scenes"] == 10 and plan["tiles"] == ["32TQT", "33TTN"]
    assert plan["regions"] > 4 and plan["output_bytes"] == plan["output_pixels"] * 8
    assert "estimated_gpu_time" in plan


def test_rerun_reuses_everything(reference, sample, tiny_ckpt):
    report, chunks = reference
    again = run_upscale(_cfg(sample, tiny_ckpt), report["out"], progress=False)
    assert again["regions_computed"] == 0 and again["regions_reused"] == report["regions"]
    assert _chunk_bytes(report["out"]) == chunks


def test_resume_after_sigkill_of_the_client(reference, sample, tiny_ckpt, tmp_path):
    _, expected = reference
    store = tmp_path / "mosaic.zarr"
    config = _config_yaml(tmp_path, sample, tiny_ckpt)
    cmd = [
        sys.executable,
        "-m",
        "s2scale.cli",
        "upscale",
        "--config",
        str(config),
        "--out",
        str(store),
    ]
    log = (tmp_path / "killed-run.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 240
    while _done(store) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the client and its local cluster die at once
    proc.wait()
    done_before = _done(store)
    log.close()
    assert done_before >= 3, (tmp_path / "killed-run.log").read_text()[-3000:]
    out = subprocess.run([*cmd], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["regions_reused"] == done_before
    assert report["regions_computed"] == report["regions"] - done_before > 0
    assert _chunk_bytes(store) == expected


def test_resume_after_a_worker_is_killed(reference, sample, tiny_ckpt, tmp_path):
    """SIGKILL one worker process mid-run: the scheduler reruns its tasks; same bytes."""
    import threading

    from distributed import Client, LocalCluster

    _, expected = reference
    store = tmp_path / "mosaic.zarr"
    killed = {}
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            resources={"GPU": 1},
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = client.run(os.getpid)

        def killer():
            deadline = time.monotonic() + 240
            while _done(store) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed["pid"] = victim
            killed["done"] = _done(store)

        thread = threading.Thread(target=killer)
        thread.start()
        report = run_upscale(_cfg(sample, tiny_ckpt), store, progress=False, client=client)
        thread.join()
    assert killed and killed["done"] < report["regions"]
    assert report["regions_computed"] == report["regions"]
    assert _chunk_bytes(store) == expected


def test_store_of_another_configuration_is_refused(reference, sample, tiny_ckpt):
    report, chunks = reference
    with pytest.raises(GridMismatchError, match=r"config_fingerprint\.feather_px: 64 -> 8"):
        run_upscale(_cfg(sample, tiny_ckpt, feather_px=8), report["out"], progress=False)
    assert _chunk_bytes(report["out"]) == chunks  # nothing was touched


@pytest.mark.parametrize(
    ("section", "change", "named"),
    [
        ("infer", {"dtype": "bfloat16"}, "dtype: 'float32' -> 'bfloat16'"),
        ("infer", {"tile_px": 256}, "tile_px: 320 -> 256"),
        ("infer", {"halo_px": 6}, "halo_px"),
        ("infer", {"compile": True}, "compile: False -> True"),
        ("mosaic", {"resampling": "lanczos"}, "resampling: 'cubic' -> 'lanczos'"),
    ],
)
def test_resume_that_would_mix_outputs_is_refused(reference, sample, tiny_ckpt, section, change,
                                                  named):  # fmt: skip
    """A rerun whose bytes would differ (e.g. CPU fp32 started, bf16 resumed) names the change."""
    report, chunks = reference
    cfg = _cfg(sample, tiny_ckpt).replace(section, **change)
    with pytest.raises(GridMismatchError, match=re.escape(named)):
        run_upscale(cfg, report["out"], progress=False)
    assert _chunk_bytes(report["out"]) == chunks


def test_bad_input_is_refused_early(sample, tiny_ckpt, tmp_path):
    with pytest.raises(NoScenesFoundError, match="2019-01-01"):
        run_upscale(
            _cfg(sample, tiny_ckpt).replace("catalog", datetime="2019-01-01/2019-02-01"),
            tmp_path / "a.zarr",
            progress=False,
        )
    with pytest.raises(ConfigError, match="tile_px=32 must exceed"):  # sub-tiles < halo
        run_upscale(
            _cfg(sample, tiny_ckpt).replace("infer", tile_px=32, halo_px=20),
            tmp_path / "b.zarr",
            progress=False,
        )
    missing = tmp_path / "nope.pt"
    with pytest.raises(Exception, match=str(missing)):
        run_upscale(
            _cfg(sample, tiny_ckpt).replace("infer", model=str(missing)),
            tmp_path / "c.zarr",
            progress=False,
        )
    from s2scale.models import build_generator, save_checkpoint

    rgb = tmp_path / "rgb.pt"
    save_checkpoint(
        rgb,
        build_generator("srvgg", bands=3, num_feat=4, num_conv=1),
        bands=["red", "green", "blue"],
        normalization={"offset": 0, "scale": 1e4},
    )
    with pytest.raises(ConfigError, match="band"):
        run_upscale(
            _cfg(sample, tiny_ckpt).replace("infer", model=str(rgb)),
            tmp_path / "d.zarr",
            progress=False,
        )
    with pytest.raises(ConfigError, match="'gpu-farm' is unknown"):
        _cfg(sample, tiny_ckpt).replace("cluster", kind="gpu-farm")


def test_two_stages_equal_the_direct_run(reference, sample, tiny_ckpt, tmp_path):
    """`s2scale cube` + `upscale --from-cube` equals the direct STAC run (within 1 DN)."""
    from s2scale.cubestore import open_cube_store
    from s2scale.mosaic import open_mosaic
    from s2scale.pipeline import run_cube

    report, _ = reference
    cfg = _cfg(sample, tiny_ckpt)
    comp = run_cube(cfg, tmp_path / "comp.zarr", progress=False)
    assert comp["regions_computed"] == comp["units"] > 0
    again = run_cube(cfg, tmp_path / "comp.zarr", progress=False)  # resumable: nothing to do
    assert again["regions_computed"] == 0 and again["regions_reused"] == comp["units"]
    store = open_cube_store(tmp_path / "comp.zarr")
    assert [z.epsg for z in store.zones] == [32632, 32633]
    assert all(store.done(z).any() for z in store.zones)
    two = run_upscale(cfg, tmp_path / "two.zarr", progress=False, from_cube=tmp_path / "comp.zarr")
    assert two["source"].endswith("comp.zarr") and two["regions_computed"] == report["units"]
    a = open_mosaic(report["out"])["reflectance"].values.astype(int)
    b = open_mosaic(tmp_path / "two.zarr")["reflectance"].values.astype(int)
    assert np.abs(a - b).max() <= 1 and ((a > 0) == (b > 0)).all()
    with pytest.raises(GridMismatchError, match="mask_snow"):
        run_cube(cfg.replace("cube", mask_snow=True), tmp_path / "comp.zarr", progress=False)
