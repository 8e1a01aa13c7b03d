import pytest

from s2scale.errors import ConfigError
from s2scale.train.config import TrainConfig
from s2scale.train.degradations import TrainingDegradationConfig


def test_recipes_fill_published_defaults():
    esrgan = TrainConfig(recipe="esrgan", arch="esrgan")
    assert (esrgan.pixel_weight, esrgan.perceptual_weight, esrgan.gan_weight) == (1e-2, 1.0, 5e-3)
    assert esrgan.gan_kind == "relativistic" and esrgan.discriminator == "vgg"
    assert esrgan.perceptual_layers == {"conv5_4": 1.0}
    real = TrainConfig()
    assert (real.pixel_weight, real.perceptual_weight, real.gan_weight) == (1.0, 1.0, 0.1)
    assert real.gan_kind == "vanilla" and real.discriminator == "unet"
    assert real.perceptual_layers == {
        "conv1_2": 0.1,
        "conv2_2": 0.1,
        "conv3_4": 1.0,
        "conv4_4": 1.0,
        "conv5_4": 1.0,
    }
    assert real.ema_decay == 0.999 and real.betas == (0.9, 0.99)
    assert TrainConfig(gan_weight=0.5).gan_weight == 0.5  # overrides win


def test_from_yaml_rejects_unknown_keys(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("arch: srcnn\nlearning_rat: 1e-4\nbatch_sise: 4\n")
    with pytest.raises(ConfigError, match=r"\['batch_sise', 'learning_rat'\]"):
        TrainConfig.from_yaml(path)
    path.write_text("degradation: {noise_range: [1, 5], jpeg_qual: 3}\n")
    with pytest.raises(ConfigError, match="jpeg_qual"):
        TrainConfig.from_yaml(path)


def test_from_yaml_reads_values(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "train:\n  arch: srresnet\n  arch_kwargs: {num_feat: 8}\n  betas: [0.9, 0.999]\n"
        "  learning_rate: 1.0e-4\n  degradation: {noise_range: [1, 5]}\n"
    )
    cfg = TrainConfig.from_yaml(path, section="train")
    assert cfg.arch == "srresnet" and cfg.arch_kwargs == {"num_feat": 8}
    assert cfg.betas == (0.9, 0.999) and cfg.learning_rate == 1e-4
    assert cfg.degradation == TrainingDegradationConfig(noise_range=(1, 5))
    assert TrainConfig.from_dict(cfg.to_dict()).arch == "srresnet"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"recipe": "srgan"}, "recipe"),
        ({"amp": "fp16"}, "amp"),
        ({"pretrain_steps": 0, "gan_steps": 0}, "pretrain_steps"),
        ({"normalization": {"scale": 0}}, "scale"),
        ({"lr_milestones": (10, 5)}, "increasing"),
    ],
)
def test_post_init_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)
