"""Per-worker model cache and the batched, autocast torch predictor used inside Dask tasks.

A :class:`Predictor` is any callable ``(C, h, w) uint16 -> (C, h*scale, w*scale) uint16`` (0 = no
data in and out); tests pass a nearest-neighbour stand-in. :class:`TorchPredictor` is the real one:
a frozen dataclass of plain values (checkpoint path or registry name, device, dtype, tiling),
cheap to pickle into a graph. It fetches the generator from a per-process cache
(:func:`functools.lru_cache` keyed by checkpoint path, device, dtype and compile flag), so each
worker process loads a checkpoint once however many tasks it runs. Each block is copied to the
model's device once (uint16, from pinned host memory on CUDA) and
:func:`s2scale.infer.ops.process_block` does the rest there: it fills no-data holes
(``fill_radius_px``, ``context_px``), cuts the block into sub-tiles, runs them in batches under
:func:`torch.inference_mode` (``channels_last``; autocast to bfloat16/float16 on CUDA),
blends them and projects the result onto the images consistent with the input
(``consistency_mtf``, :mod:`s2scale.infer.consistency`); the uint16 result comes back in one
copy. Fill and projection are off in a bare predictor and on in the ones
:func:`s2scale.infer.prepare_model` builds.

Devices: ``"cuda"`` means the worker's current CUDA device (dask-cuda pins one GPU per worker
through ``CUDA_VISIBLE_DEVICES``, so it is ``cuda:0`` inside the worker); ``"auto"`` picks
``"cuda"`` when available, else ``"cpu"``. Values are float32 at most (never float64).
"""

from __future__ import annotations

import functools
import logging
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

import numpy as np
import torch
from torch import nn

from s2scale.errors import ConfigError
from s2scale.infer.consistency import CONSISTENCY_TAPS
from s2scale.infer.ops import process_block, projection_kernels
from s2scale.infer.tiling import (
    check_tiling,
    default_batch_size,
    default_tile_px,
    input_multiple,
)
from s2scale.models import Normalization, build_generator, load_generator

__all__ = [
    "DTypeName",
    "Predictor",
    "TorchPredictor",
    "clear_model_cache",
    "forward_count",
    "get_model",
    "model_cache_info",
    "resolve_device",
]

log = logging.getLogger(__name__)

DTypeName = Literal["auto", "float32", "bfloat16", "float16"]
_LOAD_LOCK = threading.Lock()  # worker threads share one cache; load each model once
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_FORWARD_LOCK = threading.Lock()
_forward_passes = 0  # model forward passes (batches) run in this process


class Predictor(Protocol):
    """Upscales one block: ``(C, h, w) uint16 -> (C, h*scale, w*scale) uint16``, 0 = no data.

    ``edges`` ``(top, bottom, left, right)``: LR px on each side of the block that mirror its own
    pixels because the source array ended there; a predictor may treat those sides as the image
    edge (:class:`TorchPredictor` projects onto the consistent images only over the real pixels)
    or ignore them.
    """

    def __call__(
        self, block: np.ndarray, *, edges: tuple[int, int, int, int] = (0, 0, 0, 0)
    ) -> np.ndarray:
        """Upscale ``block``."""
        ...


