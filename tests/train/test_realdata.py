"""Real training data: held-out parts, patch store with provenance, mixing, sensor degradation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2scale.degradation import SensorDegradationConfig, noise_sigma
from s2scale.errors import ConfigError
from s2scale.pairs import read_patch_provenance, read_patch_store
from s2scale.train.config import DataConfig, TrainConfig
from s2scale.train.data import PairDataset
from s2scale.train.realdata import build_mixed_store, mixed_indices
from s2scale.train.realscenes import (
    REAL_S2_SCENES,
    read_real_scene,
    split_columns,
    validation_scenes,
)


@pytest.mark.parametrize("width", [68, 227, 1536])
@pytest.mark.parametrize("fraction", [0.2, 0.3])
def test_split_columns_are_disjoint_with_a_guard(width, fraction):
    train, val = split_columns(width, fraction, guard_px=16)
    assert train.start == 0 and val.stop == width and val.start % 2 == 0
    assert val.start - train.stop == min(16, val.start)
    assert abs((width - val.start) / width - fraction) < 2 / width + 1e-9


def test_split_columns_rejects_bad_fraction():
    with pytest.raises(ConfigError, match="val_fraction"):
        split_columns(100, 1.0)


def test_data_config_validates():
    with pytest.raises(ConfigError, match=r"unknown data\.mix sources"):
        DataConfig(mix={"real-s2": 1.0})
    with pytest.raises(ConfigError, match="positive sum"):
        DataConfig(mix={"real-s2-wald": 0.0})
    with pytest.raises(ConfigError, match="unknown data keys"):
        TrainConfig.from_dict({"data": {"mixx": {}}})
    cfg = DataConfig(mix={"real-s2-wald": 3, "sim-wald-s2": 1, "real-ortho-study": 0})
    assert cfg.weights == {"real-s2-wald": 0.75, "sim-wald-s2": 0.25}


def test_mixed_indices_follow_the_weights():
    kinds = ["a"] * 90 + ["b"] * 10
    idx = mixed_indices(kinds, {"a": 0.5, "b": 0.5}, 1000, seed=1)
    drawn = np.asarray(kinds)[idx]
    assert len(idx) == 1000 and (drawn == "b").sum() == 500
    assert np.bincount(idx[drawn == "b"] - 90).min() == 50  # small sources are repeated evenly
    assert np.array_equal(idx, mixed_indices(kinds, {"a": 0.5, "b": 0.5}, 1000, seed=1))
    with pytest.raises(ConfigError, match="'c'"):
        mixed_indices(kinds, {"a": 1, "c": 1}, 10)


def _hr_patches(n=3, size=32, seed=0):
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(300, 3000, (n, 4, size // 8, size // 8))
    return (np.kron(coarse, np.ones((8, 8))) + rng.uniform(0, 200, (n, 4, size, size))).astype(
        np.uint16
    )


def test_sensor_degradation_in_training_shapes_and_statistics():
    hr = _hr_patches()
    cfg = SensorDegradationConfig(noise_range=(1.0, 1.0), shift_range_px=(0.0, 0.0))
    ds = PairDataset(hr=hr, scale=2, sensor_degradation=cfg, augment=False, seed=3)
    lr, target = ds[(0, 1)]
    assert lr.shape == (4, 16, 16) and target.shape == (4, 32, 32) and lr.dtype == torch.float32
    # reflectance units (DN / 10000), whole DN after quantisation
    assert torch.allclose(lr * 10000, torch.round(lr * 10000), atol=1e-3)
    # the blur keeps the mean; noise is zero-mean with about the requirement's sigma per band
    assert torch.allclose(lr.mean((1, 2)), target.mean((1, 2)), atol=6e-4)
    flat = PairDataset(
        hr=np.full((1, 4, 64, 64), 2000, np.uint16), scale=2, sensor_degradation=cfg, augment=False
    )
    std = flat[0][0].std((1, 2)).double().numpy()
    want = np.array([noise_sigma(b) for b in ("blue", "green", "red", "nir")])
    assert np.allclose(std, want, rtol=0.2)
    # a pure function of (seed, epoch, index): equal keys equal draws, other epochs new draws
    assert torch.equal(ds[(0, 1)][0], lr)
    assert not torch.equal(ds[(1, 1)][0], lr)
    with pytest.raises(ConfigError, match="not both"):
        PairDataset(
            hr=hr,
            scale=2,
            sensor_degradation=cfg,
            degradation=TrainConfig(degradation={}).degradation,
        )


def test_sensor_degradation_from_config_reaches_the_dataset(tmp_path):
    from s2scale.train.loop import _configured

    cfg = TrainConfig(arch="srcnn", sensor_degradation={"mtf_range": [0.3, 0.3]}, seed=5)
    ds = _configured(
        PairDataset(
            hr=_hr_patches(), lr=None, scale=2, sensor_degradation=SensorDegradationConfig()
        ),
        cfg,
    )
    assert ds.sensor_degradation.mtf_range == (0.3, 0.3) and ds.seed == 5


def test_mixed_store_needs_the_real_data(tmp_path, monkeypatch):
    monkeypatch.delenv("S2SCALE_SHARED_DATA", raising=False)
    with pytest.raises(ConfigError, match="S2SCALE_SHARED_DATA"):
        build_mixed_store(tmp_path / "p.zarr", DataConfig(mix={"real-s2-wald": 1.0}))


def test_real_scenes_and_held_out_parts(shared_data):
    folder = shared_data / "s2"
    assert len(REAL_S2_SCENES) == 8
    l1c = read_real_scene(REAL_S2_SCENES[0], folder)
    theia = read_real_scene(REAL_S2_SCENES[3], folder)
    assert l1c.shape == (4, 768, 1536) and theia.shape == (4, 246, 227)
    assert l1c.dtype == np.uint16 and 0.005 < np.median(theia[3]) / 10000 < 0.6
    parts = validation_scenes(folder)
    assert [p[0].name for p in parts] == [s.name for s in REAL_S2_SCENES]
    for scene, hr, col0 in parts:
        assert hr.shape[1] % 4 == 0 and hr.shape[2] % 4 == 0 and hr.dtype == np.float64
        width = 1536 if scene.file.startswith("S2_L1C") else 227
        assert col0 == split_columns(width)[1].start


@pytest.fixture(scope="module")
def real_store(tmp_path_factory, shared_data):
    cfg = DataConfig(
        mix={"real-s2-wald": 0.8, "real-ortho-study": 0.2},
        lr_patch_px=16,
        stride_px=16,
        ortho_pixels_m=(2.0,),
    )
    out = tmp_path_factory.mktemp("real") / "patches.zarr"
    build_mixed_store(
        out, cfg, s2_folder=shared_data / "s2", ortho_folder=shared_data / "orthophoto"
    )
    return out, cfg


def test_mixed_store_records_provenance_and_keeps_held_out_parts(real_store):
    path, cfg = real_store
    lr, hr, attrs = read_patch_store(path)
    prov = read_patch_provenance(path)
    import zarr

    origins = zarr.open_group(str(path), mode="r")["origin_px"][...]
    assert lr.shape[1:] == (4, 16, 16) and hr.shape[1:] == (4, 32, 32)
    assert len(origins) == len(lr) == len(prov["source"])
    kinds = {s["kind"] for s in attrs["sources"]}
    assert kinds == {"real-s2-wald", "real-ortho-study"}
    assert attrs["provenance"]["mix"] == {"real-s2-wald": 0.8, "real-ortho-study": 0.2}
    for i, src in enumerate(attrs["sources"]):
        mine = prov["source"] == i
        assert int(mine.sum()) == src["patches"]
        if src["kind"] == "real-s2-wald":
            # every patch ends before the guard strip, west of the held-out columns
            assert (origins[mine, 1] + 32 <= src["columns"][1]).all()
            assert src["columns"][1] + cfg.guard_px == src["held_out_columns_from"]
            assert src["date"] and src["licence"]
        else:
            assert "SYNTHETIC" in src["nir"] and "simulated LR" in src["lr_label"]
    assert attrs["counts"]["val"] > 0  # internal validation blocks inside the training parts
    # the stored LR is the nominal degradation of the HR
    from s2scale.degradation import degrade_nominal

    again = np.round(degrade_nominal(hr[:3].astype(np.float64)))
    assert np.abs(again - lr[:3]).max() <= 1


def test_datasets_mix_the_training_split(real_store):
    from s2scale.train.recipes import _datasets

    path, cfg = real_store
    mix = DataConfig(
        **{
            **cfg.__dict__,
            "mix": {"real-s2-wald": 0.5, "real-ortho-study": 0.5},
            "epoch_patches": 200,
        }
    )
    train_ds, val_ds, attrs = _datasets(path, 2, mix)
    assert len(train_ds) == 200 and attrs["epoch_mix"] == {
        "real-s2-wald": 100,
        "real-ortho-study": 100,
    }
    assert val_ds is not None and len(val_ds) > 0


def test_fixed_lr_pairs_keep_their_real_input_under_a_degradation():
    hr = _hr_patches()
    lr = np.full((len(hr), 4, hr.shape[2] // 2, hr.shape[3] // 2), 1234, np.uint16)
    fixed = np.zeros(len(hr), bool)
    fixed[::2] = True
    ds = PairDataset(hr=hr, lr=lr, scale=2, sensor_degradation=SensorDegradationConfig(),
                     augment=False, fixed_lr=fixed)  # fmt: skip
    for i in range(len(hr)):
        x, _ = ds[(0, i)]
        is_stored = bool(torch.allclose(x, torch.full_like(x, 0.1234)))
        assert is_stored == bool(fixed[i])
    with pytest.raises(Exception, match="fixed_lr"):
        PairDataset(hr=hr, lr=lr, scale=2, fixed_lr=fixed[:2])


@pytest.fixture(scope="module")
def colocated_store(tmp_path_factory, shared_data):
    cfg = DataConfig(mix={"real-colocated": 0.7, "real-s2-wald": 0.3}, lr_patch_px=32,
                     stride_px=32, colocated_dir=str(shared_data / "worldstrat"))  # fmt: skip
    out = tmp_path_factory.mktemp("colocated") / "patches.zarr"
    build_mixed_store(out, cfg, s2_folder=shared_data / "s2")
    return out, cfg


def test_colocated_store_uses_only_the_training_sites(colocated_store):
    from s2scale.pairs.colocated import split_sites
    from s2scale.train.recipes import _datasets

    path, cfg = colocated_store
    _, _, attrs = read_patch_store(path)
    colocated = [s for s in attrs["sources"] if s["kind"] == "real-colocated"]
    sites = {s["site"] for s in colocated}
    assert sites == {"Landcover-31746", "Landcover-769356", "Landcover-772423",
                     "UNHCR-CODs026832", "UNHCR-NGAs036021"}  # fmt: skip
    assert all(not s.get("dropped") and abs(s["delta_days"]) <= 30 for s in colocated)
    assert all("real Sentinel-2" in s["lr"] for s in colocated)
    assert set(split_sites(sorted(sites))) == sites  # names only; the split itself is tested
    train_ds, _, _ = _datasets(path, 2, DataConfig(**{**cfg.__dict__, "epoch_patches": 100}))
    assert train_ds.fixed_lr is not None and 60 <= int(train_ds.fixed_lr.sum()) <= 80
    # a fixed pair's LR is the stored real revisit, not a degradation of its HR
    i = int(np.flatnonzero(train_ds.fixed_lr)[0])
    x, _ = PairDataset(hr=train_ds.hr, lr=train_ds.lr, scale=2, augment=False,
                       sensor_degradation=SensorDegradationConfig(),
                       fixed_lr=train_ds.fixed_lr)[(0, i)]  # fmt: skip
    np.testing.assert_allclose(x.numpy(), train_ds.lr[i] / 10000.0, rtol=1e-6)


def test_colocated_source_needs_its_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("S2SCALE_SHARED_DATA", raising=False)
    with pytest.raises(ConfigError, match="colocated_dir"):
        build_mixed_store(tmp_path / "p.zarr", DataConfig(mix={"real-colocated": 1.0}))
