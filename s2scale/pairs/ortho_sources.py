"""Which orthophotos to open: files, folders, globs, local STAC files and STAC APIs.

:func:`list_orthophotos` expands the sources given to ``s2scale pairs`` into :class:`OrthoSource`
records (an href plus what a STAC item says: id, ``datetime``, band common names);
:func:`~s2scale.pairs.ortho.open_orthophoto` reads each one's header.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2scale.catalog import read_stac_items
from s2scale.errors import ConfigError
from s2scale.pairs.ortho import BAND_ALIASES

__all__ = ["OrthoSource", "list_orthophotos"]

log = logging.getLogger(__name__)

_RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")


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
    bands = tuple(BAND_ALIASES.get(str(c).lower(), "") for c in common) if common else None
    return OrthoSource(
        href=href,
        id=str(item.get("id")),
        datetime=(item.get("properties") or {}).get("datetime"),
        bands=bands if bands and all(bands) else None,
    )


def _stac_file_orthophotos(path: Path) -> list[OrthoSource]:
    """Items of a local STAC ItemCollection, Collection or Catalog."""
    items = read_stac_items(path)
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
