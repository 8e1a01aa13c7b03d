"""One training run's networks, optimisers and the phase-1/phase-2 optimisation step.

Used by :mod:`s2scale.train.loop`: :class:`Run` owns the generator (DDP-wrapped when
distributed), its EMA, the discriminator and the perceptual loss (built on entering phase 2), the
Adam optimisers and MultiStepLR schedulers, and runs one step or one validation pass.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from s2scale.metrics import psnr_torch, ssim_torch
from s2scale.models import build_discriminator, build_generator
from s2scale.train.config import TrainConfig
from s2scale.train.consistency import ConsistencyProjection
from s2scale.train.losses import (
    EMA,
    PerceptualLoss,
    discriminator_gan_loss,
    generator_gan_loss,
    lowfreq_loss,
    pixel_loss,
)

__all__ = ["Run", "unwrap"]

log = logging.getLogger(__name__)


def unwrap(model: nn.Module) -> nn.Module:
    """Return the module inside a DDP wrapper."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class Run:
    """Networks, optimisers and counters of one run (private; :func:`train` drives it)."""

    def __init__(self, cfg: TrainConfig, device: torch.device, world: int, hr_px: int) -> None:
        self.cfg, self.device, self.world, self.hr_px = cfg, device, world, hr_px
        self.autocast_dtype = (
            torch.bfloat16
            if (cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda"))
            else None
        )
        gen = build_generator(
            cfg.arch, bands=len(cfg.bands), scale=cfg.scale, seed=cfg.seed, **cfg.arch_kwargs
        ).to(device)
        self.ema = EMA(gen, cfg.ema_decay) if cfg.ema_decay > 0 else None  # type: ignore[operator]
        self.gen = self._wrap(gen)
        self.opt_g = self._adam(self.gen, cfg.learning_rate)
        self.sched_g = self._schedule(self.opt_g)
        self.disc: nn.Module | None = None
        self.opt_d: torch.optim.Optimizer | None = None
        self.sched_d: torch.optim.lr_scheduler.LRScheduler | None = None
        self.perceptual: PerceptualLoss | None = None
        self.project = (
            ConsistencyProjection(cfg.bands, cfg.scale).to(device)
            if cfg.consistency != "off"
            else None
        )

    def _projected(self, sr: torch.Tensor, lr: torch.Tensor, phase: int) -> torch.Tensor:
        """``sr`` through the consistency projection where the config applies it to ``phase``."""
        if self.project is None or (self.cfg.consistency == "gan" and phase == 1):
            return sr
        return self.project(sr, lr)

    def _wrap(self, model: nn.Module) -> nn.Module:
        if self.world == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def _adam(self, model: nn.Module, rate: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=rate, betas=self.cfg.betas)

    def _schedule(self, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=list(self.cfg.lr_milestones), gamma=self.cfg.lr_gamma
        )

    def enter_phase2(self, *, from_ema: bool) -> None:
        """Build discriminator, perceptual loss and the phase-2 optimisers."""
        cfg = self.cfg
        if from_ema and self.ema is not None:
            unwrap(self.gen).load_state_dict(self.ema.state_dict())
        kwargs = dict(cfg.discriminator_kwargs)
        if cfg.discriminator == "vgg":
            kwargs.setdefault("input_size", self.hr_px)
        disc = build_discriminator(
            cfg.discriminator, bands=len(cfg.bands), seed=cfg.seed + 1, **kwargs
        ).to(self.device)
        self.disc = self._wrap(disc)
        self.opt_g = self._adam(self.gen, cfg.gan_learning_rate)
        self.sched_g = self._schedule(self.opt_g)
        self.opt_d = self._adam(self.disc, cfg.gan_learning_rate)
        self.sched_d = self._schedule(self.opt_d)
        if cfg.perceptual_weight > 0:  # type: ignore[operator]
            self.perceptual = PerceptualLoss(
                cfg.perceptual_layers,
                weights=cfg.perceptual_weights,
                backbone=cfg.perceptual_backbone,
                random_backbone=cfg.random_backbone,
                rgb_bands=_rgb_bands(cfg.bands),
                seed=cfg.seed,
                input_range=cfg.perceptual_range,
            ).to(self.device)
        log.info(
            "phase 2: %s discriminator, %s GAN, perceptual %s",
            cfg.discriminator,
            cfg.gan_kind,
            self.perceptual.backbone if self.perceptual else "off",
        )

    def components(self) -> dict[str, Any]:
        """Objects whose ``state_dict`` makes up a training checkpoint."""
        return {
            "generator": unwrap(self.gen),
            "ema": self.ema,
            "opt_g": self.opt_g,
            "sched_g": self.sched_g,
            "discriminator": self.disc and unwrap(self.disc),
            "opt_d": self.opt_d,
            "sched_d": self.sched_d,
        }

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _clip(self, model: nn.Module) -> float | None:
        if self.cfg.grad_clip <= 0:
            return None
        return float(nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip))

    def step(self, lr: torch.Tensor, hr: torch.Tensor, phase: int) -> dict[str, float]:
        """One optimiser step of generator (and discriminator in phase 2); returns losses."""
        cfg, out = self.cfg, {}
        if phase == 2:
            assert self.disc is not None and self.opt_d is not None  # built in enter_phase2
            self.disc.requires_grad_(False)
        with self._autocast():
            raw = self.gen(lr).float()
            sr = self._projected(raw, lr, phase)
            loss_pix = pixel_loss(sr, hr)
            total = loss_pix if phase == 1 else cfg.pixel_weight * loss_pix  # type: ignore[operator]
            if cfg.lowfreq_weight > 0:  # on the raw output: keeps the network's own radiometry
                loss_low = lowfreq_loss(raw, hr, cfg.lowfreq_px)
                total = total + cfg.lowfreq_weight * loss_low
                out["train/loss_lowfreq"] = loss_low
            if phase == 2:
                if self.perceptual is not None:
                    loss_per = self.perceptual(sr, hr).float()
                    total = total + cfg.perceptual_weight * loss_per  # type: ignore[operator]
                    out["train/loss_perceptual"] = loss_per
                real = self.disc(hr).float() if cfg.gan_kind == "relativistic" else None  # type: ignore[misc]
                fake = self.disc(sr).float()  # type: ignore[misc]
                loss_gan = generator_gan_loss(
                    cfg.gan_kind,
                    real if real is not None else fake,  # type: ignore[arg-type]
                    fake,
                )
                total = total + cfg.gan_weight * loss_gan  # type: ignore[operator]
                out["train/loss_gan"] = loss_gan
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        norm = self._clip(self.gen)
        self.opt_g.step()
        self.sched_g.step()
        if self.ema is not None:
            self.ema.update(unwrap(self.gen))
        if phase == 2:
            self.disc.requires_grad_(True)  # type: ignore[union-attr]
            with self._autocast():
                loss_d = discriminator_gan_loss(cfg.gan_kind, self.disc(hr).float(),  # type: ignore[arg-type, misc]
                                                self.disc(sr.detach()).float())  # type: ignore[misc] # fmt: skip
            self.opt_d.zero_grad(set_to_none=True)  # type: ignore[union-attr]
            loss_d.backward()
            self._clip(self.disc)  # type: ignore[arg-type]
            self.opt_d.step()  # type: ignore[union-attr]
            self.sched_d.step()  # type: ignore[union-attr]
            out["train/loss_d"] = loss_d
        out.update({"train/loss_pixel": loss_pix, "train/loss_total": total})
        values = {k: float(v.detach()) for k, v in out.items()}
        values["train/lr"] = self.opt_g.param_groups[0]["lr"]
        if norm is not None:
            values["train/grad_norm"] = norm
        return values

    @torch.no_grad()
    def validate(self, loader: DataLoader) -> dict[str, float]:
        """Mean PSNR/SSIM of the EMA (or plain) generator over ``loader``.

        The output is projected when ``consistency`` is on, as ``upscale`` returns it.
        """
        model = self.ema.module if self.ema is not None else unwrap(self.gen)
        was_training = model.training
        model.eval()
        psnrs, ssims = [], []
        for lr, hr in loader:
            lr, hr = lr.to(self.device), hr.to(self.device)
            with self._autocast():
                sr = model(lr).float()
            if self.project is not None:
                sr = self.project(sr, lr)
            psnrs.append(psnr_torch(sr, hr, self.cfg.val_data_range))
            ssims.append(ssim_torch(sr, hr, self.cfg.val_data_range))
        model.train(was_training)
        return {
            "val/psnr": float(torch.cat(psnrs).mean()),
            "val/ssim": float(torch.cat(ssims).mean()),
        }


def _rgb_bands(bands: tuple[str, ...]) -> tuple[int, int, int]:
    """Return the indices of red, green, blue in ``bands`` (falls back to the first three)."""
    if {"red", "green", "blue"} <= set(bands):
        return bands.index("red"), bands.index("green"), bands.index("blue")
    return 0, 1, 2
