"""The training loop: L1 pre-training (phase 1), then adversarial fine-tuning (phase 2).

Phase 1 minimises the L1 loss only (SRCNN/SRResNet in the reference study stop here, set
``gan_steps=0``). Phase 2 starts from the phase-1 generator (its EMA when enabled, as Real-ESRGAN
starts from Real-ESRNet's EMA weights), builds the discriminator and fresh Adam optimisers, and
minimises ``pixel_weight * L1 + perceptual_weight * VGG + gan_weight * GAN`` while the
discriminator minimises its GAN loss.

Runs are resumable bit for bit from ``checkpoints/step_*.pt`` (see :mod:`s2scale.train.state`):
weights, EMA, optimisers, schedulers, step, data position and RNG states are all restored, and all
randomness of data and augmentations is a function of ``(seed, epoch, index)``. Under ``torchrun``
(``WORLD_SIZE > 1``) the networks are wrapped in DistributedDataParallel, data are sharded with a
:class:`~torch.utils.data.DistributedSampler` and only rank 0 logs, validates and writes files.
On CUDA set ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` for bit-exact repeatability.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from s2scale.errors import CheckpointError, ConfigError
from s2scale.models.weights import save_checkpoint
from s2scale.train.config import TrainConfig
from s2scale.train.data import IgnoreEpoch, PairDataset, ResumableSampler
from s2scale.train.engine import Run, unwrap
from s2scale.train.logger import MetricLogger
from s2scale.train.state import TrainState, load_state, restore_rng, save_state

__all__ = ["TrainResult", "train"]

log = logging.getLogger(__name__)

Progress = Callable[[Iterable[int]], Iterable[int]]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced."""

    generator_path: Path | None
    """Final generator in the :mod:`s2scale.models.weights` format (``None`` if stopped early)."""
    steps: int
    """Optimiser steps done."""
    metrics: dict[str, float]
    """Latest validation metrics, e.g. ``{"val/psnr": 31.2, "val/ssim": 0.91}``."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Rows of ``metrics.csv`` (rank 0)."""
    perceptual_backbone: str | None = None
    """Label of the backbone of the perceptual loss, e.g. ``"random VGG19 (...)"``."""
    output_dir: Path = Path()
    """Run folder."""


def _distributed() -> tuple[int, int]:
    """``(rank, world_size)``; initialises the process group under torchrun if needed."""
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _device(name: str) -> torch.device:
    """Resolve ``"auto"`` (per-rank CUDA device under torchrun, else CPU)."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic cuDNN for the duration of training, restoring the previous flags."""
    old = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = old


