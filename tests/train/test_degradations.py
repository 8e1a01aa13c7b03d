import math

import pytest
import torch

from s2scale.errors import ConfigError, GridMismatchError
from s2scale.train import degradations
from s2scale.train.degradations import TrainingDegradationConfig, degrade_training
from s2scale.train.kernels import bivariate_kernel, filter2d, random_blur_kernel, sinc_kernel


def _hr(bands, seed=0, size=32):
    gen = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d(
        torch.rand(3, bands, size, size, generator=gen), 3, 1, 1
    )
    return 0.05 + 0.4 * smooth


def test_defaults_are_real_esrgan():
    cfg = TrainingDegradationConfig()
    assert cfg.kernel_sizes == tuple(range(7, 22, 2))
    assert cfg.resize_probs == (0.2, 0.7, 0.1) and cfg.resize_probs2 == (0.3, 0.4, 0.3)
    assert cfg.blur_sigma == (0.2, 3.0) and cfg.blur_sigma2 == (0.2, 1.5)
    assert cfg.noise_range == (1.0, 30.0) and cfg.noise_range2 == (1.0, 25.0)
    assert cfg.final_sinc_prob == 0.8 and cfg.second_blur_prob == 0.8


@pytest.mark.parametrize("bands", [3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shapes_determinism_and_range(bands, seed):
    hr = _hr(bands, seed)
    cfg = TrainingDegradationConfig()
    lr = degrade_training(hr, scale=2, config=cfg, generator=torch.Generator().manual_seed(seed))
    again = degrade_training(hr, scale=2, config=cfg, generator=torch.Generator().manual_seed(seed))
    other = degrade_training(
        hr, scale=2, config=cfg, generator=torch.Generator().manual_seed(seed + 10)
    )
    assert lr.shape == (3, bands, 16, 16) and lr.dtype == hr.dtype
    assert torch.equal(lr, again)
    assert not torch.equal(lr, other)
    assert torch.isfinite(lr).all()
    assert lr.min() >= 0 and lr.max() <= 1
    # Degraded, but still the same scene: mean level within a few percent of reflectance.
    assert abs(float(lr.mean() - hr.mean())) < 0.1


def test_scale_4_and_odd_size():
    lr = degrade_training(
        _hr(4, size=48),
        scale=4,
        config=TrainingDegradationConfig(),
        generator=torch.Generator().manual_seed(0),
    )
    assert lr.shape == (3, 4, 12, 12)
    with pytest.raises(GridMismatchError, match="divisible"):
        degrade_training(
            _hr(4, size=33),
            scale=2,
            config=TrainingDegradationConfig(),
            generator=torch.Generator(),
        )


def test_four_band_path_has_no_jpeg(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("JPEG must not be used for 4-band data")

    monkeypatch.setattr(degradations, "_jpeg", fail)
    lr = degrade_training(
        _hr(4),
        scale=2,
        config=TrainingDegradationConfig(),
        generator=torch.Generator().manual_seed(0),
    )
    step = TrainingDegradationConfig().quantization_step
    assert torch.allclose(lr / step, (lr / step).round(), atol=1e-3)  # 12-bit quantised
    with pytest.raises(ConfigError, match="3-band"):
        degrade_training(
            _hr(4),
            scale=2,
            config=TrainingDegradationConfig(compression="jpeg"),
            generator=torch.Generator(),
        )


def test_three_band_path_uses_jpeg(monkeypatch):
    calls = []
    original = degradations._jpeg

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(degradations, "_jpeg", spy)
    lr = degrade_training(
        _hr(3),
        scale=2,
        config=TrainingDegradationConfig(),
        generator=torch.Generator().manual_seed(0),
    )
    assert len(calls) == 2
    assert torch.allclose(lr * 255, (lr * 255).round(), atol=1e-3)  # 8 bit


def test_kernels_sum_to_one_and_are_centred():
    gen = torch.Generator().manual_seed(0)
    cfg = TrainingDegradationConfig()
    for _ in range(30):
        k = random_blur_kernel(
            gen,
            sizes=cfg.kernel_sizes,
            kinds=cfg.kernel_kinds,
            kind_probs=cfg.kernel_probs,
            sigma_range=cfg.blur_sigma,
            betag_range=cfg.betag_range,
            betap_range=cfg.betap_range,
            sinc_prob=0.3,
            pad_to=21,
        )
        assert k.shape == (21, 21)
        assert float(k.sum()) == pytest.approx(1.0)
        assert torch.isfinite(k).all()
    iso = bivariate_kernel(21, 2.0, 2.0, 0.0)
    assert torch.allclose(iso, iso.T) and torch.allclose(iso, iso.flip(0))
    aniso = bivariate_kernel(21, 3.0, 0.5, 0.0)
    assert aniso[10, 14] > aniso[14, 10]  # wider along x than along y
    sinc = sinc_kernel(21, math.pi / 4)
    assert float(sinc.sum()) == pytest.approx(1.0) and sinc[10, 10] == sinc.max()


def test_filter2d_blurs_per_image():
    x = torch.zeros(2, 1, 9, 9)
    x[:, :, 4, 4] = 1
    k = torch.stack([bivariate_kernel(5, 1.0, 1.0, 0.0), torch.zeros(5, 5)])
    k[1, 2, 2] = 1
    out = filter2d(x, k)
    assert torch.allclose(out[0, 0, 2:7, 2:7], k[0].float(), atol=1e-6)
    assert torch.equal(out[1], x[1])


def test_config_validation():
    with pytest.raises(ConfigError, match="odd"):
        TrainingDegradationConfig(kernel_sizes=(8,))
    with pytest.raises(ConfigError, match="noise_range"):
        TrainingDegradationConfig(noise_range=(30.0, 1.0))
