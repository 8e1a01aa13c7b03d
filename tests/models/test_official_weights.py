"""Official BasicSR / Real-ESRGAN layouts, importing them, and RGB -> RGB+NIR adaptation.

The expected layouts are re-derived here from BasicSR's ``RRDBNet`` and Real-ESRGAN's
``SRVGGNetCompact`` sources (not from s2scale), and a functional re-implementation of BasicSR's
forward pass checks that the s2scale modules compute the same function.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from s2scale.errors import CheckpointError, ConfigError
from s2scale.models import GENERATORS, adapt_bands, build_generator, import_basicsr


def basicsr_rrdbnet_shapes(
    num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32
) -> dict[str, tuple[int, ...]]:
    """Key -> shape of BasicSR's RRDBNet(num_in_ch, num_out_ch, scale, ...)."""
    if scale == 2:
        num_in_ch *= 4
    elif scale == 1:
        num_in_ch *= 16
    shapes = {"conv_first.weight": (num_feat, num_in_ch, 3, 3), "conv_first.bias": (num_feat,)}
    for i in range(num_block):
        for r in (1, 2, 3):
            for c in range(1, 6):
                cin = num_feat + (c - 1) * num_grow_ch
                cout = num_feat if c == 5 else num_grow_ch
                shapes[f"body.{i}.rdb{r}.conv{c}.weight"] = (cout, cin, 3, 3)
                shapes[f"body.{i}.rdb{r}.conv{c}.bias"] = (cout,)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        shapes[f"{name}.weight"] = (num_feat, num_feat, 3, 3)
        shapes[f"{name}.bias"] = (num_feat,)
    shapes["conv_last.weight"] = (num_out_ch, num_feat, 3, 3)
    shapes["conv_last.bias"] = (num_out_ch,)
    return shapes


def srvgg_shapes(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4) -> dict:
    """Key -> shape of Real-ESRGAN's SRVGGNetCompact(..., act_type='prelu')."""
    shapes = {"body.0.weight": (num_feat, num_in_ch, 3, 3), "body.0.bias": (num_feat,)}
    shapes["body.1.weight"] = (num_feat,)
    for i in range(num_conv):
        shapes[f"body.{2 * i + 2}.weight"] = (num_feat, num_feat, 3, 3)
        shapes[f"body.{2 * i + 2}.bias"] = (num_feat,)
        shapes[f"body.{2 * i + 3}.weight"] = (num_feat,)
    last = 2 * num_conv + 2
    shapes[f"body.{last}.weight"] = (num_out_ch * upscale**2, num_feat, 3, 3)
    shapes[f"body.{last}.bias"] = (num_out_ch * upscale**2,)
    return shapes


def _random_state(shapes: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: 0.05 * torch.randn(shape, generator=gen) for k, shape in shapes.items()}


