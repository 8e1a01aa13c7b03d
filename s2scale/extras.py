"""Optional dependencies, grouped as the package's extras, and the error that names them.

The core install is what the upscale job needs (catalog, cube, infer, mosaic, pipeline). The rest:

- ``s2scale[eval]``: LPIPS and ST-LPIPS (``lpips``, ``stlpips-pytorch``), for ``s2scale
  evaluate``, ``s2scale demo`` (it scores its mosaic) and perceptual scores in the library;
- ``s2scale[train]``: the ``eval`` packages plus ``torchvision`` (JPEG degradations) and
  ``tensorboard`` (training logs), for ``s2scale train``;
- ``s2scale[deploy]``, ``s2scale[gpu]``: cluster clients and ``dask-cuda``;
- ``s2scale[all]``: eval, train and deploy.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Literal

from s2scale.errors import MissingExtraError

__all__ = ["EXTRA_MODULES", "Extra", "check_extra", "import_extra"]

Extra = Literal["eval", "train"]

EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "eval": ("lpips", "stlpips_pytorch"),
    "train": ("lpips", "stlpips_pytorch", "torchvision", "tensorboard"),
}
"""Top-level modules each extra provides (import names, not distribution names)."""


def _message(what: str, missing: str, extra: str) -> str:
    """The one wording of a missing-extra error."""
    return (
        f"{what} needs the optional package {missing!r}, which is not installed; install it "
        f"with: pip install 's2scale[{extra}]'"
    )


def import_extra(module: str, extra: Extra, what: str) -> ModuleType:
    """Import ``module`` of extra ``extra``, or raise an error naming the install command.

    Parameters
    ----------
    module
        Import name, e.g. ``"lpips"`` or ``"torchvision.io"``.
    extra
        The ``s2scale[...]`` extra that installs it.
    what
        What needs it, for the message (``"LPIPS"``).

    Returns
    -------
    types.ModuleType
        The imported module.

    Raises
    ------
    MissingExtraError
        If the import fails; the message says ``pip install 's2scale[<extra>]'``.

    Examples
    --------
    >>> import_extra("json", "eval", "a doctest").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(_message(what, module.split(".")[0], extra)) from err


def check_extra(extra: Extra, what: str) -> None:
    """Raise before any work starts if a module of ``extra`` is not installed (nothing imported).

    Raises
    ------
    MissingExtraError
        Naming the first missing module and ``pip install 's2scale[<extra>]'``.
    """
    for module in EXTRA_MODULES[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a finder that refuses the name, a broken install
            found = False
        if not found:
            raise MissingExtraError(_message(what, module, extra))
