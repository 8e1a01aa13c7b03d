"""Orthophoto headers: CRS and grid, band meaning, acquisition dates (no pixels).

Listing the orthophotos to open is :mod:`~s2scale.pairs.ortho_sources`; reading their pixels and
resampling them onto the HR grid is :mod:`~s2scale.pairs.ortho_pixels`.

An orthophoto is any GDAL raster (GeoTIFF, COG, VRT) in any projected CRS, RGB or RGB+NIR, 8 or
16 bit. :func:`open_orthophoto` reads its header into an :class:`OrthoInfo`: CRS and grid, what
each band is (``red``, ``green``, ``blue``, ``nir``, optional ``alpha``) and when it was flown.

Band meaning comes from, in this order: the caller (``bands=``), the band descriptions (e.g.
``red``, ``B04``, ``NIR``), the colour interpretation (R, G, B, alpha), the band count (3: red,
green, blue; 4: red, green, blue, nir). The acquisition date comes from the caller, a STAC item's
``datetime``, the GDAL metadata item :data:`DATE_TAG` (``ACQUISITION_DATE=2024-07-10``, which the
built-in sample writes), or ``TIFFTAG_DATETIME``.

No data: the file's nodata value, an alpha band (0 = transparent) and pixels whose bands are all
0 (the fill of most orthophoto mosaics).
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from s2scale.errors import ConfigError, GridMismatchError, ReadError
from s2scale.grid import Bounds

__all__ = [
    "BAND_ALIASES",
    "DATE_TAG",
    "ORTHO_BANDS",
    "BandMismatchError",
    "MissingCRSError",
    "MissingDateError",
    "OrthoInfo",
    "open_orthophoto",
    "parse_acquisition_date",
]

log = logging.getLogger(__name__)

DATE_TAG = "ACQUISITION_DATE"
"""GDAL metadata item (default domain) holding an orthophoto's acquisition date (ISO 8601)."""
_DATE_TAGS = (DATE_TAG, "acquisition_date", "DATE_ACQUIRED", "datetime", "TIFFTAG_DATETIME")
ORTHO_BANDS: tuple[str, ...] = ("red", "green", "blue", "nir")
"""Band names an orthophoto band may have (plus ``alpha``)."""
BAND_ALIASES: dict[str, str] = {
    "red": "red",
    "r": "red",
    "b04": "red",
    "b4": "red",
    "rot": "red",
    "green": "green",
    "g": "green",
    "b03": "green",
    "b3": "green",
    "gruen": "green",
    "blue": "blue",
    "b": "blue",
    "b02": "blue",
    "b2": "blue",
    "blau": "blue",
    "nir": "nir",
    "n": "nir",
    "b08": "nir",
    "b8": "nir",
    "near-infrared": "nir",
    "near infrared": "nir",
    "infrared": "nir",
    "ir": "nir",
    "nir1": "nir",
    "alpha": "alpha",
    "a": "alpha",
    "mask": "alpha",
}
"""Lower-case band descriptions and STAC common names -> band name (``red`` ... ``alpha``)."""


class MissingCRSError(GridMismatchError):
    """An orthophoto has no CRS or no georeferencing."""


class MissingDateError(ConfigError):
    """An orthophoto carries no acquisition date and none was given."""


class BandMismatchError(GridMismatchError):
    """An orthophoto's bands cannot be named, or lack a band of the patch store."""


