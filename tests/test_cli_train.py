"""`s2scale train --config` trains a generator from a YAML config and a patch store."""

import csv
import json

import numpy as np
import torch
from click.testing import CliRunner

from s2scale.cli import main
from s2scale.models import load_generator
from s2scale.pairs import PatchSet, write_patch_store


def _store(tmp_path):
    rng = np.random.default_rng(0)
    hr = rng.integers(300, 3000, size=(12, 4, 32, 32), dtype=np.uint16)
    lr = hr.reshape(12, 4, 16, 2, 16, 2).mean(axis=(3, 5)).astype(np.uint16)
    split = np.array([0] * 10 + [1] * 2, dtype=np.int8)
    return write_patch_store(
        tmp_path / "patches.zarr",
        PatchSet(
            lr=lr,
            hr=hr,
            split=split,
            source=np.zeros(12, np.int16),
            sources=[{"name": "random", "kind": "synthetic"}],
        ),
    )


TINY = (
    "arch: srcnn\narch_kwargs: {num_feat: 8, num_feat_map: 4}\n"
    "bands: [blue, green, red, nir]\nscale: 2\n"
    "normalization: {kind: reflectance, offset: 0.0, scale: 10000.0}\n"
    "recipe: esrgan\npretrain_steps: 4\ngan_steps: 0\nbatch_size: 4\ndevice: cpu\n"
    "validate_every: 2\ncheckpoint_every: 2\n"
)


def _train(tmp_path, config, store, out, *extra):
    args = ["train", "--config", str(config), "--out", str(out), "--data", str(store),
            "--work", str(tmp_path / "work"), "--no-eval", "--cold-start", *extra]  # fmt: skip
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_train_command(tmp_path):
    store = _store(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    result = _train(tmp_path, config, store, tmp_path / "weights")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    net = load_generator(report["checkpoint"], bands=["blue", "green", "red", "nir"], scale=2)
    assert net.arch == "srcnn"
    bad = CliRunner().invoke(
        main, ["train", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "no training config" in bad.output and "srresnet" in bad.output


def test_train_resume_continues_bit_for_bit_and_is_recorded(tmp_path):
    store = _store(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    whole = _train(tmp_path, config, store, tmp_path / "whole")
    assert whole.exit_code == 0, whole.output
    ckpt = tmp_path / "work" / "tiny" / "checkpoints" / "step_00000002.pt"
    config.write_text(TINY + "log_every: 1\n")  # a setting changed since the checkpoint
    resumed = _train(tmp_path, config, store, tmp_path / "resumed", "--resume", str(ckpt))
    assert resumed.exit_code == 0, resumed.output
    a = load_generator(tmp_path / "whole" / "tiny.pt").state_dict()
    b = load_generator(tmp_path / "resumed" / "tiny.pt")
    assert all(torch.equal(a[k], v) for k, v in b.state_dict().items())
    info = b.checkpoint.training["resumed_from"]
    assert info["step"] == 2 and info["checkpoint"] == str(ckpt)
    assert info["config_changes"] == {"log_every": [100, 1]}
    with open(tmp_path / "work" / "tiny" / "metrics.csv") as f:
        logged = [int(r["step"]) for r in csv.DictReader(f) if r["train/loss_pixel"]]
    assert logged == [3, 4]  # only the steps after the checkpoint ran (log_every 1)
    missing = CliRunner().invoke(main, ["train", "--config", str(config), "--out", str(tmp_path),
                                        "--resume", str(tmp_path / "nope.pt")])  # fmt: skip
    assert missing.exit_code == 2 and "nope.pt" in missing.output
