"""The core of every resumable Zarr store: where it is, whether it may be resumed, what is done.

The mosaic store (:mod:`s2scale.mosaic.store`), the composite store (:mod:`s2scale.cubestore`) and
the pair store (:class:`s2scale.pairs.PairStore`) keep their own layouts and build on this module
for the parts they share:

- **locations**: a local path, ``file://`` or any fsspec URL (``s3://``, ``memory://``) resolves to
  a :class:`StoreLocation`: what zarr and xarray open, the filesystem, and a form safe to log
  (:func:`redact_url`);
- **the manifest**: a JSON record of everything that shapes the stored values, written *last* when
  a store is created, so that a store whose creation was interrupted is never mistaken for one
  that may be resumed;
- **the overwrite rule** (:func:`open_or_create`): an existing store is resumed only if its
  manifest equals the new one; otherwise it is refused, naming each differing entry, unless
  ``overwrite`` is asked. A folder that is not a Zarr store, or a Zarr store of another kind, is
  refused too;
- **done marks**: a unit of work is marked done only after its data is written, by the task that
  wrote it, so a rerun recomputes exactly the unmarked units. Grids of regions use one ``uint8``
  chunk per region (:func:`create_done_grid`, :func:`mark_done`, :func:`read_done`); named units
  (task groups) carry a ``record`` attribute (:func:`mark_record_done`, :func:`done_records`);
- **the codec** of the uint16 reflectance arrays (:func:`reflectance_compressors`).

Nothing here knows a store's arrays; each store passes a ``create`` callback that writes them.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import fsspec
import numpy as np
import zarr

from s2scale.config import diff_entries
from s2scale.errors import ConfigError, GridMismatchError

__all__ = [
    "META_GROUP",
    "StoreKind",
    "StoreLocation",
    "check_manifest",
    "create_done_grid",
    "done_records",
    "jsonable",
    "mark_done",
    "mark_record_done",
    "open_or_create",
    "read_done",
    "read_manifest",
    "redact_url",
    "reflectance_compressors",
    "resolve_store",
]

log = logging.getLogger(__name__)

META_GROUP = "_s2scale"
"""Group of a store that holds its manifest and done marks (unless its :class:`StoreKind` says)."""


def reflectance_compressors() -> tuple[Any, ...]:
    """Zarr v3 compressors of the stores' uint16 reflectance: Blosc zstd level 1, bit shuffle.

    Bit shuffle groups the bit planes of the 16-bit values, whose high bits barely change in
    reflectance, so a light zstd level compresses them better than Zarr's default (zstd level 3
    on the plain bytes) in about half its CPU time. Every throughput record compares the codecs
    on 5 m output of a real Sentinel-2 scene (``codecs`` in ``benchmarks/bench_throughput.py``;
    ``benchmarks/README.md`` quotes the latest). Stores written with another codec keep theirs:
    a resumed store reads its codec from its own metadata.
    """
    from zarr.codecs import BloscCodec

    return (BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle", typesize=2),)


def redact_url(url: str | Path) -> str:
    """A store URL or path safe to log: user info, query and fragment removed.

    Examples
    --------
    >>> redact_url("s3://KEY:SECRET@bucket/mosaic.zarr?token=x")
    's3://bucket/mosaic.zarr'
    >>> redact_url("/data/mosaic.zarr")
    '/data/mosaic.zarr'
    """
    text = str(url)
    if "://" not in text:
        return text
    parts = urlsplit(text)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class StoreLocation:
    """Where a store is (see :func:`resolve_store`)."""

    target: str
    """What zarr and xarray open: a local path, or the fsspec URL as given."""
    shown: str
    """The store as it may be logged (credentials removed)."""
    root: str
    """The store's root path inside :attr:`fs`."""
    fs: fsspec.AbstractFileSystem = field(repr=False, compare=False)
    """The filesystem the store is on."""

    def has(self, name: str = "zarr.json") -> bool:
        """True if ``name`` exists below the root (default: the store is a Zarr v3 store)."""
        return bool(self.fs.exists(f"{self.root}/{name}"))

    def is_occupied(self) -> bool:
        """True if the root exists and is a file or a folder with anything in it."""
        return bool(self.fs.exists(self.root)) and (
            not self.fs.isdir(self.root) or bool(self.fs.ls(self.root))
        )