@dataclass(frozen=True)
class OrthoInfo:
    """Header of one orthophoto: where it is, its grid, its bands and when it was flown."""

    id: str
    """Identifier (file stem or STAC item id; letters, digits, ``.``, ``_``, ``-``)."""
    href: str
    """Path or URL GDAL opens."""
    crs: str
    """CRS, e.g. ``"EPSG:31287"``."""
    transform: tuple[float, float, float, float, float, float]
    """Affine coefficients ``(a, b, c, d, e, f)`` of the pixel grid."""
    shape: tuple[int, int]
    """``(rows, cols)``."""
    bands: tuple[str, ...]
    """Meaning of each file band: ``red``, ``green``, ``blue``, ``nir`` or ``alpha``."""
    dtype: str
    """Data type of the bands (``uint8``, ``uint16``, ...)."""
    nodata: float | None
    """No-data value of the file."""
    acquired: datetime
    """Acquisition time (UTC; midnight when only the date is known)."""
    date_source: str
    """Where ``acquired`` came from (``given``, ``stac``, or the metadata item's name)."""

    @property
    def resolution_m(self) -> float:
        """Pixel size (CRS units)."""
        a, b, _, d, e, _ = self.transform
        return float(math.sqrt(abs(a * e - b * d)))

    @property
    def bounds(self) -> Bounds:
        """``(minx, miny, maxx, maxy)`` in :attr:`crs`."""
        from affine import Affine

        t = Affine(*self.transform)
        rows, cols = self.shape
        xs, ys = zip(*(t * (c, r) for c in (0, cols) for r in (0, rows)), strict=True)
        return (min(xs), min(ys), max(xs), max(ys))

    def footprint(self, crs: str | int = 4326) -> Any:
        """The outline of the grid as a shapely polygon in ``crs`` (lon/lat by default)."""
        import shapely
        from pyproj import Transformer
        from shapely.geometry import box

        poly = shapely.segmentize(box(*self.bounds), max(self.resolution_m, 1.0) * 50)
        tr = Transformer.from_crs(self.crs, crs, always_xy=True)
        return shapely.transform(poly, lambda x, y: tr.transform(x, y), interleaved=False)

    def band_index(self, names: Sequence[str]) -> list[int]:
        """1-based file band numbers of ``names``; raises if one is missing."""
        missing = [n for n in names if n not in self.bands]
        if missing:
            raise BandMismatchError(
                f"orthophoto {self.id!r} has {len(self.bands)} bands {list(self.bands)} but the "
                f"patch store needs {list(names)} (missing {missing}); leave it out, pass the "
                "store's bands with --bands (e.g. blue,green,red for RGB), or name its bands "
                "with --ortho-bands"
            )
        return [self.bands.index(n) + 1 for n in names]

    def to_json(self) -> dict[str, Any]:
        """JSON summary (provenance records, dry runs)."""
        return {
            "id": self.id,
            "href": self.href,
            "crs": self.crs,
            "resolution_m": round(self.resolution_m, 6),
            "shape": list(self.shape),
            "bounds": [round(v, 6) for v in self.bounds],
            "bands": list(self.bands),
            "dtype": self.dtype,
            "acquired": self.acquired.isoformat().replace("+00:00", "Z"),
            "date_source": self.date_source,
        }


def parse_acquisition_date(text: str | date | datetime) -> datetime:
    """An acquisition date or time as a UTC datetime.

    Accepts ISO 8601 dates and datetimes (``Z`` or an offset) and the TIFF form
    ``YYYY:MM:DD HH:MM:SS``.

    Examples
    --------
    >>> parse_acquisition_date("2024:07:10 10:30:00").isoformat()
    '2024-07-10T10:30:00+00:00'
    >>> parse_acquisition_date("2014-07-15").isoformat()
    '2014-07-15T00:00:00+00:00'
    """
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=UTC)
    if isinstance(text, date):
        return datetime(text.year, text.month, text.day, tzinfo=UTC)
    value = str(text).strip()
    m = re.fullmatch(r"(\d{4}):(\d{2}):(\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2}))?", value)
    if m:
        parts = [int(v) for v in m.groups() if v is not None]
        return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise ConfigError(
            f"cannot parse the acquisition date {value!r}; use YYYY-MM-DD (e.g. 2024-07-10)"
        ) from err
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


