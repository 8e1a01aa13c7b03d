"""The ``s2scale`` command line: parse options, build a config, call one pipeline function.

An :class:`~s2scale.errors.S2ScaleError` prints its message and exits with code 2, without a
traceback; any other exception keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from s2scale import __version__
from s2scale.errors import S2ScaleError

log = logging.getLogger("s2scale")


def _handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn S2ScaleError into a clean message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except S2ScaleError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)

    return wrapper


def _config(search: dict[str, Any]) -> Any:
    """RunConfig from ``--config`` (optional YAML), overridden by the search options given."""
    from s2scale.config import RunConfig

    config = search["config"]
    cfg = RunConfig.from_yaml(config) if config else RunConfig()
    return cfg.replace(
        "catalog",
        stac=search["stac"],
        aoi=search["aoi"],
        datetime=search["datetime_"],
        max_cloud_cover=search["max_cloud"],
        collection=search["collection"],
        skip_errors=search["skip_errors"],
    )


def _bbox(text: str) -> tuple[float, float, float, float]:
    """``minx,miny,maxx,maxy`` in degrees, checked."""
    from s2scale.errors import ConfigError

    try:
        minx, miny, maxx, maxy = (float(v) for v in text.split(","))
    except ValueError as err:
        raise ConfigError(
            f"--aoi {text!r} is not 'minx,miny,maxx,maxy' in degrees (e.g. 11.9,47.4,12.1,47.6)"
        ) from err
    if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
        raise ConfigError(
            f"--aoi {text!r} is not a bbox in degrees with minx < maxx and miny < maxy"
        )
    return minx, miny, maxx, maxy


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


_common_search = [
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


def _search_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_common_search):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="s2scale")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """s2scale: Sentinel-2 10 m -> 5 m super-resolution mosaics on Dask."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    # distributed configures its own INFO loggers when imported; keep the cluster quiet unless
    # asked (dask reads this before distributed is first imported).
    if not verbose:
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Directory to write the sample into (created).",
)
@click.option(
    "--national",
    is_flag=True,
    help="Write the metadata-only catalog covering all of Austria (no pixels).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Simulator seed.")
@click.option(
    "--aoi",
    default=None,
    help="Simulate this area instead of the built-in one: 'minx,miny,maxx,maxy' in degrees.",
)
@_handle_errors
def sample(out: Path, national: bool, seed: int, aoi: str | None) -> None:
    """Write the built-in simulated sample: COGs, orthophoto, 5 m truth and OUT/catalog.json."""
    from s2scale.errors import ConfigError
    from s2scale.pipeline import run_sample

    if aoi is not None and national:
        raise ConfigError("--aoi and --national exclude each other; give one of them")
    report = run_sample(out, national=national, seed=seed, aoi=_bbox(aoi) if aoi else None)
    _echo_json(report)


@main.command()
@_search_options
@click.option("--json", "as_json", is_flag=True, help="Print the normalised scenes as JSON.")
@_handle_errors
def search(as_json: bool, **search: Any) -> None:
    """Search Sentinel-2 L2A scenes and print them (id, date, tile, CRS, clouds, offset, hrefs)."""
    from s2scale.pipeline import run_search

    cfg = _config(search)
    result = run_search(cfg)
    if as_json:
        _echo_json(
            {"scenes": [s.to_json() for s in result], "skipped": [list(s) for s in result.skipped]}
        )
        return
    for s in result:
        cc = "?" if s.cloud_cover is None else f"{s.cloud_cover:5.1f}%"
        click.echo(
            f"{s.datetime:%Y-%m-%d %H:%M}  {s.mgrs_tile}  EPSG:{s.epsg}  clouds {cc}  "
            f"offset {s.boa_offset:4d}  {s.id}"
        )
    click.echo(f"{len(result)} scenes, {len(result.skipped)} skipped", err=True)


@main.command()
@_search_options
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output Zarr store (one group per UTM zone).",
)
@click.option(
    "--chunk-px", type=int, default=None, help="Spatial chunk edge in 10 m pixels [1024]."
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace a store of another configuration (one of the same configuration is resumed).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan (scenes, zones, units, tasks) without reading pixels.",
)
@click.option(
    "--cluster",
    default=None,
    help="auto, local, local-gpu, kubernetes or a scheduler address tcp://HOST:PORT [auto].",
)
@_handle_errors
def cube(
    out: Path,
    chunk_px: int | None,
    overwrite: bool,
    dry_run: bool,
    cluster: str | None,
    **search: Any,
) -> None:
    """Build cloud-masked median composites per UTM zone into a resumable Zarr store.

    Each store chunk is one work unit that reads only the scenes overlapping it; a rerun
    computes only the missing chunks. 's2scale upscale --from-cube OUT' super-resolves from it.
    """
    from s2scale.pipeline import run_cube

    cfg = _config(search).replace("cube", chunk_px=chunk_px).replace("cluster", kind=cluster)
    report = run_cube(cfg, out, dry_run=dry_run, overwrite=overwrite)
    _echo_json(report)


