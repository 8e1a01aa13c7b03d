"""Tests of the shipped-generator recipes: training data store, ST-LPIPS loss option, configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from s2scale.errors import ConfigError
from s2scale.models import build_generator
from s2scale.pairs import read_patch_store
from s2scale.train import TrainConfig
from s2scale.train.evaluation import evaluate_generator
from s2scale.train.losses import PerceptualLoss
from s2scale.train.recipes import CONFIG_DIR, _datasets, resolve_config, warm_start
from s2scale.train.sources import HELD_OUT_SEED, build_training_data, ortho_to_reflectance

SHARED_ORTHO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "orthophoto"


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("recipes") / "patches.zarr"
    return build_training_data(
        out,
        seeds=(3,),
        include_real_ortho=SHARED_ORTHO.is_dir(),
        area_m=960.0,
        wald_area_m=1440.0,
        lr_patch_px=24,
        stride_px=24,
        block_m=480.0,
        wald_variants=1,
        real_ortho_pixels_m=(2.5,),
        fractions=(0.7, 0.3, 0.0),
    )


def test_build_training_data_writes_valid_store(tiny_store):
    lr, hr, attrs = read_patch_store(tiny_store)
    assert lr.dtype == np.uint16 and hr.dtype == np.uint16
    assert lr.shape[1:] == (4, 24, 24) and hr.shape[1:] == (4, 48, 48) and len(lr) == len(hr)
    assert (lr > 0).all() and (hr > 0).all()  # no nodata in patches
    assert attrs["bands"] == ["blue", "green", "red", "nir"] and attrs["scale"] == 2
    assert attrs["normalization"] == {"kind": "reflectance", "offset": 0.0, "scale": 10000.0}
    kinds = {s["kind"] for s in attrs["sources"]}
    assert {"sim-study-truth", "sim-study-ortho", "sim-wald-s2"} <= kinds
    if SHARED_ORTHO.is_dir():
        assert "real-ortho-wald" in kinds
        real = [s for s in attrs["sources"] if s["kind"] == "real-ortho-wald"]
        assert all("SYNTHETIC" in s["nir"] for s in real)
    assert attrs["provenance"]["held_out_seed"] == HELD_OUT_SEED
    assert HELD_OUT_SEED not in attrs["provenance"]["seeds"]
    assert attrs["counts"]["train"] > 0 and attrs["counts"]["val"] > 0
    # reflectance-like values: DN / 10000 in a plausible range
    assert 0.005 < float(np.median(hr)) / 10000 < 0.5


def test_study_pairs_are_consistent(tiny_store):
    lr, hr, _ = read_patch_store(tiny_store, sources=["sim-study-truth"])
    assert len(lr) > 0
    from s2scale.pairs import area_downsample

    down = area_downsample(hr.astype(np.float32), 2)
    corr = np.corrcoef(down[:, 3].ravel(), lr[:, 3].ravel().astype(np.float32))[0, 1]
    assert corr > 0.9  # nir of LR and downsampled HR agree


def test_ortho_to_reflectance_marks_vegetation_bright_in_nir():
    rgb = np.array([[[60, 200]], [[110, 200]], [[40, 200]]], np.uint8)  # tree, white roof
    refl = ortho_to_reflectance(rgb)
    assert refl.shape == (4, 1, 2)
    assert refl[3, 0, 0] > 3 * refl[2, 0, 0]  # vegetation: NIR >> red
    assert refl[3, 0, 1] < 1.3 * refl[2, 0, 1]


def test_evaluate_generator_bicubic_identity_is_perfect():
    hr = np.full((4, 64, 64), 0.1, np.float32)
    lr = np.full((4, 32, 32), 0.1, np.float32)
    scores = evaluate_generator(None, lr, hr)
    assert scores["ssim"] == pytest.approx(1.0) and scores["stlpips"] == pytest.approx(0.0)
    assert scores["bias_max_abs_pct"] == pytest.approx(0.0, abs=1e-4)


@pytest.fixture(scope="module")
def stlpips_net():
    from s2scale.models.backbones import load_stlpips

    return load_stlpips("alex")


def test_random_generator_scores_worse_than_bicubic(stlpips_net):
    """The one scoring function tells an untrained network from bicubic on the held-out world:
    lower PSNR and SSIM, higher ST-LPIPS and a larger bias (measured for a random SRCNN:
    21.2 dB against 38.9 dB, ST-LPIPS 0.27 against 0.03)."""
    from s2scale.train.evaluation import heldout_scene

    lr, hr = heldout_scene(HELD_OUT_SEED, size_m=960.0)
    random = build_generator("srcnn", 4, 2, seed=0).eval()
    base = evaluate_generator(None, lr, hr, stlpips_model=stlpips_net)
    ours = evaluate_generator(random, lr, hr, stlpips_model=stlpips_net)
    assert ours["psnr_db"] < base["psnr_db"] - 5 and ours["ssim"] < base["ssim"]
    assert ours["stlpips"] > base["stlpips"]
    assert ours["bias_max_abs_pct"] > base["bias_max_abs_pct"]


GAN_CONFIGS = {"esrgan": ("vgg", "relativistic"), "realesrgan": ("unet", "vanilla")}


@pytest.mark.parametrize("name", ["srcnn", "srresnet", "esrgan", "realesrgan"])
@pytest.mark.parametrize("stage", ["-wald", ""])
def test_shipped_configs_parse(name, stage):
    cfg = TrainConfig.from_yaml(CONFIG_DIR / f"{name}{stage}.yaml")
    assert cfg.arch == name and cfg.bands == ("blue", "green", "red", "nir") and cfg.scale == 2
    assert cfg.normalization["scale"] == 10000.0
    assert cfg.data is not None and "real-s2-wald" in cfg.data.weights
    if stage == "-wald":  # the base: Wald pairs from a warm start
        assert cfg.init_checkpoint is None and "real-colocated" not in cfg.data.weights
    else:  # shipped: the base fine-tuned with real co-located pairs as the main data
        assert cfg.init_checkpoint == f"runs/shipped/{name}-wald.pt"
        assert max(cfg.data.weights, key=cfg.data.weights.get) == "real-colocated"
        assert cfg.consistency == "off"
    if name not in GAN_CONFIGS:
        assert cfg.gan_steps == 0
    else:
        assert cfg.gan_steps > 0 and (cfg.discriminator, cfg.gan_kind) == GAN_CONFIGS[name]
        assert cfg.perceptual_backbone == "vgg16"


def test_stlpips_perceptual_loss_option():
    cfg = TrainConfig(perceptual_backbone="stlpips-alex")
    loss = PerceptualLoss(cfg.perceptual_layers, backbone=cfg.perceptual_backbone)
    assert "ST-LPIPS" in loss.backbone and not any(p.requires_grad for p in loss.parameters())
    gen = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 4, 48, 48, generator=gen)
    sr = (hr + 0.1 * torch.randn(2, 4, 48, 48, generator=gen)).requires_grad_(True)
    value = loss(sr, hr)
    value.backward()
    assert value.ndim == 0 and float(value.detach()) > 0 and sr.grad is not None
    assert float(sr.grad[:, 3].abs().sum()) == 0.0  # nir is not scored
    assert float(loss(hr, hr)) == pytest.approx(0.0, abs=1e-6)


def test_stlpips_backbone_conflicts_with_vgg_file():
    from s2scale.errors import ConfigError

    with pytest.raises(ConfigError, match="perceptual_backbone"):
        TrainConfig(perceptual_backbone="stlpips-alex", perceptual_weights="/x/vgg19.pth")
    with pytest.raises(ConfigError):
        TrainConfig(perceptual_backbone="imagenet")  # type: ignore[arg-type]


def test_stlpips_score_label_and_order():
    from s2scale.metrics import stlpips_score

    rng = np.random.default_rng(0)
    hr = rng.random((4, 64, 64)).astype(np.float32)
    mild = np.clip(hr + 0.02 * rng.standard_normal(hr.shape), 0, 1)
    strong = np.clip(hr + 0.3 * rng.standard_normal(hr.shape), 0, 1)
    a, b = stlpips_score(mild, hr), stlpips_score(strong, hr)
    assert a.label == "ST-LPIPS (shift-tolerant, alex)"
    assert 0 <= a.value < b.value


def test_configs_resolve_by_name_or_path(tmp_path):
    assert resolve_config("srresnet") == CONFIG_DIR / "srresnet.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("arch: srcnn\n")
    assert resolve_config(own) == own
    with pytest.raises(ConfigError, match=r"'nope'.*realesrgan.*srresnet"):
        resolve_config("nope")


def test_training_refuses_a_store_of_another_scale(tiny_store):
    train_ds, _, attrs = _datasets(tiny_store, 2)
    assert attrs["scale"] == 2 and train_ds.hr.shape[-1] == 2 * train_ds.lr.shape[-1]
    with pytest.raises(ConfigError, match="holds x2 pairs but the config trains x4"):
        _datasets(tiny_store, 4)


@pytest.mark.parametrize(
    ("name", "mode"),
    [("srcnn", "bicubic"), ("srresnet", "bilinear"), ("esrgan", "bilinear"), ("realesrgan", None)],
)
def test_warm_start_of_each_shipped_size_starts_as_an_interpolator(name, mode):
    """On a freshly built (grad-enabled) generator of the shipped config's size."""
    kwargs = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())["arch_kwargs"]
    model = warm_start(build_generator(name, 4, 2, seed=0, **kwargs)).eval()
    assert all(p.requires_grad for p in model.parameters())
    x = torch.rand(1, 4, 24, 24, generator=torch.Generator().manual_seed(0)) * 0.3 + 0.05
    with torch.no_grad():
        y = model(x)
    inner = (..., slice(8, -8), slice(8, -8))
    if mode is not None:  # exactly the interpolator away from the edges
        ref = F.interpolate(x, scale_factor=2, mode=mode, align_corners=False)
        torch.testing.assert_close(y[inner], ref[inner], atol=1e-6, rtol=0)
    else:  # Real-ESRGAN: a blurred interpolator: flat stays flat, the mean is kept
        with torch.no_grad():
            flat = model(torch.full((1, 4, 24, 24), 0.2))
        torch.testing.assert_close(
            flat[inner], torch.full_like(flat[inner], 0.2), atol=1e-6, rtol=0
        )
        assert abs(y[inner].mean() / x[..., 4:-4, 4:-4].mean() - 1) < 0.01


