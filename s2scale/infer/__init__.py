"""Seamless chunked super-resolution of cubes on Dask.

- :mod:`~s2scale.infer.tiling`: halos per generator and feathered sub-tile blending (numpy only).
- :mod:`~s2scale.infer.predictor`: the per-worker model cache and the batched torch predictor.
- :mod:`~s2scale.infer.upscale`: the block kernel, the Dask graph and :func:`upscale`.
"""

from __future__ import annotations

from s2scale.infer.predictor import (
    Predictor,
    TorchPredictor,
    clear_model_cache,
    get_model,
    model_cache_info,
    resolve_device,
)
from s2scale.infer.tiling import (
    HALO_PX,
    blend_weights,
    default_halo_px,
    feather_1d,
    input_multiple,
    tile_process,
    tile_starts,
    valid_mask,
)
from s2scale.infer.upscale import upscale, upscale_block, upscale_dask, weights_path

__all__ = [
    "HALO_PX",
    "Predictor",
    "TorchPredictor",
    "blend_weights",
    "clear_model_cache",
    "default_halo_px",
    "feather_1d",
    "get_model",
    "input_multiple",
    "model_cache_info",
    "resolve_device",
    "tile_process",
    "tile_starts",
    "upscale",
    "upscale_block",
    "upscale_dask",
    "valid_mask",
    "weights_path",
]
