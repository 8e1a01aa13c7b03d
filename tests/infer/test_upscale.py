from __future__ import annotations

import pickle

import dask
import dask.array as da
import numpy as np
import pytest
import torch
from dask.array.utils import same_keys
from infer_helpers import (
    BANDS,
    box_sum_block,
    field,
    make_cube,
    nn_upsample,
    raise_if_dask_computes,
)

from s2scale.errors import CheckpointError, ConfigError, GridMismatchError
from s2scale.infer import upscale, upscale_block, upscale_dask, weights_path
from s2scale.models import build_generator, load_generator, save_checkpoint

SMALL = {"num_feat": 8, "num_block": 2}


def nn_block(block: np.ndarray, **_: object) -> np.ndarray:
    return nn_upsample(block)


# ------------------------------------------------------------------------------------ kernel
def test_upscale_block_trims_the_halo():
    block = field((2, 4, 10, 12), 0)
    out = upscale_block(block, predict=nn_block, margin=3, scale=2)
    assert out.shape == (2, 4, 8, 12)
    np.testing.assert_array_equal(out, nn_upsample(block)[..., 6:-6, 6:-6])
    same = upscale_block(block[0], predict=nn_block, margin=0, scale=2)
    np.testing.assert_array_equal(same, nn_upsample(block[0]))


# ------------------------------------------------------------------------------- graph wrapper
@pytest.mark.parametrize("shape", [(4, 37, 29), (3, 4, 40, 33)])
@pytest.mark.parametrize(("chunk", "margin"), [(8, 3), (16, 0), (13, 5), (64, 4)])
def test_nn_chunked_equals_whole_bit_for_bit(shape, chunk, margin):
    data = field(shape, 1)
    arr = da.from_array(data, chunks=(1,) * (len(shape) - 3) + (2, chunk, chunk))
    out = upscale_dask(arr, nn_block, margin_px=margin, scale=2)
    assert out.dtype == np.uint16 and out.shape == nn_upsample(data).shape
    np.testing.assert_array_equal(out.compute(scheduler="sync"), nn_upsample(data))


@pytest.mark.parametrize("chunk", [10, 16, 23])
def test_known_receptive_field_chunked_equals_reflect_padded_whole(chunk):
    """A model with RF radius 2 and margin 2: every pixel matches, outer edges included."""
    data = field((4, 45, 38), 2)
    data[:, 20:24, 3:9] = 0
    arr = da.from_array(data, chunks=(4, chunk, chunk))
    out = upscale_dask(arr, box_sum_block, margin_px=2, scale=2).compute(scheduler="sync")
    padded = np.pad(data, ((0, 0), (2, 2), (2, 2)), mode="symmetric")  # dask's "reflect"
    np.testing.assert_array_equal(out, box_sum_block(padded)[:, 4:-4, 4:-4])
    assert (out[:, 40:48, 6:18] == 0).all()


@pytest.mark.parametrize(("shape", "chunks"), [((4, 7, 5), (4, 7, 5)), ((4, 45, 5), (4, 15, 5))])
def test_an_axis_of_one_chunk_may_be_smaller_than_the_halo(shape, chunks):
    """An image narrower than the halo (a held-out strip, a small AOI) is mirrored as a whole."""
    data = field(shape, 3)
    arr = da.from_array(data, chunks=chunks)
    margin = 6  # wider than the 5 px axis: mirrored more than once, as numpy.pad does
    out = upscale_dask(arr, box_sum_block, margin_px=margin, scale=2)
    assert out.shape == (4, 2 * shape[1], 10)
    padded = np.pad(data, ((0, 0), (margin, margin), (margin, margin)), mode="symmetric")
    m = 2 * margin
    want = box_sum_block(padded)[:, m:-m, m:-m]
    np.testing.assert_array_equal(out.compute(scheduler="sync"), want)


def test_graph_wrapper_validates_chunks():
    arr = da.zeros((4, 40, 40), dtype=np.uint16, chunks=(4, 10, 10))
    with pytest.raises(GridMismatchError, match=r"margin_px=6 needs spatial chunks >= 12px"):
        upscale_dask(arr, nn_block, margin_px=6, scale=2)
    with pytest.raises(GridMismatchError, match="multiples of 2"):
        upscale_dask(arr.rechunk((4, 15, 15)), nn_block, margin_px=4, scale=2, align=2)
    # a small last chunk is merged into its neighbour instead of failing
    out = upscale_dask(
        da.zeros((4, 41, 41), np.uint16, chunks=(4, 20, 20)), nn_block, margin_px=4, scale=2
    )
    assert out.chunks[1:] == ((40, 42), (40, 42))


# --------------------------------------------------------------------------- real generator
def _whole(path: str, data: np.ndarray) -> np.ndarray:
    net = load_generator(path, "cpu")
    with torch.inference_mode():
        y = net(torch.from_numpy(data.astype(np.float32))[None] / 1e4)[0] * 1e4
    return np.clip(np.rint(y.numpy()), 1, 65535).astype(np.int32)


