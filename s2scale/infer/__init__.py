"""Seamless chunked super-resolution of cubes on Dask.

- :mod:`~s2scale.infer.tiling`: halos per generator and feathered sub-tile blending (numpy only).
- :mod:`~s2scale.infer.nodata`: filling no-data holes before the network (numpy only).
- :mod:`~s2scale.infer.consistency`: the projection that makes outputs reproduce their 10 m input
  under the nominal Sentinel-2 PSF (numpy only).
- :mod:`~s2scale.infer.predictor`: the per-worker model cache and the batched torch predictor.
- :mod:`~s2scale.infer.upscale`: the block kernel, the Dask graph and :func:`upscale`.

Model specs are resolved by :func:`s2scale.models.resolve_model`; :func:`weights_path` (where a
shipped checkpoint lives) is re-exported here for scripts and the images' build check.
"""

from __future__ import annotations

from s2scale.infer.consistency import consistency_radius_px, project_block
from s2scale.infer.nodata import fill_nodata
from s2scale.infer.predictor import (
    Predictor,
    TorchPredictor,
    clear_model_cache,
    forward_count,
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
from s2scale.infer.upscale import (
    ModelSetup,
    prepare_model,
    upscale,
    upscale_block,
    upscale_dask,
    upscale_window_block,
)
from s2scale.models.spec import weights_path

__all__ = [
    "HALO_PX",
    "ModelSetup",
    "Predictor",
    "TorchPredictor",
    "blend_weights",
    "clear_model_cache",
    "consistency_radius_px",
    "default_halo_px",
    "feather_1d",
    "fill_nodata",
    "forward_count",
    "get_model",
    "input_multiple",
    "model_cache_info",
    "prepare_model",
    "project_block",
    "resolve_device",
    "tile_process",
    "tile_starts",
    "upscale",
    "upscale_block",
    "upscale_dask",
    "upscale_window_block",
    "valid_mask",
    "weights_path",
]
