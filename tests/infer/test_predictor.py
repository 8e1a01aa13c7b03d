from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from infer_helpers import BANDS, field

from s2scale.errors import CheckpointError, ConfigError
from s2scale.infer.predictor import (
    TorchPredictor,
    clear_model_cache,
    forward_count,
    get_model,
    model_cache_info,
    resolve_device,
)
from s2scale.models import load_generator


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_model_cache()
    yield
    clear_model_cache()


def _reference(path: str, block: np.ndarray) -> np.ndarray:
    """The model on the whole block, in float32 DN, rounded like the predictor."""
    net = load_generator(path, "cpu")
    with torch.inference_mode():
        y = net(torch.from_numpy(block.astype(np.float32))[None] / 10000.0)[0] * 10000.0
    return np.clip(np.rint(y.numpy()), 1, 65535).astype(np.uint16)


def test_subtiled_equals_whole_within_1dn(tiny_checkpoint, device):
    block = field((4, 50, 44), 2)
    whole = _reference(tiny_checkpoint, block)
    p = TorchPredictor(
        checkpoint=tiny_checkpoint,
        device=str(device),
        dtype="float32",
        tile_px=36,
        overlap_px=2 * 12 + 4,
        halo_px=12,
        batch_size=3,
    )
    out = p(block)
    assert out.dtype == np.uint16 and out.shape == (4, 100, 88)
    assert 1 < out.min() and out.max() < 65535  # the model's outputs are not clipped
    diff = np.abs(out.astype(np.int32) - whole)
    assert diff.max() <= 1
    assert pickle.loads(pickle.dumps(p)) == p
    assert len(pickle.dumps(p)) < 1000


@pytest.mark.parametrize(("batch_size", "passes"), [(None, 20), (4, 5), (20, 1)])
def test_batch_size_none_is_the_devices_default(tiny_checkpoint, batch_size, passes):
    """On the CPU a default predictor runs one sub-tile per forward pass (BATCH_SIZE["cpu"])."""
    from s2scale.infer.tiling import BATCH_SIZE, default_batch_size

    assert default_batch_size("cpu") == BATCH_SIZE["cpu"] == 1
    assert default_batch_size("cuda") == BATCH_SIZE["cuda"] and default_batch_size("mps") == 1
    block = field((4, 50, 44), 2)
    p = TorchPredictor(
        checkpoint=tiny_checkpoint, device="cpu", dtype="float32", tile_px=20,
        overlap_px=2 * 4 + 4, halo_px=4, batch_size=batch_size,
    )  # fmt: skip
    before = forward_count()
    out = p(block)
    assert forward_count() - before == passes  # a 5 x 4 layout of 20 px sub-tiles
    reference = TorchPredictor(
        checkpoint=tiny_checkpoint, device="cpu", dtype="float32", tile_px=20,
        overlap_px=12, halo_px=4, batch_size=20,
    )(block)  # fmt: skip
    assert np.abs(out.astype(np.int32) - reference).max() <= 1


def test_model_loaded_once_per_process(tiny_checkpoint):
    p = TorchPredictor(checkpoint=tiny_checkpoint, device="cpu", tile_px=16, overlap_px=4)
    block = field((4, 20, 20), 0)
    for _ in range(3):
        p(block)
    info = model_cache_info()
    assert info.misses == 1 and info.hits >= 2
    # an equal predictor built elsewhere (as in another task) hits the same cache entry
    TorchPredictor(checkpoint=tiny_checkpoint, device="cpu", tile_px=16, overlap_px=4)(block)
    assert model_cache_info().misses == 1


def test_bf16_autocast_on_cpu(tiny_checkpoint):
    block = field((4, 16, 16), 4)
    kw = dict(checkpoint=tiny_checkpoint, device="cpu", tile_px=64, overlap_px=0)
    f32 = TorchPredictor(**kw, dtype="float32")(block).astype(np.int32)
    bf16 = TorchPredictor(**kw, dtype="bfloat16")(block).astype(np.int32)
    assert bf16.dtype == np.int32 and (bf16 > 0).all()
    # bfloat16 keeps 8 mantissa bits: a few per cent of the value
    assert np.abs(bf16 - f32).max() <= 0.05 * f32.max()
    assert model_cache_info().misses == 2  # dtype is part of the cache key


