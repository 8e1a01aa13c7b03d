import math

import numpy as np
import pytest
import torch

from s2scale.errors import CheckpointError, GridMismatchError
from s2scale.metrics import lpips_score, psnr, psnr_torch, ssim, ssim_torch


@pytest.fixture
def image():
    return np.random.default_rng(0).random((4, 32, 32))


def test_psnr_identical_is_inf(image):
    assert psnr(image, image, data_range=1.0) == math.inf


def test_psnr_known_mse(image):
    # MSE = 0.05**2 = 0.0025 -> 10 log10(1 / 0.0025) = 26.0206 dB
    assert psnr(image, image + 0.05, data_range=1.0) == pytest.approx(26.0206, abs=1e-4)
    # 10000-DN data: MSE = 100**2 -> 20 dB
    dn = (image * 10000).astype(np.uint16)
    assert psnr(dn, dn.astype(np.float64) + 1000, data_range=10000) == pytest.approx(20.0)


def test_psnr_torch_matches_numpy(image):
    a = torch.from_numpy(image)[None].float()
    b = a + 0.05
    assert float(psnr_torch(a, b, 1.0)[0]) == pytest.approx(26.0206, abs=1e-3)
    assert torch.isinf(psnr_torch(a, a, 1.0)).all()


def test_ssim_identical_and_degraded(image):
    assert ssim(image, image, data_range=1.0) == 1.0
    noisy = image + np.random.default_rng(1).normal(0, 0.1, image.shape)
    assert 0 < ssim(image, noisy, data_range=1.0) < ssim(image, (image + noisy) / 2, 1.0) < 1
    assert ssim(image[0], image[0], data_range=1.0) == 1.0


def test_ssim_torch_identical_and_close_to_skimage(image):
    a = torch.from_numpy(image)[None].float()
    b = a * 0.9
    assert torch.allclose(ssim_torch(a, a, 1.0), torch.ones(1))
    assert float(ssim_torch(a, b, 1.0)[0]) == pytest.approx(ssim(image, 0.9 * image, 1.0), abs=0.02)


def test_shape_mismatch_is_clear(image):
    with pytest.raises(GridMismatchError, match="shapes differ"):
        psnr(image, image[:, :16], data_range=1.0)


def test_lpips_missing_weights_error_is_clear(image, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(CheckpointError, match=r"alexnet-owt-7be5be79\.pth.*weights=") as info:
        lpips_score(image, image)
    assert "random_backbone=True" in str(info.value)
    with pytest.raises(CheckpointError, match=r"vgg16-397923af\.pth"):
        lpips_score(image, image, net="vgg", weights=tmp_path / "missing.pth")


def test_lpips_random_backbone_is_labelled(image):
    other = np.clip(image + 0.2, 0, 1)
    result = lpips_score(image, other, random_backbone=True)
    assert result.backbone == "random (pnet_rand=True)"
    assert result.net == "alex"
    assert math.isfinite(result.value) and result.value > 0
    assert lpips_score(image, image, random_backbone=True).value == pytest.approx(0.0, abs=1e-6)


def test_lpips_loads_backbone_from_path(image, tmp_path):
    from torchvision.models import alexnet

    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(alexnet(weights=None).state_dict(), path)  # stands in for the ImageNet file
    result = lpips_score(image[None], np.clip(image[None] + 0.1, 0, 1), weights=path)
    assert result.backbone == "imagenet (alexnet-owt-7be5be79.pth)"
    assert math.isfinite(result.value)


def test_lpips_needs_three_bands(image):
    with pytest.raises(GridMismatchError, match="C>=3"):
        lpips_score(image[:2], image[:2], random_backbone=True)