def test_init_checkpoint_starts_training_from_its_weights(tmp_path):
    from s2scale.errors import CheckpointError
    from s2scale.models import save_checkpoint
    from s2scale.train.recipes import _init_state
    from s2scale.train.state import load_state

    kw = {"num_feat": 8, "num_feat_map": 4}
    net = build_generator("srcnn", bands=4, scale=2, seed=7, **kw)
    base = tmp_path / "base.pt"
    save_checkpoint(base, net, bands=["blue", "green", "red", "nir"],
                    normalization={"offset": 0.0, "scale": 10000.0})  # fmt: skip
    cfg = TrainConfig(arch="srcnn", arch_kwargs=kw, recipe="esrgan", init_checkpoint=str(base),
                      pretrain_steps=1, gan_steps=0, device="cpu")  # fmt: skip
    state = load_state(_init_state(cfg, tmp_path / "init", 32, base))
    for k, v in net.state_dict().items():
        torch.testing.assert_close(state["components"]["generator"][k], v)
    assert state["step"] == 0
    other = TrainConfig(arch="srcnn", arch_kwargs={"num_feat": 16, "num_feat_map": 4},
                        recipe="esrgan", device="cpu")  # fmt: skip
    with pytest.raises(CheckpointError, match="same network"):
        _init_state(other, tmp_path / "x", 32, base)
    with pytest.raises(CheckpointError, match="does not exist"):
        _init_state(cfg, tmp_path / "y", 32, tmp_path / "missing.pt")
