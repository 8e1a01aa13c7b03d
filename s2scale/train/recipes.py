"""Recipes of the shipped generators: warm start, training run, fp16 checkpoint and model card.

:func:`train_shipped` trains a TrainConfig (``s2scale/configs/train/<name>.yaml`` or any YAML) on
a patch store (built by :func:`s2scale.train.sources.build_training_data` when none is given),
evaluates it against bicubic on held-out data (:mod:`s2scale.train.evaluation`), and saves the
fp16 checkpoint with its training summary and its model card ``<name>.md``
(:mod:`s2scale.train.cards`). Command line::

    s2scale train --config srresnet --out s2scale/weights       # CPU size (shipped)
    s2scale train --config srresnet-gpu --out s2scale/weights   # full size, on a GPU

for each of ``srcnn``, ``srresnet``, ``esrgan`` and ``realesrgan``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from s2scale.errors import ConfigError
from s2scale.pairs import read_patch_store
from s2scale.train.cards import write_model_card
from s2scale.train.config import DataConfig
from s2scale.train.evaluation import evaluate_all
from s2scale.train.realdata import build_mixed_store, mixed_indices
from s2scale.train.sources import DEFAULT_SEEDS, Progress, build_training_data

__all__ = ["CONFIG_DIR", "resolve_config", "train_shipped", "warm_start"]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
"""Where the package lies; only asked for its git commit (model card provenance)."""
CONFIG_DIR = Path(str(resources.files("s2scale"))) / "configs" / "train"
"""Where ``<name>.yaml`` of the shipped generators live (package data)."""
FIXED_LR_KINDS = ("real-colocated",)
"""Source kinds whose stored LR is the real input: never re-synthesised by a degradation."""
GPU_SUFFIX = "-gpu"
"""``<name>-gpu.yaml`` trains the full-size ``<name>`` on a GPU and ships as ``<name>.pt``."""


@torch.no_grad()
def _identity_(conv: torch.nn.Conv2d, bands: int, centre: int) -> None:
    """Output channel ``i < bands`` of ``conv`` passes input channel ``i`` through unchanged."""
    conv.weight[:bands].zero_()
    conv.bias[:bands].zero_()
    for i in range(bands):
        conv.weight[i, i, centre, centre] = 1.0


@torch.no_grad()
def _tent_(conv: torch.nn.Conv2d, bands: int, window: slice) -> None:
    """Zero ``conv``, then filter band ``i`` with the ``[1, 2, 1]`` tent in ``window``.

    After a nearest-neighbour x2 this makes bilinear upsampling.
    """
    tent = torch.tensor([1.0, 2.0, 1.0]) / 4
    conv.weight.zero_()
    conv.bias.zero_()
    for i in range(bands):
        conv.weight[i, i, window, window] = tent[:, None] * tent[None, :]


@torch.no_grad()
def warm_start(model: nn.Module) -> nn.Module:
    """Initialise a generator close to a plain interpolator, so L1 training starts from there.

    Short CPU runs cannot afford the thousands of steps a randomly initialised network needs to
    reproduce absolute reflectance levels; starting from an interpolator, training only has to
    learn the high-frequency correction. Extra channels keep their random initialisation and the
    residual branches start at zero (like zero-init residuals, Goyal et al. 2017).

    - ``srresnet`` (x2): exactly bilinear upsampling at initialisation (identity ``conv_first``,
      zero ``bn_body`` gain, identity sub-pixel convolution, ``conv_last`` = nearest neighbour
      followed by the ``[1, 2, 1]`` tent, which is bilinear for x2); valid for inputs >= 0.
    - ``realesrgan`` (x2, pixel-unshuffle layout): the mean of each 2x2 block (the
      pixel-unshuffled sub-pixels) upsampled by nearest neighbour and a tent filter (a blurred
      interpolator: a shift-invariant net cannot undo the unshuffle's phase at initialisation).
    - ``esrgan`` (x2, trunk at LR resolution): exactly bilinear, as ``srresnet``.
    - ``srcnn``: exactly its bicubic input (identity convolutions).
    """
    arch, bands = getattr(model, "arch", None), int(getattr(model, "bands", 4))
    if arch == "srresnet" and model.scale == 2:
        nf = model.conv_first.out_channels
        if nf < bands:
            raise ConfigError(f"warm_start needs num_feat >= {bands}, got {nf}")
        _identity_(model.conv_first, bands, 4)
        model.bn_body.weight.zero_()
        model.bn_body.bias.zero_()
        up = model.upsample[0][0]
        for i in range(bands):
            up.weight[i * 4 : i * 4 + 4].zero_()
            up.bias[i * 4 : i * 4 + 4].zero_()
            up.weight[i * 4 : i * 4 + 4, i, 1, 1] = 1.0
        _tent_(model.conv_last, bands, slice(3, 6))
        return model
    if arch == "realesrgan" and model.scale == 2:
        nf = model.conv_first.out_channels
        if nf < bands:
            raise ConfigError(f"warm_start needs num_feat >= {bands}, got {nf}")
        model.conv_first.weight[:bands].zero_()
        model.conv_first.bias[:bands].zero_()
        for i in range(bands):  # unshuffled channel i*4+k is sub-pixel k of band i
            model.conv_first.weight[i, i * 4 : i * 4 + 4, 1, 1] = 0.25
        model.conv_body.weight.zero_()
        model.conv_body.bias.zero_()
        for conv in (model.conv_up1, model.conv_up2, model.conv_hr):
            _identity_(conv, bands, 1)
        _tent_(model.conv_last, bands, slice(None))
        return model
    if arch == "esrgan" and model.scale == 2:
        # Trunk at LR resolution: identity conv_first, zero trunk residual (conv_body), identity
        # conv_up1 / conv_hr after the nearest x2 stage, conv_last the [1, 2, 1] tent: exactly
        # bilinear at initialisation (inputs >= 0 pass the LeakyReLUs unchanged).
        nf = model.conv_first.out_channels
        if nf < bands:
            raise ConfigError(f"warm_start needs num_feat >= {bands}, got {nf}")
        _identity_(model.conv_first, bands, 1)
        model.conv_body.weight.zero_()
        model.conv_body.bias.zero_()
        for conv in (model.conv_up1, model.conv_hr):
            _identity_(conv, bands, 1)
        _tent_(model.conv_last, bands, slice(None))
        return model
    if arch == "srcnn":
        # Identity through the three convolutions on the bicubic input: exactly bicubic at
        # initialisation for inputs >= 0 (the ReLUs pass them); other channels stay random.
        for conv, width in ((model.conv_first, 9), (model.conv_map, 5), (model.conv_last, 5)):
            if conv.out_channels < bands and conv is not model.conv_last:
                raise ConfigError(f"warm_start needs SRCNN widths >= {bands} channels")
            _identity_(conv, bands, width // 2)
        model.conv_last.weight.zero_()
        for i in range(bands):
            model.conv_last.weight[i, i, 2, 2] = 1.0
        return model
    raise ConfigError(
        f"warm_start supports srcnn, srresnet, esrgan and realesrgan at x2, got {arch!r}"
    )


def _step0_state(cfg: Any, directory: Path, hr_px: int, init: Callable[[nn.Module], Any]) -> Path:
    """A step-0 training checkpoint whose generator ``init`` set up (the EMA copies it)."""
    from s2scale.train.engine import Run, unwrap
    from s2scale.train.state import TrainState, save_state

    run = Run(cfg, torch.device("cpu"), 1, hr_px)
    gen = unwrap(run.gen)
    init(gen)
    if run.ema is not None:
        run.ema.load_state_dict(gen.state_dict())
    return save_state(
        directory, TrainState(), run.components(), config=cfg.to_dict(), sampler_seed=cfg.seed
    )


def _warm_start_state(cfg: Any, directory: Path, hr_px: int) -> Path:
    """A step-0 training checkpoint whose generator (and EMA) are :func:`warm_start`-ed."""
    return _step0_state(cfg, directory, hr_px, warm_start)


def _init_state(cfg: Any, directory: Path, hr_px: int, checkpoint: Path) -> Path:
    """A step-0 training checkpoint whose generator (and EMA) hold ``checkpoint``'s weights."""
    from s2scale.errors import CheckpointError
    from s2scale.models import read_checkpoint

    if not checkpoint.is_file():
        raise CheckpointError(
            f"init_checkpoint {str(checkpoint)!r} does not exist; train the base generator first "
            "(see the config's comment) or set init_checkpoint to an existing checkpoint"
        )
    ckpt = read_checkpoint(checkpoint)
    if ckpt.arch != cfg.arch or any(ckpt.kwargs.get(k) != v for k, v in cfg.arch_kwargs.items()):
        raise CheckpointError(
            f"init_checkpoint {str(checkpoint)!r} is {ckpt.arch} {dict(ckpt.kwargs)}, but the "
            f"config trains {cfg.arch} {cfg.arch_kwargs}; use a checkpoint of the same network"
        )
    weights = {k: v.float() for k, v in ckpt.state_dict.items()}
    return _step0_state(cfg, directory, hr_px, lambda gen: gen.load_state_dict(weights))


def _file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _git_commit() -> str | None:
    """The repository's HEAD commit, if it is a git checkout."""
    try:
        res = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return res.stdout.strip() or None


def _device_label(device: str) -> str:
    """What the run trained on, e.g. ``"cpu (x86_64, 2 threads)"``."""
    if device in ("cpu", "auto") and not torch.cuda.is_available():
        return (
            f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        )
    return device if device != "auto" else "cuda"


def resolve_config(config: str | Path) -> Path:
    """A TrainConfig YAML: a path, or the name of a shipped one (``"srresnet"``).

    Examples
    --------
    >>> resolve_config("srresnet").name
    'srresnet.yaml'
    """
    path = Path(config)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / f"{config}.yaml"
    if shipped.is_file():
        return shipped
    raise ConfigError(
        f"no training config {str(config)!r}: give a YAML path or a shipped name, one of "
        f"{sorted(p.stem for p in CONFIG_DIR.glob('*.yaml'))}"
    )


def train_shipped(
    name: str,
    out_dir: str | Path,
    *,
    config: str | Path | None = None,
    store: str | Path | None = None,
    work_dir: str | Path = "runs/shipped",
    seeds: Sequence[int] = DEFAULT_SEEDS,
    rebuild_data: bool = False,
    warm: bool = True,
    evaluate: bool = True,
    progress: Progress | None = None,
    resume: str | Path | None = None,
) -> Path:
    """Train a generator with a TrainConfig and save it fp16 with its model-card summary.

    Parameters
    ----------
    name
        Name of the run and of the checkpoint ``<name>.pt`` (a ``-gpu`` suffix is dropped from
        the file name: ``srresnet-gpu`` ships as ``srresnet.pt``).
    out_dir
        Folder of the checkpoint (e.g. ``s2scale/weights``).
    config
        TrainConfig YAML or shipped config name (:func:`resolve_config`); default ``name``.
    store
        Patch store to train on; default ``<work_dir>/patches.zarr``, built with
        :func:`~s2scale.train.sources.build_training_data` (``seeds``, the config's ``scale``)
        if absent or ``rebuild_data``. Its ``scale`` attribute must equal the config's.
    work_dir
        Run folder (training logs, checkpoints, ``<name>.report.json``).
    seeds
        Simulator seeds for a newly built store.
    rebuild_data
        Rebuild the store even if it exists.
    warm
        Start from :func:`warm_start` weights (through a step-0 training checkpoint that
        :func:`s2scale.train.loop.train` resumes from) instead of a random initialisation.
    evaluate
        Score the model and bicubic on held-out data
        (:func:`~s2scale.train.evaluation.evaluate_all`) into the checkpoint.
    progress
        Wraps the step iterable of :func:`s2scale.train.loop.train`.
    resume
        A training checkpoint of this run (``<work_dir>/<name>/checkpoints/last.pt`` or a
        ``step_*.pt``) to continue from instead of starting at step 0, e.g. after a preempted
        job; the loop resumes bit for bit. The summary records the checkpoint, its step and any
        settings of its config that differ from ``config`` (``resumed_from``).

    Returns
    -------
    pathlib.Path
        The fp16 checkpoint ``<out_dir>/<name>.pt``.
    """
    from s2scale.models import load_generator, save_checkpoint
    from s2scale.train.config import TrainConfig
    from s2scale.train.loop import train

    cfg_path = resolve_config(config if config is not None else name)
    cfg = TrainConfig.from_yaml(cfg_path)
    work = Path(work_dir)
    cfg = dataclasses.replace(cfg, output_dir=str(work / name))
    store_path = Path(store) if store is not None else work / _store_name(cfg)
    if store is None and (rebuild_data or not store_path.exists()):
        if cfg.data is not None:
            build_mixed_store(store_path, cfg.data, scale=cfg.scale)
        else:
            build_training_data(store_path, seeds=seeds, scale=cfg.scale)
    train_ds, val_ds, attrs = _datasets(store_path, cfg.scale, cfg.data)
    log.info("%s: %d train / %d val pairs, %d steps",
             name, len(train_ds), len(val_ds or ()), cfg.total_steps)  # fmt: skip
    t0 = time.perf_counter()
    hr_px = int(train_ds.hr.shape[-1])
    base = Path(cfg.init_checkpoint) if cfg.init_checkpoint else None
    if resume is not None:
        init: Path | None = Path(resume)
        resumed = _resumed_from(init, cfg)
    elif base is not None:
        init = _init_state(cfg, work / name / "init", hr_px, base)
        resumed = None
    else:
        init = _warm_start_state(cfg, work / name / "init", hr_px) if warm else None
        resumed = None
    result = train(cfg, train_ds, val_ds, progress=progress, resume=init)
    wall_s = time.perf_counter() - t0
    if result.generator_path is None:
        raise ConfigError(f"{name}: training stopped before the end; nothing to ship")
    model = load_generator(result.generator_path, "cpu")
    ckpt = model.checkpoint
    metrics: dict[str, Any] = {"val": dict(result.metrics)}
    summary = _card_summary(
        dict(ckpt.training),
        cfg=cfg,
        cfg_path=cfg_path,
        name=name,
        out_dir=out_dir,
        warm=warm,
        base=base,
        wall_s=wall_s,
        data={
            "store": str(store_path),
            "counts": attrs.get("counts", {}),
            "patches_by_kind": _patches_by_kind(attrs),
            "provenance": attrs.get("provenance", {}),
            "hr_patch_px": hr_px,
            "lr_patch_px": int(train_ds.lr.shape[-1]),
            "mix": cfg.data.weights if cfg.data is not None else None,
            "epoch_mix": attrs.get("epoch_mix"),
            "sensor_degradation": dataclasses.asdict(cfg.sensor_degradation)
            if cfg.sensor_degradation is not None
            else None,
        },
    )
    summary["parameters"] = int(sum(p.numel() for p in model.parameters()))
    if resumed is not None:
        summary["resumed_from"] = resumed
    out = Path(out_dir) / f"{name.removesuffix(GPU_SUFFIX)}.pt"
    meta = {
        "bands": list(ckpt.bands),
        "normalization": ckpt.normalization,
        "arch": ckpt.arch,
        "kwargs": ckpt.kwargs,
        "scale": ckpt.scale,
        "training": summary,
        "half": True,
    }
    save_checkpoint(out, model, metrics=metrics, **meta)
    if evaluate:  # score the shipped fp16 weights, then store the scores with them
        shipped = load_generator(out, "cpu")
        metrics["heldout"] = evaluate_all(shipped)
        save_checkpoint(out, shipped, metrics=metrics, **meta)
    if cfg.data is not None:  # the card describes the mixed real-data store of `data:`
        write_model_card(out)
    report = {"checkpoint": str(out), "training": summary, "metrics": metrics}
    (work / f"{name}.report.json").write_text(json.dumps(report, indent=2, default=str))
    log.info("%s: shipped %s after %.0fs", name, out, wall_s)
    return out


def _resumed_from(path: Path, cfg: Any) -> dict[str, Any]:
    """Checkpoint, step and config differences (``{key: [checkpoint's, now]}``) of a resume."""
    from s2scale.train.state import load_state

    payload = load_state(path)
    then, now = payload["config"], cfg.to_dict()
    changes = {
        k: [then.get(k), now.get(k)]
        for k in sorted(set(then) | set(now))
        if k != "output_dir" and then.get(k) != now.get(k)
    }
    return {"checkpoint": str(path), "step": int(payload["step"]), "config_changes": changes}


def _store_name(cfg: Any) -> str:
    """Patch store file name of a config: one per data recipe, so configs can share it."""
    if cfg.data is None:
        return "patches.zarr"
    text = json.dumps([dataclasses.asdict(cfg.data), cfg.scale], sort_keys=True, default=str)
    return f"patches-{hashlib.sha256(text.encode()).hexdigest()[:10]}.zarr"


def _datasets(
    store: Path, scale: int, data: DataConfig | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """Train and validation PairDatasets of a patch store whose scale must be ``scale``.

    With ``data``, the training patches are drawn by :func:`~s2scale.train.realdata.
    mixed_indices` with its mixing weights (``data.epoch_patches`` per epoch).
    """
    from s2scale.pairs import read_patch_provenance
    from s2scale.train.data import PairDataset

    lr_tr, hr_tr, attrs = read_patch_store(store, "train")
    lr_va, hr_va, _ = read_patch_store(store, "val")
    store_scale = int(attrs.get("scale", hr_tr.shape[-1] // max(lr_tr.shape[-1], 1)))
    if store_scale != scale:
        raise ConfigError(
            f"patch store {str(store)!r} holds x{store_scale} pairs but the config trains "
            f"x{scale}; build pairs with scale={scale} or use a config with scale: {store_scale}"
        )
    norm = attrs["normalization"]
    if data is not None:
        prov = read_patch_provenance(store)
        kinds = np.array([s.get("kind", "") for s in attrs["sources"]])
        src = prov["source"][prov["split"] == 0]
        kind_of = kinds[src]
        groups = None
        if data.balance == "files":
            names = [str(s.get("file") or s.get("name")) for s in attrs["sources"]]
            groups = np.array(names)[src]
        n = data.epoch_patches or len(kind_of)
        idx = mixed_indices(kind_of, data.weights, n, data.seed, groups=groups)
        lr_tr, hr_tr = lr_tr[idx], hr_tr[idx]
        fixed = np.isin(kind_of[idx], FIXED_LR_KINDS)
        attrs = {**attrs, "epoch_mix": {k: int((kind_of[idx] == k).sum()) for k in data.weights}}
    else:
        fixed = None
    train_ds = PairDataset(hr=hr_tr, lr=lr_tr, scale=scale, normalization=norm, fixed_lr=fixed)
    val_ds = (
        PairDataset(hr=hr_va[:96], lr=lr_va[:96], scale=scale, normalization=norm, augment=False)
        if len(lr_va)
        else None
    )
    return train_ds, val_ds, attrs


def _patches_by_kind(attrs: dict[str, Any]) -> dict[str, int]:
    """Patch counts per source kind of a patch store."""
    kinds: dict[str, int] = {}
    for src in attrs.get("sources", []):
        kind = src.get("kind", "unknown")
        kinds[kind] = kinds.get(kind, 0) + int(src.get("patches", 0))
    return kinds


def _card_summary(
    summary: dict[str, Any],
    *,
    cfg: Any,
    cfg_path: Path,
    name: str,
    out_dir: str | Path,
    warm: bool,
    wall_s: float,
    data: dict[str, Any],
    base: Path | None = None,
) -> dict[str, Any]:
    """The training summary stored in the checkpoint (plain data, loadable with weights_only)."""
    in_repo = cfg_path.resolve().is_relative_to(REPO_ROOT)
    summary.update(
        {
            "recipe_command": f"s2scale train --config {name} --out {out_dir}",
            "initialisation": (
                f"fine-tuned from {base} (sha256 {_file_sha256(base)[:16]})" if base is not None
                else "warm_start (interpolator-like, s2scale.train.recipes.warm_start)" if warm
                else "random (build_generator seed)"
            ),
            "config_file": str(cfg_path.resolve().relative_to(REPO_ROOT) if in_repo else cfg_path),
            "wall_time_s": round(wall_s, 1),
            "device": _device_label(cfg.device),
            "torch": str(torch.__version__),
            "git_commit": _git_commit(),
            "data": data,
            "perceptual_loss": summary.get("perceptual_backbone") or "none (L1 only)",
        }
    )
    return json.loads(json.dumps(summary, default=str))
