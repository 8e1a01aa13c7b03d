"""Orthophotos: listing (files, globs, STAC), headers, acquisition dates, bands, windows, HR grids.

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

import glob
import json
import logging
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from s2scale.errors import ConfigError, GridMismatchError, ReadError
from s2scale.grid import Bounds, TargetGrid
from s2scale.sentinel2 import RESOLUTION_M

__all__ = [
    "DATE_TAG",
    "ORTHO_BANDS",
    "BandMismatchError",
    "MissingCRSError",
    "MissingDateError",
    "OrthoInfo",
    "OrthoWindow",
    "list_orthophotos",
    "nested_grid",
    "open_orthophoto",
    "orthophoto_to_hr",
    "parse_acquisition_date",
    "read_ortho_window",
    "read_orthophoto",
    "render_hr",
]

log = logging.getLogger(__name__)

DATE_TAG = "ACQUISITION_DATE"
"""GDAL metadata item (default domain) holding an orthophoto's acquisition date (ISO 8601)."""
_DATE_TAGS = (DATE_TAG, "acquisition_date", "DATE_ACQUIRED", "datetime", "TIFFTAG_DATETIME")
ORTHO_BANDS: tuple[str, ...] = ("red", "green", "blue", "nir")
"""Band names an orthophoto band may have (plus ``alpha``)."""
_ALIASES = {
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
_RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")


class MissingCRSError(GridMismatchError):
    """An orthophoto has no CRS or no georeferencing."""


class MissingDateError(ConfigError):
    """An orthophoto carries no acquisition date and none was given."""


class BandMismatchError(GridMismatchError):
    """An orthophoto's bands cannot be named, or lack a band of the patch store."""


def nested_grid(lr_grid: TargetGrid, scale: int = 2) -> TargetGrid:
    """The HR grid nested in ``lr_grid`` (same bounds, ``resolution_m / scale``).

    Examples
    --------
    >>> nested_grid(TargetGrid("EPSG:32633", 10.0, (0.0, 0.0, 100.0, 50.0))).shape
    (10, 20)
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise ConfigError(f"scale must be an integer >= 2 (2 for 10 m -> 5 m), got {scale!r}")
    return TargetGrid(lr_grid.crs, lr_grid.resolution_m / scale, lr_grid.bounds)


def read_orthophoto(path: str | Path) -> tuple[np.ndarray, Any, str, tuple[str, ...]]:
    """Read a whole orthophoto: ``(data (band, y, x), transform, crs, band descriptions)``.

    Raises :class:`~s2scale.errors.ReadError` if the file cannot be read.
    """
    import rasterio

    try:
        with rasterio.open(path) as src:
            data = src.read()
            names = tuple(d or f"band{i + 1}" for i, d in enumerate(src.descriptions))
            return data, src.transform, str(src.crs), names
    except (OSError, rasterio.errors.RasterioError) as err:
        raise ReadError(f"cannot read orthophoto {str(path)!r}") from err


# ------------------------------------------------------------------------------------ headers
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
    described = [_ALIASES.get((d or "").strip().lower()) for d in src.descriptions]
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


# ------------------------------------------------------------------------------------ listing
@dataclass(frozen=True)
class OrthoSource:
    """One orthophoto to open: its href, and what a STAC item says about it."""

    href: str
    """Path or URL."""
    id: str | None = None
    """STAC item id (files: ``None``, the stem is used)."""
    datetime: str | None = None
    """STAC item ``datetime``."""
    bands: tuple[str, ...] | None = None
    """Band names from the asset's ``eo:bands`` common names."""


def list_orthophotos(
    sources: Sequence[str | Path], *, collection: str | None = None
) -> list[OrthoSource]:
    """Expand paths, folders, globs and STAC sources into the orthophotos to open.

    Parameters
    ----------
    sources
        Each one is a raster path, a folder (its ``*.tif``, ``*.tiff``, ``*.vrt``), a glob
        (``tiles/**/*.tif``), a local STAC file (ItemCollection, Collection or Catalog JSON) or a
        STAC API URL (with ``collection``).
    collection
        Collection of orthophoto items to read from a STAC API URL.

    Returns
    -------
    list of OrthoSource
        In the order given, globs and folders sorted, duplicates removed.

    Raises
    ------
    ConfigError
        A source that matches nothing, or an API URL without ``collection``.
    """
    out: list[OrthoSource] = []
    for source in sources:
        text = str(source)
        if text.startswith(("http://", "https://")) and not text.lower().endswith(_RASTER_SUFFIXES):
            out += _stac_api_orthophotos(text, collection)
            continue
        path = Path(text).expanduser()
        if path.suffix.lower() == ".json" and path.is_file():
            out += _stac_file_orthophotos(path)
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in _RASTER_SUFFIXES)
            if not found:
                raise ConfigError(f"folder {text!r} holds no .tif/.tiff/.vrt orthophoto")
            out += [OrthoSource(str(p)) for p in found]
        elif any(ch in text for ch in "*?["):
            found = sorted(glob.glob(text, recursive=True))
            if not found:
                raise ConfigError(f"--orthophotos {text!r} matches no file; check the pattern")
            out += [OrthoSource(p) for p in found]
        elif path.is_file() or "://" in text or text.startswith("/vsi"):
            out.append(OrthoSource(text))
        else:
            raise ConfigError(
                f"orthophoto {text!r} does not exist; give files, a folder, a glob such as "
                "'tiles/*.tif' or a STAC JSON"
            )
    seen: set[str] = set()
    unique = []
    for s in out:
        if s.href not in seen:
            seen.add(s.href)
            unique.append(s)
    return unique


