"""The ``s2scale`` command line: parse options, build a config, call one pipeline function.

An :class:`~s2scale.errors.S2ScaleError` prints its message and exits with code 2, without a
traceback; any other exception keeps its traceback.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import click

from s2scale import __version__
from s2scale.cli_options import (
    RUN_OPTIONS,
    SEARCH_OPTIONS,
    handle_errors,
    run_config,
    search_config,
    with_options,
)

log = logging.getLogger("s2scale")


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="s2scale")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """s2scale: Sentinel-2 10 m -> 5 m super-resolution mosaics on Dask."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    # HTTP and object-store clients log request headers (Authorization, security tokens) at
    # DEBUG: keep them at INFO even under -vv so credentials never reach a log.
    for name in ("botocore", "aiobotocore", "s3fs", "urllib3", "fsspec"):
        logging.getLogger(name).setLevel(max(level, logging.INFO))
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
@handle_errors
def sample(out: Path, national: bool, seed: int, aoi: str | None) -> None:
    """Write the built-in simulated sample: COGs, orthophoto, 5 m truth and OUT/catalog.json."""
    from s2scale.errors import ConfigError
    from s2scale.pipeline import run_sample

    if aoi is not None and national:
        raise ConfigError("--aoi and --national exclude each other; give one of them")
    report = run_sample(out, national=national, seed=seed, aoi=_bbox(aoi) if aoi else None)
    _echo_json(report)


@main.command()
@with_options(SEARCH_OPTIONS)
@click.option("--json", "as_json", is_flag=True, help="Print the normalised scenes as JSON.")
@handle_errors
def search(as_json: bool, **search: Any) -> None:
    """Search Sentinel-2 L2A scenes and print them (id, date, tile, CRS, clouds, offset, hrefs)."""
    from s2scale.pipeline import run_search

    cfg = search_config(search)
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
@with_options(SEARCH_OPTIONS)
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
@handle_errors
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

    cfg = search_config(search).replace("cube", chunk_px=chunk_px).replace("cluster", kind=cluster)
    report = run_cube(cfg, out, dry_run=dry_run, overwrite=overwrite)
    _echo_json(report)


