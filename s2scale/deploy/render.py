"""Kubernetes manifests for one run: a kustomize base plus overlays, built as plain dicts.

Layout written by :func:`write_layout` (``s2scale deploy render --out DIR``)::

    DIR/namespace/                   namespace.yaml: applied once, owned by no overlay
    DIR/base/kustomization.yaml      run-config.yaml, daskjob.yaml, network-policies.yaml,
                                     disruption-budgets.yaml (+ io-workers.yaml with CPU workers)
    DIR/overlays/small-aoi/          the base on a small AOI with one GPU worker (smoke test)
    DIR/overlays/austria/            the base on all of Austria with ``gpu_workers`` GPUs, TLS on

The Namespace, the object-store Secret, the TLS Secret and a models claim are made once by the
operator and belong to no overlay, so ``kubectl delete -k overlays/<overlay>`` deletes only that
run's objects.

What runs where:

- ``ConfigMap <name>-run``: the run configuration as ``run.yaml`` (exactly what
  :meth:`~s2scale.config.RunConfig.from_yaml` reads back) and the output store as ``out``.
- ``DaskJob <name>``: the Dask operator starts a scheduler (with
  ``DASK_OPTIMIZATION__FUSE__ACTIVE=False``), the GPU worker group (``dask cuda worker
  --resources GPU=1``, one ``nvidia.com/gpu`` each) and the job runner pod, which runs
  ``s2scale upscale --config run.yaml --cluster auto`` (the operator sets
  ``DASK_SCHEDULER_ADDRESS`` there) under ``s2scale deploy retry``.
- ``DaskWorkerGroup <name>-io`` (optional): CPU workers without the ``GPU`` resource that take the
  reads, composites, blends and writes.
- ``NetworkPolicy``: only the runner and the workers reach the scheduler, only the scheduler and
  the workers reach the workers, the dashboards only from this namespace (and the operator's, for
  its idle check); the runner accepts no connection.
- ``PodDisruptionBudget`` for the scheduler and the runner (and ``safe-to-evict: "false"`` on
  both): a drain or the cluster autoscaler waits for the job instead of ending it.

GPU workers check their CUDA at start (:mod:`s2scale.deploy.gpucheck`) and the run configuration
asks for ``infer.device: cuda``, so a worker without a usable GPU fails instead of running the
model on its CPU. The runner checks the Secret's keys before it connects, the pod has an
``activeDeadlineSeconds`` and the cluster an ``idleTimeout``, so nothing holds GPUs for ever.
With TLS, every Dask connection is encrypted and authenticated with the certificates of the TLS
Secret (``distributed.comm.tls.*`` set through the environment).

The operator runs the job as a bare pod, which has no ``backoffLimit``: the pod's
``restartPolicy`` is ``Never`` (a failed job ends, and the operator deletes its cluster, so no GPU
is held by a crash loop) and ``s2scale deploy retry`` reruns the command up to ``backoff_limit``
times inside the pod. Every rerun resumes from the store's run manifest: finished regions are
kept, the rest is computed, the bytes are the same.

Every container runs as the image's non-root user with a read-only root filesystem, no privilege
escalation, no capabilities and the ``RuntimeDefault`` seccomp profile; ``/tmp`` and the Dask
local directory are ``emptyDir`` volumes. Object-store credentials come from a Secret through
``envFrom``; they never appear in arguments, annotations, the run configuration or logs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from s2scale import __version__
from s2scale.config import RunConfig
from s2scale.deploy.config import (
    OVERLAYS,
    RUN_AS_UID,
    SMALL_AOI_DEADLINE_S,
    DeployConfig,
    parse_bytes,
    quantity,
)
from s2scale.errors import ConfigError

__all__ = [
    "HEADER",
    "MODELS_MOUNT",
    "RUN_MOUNT",
    "TLS_MOUNT",
    "TORCH_HOME",
    "canonical",
    "deploy_run_config",
    "job_command",
    "json_patch",
    "namespace_objects",
    "objects_from_yaml",
    "render_layout",
    "render_objects",
    "tls_env",
    "variants",
    "write_layout",
]

log = logging.getLogger(__name__)

HEADER = "# Rendered by `s2scale deploy render`: change its options and render again.\n"
"""First line of every rendered file (files starting with it may be replaced by a new render)."""
RUN_MOUNT = "/etc/s2scale"
"""Where the job runner sees the ConfigMap (``run.yaml``, ``aoi.geojson``)."""
MODELS_MOUNT = "/models"
"""Where ``DeployConfig.models_claim`` is mounted (read-only) in the job runner and workers."""
TORCH_HOME = f"{MODELS_MOUNT}/torch"
"""``TORCH_HOME`` of the images: backbones go to ``/models/torch/hub/checkpoints/``."""
TLS_MOUNT = "/etc/s2scale/tls"
"""Where the TLS Secret (``ca.crt``, ``tls.crt``, ``tls.key``) is mounted, read-only."""
SCRATCH_MOUNT = "/scratch"
"""Workers' scratch volume; the Dask local directory is ``/scratch/dask``."""
SCHEDULER_PORT, DASHBOARD_PORT, WORKER_DASHBOARD_PORT = 8786, 8787, 8788
TMP_SIZE = "1GiB"
"""``emptyDir`` at ``/tmp`` of every pod."""
LOG_MARGIN = "1GiB"
"""Ephemeral storage for container logs, on top of the ``emptyDir`` volumes."""
CPU_PER_POD = {"scheduler": "2", "job": "2"}
"""CPU of the scheduler and the job runner (workers get one CPU per thread)."""

