from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from infer_helpers import box_sum_u16, field, nn_upsample

from s2scale.errors import ConfigError
from s2scale.infer.tiling import (
    HALO_PX,
    blend_weights,
    default_halo_px,
    feather_1d,
    fit_tile_px,
    input_multiple,
    network_px,
    tile_process,
    tile_starts,
    valid_mask,
)
from s2scale.models import GENERATORS


@st.composite
def tilings(draw, max_size: int = 80):
    """(shape, tile_px, overlap_px, halo_px, scale, align) with a consistent tiling."""
    align = draw(st.sampled_from([1, 1, 2]))
    halo = draw(st.integers(0, 4)) * align
    overlap = 2 * halo + draw(st.integers(0, 6))
    tile = overlap + align + draw(st.integers(0, 30))
    tile += -tile % align
    ny = draw(st.integers(1, max_size // align)) * align
    nx = draw(st.integers(1, max_size // align)) * align
    scale = draw(st.sampled_from([1, 2, 4]))
    return (ny, nx), tile, overlap, halo, scale, align


@settings(max_examples=150, deadline=None)
@given(tilings())
def test_normalised_blend_weights_sum_to_one(case):
    shape, tile, overlap, halo, scale, align = case
    wsum = np.zeros((shape[0] * scale, shape[1] * scale), np.float64)
    tiles = list(blend_weights(shape, tile, overlap, halo, scale=scale, align=align))
    for (ys, xs), w in tiles:
        assert w.shape == ((ys.stop - ys.start) * scale, (xs.stop - xs.start) * scale)
        assert w.dtype == np.float32 and (w >= 0).all() and (w <= 1).all()
        assert ys.start % align == 0 and xs.start % align == 0
        wsum[ys.start * scale : ys.stop * scale, xs.start * scale : xs.stop * scale] += w
    assert (wsum > 0).all()
    # normalising by the accumulated sum gives effective weights that sum to exactly 1
    total = np.zeros_like(wsum)
    for (ys, xs), w in tiles:
        sl = np.s_[ys.start * scale : ys.stop * scale, xs.start * scale : xs.stop * scale]
        total[sl] += w / wsum[sl]
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(tilings(max_size=60))
def test_weight_zero_within_halo_of_interior_tile_edges(case):
    shape, tile, overlap, halo, scale, align = case
    for (ys, xs), w in blend_weights(shape, tile, overlap, halo, scale=scale, align=align):
        h = halo * scale
        if h and ys.start > 0:
            assert (w[:h] == 0).all()
        if h and xs.stop < shape[1]:
            assert (w[:, -h:] == 0).all()


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 300),
    tile=st.integers(2, 64),
    overlap=st.integers(0, 20),
    align=st.sampled_from([1, 2, 4]),
)
def test_tile_starts_cover_and_overlap(size, tile, overlap, align):
    size += -size % align
    if tile - tile % align <= -(-overlap // align) * align:
        return
    starts = tile_starts(size, tile, overlap, align)
    t = min(tile - tile % align, size)
    assert starts[0] == 0 and starts[-1] + t == size
    assert all(s % align == 0 for s in starts)
    assert all(b - a <= t - overlap for a, b in itertools.pairwise(starts))
    assert starts == sorted(set(starts))


def test_feather_ramp_pairs_sum_to_one():
    a = feather_1d(10, 0, 6, 1)
    b = feather_1d(10, 6, 0, 1)
    np.testing.assert_allclose(a[4:] + b[:6], 1.0)
    assert feather_1d(5, 0, 0, 3).tolist() == [1.0] * 5
    # overlap == 2 * halo: a hard switch in the middle of the overlap
    assert feather_1d(6, 4, 0, 2).tolist() == [0, 0, 1, 1, 1, 1]


@settings(max_examples=60, deadline=None)
@given(tilings(max_size=48), st.integers(1, 3), st.integers(0, 2**16))
def test_nn_tiled_equals_whole_bit_for_bit(case, batch, seed):
    shape, tile, overlap, halo, scale, align = case
    block = field((3, *shape), seed)

    def predict(tiles):
        assert tiles.ndim == 4 and len(tiles) <= batch
        return tiles.repeat(scale, axis=-2).repeat(scale, axis=-1)

    out = tile_process(
        block,
        predict,
        scale=scale,
        tile_px=tile,
        overlap_px=overlap,
        halo_px=halo,
        batch_size=batch,
        align=align,
    )
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, block.repeat(scale, -2).repeat(scale, -1))


@pytest.mark.parametrize(("tile", "overlap"), [(12, 4), (16, 6), (9, 5), (100, 4)])
def test_known_receptive_field_tiled_equals_whole(tile, overlap):
    block = field((4, 37, 30), 3)
    whole = box_sum_u16(block)
    out = tile_process(
        block, box_sum_u16, scale=2, tile_px=tile, overlap_px=overlap, halo_px=2, batch_size=3
    )
    np.testing.assert_array_equal(out, whole)


def test_too_small_halo_shows_seams():
    """Control: with halo 0 the box-sum model's tiles do not match, so the test above has teeth."""
    block = field((4, 37, 30), 3)
    out = tile_process(block, box_sum_u16, scale=2, tile_px=12, overlap_px=0, halo_px=0)
    assert (out != box_sum_u16(block)).any()


def test_nodata_in_gives_nodata_out():
    block = field((4, 30, 30), 1)
    block[:, 10:14, 5:9] = 0
    block[2, 20, 20] = 0  # one band missing is no data too
    block[:, :, :3] = 0  # a no-data border
    out = tile_process(block, box_sum_u16, scale=2, tile_px=12, overlap_px=6, halo_px=2)
    valid_hr = nn_upsample(valid_mask(block))
    assert (out[:, ~valid_hr] == 0).all()
    assert (out[:, valid_hr] >= 1).all()
    assert out.dtype == np.uint16


def test_float_predictions_are_rounded_and_clipped():
    block = np.full((1, 4, 4), 5, np.uint16)
    for value, expected in [(-3.0, 1), (7.6, 8), (1e6, 65535), (np.float32(2.49), 2)]:
        out = tile_process(
            block,
            lambda t, v=value: np.full((1, 1, 8, 8), v, np.float32),
            scale=2,
            tile_px=8,
            overlap_px=0,
            halo_px=0,
        )
        assert (out == expected).all()


def test_bad_tiling_raises():
    block = np.ones((1, 8, 8), np.uint16)
    with pytest.raises(ConfigError, match="overlap_px=2 must be >= 2 \\* halo_px = 4"):
        tile_process(block, nn_upsample, scale=2, tile_px=4, overlap_px=2, halo_px=2)
    with pytest.raises(ConfigError, match="tile_px=4 must exceed overlap_px=4"):
        tile_process(block, nn_upsample, scale=2, tile_px=4, overlap_px=4, halo_px=0)
    with pytest.raises(ConfigError, match="batch_size"):
        tile_process(block, nn_upsample, scale=2, tile_px=4, overlap_px=0, halo_px=0, batch_size=0)


def test_odd_block_is_padded_for_aligned_models():
    block = field((2, 13, 11), 5)
    calls = []

    def predict(tiles):
        calls.append(tiles.shape)
        assert tiles.shape[-1] % 2 == 0 and tiles.shape[-2] % 2 == 0
        return nn_upsample(tiles)

    out = tile_process(block, predict, scale=2, tile_px=8, overlap_px=2, halo_px=1, align=2)
    np.testing.assert_array_equal(out, nn_upsample(block))
    assert calls


def test_default_halos_cover_every_generator():
    assert set(HALO_PX) == set(GENERATORS)
    assert all(default_halo_px(n) % input_multiple(n, 2) == 0 for n in GENERATORS)
    with pytest.raises(ConfigError, match="pass halo_px"):
        default_halo_px("nope")


def test_sub_tiles_overlap_by_the_overlap_only():
    # three 512 px tiles over a 1,116 px block used to overlap by 210 px; fitted tiles by 48
    starts = tile_starts(1116, fit_tile_px(1116, 512, 48), 48)
    assert len(starts) == 3 and fit_tile_px(1116, 512, 48) == 404
    assert max(a + 404 - b for a, b in itertools.pairwise(starts)) <= 48 + 1
    assert network_px((1116, 1116), 2048, 48) == 1116 * 1116  # one tile: no overlap at all
    assert network_px((1116, 1116), 512, 48) < 1.2 * 1116 * 1116


def test_the_network_skips_mirrored_context_beyond_its_halo():
    block = field((1, 60, 60), 4)
    seen = []

    def predict(tiles):
        seen.append(tiles.shape[-2:])
        return tiles.repeat(2, axis=-2).repeat(2, axis=-1)

    kw = dict(scale=2, tile_px=100, overlap_px=4, halo_px=2)
    out = tile_process(block, predict, edges=(10, 0, 10, 0), **kw)
    assert seen == [(52, 52)]  # 8 of the 10 mirrored px on top and left are not computed
    np.testing.assert_array_equal(out[:, 16:, 16:], nn_upsample(block)[:, 16:, 16:])
    assert (out[:, :16, :] <= 1).all() and (out[:, :, :16] <= 1).all()  # not computed: trimmed
    seen.clear()
    tile_process(block, predict, **kw)
    assert seen == [(60, 60)]
