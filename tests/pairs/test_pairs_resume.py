"""Kill ``s2scale pairs`` mid-run: the rerun adds only the missing groups, same store content."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr
from conftest import cut_tiles

from s2scale.config import CatalogConfig, RunConfig
from s2scale.errors import S2ScaleError
from s2scale.pairs import PairsConfig, PairStore
from s2scale.pipeline import run_pairs

PAIRS = {"lr_patch_px": 24, "observations": 2}


@pytest.fixture(scope="module")
def tiles(small_sample, tmp_path_factory):
    """Six orthophoto tiles: with two clear observations each, twelve task groups."""
    return cut_tiles(small_sample.orthophoto, tmp_path_factory.mktemp("tiles"), 3, 2)


@pytest.fixture(scope="module")
def reference(small_sample, tiles, client, tmp_path_factory):
    store = tmp_path_factory.mktemp("ref") / "pairs.zarr"
    cfg = PairsConfig(orthophotos=(str(tiles[0].parent / "*.tif"),), **PAIRS)
    run = RunConfig(catalog=CatalogConfig(stac=str(small_sample.catalog)))
    report = run_pairs(store, config=cfg, run=run, client=client, progress=False)
    return report, _content(store)


def _content(store):
    group = zarr.open_group(str(store), mode="r")
    arrays = {k: np.asarray(group[k][...]) for k in group.array_keys()}
    attrs = {k: group.attrs[k] for k in ("counts", "sources", "provenance", "bands")}
    return arrays, json.dumps(attrs, sort_keys=True)


def _done(store):
    try:
        return len(PairStore(store).done_groups())
    except (S2ScaleError, KeyError, OSError, ValueError):
        return 0


def test_unfinished_groups_are_redone_and_nothing_else(reference, small_sample, tiles, client,
                                                       tmp_path):  # fmt: skip
    """A store whose last groups never got their record (as after a crash mid-write)."""
    import shutil

    expected_report, (expected_arrays, expected_attrs) = reference
    store = tmp_path / "pairs.zarr"
    shutil.copytree(expected_report["out"], store)
    root = zarr.open_group(str(store), mode="r+")
    gids = sorted(root["parts"].group_keys())
    for gid in gids[-4:]:
        part = root["parts"][gid]
        del part.attrs["record"]
        if part["lr"].shape[0]:
            part["lr"][...] = 0  # half-written: must not reach the root arrays
    for name in list(root.array_keys()):
        del root[name]
    cfg = PairsConfig(orthophotos=(str(tiles[0].parent / "*.tif"),), **PAIRS)
    run = RunConfig(catalog=CatalogConfig(stac=str(small_sample.catalog)))
    report = run_pairs(store, config=cfg, run=run, client=client, progress=False)
    assert report["groups_reused"] == 8 and report["groups_computed"] == 4
    arrays, attrs = _content(store)
    assert attrs == expected_attrs
    for name, value in expected_arrays.items():
        np.testing.assert_array_equal(arrays[name], value, err_msg=name)


def test_resume_after_sigkill_adds_only_the_missing_groups(
    reference, small_sample, tiles, tmp_path
):
    expected_report, (expected_arrays, expected_attrs) = reference
    assert expected_report["groups"] == 12 and expected_report["patches"] > 12
    config = tmp_path / "run.yaml"
    config.write_text(
        f"catalog: {{stac: '{small_sample.catalog}'}}\n"
        "cluster: {kind: local, n_workers: 1, threads_per_worker: 1}\n"
        f"pairs: {{lr_patch_px: 24, observations: 2, groups_in_flight: 1}}\n"
    )
    store = tmp_path / "pairs.zarr"
    cmd = [sys.executable, "-m", "s2scale.cli", "pairs", "--config", str(config),
           "--orthophotos", str(tiles[0].parent / "*.tif"), "--out", str(store)]  # fmt: skip
    log = (tmp_path / "killed-run.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 240
    while _done(store) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the client and its local cluster die at once
    proc.wait()
    log.close()
    done_before = _done(store)
    assert 3 <= done_before < 12, (tmp_path / "killed-run.log").read_text()[-3000:]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["groups_reused"] == done_before
    assert report["groups_computed"] == 12 - done_before
    assert report["surveys_reused"] == 6 and report["counts"] == expected_report["counts"]
    arrays, attrs = _content(store)
    assert attrs == expected_attrs
    assert arrays.keys() == expected_arrays.keys()
    for name, value in expected_arrays.items():
        np.testing.assert_array_equal(arrays[name], value, err_msg=name)