SAFE_TO_EVICT = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
"""Annotation that keeps the cluster autoscaler from evicting the scheduler and the runner."""
SECRET_NAME_ENV, SECRET_KEYS_ENV = "S2SCALE_SECRET_NAME", "S2SCALE_SECRET_KEYS"
"""The runner's variables naming the Secret and the keys it checks (``s2scale deploy retry``)."""
GPU_CHECK = "s2scale.deploy.gpucheck"
"""Preload module of the GPU workers: fail at start without a usable CUDA GPU."""
_SCHEDULER_ROUTES = [
    "distributed.http.scheduler.prometheus",
    "distributed.http.scheduler.info",
    "distributed.http.scheduler.json",
    "distributed.http.health",
    "distributed.http.proxy",
    "distributed.http.statics",
    # /api/v1/check_idle: the operator's idle check (its fallback, the Dask RPC, has no TLS keys)
    "distributed.http.scheduler.api",
]

_LABELS = {"app.kubernetes.io/name": "s2scale", "app.kubernetes.io/version": __version__}
_API = "kubernetes.dask.org/v1"
_RUN_KEY, _OUT_KEY, _AOI_KEY = "run.yaml", "out", "aoi.geojson"


# ----------------------------------------------------------------------------- the run config
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
        aoi = f"{RUN_MOUNT}/{_AOI_KEY}"
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


def _run_yaml(cfg: RunConfig) -> str:
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


# ------------------------------------------------------------------------------- pod building
def _container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_UID,
        "runAsGroup": RUN_AS_UID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _resources(cpu: str, memory: str, disk_bytes: int, *, gpu: bool = False) -> dict[str, Any]:
    """Requests equal to limits (QoS class Guaranteed: not evicted under node pressure)."""
    mem_k8s, _ = quantity(parse_bytes(memory, "memory"))
    disk, _ = quantity(disk_bytes)
    amounts = {"cpu": cpu, "memory": mem_k8s, "ephemeral-storage": disk}
    if gpu:
        amounts["nvidia.com/gpu"] = "1"
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _env(extra: Mapping[str, str] = {}) -> list[dict[str, Any]]:
    base = {"HOME": "/tmp", "TMPDIR": "/tmp", "XDG_CACHE_HOME": "/tmp/.cache", **extra}
    return [{"name": k, "value": v} for k, v in base.items()]


Role = Literal["scheduler", "worker", "client"]


def tls_env(role: Role, folder: str = TLS_MOUNT) -> dict[str, str]:
    """Dask configuration (as environment variables) for TLS with the certificates in ``folder``.

    ``role`` is the part the process plays: ``scheduler``, ``worker`` or ``client`` (the runner).
    Connections without TLS are refused (``require-encryption``).

    Examples
    --------
    >>> tls_env("client", "/certs")["DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"]
    '/certs/tls.crt'
    """
    key = role.upper()
    return {
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": f"{folder}/ca.crt",
        f"DASK_DISTRIBUTED__COMM__TLS__{key}__CERT": f"{folder}/tls.crt",
        f"DASK_DISTRIBUTED__COMM__TLS__{key}__KEY": f"{folder}/tls.key",
    }


