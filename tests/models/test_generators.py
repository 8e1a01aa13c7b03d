"""Generators: shapes, gradients, autocast, determinism and registry validation."""

from __future__ import annotations

import pytest
import torch

from s2scale.errors import ConfigError
from s2scale.models import GENERATORS, SCALES, build_generator

NAMES = sorted(GENERATORS)


def _input(bands: int, size: int = 8, batch: int = 2, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, bands, size, size, generator=gen)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bands", [3, 4])
@pytest.mark.parametrize("scale", [2, 4])
def test_output_shape_and_finite(name, bands, scale, tiny_kwargs, device):
    net = build_generator(name, bands=bands, scale=scale, seed=0, **tiny_kwargs[name])
    net = net.to(device).eval()
    assert (net.arch, net.bands, net.scale) == (name, bands, scale)
    x = _input(bands, size=8).to(device)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, bands, 8 * scale, 8 * scale)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_non_square_input(name, tiny_kwargs, device):
    net = build_generator(name, bands=4, scale=2, seed=0, **tiny_kwargs[name]).to(device).eval()
    with torch.no_grad():
        y = net(torch.rand(1, 4, 8, 12, device=device))
    assert y.shape == (1, 4, 16, 24)


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_gradient(name, tiny_kwargs, device):
    net = build_generator(name, bands=4, scale=2, seed=0, **tiny_kwargs[name]).to(device).train()
    y = net(_input(4).to(device))
    y.square().mean().backward()
    for pname, param in net.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname
        assert param.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_on_cpu(name, tiny_kwargs):
    net = build_generator(name, bands=4, scale=2, seed=0, **tiny_kwargs[name]).eval()
    x = _input(4)
    with torch.no_grad():
        ref = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(x)
    assert y.shape == ref.shape
    assert y.dtype in (torch.bfloat16, torch.float32)
    assert torch.isfinite(y.float()).all()
    tol = 0.05 * (1 + ref.abs().max())
    assert (y.float() - ref).abs().max() < tol


@pytest.mark.parametrize("name", NAMES)
def test_seeded_build_is_deterministic(name, tiny_kwargs):
    state = torch.get_rng_state()
    a = build_generator(name, bands=4, seed=3, **tiny_kwargs[name]).eval()
    b = build_generator(name, bands=4, seed=3, **tiny_kwargs[name]).eval()
    c = build_generator(name, bands=4, seed=4, **tiny_kwargs[name]).eval()
    assert torch.equal(torch.get_rng_state(), state), "seeded builds must not touch the global RNG"
    for (key, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), key
    assert any(
        not torch.equal(pa, pc)
        for pa, pc in zip(a.state_dict().values(), c.state_dict().values(), strict=True)
        if pa.is_floating_point() and pa.numel() > 1
    )
    x = _input(4)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        assert torch.equal(a(x), a(x))


def test_official_default_sizes():
    net = build_generator("realesrgan", bands=3, scale=2)
    assert net.conv_first.weight.shape == (64, 12, 3, 3)
    assert len(net.body) == 23
    assert build_generator("srresnet", bands=4).body.__len__() == 16
    srcnn = build_generator("srcnn", bands=4)
    assert srcnn.conv_first.kernel_size == (9, 9)
    assert srcnn.conv_map.kernel_size == (5, 5)
    assert srcnn.conv_last.kernel_size == (5, 5)
    assert (srcnn.conv_first.out_channels, srcnn.conv_map.out_channels) == (64, 32)


def test_esrgan_layout_runs_body_at_lr_resolution():
    esr = build_generator("esrgan", bands=4, scale=2, num_feat=8, num_block=1, num_grow_ch=4)
    real = build_generator("realesrgan", bands=4, scale=2, num_feat=8, num_block=1, num_grow_ch=4)
    assert esr.conv_first.in_channels == 4 and not hasattr(esr, "conv_up2")
    assert real.conv_first.in_channels == 16 and hasattr(real, "conv_up2")
    x4 = build_generator("esrgan", bands=3, scale=4, num_feat=8, num_block=1, num_grow_ch=4)
    assert hasattr(x4, "conv_up2")


def test_unknown_name_lists_known_names():
    with pytest.raises(ConfigError, match=r"unknown generator 'edsr'.*esrgan.*realesrgan.*srcnn"):
        build_generator("edsr")


def test_unknown_kwarg_is_named_with_allowed_ones():
    with pytest.raises(ConfigError, match=r"unknown kwarg 'num_blocks'.*num_block"):
        build_generator("realesrgan", num_blocks=2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_feat": "64"}, "num_feat='64' must be of type int"),
        ({"num_feat": 0}, "num_feat=0 must be >= 1"),
        ({"num_feat": True}, "must be of type int"),
        ({"act_type": "gelu"}, "act_type='gelu' is not one of"),
        ({"in_bands": 4}, "bands="),
    ],
)
def test_bad_kwarg_values(kwargs, match):
    name = "srvgg" if "act_type" in kwargs else "srresnet"
    with pytest.raises(ConfigError, match=match):
        build_generator(name, **kwargs)


@pytest.mark.parametrize("bands", [0, -1, 2.0, True, "4"])
def test_bad_band_count(bands):
    with pytest.raises(ConfigError, match=r"bands must be a positive integer"):
        build_generator("srcnn", bands=bands)


@pytest.mark.parametrize("scale", [1, 3, 8, 2.0])
def test_bad_scale(scale):
    assert scale not in SCALES or isinstance(scale, float)
    with pytest.raises(ConfigError, match=r"scale must be one of"):
        build_generator("srvgg", scale=scale)


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        build_generator("nope")
