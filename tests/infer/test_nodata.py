from __future__ import annotations

import numpy as np
import pytest
import rasterio
from infer_helpers import BANDS, field, make_cube, nn_upsample
from scipy.ndimage import binary_dilation

from s2scale.infer import upscale
from s2scale.infer.nodata import fill_nodata
from s2scale.infer.tiling import valid_mask
from s2scale.models.weights import SHIPPED


# ----------------------------------------------------------------------------------- the fill
def test_fill_keeps_valid_pixels_and_fills_holes():
    block = field((4, 40, 40), 0)
    block[:, 10:20, 12:18] = 0
    block[1, 30, 30] = 0
    valid = valid_mask(block)
    out = fill_nodata(block, valid, 10)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out[:, valid], block[:, valid])
    assert (out > 0).all()
    # a filled pixel lies within the range of the valid pixels around it
    near = block[:, 8:22, 10:20][:, valid[8:22, 10:20]]
    hole = out[:, 10:20, 12:18]
    assert (hole >= near.min(axis=1)[:, None, None]).all()
    assert (hole <= near.max(axis=1)[:, None, None]).all()


def test_fill_grows_one_ring_per_round_and_is_local():
    block = field((2, 50, 50), 1)
    block[:, 10:40, 10:40] = 0
    valid = valid_mask(block)
    out = fill_nodata(block, valid, 4)
    # beyond 4 rings: the band means of the valid pixels
    means = np.rint([b[valid].mean() for b in block])
    np.testing.assert_array_equal(out[:, 14:36, 14:36], np.broadcast_to(means[:, None, None],
                                                                        (2, 22, 22)))  # fmt: skip
    # a filled value depends only on the input within its distance: a crop holding that context
    # fills the same (the basis of chunk invariance)
    crop = np.s_[:, 3:31, 2:29]
    again = fill_nodata(block[crop], valid[crop[1:]], 4)
    np.testing.assert_array_equal(again[:, 7:11, 8:23], out[crop][:, 7:11, 8:23])  # rings 1-4


def test_fill_without_holes_or_data_is_identity():
    block = field((3, 8, 8), 2)
    assert fill_nodata(block, valid_mask(block), 5) is block
    empty = np.zeros((3, 8, 8), np.uint16)
    assert (fill_nodata(empty, valid_mask(empty), 5) == 0).all()


# ------------------------------------------------------------------------ through the network
def _hole_cube(seed: int = 7):
    cube = make_cube(96, 96, seed=seed)
    cube[:, 30:70, 30:70] = 1500  # a uniform field around the hole
    holed = cube.copy()
    holed[:, 44:56, 42:54] = 0
    return cube, holed


def test_valid_pixels_next_to_a_hole_are_unchanged(tiny_checkpoint):
    cube, holed = _hole_cube()
    kw = dict(device="cpu", chunk_px=256)
    ref = upscale(cube, tiny_checkpoint, **kw).compute(scheduler="sync").values.astype(int)
    out = upscale(holed, tiny_checkpoint, **kw).compute(scheduler="sync").values.astype(int)
    valid_hr = nn_upsample(valid_mask(holed.values))
    assert (out[:, ~valid_hr] == 0).all()
    assert np.abs(out - ref)[:, valid_hr].max() <= 1
    # control: without the fill the hole enters as zero reflectance and darkens its neighbours
    raw = upscale(holed, tiny_checkpoint, fill_nodata=False, consistency=False, **kw)
    raw_ref = upscale(cube, tiny_checkpoint, fill_nodata=False, consistency=False, **kw)
    diff = (
        raw.compute(scheduler="sync").values.astype(int) - raw_ref.compute(scheduler="sync").values
    )
    ring = nn_upsample(binary_dilation(~valid_mask(holed.values), iterations=2)) & valid_hr
    assert np.abs(diff[:, ring]).max() > 50