def _layout(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_realesrgan_x2plus_layout_is_identical():
    expected = basicsr_rrdbnet_shapes(scale=2)
    assert len(expected) == 702
    assert expected["conv_first.weight"] == (64, 12, 3, 3)
    assert expected["body.22.rdb3.conv5.weight"] == (64, 192, 3, 3)
    assert expected["conv_last.weight"] == (3, 64, 3, 3)
    assert sum(torch.Size(s).numel() for s in expected.values()) == 16_703_171
    with torch.device("meta"):
        net = build_generator("realesrgan", bands=3, scale=2)
    assert _layout(net) == expected
    assert list(net.state_dict()) == list(expected)  # same order too


def test_x4_layouts_are_identical():
    expected = basicsr_rrdbnet_shapes(scale=4)  # RealESRGAN_x4plus and BasicSR's ESRGAN x4
    assert sum(torch.Size(s).numel() for s in expected.values()) == 16_697_987
    with torch.device("meta"):
        assert _layout(build_generator("realesrgan", bands=3, scale=4)) == expected
        assert _layout(build_generator("esrgan", bands=3, scale=4)) == expected
        vgg = build_generator("srvgg", bands=3, scale=4, num_conv=32)  # realesr-general-x4v3
    expected_vgg = srvgg_shapes(num_conv=32)
    assert len(expected_vgg) == 101
    assert expected_vgg["body.66.weight"] == (48, 64, 3, 3)
    assert _layout(vgg) == expected_vgg


def test_import_official_size_realesrgan_x2plus(tmp_path):
    state = _random_state(basicsr_rrdbnet_shapes(scale=2))
    path = tmp_path / "RealESRGAN_x2plus.pth"
    torch.save({"params_ema": state}, path)
    net = import_basicsr(path, "realesrgan")
    assert (net.arch, net.bands, net.scale) == ("realesrgan", 3, 2)
    assert net.build_kwargs == {"num_feat": 64, "num_block": 23, "num_grow_ch": 32}
    got = net.state_dict()
    for key in ("conv_first.weight", "body.22.rdb3.conv5.bias", "conv_last.weight"):
        assert torch.equal(got[key], state[key])


@pytest.mark.parametrize("wrap", ["params", "raw"])
def test_import_esrgan_x4_and_fallbacks(wrap, tmp_path):
    state = _random_state(basicsr_rrdbnet_shapes(scale=4, num_feat=8, num_block=2, num_grow_ch=4))
    path = tmp_path / "esrgan.pth"
    torch.save({"params": state} if wrap == "params" else state, path)
    net = import_basicsr(path, "esrgan", scale=4)
    assert net.scale == 4
    assert net.build_kwargs == {"num_feat": 8, "num_block": 2, "num_grow_ch": 4}


def _basicsr_pixel_unshuffle(x: torch.Tensor, scale: int) -> torch.Tensor:
    # BasicSR's arch_util.pixel_unshuffle, transcribed
    b, c, hh, hw = x.size()
    h, w = hh // scale, hw // scale
    x_view = x.view(b, c, h, scale, w, scale)
    return x_view.permute(0, 1, 3, 5, 2, 4).reshape(b, c * scale**2, h, w)


def _basicsr_rrdbnet_forward(sd: dict, x: torch.Tensor, scale: int, num_block: int):
    def conv(name, t):
        return F.conv2d(t, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=1)

    def lrelu(t):
        return F.leaky_relu(t, 0.2)

    def rdb(prefix, t):
        feats = [t]
        for c in range(1, 5):
            feats.append(lrelu(conv(f"{prefix}.conv{c}", torch.cat(feats, 1))))
        return conv(f"{prefix}.conv5", torch.cat(feats, 1)) * 0.2 + t

    feat = _basicsr_pixel_unshuffle(x, {2: 2, 1: 4}[scale]) if scale in (1, 2) else x
    feat = conv("conv_first", feat)
    body = feat
    for i in range(num_block):
        out = body
        for r in (1, 2, 3):
            out = rdb(f"body.{i}.rdb{r}", out)
        body = out * 0.2 + body
    feat = feat + conv("conv_body", body)
    feat = lrelu(conv("conv_up1", F.interpolate(feat, scale_factor=2, mode="nearest")))
    feat = lrelu(conv("conv_up2", F.interpolate(feat, scale_factor=2, mode="nearest")))
    return conv("conv_last", lrelu(conv("conv_hr", feat)))


@pytest.mark.parametrize("scale", [2, 4])
def test_realesrgan_forward_matches_basicsr(scale):
    shapes = basicsr_rrdbnet_shapes(4, 4, scale=scale, num_feat=8, num_block=2, num_grow_ch=4)
    state = _random_state(shapes, seed=scale)
    net = import_basicsr(state, "realesrgan", bands=4, source_bands=4).eval()
    x = torch.rand(2, 4, 8, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(net(x), _basicsr_rrdbnet_forward(state, x, scale, 2))


def test_srvgg_forward_matches_official():
    state = _random_state(srvgg_shapes(num_feat=8, num_conv=2, upscale=4))
    net = import_basicsr(state, "srvgg").eval()
    x = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    out = x
    for i in range(0, 6, 2):
        out = F.conv2d(out, state[f"body.{i}.weight"], state[f"body.{i}.bias"], padding=1)
        out = F.prelu(out, state[f"body.{i + 1}.weight"])
    out = F.conv2d(out, state["body.6.weight"], state["body.6.bias"], padding=1)
    ref = F.pixel_shuffle(out, 4) + F.interpolate(x, scale_factor=4.0, mode="nearest")
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref)


def test_import_errors(tmp_path):
    with pytest.raises(CheckpointError, match=r"do not exist.*never downloads"):
        import_basicsr(tmp_path / "RealESRGAN_x2plus.pth")
    state = _random_state(basicsr_rrdbnet_shapes(scale=2, num_feat=8, num_block=1, num_grow_ch=4))
    with pytest.raises(CheckpointError, match=r"upscale x2, but scale=4"):
        import_basicsr(state, "realesrgan", scale=4)
    with pytest.raises(CheckpointError, match=r"pixel-unshuffle .*arch='realesrgan'"):
        import_basicsr(state, "esrgan")
    with pytest.raises(CheckpointError, match=r"'conv_first.weight' is missing"):
        import_basicsr({"body.0.weight": torch.zeros(8, 3, 3, 3)}, "realesrgan")
    del state["conv_hr.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys 1: conv_hr.bias"):
        import_basicsr(state, "realesrgan")
    with pytest.raises(ConfigError, match=r"cannot import arch 'srcnn'"):
        import_basicsr(state, "srcnn")


@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize("scale", [2, 4])
def test_adapt_bands_keeps_rgb_outputs_when_nir_is_rgb_mean(name, scale, tiny_kwargs):
    rgb = build_generator(name, bands=3, scale=scale, seed=0, **tiny_kwargs[name])
    if name == "srresnet":
        rgb.train()(torch.rand(2, 3, 8, 8))  # non-trivial batch-norm statistics
    rgb = rgb.double().eval()
    state = adapt_bands(rgb.state_dict(), name, from_bands=3, to_bands=4)
    rgbn = build_generator(name, bands=4, scale=scale, **tiny_kwargs[name]).double().eval()
    rgbn.load_state_dict(state, strict=True)

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x4 = torch.cat([x, x.mean(1, keepdim=True)], 1)
    with torch.no_grad():
        ref, out = rgb(x), rgbn(x4)
    torch.testing.assert_close(out[:, :3], ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out[:, 3], ref.mean(1), rtol=1e-9, atol=1e-9)
    # a real NIR band changes the outputs: the new input weights are not zero
    with torch.no_grad():
        other = rgbn(torch.cat([x, torch.ones_like(x[:, :1])], 1))
    assert not torch.allclose(other[:, :3], ref)


def test_adapt_bands_does_not_modify_input_and_checks_counts(tiny_kwargs):
    rgb = build_generator("srvgg", bands=3, scale=4, **tiny_kwargs["srvgg"])
    state = rgb.state_dict()
    before = {k: v.clone() for k, v in state.items()}
    adapted = adapt_bands(state, "srvgg", 3, 5)
    assert adapted["body.0.weight"].shape == (8, 5, 3, 3)
    assert adapted["body.4.weight"].shape == (5 * 16, 8, 3, 3)
    assert all(torch.equal(before[k], state[k]) for k in state)
    with pytest.raises(ConfigError, match=r"to_bands > from_bands"):
        adapt_bands(state, "srvgg", 3, 3)
    with pytest.raises(CheckpointError, match=r"not a multiple of 2 bands"):
        adapt_bands(state, "srvgg", 2, 4)


def test_import_with_nir_adaptation(tiny_kwargs):
    state = _random_state(basicsr_rrdbnet_shapes(scale=2, num_feat=8, num_block=1, num_grow_ch=4))
    net = import_basicsr({"params_ema": state}, "realesrgan", bands=4)
    assert (net.bands, net.scale) == (4, 2)
    assert net.conv_first.weight.shape == (8, 16, 3, 3)
    assert net.conv_last.weight.shape == (4, 8, 3, 3)
