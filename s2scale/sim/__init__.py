"""The scene simulator (a product feature): landscape, S2 L2A scenes, truth, orthophoto, STAC.

Nothing here needs the network: :func:`write_sample` writes a small, deterministic Sentinel-2 L2A
sample (COGs + Earth Search-shaped STAC items) that every pipeline stage can run on, and
:func:`render_truth` gives the exact 5 m reflectance of the simulated world on any grid.
"""

from __future__ import annotations

from s2scale.sim.landscape import (
    BANDS,
    SPECTRA,
    WORLD_CRS,
    Cover,
    FineRaster,
    Landscape,
    apply_phenology,
)
from s2scale.sim.sample import (
    NATIONAL_BASE_HREF,
    SAMPLE_AOI,
    SAMPLE_SCENES,
    SampleInfo,
    make_collection,
    make_item,
    national_items,
    with_base_href,
    write_sample,
)
from s2scale.sim.scenes import (
    BOA_ADD_OFFSET,
    S2_PSF_SIGMA_M,
    SCL,
    TRUTH_PSF_SIGMA_M,
    SceneLayers,
    SceneSpec,
    SimulatedScene,
    render_orthophoto,
    render_truth,
    scene_layers,
    simulate_scene,
    sun_position,
    tile_window,
    to_dn,
    write_cog,
)

__all__ = [
    "BANDS",
    "BOA_ADD_OFFSET",
    "NATIONAL_BASE_HREF",
    "S2_PSF_SIGMA_M",
    "SAMPLE_AOI",
    "SAMPLE_SCENES",
    "SCL",
    "SPECTRA",
    "TRUTH_PSF_SIGMA_M",
    "WORLD_CRS",
    "Cover",
    "FineRaster",
    "Landscape",
    "SampleInfo",
    "SceneLayers",
    "SceneSpec",
    "SimulatedScene",
    "apply_phenology",
    "make_collection",
    "make_item",
    "national_items",
    "render_orthophoto",
    "render_truth",
    "scene_layers",
    "simulate_scene",
    "sun_position",
    "tile_window",
    "to_dn",
    "with_base_href",
    "write_cog",
    "write_sample",
]
