import numpy as np
import pytest
import torch

from s2scale.errors import ConfigError, GridMismatchError, ReadError
from s2scale.train.data import PairDataset, ResumableSampler
from s2scale.train.degradations import TrainingDegradationConfig


def _pairs(n=4, size=16):
    rng = np.random.default_rng(0)
    hr = (rng.random((n, 4, size, size)) * 5000).astype(np.uint16)
    lr = hr.reshape(n, 4, size // 2, 2, size // 2, 2).mean((3, 5)).astype(np.uint16)
    return lr, hr


def test_normalisation_and_dtype():
    lr, hr = _pairs()
    ds = PairDataset(
        hr=hr, lr=lr, scale=2, normalization={"offset": 1000, "scale": 10000}, augment=False
    )
    x, y = ds[1]
    assert x.dtype == y.dtype == torch.float32
    assert x.shape == (4, 8, 8) and y.shape == (4, 16, 16)
    assert torch.allclose(y, torch.from_numpy((hr[1].astype(np.float32) - 1000) / 10000))


def test_augmentation_is_same_for_lr_and_hr_and_seeded():
    lr, hr = _pairs()
    ds = PairDataset(hr=hr, lr=lr, scale=2, seed=3)
    plain = PairDataset(hr=hr, lr=lr, scale=2, augment=False)
    seen = set()
    for epoch in range(6):
        x, y = ds[(epoch, 2)]
        x2, y2 = ds[(epoch, 2)]
        assert torch.equal(x, x2) and torch.equal(y, y2)
        # The LR of the augmented HR is the augmented LR (2x2 means commute with flips/rot90).
        assert torch.allclose(torch.nn.functional.avg_pool2d(y[None], 2)[0], x, atol=1e-4)
        seen.add(tuple(y[0, 0, :2].tolist()))
    assert len(seen) > 1  # epochs draw different transforms
    assert torch.equal(plain[2][1], torch.from_numpy(hr[2].astype(np.float32) / 10000))


def test_on_the_fly_degradation():
    _, hr = _pairs(size=32)
    ds = PairDataset(hr=hr, scale=2, degradation=TrainingDegradationConfig(), seed=1)
    x, y = ds[(0, 0)]
    assert x.shape == (4, 16, 16) and y.shape == (4, 32, 32)
    assert torch.equal(x, ds[(0, 0)][0]) and not torch.equal(x, ds[(1, 0)][0])


def test_shape_checks():
    lr, hr = _pairs()
    with pytest.raises(GridMismatchError, match="expected"):
        PairDataset(hr=hr, lr=lr[:, :, :4], scale=2)
    with pytest.raises(ConfigError, match="degradation"):
        PairDataset(hr=hr, scale=2)


def test_zarr_store(tmp_path):
    import zarr

    lr, hr = _pairs()
    group = zarr.open_group(str(tmp_path / "pairs.zarr"), mode="w")
    group.create_array("lr", data=lr)
    group.create_array("hr", data=hr)
    ds = PairDataset.from_zarr(tmp_path / "pairs.zarr", scale=2, augment=False)
    assert len(ds) == 4
    assert torch.equal(ds[0][1], torch.from_numpy(hr[0].astype(np.float32) / 10000))
    with pytest.raises(ReadError, match=r"missing\.zarr"):
        PairDataset.from_zarr(tmp_path / "missing.zarr", scale=2)


def test_resumable_sampler_continues_mid_epoch():
    lr, hr = _pairs(n=10)
    ds = PairDataset(hr=hr, lr=lr, scale=2)
    full = ResumableSampler(ds, seed=5)
    full.set_epoch(2)
    keys = list(full)
    part = ResumableSampler(ds, seed=5)
    part.set_state(2, 4)
    assert list(part) == keys[4:] and len(part) == 6
    assert all(epoch == 2 for epoch, _ in keys)
    shards = [list(ResumableSampler(ds, num_replicas=2, rank=r, seed=5)) for r in (0, 1)]
    assert sorted(i for s in shards for _, i in s) == list(range(10))
