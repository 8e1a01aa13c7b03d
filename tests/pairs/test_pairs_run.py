"""Orthophoto + Sentinel-2 pairs on a Dask cluster: alignment, matching, split, store, bad input."""

import json

import numpy as np
import pytest
import rasterio
import zarr
from conftest import cut_tiles, shifted_copy, write_like

from s2scale.config import CatalogConfig, RunConfig
from s2scale.errors import GridMismatchError, NoScenesFoundError
from s2scale.pairs import PairsConfig, read_patch_provenance, read_patch_store
from s2scale.pairs.ortho import BandMismatchError, MissingCRSError
from s2scale.pipeline import run_pairs


def _run(sample, orthos, out, client, skip_errors=False, **pairs):
    cfg = PairsConfig(orthophotos=tuple(str(o) for o in orthos), **pairs)
    run = RunConfig(catalog=CatalogConfig(stac=str(sample.catalog), skip_errors=skip_errors))
    return run_pairs(out, config=cfg, run=run, client=client, progress=False)


@pytest.fixture(scope="module")
def offset_run(small_sample, client, tmp_path_factory):
    """The sample's orthophoto with its georeference off by 3 m east and 2 m south."""
    tmp = tmp_path_factory.mktemp("offset")
    ortho = shifted_copy(small_sample.orthophoto, tmp / "ortho_off.tif", 3.0, -2.0)
    store = tmp / "pairs.zarr"
    report = _run(small_sample, [ortho], store, client, lr_patch_px=32, observations=2)
    return report, store


def test_known_offset_is_recovered_and_histograms_match(offset_run):
    report, store = offset_run
    assert report["groups"] == report["groups_computed"] == 2
    assert report["observations_rejected"] == {"cloudy": 1, "nodata": 0}
    assert report["patches"] > 10 and report["pairs_per_s"] > 0
    lr, hr, attrs = read_patch_store(store)
    assert lr.shape[1:] == (4, 32, 32) and hr.shape[1:] == (4, 64, 64)
    assert attrs["bands"] == ["blue", "green", "red", "nir"]
    prov = read_patch_provenance(store)
    for i, src in enumerate(attrs["sources"]):
        assert src["kind"] == "ortho-s2" and src["crs"] == "EPSG:32633"
        # the HR content lay 0.2 LR px low and 0.3 LR px east: moved back by that much
        assert src["offset_lr_px"] == pytest.approx([-0.2, -0.3], abs=0.04)
        mine = prov["source"] == i
        assert mine.sum() == src["patches"] > 0
        # what is left is measurement noise of 32 px patches around zero (0.02 px steps)
        left = prov["shift"][mine]
        assert np.hypot(*np.median(left, 0)) < 0.04 and np.hypot(*left.T).max() < 0.2
        # matched over the common valid area: the HR has the observation's radiometry there
        rad = src["radiometry"]
        np.testing.assert_allclose(rad["hr_mean"], rad["lr_mean"], rtol=0.02)
        np.testing.assert_allclose(rad["hr_std"], rad["lr_std"], rtol=0.02)
        # and the patches (a part of that area) keep it up to local differences
        for b in range(4):
            s2, ortho = lr[mine, b].astype(float), hr[mine, b].astype(float)
            assert ortho.mean() == pytest.approx(s2.mean(), rel=0.05)
            assert ortho.std() == pytest.approx(s2.std(), rel=0.08)
    assert (prov["ssim"] >= 0.45).all()
    assert set(prov["scene_id"]) == {"S2B_33TTN_20240708_0_L2A", "S2A_33TTN_20240712_0_L2A"}
    assert set(prov["ortho_id"]) == {"ortho_off"} and set(prov["crs"]) == {"EPSG:32633"}