def test_tiny_generator_chunked_equals_whole_within_1dn(tiny_checkpoint):
    """The network alone (no fill, no projection) against one forward pass of the whole image."""
    cube = make_cube(96, 88, seed=3)
    halo = 14  # the srresnet default
    bare = dict(consistency=False, fill_nodata=False)
    out = upscale(
        cube, tiny_checkpoint, chunk_px=40, tile_px=64, dtype="float32", device="cpu", **bare
    )
    assert out.attrs["halo_px"] == halo and out.data.chunks[1:] == ((80, 112), (80, 96))
    got = out.compute(scheduler="sync").values.astype(np.int32)
    whole = _whole(tiny_checkpoint, cube.values)
    m = halo * 2
    inner = np.abs(got - whole)[:, m:-m, m:-m]
    assert inner.max() <= 1
    assert (got[:, m:-m, m:-m] > 1).all()  # not clipped: the comparison has teeth
    # a second chunking agrees everywhere (same reflect context at the outer edge)
    other = upscale(cube, tiny_checkpoint, chunk_px=48, tile_px=512, device="cpu", **bare)
    diff = np.abs(other.compute(scheduler="sync").values.astype(np.int32) - got)
    assert diff.max() <= 1


def test_nodata_in_nodata_out(tiny_checkpoint):
    cube = make_cube(96, 96, seed=4)
    cube[:, 10:15, 20:30] = 0
    cube[1, 30, 5] = 0
    out = upscale(cube, tiny_checkpoint, chunk_px=96, halo_px=8, device="cpu")
    out = out.compute(scheduler="sync")
    valid = nn_upsample(np.all(cube.values > 0, axis=0))
    assert (out.values[:, ~valid] == 0).all() and (out.values[:, valid] >= 1).all()
    assert out.dtype == np.uint16


def test_time_cube_random_weights_and_metadata():
    cube = make_cube(64, 56, time=2)
    out = upscale(
        cube,
        "srvgg",
        random_weights=True,
        model_kwargs={"num_feat": 4, "num_conv": 1},
        chunk_px=64,
        device="cpu",
    )
    assert out.dims == cube.dims and out.shape == (2, 4, 128, 112)
    assert out.attrs["random_weights"] == 1 and out.attrs["model"] == "srvgg"
    assert out.attrs["checkpoint"] == "" and out.attrs["network_halo_px"] == 12
    assert out.attrs["halo_px"] == 12 + 26 + 38  # + consistency (14 + 3 x 4 low-pass) + fill
    assert out.attrs["consistency"] == 1 and out.attrs["fill_nodata"] == 1
    assert list(out.band.values) == BANDS
    np.testing.assert_array_equal(out.time.values, cube.time.values)
    assert out.compute(scheduler="sync").values.min() >= 0


def test_coordinates_and_transform(tiny_checkpoint):
    cube = make_cube(20, 24)
    out = upscale(
        cube, tiny_checkpoint, chunk_px=32, device="cpu", consistency=False, fill_nodata=False
    )
    x10, y10 = cube.x.values, cube.y.values
    np.testing.assert_allclose(out.x.values[0::2], x10 - 2.5)
    np.testing.assert_allclose(out.x.values[1::2], x10 + 2.5)
    np.testing.assert_allclose(out.y.values[0::2], y10 + 2.5)  # y descends
    np.testing.assert_allclose(out.y.values[1::2], y10 - 2.5)
    assert out.rio.crs == cube.rio.crs
    t10, t5 = cube.rio.transform(), out.rio.transform()
    assert (t5.a, t5.e, t5.c, t5.f) == (t10.a / 2, t10.e / 2, t10.c, t10.f)
    assert out.rio.transform(recalc=True) == t5
    assert out.name == cube.name
    assert out.attrs["checkpoint"].endswith("tiny_srresnet.pt")
    assert out.attrs["random_weights"] == 0
    assert out.attrs["consistency"] == 0 and out.attrs["halo_px"] == 14


def test_numpy_and_dask_inputs_agree(tiny_checkpoint):
    cube = make_cube(288, 288)
    a = upscale(cube, tiny_checkpoint, chunk_px=144, halo_px=8, device="cpu")
    b = upscale(cube.chunk({"y": 144, "x": 144}), tiny_checkpoint, halo_px=8, device="cpu")
    assert isinstance(a.data, da.Array) and a.data.chunks == b.data.chunks
    np.testing.assert_array_equal(a.compute(scheduler="sync"), b.compute(scheduler="sync"))


# ------------------------------------------------------------------------------ graph checks
def _lazy_cube():
    cube = make_cube(384, 384)
    return cube.copy(data=da.ones(cube.shape, dtype=np.uint16, chunks=(4, 192, 192)))


