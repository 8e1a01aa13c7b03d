"""Patch stores: the Zarr v3 layout the training loop reads, and its resumable pair store.

Layout of a patch store (both writers)
--------------------------------------
Arrays at the root, one row per patch: ``lr`` ``(N, C, p, p)`` uint16 and ``hr``
``(N, C, p * s, p * s)`` uint16 harmonised DN, ``split`` ``(N,)`` int8 (0 train, 1 val, 2 test),
``source`` ``(N,)`` int (index into the ``sources`` attribute) and ``ssim`` ``(N,)`` float32;
attributes ``bands``, ``scale``, ``normalization`` (``x = (dn - offset) / scale``), ``splits``,
``counts``, ``sources`` (one provenance record per source) and ``provenance``.
:func:`read_patch_store` and :meth:`s2scale.train.PairDataset.from_zarr` read it.

The pair store of ``s2scale pairs`` (:class:`PairStore`) adds per-patch provenance: ``lr_mask``
``(N, p, p)`` and ``hr_mask`` ``(N, p * s, p * s)`` bool (valid pixels), ``bounds`` ``(N, 4)``
float64 (LR patch bounds in its CRS), ``crs``, ``scene_id``, ``ortho_id`` ``(N,)`` strings,
``shift`` ``(N, 2)`` float32 (remaining displacement ``(dy, dx)`` of the HR, LR pixels), and keeps
what makes it resumable: ``parts/<group>`` holds the patches of each finished task group (one
orthophoto x one observation) with its record in the attributes (written last: a group without a
record is unfinished), ``surveys/<orthophoto>`` the scene choice of each orthophoto. The root
arrays are rebuilt from the parts in group order (:meth:`PairStore.consolidate`), so a resumed run
gives the same store as an uninterrupted one. The overwrite rule, the manifest (the
``s2scale_pairs`` attribute) and the done records are those of :mod:`s2scale.resumable`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s2scale import resumable
from s2scale.errors import ConfigError, GridMismatchError, ReadError
from s2scale.pairs.kernels import SPLITS, PatchSet
from s2scale.sentinel2 import BANDS

__all__ = [
    "PART_ARRAYS",
    "PairStore",
    "read_patch_provenance",
    "read_patch_store",
    "write_patch_store",
]

log = logging.getLogger(__name__)

STORE_ATTR = "s2scale_pairs"
"""Root attribute of a pair store: format version and the configuration fingerprint."""
PART_ARRAYS: tuple[str, ...] = (
    "lr",
    "hr",
    "lr_mask",
    "hr_mask",
    "split",
    "ssim",
    "shift",
    "bounds",
)
"""Arrays of one part (task group), each with one row per patch."""
_ROOT_ONLY = ("source", "crs", "scene_id", "ortho_id")
_KIND = resumable.StoreKind(
    name="pair store",
    fix="pass --overwrite to replace it or choose another --out",
    group="",
    key=STORE_ATTR,
)


def write_patch_store(
    path: str | Path,
    patches: PatchSet,
    *,
    bands: Sequence[str] = BANDS,
    scale: int = 2,
    normalization: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    chunk_patches: int = 64,
) -> Path:
    """Write a Zarr v3 patch store (overwrites ``path``).

    Layout: arrays ``lr`` ``(N, C, p, p)`` uint16, ``hr`` ``(N, C, p*s, p*s)`` uint16, ``split``
    ``(N,)`` int8 (0 train, 1 val, 2 test), ``source`` ``(N,)`` int16 and ``ssim`` ``(N,)``
    float32; attrs ``bands``, ``scale``, ``normalization`` (``x = (dn - offset) / scale``),
    ``splits``, ``sources`` (one provenance record per source index) and ``provenance``.
    :meth:`s2scale.train.PairDataset.from_zarr` reads it.

    Returns
    -------
    pathlib.Path
        The store path.
    """
    import zarr

    from s2scale.models.checkpoint import Normalization

    n = len(patches)
    if patches.lr.shape[1] != len(bands):
        raise GridMismatchError(f"{patches.lr.shape[1]} bands in the patches, {len(bands)} names")
    norm = Normalization.coerce(normalization or {}).to_dict()
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    k = max(1, min(chunk_patches, n))
    arrays = {
        "lr": patches.lr.astype(np.uint16),
        "hr": patches.hr.astype(np.uint16),
        "split": patches.split.astype(np.int8),
        "source": patches.source.astype(np.int16),
        "ssim": (patches.ssim if patches.ssim is not None else np.full(n, np.nan)).astype(
            np.float32
        ),
    }
    for name, data in arrays.items():
        arr = group.create_array(
            name, shape=data.shape, dtype=data.dtype, chunks=(k, *data.shape[1:])
        )
        arr[...] = data
    attrs = {
        "bands": list(bands),
        "scale": int(scale),
        "normalization": norm,
        "splits": list(SPLITS),
        "counts": {s: int((patches.split == i).sum()) for i, s in enumerate(SPLITS)},
        "sources": patches.sources,
        "provenance": dict(provenance or {}),
    }
    group.attrs.update(json.loads(json.dumps(attrs, default=str)))
    log.info("patch store %s: %d pairs %s", path, n, attrs["counts"])
    return Path(path)


def read_patch_store(
    path: str | Path, split: str | None = None, *, sources: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read ``(lr, hr, attrs)`` of a patch store, optionally one split and some source kinds.

    ``sources`` keeps patches whose source record's ``kind`` is listed. Arrays are loaded into
    memory (uint16 DN).

    Raises
    ------
    ReadError
        If the store cannot be opened.
    ConfigError
        For an unknown split name.
    """
    import zarr

    if split is not None and split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
        keep = np.ones(group["split"].shape[0], bool)
        if split is not None:
            keep &= group["split"][...] == SPLITS.index(split)
        if sources is not None:
            kinds = np.array([s.get("kind") for s in attrs["sources"]] or [""])
            keep &= np.isin(kinds[group["source"][...]], list(sources))
        idx = np.flatnonzero(keep)
        return group["lr"][...][idx], group["hr"][...][idx], attrs
    except (OSError, KeyError, ValueError) as err:
        raise ReadError(f"cannot read the patch store {str(path)!r}") from err


