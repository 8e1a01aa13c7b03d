"""The multi-process cluster harness (tests/cluster_procs.py) and the forward-pass counter."""

from __future__ import annotations

import os
import signal
import time

import dask
import numpy as np
import pytest
import xarray as xr
from cluster_procs import NO_FUSE_ENV, ProcessCluster, pid_alive

from s2scale.infer import forward_count, upscale

distributed = pytest.importorskip("distributed")

NO_FUSE = {
    "optimization.fuse.active": False
}  # keeps the GPU annotation (see s2scale.infer.upscale)
TINY = {"num_feat": 4, "num_conv": 1}  # a random-weight srvgg: a few ms per forward on CPU


def tiny_cube(n_px: int = 16) -> xr.DataArray:
    yx = {"y": 5_300_000.0 - 5.0 - 10.0 * np.arange(n_px), "x": 500_005.0 + 10.0 * np.arange(n_px)}
    data = np.random.default_rng(0).integers(200, 4000, (2, n_px, n_px)).astype(np.uint16)
    cube = xr.DataArray(data, dims=("band", "y", "x"), coords={"band": ["red", "nir"], **yx})
    return cube.rio.write_crs("EPSG:32633")


def tiny_upscale(cube: xr.DataArray) -> xr.DataArray:
    return upscale(
        cube, "srvgg", random_weights=True, model_kwargs=TINY, halo_px=2, chunk_px=8, device="cpu",
        consistency=False, fill_nodata=False,
    )


def _pid() -> int:
    return os.getpid()


def _resources(dask_worker) -> dict:
    return dict(dask_worker.state.total_resources)


@pytest.fixture(scope="module")
def cluster():
    with ProcessCluster(workers=[{"resources": {"GPU": 1}}, {}], nthreads=1, env=NO_FUSE_ENV) as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster.address, timeout="20s", set_as_default=False) as c:
        yield c


def test_forward_count_increases_in_process():
    before = forward_count()
    out = tiny_upscale(tiny_cube()).compute(scheduler="sync")
    assert out.shape == (2, 32, 32)
    assert forward_count() > before


def test_client_sees_both_workers_with_resources(cluster, client):
    info = client.scheduler_info(n_workers=-1)["workers"]
    by_name = {w["name"]: w for w in info.values()}
    assert set(by_name) == {"w0", "w1"}
    assert all(addr.startswith("tcp://127.0.0.1:") for addr in info)
    assert cluster.address.startswith("tcp://127.0.0.1:")
    assert by_name["w0"]["resources"] == {"GPU": 1}
    assert not by_name["w1"]["resources"]
    # the harness's pids are the worker processes themselves (no nanny in between)
    pids = {by_name_of(info, addr): pid for addr, pid in client.run(_pid).items()}
    assert pids == cluster.worker_pids
    assert {by_name_of(info, a): r for a, r in client.run(_resources).items()} == {
        "w0": {"GPU": 1},
        "w1": {},
    }


def by_name_of(info: dict, addr: str) -> str:
    return info[addr]["name"]


def test_gpu_tasks_run_only_on_the_gpu_worker(cluster, client):
    gpu_addr = next(
        a for a, w in client.scheduler_info(n_workers=-1)["workers"].items() if w["name"] == "w0"
    )
    futs = [client.submit(_pid, key=f"gpu-{i}", resources={"GPU": 1}, pure=False) for i in range(6)]
    assert set(client.gather(futs)) == {cluster.worker_pids["w0"]}
    assert {client.who_has(f)[f.key][0] for f in futs} == {gpu_addr}


def test_model_forwards_run_only_on_the_gpu_worker(client):
    def name_counts() -> dict[str, int]:
        info = client.scheduler_info(n_workers=-1)["workers"]
        return {by_name_of(info, a): n for a, n in client.run(forward_count).items()}

    before = name_counts()
    out = tiny_upscale(tiny_cube(24))
    with dask.config.set(NO_FUSE):
        got = client.compute(out).result(timeout=60)
    after = name_counts()
    np.testing.assert_array_equal(got.values, out.compute(scheduler="sync").values)
    assert after["w0"] > before["w0"]
    assert after["w1"] == before["w1"] == 0


def test_kill_worker_and_close_leave_nothing():
    cluster = ProcessCluster(workers=[{"name": "a", "resources": {"GPU": 1}}, {"name": "b"}])
    with cluster:
        pids = cluster.all_pids()
        assert len(pids) == 3 and all(pid_alive(p) for p in pids)
        rc = cluster.kill_worker("a")
        assert rc == -signal.SIGKILL and not pid_alive(cluster.worker_pids["a"])
        t0 = time.monotonic()
        cluster.wait_for_workers(["b"], timeout=15)  # the scheduler dropped "a", kept "b"
        assert time.monotonic() - t0 < 15
        assert cluster.live_worker_names() == ["b"]
    assert not any(pid_alive(p) for p in pids)
    assert not cluster.log_dir.exists()


def test_kill_scheduler_and_all_workers():
    with ProcessCluster(workers=[{}, {}]) as cluster:
        cluster.kill_all_workers()
        assert cluster.live_worker_names() == []
        assert cluster.kill_scheduler() == -signal.SIGKILL
    assert not any(pid_alive(p) for p in cluster.all_pids())


def test_failed_start_reports_logs_and_cleans_up():
    cluster = ProcessCluster(workers=[{"resources": {"GPU": "not-a-number"}}], start_timeout=20)
    with pytest.raises(Exception, match="w0") as err:
        cluster.start()
    assert "scheduler" in str(err.value)
    assert not any(pid_alive(p) for p in cluster.all_pids())
