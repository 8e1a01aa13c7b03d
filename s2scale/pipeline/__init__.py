"""Orchestration around one plan: the only package (with :mod:`s2scale.cli`) that computes.

- :mod:`~s2scale.pipeline.plan`: the immutable plan of a run (scenes, zones, grid, work units),
  built once and printed by ``--dry-run``.
- :mod:`~s2scale.pipeline.units`: the graph of one work unit (composite, SR, blend, write).
- :mod:`~s2scale.pipeline.waves`: units in bounded waves with progress, retries and a watchdog.
- :mod:`~s2scale.pipeline.cube_run`: the composite stage (:func:`run_cube`).
- :mod:`~s2scale.pipeline.upscale_run`: the upscale stage (:func:`plan_upscale`,
  :func:`run_upscale`), COG and STAC export included.
- :mod:`~s2scale.pipeline.pairs_run`: training pairs from a STAC search, on a cluster.
- :mod:`~s2scale.pipeline.demo`: the main job on the built-in sample (:func:`run_demo`).
- :mod:`~s2scale.pipeline.jobs`: the sample, training pairs and training.

Each ``run_*`` returns a JSON-serialisable report of what it did.
"""

from __future__ import annotations

from s2scale.pipeline.common import DEMO_DATETIME, run_search, timed
from s2scale.pipeline.cube_run import run_cube
from s2scale.pipeline.demo import run_demo
from s2scale.pipeline.jobs import run_colocated_pairs, run_pairs, run_sample, run_train
from s2scale.pipeline.plan import Plan, build_plan
from s2scale.pipeline.upscale_run import plan_upscale, run_upscale

__all__ = [
    "DEMO_DATETIME",
    "Plan",
    "build_plan",
    "plan_upscale",
    "run_colocated_pairs",
    "run_cube",
    "run_demo",
    "run_pairs",
    "run_sample",
    "run_search",
    "run_train",
    "run_upscale",
    "timed",
]
