"""The GPU-time estimate of a plan, from throughput benchmark records (one home).

``s2scale upscale --dry-run`` (:func:`s2scale.pipeline.plan_upscale`) and ``s2scale deploy plan``
(:func:`s2scale.deploy.sizing.plan_gpu_hours`) both call :func:`estimate_gpu_seconds`: the
output pixels divided by the end-to-end rate (``results.<model>.end_to_end_mpx_s``, one GPU
worker) of the newest ``throughput-*.json`` record of ``benchmarks/bench_throughput.py``
measured on the kind of device the run asks for. Records are passed explicitly (a folder or a
list of files); where none are, :data:`THROUGHPUT_RECORDS_ENV` names a folder. Nothing else is
read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["THROUGHPUT_RECORDS_ENV", "Records", "estimate_gpu_seconds", "record_files"]

THROUGHPUT_RECORDS_ENV = "S2SCALE_THROUGHPUT_RECORDS"
"""Folder of ``throughput-*.json`` benchmark records used when no records are passed."""

Records = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
"""A folder of ``throughput-*.json`` records, or the record files themselves."""


def _device_kinds(device: str) -> tuple[str, ...]:
    """Record device kinds that fit ``infer.device``, best first (``auto`` prefers a GPU record)."""
    return {"cuda": ("cuda",), "cpu": ("cpu",)}.get(device, ("cuda", "cpu"))


def record_files(records: Records) -> list[Path]:
    """The record files of a folder (``throughput-*.json``, by name) or of a list of files.

    Examples
    --------
    >>> record_files(["b/throughput-2.json", "a/throughput-1.json"])[0].name
    'throughput-1.json'
    """
    if isinstance(records, str | os.PathLike):
        folder = Path(records)
        return sorted(folder.glob("throughput-*.json")) if folder.is_dir() else []
    return sorted((Path(p) for p in records), key=lambda p: p.name)


def estimate_gpu_seconds(
    model: str, out_pixels: int, device: str = "auto", *, records: Records | None = None
) -> dict[str, Any]:
    """Model time estimate from the newest throughput record for ``model`` on ``device``.

    Only records measured on the kind of device the run asks for count (``infer.device``;
    ``auto`` takes a CUDA record where there is one, else a CPU record, and says which).

    Returns
    -------
    dict
        ``seconds``, ``mpx_per_s``, ``device_kind``, ``device`` (the record's CPU or GPU) and
        ``record`` (its file name); or ``seconds: None`` and a ``note`` saying what is missing.
    """
    from s2scale.models.spec import model_name

    if records is None:
        folder = os.environ.get(THROUGHPUT_RECORDS_ENV)
        if not folder:
            return {"seconds": None, "note": f"set {THROUGHPUT_RECORDS_ENV} to a folder of "
                    "throughput-*.json benchmark records for an estimate"}  # fmt: skip
        records = folder
    where = str(records) if isinstance(records, str | os.PathLike) else "the given records"
    paths = record_files(records)
    kinds = _device_kinds(device)
    for kind in kinds:
        for path in reversed(paths):
            rec = json.loads(path.read_text())
            res = rec.get("results", {})
            if res.get("device", "cpu") != kind:
                continue
            entry = res.get(model_name(model))
            if entry and entry.get("end_to_end_mpx_s"):
                mpx_s = float(entry["end_to_end_mpx_s"])
                return {
                    "seconds": round(out_pixels / 1e6 / mpx_s, 1),
                    "mpx_per_s": mpx_s,
                    "device_kind": kind,
                    "device": res.get("device_name")
                    or ", ".join(rec.get("machine", {}).get("gpus", []) or ["cpu"]),
                    "record": path.name,
                }
    return {"seconds": None, "note": f"no throughput record for {model!r} on "
            f"{' or '.join(kinds)} under {where}"}  # fmt: skip