def _tls_scheduler_address() -> list[dict[str, Any]]:
    """``DASK_SCHEDULER_ADDRESS`` with ``tls://``, from the pod's cluster label and namespace.

    The operator sets a ``tcp://`` address only where the container defines none; the cluster's
    name comes from the pod's ``dask.org/cluster-name`` label (so kustomize's name suffix needs no
    patch here).
    """
    return [
        {
            "name": "S2SCALE_CLUSTER",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['dask.org/cluster-name']"}},
        },
        {
            "name": "S2SCALE_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        {
            "name": "DASK_SCHEDULER_ADDRESS",
            "value": "tls://$(S2SCALE_CLUSTER)-scheduler.$(S2SCALE_NAMESPACE).svc.cluster.local"
            f":{SCHEDULER_PORT}",
        },
    ]


def _volumes(deploy: DeployConfig, *, scratch: bool) -> tuple[list[dict], list[dict], int]:
    """``(volumes, mounts, emptyDir bytes)`` of a pod: /tmp, /scratch, /models, TLS certificates."""
    tmp_k8s, _ = quantity(parse_bytes(TMP_SIZE, "tmp"))
    volumes = [{"name": "tmp", "emptyDir": {"sizeLimit": tmp_k8s}}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    disk = parse_bytes(TMP_SIZE, "tmp") + parse_bytes(LOG_MARGIN, "log margin")
    if scratch:
        n = parse_bytes(deploy.worker_scratch, "worker_scratch")
        volumes.append({"name": "scratch", "emptyDir": {"sizeLimit": quantity(n)[0]}})
        mounts.append({"name": "scratch", "mountPath": SCRATCH_MOUNT})
        disk += n
    if deploy.models_claim is not None:
        volumes.append(
            {
                "name": "models",
                "persistentVolumeClaim": {"claimName": deploy.models_claim, "readOnly": True},
            }
        )
        mounts.append({"name": "models", "mountPath": MODELS_MOUNT, "readOnly": True})
    if deploy.tls:
        # 0440 and fsGroup 10001: readable by the s2scale group only
        volumes.append(
            {"name": "tls", "secret": {"secretName": deploy.tls_secret, "defaultMode": 0o440}}
        )
        mounts.append({"name": "tls", "mountPath": TLS_MOUNT, "readOnly": True})
    return volumes, mounts, disk


def _pod(
    deploy: DeployConfig,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_UID,
            "runAsGroup": RUN_AS_UID,
            "fsGroup": RUN_AS_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        **extra,
        "containers": containers,
        "volumes": volumes,
    }
    if deploy.priority_class is not None:
        spec["priorityClassName"] = deploy.priority_class
    if deploy.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in deploy.image_pull_secrets]
    return spec


def _labels(component: str | None = None) -> dict[str, str]:
    return {**_LABELS, **({"app.kubernetes.io/component": component} if component else {})}


