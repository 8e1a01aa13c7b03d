"""The s2scale checkpoint format: round trips, fp16 export and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from s2scale.errors import CheckpointError, ConfigError
from s2scale.models import (
    GENERATORS,
    Normalization,
    build_generator,
    export_half,
    load_generator,
    read_checkpoint,
    save_checkpoint,
)

BANDS = ["blue", "green", "red", "nir"]
NORM = {"kind": "reflectance", "offset": 0.0, "scale": 10000.0}


def _x(bands: int = 4) -> torch.Tensor:
    return torch.rand(2, bands, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def ckpt_path(tmp_path, tiny_kwargs) -> Path:
    net = build_generator("realesrgan", bands=4, scale=2, seed=0, **tiny_kwargs["realesrgan"])
    return save_checkpoint(
        tmp_path / "gen.pt",
        net,
        bands=BANDS,
        normalization=NORM,
        training={"steps": 10, "patches": ["a", "b"], "lr": 2e-4},
        metrics={"val/psnr": 30.5},
    )


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_round_trip_gives_identical_outputs(name, tmp_path, tiny_kwargs, device):
    net = build_generator(name, bands=4, scale=2, seed=0, **tiny_kwargs[name])
    if name == "srresnet":  # give the batch-norm buffers non-default values
        net.train()(_x())
    net.eval()
    path = save_checkpoint(
        tmp_path / "a" / "gen.pt",
        net,
        arch=name,
        kwargs=tiny_kwargs[name],
        bands=BANDS,
        scale=2,
        normalization=Normalization(offset=1000.0, scale=10000.0),
    )
    loaded = load_generator(path, device, bands=4, scale=2)
    assert not loaded.training
    with torch.no_grad():
        expected = net(_x())
        got = loaded(_x().to(device)).cpu()
    assert torch.equal(expected, got) if device.type == "cpu" else torch.allclose(expected, got)
    assert (loaded.arch, loaded.bands, loaded.scale) == (name, 4, 2)
    assert loaded.band_names == tuple(BANDS)
    assert loaded.normalization == Normalization(offset=1000.0, scale=10000.0)
    assert loaded.checkpoint.state_dict == {}
    assert loaded.checkpoint.kwargs == tiny_kwargs[name]


def test_read_checkpoint_metadata(ckpt_path, tiny_kwargs):
    ckpt = read_checkpoint(ckpt_path)
    assert ckpt.arch == "realesrgan"
    assert ckpt.kwargs == tiny_kwargs["realesrgan"]
    assert ckpt.bands == tuple(BANDS)
    assert ckpt.scale == 2
    assert ckpt.dtype == "float32"
    assert ckpt.training == {"steps": 10, "patches": ["a", "b"], "lr": 2e-4}
    assert ckpt.metrics == {"val/psnr": 30.5}
    assert ckpt.path == str(ckpt_path)
    raw = torch.load(ckpt_path, weights_only=True)
    assert raw["format"] == "s2scale-generator" and raw["format_version"] == 1
    assert raw["normalization"] == NORM


def test_normalization_maps_dn_to_model_range():
    norm = Normalization(offset=1000.0, scale=10000.0)
    dn = torch.tensor([1000.0, 6000.0, 11000.0])
    assert torch.equal(norm.normalize(dn), torch.tensor([0.0, 0.5, 1.0]))
    assert torch.equal(norm.denormalize(norm.normalize(dn)), dn)
    with pytest.raises(ConfigError, match=r"scale > 0"):
        Normalization(scale=0.0)


@pytest.mark.parametrize("via", ["export_half", "save_half"])
def test_half_checkpoint_loads_as_float32_and_stays_close(via, ckpt_path, tmp_path):
    ref = load_generator(ckpt_path)
    dst = tmp_path / "half.pt"
    if via == "export_half":
        export_half(ckpt_path, dst)
    else:
        save_checkpoint(dst, ref, bands=BANDS, normalization=NORM, half=True)
    ckpt = read_checkpoint(dst)
    assert ckpt.dtype == "float16"
    assert all(v.dtype == torch.float16 for v in ckpt.state_dict.values() if v.is_floating_point())
    assert dst.stat().st_size < 0.75 * ckpt_path.stat().st_size
    half = load_generator(dst)
    assert all(p.dtype == torch.float32 for p in half.parameters())
    with torch.no_grad():
        assert torch.allclose(half(_x()), ref(_x()), atol=5e-3, rtol=1e-2)


@pytest.mark.parametrize("bands", [3, ["red", "green", "blue", "nir"], ["blue", "green", "red"]])
def test_wrong_bands_names_both_values(ckpt_path, bands):
    with pytest.raises(CheckpointError, match=r"'blue', 'green', 'red', 'nir'.*requested") as err:
        load_generator(ckpt_path, bands=bands)
    assert repr(bands) in str(err.value)
    assert "adapt_bands" in str(err.value)


def test_right_band_names_are_accepted(ckpt_path):
    assert load_generator(ckpt_path, bands=BANDS).bands == 4


def test_wrong_scale(ckpt_path):
    with pytest.raises(CheckpointError, match=r"upscales x2, but scale=4 .*scale to 2"):
        load_generator(ckpt_path, scale=4)


def test_missing_file_says_how_to_get_one(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match=r"does not exist.*s2scale train") as err:
        load_generator(missing)
    assert str(missing) in str(err.value)


def test_garbage_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint"):
        read_checkpoint(bad)


def test_official_file_points_to_importer(tmp_path):
    path = tmp_path / "official.pth"
    torch.save({"params_ema": {"conv_first.weight": torch.zeros(1)}}, path)
    with pytest.raises(
        CheckpointError, match=r"not an s2scale generator checkpoint.*import_basicsr"
    ):
        read_checkpoint(path)


def _tamper(src: Path, dst: Path, **changes) -> Path:
    payload = torch.load(src, weights_only=True)
    for key, value in changes.items():
        if value is None:
            del payload[key]
        else:
            payload[key] = value
    torch.save(payload, dst)
    return dst


def test_unknown_arch(ckpt_path, tmp_path):
    path = _tamper(ckpt_path, tmp_path / "x.pt", arch="edsr")
    with pytest.raises(CheckpointError, match=r"unknown arch 'edsr'.*realesrgan"):
        read_checkpoint(path)


def test_missing_metadata(ckpt_path, tmp_path):
    path = _tamper(ckpt_path, tmp_path / "x.pt", scale=None, normalization=None)
    with pytest.raises(CheckpointError, match=r"missing scale, normalization"):
        read_checkpoint(path)


def test_future_format_version(ckpt_path, tmp_path):
    path = _tamper(ckpt_path, tmp_path / "x.pt", format_version=2)
    with pytest.raises(CheckpointError, match=r"format_version=2"):
        read_checkpoint(path)


def test_state_dict_that_does_not_fit_its_kwargs(ckpt_path, tmp_path):
    path = _tamper(
        ckpt_path, tmp_path / "x.pt", kwargs={"num_feat": 16, "num_block": 1, "num_grow_ch": 4}
    )
    with pytest.raises(
        CheckpointError, match=r"does not fit .*wrong shapes .*body.0.rdb1.conv1.weight"
    ):
        load_generator(path)


def test_bad_kwargs_in_checkpoint(ckpt_path, tmp_path):
    path = _tamper(ckpt_path, tmp_path / "x.pt", kwargs={"num_blocks": 1})
    with pytest.raises(CheckpointError, match=r"cannot be rebuilt.*num_blocks"):
        load_generator(path)


def test_save_rejects_band_count_instead_of_names(tmp_path, tiny_kwargs):
    net = build_generator("srvgg", bands=4, **tiny_kwargs["srvgg"])
    with pytest.raises(ConfigError, match=r"band names"):
        save_checkpoint(tmp_path / "x.pt", net, bands=4, normalization=NORM)


def test_save_rejects_model_that_does_not_match(tmp_path, tiny_kwargs):
    net = build_generator("srvgg", bands=4, **tiny_kwargs["srvgg"])
    with pytest.raises(CheckpointError, match=r"does not match arch='srvgg', bands=3"):
        save_checkpoint(tmp_path / "x.pt", net, bands=["red", "green", "blue"], normalization=NORM)
    assert not (tmp_path / "x.pt").exists()


def test_save_rejects_non_plain_summaries(tmp_path, tiny_kwargs):
    net = build_generator("srvgg", bands=4, **tiny_kwargs["srvgg"])
    with pytest.raises(ConfigError, match=r"training\['data'\] is a PosixPath"):
        save_checkpoint(
            tmp_path / "x.pt", net, bands=BANDS, normalization=NORM, training={"data": tmp_path}
        )


def test_save_needs_arch_for_plain_modules(tmp_path):
    with pytest.raises(ConfigError, match=r"needs arch"):
        save_checkpoint(
            tmp_path / "x.pt", torch.nn.Conv2d(4, 4, 3), bands=BANDS, normalization=NORM
        )
