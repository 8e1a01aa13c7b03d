"""The pure kernels of the study pairs: patch lattice, shifts, location split, study_pairs."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.ndimage import shift as nd_shift

from s2scale.errors import ConfigError, GridMismatchError
from s2scale.pairs import (
    STUDY_SPLIT,
    area_downsample,
    location_splits,
    measure_shift_block,
    patch_origins,
    patch_shifts,
    study_pairs,
)


def _field(shape, seed=0, sigma=3.0, bands=3):
    rng = np.random.default_rng(seed)
    img = np.stack([gaussian_filter(rng.random(shape), sigma) for _ in range(bands)])
    img = (img - img.min()) / (img.max() - img.min())
    return img


def test_patch_origins_only_fully_valid_windows_on_the_lattice():
    valid = np.ones((40, 50), bool)
    valid[12, 33] = False
    got = patch_origins(valid, patch_px=10, stride_px=5)
    brute = [
        (r, c)
        for r in range(0, 31, 5)
        for c in range(0, 41, 5)
        if valid[r : r + 10, c : c + 10].all()
    ]
    assert got.tolist() == [list(o) for o in brute]
    assert patch_origins(valid[:5], patch_px=10).shape == (0, 2)
    with pytest.raises(ConfigError):
        patch_origins(valid, patch_px=0)


@pytest.mark.parametrize("d", [(0.3, -0.2), (-0.45, 0.1), (0.0, 0.4), (1.2, -0.8)])
def test_measure_shift_recovers_subpixel_displacements(d):
    big = _field((200, 200), seed=1, sigma=1.5)
    moved = np.stack([nd_shift(b, d, order=3, mode="nearest") for b in big])
    ref, mov = big[:, 50:146, 50:146], moved[:, 50:146, 50:146]
    est = measure_shift_block(ref * 3000 + 200, mov * 40)  # radiometry does not matter
    assert np.hypot(*(est - np.array(d))) < 0.06


def test_measure_shift_rejects_other_shapes():
    with pytest.raises(GridMismatchError):
        measure_shift_block(np.ones((1, 8, 8)), np.ones((1, 8, 9)))


def test_location_splits_follow_fixed_blocks_and_drop_straddlers():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-5000, 5000, (400, 2))
    bounds = np.concatenate([xy, xy + 320.0], axis=1)
    split = location_splits(bounds, block_m=1000.0, fractions=(0.5, 0.3, 0.2), seed=4)
    assert set(np.unique(split)) == {-1, 0, 1, 2}
    kw = {"block_m": 1000.0, "fractions": (0.5, 0.3, 0.2), "seed": 4}

    def block(i, j):  # the split of one block, asked with a tiny footprint inside it
        return int(location_splits(np.array([[i * 1e3 + 1, j * 1e3 + 1, i * 1e3 + 2,
                                              j * 1e3 + 2]]), **kw)[0])  # fmt: skip

    for (x0, y0, x1, y1), s in zip(bounds, split, strict=True):
        seen = {block(i, j) for i in range(int(x0 // 1e3), int(x1 // 1e3) + 1)
                for j in range(int(y0 // 1e3), int(y1 // 1e3) + 1)}  # fmt: skip
        assert s == (seen.pop() if len(seen) == 1 else -1)
    # a block's split is a function of the block: the same place always gets the same split
    again = location_splits(bounds[::-1], block_m=1000.0, fractions=(0.5, 0.3, 0.2), seed=4)
    np.testing.assert_array_equal(again[::-1], split)
    # the study's proportions on many blocks
    centres = np.stack(np.meshgrid(np.arange(80), np.arange(80)), -1).reshape(-1, 2) * 100.0
    one = location_splits(np.concatenate([centres, centres + 10], 1), block_m=100.0)
    share = np.bincount(one, minlength=3) / len(one)
    np.testing.assert_allclose(share, np.array(STUDY_SPLIT) / sum(STUDY_SPLIT), atol=0.03)
    with pytest.raises(ConfigError):
        location_splits(bounds, block_m=0.0)


def test_study_pairs_corrects_a_known_offset_and_matches_histograms():
    truth = _field((300, 300), seed=3, sigma=4.0, bands=3)

    def hr_for(offset_true):
        def render(move):
            d = 2 * (np.array(offset_true) + np.array(move))
            img = np.stack([nd_shift(b, d, order=3, mode="nearest") for b in truth])
            return (img[:, 50:242, 50:242] * 200 + 20).astype(np.float32)  # 8-bit-like units

        return render

    lr = np.round(area_downsample(truth[:, 50:242, 50:242], 2) * 3000 + 400).astype(np.uint16)
    lr[:, :10, :10] = 0  # a cloud
    got = study_pairs(lr, hr_for((0.25, -0.3)), lr_patch_px=32, max_shift_px=0.5)
    assert got.counts["candidates"] == 8 and len(got) == 8
    assert got.offset == pytest.approx((-0.25, 0.3), abs=0.05)
    assert np.abs(got.shift).max() < 0.1
    assert (got.ssim > 0.9).all() and got.hr.dtype == np.uint16
    for b in range(3):
        ref, hr = got.lr[:, b].astype(float), got.hr[:, b].astype(float)
        assert hr.mean() == pytest.approx(ref.mean(), rel=0.02)
        assert hr.std() == pytest.approx(ref.std(), rel=0.02)
    # without the correction the displacement stays, as measured
    raw = study_pairs(lr, hr_for((0.25, -0.3)), lr_patch_px=32, coregister=False)
    assert raw.offset == (0.0, 0.0)
    np.testing.assert_allclose(raw.shift.mean(0), (0.25, -0.3), atol=0.06)
    # beyond max_shift_px: dropped and counted
    far = study_pairs(lr, hr_for((0.6, 0.5)), lr_patch_px=32, max_shift_px=0.5)
    assert len(far) == 0 and far.counts["dropped_shift"] == far.counts["candidates"] == 8


def test_study_pairs_ssim_filter_and_checks():
    truth = _field((200, 200), seed=5, sigma=3.0, bands=2)
    lr = np.round(area_downsample(truth[:, :128, :128], 2) * 3000 + 400).astype(np.uint16)
    other = _field((200, 200), seed=6, sigma=3.0, bands=2)[:, :128, :128].astype(np.float32)
    unrelated = study_pairs(lr, lambda m: other, lr_patch_px=16, max_shift_px=50.0)
    assert unrelated.counts["dropped_ssim"] > 0 and len(unrelated) < unrelated.counts["candidates"]
    with pytest.raises(GridMismatchError):
        study_pairs(lr, lambda m: other[:, :-2], lr_patch_px=16)
    with pytest.raises(GridMismatchError):
        study_pairs(lr.astype(np.float32), lambda m: other, lr_patch_px=16)


def test_patch_shifts_per_patch():
    big = _field((120, 120), seed=7, sigma=2.0)
    lr = area_downsample(big, 2)[None]
    hr = np.stack([nd_shift(b, (0.0, 0.6), order=3, mode="nearest") for b in big])[None]
    got = patch_shifts(lr, hr)
    np.testing.assert_allclose(got[0], (0.0, 0.3), atol=0.05)
