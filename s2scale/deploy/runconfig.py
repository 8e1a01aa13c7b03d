"""The run configuration as the job pod reads it, and the run and deploy config of each overlay.

:func:`deploy_run_config` checks that every input of a run is reachable from a pod and rewrites
the configuration for the cluster (``cluster.kind: auto``, ``infer.device: cuda``, the AOI file
shipped in the ConfigMap); :func:`variants` derives the ``small-aoi`` and ``austria`` overlays
from the base. :mod:`s2scale.deploy.render` builds the Kubernetes objects from them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from s2scale.config import RunConfig
from s2scale.deploy.config import OVERLAYS, SMALL_AOI_DEADLINE_S, DeployConfig
from s2scale.errors import ConfigError

__all__ = [
    "AOI_KEY",
    "MODELS_MOUNT",
    "OUT_KEY",
    "RUN_KEY",
    "RUN_MOUNT",
    "deploy_run_config",
    "run_yaml",
    "variants",
]

RUN_MOUNT = "/etc/s2scale"
"""Where the job runner sees the ConfigMap (``run.yaml``, ``aoi.geojson``)."""
MODELS_MOUNT = "/models"
"""Where ``DeployConfig.models_claim`` is mounted (read-only) in the job runner and workers."""
RUN_KEY, OUT_KEY, AOI_KEY = "run.yaml", "out", "aoi.geojson"
"""Keys of the run's ConfigMap: the run configuration, the output store, the AOI file."""


def deploy_run_config(cfg: RunConfig, deploy: DeployConfig) -> tuple[RunConfig, str | None]:
    """The run configuration as the job pod reads it, and the AOI file to ship beside it.

    The cluster kind becomes ``auto`` (the operator's scheduler); a GeoJSON AOI is embedded in the
    ConfigMap and referred to by its path in the pod. Checks that every input is reachable from a
    pod: the STAC source must be an http(s) URL; the model a shipped generator or a checkpoint on
    the ``/models`` volume (``DeployConfig.models_claim``).

    Raises
    ------
    ConfigError
        An input that the pods cannot reach, or a bad AOI or model (named with the fix).
    """
    from s2scale.grid import resolve_aoi

    stac = cfg.catalog.stac
    parts = urlsplit(stac)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"catalog.stac={stac!r} is not a STAC API URL; the job pod can read only what it can "
            "reach over the network: pass --stac https://... (e.g. "
            "https://earth-search.aws.element84.com/v1)"
        )
    if "@" in parts.netloc:
        raise ConfigError(
            "catalog.stac carries credentials in its URL; the rendered run configuration is a "
            "ConfigMap that anyone in the namespace can read: give the plain URL"
        )
    aoi = cfg.catalog.aoi
    resolve_aoi(aoi)  # a typo fails here, not on the cluster
    geojson = None
    path = _aoi_file(aoi)
    if path is not None:
        geojson = path.read_text()
        aoi = f"{RUN_MOUNT}/{AOI_KEY}"
    _check_model(cfg, deploy)
    device = cfg.infer.device
    if device == "cpu":
        raise ConfigError(
            "infer.device='cpu' would run the model on the CPUs of the GPU workers and hold their "
            "GPUs meanwhile; leave infer.device at auto or cuda for Kubernetes"
        )
    # auto would quietly fall back to the CPU where CUDA is unusable: the job asks for cuda
    device = "cuda" if device == "auto" else device
    # kind auto: the operator's scheduler (DASK_SCHEDULER_ADDRESS); the k8s_* keys, unused by
    # `auto`, are set to this deployment so that the file does not contradict it
    out = (
        cfg.replace("catalog", aoi=aoi)
        .replace("infer", device=device)
        .replace(
            "cluster",
            kind="auto",
            k8s_name=deploy.name,
            k8s_namespace=deploy.namespace,
            k8s_image=deploy.image,
        )
    )
    return out, geojson


def _aoi_file(aoi: str) -> Path | None:
    """The GeoJSON file an AOI string names, if it names one (as :mod:`s2scale.grid` reads it)."""
    from s2scale.grid import BUILTIN_AOIS

    text = aoi.strip()
    if text.lower() in BUILTIN_AOIS or len(text.split(",")) == 4:
        return None
    path = Path(text).expanduser()
    return path if path.is_file() else None


def _check_model(cfg: RunConfig, deploy: DeployConfig) -> None:
    """A shipped generator (its checkpoint header is read here) or a checkpoint under /models."""
    from s2scale.models import GENERATORS, is_registry_name

    model = cfg.infer.model
    if is_registry_name(model):
        from s2scale.pipeline.plan import model_setup

        model_setup(cfg)  # resolves the model (s2scale.models.resolve_model)
        return
    if deploy.models_claim is None or not model.startswith(f"{MODELS_MOUNT}/"):
        raise ConfigError(
            f"infer.model={model!r} is neither a shipped generator "
            f"({', '.join(sorted(GENERATORS))}) nor a checkpoint on the models volume; copy it "
            "to a PersistentVolumeClaim, pass "
            f"--models-claim CLAIM and --model {MODELS_MOUNT}/NAME.pt"
        )


def run_yaml(cfg: RunConfig) -> str:
    """``run.yaml`` text that ``RunConfig.from_yaml`` reads back into ``cfg``."""
    text = yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False, default_flow_style=False)
    assert RunConfig.from_dict(yaml.safe_load(text)) == cfg  # internal invariant
    return text


def _overlay_store(store: str, overlay: str) -> str:
    """``s3://b/p/name.zarr`` -> ``s3://b/p/<overlay>/name.zarr``."""
    parts = urlsplit(store)
    head, _, name = parts.path.rstrip("/").rpartition("/")
    return f"{parts.scheme}://{parts.netloc}{head}/{overlay}/{name}"


def variants(cfg: RunConfig, deploy: DeployConfig) -> dict[str, tuple[RunConfig, DeployConfig]]:
    """``{"base": ..., "small-aoi": ..., "austria": ...}``: the run and deploy config of each.

    ``small-aoi`` runs ``deploy.small_aoi`` with one GPU worker (and at most one CPU worker);
    ``austria`` runs the built-in AOI ``austria`` with ``deploy.gpu_workers``. Each overlay writes
    its own store beside the base's (``.../<overlay>/<name>.zarr``): a store holds one AOI.
    ``deploy.tls`` ``None`` turns TLS on in ``austria`` only; ``small-aoi`` runs at most
    :data:`~s2scale.deploy.config.SMALL_AOI_DEADLINE_S`.
    """
    small = (
        cfg.replace("catalog", aoi=deploy.small_aoi),
        dataclasses.replace(
            deploy,
            gpu_workers=1,
            cpu_workers=min(deploy.cpu_workers, 1),
            store=_overlay_store(deploy.store, "small-aoi"),
            deadline_s=min(deploy.deadline_s, SMALL_AOI_DEADLINE_S),
            tls=bool(deploy.tls),
        ),
    )
    austria = (
        cfg.replace("catalog", aoi="austria"),
        dataclasses.replace(
            deploy,
            store=_overlay_store(deploy.store, "austria"),
            tls=deploy.tls is None or deploy.tls,
        ),
    )
    base = dataclasses.replace(deploy, tls=bool(deploy.tls))
    out = {"base": (cfg, base), "small-aoi": small, "austria": austria}
    assert tuple(out)[1:] == OVERLAYS
    return out
