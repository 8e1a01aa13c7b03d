"""Kubernetes deployment of a run: manifests, offline validation, sizing, bounded job retries.

- :mod:`~s2scale.deploy.config`: :class:`DeployConfig`, what the cluster adds to a run config.
- :mod:`~s2scale.deploy.runconfig`: the run configuration as the pods read it, per overlay.
- :mod:`~s2scale.deploy.pods`: pod specs of the workers, the scheduler and the job runner.
- :mod:`~s2scale.deploy.render`: the Kubernetes objects of one run as plain dicts.
- :mod:`~s2scale.deploy.layout`: the kustomize base and overlays as YAML files.
- :mod:`~s2scale.deploy.validate`: the manifests checked offline against Kubernetes' schemas and
  the Dask operator's CRDs (with the pods and deployments the operator makes of them).
- :mod:`~s2scale.deploy.sizing`: GPUs x hours of a run from the throughput benchmark records.
- :mod:`~s2scale.deploy.retry`: rerun the job's command a bounded number of times.
- :mod:`~s2scale.deploy.cli`: ``s2scale deploy render | plan | retry``.

Names are imported lazily, so that the command line stays quick to start.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "DeployConfig": "s2scale.deploy.config",
    "render_layout": "s2scale.deploy.layout",
    "render_objects": "s2scale.deploy.render",
    "write_layout": "s2scale.deploy.layout",
    "validate_objects": "s2scale.deploy.validate",
    "plan_gpu_hours": "s2scale.deploy.sizing",
    "run_with_retries": "s2scale.deploy.retry",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    """Import public names on first use."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 's2scale.deploy' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
