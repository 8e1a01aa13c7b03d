import csv
import math

import numpy as np
import pytest
import torch

from s2scale.errors import CheckpointError
from s2scale.models import build_generator, load_generator, read_checkpoint
from s2scale.train.config import TrainConfig
from s2scale.train.data import PairDataset
from s2scale.train.loop import train
from s2scale.train.losses import PerceptualLoss, pixel_loss
from s2scale.train.state import load_state

TINY = {
    "srcnn": {"num_feat": 8, "num_feat_map": 4},
    "srresnet": {"num_feat": 8, "num_block": 1},
    "esrgan": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "realesrgan": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
}


def _pairs(n=4, size=16, seed=0):
    """Smooth synthetic reflectance patches (uint16 DN) and their 2x2-mean LR."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((n, 4, size // 4, size // 4))
    hr = np.kron(coarse, np.ones((4, 4))) * 3000 + rng.random((n, 4, size, size)) * 300 + 200
    hr = hr.astype(np.uint16)
    lr = hr.reshape(n, 4, size // 2, 2, size // 2, 2).mean((3, 5)).astype(np.uint16)
    return PairDataset(hr=hr, lr=lr, scale=2), PairDataset(hr=hr, lr=lr, scale=2, augment=False)


def _config(tmp_path, arch="realesrgan", **kwargs):
    base = {
        "arch": arch,
        "arch_kwargs": TINY[arch],
        "recipe": "esrgan" if arch == "esrgan" else "realesrgan",
        "batch_size": 2,
        "learning_rate": 2e-3,
        "log_every": 1,
        "checkpoint_every": 1000,
        "random_backbone": True,
        "discriminator_kwargs": {"num_feat": 4},
        "device": "cpu",
        "output_dir": str(tmp_path / "run"),
    }
    return TrainConfig(**{**base, **kwargs})


def _losses(result, name="train/loss_pixel"):
    return [row[name] for row in result.history if name in row]


@pytest.mark.parametrize("arch", list(TINY))
def test_phase1_lowers_l1(tmp_path, arch, device):
    train_data, val_data = _pairs()
    cfg = _config(tmp_path, arch, pretrain_steps=20, gan_steps=0, ema_decay=0.0, device=str(device))
    result = train(cfg, train_data, val_data)
    losses = _losses(result)
    assert len(losses) == 20 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert set(result.metrics) == {"val/psnr", "val/ssim"}
    assert result.perceptual_backbone is None  # phase 1 only
    model = load_generator(result.generator_path, torch.device("cpu"))
    assert model.arch == arch
    ckpt = read_checkpoint(result.generator_path)
    assert ckpt.training["steps"] == 20 and ckpt.metrics == result.metrics
    with (tmp_path / "run" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["step"] == "1" and "val/psnr" in rows[0]


def test_phase1_bf16_autocast_on_cpu(tmp_path):
    train_data, val_data = _pairs()
    cfg = _config(tmp_path, "srcnn", pretrain_steps=20, gan_steps=0, amp="bf16")
    losses = _losses(train(cfg, train_data, val_data))
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_autocast_bf16_forward_and_losses():
    net = build_generator("realesrgan", bands=4, scale=2, seed=0, **TINY["realesrgan"])
    perceptual = PerceptualLoss({"conv2_2": 1.0}, random_backbone=True)
    lr, hr = torch.rand(2, 4, 8, 8), torch.rand(2, 4, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sr = net(lr)
        loss = pixel_loss(sr.float(), hr) + perceptual(sr.float(), hr)
    assert sr.dtype == torch.bfloat16 and sr.shape == hr.shape
    loss.backward()
    assert torch.isfinite(loss.detach())
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("arch", ["esrgan", "realesrgan"])
def test_phase2_runs_without_nan(tmp_path, arch, device):
    train_data, val_data = _pairs(size=32)  # the VGG discriminator needs 32 px multiples
    cfg = _config(tmp_path, arch, pretrain_steps=2, gan_steps=4, grad_clip=1.0, device=str(device))
    result = train(cfg, train_data, val_data)
    assert result.steps == 6
    for name in ("train/loss_pixel", "train/loss_perceptual", "train/loss_gan", "train/loss_d"):
        values = _losses(result, name)
        assert values and all(math.isfinite(v) for v in values), name
    assert len(_losses(result, "train/loss_d")) == 4
    assert "random" in result.perceptual_backbone
    training = read_checkpoint(result.generator_path).training
    assert training["random_backbone"] is True
    assert "random" in training["perceptual_backbone"]
    assert all(math.isfinite(v) for v in result.metrics.values())


def _assert_same(a, b, where="state"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    else:
        assert a == b, where


def test_resume_is_bit_exact(tmp_path):
    # 4 pairs, batch 2: epochs of 2 steps; phase 2 from step 2; stop at step 3 (mid-epoch,
    # mid-phase-2) and resume: the result must equal an uninterrupted 6-step run bit for bit.
    train_data, val_data = _pairs(size=32)
    kwargs = {"pretrain_steps": 2, "gan_steps": 4, "grad_clip": 1.0, "lr_milestones": (1,)}
    full = train(_config(tmp_path / "a", **kwargs), train_data, val_data)
    cfg_b = _config(tmp_path / "b", **kwargs)
    first = train(cfg_b, train_data, val_data, stop_after=3)
    assert first.steps == 3 and first.generator_path is None
    last = tmp_path / "b" / "run" / "checkpoints" / "last.pt"
    assert load_state(last)["step"] == 3
    resumed = train(cfg_b, train_data, val_data, resume=last)
    assert resumed.steps == full.steps == 6
    state_a = load_state(tmp_path / "a" / "run" / "checkpoints" / "last.pt")
    state_b = load_state(last)
    assert set(state_a["components"]) == {
        "generator",
        "ema",
        "opt_g",
        "sched_g",
        "discriminator",
        "opt_d",
        "sched_d",
    }
    for key in ("components", "rng", "step", "epoch", "batch_in_epoch", "best"):
        _assert_same(state_a[key], state_b[key], key)
    _assert_same(
        read_checkpoint(full.generator_path).state_dict,
        read_checkpoint(resumed.generator_path).state_dict,
    )
    assert resumed.history == full.history  # the CSV of the resumed run equals the full one
    csv_a = (tmp_path / "a" / "run" / "metrics.csv").read_text()
    assert csv_a == (tmp_path / "b" / "run" / "metrics.csv").read_text()


def test_resume_rejects_foreign_files(tmp_path):
    train_data, _ = _pairs()
    bad = tmp_path / "weights.pt"
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(CheckpointError, match="not an s2scale training checkpoint"):
        train(_config(tmp_path, pretrain_steps=1, gan_steps=0), train_data, resume=bad)


def test_progress_is_called(tmp_path):
    train_data, _ = _pairs()
    seen = []

    def progress(steps):
        seen.append(len(steps))
        return steps

    train(_config(tmp_path, "srcnn", pretrain_steps=3, gan_steps=0), train_data, progress=progress)
    assert seen == [3]


def test_plain_dataset_and_batch_size_check(tmp_path):
    from torch.utils.data import TensorDataset

    from s2scale.errors import ConfigError

    pairs, _ = _pairs()
    plain = TensorDataset(
        torch.stack([pairs[i][0] for i in range(4)]), torch.stack([pairs[i][1] for i in range(4)])
    )
    result = train(_config(tmp_path, "srcnn", pretrain_steps=2, gan_steps=0), plain)
    assert result.steps == 2 and result.metrics == {}
    with pytest.raises(ConfigError, match="batch_size=8"):
        train(_config(tmp_path, "srcnn", pretrain_steps=2, gan_steps=0, batch_size=8), plain)
