"""Fault injection on a real multi-process cluster: workers, all workers or the scheduler die
mid-run, no GPU worker, an unreadable scene.

Every process of the cluster is its own OS process (``cluster_procs.ProcessCluster``), so the
kills are real SIGKILLs. Runs use the tiny checkpoint and the simulated sample of
``test_pipeline_upscale`` (a few seconds per run on CPU); every wait is bounded.
"""

from __future__ import annotations

import contextvars
import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import distributed
import numpy as np
import pytest
import zarr
from cluster_procs import NO_FUSE_ENV, ProcessCluster
from test_pipeline_upscale import SUMMER, _cfg, _chunk_bytes, _done

from s2scale.errors import ClusterError, ReadError, S2ScaleError
from s2scale.pipeline import run_upscale

GPU = {"GPU": 1}
CHUNK = 256  # mosaic.chunk_px of _cfg


def _client(cluster: ProcessCluster) -> Any:
    """A client of ``cluster``, the default one while its ``with`` block runs."""
    return distributed.Client(cluster.address, timeout="30s")


@pytest.fixture(scope="module")
def healthy():
    """A cluster nobody kills: two GPU workers (reference and bad-input runs)."""
    workers = [{"name": "g0", "resources": GPU}, {"name": "g1", "resources": GPU}]
    with ProcessCluster(workers=workers, env=NO_FUSE_ENV) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def reference(sample, tiny_ckpt, healthy, tmp_path_factory):
    """An undisturbed run on the healthy process cluster: report and chunk bytes."""
    store = tmp_path_factory.mktemp("ref") / "mosaic.zarr"
    with _client(healthy) as client:
        report = run_upscale(_cfg(sample, tiny_ckpt), store, progress=False, client=client)
    assert report["regions_computed"] == report["units"] > 4
    return report, _chunk_bytes(store)


class _Background:
    """``fn()`` in a daemon thread; :meth:`join` returns its result or raises its exception.

    The thread runs in a copy of the caller's context, so the client of the caller's
    ``with Client(...)`` is the current one there too: ``run_waves`` calls ``distributed.wait``,
    which works only with a current or default client (see
    ``test_a_client_that_is_not_the_default_is_enough``).
    """

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.ended_at: float | None = None
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._main, fn), daemon=True)
        self._thread.start()

    def _main(self, fn: Callable[[], Any]) -> None:
        try:
            self.result = fn()
        except BaseException as err:  # handed to the test thread by join()
            self.error = err
        finally:
            self.ended_at = time.monotonic()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float, what: str) -> Any:
        self._thread.join(timeout)
        if self._thread.is_alive():
            pytest.fail(f"{what}: still running after {timeout:.0f} s (hangs)", pytrace=False)
        if self.error is not None:
            raise self.error
        return self.result