def _scrape(port: int) -> dict[str, str]:
    """Prometheus annotations of a pod whose dashboard serves ``/metrics`` on ``port``."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }


def _worker(
    deploy: DeployConfig,
    *,
    gpu: bool,
    threads: int,
    memory: str,
) -> dict[str, Any]:
    """Pod spec of a GPU worker (dask-cuda) or a CPU worker."""
    mem_dask = quantity(parse_bytes(memory, "memory"))[1]
    args = ["dask", "cuda", "worker"] if gpu else ["dask", "worker"]
    args += [
        "$(DASK_SCHEDULER_ADDRESS)",
        "--name=$(DASK_WORKER_NAME)",
        f"--nthreads={threads}",
        f"--memory-limit={mem_dask}",
        f"--local-directory={SCRATCH_MOUNT}/dask",
        f"--dashboard-address=:{WORKER_DASHBOARD_PORT}",
    ]
    if gpu:
        args += ["--resources=GPU=1", f"--preload={GPU_CHECK}"]
    volumes, mounts, disk = _volumes(deploy, scratch=True)
    env = _env({"OMP_NUM_THREADS": str(threads), **(tls_env("worker") if deploy.tls else {})})
    container = {
        "name": "worker",
        "image": deploy.image if gpu else deploy.resolved_cpu_image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": env + (_tls_scheduler_address() if deploy.tls else []),
        "envFrom": [{"secretRef": {"name": deploy.secret}}],
        "ports": [
            {"name": "http-dashboard", "containerPort": WORKER_DASHBOARD_PORT, "protocol": "TCP"}
        ],
        "resources": _resources(str(threads), memory, disk, gpu=gpu),
        "securityContext": _container_security(),
        "volumeMounts": mounts,
    }
    extra: dict[str, Any] = {}
    if gpu and deploy.gpu_node_selector:
        extra["nodeSelector"] = dict(deploy.gpu_node_selector)
    if gpu and deploy.gpu_affinity:
        terms = [
            {"key": key, "operator": "In", "values": list(values)}
            for key, values in deploy.gpu_affinity
        ]
        extra["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": terms}]
                }
            }
        }
    if gpu and deploy.gpu_tolerations:
        extra["tolerations"] = [t.to_json() for t in deploy.gpu_tolerations]
    return _pod(deploy, [container], volumes, **extra)


def _scheduler(deploy: DeployConfig, cluster_name: str) -> dict[str, Any]:
    volumes, mounts, disk = _volumes(dataclasses.replace(deploy, models_claim=None), scratch=False)
    args = [
        "dask",
        "scheduler",
        f"--port={SCHEDULER_PORT}",
        f"--dashboard-address=:{DASHBOARD_PORT}",
    ]
    if deploy.tls:
        args.insert(2, "--protocol=tls")
    env = {
        # The scheduler optimises graphs with its own config; without fusion the GPU resource
        # annotations of lazily built graphs (s2scale.upscale + write_mosaic) survive.
        # `s2scale upscale` pins model tasks explicitly and needs no setting.
        "DASK_OPTIMIZATION__FUSE__ACTIVE": "False",
        "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES": repr(_SCHEDULER_ROUTES),
        **(tls_env("scheduler") if deploy.tls else {}),
    }
    container = {
        "name": "scheduler",
        "image": deploy.resolved_cpu_image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": _env(env),
        "ports": [
            {"name": "tcp-comm", "containerPort": SCHEDULER_PORT, "protocol": "TCP"},
            {"name": "http-dashboard", "containerPort": DASHBOARD_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"port": "http-dashboard", "path": "/health"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
        },
        "livenessProbe": {
            "httpGet": {"port": "http-dashboard", "path": "/health"},
            "initialDelaySeconds": 15,
            "periodSeconds": 20,
        },
        "resources": _resources(CPU_PER_POD["scheduler"], deploy.scheduler_memory, disk),
        "securityContext": _container_security(),
        "volumeMounts": mounts,
    }
    return {
        "metadata": {
            "labels": _labels("scheduler"),
            "annotations": {**SAFE_TO_EVICT, **_scrape(DASHBOARD_PORT)},
        },
        "spec": _pod(deploy, [container], volumes),
        "service": {
            "type": "ClusterIP",
            "selector": {"dask.org/cluster-name": cluster_name, "dask.org/component": "scheduler"},
            "ports": [
                {
                    "name": "tcp-comm",
                    "protocol": "TCP",
                    "port": SCHEDULER_PORT,
                    "targetPort": "tcp-comm",
                },
                {
                    "name": "http-dashboard",
                    "protocol": "TCP",
                    "port": DASHBOARD_PORT,
                    "targetPort": "http-dashboard",
                },
            ],
        },
    }


def job_command(deploy: DeployConfig) -> list[str]:
    """Arguments of the job runner container: ``s2scale upscale`` under bounded retries.

    The Secret's keys to check before the first attempt come from the runner's environment
    (:data:`SECRET_NAME_ENV`, :data:`SECRET_KEYS_ENV`).
    """
    return [
        "s2scale",
        "deploy",
        "retry",
        f"--attempts={deploy.backoff_limit + 1}",
        f"--delay-s={deploy.retry_delay_s:g}",
        "--",
        "s2scale",
        "upscale",
        f"--config={RUN_MOUNT}/{_RUN_KEY}",
        "--out=$(S2SCALE_OUT)",
        "--cluster=auto",
    ]


def _job(deploy: DeployConfig, config_map: str) -> dict[str, Any]:
    volumes, mounts, disk = _volumes(deploy, scratch=False)
    volumes.insert(0, {"name": "run-config", "configMap": {"name": config_map}})
    mounts.insert(0, {"name": "run-config", "mountPath": RUN_MOUNT, "readOnly": True})
    checks = {SECRET_NAME_ENV: deploy.secret, SECRET_KEYS_ENV: ",".join(deploy.secret_keys)}
    container = {
        "name": "job",
        "image": deploy.resolved_cpu_image,
        "imagePullPolicy": "IfNotPresent",
        "args": job_command(deploy),
        "env": [
            {
                "name": "S2SCALE_OUT",
                "valueFrom": {"configMapKeyRef": {"name": config_map, "key": _OUT_KEY}},
            },
            *_env({**checks, **(tls_env("client") if deploy.tls else {})}),
            *(_tls_scheduler_address() if deploy.tls else []),
        ],
        # optional: without the Secret the runner still starts, and its check says what is missing
        "envFrom": [{"secretRef": {"name": deploy.secret, "optional": True}}],
        "resources": _resources(CPU_PER_POD["job"], deploy.job_memory, disk),
        "securityContext": _container_security(),
        "volumeMounts": mounts,
    }
    return {
        "metadata": {"labels": _labels("job"), "annotations": dict(SAFE_TO_EVICT)},
        "spec": _pod(
            deploy,
            [container],
            volumes,
            restartPolicy="Never",
            activeDeadlineSeconds=deploy.deadline_s,
        ),
    }


def _cluster_pods(cluster: str, component: str) -> dict[str, Any]:
    """Label selector of the pods of one component of the operator's cluster ``cluster``."""
    return {"matchLabels": {"dask.org/cluster-name": cluster, "dask.org/component": component}}


