"""The job as the pods run it, on one machine: a scheduler and two GPU workers as separate
processes (``cluster_procs.ProcessCluster``), and ``s2scale upscale --cluster tcp://...`` run
through the command line in a process of its own, as the job runner pod runs it.

An undisturbed run completes the sample; a run in which one worker is SIGKILLed mid-run still
completes, with a mosaic identical to the undisturbed one. (``tests/test_pipeline_faults.py``
covers the other faults through the Python API.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cluster_procs import NO_FUSE_ENV, ProcessCluster
from test_pipeline_upscale import SUMMER, _chunk_bytes, _done

GPU = {"GPU": 1}
AOI = "11.98,47.475,12.02,47.505"  # inside the sample, across 12° E: 9 units of 256 px


def _config(tmp_path: Path, sample, ckpt) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(
        f"catalog: {{stac: '{sample.catalog}', aoi: '{AOI}', datetime: '{SUMMER}'}}\n"
        "cube: {chunk_px: 256}\n"
        f"infer: {{model: '{ckpt}', consistency: false, fill_nodata: false}}\n"
        "mosaic: {chunk_px: 256, cog: false}\n"
        # one unit at a time, so that a fault lands in the middle of the run
        "cluster: {units_in_flight: 1, lost_timeout_s: 60}\n"
    )
    return path


def wait_mid_run(proc: subprocess.Popen, store: Path, units: int = 9) -> int:
    """Wait until ``proc`` has written some but not all regions of ``store``; the count."""
    deadline = time.monotonic() + 180
    while _done(store) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    done = _done(store)
    assert proc.poll() is None and 1 <= done < units, (done, proc.poll())
    return done


def _command(config: Path, store: Path, address: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "s2scale.cli",
        "upscale",
        "--config",
        str(config),
        "--out",
        str(store),
        "--cluster",
        address,
    ]


@pytest.fixture(scope="module")
def cluster():
    workers = [{"name": "w0", "resources": GPU}, {"name": "w1", "resources": GPU}]
    with ProcessCluster(workers=workers, env=NO_FUSE_ENV) as procs:
        yield procs


@pytest.fixture(scope="module")
def reference(cluster, sample, tiny_ckpt, tmp_path_factory):
    """An undisturbed `s2scale upscale --cluster tcp://...` run: its report and chunk bytes."""
    tmp = tmp_path_factory.mktemp("cli-ref")
    store = tmp / "mosaic.zarr"
    cmd = _command(_config(tmp, sample, tiny_ckpt), store, cluster.address)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout), _chunk_bytes(store)


def test_upscale_cli_completes_the_sample_on_a_cluster_of_processes(reference, cluster):
    report, chunks = reference
    assert report["units"] == 9 and report["regions_computed"] == 9
    assert report["regions_failed"] == [] and report["retried"] == 0
    assert {z["crs"] for z in report["zones"]} == {"EPSG:32632", "EPSG:32633"}
    assert report["device_kind"] == "cpu" and len(chunks) > 0
    assert cluster.live_worker_names() == ["w0", "w1"]


def test_a_worker_killed_mid_run_changes_nothing(reference, cluster, sample, tiny_ckpt, tmp_path):
    _, expected = reference
    store = tmp_path / "mosaic.zarr"
    log = tmp_path / "run.log"
    cmd = _command(_config(tmp_path, sample, tiny_ckpt), store, cluster.address)
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.PIPE, text=True)
    try:
        wait_mid_run(proc, store)
        cluster.kill_worker("w0")
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        # leave the module's cluster with two GPU workers
        if "w0" not in cluster.live_worker_names():
            cluster.start_worker({"name": f"w0-{time.monotonic_ns()}", "resources": GPU})
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(log.read_text())
    assert report["regions_failed"] == []
    assert report["regions_computed"] + report["regions_reused"] == report["units"] == 9
    assert _done(store) == 9
    assert _chunk_bytes(store) == expected
