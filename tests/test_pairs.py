"""Tests of the pair pipeline: kernels, Wald pairs, split, SSIM filter and the Zarr store."""

from __future__ import annotations

import numpy as np
import pytest

from s2scale.errors import ConfigError, GridMismatchError
from s2scale.grid import TargetGrid
from s2scale.pairs import (
    SPLITS,
    PatchSet,
    area_downsample,
    extract_patches,
    make_pairs,
    match_histograms_block,
    nested_grid,
    orthophoto_to_hr,
    patch_ssim,
    read_orthophoto,
    read_patch_store,
    split_blocks,
    wald_pairs,
    write_patch_store,
)


def _texture(shape: tuple[int, int], seed: int = 0, bands: int = 4) -> np.ndarray:
    """Smooth random reflectance-like DN image (uint16, no zeros)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    img = np.stack([gaussian_filter(rng.random(shape), 2.0) for _ in range(bands)])
    img = (img - img.min()) / (img.max() - img.min())
    return (500 + 3000 * img).astype(np.uint16)


def test_area_downsample_is_block_mean():
    x = np.arange(36, dtype=np.float32).reshape(1, 6, 6)
    out = area_downsample(x, 3)
    assert out.shape == (1, 2, 2)
    assert out[0, 0, 0] == pytest.approx(x[0, :3, :3].mean())


def test_wald_pairs_shapes_and_constant_image():
    hr = np.full((4, 33, 40), 1234, np.uint16)
    lr, hr2 = wald_pairs(hr, 2, 0.55)
    assert lr.shape == (4, 16, 20) and hr2.shape == (4, 32, 40)
    assert lr.dtype == np.uint16 and np.all(lr == 1234)


def test_wald_pairs_psf_blurs_more_than_area_mean():
    hr = _texture((64, 64)).astype(np.float32)
    hr[:, :, 32:] += 2000.0  # a sharp edge
    area, _ = wald_pairs(hr, 2, 0.0)
    blurred, _ = wald_pairs(hr, 2, 0.6)
    np.testing.assert_allclose(area, area_downsample(hr, 2), rtol=1e-6)
    assert np.abs(np.diff(blurred, axis=2)).max() < np.abs(np.diff(area, axis=2)).max()


def test_wald_pairs_noise_needs_rng_and_is_seeded():
    hr = _texture((32, 32))
    with pytest.raises(ConfigError):
        wald_pairs(hr, 2, 0.5, noise_sigma=10.0)
    a, _ = wald_pairs(hr, 2, 0.5, noise_sigma=10.0, rng=np.random.default_rng(1))
    b, _ = wald_pairs(hr, 2, 0.5, noise_sigma=10.0, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)


def test_wald_pairs_propagates_nodata():
    hr = _texture((32, 32))
    hr[:, 10, 10] = 0
    lr, _ = wald_pairs(hr, 2, 0.5)
    assert (lr[:, 5, 5] == 0).all()
    assert (lr[:, 15, 15] > 0).all()


def test_wald_pairs_rejects_bad_input():
    with pytest.raises(GridMismatchError):
        wald_pairs(np.ones((8, 8), np.uint16), 2)
    with pytest.raises(ConfigError):
        wald_pairs(np.ones((1, 8, 8), np.uint16), 1)


def test_match_histograms_takes_reference_radiometry():
    rng = np.random.default_rng(0)
    hr = rng.random((4, 40, 40)).astype(np.float32) * 255  # 8-bit-like orthophoto
    ref = (rng.random((4, 20, 20)) * 2000 + 500).astype(np.uint16)
    out = match_histograms_block(hr, ref)
    for b in range(4):
        assert out[b].mean() == pytest.approx(ref[b].mean(), rel=0.02)
        # monotone: the order of pixel values is kept
        order = np.argsort(hr[b].ravel())
        assert np.all(np.diff(out[b].ravel()[order]) >= -1e-3)


def test_match_histograms_ignores_nodata():
    hr = np.ones((1, 4, 4), np.float32) * 10
    hr[0, 0, 0] = 0
    ref = np.array([[[0, 100], [100, 100]]], np.uint16)
    out = match_histograms_block(hr, ref, nodata=0)
    assert out[0, 0, 0] == 0 and np.all(out[0].ravel()[1:] == 100)
    with pytest.raises(GridMismatchError):
        match_histograms_block(hr, np.ones((2, 4, 4)))


def test_extract_patches_colocated_and_skip_nodata():
    lr = _texture((20, 20))
    hr = np.repeat(np.repeat(lr, 2, 1), 2, 2)
    hr[:, 39, 39] = 0  # no data in the last HR pixel
    p_lr, p_hr, origins = extract_patches(lr, hr, lr_patch_px=8, stride_px=4)
    assert p_lr.shape[1:] == (4, 8, 8) and p_hr.shape[1:] == (4, 16, 16)
    assert [12, 12] not in origins.tolist()
    for a, b in zip(p_lr, p_hr, strict=True):
        np.testing.assert_array_equal(area_downsample(b, 2), a)
    with pytest.raises(GridMismatchError):
        extract_patches(lr, hr[:, :-2], lr_patch_px=8)


def test_ssim_filter_drops_misregistered_pairs():
    hr = _texture((64, 64), seed=3)
    lr = area_downsample(hr, 2).round().astype(np.uint16)
    good = patch_ssim(lr[None], hr[None])
    shifted = np.roll(hr, 7, axis=2)
    bad = patch_ssim(lr[None], shifted[None])
    assert good[0] > 0.95 > bad[0]


def test_split_blocks_no_overlap_between_splits():
    origins = np.array([(r, c) for r in range(0, 64, 4) for c in range(0, 64, 4)])
    split = split_blocks(origins, patch_px=8, block_px=16, fractions=(0.6, 0.2, 0.2), seed=0)
    assert set(np.unique(split)) <= {-1, 0, 1, 2}
    covered = {}
    for (r, c), s in zip(origins, split, strict=True):
        if s < 0:
            continue
        for y in range(r, r + 8):
            for x in range(c, c + 8):
                assert covered.setdefault((y, x), s) == s  # every pixel in one split only
    # the same area on a grid of half the resolution gets the same block splits
    coarse = split_blocks(origins // 2, patch_px=4, block_px=8, fractions=(0.6, 0.2, 0.2), seed=0)
    aligned = (origins % 16 == 0).all(1)
    np.testing.assert_array_equal(split[aligned], coarse[aligned])


def test_make_pairs_and_store_round_trip(tmp_path):
    hr = _texture((96, 96), seed=5)
    lr, hr = wald_pairs(hr, 2, 0.5)
    hr_bad = hr.copy()
    hr_bad[:, :, :48] = np.roll(hr[:, :, :48], 9, axis=1)  # "changed" west half
    ps = make_pairs(
        lr,
        hr_bad,
        lr_patch_px=16,
        stride_px=16,
        ssim_threshold=0.6,
        block_px=16,
        source={"kind": "test", "name": "t"},
    )
    assert 0 < len(ps) < 9 and ps.sources[0]["dropped_ssim"] > 0
    both = PatchSet.concat([ps, ps])
    assert len(both) == 2 * len(ps) and both.source.max() == 1
    store = write_patch_store(tmp_path / "p.zarr", both, provenance={"what": "test"})
    lr2, hr2, attrs = read_patch_store(store)
    np.testing.assert_array_equal(lr2, both.lr)
    assert lr2.dtype == np.uint16 and hr2.shape[-1] == 32
    assert attrs["bands"] == ["blue", "green", "red", "nir"] and attrs["splits"] == list(SPLITS)
    assert attrs["normalization"]["scale"] == 10000.0 and attrs["provenance"] == {"what": "test"}
    train_lr, _, _ = read_patch_store(store, "train")
    assert len(train_lr) == int((both.split == 0).sum())
    with pytest.raises(ConfigError):
        read_patch_store(store, "holdout")
    with pytest.raises(ConfigError):
        make_pairs(lr.astype(np.float32), hr)


def test_store_is_readable_by_pair_dataset(tmp_path):
    from s2scale.train import PairDataset

    hr = _texture((64, 64), seed=2)
    lr, hr = wald_pairs(hr, 2, 0.5)
    ps = make_pairs(lr, hr, lr_patch_px=16, ssim_threshold=None, block_px=16)
    store = write_patch_store(tmp_path / "p.zarr", ps)
    ds = PairDataset.from_zarr(store, scale=2, augment=False)
    x, y = ds[0]
    assert tuple(x.shape) == (4, 16, 16) and tuple(y.shape) == (4, 32, 32)
    assert float(y.max()) < 1.0


def test_orthophoto_to_hr_area_average_changes_crs():
    # 1 m orthophoto in EPSG:31287 over a 5 m UTM grid: values are area means, NaN outside
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 32633, always_xy=True).transform(12.0, 47.49)
    x0, y0 = round(x / 10) * 10, round(y / 10) * 10
    lr_grid = TargetGrid("EPSG:32633", 10.0, (x0, y0, x0 + 200, y0 + 200))
    hr_grid = nested_grid(lr_grid)
    assert hr_grid.shape == (40, 40)
    ox, oy = Transformer.from_crs(32633, 31287, always_xy=True).transform(x0 + 100, y0 + 100)
    ortho_grid = TargetGrid(
        "EPSG:31287", 1.0, (round(ox) - 80, round(oy) - 80, round(ox) + 80, round(oy) + 80)
    )
    ortho = np.full((3, 160, 160), 100.0, np.float32)
    out = orthophoto_to_hr(ortho, ortho_grid.transform, ortho_grid.crs, hr_grid)
    assert out.shape == (3, 40, 40)
    assert np.nanmax(np.abs(out - 100.0)) < 1e-3
    assert np.isnan(out[:, 0, 0]).all() and np.isfinite(out[:, 20, 20]).all()


def test_real_orthophoto_study_pipeline(shared_data):
    """Real Zürich ortho (0.5 m, EPSG:2056) -> 5 m HR -> hist-matched to a fake S2 10 m image."""
    data, transform, crs, _ = read_orthophoto(shared_data / "orthophoto" / "1091-322_00_big.tif")
    assert data.shape == (3, 600, 875) and crs == "EPSG:2056"
    b = (2679100.0, 1247720.0, 2679460.0, 1247980.0)  # inside the ortho, on the 10 m lattice
    lr_grid = TargetGrid("EPSG:2056", 10.0, b)
    hr = orthophoto_to_hr(data, transform, crs, nested_grid(lr_grid))
    assert hr.shape == (3, 52, 72) and np.isfinite(hr).all()
    s2_like = (area_downsample(hr, 2) * 12 + 300).astype(np.uint16)
    matched = match_histograms_block(hr, s2_like)
    assert abs(float(matched.mean()) - float(s2_like.mean())) < 0.05 * float(s2_like.mean())
    ps = make_pairs(
        s2_like,
        np.round(matched).astype(np.uint16),
        lr_patch_px=12,
        ssim_threshold=0.3,
        block_px=12,
    )
    assert len(ps) > 0


def test_match_histograms_keeps_mean_and_std_of_small_sparse_references():
    """A small, skewed reference with few distinct values (quantised DN, as in urban windows)."""
    rng = np.random.default_rng(4)
    ref = (np.round(rng.lognormal(6.0, 0.6, (1, 30, 40)) / 16) * 16).astype(np.uint16) + 1
    hr = rng.gamma(2.0, 30.0, (1, 60, 80)).astype(np.float32)
    out = match_histograms_block(hr, ref)
    assert out.mean() == pytest.approx(ref.mean(), rel=0.01)
    assert out.std() == pytest.approx(ref.std(), rel=0.02)
    # the order of the pixels is kept and ties get one value
    order = np.argsort(hr.ravel())
    assert np.all(np.diff(out.ravel()[order]) >= 0)
    with pytest.raises(ConfigError):
        match_histograms_block(hr, ref, method="cdf")