def read_patch_provenance(path: str | Path) -> dict[str, np.ndarray]:
    """Per-patch provenance arrays of a patch store (those it has), loaded into memory.

    Keys among ``split``, ``source``, ``ssim``, ``shift``, ``bounds``, ``crs``, ``scene_id`` and
    ``ortho_id`` (see the module docstring).

    Raises
    ------
    ReadError
        If the store cannot be opened.
    """
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
        names = set(group.array_keys())
        keys = ("split", "source", "ssim", "shift", "bounds", *_ROOT_ONLY[1:])
        return {k: np.asarray(group[k][...]) for k in keys if k in names}
    except (OSError, KeyError, ValueError) as err:
        raise ReadError(f"cannot read the patch store {str(path)!r}") from err


class PairStore:
    """The resumable pair store of ``s2scale pairs`` (see the module docstring).

    Parameters
    ----------
    path
        Store path or fsspec URL.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    # ----------------------------------------------------------------- create / open
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        fingerprint: Mapping[str, Any],
        bands: Sequence[str],
        lr_patch_px: int,
        scale: int = 2,
        normalization: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> PairStore:
        """Create the store, or open one made with the same ``fingerprint`` (to resume it).

        ``bands``, ``lr_patch_px`` and ``scale`` fix the shape of the patches.

        Raises
        ------
        GridMismatchError
            If ``path`` holds a pair store of another configuration or bands (the message
            names the differences), or something else, and ``overwrite`` is false.
        """
        meta = resumable.jsonable(
            {
                "version": 1,
                "fingerprint": dict(fingerprint),
                "bands": list(bands),
                "lr_patch_px": int(lr_patch_px),
                "scale": int(scale),
            }
        )

        def create(loc: resumable.StoreLocation) -> None:
            import zarr

            from s2scale.models.checkpoint import Normalization

            root = zarr.open_group(loc.target, mode="w", zarr_format=3)
            root.create_group("parts")
            root.create_group("surveys")
            norm = Normalization.coerce(normalization or {}).to_dict()
            root.attrs.update(
                resumable.jsonable(
                    {
                        "bands": list(bands),
                        "scale": int(scale),
                        "normalization": norm,
                        "splits": list(SPLITS),
                        "counts": {s: 0 for s in SPLITS},
                        "sources": [],
                    }
                )
            )

        resumable.open_or_create(path, _KIND, meta, create=create, overwrite=overwrite)
        return cls(path)

    def _root(self, mode: str = "r") -> Any:
        import zarr

        try:
            return zarr.open_group(self.path, mode=mode)
        except (FileNotFoundError, KeyError, ValueError, zarr.errors.NodeNotFoundError) as err:
            raise ReadError(f"cannot open the pair store {self.path!r}") from err

    @property
    def bands(self) -> list[str]:
        """Bands of the store."""
        return list(self._root().attrs["bands"])

    # ----------------------------------------------------------------- records
    def _records(self, child: str) -> dict[str, dict[str, Any]]:
        """``{name: record}`` of the finished members of ``parts`` or ``surveys``."""
        return resumable.done_records(self._root()[child])

    def done_groups(self) -> dict[str, dict[str, Any]]:
        """Records of the finished task groups, by group id."""
        return self._records("parts")

    def surveys(self) -> dict[str, dict[str, Any]]:
        """Scene-choice records of the surveyed orthophotos, by orthophoto id."""
        return self._records("surveys")

    def write_survey(self, ortho_id: str, record: Mapping[str, Any]) -> None:
        """Record the scene choice of one orthophoto (done by the survey task)."""
        group = self._root("r+")["surveys"].create_group(ortho_id, overwrite=True)
        resumable.mark_record_done(group, record)

    def write_group(
        self, gid: str, arrays: Mapping[str, np.ndarray], record: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Write the patches of one task group, then its record (which marks it finished).

        ``arrays`` holds :data:`PART_ARRAYS`, one row per patch (any count, 0 included).
        """
        n = len(arrays["lr"])
        bad = [k for k in PART_ARRAYS if k not in arrays or len(arrays[k]) != n]
        if bad:
            raise GridMismatchError(f"group {gid!r}: arrays {bad} are missing or not {n} long")
        group = self._root("r+")["parts"].create_group(gid, overwrite=True)
        for name in PART_ARRAYS:
            data = np.ascontiguousarray(arrays[name])
            arr = group.create_array(
                name, shape=data.shape, dtype=data.dtype, chunks=(max(1, n), *data.shape[1:])
            )
            if n:
                arr[...] = data
        return resumable.mark_record_done(group, {**record, "group": gid, "patches": n})

    # ----------------------------------------------------------------- root arrays
    def consolidate(
        self, *, chunk_patches: int = 16, provenance: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Rebuild the root arrays from every finished part, in group-id order.

        Reads one part at a time (memory stays at one group's patches). Returns the counts per
        split and the number of patches.
        """
        root = self._root("r+")
        records = self.done_groups()
        parts = root["parts"]
        shapes: dict[str, tuple[tuple[int, ...], Any]] = {}
        for gid, rec in records.items():
            if rec["patches"]:
                part = parts[gid]
                shapes = {k: (part[k].shape[1:], part[k].dtype) for k in PART_ARRAYS}
                break
        n_total = int(sum(r["patches"] for r in records.values()))
        bands = len(root.attrs["bands"])
        if not shapes:  # no patch at all: empty arrays of the configured shapes
            p = int(root.attrs[STORE_ATTR]["lr_patch_px"])
            q = p * int(root.attrs["scale"])
            shapes = {
                "lr": ((bands, p, p), np.uint16),
                "hr": ((bands, q, q), np.uint16),
                "lr_mask": ((p, p), np.bool_),
                "hr_mask": ((q, q), np.bool_),
                "split": ((), np.int8),
                "ssim": ((), np.float32),
                "shift": ((2,), np.float32),
                "bounds": ((4,), np.float64),
            }
        shapes |= {
            "source": ((), np.int32),
            "crs": ((), str),
            "scene_id": ((), str),
            "ortho_id": ((), str),
        }
        k = max(1, min(chunk_patches, n_total))
        out = {}
        for name, (shape, dtype) in shapes.items():
            if name in root:
                del root[name]
            out[name] = root.create_array(
                name, shape=(n_total, *shape), dtype=dtype, chunks=(k, *shape)
            )
        offset = 0
        sources = []
        for i, (gid, rec) in enumerate(records.items()):
            sources.append(rec)
            n = int(rec["patches"])
            if not n:
                continue
            part = parts[gid]
            rows = slice(offset, offset + n)
            for name in PART_ARRAYS:
                out[name][rows] = part[name][...]
            out["source"][rows] = np.full(n, i, np.int32)
            out["crs"][rows] = np.array([rec["crs"]] * n)
            out["scene_id"][rows] = np.array([",".join(rec["scene_ids"])] * n)
            out["ortho_id"][rows] = np.array([rec["ortho_id"]] * n)
            offset += n
        split = np.asarray(out["split"][...]) if n_total else np.zeros(0, np.int8)
        counts = {s: int((split == j).sum()) for j, s in enumerate(SPLITS)}
        summary = {"counts": counts, "sources": sources, "provenance": dict(provenance or {})}
        root.attrs.update(resumable.jsonable(summary))
        log.info("pair store %s: %d pairs %s", self.path, n_total, counts)
        return {"patches": n_total, "counts": counts}
