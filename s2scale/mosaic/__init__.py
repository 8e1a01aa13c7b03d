"""Per-zone 5 m results -> one national grid: feathered blending, resumable Zarr, COG and STAC.

Data flow: :mod:`s2scale.infer` returns one lazy ``(band, y, x)`` uint16 array per UTM zone (or per
MGRS tile). :func:`mosaic` puts them onto one :class:`~s2scale.grid.TargetGrid` (default
EPSG:3035 at 5 m) with distance-based feathering, lazily, one task per national region.
:func:`write_mosaic` writes that array to a Zarr v3 store region by region and can resume after a
crash; :func:`export_cog`, :func:`write_stac` and :func:`quicklook` make files other tools read.

Modules (STYLE section 2 layers):

- :mod:`s2scale.mosaic.blend`: numpy kernels (:func:`feather_weights_block`,
  :func:`normalise_weights_block`, :func:`reproject_block`, :func:`blend_block`).
- :mod:`s2scale.mosaic.graph`: the lazy graph (:func:`mosaic`); nothing there computes.
- :mod:`s2scale.mosaic.store`: :func:`write_mosaic`, :func:`open_mosaic` (Zarr I/O, run manifest).
- :mod:`s2scale.mosaic.export`: :func:`export_cog`, :func:`write_stac`, :func:`quicklook`.
"""

from __future__ import annotations

from s2scale.mosaic.blend import (
    DEFAULT_FEATHER_PX,
    Region,
    ResamplingName,
    blend_block,
    feather_weights_block,
    normalise_weights_block,
    reproject_block,
)
from s2scale.mosaic.export import export_cog, quicklook, write_stac
from s2scale.mosaic.graph import SourceGrid, mosaic, mosaic_region_block, region_windows
from s2scale.mosaic.store import (
    StoreHandle,
    WriteReport,
    done_regions,
    open_mosaic,
    prepare_store,
    redact_url,
    write_mosaic,
    write_region,
)

__all__ = [
    "DEFAULT_FEATHER_PX",
    "Region",
    "ResamplingName",
    "SourceGrid",
    "StoreHandle",
    "WriteReport",
    "blend_block",
    "done_regions",
    "export_cog",
    "feather_weights_block",
    "mosaic",
    "mosaic_region_block",
    "normalise_weights_block",
    "open_mosaic",
    "prepare_store",
    "quicklook",
    "redact_url",
    "region_windows",
    "reproject_block",
    "write_mosaic",
    "write_region",
    "write_stac",
]