def resolve_device(device: str) -> torch.device:
    """``"auto"``/``"cuda"``/``"cuda:N"``/``"cpu"`` -> a concrete device in this process.

    ``"cuda"`` is the current CUDA device (the GPU dask-cuda made visible to this worker).

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device='cuda' but this process sees no CUDA GPU; use 'auto'/'cpu'")
        return torch.device("cuda", torch.cuda.current_device())
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {device!r}; use 'auto', 'cuda' or 'cpu'") from err


def _resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Autocast dtype: ``"auto"`` is bfloat16 on CUDA and float32 elsewhere."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ConfigError(f"dtype must be one of {['auto', *_DTYPES]}, got {dtype!r}")
    return _DTYPES[dtype]


def _tag(model: nn.Module, **attrs: Any) -> None:
    """Set plain metadata attributes (not parameters) on ``model``."""
    for key, value in attrs.items():
        setattr(model, key, value)


@functools.lru_cache(maxsize=4)
def get_model(
    checkpoint: str | None,
    device: str,
    dtype: str = "float32",
    compile: bool = False,
    *,
    arch: str | None = None,
    model_kwargs: tuple[tuple[str, object], ...] = (),
    bands: tuple[str, ...] = (),
    scale: int = 2,
    seed: int = 0,
) -> nn.Module:
    """The generator for a checkpoint (or a random-init registry net), loaded once per process.

    Parameters
    ----------
    checkpoint
        Checkpoint path; ``None`` builds a *random-weight* ``arch`` (tests and benchmarks).
    device
        A concrete device string such as ``"cpu"`` or ``"cuda:0"``.
    dtype
        Autocast dtype name; part of the cache key only (parameters stay float32).
    compile
        Wrap the model with :func:`torch.compile`.
    arch, model_kwargs, bands, scale, seed
        The random-weight generator (only with ``checkpoint=None``); ``bands`` are its band names.

    Returns
    -------
    torch.nn.Module
        The generator in eval mode, with ``band_names``, ``normalization`` and ``random_weights``.
    """
    dev = torch.device(device)
    if checkpoint is None:
        if arch is None:
            raise ConfigError("get_model needs a checkpoint path or arch= for random weights")
        model = build_generator(arch, len(bands), scale, seed=seed, **dict(model_kwargs)).eval()
        _tag(model, band_names=tuple(bands), normalization=Normalization(), random_weights=True)
        log.warning("using a RANDOM-WEIGHT %s generator (seed %d): outputs are not SR", arch, seed)
    else:
        model = load_generator(checkpoint, dev)
        _tag(model, random_weights=False)
        log.info("loaded %s onto %s", checkpoint, dev)
    # channels_last on every device: 1.6-2.3x faster convolutions on the CPU too (SRResNet)
    model = model.to(dev).to(memory_format=torch.channels_last)
    if compile:
        # attribute access (arch, normalization, ...) falls through to the wrapped module
        return cast(nn.Module, torch.compile(model))
    return model


def model_cache_info() -> functools._CacheInfo:
    """Hits and misses of this process's model cache (one miss per loaded checkpoint)."""
    return get_model.cache_info()


def forward_count() -> int:
    """Number of model forward passes (one per batch of sub-tiles) run in this process.

    Process-wide and never reset; tests ask each Dask worker ``client.run(forward_count)`` to see
    which workers ran the model.

    Returns
    -------
    int
        Forward passes of :class:`TorchPredictor` models since this process started.

    Examples
    --------
    >>> forward_count() >= 0
    True
    """
    return _forward_passes


def _count_forward() -> None:
    """Add one to :func:`forward_count` (thread-safe: worker threads share the counter)."""
    global _forward_passes
    with _FORWARD_LOCK:
        _forward_passes += 1


def clear_model_cache() -> None:
    """Drop this process's cached models (frees their memory)."""
    get_model.cache_clear()