def test_building_the_graph_does_not_compute(tiny_checkpoint):
    with raise_if_dask_computes():
        out = upscale(_lazy_cube(), tiny_checkpoint, device="cpu")
    assert isinstance(out.data, da.Array)


def test_keys_are_deterministic(tiny_checkpoint):
    cube = _lazy_cube()
    a = upscale(cube, tiny_checkpoint, device="cpu")
    b = upscale(cube, tiny_checkpoint, device="cpu")
    c = upscale(cube, tiny_checkpoint, device="cpu", halo_px=8)
    assert same_keys(a.data, b.data)
    assert a.data.name != c.data.name
    assert a.data.name.startswith("upscale-")


def test_gpu_annotation_only_on_model_layer(tiny_checkpoint):
    out = upscale(_lazy_cube(), tiny_checkpoint, device="cpu")
    layers = out.data.dask.layers
    model_layer = layers[out.data.name]
    assert model_layer.annotations == {"resources": {"GPU": 1}}
    others = [k for k, v in layers.items() if k != out.data.name and v.annotations]
    assert others == []  # reading and overlap assembly stay free for the other threads


def test_pickled_graph_is_small_whatever_the_model_size(tmp_path):
    net = build_generator("srresnet", seed=0)  # full size, ~1.5 M parameters
    path = save_checkpoint(
        tmp_path / "big.pt", net, bands=BANDS, normalization={"offset": 0.0, "scale": 1e4}
    )
    assert path.stat().st_size > 5_000_000
    out = upscale(_lazy_cube(), path, device="cpu")
    graph = dict(out.data.__dask_graph__())
    size = len(pickle.dumps(graph))
    assert size < 50_000, size
    assert b"state_dict" not in pickle.dumps(graph)


# ------------------------------------------------------------------------------------ errors
def test_errors_are_clear(tiny_checkpoint, tmp_path):
    cube = make_cube(40, 40)
    with pytest.raises(ConfigError, match=r"bands \['blue', 'green', 'red'\].*expects \['blue'"):
        upscale(cube.sel(band=["blue", "green", "red"]), tiny_checkpoint)
    with pytest.raises(ConfigError, match=r"bands.*nir.*red.*expects"):
        upscale(cube.sel(band=["blue", "green", "nir", "red"]), tiny_checkpoint)
    with pytest.raises(GridMismatchError, match="margin_px=80 needs spatial chunks >= 160px"):
        upscale(cube, tiny_checkpoint, chunk_px=20)  # 14 network + 26 consistency + 40 fill
    with pytest.raises(ConfigError, match=r"\['band0'.*consistency=False"):
        upscale(cube.assign_coords(band=[f"band{i}" for i in range(4)]), "srvgg",
                random_weights=True, device="cpu")  # fmt: skip
    shipped = str(weights_path("srvgg"))  # a registry name without shipped weights
    with pytest.raises(CheckpointError, match="s2scale train") as err:
        upscale(cube, "srvgg")
    assert shipped in str(err.value) and "model=PATH" in str(err.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        upscale(cube, tmp_path / "nope.pt")
    with pytest.raises(ConfigError, match=r"unknown model 'srgan'.*srresnet"):
        upscale(cube, "srgan")
    with pytest.raises(ConfigError, match="dims"):
        upscale(cube.transpose("y", "band", "x"), tiny_checkpoint)
    with pytest.raises(ConfigError, match="uint16"):
        upscale(cube.astype("float32"), tiny_checkpoint)
    with pytest.raises(ConfigError, match="random_weights=True"):
        upscale(cube, tiny_checkpoint, model_kwargs={"num_feat": 4})
    with pytest.raises(ConfigError, match="registry name"):
        upscale(cube, tiny_checkpoint, random_weights=True)
    with pytest.raises(ConfigError, match="halo_px"):
        upscale(cube, tiny_checkpoint, halo_px=-1)
    with pytest.raises(ConfigError, match="tile_px=32 must exceed overlap_px=36"):
        upscale(cube, tiny_checkpoint, tile_px=32)  # checked eagerly, not in a worker
    with pytest.raises(ConfigError, match="batch_size"):
        upscale(cube, tiny_checkpoint, batch_size=0)


def test_realesrgan_needs_even_chunks():
    cube = make_cube(300, 300)
    kw = dict(random_weights=True, model_kwargs={"num_feat": 4, "num_block": 1, "num_grow_ch": 4})
    with pytest.raises(GridMismatchError, match="multiples of 2"):
        upscale(cube, "realesrgan", chunk_px=145, halo_px=8, **kw)
    out = upscale(cube, "realesrgan", chunk_px=144, halo_px=8, tile_px=64, device="cpu", **kw)
    assert out.attrs["halo_px"] == 8 + 26 + 34  # all multiples of the input multiple, 2
    with dask.config.set(scheduler="sync"):
        assert out.shape == (4, 600, 600) and int(out.min()) >= 0
