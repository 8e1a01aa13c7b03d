"""`s2scale train --config` trains a generator from a YAML config and a patch store."""

import json

import numpy as np
from click.testing import CliRunner

from s2scale.cli import main
from s2scale.models import load_generator
from s2scale.pairs import PatchSet, write_patch_store


def test_train_command(tmp_path):
    rng = np.random.default_rng(0)
    hr = rng.integers(300, 3000, size=(12, 4, 32, 32), dtype=np.uint16)
    lr = hr.reshape(12, 4, 16, 2, 16, 2).mean(axis=(3, 5)).astype(np.uint16)
    split = np.array([0] * 10 + [1] * 2, dtype=np.int8)
    store = write_patch_store(
        tmp_path / "patches.zarr",
        PatchSet(
            lr=lr,
            hr=hr,
            split=split,
            source=np.zeros(12, np.int16),
            sources=[{"name": "random", "kind": "synthetic"}],
        ),
    )
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "arch: srcnn\narch_kwargs: {num_feat: 8, num_feat_map: 4}\n"
        "bands: [blue, green, red, nir]\nscale: 2\n"
        "normalization: {kind: reflectance, offset: 0.0, scale: 10000.0}\n"
        "recipe: esrgan\npretrain_steps: 4\ngan_steps: 0\nbatch_size: 4\ndevice: cpu\n"
        f"validate_every: 2\ncheckpoint_every: 2\noutput_dir: {tmp_path / 'run'}\n"
    )
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--config",
            str(config),
            "--out",
            str(tmp_path / "weights"),
            "--data",
            str(store),
            "--work",
            str(tmp_path / "work"),
            "--no-eval",
            "--cold-start",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    net = load_generator(report["checkpoint"], bands=["blue", "green", "red", "nir"], scale=2)
    assert net.arch == "srcnn"
    bad = CliRunner().invoke(
        main, ["train", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "no training config" in bad.output and "srresnet" in bad.output