def _wait_for_done(store: Path, run: _Background, n: int = 1, timeout: float = 180.0) -> int:
    """Wait until ``n`` regions are marked done while the run is still going; return the count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = _done(store)
        if done >= n:
            return done
        if not run.alive():
            run.join(0, "the run")  # raises its error, if any
            pytest.fail(f"the run ended with {done} regions marked before the fault", pytrace=False)
        time.sleep(0.02)
    pytest.fail(f"no {n} regions marked done after {timeout:.0f} s", pytrace=False)


def _done_mask(store: Path) -> np.ndarray:
    return np.asarray(zarr.open_array(str(store / "_s2scale" / "done"), mode="r")[:]).astype(bool)


def test_a_worker_dies_mid_run_and_nothing_is_lost(reference, sample, tiny_ckpt, tmp_path):
    ref_report, expected = reference
    store = tmp_path / "mosaic.zarr"
    # one unit at a time: the run lasts long enough to kill a worker in the middle of it
    cfg = _cfg(sample, tiny_ckpt).replace("cluster", units_in_flight=1)
    with (
        ProcessCluster(
            workers=[{"resources": GPU}, {"resources": GPU}], env=NO_FUSE_ENV
        ) as cluster,
        _client(cluster) as client,
    ):
        run = _Background(lambda: run_upscale(cfg, store, progress=False, client=client))
        done_at_kill = _wait_for_done(store, run)
        cluster.kill_worker("w0")
        report = run.join(200, "run_upscale after a worker was killed")
        assert cluster.live_worker_names() == ["w1"]
    assert done_at_kill < report["units"]
    assert report["regions_failed"] == []
    assert report["regions_computed"] + report["regions_reused"] == report["units"]
    assert report["units"] == ref_report["units"]
    assert _done_mask(store).all()
    assert _chunk_bytes(store) == expected


def test_all_workers_gone_raises_then_a_rerun_resumes(reference, sample, tiny_ckpt, tmp_path):
    _, expected = reference
    store = tmp_path / "mosaic.zarr"
    lost_s = 5
    cfg = _cfg(sample, tiny_ckpt).replace("cluster", lost_timeout_s=lost_s, units_in_flight=1)
    with (
        ProcessCluster(workers=[{"resources": GPU}], env=NO_FUSE_ENV) as cluster,
        _client(cluster) as client,
    ):
        run = _Background(lambda: run_upscale(cfg, store, progress=False, client=client))
        _wait_for_done(store, run)
        cluster.kill_all_workers()
        killed_at = time.monotonic()
        with pytest.raises(ClusterError, match="rerun") as info:
            run.join(lost_s + 60, "run_upscale with no workers left")
        assert run.ended_at is not None and run.ended_at - killed_at < lost_s + 20
        assert "no workers" in str(info.value) and f"lost_timeout_s={lost_s}" in str(info.value)
        del info
        done_before = _done(store)
        assert done_before >= 1
        # a new worker joins the same scheduler; the rerun computes only what is missing
        cluster.start_worker({"name": "w1", "resources": GPU})
        report = run_upscale(cfg, store, progress=False, client=client)
    assert report["regions_reused"] == done_before
    assert report["regions_computed"] == report["units"] - done_before > 0
    assert _chunk_bytes(store) == expected


def test_no_gpu_worker_fails_fast_and_writes_nothing(sample, tiny_ckpt, tmp_path):
    store = tmp_path / "mosaic.zarr"
    cfg = _cfg(sample, tiny_ckpt).replace("cluster", lost_timeout_s=2)
    with ProcessCluster(workers=[{}], env=NO_FUSE_ENV) as cluster, _client(cluster) as client:
        start = time.monotonic()
        with pytest.raises(ClusterError, match="GPU"):
            run_upscale(cfg, store, progress=False, client=client)
        assert time.monotonic() - start < 30
    assert _done(store) == 0
    assert not (store / "reflectance").exists() or _chunk_bytes(store) == {}


def _summer_red_href(catalog: Path) -> str:
    """The ``red`` (B04) asset href of a scene inside the summer 2024 period of ``_cfg``."""
    start, end = SUMMER.split("/")
    for item in json.loads(catalog.read_text())["features"]:
        if start <= item["properties"]["datetime"][:10] <= end:
            return item["assets"]["red"]["href"]
    raise AssertionError(f"no scene in {SUMMER} in {catalog}")


def test_unreadable_scene_fails_or_is_skipped_then_filled(
    reference, sample, tiny_ckpt, healthy, tmp_path
):
    """One missing COG: ReadError naming it; skip_errors leaves regions undone; a rerun fills them.

    Every unit of the sample reads every scene of the period, so here every region fails.
    """
    _, expected = reference
    root = tmp_path / "sample"
    shutil.copytree(sample.root, root)
    href = _summer_red_href(root / "catalog.json")
    cog = root / href
    assert cog.name == "B04.tif" and cog.is_file()
    aside = tmp_path / "B04.tif.aside"
    cog.rename(aside)
    store = tmp_path / "mosaic.zarr"
    cfg = _cfg(SimpleNamespace(catalog=root / "catalog.json"), tiny_ckpt)
    with _client(healthy) as client:
        with pytest.raises(ReadError, match="skip-errors") as info:
            run_upscale(cfg, store, progress=False, client=client)
        assert href in str(info.value), str(info.value)
        del info  # its traceback holds the failed future (see test_a_rerun_after_fixing_...)

        skip = cfg.replace("catalog", skip_errors=True)
        skipped = run_upscale(skip, store, progress=False, client=client)
        failed = skipped["regions_failed"]
        assert failed and all({"unit", "region", "error"} <= set(f) for f in failed)
        assert all(href in f["error"] for f in failed), failed[0]
        assert skipped["regions_computed"] + len(failed) == skipped["units"]
        mask = _done_mask(store)
        assert not any(mask[f["region"][0] // CHUNK, f["region"][2] // CHUNK] for f in failed)
        assert int(mask.sum()) == skipped["units"] - len(failed)

        aside.rename(cog)
        filled = run_upscale(cfg, store, progress=False, client=client)
    assert filled["regions_failed"] == []
    assert filled["regions_computed"] == len(failed)
    assert filled["regions_reused"] == filled["units"] - len(failed)
    assert _done_mask(store).all()
    assert _chunk_bytes(store) == expected


def test_scheduler_dies_mid_run_raises_cluster_error(sample, tiny_ckpt, tmp_path):
    store = tmp_path / "mosaic.zarr"
    lost_s = 5
    cfg = _cfg(sample, tiny_ckpt).replace("cluster", lost_timeout_s=lost_s, units_in_flight=1)
    with ProcessCluster(workers=[{"resources": GPU}], env=NO_FUSE_ENV, death_timeout=10) as cluster:
        client = _client(cluster)
        try:
            run = _Background(lambda: run_upscale(cfg, store, progress=False, client=client))
            _wait_for_done(store, run)
            cluster.kill_scheduler()
            killed_at = time.monotonic()
            with pytest.raises(S2ScaleError) as info:
                run.join(lost_s + 90, "run_upscale after the scheduler was killed")
            took = (run.ended_at or 0) - killed_at
        finally:
            closer = _Background(lambda: client.close(timeout=10))
            closer.join(30, "closing the client of a dead scheduler")
    assert isinstance(info.value, ClusterError), repr(info.value)
    assert "scheduler" in str(info.value) and "rerun" in str(info.value)
    assert took < lost_s + 40, took
    assert _done(store) >= 1


def test_a_client_that_is_not_the_default_is_enough(sample, tiny_ckpt, healthy, tmp_path):
    store = tmp_path / "mosaic.zarr"
    with distributed.Client(healthy.address, timeout="30s", set_as_default=False) as client:
        # a plain thread: no current client there, and no default client exists
        box: dict[str, Any] = {}

        def main() -> None:
            try:
                box["report"] = run_upscale(
                    _cfg(sample, tiny_ckpt), store, progress=False, client=client
                )
            except BaseException as err:
                box["error"] = err

        thread = threading.Thread(target=main, daemon=True)
        thread.start()
        thread.join(120)
        assert not thread.is_alive()
    if "error" in box:
        raise box["error"]
    assert box["report"]["regions_computed"] == box["report"]["units"]


def test_a_rerun_after_fixing_the_input_does_not_get_the_old_error(
    sample, tiny_ckpt, healthy, tmp_path
):
    root = tmp_path / "sample"
    shutil.copytree(sample.root, root)
    cog = root / _summer_red_href(root / "catalog.json")
    aside = tmp_path / "B04.tif.aside"
    cog.rename(aside)
    cfg = _cfg(SimpleNamespace(catalog=root / "catalog.json"), tiny_ckpt)
    store = tmp_path / "mosaic.zarr"
    with _client(healthy) as client:
        with pytest.raises(ReadError) as info:
            run_upscale(cfg, store, progress=False, client=client)
        aside.rename(cog)
        # the caller still holds the error, as an interactive session does (sys.last_value)
        report = run_upscale(cfg, store, progress=False, client=client)
        assert info.value is not None
    assert report["regions_computed"] == report["units"]
