"""``s2scale evaluate``: options -> config -> one call.

Only click is imported at module level (the command imports the rest when it runs), so adding
it to the ``s2scale`` group keeps ``s2scale --help`` fast. An
:class:`~s2scale.errors.S2ScaleError` prints its message and exits with code 2.
"""

from __future__ import annotations

from pathlib import Path

import click

from s2scale.cli_options import handle_errors
from s2scale.errors import ConfigError

__all__ = ["evaluate"]


def _ints(text: str | None, what: str, count: int | None = None) -> tuple[int, ...] | None:
    """Comma-separated integers, checked."""
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError as err:
        raise ConfigError(f"{what} {text!r} must be comma-separated integers") from err
    if count is not None and len(values) != count:
        raise ConfigError(f"{what} {text!r} needs {count} comma-separated integers")
    return values


@click.command()
@click.option("--lr", "lr", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Input raster (10 m-like, harmonised DN). With --hr: full reference; alone: "
              "no-reference checks.")  # fmt: skip
@click.option(
    "--hr",
    "hr",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Reference raster on the exact 2x nested grid of --lr (or with --wald).",
)
@click.option(
    "--wald", is_flag=True, help="Make the input from --hr with the nominal Sentinel-2 degradation."
)
@click.option(
    "--patches",
    type=click.Path(path_type=Path, exists=True),
    help="Patch store (s2scale pairs): mean and std per split.",
)
@click.option(
    "--pairs",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Folder of real co-located sites (Sentinel-2 revisits + a sharper image of the same "
    "place, WorldStrat layout): scores per site and per split (see s2scale.pairs.colocated).",
)
@click.option(
    "--mosaic",
    type=click.Path(path_type=Path, exists=True),
    help="Mosaic store (s2scale upscale) to score against --reference.",
)
@click.option("--reference", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="With --mosaic: a raster at the mosaic's resolution (full reference) or at "
              "twice its pixel size (its input: no-reference checks).")  # fmt: skip
@click.option(
    "--models",
    default="bicubic,lanczos,bicubic+projection,srresnet,srresnet:raw,realesrgan,realesrgan:raw",
    show_default=True,
    help="Comma-separated: baselines (bicubic, lanczos, bicubic+projection), registry names "
    "(shipped weights) or PATH.pt; NAME:raw runs a network without the consistency projection.",
)
@click.option(
    "--skip-missing",
    is_flag=True,
    help="Leave out registry models without shipped weights instead of failing.",
)
@click.option("--perceptual", type=click.Choice(["auto", "lpips", "stlpips"]), default="auto",
              show_default=True,
              help="auto: LPIPS if imported (s2scale weights import-lpips), else ST-LPIPS, "
              "labelled; lpips: fail without the weights.")  # fmt: skip
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for report.json, report.md, crops.png, metrics.png.",
)
@click.option(
    "--window", default=None, help="ROW,COL,ROWS,COLS of the input (LR) pixels to score [all]."
)
@click.option(
    "--bands",
    default=None,
    help="1-based band indices of blue,green,red,nir in the rasters [1,2,3,4].",
)
@click.option(
    "--dn-scale",
    type=float,
    default=None,
    help="DN per unit reflectance of the rasters [10000 for integers, 1 for floats].",
)
@click.option(
    "--hr-pixel-m",
    type=float,
    default=None,
    help="With --wald: area-average the HR to this pixel size first (metres).",
)
@click.option(
    "--split",
    "splits",
    multiple=True,
    type=click.Choice(["train", "val", "test"]),
    help="With --patches or --pairs: splits to score [all].",
)
@click.option(
    "--max-patches",
    type=int,
    default=200,
    show_default=True,
    help="With --patches: at most this many patches per split (seeded sample).",
)
@click.option(
    "--border-px",
    type=int,
    default=8,
    show_default=True,
    help="Output pixels left out along every edge (even).",
)
@click.option("--device", default="auto", show_default=True, help="auto, cuda or cpu.")
@handle_errors
def evaluate(
    lr: Path | None, hr: Path | None, wald: bool, patches: Path | None, pairs: Path | None,
    mosaic: Path | None,
    reference: Path | None, models: str, skip_missing: bool, perceptual: str, out: Path,
    window: str | None, bands: str | None, dn_scale: float | None, hr_pixel_m: float | None,
    splits: tuple[str, ...], max_patches: int, border_px: int, device: str,
) -> None:  # fmt: skip
    r"""Score models (and bicubic) on rasters, Wald pairs, a patch store or a mosaic.

    \b
    s2scale evaluate --lr LR.tif --hr HR.tif --models bicubic,srresnet,realesrgan --out DIR
    s2scale evaluate --hr HR.tif --wald --models bicubic,srresnet --out DIR
    s2scale evaluate --lr S2_10m.tif --models bicubic,srresnet --out DIR   # no reference
    s2scale evaluate --patches pairs.zarr --models bicubic,srresnet --out DIR
    s2scale evaluate --pairs ../shared/data/worldstrat --split test --out DIR
    s2scale evaluate --mosaic mosaic.zarr --reference ref.tif --out DIR
    """
    from s2scale.evaluate import run
    from s2scale.evaluate.score import EvaluateConfig
    from s2scale.extras import check_extra

    check_extra("eval", "s2scale evaluate")

    given = [name for name, on in (("--lr/--hr", lr is not None or hr is not None),
                                   ("--patches", patches is not None),
                                   ("--pairs", pairs is not None),
                                   ("--mosaic", mosaic is not None)) if on]  # fmt: skip
    if len(given) != 1:
        raise ConfigError(
            "choose one input: --lr LR.tif [--hr HR.tif], --hr HR.tif --wald, --patches STORE, "
            "--pairs DIR or "
            f"--mosaic STORE --reference RASTER (got {', '.join(given) or 'none'})"
        )
    if wald and (hr is None or lr is not None):
        raise ConfigError("--wald needs --hr HR.tif and no --lr (the input is made from the HR)")
    if hr is not None and lr is None and not wald:
        raise ConfigError("--hr needs --lr LR.tif, or --wald to make the input from the HR")
    if (mosaic is None) != (reference is None):
        raise ConfigError("--mosaic STORE and --reference RASTER go together")
    names = tuple(m.strip() for m in models.split(",") if m.strip())
    cfg = EvaluateConfig(models=names, skip_missing=skip_missing, perceptual=perceptual,  # type: ignore[arg-type]
                         border_px=border_px, device=device)  # fmt: skip
    win = _ints(window, "--window", 4)
    band_idx = _ints(bands, "--bands", 4)
    if mosaic is not None and reference is not None:
        report = run.evaluate_mosaic(mosaic, reference, out, cfg, window=win, bands=band_idx,
                                     dn_scale=dn_scale)  # fmt: skip
    elif pairs is not None:
        report = run.evaluate_colocated(pairs, out, cfg, splits=splits or None)
    elif patches is not None:
        report = run.evaluate_patches(patches, out, cfg, splits=splits or None,
                                      max_patches=max_patches)  # fmt: skip
    elif wald and hr is not None:
        report = run.evaluate_wald(hr, out, cfg, window=win, bands=band_idx, dn_scale=dn_scale,
                                   pixel_m=hr_pixel_m)  # fmt: skip
    else:
        assert lr is not None  # checked above
        report = run.evaluate_rasters(lr, hr, out, cfg, window=win, bands=band_idx,
                                      dn_scale=dn_scale)  # fmt: skip
    click.echo((out / "report.md").read_text())
    click.echo(f"done: {report['files']['json']}", err=True)