def resolve_store(store: str | Path) -> StoreLocation:
    """Resolve a path or fsspec URL; ``file://`` URLs become plain paths.

    Examples
    --------
    >>> resolve_store("file:///data/m.zarr").target
    '/data/m.zarr'
    >>> resolve_store("memory://KEY:SECRET@bucket/m.zarr").shown
    'memory://bucket/m.zarr'
    """
    text = str(store)
    fs, root = fsspec.core.url_to_fs(text)
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    target = root if "file" in protocols else text
    return StoreLocation(target=target, shown=redact_url(text), root=root, fs=fs)


@dataclass(frozen=True)
class StoreKind:
    """One kind of resumable store: how messages name it and where its manifest is kept."""

    name: str
    """How messages name the store, e.g. ``"mosaic store"``."""
    fix: str
    """What a refusal suggests, e.g. ``"pass --overwrite to replace it or use another --out"``."""
    group: str = META_GROUP
    """Group whose attributes hold the manifest (``""``: the root group)."""
    key: str | None = None
    """The attribute that holds the manifest; None: all attributes of :attr:`group`."""


def read_manifest(target: str, kind: StoreKind) -> dict[str, Any]:
    """The stored manifest of the store at ``target``; ``{}`` where there is none."""
    try:
        attrs = dict(zarr.open_group(target, path=kind.group or None, mode="r").attrs)
    except (FileNotFoundError, KeyError, ValueError, zarr.errors.NodeNotFoundError):
        return {}
    found = attrs if kind.key is None else attrs.get(kind.key)
    return dict(found) if isinstance(found, Mapping) else {}


def _write_manifest(target: str, kind: StoreKind, manifest: dict[str, Any]) -> None:
    """Add the manifest to a store whose arrays are written (the last step of creating it)."""
    group = zarr.open_group(target, path=kind.group or None, mode="a", zarr_format=3)
    group.attrs.update(manifest if kind.key is None else {kind.key: manifest})


def _normalise(manifest: Mapping[str, Any], kind: StoreKind) -> dict[str, Any]:
    """``manifest`` as it reads back from JSON (tuples become lists, keys sorted)."""
    try:
        return json.loads(json.dumps(dict(manifest), sort_keys=True))
    except TypeError as err:
        raise ConfigError(
            f"the {kind.name} manifest must be JSON-serialisable (str, numbers, lists, dicts): "
            f"{err}; pass plain values in the fingerprint"
        ) from err


def check_manifest(loc: StoreLocation, kind: StoreKind, manifest: Mapping[str, Any]) -> None:
    """Refuse an existing store that is not of ``kind`` or whose manifest differs.

    Raises
    ------
    GridMismatchError
        Naming each differing entry as ``key.subkey: stored -> new``.
    """
    stored = read_manifest(loc.target, kind)
    if not stored or stored.get("format") != manifest.get("format"):
        raise GridMismatchError(
            f"Zarr store {loc.shown!r} exists but is not an s2scale {kind.name} (another "
            f"dataset, or its creation was interrupted); {kind.fix}"
        )
    diffs = diff_entries(stored, dict(manifest))
    if diffs:
        raise GridMismatchError(
            f"{kind.name} {loc.shown!r} was made with another configuration "
            f"({'; '.join(diffs)}); rerun with the stored configuration to resume it, or "
            f"{kind.fix}"
        )