@dataclass(frozen=True)
class TorchPredictor:
    """A :class:`Predictor` backed by a cached generator; plain, hashable, cheap to pickle.

    Examples
    --------
    >>> p = TorchPredictor(arch="srcnn", bands=("b",), model_kwargs=(("num_feat", 4),))
    >>> p(np.full((1, 4, 4), 1000, np.uint16)).shape
    (1, 8, 8)
    """

    checkpoint: str | None = None
    """Checkpoint path; ``None`` means a random-weight ``arch`` (then ``bands`` is required)."""
    arch: str | None = None
    """Registry name of the random-weight generator."""
    model_kwargs: tuple[tuple[str, object], ...] = ()
    """Constructor kwargs of the random-weight generator, as sorted pairs."""
    bands: tuple[str, ...] = ()
    """Band names of the random-weight generator."""
    scale: int = 2
    """Upscaling factor of the random-weight generator."""
    seed: int = 0
    """Seed of the random-weight generator."""
    device: str = "auto"
    """``"auto"``, ``"cuda"``, ``"cuda:N"`` or ``"cpu"``, resolved in the worker."""
    dtype: DTypeName = "auto"
    """Autocast dtype; ``"auto"`` is bfloat16 on CUDA, float32 on CPU."""
    tile_px: int | None = None
    """Largest sub-tile edge in LR px (GPU memory bound); None: the device's default
    (:data:`s2scale.infer.tiling.TILE_PX`, per generator on the CPU:
    :data:`~s2scale.infer.tiling.CPU_TILE_PX`). Tiles shrink to the smallest edge that needs no more
    of them (:func:`s2scale.infer.tiling.fit_tile_px`)."""
    overlap_px: int = 0
    """Overlap between neighbouring sub-tiles in LR px, >= 2 * halo_px."""
    halo_px: int = 0
    """Context each output pixel needs, in LR px."""
    batch_size: int | None = None
    """Sub-tiles per forward pass; None: the device's default
    (:data:`s2scale.infer.tiling.BATCH_SIZE`)."""
    compile: bool = False
    """Use :func:`torch.compile` (first call per shape is slow)."""
    fill_radius_px: int | None = None
    """Fill no-data holes before the network with this many rounds (None: holes enter as 0)."""
    context_px: int = 0
    """Outer ring of each block, LR px, that only feeds the fill (its output is 0, trimmed)."""
    consistency_mtf: tuple[float, ...] = ()
    """Nominal MTF at Nyquist per band for the consistency projection; empty: no projection."""
    consistency_taps: int = CONSISTENCY_TAPS
    """Half-length of the projection's inverse filter, LR px."""
    consistency_lowpass_px: float = 0.0
    """Gaussian low-pass (sigma, LR px) of the projection's residual; 0: full projection."""
    timed: bool = False
    """Add each stage's wall time to :func:`s2scale.infer.ops.stage_times` (benchmarks)."""

    def model(self) -> nn.Module:
        """The cached generator for this process."""
        dev = resolve_device(self.device)
        with _LOAD_LOCK:
            return get_model(
                self.checkpoint,
                str(dev),
                self.dtype,
                self.compile,
                arch=self.arch,
                model_kwargs=self.model_kwargs,
                bands=self.bands,
                scale=self.scale,
                seed=self.seed,
            )

    def __call__(
        self, block: np.ndarray, *, edges: tuple[int, int, int, int] = (0, 0, 0, 0)
    ) -> np.ndarray:
        """Upscale a ``(C, h, w)`` uint16 block to ``(C, h*scale, w*scale)`` uint16.

        ``edges``: LR px per side (top, bottom, left, right) that mirror the block's pixels
        (the array ended there); the consistency projection runs without them.
        """
        if block.ndim != 3 or block.dtype != np.uint16:
            raise ConfigError(f"expected a (C, h, w) uint16 block, got {block.dtype} {block.shape}")
        model = self.model()
        arch, scale = str(getattr(model, "arch", "")), int(cast(int, model.scale))
        dev = next(model.parameters()).device
        amp = _resolve_dtype(self.dtype, dev)
        norm = cast(Normalization, model.normalization)
        cuda = dev.type == "cuda"

        def forward(x: torch.Tensor) -> torch.Tensor:  # model units in and out
            x = x.contiguous(memory_format=torch.channels_last)
            autocast = (
                torch.autocast(dev.type, dtype=amp) if amp != torch.float32 else nullcontext()
            )
            with autocast:
                y = model(x)
            _count_forward()
            return y

        projection = None
        if self.consistency_mtf:
            if len(self.consistency_mtf) != block.shape[0]:
                raise ConfigError(
                    f"consistency_mtf has {len(self.consistency_mtf)} values for a block of "
                    f"{block.shape[0]} bands; give one nominal MTF per band"
                )
            projection = projection_kernels(
                tuple(self.consistency_mtf), scale, self.consistency_taps,
                float(self.consistency_lowpass_px), str(dev),
            )  # fmt: skip
        align = input_multiple(arch, scale)
        tile_px = self.tile_px or default_tile_px(dev.type, arch)
        batch_size = self.batch_size or default_batch_size(dev.type)
        check_tiling(tile_px, self.overlap_px, self.halo_px, align)
        host = torch.from_numpy(np.ascontiguousarray(block))
        with torch.inference_mode():
            # one copy of the uint16 block in (pinned, asynchronous), one of the result out
            x = host.pin_memory().to(dev, non_blocking=True) if cuda else host
            out = process_block(
                x, forward, scale=scale, tile_px=tile_px, overlap_px=self.overlap_px,
                halo_px=self.halo_px, batch_size=batch_size, align=align,
                fill_radius_px=self.fill_radius_px, context_px=self.context_px,
                projection=projection, edges=edges, timed=self.timed,
                normalization=(norm.offset, norm.scale),
            )  # fmt: skip
            if not cuda:
                return out.numpy()
            result = torch.empty(out.shape, dtype=torch.uint16, pin_memory=True)
            result.copy_(out, non_blocking=True)
            torch.cuda.current_stream(dev).synchronize()
        return result.numpy()