def train(
    config: TrainConfig,
    train_data: Dataset,
    val_data: Dataset | None = None,
    *,
    progress: Progress | None = None,
    resume: str | Path | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train a generator as configured; see the module docstring for the two phases.

    Parameters
    ----------
    config
        Run settings; ``config.output_dir`` receives ``metrics.csv``, ``tensorboard/``,
        ``checkpoints/`` and the final ``generator.pt``.
    train_data
        Dataset of ``(lr, hr)`` float32 pairs ``(C, h, w)``/``(C, H, W)`` of normalised
        reflectance, usually a :class:`~s2scale.train.data.PairDataset` (its ``augment``,
        ``degradation``, ``sensor_degradation`` and ``seed`` are set from ``config``); any other
        map-style dataset is indexed with plain integers and must then be deterministic itself
        for exact resume.
    val_data
        Validation pairs (not augmented), or ``None`` to skip validation.
    progress
        Wraps the iterable of step numbers, e.g. ``tqdm.tqdm``.
    resume
        A training checkpoint (``checkpoints/last.pt``) to continue from bit for bit.
    stop_after
        Stop once this many steps are done (a checkpoint is written then), e.g. to split a run
        over preemptible jobs; the schedule still follows ``config``.

    Returns
    -------
    TrainResult
        Final generator path (written by rank 0 at the end), metrics and history.

    Raises
    ------
    CheckpointError
        If ``resume`` is not a training checkpoint of the same arch, or the perceptual loss'
        VGG weights are missing (set ``perceptual_weights`` or ``random_backbone``).
    ConfigError
        If ``batch_size`` exceeds the training pairs per process, or the generator or
        discriminator kwargs are invalid.
    """
    rank, world = _distributed()
    device = _device(config.device)
    out_dir = Path(config.output_dir)
    train_data = _configured(train_data, config)
    run = Run(config, device, world, int(train_data[0][1].shape[-1]))
    state, resumed = _resume(run, config, resume)
    logger = MetricLogger(out_dir, enabled=rank == 0, resume_step=state.step if resumed else None)
    sampler = ResumableSampler(train_data, num_replicas=world, rank=rank, seed=config.seed)
    sampler.set_state(state.epoch, state.batch_in_epoch * config.batch_size)
    if sampler.num_samples < config.batch_size:
        raise ConfigError(
            f"batch_size={config.batch_size} exceeds the {sampler.num_samples} training pairs "
            f"per process ({len(train_data)} pairs, {world} processes); lower batch_size"
        )
    loader_kw = {
        "batch_size": config.batch_size,
        "num_workers": config.num_workers,
        "pin_memory": device.type == "cuda",
    }
    loader = DataLoader(
        train_data, sampler=sampler, drop_last=True, generator=torch.Generator(), **loader_kw
    )
    val_loader = (
        DataLoader(val_data, shuffle=False, generator=torch.Generator(), **loader_kw)
        if val_data is not None
        else None
    )
    stop = min(config.total_steps, stop_after if stop_after is not None else config.total_steps)
    ckpt_dir = out_dir / "checkpoints"

    def validate() -> None:
        if val_loader is not None and rank == 0:
            state.best = run.validate(val_loader)
            logger.log(state.step, 1 if state.step <= config.pretrain_steps else 2, state.best)
        if world > 1:
            torch.distributed.barrier()

    batches = iter(loader)
    steps = range(state.step, stop)
    with _deterministic():
        for _ in progress(steps) if progress else steps:
            try:
                lr, hr = next(batches)
            except StopIteration:  # epoch done
                if config.validate_every == 0:
                    validate()
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                sampler.set_state(state.epoch, 0)
                batches = iter(loader)
                lr, hr = next(batches)
            if run.disc is None and config.gan_steps > 0 and state.step >= config.pretrain_steps:
                run.enter_phase2(from_ema=True)
            phase = 1 if state.step < config.pretrain_steps else 2
            values = run.step(lr.to(device), hr.to(device), phase)
            state.step, state.batch_in_epoch = state.step + 1, state.batch_in_epoch + 1
            if state.step % config.log_every == 0:
                logger.log(state.step, phase, values)
            if config.validate_every and state.step % config.validate_every == 0:
                validate()
            if rank == 0 and (state.step % config.checkpoint_every == 0 or state.step == stop):
                save_state(
                    ckpt_dir,
                    state,
                    run.components(),
                    config=config.to_dict(),
                    sampler_seed=config.seed,
                )
    backbone = run.perceptual.backbone if run.perceptual else None
    gen_path = None
    if state.step >= config.total_steps:
        if not (config.validate_every and state.step % config.validate_every == 0):
            validate()
        gen_path = _save_generator(run, config, state, backbone, out_dir) if rank == 0 else None
    logger.close()
    return TrainResult(gen_path, state.step, dict(state.best), list(logger.rows), backbone, out_dir)


def _configured(train_data: Dataset, config: TrainConfig) -> Dataset:
    """A PairDataset with the config's augmentation, degradation and seed; others wrapped."""
    if not isinstance(train_data, PairDataset):
        return IgnoreEpoch(train_data)
    return PairDataset(
        hr=train_data.hr,
        lr=train_data.lr,
        scale=train_data.scale,
        normalization=train_data.normalization,
        augment=config.augment,
        degradation=config.degradation or train_data.degradation,
        sensor_degradation=config.sensor_degradation or train_data.sensor_degradation,
        bands=tuple(config.bands),
        seed=config.seed,
        fixed_lr=train_data.fixed_lr,
    )


def _resume(run: Run, config: TrainConfig, resume: str | Path | None) -> tuple[TrainState, bool]:
    """Load a training checkpoint into ``run`` (components, RNG); return its state."""
    if resume is None:
        return TrainState(), False
    payload = load_state(resume)
    if payload["config"].get("arch") != config.arch:
        raise CheckpointError(
            f"{resume} was trained with arch={payload['config'].get('arch')!r}, not {config.arch!r}"
        )
    comps = payload["components"]
    if "discriminator" in comps:
        run.enter_phase2(from_ema=False)
    for name, obj in run.components().items():
        if obj is not None and name in comps:
            obj.load_state_dict(comps[name])
    state = TrainState(
        payload["step"], payload["epoch"], payload["batch_in_epoch"], dict(payload["best"])
    )
    restore_rng(payload["rng"])
    log.info("resumed from %s at step %d", resume, state.step)
    return state, True


def _save_generator(
    run: Run, cfg: TrainConfig, state: TrainState, backbone: str | None, out_dir: Path
) -> Path:
    """Write the final (EMA) generator with a training summary and validation metrics."""
    model = copy.deepcopy(run.ema.module if run.ema is not None else unwrap(run.gen)).cpu()
    summary = {
        "steps": state.step,
        "epochs": state.epoch,
        "recipe": cfg.recipe,
        "pretrain_steps": cfg.pretrain_steps,
        "gan_steps": cfg.gan_steps,
        "ema": run.ema is not None,
        "perceptual_backbone": backbone,
        "random_backbone": bool(cfg.random_backbone and backbone),
        "config": cfg.to_dict(),
    }
    path = save_checkpoint(
        out_dir / "generator.pt",
        model,
        arch=cfg.arch,
        kwargs=cfg.arch_kwargs,
        bands=cfg.bands,
        scale=cfg.scale,
        normalization=cfg.normalization,
        training=summary,
        metrics=state.best,
    )
    log.info("training done after %d steps; generator saved to %s", state.step, path)
    return path
