"""``upscale`` on real distributed clusters (workers with a ``GPU`` resource, as on the cluster)."""

from __future__ import annotations

import time

import dask
import numpy as np
import pytest
from infer_helpers import make_cube

from s2scale.infer import upscale

distributed = pytest.importorskip("distributed")

NO_FUSE = {
    "optimization.fuse.active": False
}  # keeps the GPU annotation (see s2scale.infer.upscale)


def _compare_with_sync(checkpoint: str, *, processes: bool) -> None:
    cube = make_cube(320, 304, time=2, seed=7)
    out = upscale(cube, checkpoint, chunk_px=152, halo_px=12, device="auto", dtype="float32")
    expected = out.compute(scheduler="sync")
    with (
        dask.config.set(NO_FUSE),
        distributed.LocalCluster(
            n_workers=2,
            processes=processes,
            threads_per_worker=1,
            resources={"GPU": 1},
            dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        got = out.compute()
        loads = client.run(_cache_misses)
    # the consistency projection sums in float32 in an order that depends on the process's
    # thread count: at most 1 DN apart (the chunk-invariance bound), almost all pixels equal
    diff = np.abs(got.values.astype(np.int32) - expected.values.astype(np.int32))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99
    assert got.rio.crs == expected.rio.crs and got.attrs == expected.attrs
    if processes:  # each worker process loaded the checkpoint at most once
        assert all(v <= 1 for v in loads.values()) and sum(loads.values()) >= 1


# 4-7 s on 2 idle cores (worker start + torch import), up to 16 s while other jobs load them
def test_local_cluster_processes_equals_sync(tiny_checkpoint):
    _compare_with_sync(tiny_checkpoint, processes=True)


def test_local_cluster_threads_equals_sync(tiny_checkpoint):
    _compare_with_sync(tiny_checkpoint, processes=False)


def _cache_misses() -> int:
    from s2scale.infer import model_cache_info

    return model_cache_info().misses


def test_gpu_annotation_reaches_the_scheduler(tiny_checkpoint):
    """With fusion off, model tasks need a GPU slot: on a GPU-less worker they never start."""
    out = upscale(make_cube(160, 160), tiny_checkpoint, chunk_px=160, device="cpu")
    with (
        dask.config.set(NO_FUSE),
        distributed.LocalCluster(
            n_workers=1, processes=False, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        fut = client.compute(out.data)
        deadline = time.monotonic() + 10
        states: dict[str, str] = {}
        while time.monotonic() < deadline and "no-worker" not in states.values():
            time.sleep(0.1)
            states = client.run_on_scheduler(_upscale_task_states)
        fut.cancel()
    assert states and set(states.values()) == {"no-worker"}, states


def _upscale_task_states(dask_scheduler) -> dict[str, str]:
    return {
        str(key): ts.state
        for key, ts in dask_scheduler.tasks.items()
        if "upscale" in str(key) and ts.resource_restrictions == {"GPU": 1}
    }