def _asset_of(item: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The orthophoto asset of a STAC item: role ``data`` or a known key, else the first TIFF."""
    assets = item.get("assets") or {}
    for key in ("image", "data", "ortho", "orthophoto", "visual"):
        if key in assets:
            return key, assets[key]
    for key, a in assets.items():
        if "data" in (a.get("roles") or []):
            return key, a
    for key, a in assets.items():
        if "tiff" in str(a.get("type", "")).lower() or str(a.get("href", "")).endswith(
            (".tif", ".tiff")
        ):
            return key, a
    return None


def _item_source(item: Mapping[str, Any], base: Path | None) -> OrthoSource:
    """The :class:`OrthoSource` of one STAC item dict."""
    found = _asset_of(item)
    if found is None:
        raise ConfigError(
            f"STAC item {item.get('id')!r} has no orthophoto asset (key image/data or role data)"
        )
    _, asset = found
    href = str(asset["href"])
    if base is not None and "://" not in href and not href.startswith("/"):
        href = str((base / href).resolve())
    common = [b.get("common_name") for b in asset.get("eo:bands", []) or []]
    bands = tuple(_ALIASES.get(str(c).lower(), "") for c in common) if common else None
    return OrthoSource(
        href=href,
        id=str(item.get("id")),
        datetime=(item.get("properties") or {}).get("datetime"),
        bands=bands if bands and all(bands) else None,
    )


def _stac_file_orthophotos(path: Path) -> list[OrthoSource]:
    """Items of a local STAC ItemCollection, Collection or Catalog."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read STAC file {str(path)!r}: {err}") from err
    kind = data.get("type")
    if kind == "FeatureCollection":
        items = list(data.get("features", []))
    elif kind == "Feature":
        items = [data]
    elif kind in ("Catalog", "Collection"):
        import pystac

        cat = pystac.read_file(str(path))
        items = [it.to_dict(transform_hrefs=True) for it in cat.get_items(recursive=True)]
    else:
        raise ConfigError(f"{str(path)!r} is not a STAC ItemCollection, Collection or Catalog")
    if not items:
        raise ConfigError(f"STAC file {str(path)!r} lists no orthophoto item")
    return [_item_source(it, path.parent.resolve()) for it in items]


def _stac_api_orthophotos(url: str, collection: str | None) -> list[OrthoSource]:
    """Items of one collection of a STAC API."""
    if not collection:
        raise ConfigError(
            f"orthophotos from the STAC API {url} need --ortho-collection NAME (the collection "
            "of orthophoto items)"
        )
    import requests
    from pystac_client import Client
    from pystac_client.exceptions import APIError

    from s2scale.errors import StacApiError

    try:
        client = Client.open(url)
        search = client.search(collections=[collection], limit=100)
        items = [it for page in search.pages_as_dicts() for it in page.get("features", [])]
    except (requests.RequestException, APIError, OSError) as err:
        raise StacApiError(f"cannot list orthophotos of {collection!r} at {url}: {err}") from err
    if not items:
        raise ConfigError(f"STAC API {url} has no item in collection {collection!r}")
    items.sort(key=lambda it: str(it.get("id")))
    return [_item_source(it, None) for it in items]


# ------------------------------------------------------------------------------------- pixels
@dataclass(frozen=True)
class OrthoWindow:
    """A window of an orthophoto in the store's band order, ready for :func:`render_hr`."""

    data: np.ndarray
    """``(band, rows, cols)`` in the file's dtype."""
    valid: np.ndarray
    """``(rows, cols)`` bool, False at no data."""
    transform: tuple[float, float, float, float, float, float]
    """Affine coefficients of the window."""
    crs: str
    """CRS of the orthophoto."""


