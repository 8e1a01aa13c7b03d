"""Model cards rendered from a shipped checkpoint's stored summary."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import s2scale
from s2scale.models import read_checkpoint
from s2scale.train.cards import model_card

WEIGHTS = Path(s2scale.__file__).resolve().parent / "weights"


def _with_raw_gain(ckpt, gain_db: float):
    """A copy of ``ckpt`` whose real Sentinel-2 mean scores give the network ``gain_db``."""
    metrics = copy.deepcopy(ckpt.metrics)
    mean = metrics["heldout"]["real_s2_wald"]["mean"]
    mean["model"]["psnr"] = mean["bicubic"]["psnr"] + gain_db
    return dataclasses.replace(ckpt, metrics=metrics)


def test_card_sections_and_numbers_come_from_the_checkpoint():
    ckpt = read_checkpoint(WEIGHTS / "srcnn.pt")
    card = model_card("srcnn", ckpt, 0.15)
    for section in ("## Training data", "## Degradation", "## Training", "## Validation",
                    "## Limits"):  # fmt: skip
        assert section in card
    assert ckpt.training["recipe_command"] in card and ckpt.training["git_commit"] in card
    mean = ckpt.metrics["heldout"]["real_s2_wald"]["mean"]
    assert f"| {mean['model']['psnr']:.2f} |" in card


def test_card_warns_when_the_network_alone_is_below_bicubic():
    ckpt = read_checkpoint(WEIGHTS / "srcnn.pt")
    below = model_card("srcnn", _with_raw_gain(ckpt, -1.5), 0.15)
    assert "**The network alone is 1.50 dB below bicubic**" in below
    assert "consistency=False" in below
    above = model_card("srcnn", _with_raw_gain(ckpt, 0.5), 0.15)
    assert "below bicubic**" not in above


def _with_consistency(ckpt, mode: str):
    training = copy.deepcopy(ckpt.training)
    training["config"]["consistency"] = mode
    return dataclasses.replace(ckpt, training=training)


def test_card_says_when_training_saw_the_projected_output():
    ckpt = read_checkpoint(WEIGHTS / "realesrgan.pt")
    assert "after the consistency projection" not in model_card(
        "realesrgan", _with_consistency(ckpt, "off"), 1.0
    )
    card = model_card("realesrgan", _with_consistency(ckpt, "gan"), 1.0)
    assert "in phase 2 the losses (and the discriminator) see the output after the" in card
    assert "`consistency: gan`" in card


def test_card_names_a_resume_and_the_settings_it_changed():
    ckpt = read_checkpoint(WEIGHTS / "srcnn.pt")
    assert "Resumed at step" not in model_card("srcnn", ckpt, 0.15)
    training = copy.deepcopy(ckpt.training)
    training["resumed_from"] = {"checkpoint": "run/checkpoints/step_00003200.pt", "step": 3200,
                                "config_changes": {"gan_steps": [400, 1200]}}  # fmt: skip
    card = model_card("srcnn", dataclasses.replace(ckpt, training=training), 0.15)
    assert "Resumed at step 3200 from the training checkpoint" in card
    assert "`gan_steps` 400 -> 1200" in card
