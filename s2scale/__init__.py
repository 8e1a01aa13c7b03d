"""s2scale: country-wide 5 m Sentinel-2 mosaics with super-resolution networks on Dask.

The public API is imported lazily so that ``import s2scale`` (and the command line) stays fast and
does not pull in torch until a model is needed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "search": "s2scale.catalog",
    "Scene": "s2scale.catalog",
    "load_cube": "s2scale.cube",
    "composite": "s2scale.composite",
    "mask_clouds": "s2scale.composite",
    "write_cube": "s2scale.cube",
    "read_cube": "s2scale.cube",
    "resolve_aoi": "s2scale.grid",
    "target_grid": "s2scale.grid",
    "upscale": "s2scale.infer",
    "mosaic": "s2scale.mosaic",
    "write_mosaic": "s2scale.mosaic",
    "open_mosaic": "s2scale.mosaic",
    "make_client": "s2scale.cluster",
    "build_generator": "s2scale.models",
    "load_generator": "s2scale.models",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str) -> Any:
    """Import public names on first use."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 's2scale' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