def _network_policies(
    deploy: DeployConfig, cluster: str, meta: dict, suffix: str
) -> list[dict[str, Any]]:
    """Who may connect to whom: scheduler, workers, runner (egress stays open: STAC, store)."""
    same_namespace = {"podSelector": {}}
    dashboards = [same_namespace]
    for ns in (deploy.operator_namespace, deploy.metrics_namespace):
        if ns is not None:
            dashboards.append(
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
            )
    workers = {"podSelector": _cluster_pods(cluster, "worker")}
    runner = {"podSelector": _cluster_pods(cluster, "job-runner")}
    scheduler = {"podSelector": _cluster_pods(cluster, "scheduler")}

    def policy(part: str, component: str, ingress: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"{deploy.name}-{part}{suffix}", **meta},
            "spec": {
                "podSelector": _cluster_pods(cluster, component),
                "policyTypes": ["Ingress"],
                "ingress": ingress,
            },
        }

    def tcp(port: int) -> list[dict[str, Any]]:
        return [{"protocol": "TCP", "port": port}]

    return [
        policy(
            "scheduler",
            "scheduler",
            [
                {"from": [runner, workers], "ports": tcp(SCHEDULER_PORT)},
                {"from": dashboards, "ports": tcp(DASHBOARD_PORT)},
            ],
        ),
        policy(
            "workers",
            "worker",
            [
                # workers listen on a random port: any port, but only from their own cluster
                {"from": [scheduler, workers]},
                {"from": dashboards, "ports": tcp(WORKER_DASHBOARD_PORT)},
            ],
        ),
        policy("runner", "job-runner", []),
    ]


def _disruption_budgets(
    deploy: DeployConfig, cluster: str, meta: dict, suffix: str
) -> list[dict[str, Any]]:
    """``minAvailable: 1`` for the scheduler and the runner: a drain waits for the job."""
    return [
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": f"{deploy.name}-{component}{suffix}", **meta},
            "spec": {"minAvailable": 1, "selector": _cluster_pods(cluster, component)},
        }
        for component in ("scheduler", "job-runner")
    ]


# ----------------------------------------------------------------------------------- objects
def namespace_objects(deploy: DeployConfig) -> list[dict[str, Any]]:
    """The Namespace, made once by the operator (restricted Pod Security Standard).

    It is in no overlay: ``kubectl delete -k overlays/<overlay>`` must not delete it (nor the
    Secrets and claims in it).
    """
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": deploy.namespace,
                "labels": {
                    **_LABELS,
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        }
    ]