@main.command()
@_search_options
@click.option(
    "--model",
    default=None,
    help="Shipped generator name (srresnet, realesrgan) or a checkpoint path [realesrgan].",
)
@click.option(
    "--out",
    required=True,
    help="Output Zarr store: a path or an object-store URL "
    "(s3://..., credentials from the environment).",
)
@click.option(
    "--from-cube",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Super-resolve composites from this 's2scale cube' store instead of searching.",
)
@click.option(
    "--region-px",
    type=int,
    default=None,
    help="Edge of one output region (one work unit, one Zarr chunk) in 5 m pixels [2048].",
)
@click.option(
    "--units-in-flight",
    type=click.IntRange(min=1),
    default=None,
    help="Work units on the cluster at once [2 per GPU worker].",
)
@click.option(
    "--halo-px",
    type=int,
    default=None,
    help="Context per chunk side in 10 m pixels [derived from the model].",
)
@click.option(
    "--cluster",
    default=None,
    help="auto, local, local-gpu, kubernetes or a scheduler "
    "address tcp://HOST:PORT [auto: local-gpu when CUDA GPUs are visible].",
)
@click.option("--crs", default=None, help="CRS of the national grid [EPSG:3035].")
@click.option("--device", default=None, help="auto, cuda or cpu [auto].")
@click.option(
    "--random-weights",
    is_flag=True,
    default=None,
    help="Use an untrained network of --model's architecture (benchmarks only).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing store of another "
    "configuration (a store of the same configuration is resumed).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan as JSON: scenes, zones, regions, units, tasks_total, output size, "
    "estimated GPU time; reads no pixels.",
)
@_handle_errors
def upscale(
    model: str | None,
    out: str,
    from_cube: Path | None,
    region_px: int | None,
    units_in_flight: int | None,
    halo_px: int | None,
    cluster: str | None,
    crs: str | None,
    device: str | None,
    random_weights: bool | None,
    overwrite: bool,
    dry_run: bool,
    **search: Any,
) -> None:
    """Super-resolve Sentinel-2 to a seamless national 5 m mosaic (resumable Zarr, COG, STAC)."""
    from s2scale.pipeline import run_upscale

    cfg = _config(search)
    cfg = cfg.replace(
        "infer", model=model, halo_px=halo_px, device=device, random_weights=random_weights
    )
    cfg = cfg.replace("cluster", kind=cluster, units_in_flight=units_in_flight)
    cfg = cfg.replace("mosaic", crs=crs, chunk_px=region_px)
    report = run_upscale(cfg, out, dry_run=dry_run, overwrite=overwrite, from_cube=from_cube)
    _echo_json(report)


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Patch store to write (Zarr v3: lr, hr, split).",
)
@click.option(
    "--seeds",
    default="11,12,13,14,15,16",
    show_default=True,
    help="Comma-separated simulator seeds (one simulated area each).",
)
@click.option(
    "--no-real-ortho",
    is_flag=True,
    help="Leave out the real Zurich orthophoto in $S2SCALE_SHARED_DATA/orthophoto (simulated LR).",
)
@_handle_errors
def pairs(out: Path, seeds: str, no_real_ortho: bool) -> None:
    """Build (lr, hr) training pairs: study-style orthophoto pairs and Wald-protocol pairs."""
    from s2scale.pipeline import run_pairs

    _echo_json(
        run_pairs(
            out, seeds=[int(v) for v in seeds.split(",")], include_real_ortho=not no_real_ortho
        )
    )


@main.command()
@click.option(
    "--config",
    required=True,
    help="TrainConfig YAML path, or a shipped config's name (srresnet, realesrgan).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for the trained checkpoint <config name>.pt (fp16).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="Patch store from 's2scale pairs' [built under --work if absent].",
)
@click.option(
    "--work",
    type=click.Path(path_type=Path),
    default=Path("runs/train"),
    show_default=True,
    help="Run folder: logs (CSV, TensorBoard), checkpoints.",
)
@click.option(
    "--cold-start",
    is_flag=True,
    help="Random initialisation instead of the interpolating warm start.",
)
@click.option("--no-eval", is_flag=True, help="Skip the held-out evaluation against bicubic.")
@_handle_errors
def train(
    config: str, out: Path, data: Path | None, work: Path, cold_start: bool, no_eval: bool
) -> None:
    """Train a generator (phase 1 pixel loss, phase 2 GAN + perceptual) and evaluate it."""
    from s2scale.pipeline import run_train

    report = run_train(config, out, data=data, work=work, warm=not cold_start, evaluate=not no_eval)
    _echo_json(report)


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Directory for the sample and all outputs.",
)
@click.option("--overwrite", is_flag=True, help="Replace outputs of an earlier run in OUT.")
@click.option("--model", default=None, help="Shipped generator name or checkpoint [realesrgan].")
@_handle_errors
def demo(out: Path, overwrite: bool, model: str | None) -> None:
    """Run the main job on the built-in sample (no internet, no cluster to set up).

    simulator -> search -> cube -> composite -> upscale -> national mosaic -> metrics against
    the simulator's 5 m truth, on a local Dask cluster. Writes OUT/mosaic.zarr, OUT/mosaic.tif,
    OUT/quicklook.png and OUT/report.json (+ report.md).
    """
    from s2scale.pipeline import run_demo

    report = run_demo(out, overwrite=overwrite, model=model)
    _echo_json(report)
    click.echo(f"done: outputs in {out.resolve()}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
