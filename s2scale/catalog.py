"""STAC search for Sentinel-2 L2A scenes, normalised into :class:`Scene` records.

``stac`` is either a STAC API URL (searched with pystac-client, with bounded retries and
timeouts) or a local catalog file searched in-process with the same filters: an ItemCollection /
FeatureCollection JSON, a stac-geoparquet file, or a static catalog. Both give the same records in
the same order (datetime, then id).

Provider quirks live in :mod:`s2scale.items`, the one place that knows asset keys, the CRS
fields, the BOA offset and ``raster:bands`` scale/offset.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import shape

from s2scale.errors import ConfigError, NoScenesFoundError, S2ScaleError, StacApiError
from s2scale.grid import AOI, resolve_aoi
from s2scale.items import BANDS, Scene, normalize_item

__all__ = ["BANDS", "Scene", "SearchResult", "parse_datetime_range", "read_stac_items", "search"]

log = logging.getLogger(__name__)

DEFAULT_COLLECTION = "sentinel-2-l2a"
_RETRY_STATUSES = (429, 500, 502, 503, 504)

ItemModifier = Callable[[Any], None]
"""A request-signing hook: called with each item (pystac-client's ``modifier``)."""


@dataclass(frozen=True)
class SearchResult(Sequence[Scene]):
    """Scenes found by :func:`search`, sorted by datetime then id.

    Behaves as a sequence of :class:`Scene`; ``skipped`` lists ``(item id, reason)`` of malformed
    items when the search was asked to skip them.
    """

    scenes: tuple[Scene, ...]
    """The normalised scenes."""
    skipped: tuple[tuple[str, str], ...] = field(default=())
    """Items left out because they could not be normalised."""

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, i: Any) -> Any:
        return self.scenes[i]

    def __iter__(self) -> Iterator[Scene]:
        return iter(self.scenes)

    def by_zone(self) -> dict[int, list[Scene]]:
        """Scenes grouped by UTM zone (as EPSG code), zones in ascending order."""
        groups: dict[int, list[Scene]] = defaultdict(list)
        for s in self.scenes:
            groups[s.epsg].append(s)
        return dict(sorted(groups.items()))

    def by_tile(self) -> dict[str, list[Scene]]:
        """Scenes grouped by MGRS tile, tiles in name order."""
        groups: dict[str, list[Scene]] = defaultdict(list)
        for s in self.scenes:
            groups[s.mgrs_tile].append(s)
        return dict(sorted(groups.items()))


# --------------------------------------------------------------------------------------- datetime
def parse_datetime_range(value: str) -> tuple[datetime | None, datetime | None]:
    """Parse ``"START/END"`` (dates or datetimes, ``..`` for open) into a UTC interval.

    A bare date as END means the end of that day; a single date means that whole day.

    Examples
    --------
    >>> parse_datetime_range("2024-06-01/2024-08-31")[1].isoformat()
    '2024-08-31T23:59:59.999999+00:00'
    """
    text = value.strip()
    parts = text.split("/") if "/" in text else [text, text]
    if len(parts) != 2:
        raise ConfigError(f"datetime {value!r} must be 'START/END', e.g. '2024-06-01/2024-08-31'")
    start = _parse_instant(parts[0], end=False, whole=value)
    end = _parse_instant(parts[1], end=True, whole=value)
    if start and end and start > end:
        raise ConfigError(f"datetime {value!r} ends before it starts; swap START and END")
    return start, end


def _parse_instant(text: str, *, end: bool, whole: str) -> datetime | None:
    """One side of a datetime interval."""
    text = text.strip()
    if text in {"", ".."}:
        return None
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime.combine(d, time.max if end else time.min, tzinfo=UTC)
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise ConfigError(
            f"cannot parse {text!r} in datetime {whole!r}; use ISO dates 'YYYY-MM-DD/YYYY-MM-DD'"
        ) from err
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _format_interval(start: datetime | None, end: datetime | None) -> str:
    """STAC API form of an interval."""

    def one(d: datetime | None) -> str:
        return d.astimezone(UTC).isoformat().replace("+00:00", "Z") if d else ".."

    return f"{one(start)}/{one(end)}"


