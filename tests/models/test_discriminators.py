"""Discriminators: shapes on 192 px HR patches, gradients, BasicSR key layouts."""

from __future__ import annotations

import pytest
import torch

from s2scale.errors import ConfigError
from s2scale.models import DISCRIMINATORS, build_discriminator


def _hr(bands: int = 4, size: int = 192, batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, bands, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("name", "shape"), [("vgg", (2, 1)), ("unet", (2, 1, 192, 192))])
@pytest.mark.parametrize("bands", [3, 4])
def test_output_shape_and_gradients(name, shape, bands, device):
    net = build_discriminator(name, bands=bands, seed=0, num_feat=4).to(device).train()
    assert (net.arch, net.bands) == (name, bands)
    out = net(_hr(bands).to(device))
    assert out.shape == shape
    assert torch.isfinite(out).all()
    out.mean().backward()
    for pname, param in net.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname


@pytest.mark.parametrize(
    ("size", "stages", "linear_in", "last"),
    [
        (128, 5, 32 * 4 * 4, "conv4_1"),
        (192, 6, 32 * 3 * 3, "conv5_1"),
        (256, 6, 32 * 4 * 4, "conv5_1"),
    ],
)
def test_vgg_layout_matches_basicsr(size, stages, linear_in, last):
    net = build_discriminator("vgg", bands=3, num_feat=4, input_size=size)
    keys = net.state_dict().keys()
    assert net.num_stages == stages
    assert net.linear1.in_features == linear_in
    assert f"{last}.weight" in keys and f"conv{stages}_0.weight" not in keys
    assert {"conv0_0.bias", "bn0_1.running_mean", "linear2.weight"} <= keys
    with torch.no_grad():
        assert net.eval()(_hr(3, size, batch=1)).shape == (1, 1)


def test_vgg_rejects_other_sizes():
    with pytest.raises(ConfigError, match=r"divisible by 32"):
        build_discriminator("vgg", input_size=100)
    net = build_discriminator("vgg", bands=4, num_feat=4, input_size=128)
    with pytest.raises(ValueError, match=r"built for 128 px patches.*input_size=192"):
        net(_hr(4, 192, batch=1))


def test_unet_has_realesrgan_spectral_norm_keys():
    net = build_discriminator("unet", bands=3)
    keys = list(net.state_dict())
    assert len(keys) == 28
    assert keys[:5] == [
        "conv0.weight",
        "conv0.bias",
        "conv1.weight_orig",
        "conv1.weight_u",
        "conv1.weight_v",
    ]
    assert keys[-2:] == ["conv9.weight", "conv9.bias"]
    assert net.state_dict()["conv3.weight_orig"].shape == (512, 256, 4, 4)


def test_unet_without_skips_and_bad_sizes():
    net = build_discriminator("unet", bands=4, num_feat=4, skip_connection=False).eval()
    with torch.no_grad():
        assert net(_hr(4, 64, batch=1)).shape == (1, 1, 64, 64)
    with pytest.raises(ValueError, match=r"divisible by 8"):
        net(_hr(4, 60, batch=1))


def test_registry_errors():
    assert sorted(DISCRIMINATORS) == ["unet", "vgg"]
    with pytest.raises(
        ConfigError, match=r"unknown discriminator 'patchgan'; known discriminators: unet, vgg"
    ):
        build_discriminator("patchgan")
    with pytest.raises(ConfigError, match=r"unknown kwarg 'input_size'.*num_feat, skip_connection"):
        build_discriminator("unet", input_size=192)