def render_objects(
    cfg: RunConfig, deploy: DeployConfig, *, suffix: str = ""
) -> list[dict[str, Any]]:
    """The Kubernetes objects of one run: ConfigMap, DaskJob, policies (and CPU workers).

    ``suffix`` is appended to every name, as the overlays' ``nameSuffix`` does. Resource
    quantities are strings (``"1"``), as the operator's CRDs require. The Namespace is not one of
    them (see :func:`namespace_objects`).
    """
    run_cfg, geojson = deploy_run_config(cfg, deploy)
    name = f"{deploy.name}{suffix}"
    config_map = f"{deploy.name}-run{suffix}"
    meta = {"namespace": deploy.namespace, "labels": _labels()}
    data = {_RUN_KEY: _run_yaml(run_cfg), _OUT_KEY: deploy.store}
    if geojson is not None:
        data[_AOI_KEY] = geojson
    threads = deploy.worker_threads or cfg.cluster.threads_per_worker
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": config_map, **meta},
            "data": data,
        },
        {
            "apiVersion": _API,
            "kind": "DaskJob",
            "metadata": {"name": name, **meta},
            "spec": {
                "job": _job(deploy, config_map),
                "cluster": {
                    "spec": {
                        "idleTimeout": deploy.idle_timeout_s,
                        "worker": {
                            "replicas": deploy.gpu_workers,
                            "metadata": {
                                "labels": _labels("gpu-worker"),
                                "annotations": _scrape(WORKER_DASHBOARD_PORT),
                            },
                            "spec": _worker(
                                deploy, gpu=True, threads=threads, memory=deploy.worker_memory
                            ),
                        },
                        "scheduler": _scheduler(deploy, name),
                    },
                },
            },
        },
        *_network_policies(deploy, name, meta, suffix),
        *_disruption_budgets(deploy, name, meta, suffix),
    ]
    if deploy.cpu_workers:
        objects.append(
            {
                "apiVersion": _API,
                "kind": "DaskWorkerGroup",
                "metadata": {"name": f"{deploy.name}-io{suffix}", **meta},
                "spec": {
                    "cluster": name,
                    "worker": {
                        "replicas": deploy.cpu_workers,
                        "metadata": {
                            "labels": _labels("io-worker"),
                            "annotations": _scrape(WORKER_DASHBOARD_PORT),
                        },
                        "spec": _worker(
                            deploy,
                            gpu=False,
                            threads=deploy.cpu_worker_threads,
                            memory=deploy.cpu_worker_memory,
                        ),
                    },
                },
            }
        )
    return objects