@main.command()
@with_options(RUN_OPTIONS)
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
    "--cluster",
    default=None,
    help="auto, local, local-gpu, kubernetes or a scheduler "
    "address tcp://HOST:PORT [auto: local-gpu when CUDA GPUs are visible].",
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
@handle_errors
def upscale(
    out: str,
    from_cube: Path | None,
    cluster: str | None,
    overwrite: bool,
    dry_run: bool,
    **options: Any,
) -> None:
    """Super-resolve Sentinel-2 to a seamless national 5 m mosaic (resumable Zarr, COG, STAC)."""
    from s2scale.pipeline import run_upscale

    cfg = run_config(options).replace("cluster", kind=cluster)
    report = run_upscale(cfg, out, dry_run=dry_run, overwrite=overwrite, from_cube=from_cube)
    _echo_json(report)


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Patch store to write (Zarr v3: lr, hr, split, masks, provenance); resumed if it exists.",
)
@click.option(
    "--orthophotos",
    multiple=True,
    help="Orthophotos: files, a folder, a glob ('tiles/*.tif'), a STAC JSON or a STAC API URL "
    "(with --ortho-collection); repeat for more. Without it: the simulator's pairs (--seeds).",
)
@click.option("--ortho-collection", default=None, help="STAC collection of the orthophoto items.")
@click.option(
    "--ortho-date",
    default=None,
    help="Acquisition date YYYY-MM-DD of the orthophotos [their metadata: ACQUISITION_DATE].",
)
@click.option("--ortho-crs", default=None, help="CRS of orthophotos whose files have none.")
@click.option(
    "--ortho-bands",
    default=None,
    help="Orthophoto bands in file order, e.g. red,green,blue,nir [descriptions or count].",
)
@click.option(
    "--bands", default=None, help="Store bands, e.g. blue,green,red [those of the orthophotos]."
)
@click.option("--stac", default=None, help="Sentinel-2 STAC API URL or local catalog file.")
@click.option("--collection", default=None, help="Sentinel-2 STAC collection [sentinel-2-l2a].")
@click.option(
    "--max-cloud",
    type=click.FloatRange(0, 100),
    default=None,
    help="Search only scenes with eo:cloud_cover at most this percentage.",
)
@click.option(
    "--window-days",
    type=click.IntRange(0),
    default=None,
    help="Largest time distance between orthophoto and observation, days [30].",
)
@click.option(
    "--observations",
    type=click.IntRange(1),
    default=None,
    help="Nearest clear observations per orthophoto, one task group each [1].",
)
@click.option(
    "--composite",
    is_flag=True,
    default=None,
    help="Pair each orthophoto with the median composite of its observations.",
)
@click.option(
    "--min-clear",
    type=click.FloatRange(0, 1),
    default=None,
    help="Least clear share (SCL) of the orthophoto's footprint in an observation [0.9].",
)
@click.option("--ssim-min", type=float, default=None, help="SSIM filter threshold [0.45].")
@click.option(
    "--max-shift", type=float, default=None, help="Largest displacement kept, LR pixels [0.5]."
)
@click.option("--no-coregister", is_flag=True, help="Do not correct the measured displacement.")
@click.option("--lr-patch-px", type=int, default=None, help="LR patch edge, 10 m pixels [96].")
@click.option("--stride-px", type=int, default=None, help="Patch lattice step [the patch edge].")
@click.option(
    "--block-m", type=float, default=None, help="Edge of the split blocks, metres [4 patches]."
)
@click.option("--seed", type=int, default=None, help="Seed of the split's block draws [0].")
@click.option(
    "--cluster",
    default=None,
    help="auto, local, local-gpu, kubernetes or a scheduler address tcp://HOST:PORT [auto].",
)
@click.option(
    "--groups-in-flight",
    type=click.IntRange(min=1),
    default=None,
    help="Task groups on the cluster at once [twice the cluster's threads].",
)
@click.option(
    "--skip-errors",
    is_flag=True,
    default=None,
    help="Leave out and count bad orthophotos (no CRS, no date, bands, no scene, cloudy) "
    "and failed groups instead of stopping.",
)
@click.option("--overwrite", is_flag=True, help="Replace a store of another configuration.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan (orthophotos, scenes, candidate observations) without reading pixels.",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="YAML with sections catalog, cluster and pairs; options given here override it.",
)
@click.option(
    "--seeds",
    default=None,
    help="Simulator mode: comma-separated simulator seeds [11,12,13,14,15,16].",
)
@click.option(
    "--no-real-ortho",
    is_flag=True,
    help="Simulator mode: leave out the real Zurich orthophoto in $S2SCALE_SHARED_DATA/orthophoto.",
)
@click.option(
    "--colocated",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Real co-located pairs mode: a folder of sites (Sentinel-2 revisits + a sharper image "
    "of the same place, WorldStrat layout), split by site (s2scale.pairs.colocated).",
)
@handle_errors
def pairs(
    out: Path,
    orthophotos: tuple[str, ...],
    stac: str | None,
    collection: str | None,
    max_cloud: float | None,
    cluster: str | None,
    groups_in_flight: int | None,
    skip_errors: bool | None,
    overwrite: bool,
    dry_run: bool,
    config: Path | None,
    seeds: str | None,
    no_real_ortho: bool,
    no_coregister: bool,
    colocated: Path | None,
    **options: Any,
) -> None:
    """Build (lr, hr) training pairs from orthophotos and Sentinel-2 on a Dask cluster.

    For each orthophoto, the nearest clear Sentinel-2 observations within --window-days are
    paired with it on the tile's UTM grid (HR 5 m nested in the 10 m pixels): mean filter and
    area resampling, co-registration check, histogram matching, 96/192 px patches, SSIM filter,
    spatial split. Without --orthophotos, the simulator's study-style and Wald-protocol pairs
    are written instead (--seeds). With --colocated DIR, real co-located pairs are cut instead:
    every kept revisit of every site, split by whole site.
    """
    import yaml

    from s2scale.config import RunConfig
    from s2scale.errors import ConfigError
    from s2scale.pairs import PairsConfig
    from s2scale.pipeline import run_colocated_pairs, run_pairs

    if colocated is not None:
        given = [k for k, v in options.items() if v is not None and k not in ("lr_patch_px",
                                                                            "stride_px")]
        if orthophotos or seeds or config or given:
            raise ConfigError(
                "--colocated takes only --out, --lr-patch-px, --stride-px and --overwrite; "
                f"leave out {', '.join(given) or '--orthophotos/--seeds/--config'}"
            )
        _echo_json(run_colocated_pairs(colocated, out, lr_patch_px=options["lr_patch_px"] or 96,
                                       stride_px=options["stride_px"], overwrite=overwrite))
        return
    sections: dict[str, Any] = {}
    if config is not None:
        try:
            sections = yaml.safe_load(config.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read config {str(config)!r}: {err}") from err
        if not isinstance(sections, dict):
            raise ConfigError(f"config {str(config)!r} must be a mapping of sections")
    pairs_section = dict(sections.pop("pairs", None) or {})
    known = set(PairsConfig.__dataclass_fields__)
    bad = sorted(set(pairs_section) - known)
    if bad:
        raise ConfigError(f"unknown keys {bad} in section 'pairs'; known: {sorted(known)}")
    cfg = RunConfig.from_dict(sections)
    cfg = cfg.replace("catalog", stac=stac, collection=collection, max_cloud_cover=max_cloud,
                      skip_errors=skip_errors)  # fmt: skip
    cfg = cfg.replace("cluster", kind=cluster)
    mapping = {"max_shift": "max_shift_px"}
    changes = {mapping.get(k, k): v for k, v in options.items()}
    if orthophotos:
        changes["orthophotos"] = orthophotos
    if no_coregister:
        changes["coregister"] = False
    changes["groups_in_flight"] = groups_in_flight
    pcfg = PairsConfig(**pairs_section).replace(**changes)
    if pcfg.orthophotos:
        if seeds or no_real_ortho:
            raise ConfigError(
                "--seeds and --no-real-ortho belong to the simulator mode; leave them out "
                "with --orthophotos"
            )
        report = run_pairs(out, config=pcfg, run=cfg, overwrite=overwrite, dry_run=dry_run)
    else:
        try:
            chosen = [int(v) for v in seeds.split(",")] if seeds else None
        except ValueError as err:
            raise ConfigError(f"--seeds {seeds!r} is not a comma-separated list of ints") from err
        report = run_pairs(out, seeds=chosen, include_real_ortho=not no_real_ortho)
    _echo_json(report)


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
@click.option(
    "--resume",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Continue from a training checkpoint of this run (WORK/NAME/checkpoints/last.pt), "
    "e.g. after preemption; the result is the same bit for bit.",
)
@handle_errors
def train(
    config: str,
    out: Path,
    data: Path | None,
    work: Path,
    cold_start: bool,
    no_eval: bool,
    resume: Path | None,
) -> None:
    """Train a generator (phase 1 pixel loss, phase 2 GAN + perceptual) and evaluate it."""
    from s2scale.extras import check_extra
    from s2scale.pipeline import run_train

    check_extra("train", "s2scale train")

    report = run_train(config, out, data=data, work=work, warm=not cold_start,
                       evaluate=not no_eval, resume=resume)  # fmt: skip
    _echo_json(report)


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Directory for the sample and all outputs.",
)
@click.option("--overwrite", is_flag=True, help="Replace outputs of an earlier run in OUT.")
@click.option("--model", default=None, help="Shipped generator name or checkpoint [srresnet].")
@handle_errors
def demo(out: Path, overwrite: bool, model: str | None) -> None:
    """Run the main job on the built-in sample (no internet, no cluster to set up).

    simulator -> search -> cube -> composite -> upscale -> national mosaic -> metrics against
    the simulator's 5 m truth, on a local Dask cluster. Writes OUT/mosaic.zarr, OUT/mosaic.tif,
    OUT/quicklook.png and OUT/report.json (+ report.md).
    """
    from s2scale.extras import check_extra
    from s2scale.pipeline import run_demo

    check_extra("eval", "s2scale demo (it scores the mosaic with LPIPS / ST-LPIPS)")
    report = run_demo(out, overwrite=overwrite, model=model)
    _echo_json(report)
    click.echo(f"done: outputs in {out.resolve()}", err=True)


from s2scale.cli_weights import weights  # noqa: E402  (a group of its own)
from s2scale.evaluate.cli import evaluate  # noqa: E402  (commands defined there)

main.add_command(evaluate)
main.add_command(weights)

from s2scale.deploy.cli import deploy  # noqa: E402  (a group of its own package)

main.add_command(deploy)

if __name__ == "__main__":  # pragma: no cover
    main()
