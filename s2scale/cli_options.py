"""Command-line options shared by ``s2scale``'s commands and their mapping onto ``RunConfig``.

``s2scale upscale`` and ``s2scale deploy render|plan`` take the same run options (the deploy
commands render the run that ``upscale`` would start), so they are defined once here, as is the
error handler that turns an :class:`~s2scale.errors.S2ScaleError` into one line and exit code 2.
Only the command-line modules import this one.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from s2scale.errors import S2ScaleError

__all__ = [
    "RUN_OPTIONS",
    "RUN_OPTION_NAMES",
    "SEARCH_OPTIONS",
    "UPSCALE_OPTIONS",
    "handle_errors",
    "run_config",
    "search_config",
    "with_options",
]


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """An S2ScaleError becomes ``error: <message>`` on stderr and exit code 2 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except S2ScaleError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)

    return wrapper


def with_options(options: Sequence[Callable[..., Any]]) -> Callable[..., Any]:
    """Decorator applying click ``options`` in order (the first is listed first in ``--help``)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


SEARCH_OPTIONS: list[Callable[..., Any]] = [
    click.option(
        "--stac",
        help="STAC API URL or local catalog file (ItemCollection JSON, "
        "stac-geoparquet, static catalog).",
        required=False,
    ),
    click.option(
        "--aoi",
        help="Area of interest: 'austria', a GeoJSON path, WKT or "
        "'minx,miny,maxx,maxy' in degrees.",
        default=None,
    ),
    click.option(
        "--datetime",
        "datetime_",
        help="Period 'START/END' (ISO dates; '..' for open).",
        default=None,
    ),
    click.option(
        "--max-cloud",
        type=click.FloatRange(0, 100),
        default=None,
        help="Keep scenes with eo:cloud_cover at most this percentage.",
    ),
    click.option("--collection", default=None, help="STAC collection id [sentinel-2-l2a]."),
    click.option(
        "--skip-errors",
        is_flag=True,
        default=None,
        help="Skip and count malformed items and unreadable assets instead of failing.",
    ),
    click.option(
        "--config",
        type=click.Path(path_type=Path, exists=True, dir_okay=False),
        default=None,
        help="YAML run configuration; options given here override it.",
    ),
]
"""The search options of ``search``, ``cube``, ``upscale`` and ``deploy``."""

UPSCALE_OPTIONS: list[Callable[..., Any]] = [
    click.option(
        "--model",
        default=None,
        help="Shipped generator name (srresnet, realesrgan, ...) or a checkpoint path [srresnet].",
    ),
    click.option(
        "--region-px",
        type=int,
        default=None,
        help="Edge of one output region (one work unit, one Zarr chunk) in 5 m pixels [2048].",
    ),
    click.option(
        "--units-in-flight",
        type=click.IntRange(min=1),
        default=None,
        help="Work units on the cluster at once [2 per GPU worker].",
    ),
    click.option(
        "--halo-px",
        type=int,
        default=None,
        help="Context per chunk side in 10 m pixels [derived from the model].",
    ),
    click.option("--crs", default=None, help="CRS of the national grid [EPSG:3035]."),
    click.option("--device", default=None, help="Inference device: auto, cuda or cpu [auto]."),
    click.option(
        "--random-weights",
        is_flag=True,
        default=None,
        help="Use an untrained network of --model's architecture (benchmarks only).",
    ),
    click.option(
        "--consistency/--no-consistency",
        default=None,
        help="Project the output so that, degraded by the nominal Sentinel-2 PSF, it "
        "reproduces the 10 m input [on].",
    ),
    click.option(
        "--fill-nodata/--no-fill-nodata",
        default=None,
        help="Fill no-data holes before the network and mask them again after [on].",
    ),
]
"""The options of ``upscale`` that shape the run (beside the search options)."""

RUN_OPTIONS = SEARCH_OPTIONS + UPSCALE_OPTIONS
"""Everything ``s2scale upscale`` needs to build its :class:`~s2scale.config.RunConfig`."""

RUN_OPTION_NAMES: tuple[str, ...] = (
    "config", "stac", "aoi", "datetime_", "max_cloud", "collection", "skip_errors",
    "model", "region_px", "units_in_flight", "halo_px", "crs", "device", "random_weights",
    "consistency", "fill_nodata",
)  # fmt: skip
"""Parameter names of :data:`RUN_OPTIONS` (to split them from a command's own options)."""


def search_config(options: dict[str, Any]) -> Any:
    """RunConfig from ``--config`` (optional YAML), overridden by the search options given."""
    from s2scale.config import RunConfig

    o = options
    cfg = RunConfig.from_yaml(o["config"]) if o["config"] else RunConfig()
    return cfg.replace(
        "catalog",
        stac=o["stac"],
        aoi=o["aoi"],
        datetime=o["datetime_"],
        max_cloud_cover=o["max_cloud"],
        collection=o["collection"],
        skip_errors=o["skip_errors"],
    )


def run_config(options: dict[str, Any]) -> Any:
    """The :class:`~s2scale.config.RunConfig` of ``s2scale upscale`` from :data:`RUN_OPTIONS`."""
    o = options
    cfg = search_config(o)
    cfg = cfg.replace(
        "infer",
        model=o["model"],
        halo_px=o["halo_px"],
        device=o["device"],
        random_weights=o["random_weights"],
        consistency=o["consistency"],
        fill_nodata=o["fill_nodata"],
    )
    cfg = cfg.replace("cluster", units_in_flight=o["units_in_flight"])
    return cfg.replace("mosaic", crs=o["crs"], chunk_px=o["region_px"])
