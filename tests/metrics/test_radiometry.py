import math

import numpy as np
import pytest

from s2scale import metrics
from s2scale.errors import GridMismatchError


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
