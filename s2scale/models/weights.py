"""Writing generator checkpoints, rebuilding generators from them, importing official weights.

The format itself (metadata, validation) is described in :mod:`s2scale.models.checkpoint`;
reading a checkpoint file and resolving model specs is :mod:`s2scale.models.spec`'s job
(:func:`read_checkpoint` and :data:`SHIPPED` are re-exported here). Official BasicSR /
Real-ESRGAN ``.pth`` files are read with :func:`import_basicsr`; RGB weights are extended to more
bands with :func:`s2scale.models.adapt.adapt_bands`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from s2scale.errors import CheckpointError, ConfigError
from s2scale.models.adapt import adapt_bands, infer_basicsr_kwargs, unwrap_basicsr
from s2scale.models.checkpoint import (
    Checkpoint,
    Normalization,
    check_plain,
    coerce_band_names,
    describe_mismatch,
)
from s2scale.models.registry import GENERATORS, SCALES, build_generator
from s2scale.models.spec import SHIPPED, read_checkpoint

__all__ = [
    "SHIPPED",
    "export_half",
    "import_basicsr",
    "load_generator",
    "load_state_strict",
    "read_checkpoint",
    "save_checkpoint",
]

log = logging.getLogger(__name__)


def load_state_strict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str
) -> None:
    """Load ``state_dict`` into ``model`` with ``strict=True``, or raise a readable CheckpointError.

    Parameters
    ----------
    model
        The module to fill; its dtype and device are kept (tensors are cast on copy).
    state_dict
        Tensors by parameter/buffer name.
    source
        Where the tensors came from, for the error message.

    Raises
    ------
    CheckpointError
        If keys are missing or unexpected or a shape differs (first few of each are listed).
    """
    diff = describe_mismatch(model.state_dict(), state_dict)
    if diff:
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__} "
            f"(arch={getattr(model, 'arch', '?')!r}): {diff}"
        )
    model.load_state_dict(state_dict, strict=True)


def _atomic_save(payload: Mapping[str, Any], path: Path) -> None:
    """Write ``payload`` to ``path`` through a temporary file, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(dict(payload), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _cast(state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Detached CPU copy with floating-point tensors cast to ``dtype`` (integer buffers kept)."""
    return {
        k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().to("cpu"))
        for k, v in state_dict.items()
    }


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    bands: Sequence[str],
    normalization: Normalization | Mapping[str, Any],
    arch: str | None = None,
    kwargs: Mapping[str, Any] | None = None,
    scale: int | None = None,
    training: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write ``model`` and everything needed to rebuild it as one checkpoint file.

    The layout of ``model.state_dict()`` is checked against ``build_generator(arch, len(bands),
    scale, **kwargs)`` (built on the meta device, so it costs no memory) before anything is written;
    the file is written atomically (temporary file, then rename).

    Parameters
    ----------
    path
        Target file (parent folders are created), conventionally ``*.pt``.
    model
        The generator; its tensors are copied to the CPU.
    bands
        Band names in channel order, e.g. ``["blue", "green", "red", "nir"]``.
    normalization
        :class:`Normalization` or its dict form ``{"kind", "offset", "scale"}``.
    arch, kwargs, scale
        Registry name, constructor kwargs and scale; default to the ``arch``, ``build_kwargs`` and
        ``scale`` attributes that :func:`~s2scale.models.build_generator` sets on the model.
    training, metrics
        Free-form summaries of plain data (dict, list, str, int, float, bool, None).
    half
        Store floating-point tensors as float16 (half the size; loading casts back to float32).

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    ConfigError
        For missing or invalid metadata (unknown arch, band names, non-plain summaries).
    CheckpointError
        If the model's state dict does not match ``arch``/``kwargs``/``bands``/``scale``.
    """
    arch = arch if arch is not None else getattr(model, "arch", None)
    kwargs = dict(kwargs if kwargs is not None else getattr(model, "build_kwargs", {}))
    scale = scale if scale is not None else getattr(model, "scale", None)
    if arch not in GENERATORS:
        raise ConfigError(f"save_checkpoint needs arch, one of {sorted(GENERATORS)}; got {arch!r}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in SCALES:
        raise ConfigError(f"save_checkpoint needs scale, one of {SCALES}; got {scale!r}")
    names = coerce_band_names(bands, "save_checkpoint")
    norm = Normalization.coerce(normalization)
    for where, value in (("kwargs", kwargs), ("training", training), ("metrics", metrics)):
        check_plain(dict(value or {}), where)
    with torch.device("meta"):
        reference = build_generator(arch, bands=len(names), scale=scale, **kwargs)
    state = model.state_dict()
    diff = describe_mismatch(reference.state_dict(), state)
    if diff:
        raise CheckpointError(
            f"the model does not match arch={arch!r}, bands={len(names)}, scale={scale}, "
            f"kwargs={kwargs}: {diff}; pass the arch/kwargs the model was built with"
        )
    ckpt = Checkpoint(
        arch=arch,
        kwargs=kwargs,
        bands=names,
        scale=scale,
        normalization=norm,
        dtype="float16" if half else "float32",
        training=dict(training or {}),
        metrics=dict(metrics or {}),
        state_dict=_cast(state, torch.float16 if half else torch.float32),
    )
    out = Path(path)
    _atomic_save(ckpt.to_payload(), out)
    log.info(
        "saved %s checkpoint (%s, x%d, %s) to %s", arch, ",".join(names), scale, ckpt.dtype, out
    )
    return out


def _check_expected(ckpt: Checkpoint, bands: int | Sequence[str] | None, scale: int | None) -> None:
    """Compare a checkpoint with the caller's expectations."""
    if bands is not None:
        fits = len(ckpt.bands) == bands if isinstance(bands, int) else tuple(bands) == ckpt.bands
        if not fits:
            raise CheckpointError(
                f"checkpoint {ckpt.path} is for bands {list(ckpt.bands)} ({len(ckpt.bands)} bands, "
                f"in this order), but bands={bands!r} were requested; load the cube with the "
                "checkpoint's bands, or use a checkpoint trained for the requested bands "
                "(RGB weights can be extended with s2scale.models.adapt_bands)"
            )
    if scale is not None and scale != ckpt.scale:
        raise CheckpointError(
            f"checkpoint {ckpt.path} upscales x{ckpt.scale}, but scale={scale} was requested; "
            f"set the run's scale to {ckpt.scale} or use a x{scale} checkpoint"
        )


def load_generator(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    bands: int | Sequence[str] | None = None,
    scale: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """Rebuild a generator from a checkpoint, ready for inference.

    Parameters
    ----------
    path
        Checkpoint written by :func:`save_checkpoint`, or a registry name with shipped weights
        (:data:`SHIPPED`: ``"srcnn"``, ``"srresnet"``, ``"esrgan"``, ``"realesrgan"``), which
        loads ``s2scale/weights/<name>.pt``.
    device
        Where to put the model.
    bands
        Expected band count or band names (in order); checked against the checkpoint.
    scale
        Expected upscaling factor; checked against the checkpoint.
    dtype
        Parameter dtype of the returned model (float16 checkpoints are cast to it).

    Returns
    -------
    torch.nn.Module
        The generator in eval mode, mapping ``(N, C, H, W) -> (N, C, H*scale, W*scale)`` inputs
        normalised with ``model.normalization``. Attributes: ``arch``, ``bands`` (int), ``scale``,
        ``band_names`` (tuple of str), ``normalization`` (:class:`Normalization`) and
        ``checkpoint`` (the :class:`Checkpoint` without its state dict).

    Raises
    ------
    CheckpointError
        If the checkpoint is missing or invalid, does not fit its own arch, or does not match the
        expected ``bands``/``scale`` (the message names both values and the fix).
    """
    ckpt = read_checkpoint(path)
    _check_expected(ckpt, bands, scale)
    try:
        model = build_generator(ckpt.arch, bands=len(ckpt.bands), scale=ckpt.scale, **ckpt.kwargs)
    except ConfigError as err:
        raise CheckpointError(f"checkpoint {ckpt.path} cannot be rebuilt: {err}") from err
    load_state_strict(model, ckpt.state_dict, f"checkpoint {ckpt.path}")
    model.to(device=device, dtype=dtype).eval()
    metadata = {
        "band_names": ckpt.bands,
        "normalization": ckpt.normalization,
        "checkpoint": dataclasses.replace(ckpt, state_dict={}),
    }
    for key, value in metadata.items():
        setattr(model, key, value)
    return model


def export_half(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Copy checkpoint ``src`` to ``dst`` with float16 tensors (about half the size).

    :func:`load_generator` casts the weights back to float32 unless told otherwise; the outputs
    then differ from the float32 checkpoint's by float16 rounding of the weights only.

    Parameters
    ----------
    src
        An s2scale checkpoint.
    dst
        Target file.

    Returns
    -------
    pathlib.Path
        ``dst``, written atomically.

    Raises
    ------
    CheckpointError
        If ``src`` is not a valid checkpoint.
    """
    ckpt = read_checkpoint(src)
    half = dataclasses.replace(
        ckpt, dtype="float16", state_dict=_cast(ckpt.state_dict, torch.float16)
    )
    out = Path(dst)
    _atomic_save(half.to_payload(), out)
    return out


def import_basicsr(
    path_or_state_dict: str | os.PathLike[str] | Mapping[str, Any],
    arch: str = "realesrgan",
    *,
    bands: int = 3,
    source_bands: int = 3,
    scale: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a generator from official BasicSR / Real-ESRGAN weights, loaded with ``strict=True``.

    Reads ``params_ema`` if present, else ``params``, else the raw state dict, with
    ``torch.load(weights_only=True)``. ``scale`` and the constructor kwargs (``num_feat``,
    ``num_block``, ``num_grow_ch`` / ``num_conv``) are read off the tensor shapes. Supported:
    BasicSR ``RRDBNet`` (``RealESRGAN_x2plus`` with ``arch="realesrgan"``; ``RealESRGAN_x4plus``
    and BasicSR's ESRGAN x4 with either ``"realesrgan"`` or ``"esrgan"``, which are the same
    network at x4) and ``SRVGGNetCompact`` (``arch="srvgg"``). The original ESRGAN repository's
    ``RRDB_ESRGAN_x4.pth`` uses other key names and is not supported.

    Parameters
    ----------
    path_or_state_dict
        A ``.pth`` file or an already loaded dict.
    arch
        ``"realesrgan"``, ``"esrgan"`` or ``"srvgg"``.
    bands
        Bands of the returned model; if it differs from ``source_bands`` the weights are widened
        with :func:`~s2scale.models.adapt.adapt_bands` (e.g. ``bands=4`` for RGB+NIR).
    source_bands
        Bands the official weights were trained on (3, RGB, for all published models).
    scale
        Expected scale; checked against the weights when given.
    **kwargs
        Constructor kwargs overriding the inferred ones (e.g. ``act_type`` for a compact net
        without PReLU weights).

    Returns
    -------
    torch.nn.Module
        The generator (training mode, CPU, float32) with ``arch``, ``bands``, ``scale`` and
        ``build_kwargs`` set; save it with :func:`save_checkpoint`. Official RGB models expect
        RGB inputs in ``[0, 1]`` in the order red, green, blue.

    Raises
    ------
    CheckpointError
        If the file is missing or unreadable, or the weights do not fit ``arch``.
    """
    if isinstance(path_or_state_dict, Mapping):
        source, obj = "state dict", path_or_state_dict
    else:
        p = Path(path_or_state_dict)
        source = f"official weights {str(p)!r}"
        if not p.is_file():
            raise CheckpointError(
                f"{source} do not exist; download them from the BasicSR / Real-ESRGAN releases "
                "once and pass the local path (s2scale never downloads weights)"
            )
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
            raise CheckpointError(f"cannot read {source}: {err}") from err
    state = unwrap_basicsr(obj, source)
    inferred_scale, inferred = infer_basicsr_kwargs(arch, state, source_bands)
    if scale is not None and scale != inferred_scale:
        raise CheckpointError(
            f"{source} upscale x{inferred_scale}, but scale={scale} was requested"
        )
    if bands != source_bands:
        state = adapt_bands(state, arch, from_bands=source_bands, to_bands=bands)
    try:
        model = build_generator(arch, bands=bands, scale=inferred_scale, **{**inferred, **kwargs})
    except ConfigError as err:
        raise CheckpointError(f"{source} cannot be rebuilt as {arch!r}: {err}") from err
    load_state_strict(model, state, source)
    log.info("imported %s as %s (x%d, %d bands)", source, arch, inferred_scale, bands)
    return model
