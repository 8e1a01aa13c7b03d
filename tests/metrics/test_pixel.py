import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from s2scale.errors import GridMismatchError
from s2scale.metrics import psnr, psnr_torch, ssim, ssim_torch


def _real_pairs(shared_data):
    """Real reflectance images and a degraded copy: Sentinel-2 (4 bands) and the orthophoto."""
    import rasterio

    with rasterio.open(shared_data / "s2" / "S2_L1C_T33UUU_20170216_B02_B03_B04_B08_10m.tif") as f:
        s2 = f.read(window=((200, 328), (300, 428))).astype(np.float64) / 10000
    with rasterio.open(shared_data / "orthophoto" / "ref-img.tif") as f:
        ortho = f.read(window=((0, 96), (0, 128))).astype(np.float64) / 255
    rng = np.random.default_rng(3)
    return [(a, np.clip(a + rng.normal(0, 0.02, a.shape), 0, 1)) for a in (s2, ortho)]


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