def test_without_correction_the_offset_stays_and_is_measured(small_sample, client, tmp_path):
    ortho = shifted_copy(small_sample.orthophoto, tmp_path / "o.tif", 3.0, -2.0)
    report = _run(small_sample, [ortho], tmp_path / "p.zarr", client, lr_patch_px=32,
                  coregister=False)  # fmt: skip
    prov = read_patch_provenance(tmp_path / "p.zarr")
    assert report["groups"] == 1 and len(prov["shift"]) > 5
    np.testing.assert_allclose(np.median(prov["shift"], 0), [0.2, 0.3], atol=0.06)
    far = shifted_copy(small_sample.orthophoto, tmp_path / "far.tif", 8.0, -4.0)
    report = _run(small_sample, [far], tmp_path / "f.zarr", client, lr_patch_px=32)
    assert report["patches"] == 0 and report["dropped"]["shift"] > 5  # 0.89 px: dropped


def test_store_is_what_the_training_loop_reads(offset_run):
    from s2scale.train import PairDataset

    report, store = offset_run
    ds = PairDataset.from_zarr(store, scale=2, augment=False)
    assert len(ds) == report["patches"]
    x, y = ds[0]
    assert tuple(x.shape) == (4, 32, 32) and tuple(y.shape) == (4, 64, 64)
    group = zarr.open_group(str(store), mode="r")
    assert group["lr_mask"].shape == (len(ds), 32, 32) and bool(group["hr_mask"][0].all())
    train, _, _ = read_patch_store(store, "train")
    assert len(train) == group.attrs["counts"]["train"]


def test_rerun_reuses_and_another_configuration_is_refused(
    offset_run, small_sample, client, tmp_path
):
    report, store = offset_run
    before = {k: np.asarray(zarr.open_group(str(store))[k][...]) for k in ("lr", "hr", "split")}
    ortho = next(iter(report["skipped_orthophotos"]), None)
    assert ortho is None
    src = zarr.open_group(str(store)).attrs["sources"][0]["ortho"]["href"]
    again = _run(small_sample, [src], store, client, lr_patch_px=32, observations=2)
    assert again["groups_computed"] == 0 and again["groups_reused"] == 2
    assert again["surveys_computed"] == 0
    for k, v in before.items():
        np.testing.assert_array_equal(np.asarray(zarr.open_group(str(store))[k][...]), v)
    with pytest.raises(GridMismatchError, match="ssim_min"):
        _run(small_sample, [src], store, client, lr_patch_px=32, observations=2, ssim_min=0.6)


def test_split_shares_no_pixel_between_train_val_and_test(small_sample, client, tmp_path):
    import shapely
    from pyproj import Transformer
    from shapely import STRtree
    from shapely.geometry import box

    tiles = cut_tiles(small_sample.orthophoto, tmp_path / "tiles", 2, 2)
    store = tmp_path / "split.zarr"
    report = _run(small_sample, [small_sample.orthophoto, *tiles], store, client,
                  lr_patch_px=24, stride_px=12, block_m=480.0, split_fractions=(1, 1, 1),
                  max_shift_px=1.0)  # fmt: skip
    assert report["groups"] == 5 and report["dropped"]["split_guard"] > 0
    prov = read_patch_provenance(store)
    assert set(np.unique(prov["split"])) == {0, 1, 2}
    polys = []
    for (x0, y0, x1, y1), crs in zip(prov["bounds"], prov["crs"], strict=True):
        to = Transformer.from_crs(str(crs), "EPSG:3035", always_xy=True)
        poly = shapely.segmentize(box(x0, y0, x1, y1), 20.0)
        polys.append(shapely.transform(poly, lambda x, y, t=to: t.transform(x, y),
                                       interleaved=False))  # fmt: skip
    tree = STRtree(polys)
    overlapping = [
        (i, j) for i, j in tree.query(polys, predicate="intersects").T
        if i < j and polys[i].intersection(polys[j]).area > 1.0
    ]  # fmt: skip
    # patches overlap a lot (stride < patch, and the tiles repeat the whole orthophoto) ...
    assert len(overlapping) > 2 * len(polys)
    # ... but never across splits
    assert all(prov["split"][i] == prov["split"][j] for i, j in overlapping)