def read_ortho_window(info: OrthoInfo, bounds: Bounds, bands: Sequence[str]) -> OrthoWindow:
    """Read the part of an orthophoto that covers ``bounds`` (in its CRS), bands in order.

    Raises
    ------
    ReadError
        If the file cannot be read, or ``bounds`` miss it.
    """
    import rasterio
    from rasterio.windows import Window, from_bounds

    index = info.band_index(bands)
    alpha = info.bands.index("alpha") + 1 if "alpha" in info.bands else None
    try:
        with rasterio.open(info.href) as src:
            w = from_bounds(*bounds, transform=src.transform)
            c0, r0 = math.floor(w.col_off), math.floor(w.row_off)
            c1, r1 = math.ceil(w.col_off + w.width), math.ceil(w.row_off + w.height)
            win = Window(c0, r0, c1 - c0, r1 - r0)
            full = Window(0, 0, src.width, src.height)
            try:
                win = win.intersection(full)
            except rasterio.errors.WindowError as err:
                raise ReadError(
                    f"bounds {bounds} miss orthophoto {info.href!r} ({info.bounds})"
                ) from err
            data = src.read(index, window=win)
            valid = ~(data == 0).all(0)
            if info.nodata is not None:
                valid &= ~(data == info.nodata).any(0)
            if alpha is not None:
                valid &= src.read(alpha, window=win) > 0
            transform = tuple(src.window_transform(win))[:6]
    except rasterio.errors.RasterioError as err:
        raise ReadError(f"cannot read orthophoto {info.href!r}: {err}") from err
    return OrthoWindow(data=data, valid=valid, transform=transform, crs=info.crs)  # type: ignore[arg-type]


def orthophoto_to_hr(
    ortho: np.ndarray,
    src_transform: Any,
    src_crs: str,
    hr_grid: TargetGrid,
    *,
    src_nodata: float | None = None,
    mean_filter_px: int = 1,
) -> np.ndarray:
    """Mean-filter and area-average an orthophoto onto ``hr_grid``, float32.

    A ``mean_filter_px`` box filter at the orthophoto's resolution (against aliasing and noise;
    1 = none) is followed by ``rasterio.warp.reproject`` with ``Resampling.average``, which
    averages every source pixel falling into a target pixel and handles the change of CRS (e.g.
    EPSG:31287 or EPSG:2056 -> UTM). NaN in ``ortho`` is no data; it spreads over the filter box.

    Returns
    -------
    numpy.ndarray
        float32 ``(band, rows, cols)`` of ``hr_grid``, in the orthophoto's units; NaN where the
        orthophoto does not cover the grid.
    """
    from rasterio.warp import Resampling, reproject
    from scipy.ndimage import uniform_filter

    if mean_filter_px < 1:
        raise ConfigError(f"mean_filter_px={mean_filter_px} must be >= 1 (1: no filter)")
    out = np.full((ortho.shape[0], *hr_grid.shape), np.nan, np.float32)
    for b in range(ortho.shape[0]):
        band = ortho[b].astype(np.float32)
        if src_nodata is not None:
            band[band == src_nodata] = np.nan
        if mean_filter_px > 1:
            band = uniform_filter(band, mean_filter_px, mode="nearest")
        reproject(
            band,
            out[b],
            src_transform=src_transform,
            src_crs=src_crs,
            src_nodata=np.nan,
            dst_transform=hr_grid.transform,
            dst_crs=hr_grid.crs,
            dst_nodata=np.nan,
            resampling=Resampling.average,
        )
    return out


def render_hr(
    window: OrthoWindow,
    hr_grid: TargetGrid,
    offset_px: tuple[float, float] = (0.0, 0.0),
    *,
    lr_resolution_m: float = RESOLUTION_M,
    mean_filter_m: float = 0.0,
) -> np.ndarray:
    """An orthophoto window on the HR grid, its content moved by ``offset_px`` LR pixels.

    The HR grid never moves: a displacement ``(dy, dx)`` (rows down, columns right, in LR pixels
    of ``lr_resolution_m``) is applied to the orthophoto's georeference, converted into its CRS
    at the window centre, before :func:`orthophoto_to_hr`. HR pixels at the edge of the
    orthophoto's coverage (partly covered) are no data.

    Returns
    -------
    numpy.ndarray
        float32 ``(band, rows, cols)`` of ``hr_grid`` in the orthophoto's units, NaN = no data.
    """
    from affine import Affine
    from pyproj import Transformer
    from scipy.ndimage import binary_erosion

    transform = Affine(*window.transform)
    dy, dx = offset_px
    if dy or dx:
        minx, miny, maxx, maxy = hr_grid.bounds
        cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
        tr = Transformer.from_crs(hr_grid.crs, window.crs, always_xy=True)
        (x0, x1), (y0, y1) = tr.transform(
            [cx, cx + dx * lr_resolution_m], [cy, cy - dy * lr_resolution_m]
        )
        transform = Affine.translation(x1 - x0, y1 - y0) * transform
    data = np.where(window.valid[None], window.data.astype(np.float32), np.nan)
    size = max(1, round(mean_filter_m / max(abs(transform.a), 1e-9)))
    size += 1 - size % 2  # odd boxes keep the filter centred
    out = orthophoto_to_hr(data, transform, window.crs, hr_grid, mean_filter_px=size)
    ok = binary_erosion(np.isfinite(out).all(0), iterations=1, border_value=0)
    out[:, ~ok] = np.nan
    return out