def json_patch(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """RFC 6902 operations turning ``old`` into ``new`` (maps recursively, lists as a whole).

    Examples
    --------
    >>> json_patch({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": 4})
    [{'op': 'replace', 'path': '/b/c', 'value': 3}, {'op': 'add', 'path': '/d', 'value': 4}]
    """
    if isinstance(old, dict) and isinstance(new, dict):
        ops: list[dict[str, Any]] = []
        for key in old:
            p = f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"
            ops += (
                json_patch(old[key], new[key], p) if key in new else [{"op": "remove", "path": p}]
            )
        for key in new:
            if key not in old:
                p = f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"
                ops.append({"op": "add", "path": p, "value": new[key]})
        return ops
    return [] if old == new else [{"op": "replace", "path": path or "/", "value": new}]


# ------------------------------------------------------------------------------------- layout
class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (the embedded run.yaml stays readable)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(docs: list[Any], comment: str = "") -> str:
    body = "---\n".join(yaml.dump(d, Dumper=_Dumper, sort_keys=False, width=100) for d in docs)
    return HEADER + "".join(f"# {line}\n" for line in comment.splitlines()) + body


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


_FILES = {
    "ConfigMap": "run-config.yaml",
    "DaskJob": "daskjob.yaml",
    "DaskWorkerGroup": "io-workers.yaml",
    "NetworkPolicy": "network-policies.yaml",
    "PodDisruptionBudget": "disruption-budgets.yaml",
}


def _name_references() -> dict[str, Any]:
    """Configuration of kustomize: where the DaskJob and its worker group name other objects."""
    job = "spec/job/spec"
    # a "/" inside a map key is written "\/" in kustomize paths
    selector = "spec/cluster/spec/scheduler/service/selector"
    label = "matchLabels/dask.org\\/cluster-name"
    return {
        "nameReference": [
            {
                "kind": "ConfigMap",
                "version": "v1",
                "fieldSpecs": [
                    {"kind": "DaskJob", "path": f"{job}/volumes/configMap/name"},
                    {
                        "kind": "DaskJob",
                        "path": f"{job}/containers/env/valueFrom/configMapKeyRef/name",
                    },
                ],
            },
            {
                "kind": "DaskJob",
                "group": "kubernetes.dask.org",
                "fieldSpecs": [
                    {"kind": "DaskWorkerGroup", "path": "spec/cluster"},
                    {
                        "kind": "DaskJob",
                        "path": f"{selector}/dask.org\\/cluster-name",
                    },
                    {"kind": "NetworkPolicy", "path": f"spec/podSelector/{label}"},
                    {"kind": "NetworkPolicy", "path": f"spec/ingress/from/podSelector/{label}"},
                    {"kind": "PodDisruptionBudget", "path": f"spec/selector/{label}"},
                ],
            },
        ]
    }


def render_layout(cfg: RunConfig, deploy: DeployConfig) -> dict[str, str]:
    """The files of the kustomize base and overlays: ``{relative path: YAML text}``.

    Each overlay is ``../../base`` with ``nameSuffix: -<overlay>`` and RFC 6902 patches computed
    from the difference between the base and the overlay's own rendering, so that
    ``kubectl kustomize overlays/<overlay>`` equals :func:`render_objects` of that variant.
    """
    found = variants(cfg, deploy)
    base = render_objects(*found["base"])
    files: dict[str, str] = {
        "namespace/namespace.yaml": _dump(namespace_objects(deploy)),
        "namespace/kustomization.yaml": _dump(
            [
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": ["namespace.yaml"],
                }
            ],
            comment="Apply once, before the Secrets (deploy/README.md); no overlay owns it.",
        ),
    }
    by_file: dict[str, list[dict]] = {}
    for obj in base:
        by_file.setdefault(_FILES[obj["kind"]], []).append(obj)
    for fname, docs in by_file.items():
        files[f"base/{fname}"] = _dump(docs)
    files["base/kustomization.yaml"] = _dump(
        [
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": list(by_file),
            }
        ],
        comment=f"The run of {cfg.catalog.aoi!r} as configured; apply with kubectl apply -k.",
    )
    old = {_key(o): o for o in base}
    for overlay in OVERLAYS:
        objects = {_key(o): o for o in render_objects(*found[overlay])}
        if set(objects) != set(old):  # pragma: no cover - variants keep the same objects
            raise AssertionError(f"overlay {overlay} renders other objects than the base")
        patches = []
        for key, obj in objects.items():
            ops = json_patch(old[key], obj)
            if not ops:
                continue
            kind, name = key
            fname = f"patch-{_FILES[kind]}"
            files[f"overlays/{overlay}/{fname}"] = _dump([ops])
            target = {"kind": kind, "name": name}
            if obj["apiVersion"] == _API:
                target = {"group": "kubernetes.dask.org", "version": "v1", **target}
            patches.append({"path": fname, "target": target})
        files[f"overlays/{overlay}/kustomizeconfig.yaml"] = _dump([_name_references()])
        _, o_deploy = found[overlay]
        files[f"overlays/{overlay}/kustomization.yaml"] = _dump(
            [
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": ["../../base"],
                    "nameSuffix": f"-{overlay}",
                    "configurations": ["kustomizeconfig.yaml"],
                    "patches": patches,
                }
            ],
            comment=f"{overlay}: AOI {found[overlay][0].catalog.aoi!r}, {o_deploy.gpu_workers} GPU "
            f"worker{'s' * (o_deploy.gpu_workers != 1)}, output {o_deploy.store}",
        )
    return files


def write_layout(files: Mapping[str, str], out: str | Path) -> list[Path]:
    """Write :func:`render_layout`'s files under ``out``; return their paths.

    Files of an earlier render that this one no longer produces (recognised by :data:`HEADER`)
    are removed; other files are left alone.
    """
    root = Path(out)
    written = []
    for rel, text in sorted(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    keep = {root / rel for rel in files}
    old = [
        *root.glob("namespace/*.yaml"),
        *root.glob("base/*.yaml"),
        *root.glob("overlays/*/*.yaml"),
    ]
    for stale in sorted(old):
        if stale not in keep and stale.read_text().startswith(HEADER):
            log.info("removing %s (not part of this render)", stale)
            stale.unlink()
    return written


def objects_from_yaml(text: str) -> list[dict[str, Any]]:
    """The documents of a multi-document YAML text (``kubectl kustomize`` output), in order."""
    return [d for d in yaml.safe_load_all(text) if d]


def canonical(obj: Any) -> str:
    """A key-order independent text of an object, for comparisons."""
    return json.dumps(obj, sort_keys=True)