def test_composite_of_the_clear_observations(small_sample, client, tmp_path):
    report = _run(small_sample, [small_sample.orthophoto], tmp_path / "c.zarr", client,
                  lr_patch_px=32, observations=2, composite=True)  # fmt: skip
    (src,) = zarr.open_group(str(tmp_path / "c.zarr")).attrs["sources"]
    assert report["groups"] == 1 and src["observation"] == "composite"
    assert len(src["scene_ids"]) == 2 and src["patches"] > 5


def test_bad_inputs_fail_clearly_or_are_counted(small_sample, client, tmp_path):
    good = small_sample.orthophoto
    no_crs = write_like(good, tmp_path / "nocrs.tif", crs=None)
    away = shifted_copy(good, tmp_path / "away.tif", 60_000.0, 0.0)
    with rasterio.open(good) as f:
        rgb = write_like(good, tmp_path / "rgb.tif", data=f.read([1, 2, 3]),
                         descriptions=("red", "green", "blue"))  # fmt: skip
    kw = {"lr_patch_px": 32}
    with pytest.raises(MissingCRSError, match="--ortho-crs"):
        _run(small_sample, [good, no_crs], tmp_path / "a.zarr", client, **kw)
    with pytest.raises(NoScenesFoundError, match=r"overlaps orthophoto 'away'"):
        _run(small_sample, [good, away], tmp_path / "b.zarr", client, **kw)
    with pytest.raises(BandMismatchError, match=r"'rgb'.*missing \['nir'\]"):
        _run(small_sample, [good, rgb], tmp_path / "c.zarr", client, **kw)
    with pytest.raises(NoScenesFoundError, match=r"clear.*--min-clear"):
        _run(small_sample, [good], tmp_path / "d.zarr", client, ortho_date="2024-07-11",
             window_days=0, **kw)  # fmt: skip
    assert not (tmp_path / "a.zarr").exists() and not (tmp_path / "c.zarr").exists()
    report = _run(small_sample, [good, no_crs, away, rgb], tmp_path / "e.zarr", client,
                  skip_errors=True, **kw)  # fmt: skip
    assert report["skipped"] == {"no_crs": 1, "bands": 1, "no_scene": 1}
    assert report["orthophotos"] == 4 and report["groups"] == 1 and report["patches"] > 5
    cloudy = _run(small_sample, [good], tmp_path / "f.zarr", client, skip_errors=True,
                  ortho_date="2024-07-11", window_days=0, **kw)  # fmt: skip
    assert cloudy["skipped"] == {"cloudy": 1} and cloudy["groups"] == 0


def test_cli_bad_input_exits_2_with_one_line(small_sample, tmp_path):
    import subprocess
    import sys

    no_crs = write_like(small_sample.orthophoto, tmp_path / "nocrs.tif", crs=None)
    base = [sys.executable, "-m", "s2scale.cli", "pairs", "--out", str(tmp_path / "x.zarr")]
    cases = [
        (["--orthophotos", str(no_crs), "--stac", str(small_sample.catalog), "--dry-run"],
         "has no CRS"),
        (["--orthophotos", str(small_sample.orthophoto), "--dry-run"], "--stac"),
        (["--orthophotos", str(small_sample.orthophoto), "--seeds", "11"], "simulator mode"),
    ]  # fmt: skip
    for args, message in cases:
        out = subprocess.run([*base, *args], capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr[-2000:]
        assert message in out.stderr and "Traceback" not in out.stderr
    dry = subprocess.run([*base, "--orthophotos", str(small_sample.orthophoto), "--stac",
                          str(small_sample.catalog), "--dry-run", "--observations", "2"],
                         capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] and not (tmp_path / "x.zarr").exists()
    (cand,) = plan["candidates"].values()
    assert [o["key"] for o in cand["observations"]] == [
        "sentinel-2c_20240711", "sentinel-2b_20240708", "sentinel-2a_20240712"
    ]  # nearest in time first  # fmt: skip