def open_or_create(
    store: str | Path,
    kind: StoreKind,
    manifest: Mapping[str, Any],
    *,
    create: Callable[[StoreLocation], None],
    overwrite: bool = False,
) -> tuple[StoreLocation, bool]:
    """Open a store to resume it, or create it; the overwrite rule of every resumable store.

    Parameters
    ----------
    store
        Local path, ``file://`` or fsspec URL.
    kind
        The kind of store (its name in messages and where its manifest is).
    manifest
        JSON-serialisable description of everything that shapes the stored values.
    create
        Writes the store's layout (arrays, groups, done marks) at a location that is empty; the
        manifest is added after it returns.
    overwrite
        Replace whatever is at ``store`` instead of refusing.

    Returns
    -------
    tuple of StoreLocation and bool
        The location, and True if the store was created (or replaced) by this call.

    Raises
    ------
    GridMismatchError
        Without ``overwrite``: ``store`` holds a store of ``kind`` with another manifest (the
        message names each differing entry), a Zarr store of another kind, or something that is
        not a Zarr store.
    ConfigError
        ``manifest`` is not JSON-serialisable.
    """
    manifest = _normalise(manifest, kind)
    loc = resolve_store(store)
    if not overwrite:
        if loc.has("zarr.json"):
            check_manifest(loc, kind, manifest)
            return loc, False
        if loc.is_occupied():
            raise GridMismatchError(f"{loc.shown!r} exists and is not a Zarr store; {kind.fix}")
    elif loc.fs.exists(loc.root):
        log.info("replacing the %s %s (overwrite)", kind.name, loc.shown)
        loc.fs.rm(loc.root, recursive=True)
    create(loc)
    _write_manifest(loc.target, kind, manifest)
    log.debug("created %s %s", kind.name, loc.shown)
    return loc, True


# ------------------------------------------------------------------------------ done marks: grids
def create_done_grid(target: str, name: str, n_blocks: tuple[int, int]) -> None:
    """Create the done marks of a grid of regions: ``(block_y, block_x)`` uint8, one chunk each."""
    group = zarr.open_group(target, path=META_GROUP, mode="a", zarr_format=3)
    group.create_array(
        name,
        shape=n_blocks,
        chunks=(1, 1),
        dtype="uint8",
        fill_value=0,
        dimension_names=("block_y", "block_x"),
    )


def mark_done(target: str, name: str, block: tuple[int, int]) -> None:
    """Mark one region done; call it only after the region's data is written."""
    zarr.open_array(target, path=f"{META_GROUP}/{name}", mode="r+")[block] = 1


def read_done(target: str, name: str) -> np.ndarray:
    """``(block_y, block_x)`` bool: which regions are marked done."""
    marks = zarr.open_array(target, path=f"{META_GROUP}/{name}", mode="r")
    return np.asarray(marks[...]).astype(bool)


# ------------------------------------------------------------------------- done marks: named units
def mark_record_done(group: zarr.Group, record: Mapping[str, Any]) -> dict[str, Any]:
    """Write a unit's record into its group's attributes, marked done; returns the record.

    Call it only after the unit's arrays in ``group`` are written: a group without a done record
    is unfinished.
    """
    full = jsonable({**record, "done": True})
    group.attrs["record"] = full
    return full


def done_records(group: zarr.Group) -> dict[str, dict[str, Any]]:
    """``{name: record}`` of the finished member groups of ``group``, sorted by name."""
    out = {}
    with warnings.catch_warnings():  # a member being written (or killed) is not finished
        warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        for name, member in group.groups():
            record = member.attrs.get("record")
            if isinstance(record, Mapping) and record.get("done"):
                out[name] = dict(record)
    return dict(sorted(out.items()))


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON data: tuples become lists, numpy scalars numbers, others their ``str``.

    Examples
    --------
    >>> jsonable({"shift": (np.float32(0.5), 1), "path": Path("a.tif")})
    {'shift': [0.5, 1], 'path': 'a.tif'}
    """
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
