"""Orthophotos + Sentinel-2 -> ``(lr, hr)`` training patches, and Wald's-protocol pairs.

The pair pipeline of the reference study (arXiv 2410.00516):

1. scene choice (:mod:`~s2scale.pairs.scenes`): for each orthophoto, the Sentinel-2 observations
   nearest in time within a window whose footprint over it is clear (SCL) and valid;
2. alignment (:mod:`~s2scale.pairs.ortho_pixels`): on the tile's own UTM grid, the orthophoto
   is mean filtered and area-averaged onto the 5 m grid nested in the 10 m pixels
   (:func:`orthophoto_to_hr`), so the HR target never leaves the Sentinel-2 grid;
3. co-registration check (:func:`measure_shift_block`, phase correlation): pairs displaced by more
   than half an LR pixel are dropped, the median displacement is corrected;
4. spectral adjustment (:func:`match_histograms_block`): each HR band is matched to the
   co-located Sentinel-2 band over the common valid area, orthophoto R, G, B (, NIR) ->
   B04, B03, B02 (, B08);
5. patches (:func:`patch_origins`): 96 x 96 LR / 192 x 192 HR, fully valid only; the SSIM filter
   (:func:`patch_ssim`, >= 0.45); a spatial split by blocks of a fixed map grid with the
   study's proportions 1500/374/208 (:func:`location_splits`), no pixel shared between splits;
6. the Zarr patch store (:mod:`~s2scale.pairs.store`) with per-patch provenance, resumable group
   by group (:class:`PairStore`).

:func:`study_pairs` runs steps 2-5 on one window, :func:`extract_group` one task group (one
orthophoto x one observation) with its I/O; :mod:`s2scale.pipeline.pairs_run` runs them on a
Dask cluster. :func:`wald_pairs` makes pairs by Wald's protocol instead (the image is the HR
target, its degraded copy the LR input), and :func:`make_pairs` cuts, filters and splits one
co-located image pair (the simulator's training data).

All arrays are ``(band, y, x)``; DN arrays are uint16 harmonised digital numbers (reflectance x
10000) with 0 = no data; float arrays are reflectance with NaN or 0 = no data as stated.
"""

from __future__ import annotations

from s2scale.pairs.config import PairsConfig
from s2scale.pairs.extract import PAIR_KIND, GroupSpec, extract_group, read_lr, read_ortho
from s2scale.pairs.kernels import (
    SPLITS,
    PatchSet,
    area_downsample,
    extract_patches,
    make_pairs,
    patch_ssim,
    wald_pairs,
)
from s2scale.pairs.matching import match_histograms_block, measure_shift_block, patch_shifts
from s2scale.pairs.ortho import DATE_TAG, OrthoInfo, open_orthophoto, parse_acquisition_date
from s2scale.pairs.ortho_pixels import (
    OrthoWindow,
    nested_grid,
    orthophoto_to_hr,
    read_ortho_window,
    read_orthophoto,
    render_hr,
)
from s2scale.pairs.ortho_sources import list_orthophotos
from s2scale.pairs.scenes import Observation, candidate_observations, pair_window
from s2scale.pairs.splits import STUDY_SPLIT, location_splits, split_blocks
from s2scale.pairs.store import (
    PairStore,
    read_patch_provenance,
    read_patch_store,
    write_patch_store,
)
from s2scale.pairs.study import StudyPairs, best_lattice_offset, patch_origins, study_pairs

__all__ = [
    "DATE_TAG",
    "PAIR_KIND",
    "SPLITS",
    "STUDY_SPLIT",
    "GroupSpec",
    "Observation",
    "OrthoInfo",
    "OrthoWindow",
    "PairStore",
    "PairsConfig",
    "PatchSet",
    "StudyPairs",
    "area_downsample",
    "best_lattice_offset",
    "candidate_observations",
    "extract_group",
    "extract_patches",
    "list_orthophotos",
    "location_splits",
    "make_pairs",
    "match_histograms_block",
    "measure_shift_block",
    "nested_grid",
    "open_orthophoto",
    "orthophoto_to_hr",
    "pair_window",
    "parse_acquisition_date",
    "patch_origins",
    "patch_shifts",
    "patch_ssim",
    "read_lr",
    "read_ortho",
    "read_ortho_window",
    "read_orthophoto",
    "read_patch_provenance",
    "read_patch_store",
    "render_hr",
    "split_blocks",
    "study_pairs",
    "wald_pairs",
    "write_patch_store",
]
