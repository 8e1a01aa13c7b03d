"""Normalisation of Sentinel-2 L2A STAC items: every provider quirk in one place.

Handled providers and their shapes:

- Earth Search v1 (``sentinel-2-l2a``): asset keys ``blue/green/red/nir/scl``, ``proj:code`` or
  ``proj:epsg``, ``raster:bands`` scale 0.0001 and offset -0.1 for processing baseline >= 04.00,
  ``earthsearch:boa_offset_applied``, ``grid:code``/``mgrs:*`` tile properties.
- Planetary Computer (``sentinel-2-l2a``): asset keys ``B02/B03/B04/B08/SCL``, ``proj:epsg``,
  ``s2:mgrs_tile``, ``s2:processing_baseline``, no ``raster:bands``.
- Earth Search v0 (``sentinel-s2-l2a-cogs``): asset keys ``B02..B12/SCL``, ``proj:epsg``,
  ``sentinel:*`` tile properties, baseline only in the product id (``_N0214_``).

The BOA offset convention
-------------------------
From processing baseline 04.00 (25 January 2022) ESA adds ``BOA_ADD_OFFSET = 1000`` to L2A digital
numbers, so ``reflectance = (DN - 1000) / 10000``. s2scale removes the offset when loading: cube
values are *harmonised DN* ``DN - boa_offset`` (``reflectance * 10000``), uint16, with 0 meaning no
data; valid pixels darker than the offset are clipped to 1. The offset of a scene comes from its
``raster:bands`` offset/scale when present and from its processing baseline otherwise; when both
are known they must agree (and agree with ``earthsearch:boa_offset_applied``), else the item is
rejected as malformed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from s2scale.errors import S2ScaleError
from s2scale.sentinel2 import ASSET_KEYS as _ASSET_KEYS
from s2scale.sentinel2 import BANDS, BOA_ADD_OFFSET, MASK_BAND

__all__ = ["BANDS", "MASK_BAND", "MalformedItemError", "Scene", "normalize_item"]

_OFFSET_BASELINE = (4, 0)


class MalformedItemError(S2ScaleError, ValueError):
    """A STAC item lacks what s2scale needs or contradicts itself."""


@dataclass(frozen=True)
class Scene:
    """One Sentinel-2 L2A scene (one MGRS tile on one date), normalised.

    ``item`` is a STAC item dict ready for stackstac and odc-stac: asset keys are the canonical
    band names, hrefs are absolute, and every asset carries ``proj:epsg``, ``proj:code``,
    ``proj:transform`` and ``proj:shape``.
    """

    id: str
    """STAC item id."""
    collection: str
    """STAC collection id."""
    datetime: datetime
    """Acquisition time (UTC)."""
    mgrs_tile: str
    """MGRS tile id such as ``"33TTN"``."""
    epsg: int
    """EPSG code of the scene's UTM CRS."""
    cloud_cover: float | None
    """``eo:cloud_cover`` in percent."""
    processing_baseline: str | None
    """ESA processing baseline, e.g. ``"05.10"``."""
    boa_offset: int
    """DN to subtract to get harmonised DN (1000 for baseline >= 04.00, else 0)."""
    reflectance_scale: float
    """Reflectance per harmonised DN (0.0001)."""
    hrefs: dict[str, str]
    """Canonical band name -> absolute href."""
    item: dict[str, Any]
    """Normalised STAC item dict."""

    @property
    def zone(self) -> int:
        """UTM zone number."""
        return self.epsg % 100

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable summary (used by ``s2scale search --json``)."""
        return {
            "id": self.id,
            "collection": self.collection,
            "datetime": self.datetime.isoformat().replace("+00:00", "Z"),
            "mgrs_tile": self.mgrs_tile,
            "crs": f"EPSG:{self.epsg}",
            "cloud_cover": self.cloud_cover,
            "processing_baseline": self.processing_baseline,
            "boa_offset": self.boa_offset,
            "hrefs": dict(self.hrefs),
        }


def normalize_item(item: dict[str, Any], *, base_dir: Path | None = None) -> Scene:
    """Normalise one STAC item dict of any known provider into a :class:`Scene`.

    Parameters
    ----------
    item
        A STAC item as a dict (``pystac.Item.to_dict()`` or raw JSON).
    base_dir
        Directory that relative asset hrefs are relative to (a local catalog's folder).

    Raises
    ------
    MalformedItemError
        If a band asset, the CRS, the grid or the tile cannot be determined, or the BOA offset
        sources disagree.
    """
    item_id = str(item.get("id", "<no id>"))
    props = dict(item.get("properties") or {})
    assets = item.get("assets") or {}
    try:
        when = datetime.fromisoformat(str(props["datetime"]).replace("Z", "+00:00"))
    except (KeyError, ValueError) as err:
        raise MalformedItemError(f"item {item_id!r} has no valid 'datetime'") from err
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    epsg = _epsg(props, item_id)
    new_assets: dict[str, dict[str, Any]] = {}
    for band, keys in _ASSET_KEYS.items():
        key = next((k for k in keys if k in assets), None)
        if key is None:
            raise MalformedItemError(
                f"item {item_id!r} has no {band!r} asset (looked for {', '.join(keys)}; "
                f"it has {', '.join(sorted(assets)) or 'none'})"
            )
        new_assets[band] = _normalize_asset(assets[key], band, props, epsg, item_id, base_dir)
    baseline = _baseline(props, item_id)
    boa_offset, scale = _boa_offset(new_assets, props, baseline, item_id)
    tile = _mgrs_tile(props, item_id)
    props.update({"proj:epsg": epsg, "proj:code": f"EPSG:{epsg}", "s2scale:boa_offset": boa_offset})
    normalized = dict(item)
    normalized["properties"] = props
    normalized["assets"] = new_assets
    cc = props.get("eo:cloud_cover")
    return Scene(
        id=item_id,
        collection=str(item.get("collection", "")),
        datetime=when.astimezone(UTC),
        mgrs_tile=tile,
        epsg=epsg,
        cloud_cover=None if cc is None else float(cc),
        processing_baseline=baseline,
        boa_offset=boa_offset,
        reflectance_scale=scale,
        hrefs={b: a["href"] for b, a in new_assets.items()},
        item=normalized,
    )


def _epsg(props: dict[str, Any], item_id: str, asset: dict[str, Any] | None = None) -> int:
    """EPSG code from ``proj:code`` (``"EPSG:32633"``) or ``proj:epsg``."""
    for src in (asset or {}, props):
        code = src.get("proj:code")
        if isinstance(code, str) and code.upper().startswith("EPSG:"):
            return int(code.split(":", 1)[1])
        if src.get("proj:epsg") is not None:
            return int(src["proj:epsg"])
    raise MalformedItemError(f"item {item_id!r} has neither 'proj:code' nor 'proj:epsg'")


def _normalize_asset(
    asset: dict[str, Any],
    band: str,
    props: dict[str, Any],
    item_epsg: int,
    item_id: str,
    base_dir: Path | None,
) -> dict[str, Any]:
    """Asset with absolute href and explicit grid fields."""
    out = dict(asset)
    href = str(asset.get("href", ""))
    if not href:
        raise MalformedItemError(f"item {item_id!r}: asset {band!r} has no href")
    if base_dir is not None and not urlparse(href).scheme and not Path(href).is_absolute():
        href = str((base_dir / href).resolve())
    out["href"] = href
    epsg = (
        _epsg(props, item_id, asset)
        if ("proj:code" in asset or "proj:epsg" in asset)
        else item_epsg
    )
    if epsg != item_epsg:
        raise MalformedItemError(
            f"item {item_id!r}: asset {band!r} is in EPSG:{epsg}, item in {item_epsg}"
        )
    transform = asset.get("proj:transform", props.get("proj:transform"))
    shape = asset.get("proj:shape", props.get("proj:shape"))
    if transform is None or shape is None or len(transform) not in (6, 9) or len(shape) != 2:
        raise MalformedItemError(
            f"item {item_id!r}: asset {band!r} lacks 'proj:transform'/'proj:shape'; s2scale needs "
            "the exact grid of every band"
        )
    out["proj:epsg"] = epsg
    out["proj:code"] = f"EPSG:{epsg}"
    out["proj:transform"] = [float(v) for v in transform[:6]]
    out["proj:shape"] = [int(v) for v in shape]
    return out


_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})_")


def _baseline(props: dict[str, Any], item_id: str) -> str | None:
    """Processing baseline from the property or the product name."""
    value = props.get("s2:processing_baseline")
    if value:
        return str(value)
    for key in ("s2:product_uri", "sentinel:product_id", "s2:datatake_id"):
        m = _BASELINE_IN_NAME.search(str(props.get(key, "")) + "_")
        if m:
            return f"{m.group(1)}.{m.group(2)}"
    m = _BASELINE_IN_NAME.search(item_id + "_")
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _boa_offset(
    assets: dict[str, dict[str, Any]], props: dict[str, Any], baseline: str | None, item_id: str
) -> tuple[int, float]:
    """DN offset and reflectance scale, cross-checked between the sources that state them."""
    from_raster: set[int] = set()
    scales: set[float] = set()
    for band in BANDS:
        rb = (assets[band].get("raster:bands") or [{}])[0]
        if "scale" in rb:
            scale = float(rb["scale"])
            scales.add(scale)
            from_raster.add(round(-float(rb.get("offset", 0.0)) / scale))
    if len(from_raster) > 1 or len(scales) > 1:
        raise MalformedItemError(
            f"item {item_id!r}: bands disagree on raster:bands offset/scale {sorted(from_raster)}"
        )
    from_baseline = None
    if baseline is not None:
        try:
            major, minor = (int(p) for p in baseline.split("."))
        except ValueError as err:
            raise MalformedItemError(
                f"item {item_id!r}: processing baseline {baseline!r} is not 'NN.NN'"
            ) from err
        from_baseline = BOA_ADD_OFFSET if (major, minor) >= _OFFSET_BASELINE else 0
    raster = next(iter(from_raster)) if from_raster else None
    applied = props.get("earthsearch:boa_offset_applied")
    if raster is not None and from_baseline is not None and raster != from_baseline:
        raise MalformedItemError(
            f"item {item_id!r}: raster:bands imply a DN offset of {raster} but processing baseline "
            f"{baseline} implies {from_baseline}"
        )
    if applied is True and raster is not None and raster != BOA_ADD_OFFSET:
        raise MalformedItemError(
            f"item {item_id!r}: earthsearch:boa_offset_applied is true but raster:bands offset "
            f"implies {raster} DN"
        )
    offset = raster if raster is not None else from_baseline
    if offset is None:
        raise MalformedItemError(
            f"item {item_id!r}: cannot tell the BOA offset (no raster:bands scale/offset and no "
            "processing baseline)"
        )
    return offset, next(iter(scales)) if scales else 1e-4


def _mgrs_tile(props: dict[str, Any], item_id: str) -> str:
    """MGRS tile id from whichever property the provider uses."""
    if props.get("s2:mgrs_tile"):
        return str(props["s2:mgrs_tile"]).upper()
    code = str(props.get("grid:code", ""))
    if code.upper().startswith("MGRS-"):
        return code[5:].upper()
    for prefix in ("mgrs", "sentinel"):
        zone = props.get(f"{prefix}:utm_zone")
        band = props.get(f"{prefix}:latitude_band")
        square = props.get(f"{prefix}:grid_square")
        if zone is not None and band and square:
            return f"{int(zone):02d}{band}{square}".upper()
    m = re.search(r"(?:^|_)T?(\d{2}[C-X][A-Z]{2})(?:_|$)", item_id)
    if m:
        return m.group(1)
    raise MalformedItemError(f"item {item_id!r}: cannot tell its MGRS tile")
