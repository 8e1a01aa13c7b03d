"""The shipped generators in s2scale/weights: metadata, size, and quality vs bicubic (CPU).

Quality is checked on a FRESH render of a simulator world whose seed was never used in training
(training used :data:`s2scale.train.sources.DEFAULT_SEEDS`, the model cards :data:`HELD_OUT_SEED`),
on the reference study's task: simulated Sentinel-2 10 m -> 5 m truth, plus Wald's protocol on the
simulated 10 m image (10 m -> 20 m -> 10 m).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import s2scale
from s2scale.models import load_generator, read_checkpoint
from s2scale.train.evaluation import evaluate_generator, heldout_scene
from s2scale.train.sources import DEFAULT_SEEDS, HELD_OUT_SEED

WEIGHTS = Path(s2scale.__file__).resolve().parent / "weights"
FRESH_SEED = 4242  # neither a training seed nor the model cards' evaluation seed
BANDS = ("blue", "green", "red", "nir")
ARCHS = {"srresnet": "srresnet", "realesrgan": "realesrgan"}


@pytest.fixture(scope="module")
def fresh_pairs():
    assert FRESH_SEED not in DEFAULT_SEEDS and FRESH_SEED != HELD_OUT_SEED
    return {
        "study": heldout_scene(FRESH_SEED, size_m=1200.0),
        "wald": heldout_scene(FRESH_SEED, size_m=1920.0, wald=True),
    }


@pytest.fixture(scope="module")
def stlpips_net():
    from s2scale.metrics import load_stlpips

    return load_stlpips("alex")


def test_total_size_under_40_mb():
    files = sorted(WEIGHTS.glob("*.pt"))
    assert {f.stem for f in files} >= set(ARCHS)
    assert sum(f.stat().st_size for f in files) < 40 * 2**20


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_checkpoint_metadata(name):
    path = WEIGHTS / f"{name}.pt"
    ckpt = read_checkpoint(path)
    assert ckpt.arch == ARCHS[name] and ckpt.bands == BANDS and ckpt.scale == 2
    assert ckpt.dtype == "float16"
    assert all(v.dtype == torch.float16 for v in ckpt.state_dict.values() if v.is_floating_point())
    assert ckpt.normalization.offset == 0.0 and ckpt.normalization.scale == 10000.0
    train = ckpt.training
    assert train["steps"] == train["pretrain_steps"] + train["gan_steps"] > 0
    assert train["wall_time_s"] > 0 and "cpu" in train["device"]
    assert name in train["recipe_command"]
    assert "heldout" in ckpt.metrics and "val" in ckpt.metrics
    if name == "srresnet":
        assert train["gan_steps"] == 0 and train["perceptual_backbone"] is None
    else:
        assert train["gan_steps"] > 0 and train["config"]["discriminator"] == "unet"
        assert train["config"]["gan_kind"] == "vanilla"
        assert "ST-LPIPS" in train["perceptual_backbone"]
        assert "no ImageNet VGG19" in train["perceptual_loss"]
        assert not train["random_backbone"]
    model = load_generator(path, "cpu", bands=list(BANDS), scale=2)
    assert model.band_names == BANDS and not model.training


@torch.no_grad()
def test_srresnet_beats_bicubic_in_psnr(fresh_pairs):
    model = load_generator(WEIGHTS / "srresnet.pt", "cpu")
    for task, (lr, hr) in fresh_pairs.items():
        ours = evaluate_generator(model, lr, hr, stlpips=False)
        base = evaluate_generator(None, lr, hr, stlpips=False)
        assert ours["psnr"] > base["psnr"], (task, ours, base)


@torch.no_grad()
def test_realesrgan_beats_bicubic_in_stlpips(fresh_pairs, stlpips_net):
    model = load_generator(WEIGHTS / "realesrgan.pt", "cpu")
    for task, (lr, hr) in fresh_pairs.items():
        ours = evaluate_generator(model, lr, hr, stlpips_model=stlpips_net)
        base = evaluate_generator(None, lr, hr, stlpips_model=stlpips_net)
        assert ours["stlpips_alex"] < base["stlpips_alex"], (task, ours, base)
        assert ours["psnr"] > base["psnr"] - 1.5, (task, ours, base)  # not catastrophically worse


@torch.no_grad()
def test_output_shape_and_range():
    model = load_generator(WEIGHTS / "realesrgan.pt", "cpu")
    x = torch.full((1, 4, 20, 24), 0.08)
    y = model(x)
    assert y.shape == (1, 4, 40, 48) and torch.isfinite(y).all()
    assert float((y - 0.08).abs().mean()) < 0.02  # a flat field stays flat
