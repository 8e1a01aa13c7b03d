"""score_image: hand-computed values, and the same numbers from every caller."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from s2scale.degradation import degrade_nominal
from s2scale.errors import ConfigError, GridMismatchError
from s2scale.metrics import (
    RGB_STRETCH,
    SCORE_KEYS,
    psnr_torch,
    score_image,
    ssim,
    ssim_torch,
    stlpips_metric,
)
from s2scale.sentinel2 import to_dn


def _textured(seed=0, size=64, bands=4):
    """Blocky reflectance 0.05-0.25 with sharp edges and a little noise."""
    rng = np.random.default_rng(seed)
    blocks = np.kron(rng.random((bands, size // 8, size // 8)), np.ones((8, 8)))
    return 0.05 + 0.2 * np.clip(blocks + 0.05 * rng.normal(size=blocks.shape), 0, 1)


@pytest.fixture(scope="module")
def stlpips():
    return stlpips_metric("alex")


# ------------------------------------------------------------------------ hand-computed values
def test_constant_offset_has_the_known_psnr():
    hr = _textured()
    # MSE = 0.01**2 -> 10 log10(1 / 1e-4) = 40 dB
    assert score_image(hr + 0.01, hr)["psnr_db"] == pytest.approx(40.0, abs=1e-9)
    # the offset in one band of four: MSE = 1e-4 / 4 -> 46.0206 dB
    one = hr.copy()
    one[2] += 0.01
    assert score_image(one, hr)["psnr_db"] == pytest.approx(10 * math.log10(4e4), abs=1e-9)


def test_gain_of_one_percent_is_a_one_percent_bias():
    hr = _textured(1)
    gain = np.array([1.01, 1.0, 1.0, 0.99])[:, None, None]
    s = score_image(hr * gain, hr)
    assert s["bias_pct"] == pytest.approx([1.0, 0.0, 0.0, -1.0], abs=1e-9)
    assert s["bias_max_abs_pct"] == pytest.approx(1.0, abs=1e-9)
    assert s["spectral_angle_deg"] > 0.1  # the gain differs between bands
    uniform = score_image(hr * 1.02, hr)
    assert uniform["spectral_angle_deg"] == pytest.approx(0.0, abs=1e-5)


def test_no_data_pixels_are_left_out():
    hr = _textured(2)
    sr = hr.copy()
    sr[:, 20:40, 10:30] = 0  # no data in the output
    s = score_image(sr, hr, border_px=0)
    assert s["psnr_db"] == math.inf and s["ssim"] == pytest.approx(1.0)
    assert s["bias_max_abs_pct"] == 0.0 and s["spectral_angle_deg"] == pytest.approx(0, abs=1e-6)
    # no data in one band of the reference only: the pixel is left out in every band
    ref = hr.copy()
    ref[3, 50:, 50:] = 0
    damaged = hr.copy()
    damaged[:, 50:, 50:] += 0.3
    assert score_image(damaged, ref, border_px=0)["psnr_db"] == math.inf
    # the caller's mask leaves out pixels too
    valid = np.ones(hr.shape[1:], bool)
    valid[50:, 50:] = False
    assert score_image(damaged, hr, border_px=0, valid=valid)["psnr_db"] == math.inf
    assert score_image(damaged, hr, border_px=0)["psnr_db"] < 30


def test_no_data_in_the_input_is_left_out_of_consistency():
    hr = _textured(3)
    lr = degrade_nominal(hr, 2)
    lr[:, 12:18, 12:18] = 0
    sr = hr.copy()
    sr[:, 24:36, 24:36] = 0  # the output is empty where the input is
    s = score_image(sr, None, lr)
    assert s["consistency_psnr_db"] == math.inf and s["consistency_mae"] == 0.0
    # scored as data instead, the hole would be a large error
    filled = score_image(hr, None, np.where(lr == 0, 0.001, lr))
    assert filled["consistency_psnr_db"] < 40


def test_border_is_cropped():
    hr = _textured(4)
    sr = hr.copy()
    sr[:, :8] += 0.5  # errors only in the top 8 rows
    assert score_image(sr, hr, border_px=8)["psnr_db"] == math.inf
    assert score_image(sr, hr, border_px=8)["bias_max_abs_pct"] == 0
    assert score_image(sr, hr, border_px=6)["psnr_db"] < 30
    assert score_image(sr, hr, border_px=0)["bias_max_abs_pct"] > 10


def test_sr_is_clipped_at_zero_for_psnr_only():
    hr = np.full((4, 32, 32), 0.02)
    sr = hr.copy()
    sr[:, :16] = -0.03  # negative output on half the image
    s = score_image(sr, hr, border_px=0)
    # clipped: the error is 0.02 on half the pixels -> MSE = 2e-4
    assert s["psnr_db"] == pytest.approx(10 * math.log10(1 / 2e-4), abs=1e-9)
    # the bias sees the value as it is: mean 0.5 * (-0.03 + 0.02) = -0.005 -> -125 %
    assert s["bias_pct"] == pytest.approx([-125.0] * 4)


def test_dn_and_reflectance_give_the_same_scores(stlpips):
    hr = _textured(5)
    sr = np.clip(hr + np.random.default_rng(0).normal(0, 0.01, hr.shape), 0.001, 1)
    lr = degrade_nominal(hr, 2)
    hr_dn, sr_dn, lr_dn = to_dn(hr), to_dn(sr), to_dn(lr)
    dn = score_image(sr_dn, hr_dn, lr_dn, dn_scale=10000, perceptual=stlpips)
    refl = score_image(sr_dn / 1e4, hr_dn / 1e4, lr_dn / 1e4, perceptual=stlpips)
    assert dn.keys() == refl.keys()
    assert set(dn) == set(SCORE_KEYS) - {"lpips"} | {"stlpips"}
    for key, value in dn.items():
        assert value == pytest.approx(refl[key], rel=1e-12, abs=1e-12), key


def test_perceptual_uses_the_stretch_and_fills_no_data(stlpips):
    hr = _textured(6)
    sr = np.clip(hr + np.random.default_rng(1).normal(0, 0.02, hr.shape), 0.001, 1)
    value = score_image(sr, hr, border_px=0, perceptual=stlpips)["stlpips"]
    assert value == pytest.approx(stlpips(sr, hr, stretch=RGB_STRETCH))
    assert value != pytest.approx(stlpips(sr, hr, stretch=(0.0, 1.0)), rel=1e-3)
    holed = sr.copy()
    holed[:, 10:20, 10:20] = 0
    patched = sr.copy()
    patched[:, 10:20, 10:20] = hr[:, 10:20, 10:20]
    got = score_image(holed, hr, border_px=0, perceptual=stlpips)["stlpips"]
    assert got == pytest.approx(stlpips(patched, hr, stretch=RGB_STRETCH))
    small = score_image(sr[:, :40, :40], hr[:, :40, :40], border_px=8, perceptual=stlpips)
    assert "stlpips" not in small and "psnr_db" in small  # 24 px: too small for the network


def test_bad_arguments_are_named():
    hr = _textured()
    with pytest.raises(GridMismatchError, match="hr has shape"):
        score_image(hr, hr[:, :32])
    with pytest.raises(GridMismatchError, match="lr must be"):
        score_image(hr, None, hr)
    with pytest.raises(ConfigError, match="needs a reference hr, an input lr"):
        score_image(hr)
    with pytest.raises(ConfigError, match="border_px"):
        score_image(hr, hr, border_px=-2)
    with pytest.raises(ConfigError, match="dn_scale"):
        score_image(hr, hr, dn_scale=0)
    with pytest.raises(GridMismatchError, match="no pixel"):
        score_image(np.zeros_like(hr), hr)


# ------------------------------------------------------------------------ callers agree
@pytest.fixture(scope="module")
def one_image():
    """A DN output, reference and input on one small grid (no no-data, no negative values)."""
    hr = _textured(7, size=96)
    lr = degrade_nominal(hr, 2)
    sr = np.kron(lr, np.ones((2, 2))) + np.random.default_rng(2).normal(0, 0.005, hr.shape)
    return to_dn(sr), to_dn(hr), to_dn(lr)


def test_evaluate_train_and_demo_give_the_same_psnr_and_ssim(one_image, stlpips):
    from s2scale.evaluate.score import EvaluateConfig, score_output
    from s2scale.pipeline.demo import _score_dn
    from s2scale.train.evaluation import score

    sr, hr, lr = one_image
    b = 8
    crop = np.s_[:, b:-b, b:-b]
    ref = score_image(sr, hr, lr, border_px=b, dn_scale=10000, perceptual=stlpips)
    expected = peak_signal_noise_ratio(hr[crop] / 1e4, sr[crop] / 1e4, data_range=1.0)
    assert ref["psnr_db"] == pytest.approx(expected, abs=1e-9)
    assert ref["ssim"] == pytest.approx(ssim(sr[crop] / 1e4, hr[crop] / 1e4, 1.0), abs=1e-12)

    cfg = EvaluateConfig(models=("bicubic",), border_px=b)
    evaluated = score_output(sr, lr, hr, perceptual=stlpips, cfg=cfg)
    assert evaluated == ref  # the report's scores are score_image's, unchanged

    trained = score(sr / 1e4, hr / 1e4, lr / 1e4, metric=stlpips, border_px=b)
    assert trained["psnr"] == round(ref["psnr_db"], 4)
    assert trained["ssim"] == round(ref["ssim"], 5)
    assert trained["stlpips"] == round(ref["stlpips"], 5)
    assert trained["bias"] == [round(v / 100, 6) for v in ref["bias_pct"]]
    assert trained["consistency_psnr"] == round(ref["consistency_psnr_db"], 3)

    demo = _score_dn(sr[crop], hr[crop], stlpips)
    assert demo == {"psnr_db": round(ref["psnr_db"], 3), "ssim": round(ref["ssim"], 4),
                    "perceptual": round(ref["stlpips"], 4)}  # fmt: skip


def test_training_validation_agrees_with_score_image():
    """Run.validate (psnr_torch, ssim_torch on batches) gives score_image's mean PSNR and SSIM."""
    from s2scale.train.engine import Run

    gen = torch.Generator().manual_seed(0)
    hr = 0.05 + 0.2 * torch.rand(3, 4, 48, 48, generator=gen, dtype=torch.float64)
    lr = torch.nn.functional.avg_pool2d(hr, 2)
    upsample = torch.nn.Upsample(scale_factor=2, mode="nearest")
    cfg = SimpleNamespace(val_data_range=1.0)
    fake = SimpleNamespace(ema=None, gen=upsample, device=torch.device("cpu"), project=None,
                           cfg=cfg, _autocast=torch.no_grad)  # fmt: skip
    val = Run.validate(fake, [(lr, hr)])
    sr = upsample(lr).numpy()
    each = [score_image(s, h, border_px=0) for s, h in zip(sr, hr.numpy(), strict=True)]
    assert val["val/psnr"] == pytest.approx(np.mean([e["psnr_db"] for e in each]), abs=1e-3)
    assert val["val/ssim"] == pytest.approx(np.mean([e["ssim"] for e in each]), abs=1e-5)
    # float32 batches as training runs them
    s32, h32 = torch.from_numpy(sr).float(), hr.float()
    assert psnr_torch(s32, h32, 1.0).tolist() == pytest.approx([e["psnr_db"] for e in each],
                                                               abs=1e-3)  # fmt: skip
    assert ssim_torch(s32, h32, 1.0).tolist() == pytest.approx([e["ssim"] for e in each],
                                                               abs=1e-5)  # fmt: skip