def test_random_weights_are_flagged():
    model = get_model(None, "cpu", arch="srvgg", bands=("a", "b"), model_kwargs=(("num_conv", 1),))
    assert model.random_weights is True and model.band_names == ("a", "b")
    p = TorchPredictor(
        arch="srvgg", bands=("a", "b"), model_kwargs=(("num_conv", 1),), device="cpu"
    )
    out = p(np.full((2, 6, 6), 1200, np.uint16))
    assert out.shape == (2, 12, 12)


def test_no_float64_and_nodata(tiny_checkpoint):
    block = field((4, 20, 20), 1)
    block[:, 5:8, 5:8] = 0
    seen = []
    p = TorchPredictor(checkpoint=tiny_checkpoint, device="cpu", dtype="float32")
    handle = p.model().register_forward_hook(lambda m, i, o: seen.append((i[0].dtype, o.dtype)))
    try:
        out = p(block)
    finally:
        handle.remove()
    assert seen == [(torch.float32, torch.float32)]
    assert (out[:, 10:16, 10:16] == 0).all() and (np.delete(out, np.s_[10:16], 1) > 0).all()


def test_devices_and_errors(tiny_checkpoint, tmp_path):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu9")
    p = TorchPredictor(checkpoint=tiny_checkpoint, device="cpu", dtype="float64")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dtype must be one of"):
        p(field((4, 8, 8)))
    with pytest.raises(ConfigError, match="uint16"):
        TorchPredictor(checkpoint=tiny_checkpoint, device="cpu")(np.ones((4, 8, 8), np.float32))
    with pytest.raises(CheckpointError, match="does not exist"):
        TorchPredictor(checkpoint=str(tmp_path / "missing.pt"), device="cpu")(field((4, 8, 8)))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_cuda_autocast_channels_last(tiny_checkpoint, dtype):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    block = field((4, 64, 64), 6)
    f32 = TorchPredictor(checkpoint=tiny_checkpoint, device="cpu", dtype="float32")(block)
    out = TorchPredictor(
        checkpoint=tiny_checkpoint,
        device="cuda",
        dtype=dtype,
        tile_px=32,
        overlap_px=28,
        halo_px=12,
    )(block)
    assert np.abs(out.astype(np.int32) - f32).max() <= 0.05 * f32.max()


def test_fill_context_and_projection(tiny_checkpoint):
    from scipy.ndimage import gaussian_filter

    from s2scale.degradation import degrade_nominal
    from s2scale.infer.consistency import band_mtfs

    rng = np.random.default_rng(6)  # a block with the spectrum of a real 10 m image
    hr = gaussian_filter(rng.uniform(500, 4000, (4, 160, 160)), (0, 1.5, 1.5))
    block = np.rint(degrade_nominal(hr, 2)).astype(np.uint16)
    block[:, 30:36, 40:50] = 0
    kw = dict(checkpoint=tiny_checkpoint, device="cpu", tile_px=64, overlap_px=20, halo_px=6)
    p = TorchPredictor(**kw, fill_radius_px=12, context_px=12, consistency_mtf=band_mtfs(BANDS))
    out = p(block)
    assert (out[:, :24] == 0).all() and (out[:, -24:] == 0).all()  # the fill-only ring
    assert (out[:, 60:72, 80:100] == 0).all()  # the hole
    raw = TorchPredictor(**kw)(block)
    core = np.s_[:, 26:54, 26:37]  # beyond the ring (12) + projection reach (14), off the hole
    lr = np.where(block > 0, block, 1).astype(np.float64)
    for img, ok in ((out, True), (raw, False)):
        err = (np.abs(degrade_nominal(img.astype(np.float64), 2) - lr) / lr)[core]
        assert bool(err.max() < 0.005) == ok, err.max()
    with pytest.raises(ConfigError, match="one nominal MTF per band"):
        TorchPredictor(**kw, consistency_mtf=(0.3,))(block)
