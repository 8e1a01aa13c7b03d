"""Sentinel-2 conventions in one place: bands, asset keys, wavelengths, DN <-> reflectance, offset.

Every module that needs one of these imports it from here (``models/`` excepted: it imports only
torch, and its checkpoints record their own normalisation).

- Bands are the 10 m bands s2scale super-resolves, named by their Earth Search v1 asset keys.
- *Harmonised DN* is ``reflectance * 10000`` as uint16, the BOA offset removed, 0 = no data, valid
  pixels clipped to ``1..65535``.
- From processing baseline 04.00 (25 January 2022) ESA adds :data:`BOA_ADD_OFFSET` to L2A digital
  numbers (ESA, *Sentinel-2 L2A product format specification*, PB 04.00).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ASSET_KEYS",
    "BANDS",
    "BOA_ADD_OFFSET",
    "DN_SCALE",
    "MASK_BAND",
    "WAVELENGTHS_UM",
    "to_dn",
    "to_reflectance",
]

BANDS: tuple[str, ...] = ("blue", "green", "red", "nir")
"""Reflectance bands used by s2scale, as Earth Search v1 asset keys (B02, B03, B04, B08)."""
MASK_BAND = "scl"
"""The scene classification layer (20 m)."""

ASSET_KEYS: dict[str, tuple[str, ...]] = {
    "blue": ("blue", "B02"),
    "green": ("green", "B03"),
    "red": ("red", "B04"),
    "nir": ("nir", "B08"),
    "scl": ("scl", "SCL"),
}
"""Canonical band name -> asset keys of the known providers, in order of preference."""

WAVELENGTHS_UM: dict[str, tuple[str, str, float, float]] = {
    "blue": ("B02", "Blue - 10m", 0.49, 0.098),
    "green": ("B03", "Green - 10m", 0.56, 0.045),
    "red": ("B04", "Red - 10m", 0.665, 0.038),
    "nir": ("B08", "NIR 1 - 10m", 0.842, 0.145),
}
"""Band -> (ESA band, title, centre wavelength, FWHM) in micrometres, as in Earth Search."""

BOA_ADD_OFFSET = 1000
"""DN offset ESA adds to L2A bands from processing baseline 04.00 on."""

DN_SCALE = 10000.0
"""Harmonised DN per unit reflectance."""

RESOLUTION_M = 10.0
"""Pixel size of the 10 m bands (B02, B03, B04, B08): the input grid of every zone."""


def to_dn(refl: np.ndarray, offset: int = 0) -> np.ndarray:
    """Reflectance to uint16 DN ``round(refl * 10000) + offset``, clipped to ``1..65535``.

    NaN (no data) becomes 0.

    Examples
    --------
    >>> to_dn(np.array([0.0345, -0.2, 0.5]), 1000).tolist()
    [1345, 1, 6000]
    >>> to_dn(np.array([np.nan, 0.1])).tolist()
    [0, 1000]
    """
    refl = np.asarray(refl)
    dn = np.clip(np.round(np.nan_to_num(refl, nan=0.0) * DN_SCALE) + offset, 1, 65535)
    return np.where(np.isnan(refl), 0, dn).astype(np.uint16)


def to_reflectance(dn: np.ndarray) -> np.ndarray:
    """Harmonised DN to float32 reflectance (no data, 0, stays 0).

    Examples
    --------
    >>> to_reflectance(np.array([0, 1345], np.uint16)).tolist()
    [0.0, 0.13449999690055847]
    """
    return np.asarray(dn, dtype=np.float32) / np.float32(DN_SCALE)