def _safe_id(text: str) -> str:
    """``text`` with every character other than letters, digits, ``.``, ``_``, ``-`` as ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text) or "ortho"


def _band_names(src: Any, given: Sequence[str] | None, href: str) -> tuple[str, ...]:
    """Meaning of each band of an open dataset (see the module docstring)."""
    n = src.count
    if given is not None:
        names = tuple(str(b).lower() for b in given)
        bad = [b for b in names if b not in (*ORTHO_BANDS, "alpha")]
        if bad:
            raise ConfigError(
                f"unknown orthophoto band names {bad}; use {list(ORTHO_BANDS)} or alpha"
            )
        if len(names) != n:
            raise BandMismatchError(
                f"orthophoto {href!r} has {n} bands but {len(names)} band names were given "
                f"({list(names)}); give one name per band, e.g. --ortho-bands "
                f"{','.join(ORTHO_BANDS[:n]) if n <= 4 else 'red,green,blue,nir'}"
            )
        return names
    described = [BAND_ALIASES.get((d or "").strip().lower()) for d in src.descriptions]
    if all(described) and len(set(described)) == n:
        return tuple(described)  # type: ignore[arg-type]
    interp = [c.name for c in src.colorinterp]
    if interp[:3] == ["red", "green", "blue"] and all(
        c in ("alpha", "undefined") for c in interp[3:]
    ):
        rest = ["alpha" if c == "alpha" else "nir" for c in interp[3:]]
        if rest.count("nir") <= 1:
            return ("red", "green", "blue", *rest)
    if n in (3, 4):
        return ORTHO_BANDS[:n]
    raise BandMismatchError(
        f"cannot tell the bands of orthophoto {href!r} ({n} bands, descriptions "
        f"{list(src.descriptions)}); name them with --ortho-bands, e.g. red,green,blue,nir"
    )


def _date_from_tags(src: Any) -> tuple[datetime, str] | None:
    """Acquisition date from the dataset's metadata items, or None."""
    tags = src.tags()
    for name in _DATE_TAGS:
        if tags.get(name):
            return parse_acquisition_date(tags[name]), f"metadata:{name}"
    return None


def open_orthophoto(
    href: str | Path,
    *,
    ortho_id: str | None = None,
    crs: str | None = None,
    acquired: str | date | datetime | None = None,
    bands: Sequence[str] | None = None,
    stac_datetime: str | None = None,
) -> OrthoInfo:
    """Read the header of one orthophoto (no pixels).

    Parameters
    ----------
    href
        Path or URL of a GDAL raster.
    ortho_id
        Identifier; default the file stem.
    crs
        CRS for a file that has none (a CRS in the file wins over it).
    acquired
        Acquisition date; overrides any date in the metadata.
    bands
        Meaning of each file band (see the module docstring).
    stac_datetime
        ``datetime`` of the STAC item the file came from.

    Returns
    -------
    OrthoInfo
        The header.

    Raises
    ------
    ReadError
        If the file cannot be opened.
    MissingCRSError
        No CRS (and none given), or no georeferencing.
    BandMismatchError
        Bands that cannot be named.
    MissingDateError
        No acquisition date in the metadata and none given.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    href = str(href)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # reported below
            with rasterio.open(href) as src:
                if src.transform.is_identity and not src.gcps[0]:
                    raise MissingCRSError(
                        f"orthophoto {href!r} is not georeferenced (no geotransform); give it "
                        "one (e.g. gdal_translate -a_ullr ... -a_srs EPSG:31287) or leave it out"
                    )
                if src.crs is None and crs is None:
                    raise MissingCRSError(
                        f"orthophoto {href!r} has no CRS; set it in the file (gdal_edit.py "
                        "-a_srs EPSG:31287 FILE) or pass it with --ortho-crs EPSG:31287"
                    )
                file_crs = src.crs.to_string() if src.crs is not None else str(crs)
                names = _band_names(src, bands, href)
                when: tuple[datetime, str] | None = None
                if acquired is not None:
                    when = parse_acquisition_date(acquired), "given"
                elif stac_datetime:
                    when = parse_acquisition_date(stac_datetime), "stac"
                else:
                    when = _date_from_tags(src)
                if when is None:
                    raise MissingDateError(
                        f"orthophoto {href!r} carries no acquisition date (metadata item "
                        f"{DATE_TAG} or TIFFTAG_DATETIME); pass it with --ortho-date YYYY-MM-DD"
                    )
                info = OrthoInfo(
                    id=_safe_id(ortho_id if ortho_id is not None else Path(href).stem),
                    href=href,
                    crs=file_crs,
                    transform=tuple(src.transform)[:6],  # type: ignore[arg-type]
                    shape=(src.height, src.width),
                    bands=names,
                    dtype=str(src.dtypes[0]),
                    nodata=None if src.nodata is None else float(src.nodata),
                    acquired=when[0],
                    date_source=when[1],
                )
    except rasterio.errors.RasterioError as err:
        raise ReadError(f"cannot open orthophoto {href!r}: {err}") from err
    if any(n == "alpha" for n in info.bands[:3]) or info.bands.count("alpha") > 1:
        raise BandMismatchError(
            f"orthophoto {href!r}: bands {list(info.bands)} are not usable (alpha must be last)"
        )
    return info
