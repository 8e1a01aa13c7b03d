"""One JSON record per benchmark run: commit, config hash, machine and cluster context, timings.

Every benchmark script writes its record with :func:`write_record` into ``benchmarks/results/``
(or ``--out``); numbers quoted in notes and model cards come from these files.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def git_commit() -> str:
    """The current commit (with ``-dirty`` when the tree has changes), or ``unknown``."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def machine() -> dict[str, Any]:
    """CPU, memory and GPU of this machine."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return info


def cluster_context(client: Any | None) -> dict[str, Any] | None:
    """Workers, threads, memory and resources of a Dask client's cluster."""
    if client is None:
        return None
    workers = client.scheduler_info()["workers"].values()
    return {
        "workers": len(workers),
        "threads": sum(w["nthreads"] for w in workers),
        "memory_gb": round(sum(w["memory_limit"] for w in workers) / 2**30, 1),
        "resources": [w.get("resources", {}) for w in workers],
    }


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable config."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_record(
    name: str,
    config: dict[str, Any],
    results: dict[str, Any],
    *,
    client: Any | None = None,
    out_dir: Path | None = None,
) -> Path:
    """Write ``{out_dir}/{name}-{timestamp}.json`` and return its path."""
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    record = {
        "benchmark": name,
        "time": stamp,
        "git_commit": git_commit(),
        "config": config,
        "config_hash": config_hash(config),
        "machine": machine(),
        "cluster": cluster_context(client),
        "results": results,
    }
    path = out_dir / f"{name}-{stamp}.json"
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path
