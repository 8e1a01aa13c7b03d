"""Resumable training state: networks, optimisers, schedulers, step, data position and RNGs.

A training checkpoint (``checkpoints/step_XXXXXXXX.pt``, plus a copy ``last.pt``) holds everything
needed to continue a run bit for bit. It is a plain ``torch.save`` dict, not the inference
checkpoint format of :mod:`s2scale.models.weights` (that one is written at the end of training).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from s2scale.errors import CheckpointError

__all__ = ["TrainState", "capture_rng", "load_state", "restore_rng", "save_state"]

STATE_FORMAT = "s2scale-train-state"
STATE_VERSION = 1


@dataclass
class TrainState:
    """Counters of a run; the loop mutates it as it goes."""

    step: int = 0
    """Optimiser steps done (phase 1 and 2 together)."""
    epoch: int = 0
    """Current pass over the training data."""
    batch_in_epoch: int = 0
    """Batches of ``epoch`` already consumed."""
    best: dict[str, float] = field(default_factory=dict)
    """Latest validation metrics."""


def capture_rng() -> dict[str, Any]:
    """States of Python's, numpy's and torch's global RNGs (CUDA too, if present)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Restore the states returned by :func:`capture_rng`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(
    directory: Path,
    state: TrainState,
    components: Mapping[str, Any],
    *,
    config: Mapping[str, Any],
    sampler_seed: int,
) -> Path:
    """Write ``directory/step_XXXXXXXX.pt`` and ``directory/last.pt`` atomically.

    ``components`` maps names (``generator``, ``ema``, ``discriminator``, ``opt_g``, ...) to
    objects with ``state_dict()``; ``None`` entries are skipped.
    """
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "step": state.step,
        "epoch": state.epoch,
        "batch_in_epoch": state.batch_in_epoch,
        "best": dict(state.best),
        "sampler_seed": sampler_seed,
        "rng": capture_rng(),
        "config": dict(config),
        "components": {k: v.state_dict() for k, v in components.items() if v is not None},
    }
    path = directory / f"step_{state.step:08d}.pt"
    for target in (path, directory / "last.pt"):
        tmp = target.with_suffix(".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, target)
    return path


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint written by :func:`save_state`.

    Raises :class:`~s2scale.errors.CheckpointError` if the file is missing or is not one.
    """
    try:
        # The payload holds RNG states (tuples, numpy arrays), so it is not weights_only-safe;
        # only load training checkpoints you wrote yourself.
        payload = torch.load(Path(path), map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as err:
        raise CheckpointError(f"cannot read training checkpoint {str(path)!r}") from err
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is not an s2scale training checkpoint (format {STATE_FORMAT!r}); "
            "to start from generator weights, load them with s2scale.models.load_generator"
        )
    return payload