# ----------------------------------------------------------------------------------------- search
def search(
    aoi: AOI,
    datetime: str,
    *,
    stac: str | Path,
    max_cloud_cover: float | None = None,
    collection: str = DEFAULT_COLLECTION,
    modifier: ItemModifier | None = None,
    skip_errors: bool = False,
    page_size: int = 100,
    max_items: int | None = None,
    timeout_s: float = 30.0,
    max_retries: int = 4,
) -> SearchResult:
    """Find Sentinel-2 L2A scenes over an AOI and period.

    Parameters
    ----------
    aoi
        Area of interest (``"austria"``, GeoJSON path, WKT, ``"minx,miny,maxx,maxy"``, geometry).
    datetime
        ``"START/END"`` interval, ISO dates or datetimes, ``..`` for an open end.
    stac
        A STAC API URL (``http(s)://...``) or a local catalog: an ItemCollection JSON, a
        stac-geoparquet file (``.parquet``) or a static catalog (``catalog.json`` with links).
    max_cloud_cover
        Keep scenes with ``eo:cloud_cover`` at most this percentage (0-100).
    collection
        Collection id, ``sentinel-2-l2a`` on Earth Search v1 and Planetary Computer.
    modifier
        Request-signing hook called on each item (e.g. ``planetary_computer.sign_inplace``).
    skip_errors
        If true, items that cannot be normalised are skipped, logged and listed in
        ``SearchResult.skipped``; otherwise the first one raises.
    page_size, max_items
        API page size and an optional cap on the number of items.
    timeout_s, max_retries
        Per-request timeout and bounded retries with exponential backoff on HTTP 429/5xx.

    Returns
    -------
    SearchResult
        Normalised scenes sorted by datetime then id.

    Raises
    ------
    NoScenesFoundError
        If nothing matches (the message names the AOI, dates and filters).
    StacApiError
        If the API cannot be reached or keeps failing.
    ConfigError
        For an unknown collection or invalid arguments.
    """
    geom = resolve_aoi(aoi)
    start, end = parse_datetime_range(datetime)
    if max_cloud_cover is not None and not 0 <= max_cloud_cover <= 100:
        raise ConfigError(f"max_cloud_cover={max_cloud_cover} must be a percentage in 0..100")
    if page_size < 1:
        raise ConfigError(f"page_size={page_size} must be positive")
    source = str(stac)
    if source.startswith(("http://", "https://")):
        items = _search_api(
            source,
            geom,
            start,
            end,
            max_cloud_cover,
            collection,
            modifier,
            page_size,
            max_items,
            timeout_s,
            max_retries,
        )
        base = None
    else:
        path = Path(source).expanduser()
        items = _search_local(path, geom, start, end, max_cloud_cover, collection)
        if modifier is not None:
            for it in items:
                modifier(it)
        if max_items is not None:
            items = sorted(items, key=_sort_key)[:max_items]
        base = path.parent.resolve()
    scenes: list[Scene] = []
    skipped: list[tuple[str, str]] = []
    for item in items:
        try:
            scenes.append(normalize_item(item, base_dir=base))
        except S2ScaleError as err:
            if not skip_errors:
                raise
            log.warning("skipping item %s: %s", item.get("id"), err)
            skipped.append((str(item.get("id")), str(err)))
    if not scenes:
        cloud = f", eo:cloud_cover <= {max_cloud_cover}" if max_cloud_cover is not None else ""
        raise NoScenesFoundError(
            f"no {collection!r} scenes in {source!r} for AOI {_describe_aoi(aoi, geom)} "
            f"and datetime {datetime!r}{cloud}; widen the dates, raise max_cloud_cover or check "
            "the AOI"
        )
    scenes.sort(key=lambda s: (s.datetime, s.id))
    log.info("search: %d scenes (%d skipped) from %s", len(scenes), len(skipped), source)
    return SearchResult(scenes=tuple(scenes), skipped=tuple(skipped))


def _describe_aoi(aoi: AOI, geom: Any) -> str:
    """Short AOI description for messages."""
    if isinstance(aoi, str) and len(aoi) < 60:
        return f"{aoi!r} (bounds {tuple(round(b, 4) for b in geom.bounds)})"
    return f"with bounds {tuple(round(b, 4) for b in geom.bounds)}"


def _sort_key(item: dict) -> tuple[str, str]:
    return (str(item.get("properties", {}).get("datetime")), str(item.get("id")))


