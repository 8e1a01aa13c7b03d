import math

import pytest
import torch
from torch import nn

from s2scale.errors import CheckpointError, ConfigError
from s2scale.train.losses import (
    EMA,
    VGG19_LAYERS,
    PerceptualLoss,
    discriminator_gan_loss,
    generator_gan_loss,
    pixel_loss,
)

LOG2 = math.log(2.0)


def test_pixel_loss_is_l1():
    assert float(pixel_loss(torch.zeros(1, 4, 2, 2), torch.full((1, 4, 2, 2), 0.5))) == 0.5


def test_vgg19_layer_names():
    assert len(VGG19_LAYERS) == 37
    assert VGG19_LAYERS[34] == "conv5_4" and VGG19_LAYERS[16] == "conv3_4"


def test_perceptual_missing_weights_error_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(CheckpointError, match=r"vgg19-dcbb9e9d\.pth") as info:
        PerceptualLoss()
    message = str(info.value)
    assert "weights=" in message and "hub cache" in message and "random_backbone" in message


def test_perceptual_unknown_layer():
    with pytest.raises(ConfigError, match="conv9_9"):
        PerceptualLoss({"conv9_9": 1.0}, random_backbone=True)


def test_perceptual_random_backbone_gradients_flow(caplog):
    with caplog.at_level("WARNING"):
        loss_fn = PerceptualLoss({"conv1_2": 0.1, "conv2_2": 1.0}, random_backbone=True)
    assert loss_fn.random_backbone and "random" in loss_fn.backbone
    assert "RANDOM" in caplog.text
    gen = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 4, 16, 16, generator=gen)
    sr = (hr + 0.1 * torch.randn(2, 4, 16, 16, generator=gen)).requires_grad_(True)
    loss = loss_fn(sr, hr)
    assert loss.ndim == 0 and float(loss.detach()) > 0
    loss.backward()
    assert sr.grad is not None and sr.grad[:, :3].abs().sum() > 0
    assert sr.grad[:, 3].abs().sum() == 0  # NIR does not enter the RGB VGG
    assert all(p.grad is None for p in loss_fn.parameters())
    assert float(loss_fn(hr, hr)) == 0.0


def test_perceptual_loads_weights_from_path(tmp_path):
    from torchvision.models import vgg11

    # A wrong file (VGG11) must fail with a CheckpointError, not a bare RuntimeError.
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(vgg11(weights=None).features.state_dict(), path)
    with pytest.raises(CheckpointError, match="cannot load VGG19"):
        PerceptualLoss(weights=path)


def test_vanilla_gan_losses():
    zero = torch.zeros(4, 1)
    assert float(generator_gan_loss("vanilla", zero, zero)) == pytest.approx(LOG2)
    assert float(discriminator_gan_loss("vanilla", zero, zero)) == pytest.approx(2 * LOG2)
    big = torch.full((4, 1, 8, 8), 30.0)  # per-pixel logits (U-Net discriminator)
    # The generator is happy when D calls its output real, the discriminator when it does not.
    assert float(generator_gan_loss("vanilla", big, big)) < 1e-6
    assert float(generator_gan_loss("vanilla", big, -big)) == pytest.approx(30.0, rel=1e-3)
    assert float(discriminator_gan_loss("vanilla", big, -big)) < 1e-6


def test_relativistic_gan_losses():
    real, fake = torch.tensor([[2.0], [4.0]]), torch.tensor([[0.0], [2.0]])
    # D(real) - mean D(fake) = [1, 3]; D(fake) - mean D(real) = [-3, -1]
    sp = torch.nn.functional.softplus
    d_expected = (sp(-torch.tensor([1.0, 3.0])).mean() + sp(torch.tensor([-3.0, -1.0])).mean()) / 2
    g_expected = (sp(torch.tensor([1.0, 3.0])).mean() + sp(-torch.tensor([-3.0, -1.0])).mean()) / 2
    assert float(discriminator_gan_loss("relativistic", real, fake)) == pytest.approx(
        float(d_expected)
    )
    assert float(generator_gan_loss("relativistic", real, fake)) == pytest.approx(float(g_expected))
    assert float(generator_gan_loss("relativistic", real, fake)) > float(
        discriminator_gan_loss("relativistic", real, fake)
    )
    same = torch.ones(2, 1)
    assert float(generator_gan_loss("relativistic", same, same)) == pytest.approx(LOG2)


def test_relativistic_generator_loss_does_not_reach_real_logits():
    real = torch.zeros(2, 1, requires_grad=True)
    fake = torch.zeros(2, 1, requires_grad=True)
    generator_gan_loss("relativistic", real, fake).backward()
    assert real.grad is None and fake.grad is not None


def test_gan_kind_checked():
    with pytest.raises(ConfigError, match="lsgan"):
        generator_gan_loss("lsgan", torch.zeros(1), torch.zeros(1))  # type: ignore[arg-type]


def test_ema_math():
    net = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    with torch.no_grad():
        net[0].weight.fill_(0.0)
        net[0].bias.fill_(0.0)
    ema = EMA(net, decay=0.999)
    for _ in range(3):
        with torch.no_grad():
            net[0].weight.fill_(1.0)
            net[1].running_mean.fill_(5.0)
        ema.update(net)
    # After n updates towards 1 from 0: 1 - decay**n
    expected = 1 - 0.999**3
    assert torch.allclose(ema.module[0].weight, torch.full((1, 2), expected))
    assert float(ema.module[1].running_mean) == 5.0  # buffers are copied
    assert not any(p.requires_grad for p in ema.module.parameters())
    restored = EMA(net, decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert torch.equal(restored.module[0].weight, ema.module[0].weight)
    with pytest.raises(ConfigError):
        EMA(net, decay=1.0)


def test_perceptual_loads_torchvision_layout(tmp_path):
    from s2scale.train.losses import _vgg19_features

    path = tmp_path / "vgg19-dcbb9e9d.pth"
    state = {f"features.{k}": v for k, v in _vgg19_features().state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(1)  # ignored, as in the full torchvision file
    torch.save(state, path)
    loss_fn = PerceptualLoss(weights=path)
    assert loss_fn.backbone == "imagenet VGG19 (vgg19-dcbb9e9d.pth)"
    assert not loss_fn.random_backbone
    assert len(loss_fn.features) == VGG19_LAYERS.index("conv5_4") + 1  # before relu5_4
