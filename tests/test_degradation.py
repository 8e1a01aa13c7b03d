from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from s2scale.degradation import (
    NOMINAL_MTF,
    SensorDegradationConfig,
    apply_degradation,
    block_mean,
    degrade_nominal,
    degrade_sensor,
    gaussian_kernel_1d,
    kernel_mtf,
    noise_sigma,
    nominal_psf,
    psf_sigma,
    sample_params,
)
from s2scale.errors import ConfigError, GridMismatchError
from s2scale.sentinel2 import BANDS


def _scene(seed: int = 0, shape: tuple[int, ...] = (4, 64, 48)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sigma = (0,) * (len(shape) - 2) + (1.5, 1.5)
    return gaussian_filter(rng.uniform(0.0, 0.4, shape), sigma) + 0.05


@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_nominal_psf_sums_to_one_and_is_symmetric(band, scale):
    k = nominal_psf(band, scale)
    assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(k, k[::-1, :], atol=1e-15)
    np.testing.assert_allclose(k, k[:, ::-1], atol=1e-15)
    np.testing.assert_allclose(k, k.T, atol=1e-15)
    c = k.shape[0] // 2
    assert k[c, c] == k.max()


@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("scale", [2, 4])
def test_nominal_psf_mtf_at_nyquist_matches_stated_value(band, scale):
    nyquist = 1.0 / (2 * scale)  # cycles per HR pixel
    k = nominal_psf(band, scale)
    for axis in (0, 1):
        assert kernel_mtf(k, nyquist, axis=axis) == pytest.approx(NOMINAL_MTF[band], abs=2e-3)
    # a higher frequency has a lower response, DC is 1
    assert kernel_mtf(k, 0.0) == pytest.approx(1.0)
    assert kernel_mtf(k, 2 * nyquist) < NOMINAL_MTF[band]


@pytest.mark.parametrize("mtf", [0.12, 0.2, 0.3, 0.45, 0.55])
def test_psf_sigma_formula(mtf):
    sigma = psf_sigma(mtf, 2)
    assert sigma == pytest.approx(2 / math.pi * math.sqrt(-2 * math.log(mtf)))
    # the sampled kernel adds the aliased copy exp(-2 pi^2 sigma^2 0.75^2): < 0.005 for sigma >= 0.7
    assert kernel_mtf(gaussian_kernel_1d(sigma), 0.25) == pytest.approx(mtf, abs=5e-3)


def test_nominal_sigma_value():
    assert psf_sigma(0.3, 2) == pytest.approx(0.98788, abs=1e-5)


def test_shifted_kernel_has_its_centre_of_mass_at_the_shift():
    k = gaussian_kernel_1d(1.0, shift=0.6)
    r = (k.size - 1) // 2
    assert k.sum() == pytest.approx(1.0)
    assert np.sum(k * (np.arange(k.size) - r)) == pytest.approx(0.6, abs=1e-6)


@pytest.mark.parametrize("scale", [2, 4])
def test_degrade_nominal_shapes(scale):
    hr = _scene(shape=(4, 32, 48))
    assert degrade_nominal(hr, scale).shape == (4, 32 // scale, 48 // scale)
    batch = np.stack([hr, hr * 0.5])
    lr = degrade_nominal(batch, scale)
    assert lr.shape == (2, 4, 32 // scale, 48 // scale)
    np.testing.assert_allclose(lr[1], 0.5 * lr[0], rtol=1e-12)


def test_degrade_nominal_is_blur_then_mean():
    hr = _scene()
    want = np.stack(
        [
            block_mean(gaussian_filter(b, psf_sigma(NOMINAL_MTF[n], 2), mode="reflect"), 2)
            for n, b in zip(BANDS, hr, strict=True)
        ]
    )
    np.testing.assert_allclose(degrade_nominal(hr, 2), want, atol=1e-4)


def test_degrade_nominal_keeps_the_mean():
    hr = _scene(3, (4, 40, 56))
    lr = degrade_nominal(hr, 2)
    np.testing.assert_allclose(lr.mean(axis=(-2, -1)), hr.mean(axis=(-2, -1)), rtol=1e-6)


def test_degrade_keeps_the_mean_without_noise_and_shift():
    cfg = SensorDegradationConfig(
        noise_range=(0.0, 0.0), shift_range_px=(0.0, 0.0), quantize_dn=False
    )
    hr = _scene(4, (3, 4, 32, 32))
    lr = degrade_sensor(hr, 2, cfg, np.random.default_rng(7))
    np.testing.assert_allclose(lr.mean(axis=(-2, -1)), hr.mean(axis=(-2, -1)), rtol=1e-6)


def test_degrade_with_shift_keeps_the_mean_up_to_edge_effects():
    cfg = SensorDegradationConfig(noise_range=(0.0, 0.0), quantize_dn=False)
    hr = _scene(4, (4, 64, 64))
    lr = degrade_sensor(hr, 2, cfg, np.random.default_rng(1))
    np.testing.assert_allclose(lr.mean(axis=(-2, -1)), hr.mean(axis=(-2, -1)), rtol=2e-3)


def test_misregistration_moves_the_content():
    # a ramp shifted by d LR px reads ramp(x + d * scale) at every interior pixel
    x = np.arange(64, dtype=np.float64)
    hr = np.broadcast_to(0.1 + 0.001 * x, (4, 64, 64)).copy()
    params = sample_params(SensorDegradationConfig.nominal(), np.random.default_rng(0))
    shifted = type(params)(**{**params.__dict__, "shift_x_px": (0.25, 0.0, -0.25, 0.1)})
    base = apply_degradation(hr, params, 2)
    moved = apply_degradation(hr, shifted, 2)
    inner = (slice(None), slice(8, -8), slice(8, -8))
    diff = (moved - base)[inner] / 0.001  # in HR pixels
    np.testing.assert_allclose(diff[0], 0.5, atol=1e-6)
    np.testing.assert_allclose(diff[1], 0.0, atol=1e-6)
    np.testing.assert_allclose(diff[2], -0.5, atol=1e-6)
    np.testing.assert_allclose(diff[3], 0.2, atol=1e-6)


def test_nominal_config_reproduces_degrade_nominal():
    hr = _scene(5)
    lr = degrade_sensor(hr, 2, SensorDegradationConfig.nominal(), np.random.default_rng(0))
    np.testing.assert_allclose(lr, degrade_nominal(hr, 2), atol=1e-12)


def test_noise_statistics():
    hr = np.full((4, 256, 256), 0.2)
    cfg = SensorDegradationConfig(
        mtf_range=(0.3, 0.3),
        shift_range_px=(0.0, 0.0),
        noise_range=(1.0, 1.0),
        quantize_dn=False,
    )
    lr, (params,) = degrade_sensor(hr, 2, cfg, np.random.default_rng(11), return_params=True)
    for i, band in enumerate(BANDS):
        noise = lr[i] - 0.2
        assert params.noise_sigma[i] == pytest.approx(noise_sigma(band))
        assert abs(noise.mean()) < 4 * noise_sigma(band) / 128  # 4 standard errors
        assert noise.std() == pytest.approx(noise_sigma(band), rel=0.03)
        # white: neighbouring LR pixels are uncorrelated
        corr = np.corrcoef(noise[:, :-1].ravel(), noise[:, 1:].ravel())[0, 1]
        assert abs(corr) < 0.03


def test_requirement_noise_is_tens_of_dn():
    sig = [noise_sigma(b) * 10000 for b in BANDS]
    assert all(15 < s < 30 for s in sig)
    assert sig[3] == max(sig)  # NIR: lowest radiance at L_ref relative to E0


def test_noise_range_scales_the_draw():
    cfg = SensorDegradationConfig(noise_range=(0.2, 0.4))
    for seed in range(20):
        p = sample_params(cfg, np.random.default_rng(seed))
        ratios = [s / noise_sigma(b) for s, b in zip(p.noise_sigma, BANDS, strict=True)]
        assert 0.2 <= ratios[0] <= 0.4
        np.testing.assert_allclose(ratios, ratios[0])  # one factor per image


def test_quantize_dn_rounds_to_whole_dn():
    hr = _scene(6)
    lr = degrade_sensor(hr, 2, SensorDegradationConfig(), np.random.default_rng(0))
    np.testing.assert_allclose(lr * 10000, np.round(lr * 10000), atol=1e-6)


def test_reproducible_with_a_seed():
    hr = _scene(8, (2, 4, 32, 32))
    cfg = SensorDegradationConfig()
    a, pa = degrade_sensor(hr, 2, cfg, np.random.default_rng(42), return_params=True)
    b, pb = degrade_sensor(hr, 2, cfg, np.random.default_rng(42), return_params=True)
    c = degrade_sensor(hr, 2, cfg, np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert pa == pb
    assert not np.array_equal(a, c)
    assert pa[0] != pa[1]  # one draw per image


def test_draws_stay_in_their_ranges():
    cfg = SensorDegradationConfig(
        mtf_range=(0.2, 0.4), shift_range_px=(0.1, 0.3), anisotropic=False
    )
    for seed in range(50):
        p = sample_params(cfg, np.random.default_rng(seed))
        assert all(0.2 <= m <= 0.4 for m in p.mtf_y)
        assert p.mtf_x == p.mtf_y
        lengths = np.hypot(p.shift_y_px, p.shift_x_px)
        assert np.all((lengths >= 0.1 - 1e-12) & (lengths <= 0.3 + 1e-12))
    assert sorted(p.as_dict()) == sorted(p.__dict__)


def test_errors_name_the_value_and_fix():
    with pytest.raises(ConfigError, match="'swir'"):
        nominal_psf("swir")
    with pytest.raises(ConfigError, match="scale=0"):
        nominal_psf("red", 0)
    with pytest.raises(GridMismatchError, match="crop the image to 32x30"):
        degrade_nominal(np.zeros((4, 33, 31)), 2)
    with pytest.raises(GridMismatchError, match="3 bands"):
        degrade_nominal(np.zeros((3, 8, 8)), 2)
    with pytest.raises(GridMismatchError, match=r"\(band, y, x\)"):
        degrade_nominal(np.zeros((8, 8)), 2)
    with pytest.raises(ConfigError, match="mtf_range"):
        SensorDegradationConfig(mtf_range=(0.0, 0.5))
    with pytest.raises(ConfigError, match="low <= high"):
        SensorDegradationConfig(noise_range=(1.0, 0.5))
    with pytest.raises(ConfigError, match="rng"):
        p = sample_params(SensorDegradationConfig(noise_range=(1.0, 1.0)), np.random.default_rng(0))
        apply_degradation(np.zeros((4, 8, 8)), p, 2)


def test_other_band_orders():
    hr = _scene(9, (2, 16, 16))
    lr = degrade_nominal(hr, 2, bands=("nir", "red"))
    assert lr.shape == (2, 8, 8)
