"""GPUs x hours of a run, from its plan and the throughput benchmark records of one device.

The plan (:func:`s2scale.pipeline.plan_upscale`, the same as ``s2scale upscale --dry-run``) gives
the output pixels of the AOI's regions, and its ``estimated_gpu_time`` divides them by the
end-to-end throughput (read -> SR -> blend -> write, 5 m output Mpx/s of one GPU worker) of the
newest ``throughput-*.json`` record of ``benchmarks/bench_throughput.py`` for the model. Here the
records are first narrowed to one device (``cpu``, ``cuda`` or part of a GPU's name such as
``H200``) and the wall-clock time is that GPU time shared by the workers, assuming they scale
linearly (the measured scaling of the work units is close to linear; see ``README.md``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from s2scale.config import RunConfig
from s2scale.errors import ConfigError

__all__ = ["format_plan", "job_deadline_s", "plan_gpu_hours", "record_device", "select_records"]

DEADLINE_MARGIN = 3.0
"""Factor on the estimated wall clock for the job's deadline: retries, slower nodes, reads."""
DEADLINE_STARTUP_S = 1800
"""Seconds added for start-up: images pulled, GPU nodes scaled up from zero, the catalog search."""


def record_device(record: dict[str, Any]) -> str:
    """The device a throughput record was measured on: GPU names, or ``"cpu"``.

    Examples
    --------
    >>> record_device({"machine": {"gpus": ["NVIDIA H200"]}, "results": {"device": "cuda"}})
    'NVIDIA H200'
    >>> record_device({"machine": {}, "results": {"device": "cpu"}})
    'cpu'
    """
    if str(record.get("results", {}).get("device", "cpu")).startswith("cuda"):
        return ", ".join(record.get("machine", {}).get("gpus", ["cuda"]))
    return "cpu"


def _matches(device: str, wanted: str) -> bool:
    wanted = wanted.lower()
    if wanted == "cuda":
        return device != "cpu"
    return wanted in device.lower()


def select_records(folder: str | Path, device: str | None = None) -> list[Path]:
    """``throughput-*.json`` records in ``folder`` measured on ``device`` (all for ``None``).

    ``device`` is ``cpu``, ``cuda`` (any GPU) or part of a GPU name (``H200``), case-insensitive.

    Raises
    ------
    ConfigError
        ``folder`` holds no record (of that device); the message lists the devices it has.
    """
    root = Path(folder)
    paths = sorted(root.glob("throughput-*.json")) if root.is_dir() else []
    if not paths:
        raise ConfigError(
            f"no throughput-*.json benchmark records in {str(root)!r}; point --records at a "
            "folder of them (benchmarks/results of a checkout) or run "
            "benchmarks/bench_throughput.py on the target device"
        )
    if device is None:
        return paths
    found = {p: record_device(json.loads(p.read_text())) for p in paths}
    chosen = [p for p, d in found.items() if _matches(d, device)]
    if not chosen:
        raise ConfigError(
            f"no throughput record of device {device!r} in {str(root)!r} (records of: "
            f"{', '.join(sorted(set(found.values())))}); run benchmarks/bench_throughput.py "
            "on that device, or choose one of those"
        )
    return chosen


def plan_gpu_hours(
    cfg: RunConfig,
    *,
    gpus: int,
    records: str | Path,
    device: str | None = None,
    from_cube: str | Path | None = None,
) -> dict[str, Any]:
    """GPU-hours and wall-clock hours of ``cfg`` on ``gpus`` GPU workers.

    Parameters
    ----------
    cfg
        The run configuration (its catalog is searched, no pixel is read).
    gpus
        GPU workers that share the work.
    records
        Folder of ``throughput-*.json`` records.
    device
        Use only records of this device (see :func:`select_records`); default all.
    from_cube
        Plan from a composite store instead of a search (as ``upscale --from-cube``).

    Returns
    -------
    dict
        ``aoi``, ``model``, ``units``, ``output_mpx``, ``mpx_per_s`` (one GPU worker, end to end),
        ``device`` (``cpu`` or ``cuda``), ``device_name`` (the record's CPU or GPU),
        ``record``, ``gpu_hours``, ``gpus``, ``wall_hours``.

    Raises
    ------
    ConfigError
        No record of the device, or none for the model.
    """
    from s2scale.pipeline import plan_upscale

    if gpus < 1:
        raise ConfigError(f"gpus={gpus} must be at least 1")
    _, report = plan_upscale(cfg, from_cube=from_cube, records=select_records(records, device))
    estimate = report["estimated_gpu_time"]
    if estimate.get("seconds") is None:
        raise ConfigError(f"no GPU-time estimate: {estimate.get('note')}")
    gpu_hours = estimate["seconds"] / 3600
    return {
        "aoi": cfg.catalog.aoi,
        "model": cfg.infer.model,
        "units": report["units"],
        "region_px": cfg.mosaic.chunk_px,
        "resolution_m": cfg.mosaic.resolution_m,
        "output_mpx": round(report["output_pixels"] / 1e6, 1),
        "mpx_per_s": estimate["mpx_per_s"],
        "device": estimate["device_kind"],
        "device_name": estimate["device"],
        "record": estimate["record"],
        "gpu_hours": round(gpu_hours, 2),
        "gpus": gpus,
        "wall_hours": round(gpu_hours / gpus, 2),
    }


def format_plan(plan: dict[str, Any]) -> str:
    """The plan of :func:`plan_gpu_hours` as a few aligned lines of text."""
    p = plan
    lines = [
        f"AOI          {p['aoi']} ({p['units']} work units of {p['region_px']} px)",
        f"model        {p['model']}",
        f"output       {p['output_mpx']:,.1f} Mpx at {p['resolution_m']:g} m",
        f"throughput   {p['mpx_per_s']} Mpx/s per worker, end to end ({p['device_name']}, "
        f"{p['record']})",
        f"GPU time     {p['gpu_hours']:,.2f} GPU-hours",
        f"wall clock   {p['wall_hours']:,.2f} h on {p['gpus']} GPU worker"
        f"{'s' * (p['gpus'] != 1)} (linear scaling; add start-up and scheduling)",
    ]
    if p["device"] == "cpu":
        lines.append(
            "note         the record was measured on a CPU; run benchmarks/bench_throughput.py "
            "on a GPU node for GPU figures"
        )
    return "\n".join(lines)


def job_deadline_s(
    plan: dict[str, Any],
    *,
    gpus: int,
    margin: float = DEADLINE_MARGIN,
    startup_s: int = DEADLINE_STARTUP_S,
) -> int:
    """The job runner's ``activeDeadlineSeconds`` from a plan of :func:`plan_gpu_hours`.

    ``gpu_hours / gpus`` (linear scaling, as the plan assumes) times ``margin``, plus
    ``startup_s``, rounded up to whole minutes.

    Examples
    --------
    >>> job_deadline_s({"gpu_hours": 12.31}, gpus=8)
    18420
    """
    if gpus < 1:
        raise ConfigError(f"gpus={gpus} must be at least 1")
    if not margin >= 1:
        raise ConfigError(f"deadline margin {margin} must be at least 1")
    try:
        gpu_hours = float(plan["gpu_hours"])
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            "the plan has no gpu_hours; give the JSON of `s2scale deploy plan --json`"
        ) from err
    seconds = gpu_hours * 3600 / gpus * margin + startup_s
    return int(-(-seconds // 60) * 60)