def _search_api(
    url: str,
    geom: Any,
    start: datetime | None,
    end: datetime | None,
    max_cloud_cover: float | None,
    collection: str,
    modifier: ItemModifier | None,
    page_size: int,
    max_items: int | None,
    timeout_s: float,
    max_retries: int,
) -> list[dict]:
    """Search a STAC API with pystac-client; returns item dicts."""
    import requests
    from pystac_client import Client
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO
    from urllib3 import Retry

    retry = Retry(
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        backoff_factor=0.5,
        backoff_max=10.0,
        status_forcelist=_RETRY_STATUSES,
        allowed_methods=None,  # POST searches are idempotent too
        respect_retry_after_header=True,
    )
    io = StacApiIO(timeout=timeout_s, max_retries=retry)
    try:
        client = Client.open(url, stac_io=io, modifier=modifier)
        known = {c.id for c in client.get_collections()}
        if known and collection not in known:
            raise ConfigError(
                f"collection {collection!r} is not offered by {url}; available: "
                f"{', '.join(sorted(known))}"
            )
        query = (
            {"eo:cloud_cover": {"lte": max_cloud_cover}} if max_cloud_cover is not None else None
        )
        found = client.search(
            collections=[collection],
            intersects=shapely.geometry.mapping(geom),
            datetime=_format_interval(start, end),
            query=query,
            limit=page_size,
            max_items=max_items,
        )
        items = [it for page in found.pages_as_dicts() for it in page.get("features", [])]
    except (requests.RequestException, APIError, OSError) as err:
        raise StacApiError(
            f"STAC API {url} failed after {max_retries} retries (timeout {timeout_s} s): {err}; "
            "check the URL and that the service is up"
        ) from err
    if max_cloud_cover is not None:  # APIs without the query extension ignore the filter
        items = [it for it in items if _cloud_ok(it, max_cloud_cover)]
    if modifier is not None:
        for it in items:
            modifier(it)
    return items


# ---------------------------------------------------------------------------------- local catalog
def _search_local(
    path: Path,
    geom: Any,
    start: datetime | None,
    end: datetime | None,
    max_cloud_cover: float | None,
    collection: str,
) -> list[dict]:
    """Apply the STAC API filters in-process to the items of a local catalog."""
    items = read_stac_items(path)
    shapely.prepare(geom)
    out = []
    for it in items:
        if it.get("collection", collection) != collection:
            continue
        if max_cloud_cover is not None and not _cloud_ok(it, max_cloud_cover):
            continue
        if not _datetime_ok(it, start, end):
            continue
        g = it.get("geometry")
        if g is None or not geom.intersects(shape(g)):
            continue
        out.append(it)
    return out


def read_stac_items(path: Path) -> list[dict]:
    """All item dicts of a local STAC file.

    An ItemCollection, an Item, a Catalog or Collection (hrefs made absolute) or stac-geoparquet.
    """
    if not path.exists():
        raise ConfigError(
            f"STAC source {str(path)!r} is neither an http(s) URL nor an existing file; "
            "give an API URL or a catalog path (run 's2scale sample --out DIR' for a sample)"
        )
    if path.suffix in {".parquet", ".geoparquet"}:
        try:
            import stac_geoparquet.arrow as sgpa
        except ImportError as err:
            raise ImportError(
                "reading stac-geoparquet needs 'pip install stac-geoparquet pyarrow'"
            ) from err
        return [dict(it) for it in sgpa.stac_table_to_items(_read_parquet_table(path))]
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read STAC catalog {str(path)!r}: {err}") from err
    kind = data.get("type")
    if kind == "FeatureCollection":
        return list(data.get("features", []))
    if kind == "Feature":
        return [data]
    if kind in {"Catalog", "Collection"}:
        import pystac

        cat = pystac.read_file(str(path))
        return [it.to_dict(transform_hrefs=True) for it in cat.get_items(recursive=True)]
    raise ConfigError(
        f"{str(path)!r} is a JSON of type {kind!r}; expected an ItemCollection, a Catalog or a "
        "Collection"
    )


def _read_parquet_table(path: Path) -> Any:
    """Read a stac-geoparquet file into an Arrow table."""
    import pyarrow.parquet as pq

    return pq.read_table(path)


def _cloud_ok(item: dict, max_cloud_cover: float) -> bool:
    cc = item.get("properties", {}).get("eo:cloud_cover")
    return cc is not None and float(cc) <= max_cloud_cover


def _datetime_ok(item: dict, start: datetime | None, end: datetime | None) -> bool:
    props = item.get("properties", {})
    text = props.get("datetime") or props.get("start_datetime")
    if text is None:
        return False
    dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (start is None or dt >= start) and (end is None or dt <= end)