def test_chunked_equals_whole_with_holes(tiny_checkpoint):
    cube = make_cube(384, 376, seed=5)
    cube[:, 175:205, 60:75] = 0  # a cloud across a chunk edge
    cube[:, 296:384, 336:376] = 0  # a swath corner
    cube[2, 20, 20] = 0
    out = upscale(cube, tiny_checkpoint, chunk_px=188, tile_px=96, device="cpu")
    # context: network halo 14 + consistency 26 (14 + 3 x the 4 px low-pass) + fill 40 LR px
    assert out.attrs["halo_px"] == 80 and out.attrs["network_halo_px"] == 14
    assert out.data.chunks[1:] == ((376, 392), (376, 376))
    whole = upscale(cube, tiny_checkpoint, chunk_px=512, device="cpu")
    a = out.compute(scheduler="sync").values.astype(np.int32)
    b = whole.compute(scheduler="sync").values.astype(np.int32)
    assert np.abs(a - b).max() <= 1
    valid_hr = nn_upsample(valid_mask(cube.values))
    assert (a[:, ~valid_hr] == 0).all() and (a[:, valid_hr] >= 1).all()


# ------------------------------------------------------------- real Sentinel-2, shipped model
@pytest.fixture(scope="module")
def real_crop(shared_data):
    path = shared_data / "s2" / "S2_L1C_T33UUU_20170216_B02_B03_B04_B08_10m.tif"
    with rasterio.open(path) as src:
        data = src.read(window=((200, 296), (400, 496)))
    cube = make_cube(96, 96)
    return cube.copy(data=data)


def test_cloud_hole_does_not_darken_real_neighbours(real_crop):
    yy, xx = np.mgrid[:96, :96]
    hole = (yy - 48) ** 2 / 100 + (xx - 44) ** 2 / 196 < 1  # a 20 x 28 px cloud
    holed = real_crop.copy(data=np.where(hole, 0, real_crop.values).astype(np.uint16))
    ref = upscale(real_crop, "srresnet", device="cpu").values.astype(float)
    out = upscale(holed, "srresnet", device="cpu").values.astype(float)
    raw = upscale(holed, "srresnet", device="cpu", fill_nodata=False).values.astype(float)
    assert (out[:, nn_upsample(hole)] == 0).all()

    def grown(k: int) -> np.ndarray:
        return binary_dilation(hole, iterations=k) if k else hole

    def ring(a: int, b: int) -> np.ndarray:  # valid LR pixels a..b px from the hole, at 5 m
        return nn_upsample(grown(b) & ~grown(a - 1))

    near = ring(1, 3)
    # measured: ring 1-3 mean +0.02 %, p95 |d| 126 / 58 / 26 DN at 1 / 2 / 3 px; without the
    # fill the first ring reads +55 %, the second -18 %
    bias = (out - ref)[:, near].mean() / ref[:, near].mean()
    assert abs(bias) < 0.005
    assert abs((raw - ref)[:, ring(1, 1)].mean() / ref[:, ring(1, 1)].mean()) > 0.05
    # beyond the network's reach the fill no longer matters: measured at most 6 DN (0.06 %
    # reflectance) 8-12 px from the hole
    assert np.abs(out - ref)[:, ring(8, 12)].max() <= 10
    for band in range(len(BANDS)):
        valid = ~nn_upsample(hole)
        assert abs(out[band][valid].mean() / ref[band][valid].mean() - 1) < 0.001


@pytest.mark.parametrize("model", SHIPPED)
def test_shipped_generators_are_chunk_invariant_with_holes(shared_data, model):
    path = shared_data / "s2" / "S2_L1C_T33UUU_20170216_B02_B03_B04_B08_10m.tif"
    with rasterio.open(path) as src:
        data = src.read(window=((100, 484), (300, 684)))
    data[:, 178:208, 40:90] = 0  # a cloud across the chunk edge at 192
    data[:, 340:, 340:] = 0  # a swath corner
    cube = make_cube(384, 384).copy(data=data)
    chunked = upscale(cube, model, chunk_px=192, device="cpu")
    whole = upscale(cube, model, chunk_px=384, device="cpu")
    assert chunked.data.numblocks[1:] == (2, 2) and whole.data.numblocks[1:] == (1, 1)
    diff = np.abs(chunked.values.astype(np.int32) - whole.values.astype(np.int32))
    assert diff.max() <= 1
