"""Training through the consistency projection (TrainConfig.consistency)."""

import numpy as np
import pytest
import torch

from s2scale.errors import ConfigError
from s2scale.infer.consistency import band_mtfs, degrade_block, project_block
from s2scale.train.config import TrainConfig
from s2scale.train.consistency import ConsistencyProjection
from s2scale.train.engine import Run, unwrap
from s2scale.train.losses import lowfreq_loss, pixel_loss

BANDS = ("blue", "green", "red", "nir")


def _batch(seed=0, n=2, size=24):
    rng = np.random.default_rng(seed)
    lr = rng.uniform(0.02, 0.35, (n, 4, size, size)).astype(np.float32)
    sr = rng.uniform(0.02, 0.35, (n, 4, 2 * size, 2 * size)).astype(np.float32)
    return sr, lr


def test_projection_equals_the_inference_kernel():
    sr, lr = _batch()
    out = ConsistencyProjection(BANDS, 2)(torch.from_numpy(sr), torch.from_numpy(lr)).numpy()
    mtfs = band_mtfs(BANDS)
    ref = np.stack([project_block(s, x, scale=2, mtfs=mtfs) for s, x in zip(sr, lr, strict=True)])
    assert np.abs(out - ref).max() < 1e-5
    assert np.abs(out - sr).max() > 0.05  # it did change the (inconsistent) input


def test_projected_batch_reproduces_its_input():
    sr, lr = _batch(1, size=40)
    proj = ConsistencyProjection(BANDS, 2)
    out = proj(torch.from_numpy(sr), torch.from_numpy(lr))
    inner = np.s_[:, 14:-14, 14:-14]  # away from the block edge (consistency_radius_px)
    for o, low in zip(out.numpy(), lr, strict=True):
        err = np.abs(degrade_block(o, 2, band_mtfs(BANDS)) - low)[inner]
        assert err.max() < 0.005 * low.mean()  # white-noise input: the worst case


def test_gradient_only_carries_what_the_operator_removes():
    """d P(sr) / d sr kills constants: a uniform shift of sr does not change P(sr)."""
    sr, lr = _batch(2)
    proj = ConsistencyProjection(BANDS, 2)
    a = proj(torch.from_numpy(sr), torch.from_numpy(lr))
    b = proj(torch.from_numpy(sr + 0.1), torch.from_numpy(lr))
    assert torch.abs(a - b).max() < 1e-4
    x = torch.from_numpy(sr).requires_grad_(True)
    proj(x, torch.from_numpy(lr)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert abs(float(x.grad.mean())) < 1e-3  # 1 - (DC gain of D^T (D D^T)^-1 D = 1)


def test_config_rejects_bad_values_by_name():
    with pytest.raises(ConfigError, match="'sometimes'"):
        TrainConfig(consistency="sometimes")
    with pytest.raises(ConfigError, match="swir16"):
        TrainConfig(consistency="gan", bands=("red", "swir16"))
    assert TrainConfig().consistency == "off"


def _run(tmp_path, mode):
    cfg = TrainConfig(
        arch="srcnn",
        arch_kwargs={"num_feat": 8, "num_feat_map": 4},
        bands=BANDS,
        pretrain_steps=1,
        gan_steps=1,
        batch_size=2,
        random_backbone=True,
        discriminator_kwargs={"num_feat": 4},
        device="cpu",
        consistency=mode,
        lowfreq_weight=1.0,
        output_dir=str(tmp_path),
    )
    return Run(cfg, torch.device("cpu"), 1, 48)


CASES = [("off", 1, False), ("gan", 1, False), ("gan", 2, True), ("all", 1, True)]


@pytest.mark.parametrize(("mode", "phase", "projected"), CASES)
def test_step_scores_the_output_users_get(tmp_path, mode, phase, projected):
    sr_np, lr_np = _batch(3)
    lr, hr = torch.from_numpy(lr_np), torch.from_numpy(sr_np)
    run = _run(tmp_path, mode)
    if phase == 2:
        run.enter_phase2(from_ema=False)
    with torch.no_grad():
        sr = unwrap(run.gen)(lr)
        want = pixel_loss(ConsistencyProjection(BANDS, 2)(sr, lr) if projected else sr, hr)
        low = lowfreq_loss(sr, hr, 8)  # always on the raw output
    values = run.step(lr, hr, phase)
    assert values["train/loss_pixel"] == pytest.approx(float(want), rel=1e-5)
    assert values["train/loss_lowfreq"] == pytest.approx(float(low), rel=1e-5)
