"""Pod specs of one run: the GPU and CPU workers, the scheduler and the job runner.

Every container runs as the image's non-root user with a read-only root filesystem, no privilege
escalation, no capabilities and the ``RuntimeDefault`` seccomp profile; ``/tmp`` and the Dask
local directory are ``emptyDir`` volumes; requests equal limits (QoS class Guaranteed). With
TLS, every Dask connection is encrypted and authenticated with the certificates of the TLS
Secret (:func:`tls_env`). :mod:`s2scale.deploy.render` wraps these specs into the DaskJob and
the worker group.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from s2scale import __version__
from s2scale.deploy.config import RUN_AS_UID, DeployConfig, parse_bytes, quantity
from s2scale.deploy.runconfig import MODELS_MOUNT, OUT_KEY, RUN_KEY, RUN_MOUNT

__all__ = [
    "CPU_PER_POD",
    "DASHBOARD_PORT",
    "GPU_CHECK",
    "LOG_MARGIN",
    "SAFE_TO_EVICT",
    "SCHEDULER_PORT",
    "SCRATCH_MOUNT",
    "SECRET_KEYS_ENV",
    "SECRET_NAME_ENV",
    "TLS_MOUNT",
    "TMP_SIZE",
    "TORCH_HOME",
    "WORKER_DASHBOARD_PORT",
    "Role",
    "job_command",
    "job_spec",
    "pod_labels",
    "scheduler_spec",
    "scrape_annotations",
    "tls_env",
    "worker_pod",
]

TORCH_HOME = f"{MODELS_MOUNT}/torch"
"""``TORCH_HOME`` of the images: backbones go to ``/models/torch/hub/checkpoints/``."""
TLS_MOUNT = "/etc/s2scale/tls"
"""Where the TLS Secret (``ca.crt``, ``tls.crt``, ``tls.key``) is mounted, read-only."""
SCRATCH_MOUNT = "/scratch"
"""Workers' scratch volume; the Dask local directory is ``/scratch/dask``."""
SCHEDULER_PORT, DASHBOARD_PORT, WORKER_DASHBOARD_PORT = 8786, 8787, 8788
"""Ports of the scheduler (comm, dashboard) and of the workers' dashboards."""
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


def pod_labels(component: str | None = None) -> dict[str, str]:
    """The labels of every object of a run, plus ``app.kubernetes.io/component`` if given."""
    return {**_LABELS, **({"app.kubernetes.io/component": component} if component else {})}


def scrape_annotations(port: int) -> dict[str, str]:
    """Prometheus annotations of a pod whose dashboard serves ``/metrics`` on ``port``."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }


def worker_pod(
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


def scheduler_spec(deploy: DeployConfig, cluster_name: str) -> dict[str, Any]:
    """The DaskJob's scheduler: metadata, pod spec and Service of ``cluster_name``."""
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
            "labels": pod_labels("scheduler"),
            "annotations": {**SAFE_TO_EVICT, **scrape_annotations(DASHBOARD_PORT)},
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
        f"--config={RUN_MOUNT}/{RUN_KEY}",
        "--out=$(S2SCALE_OUT)",
        "--cluster=auto",
    ]


def job_spec(deploy: DeployConfig, config_map: str) -> dict[str, Any]:
    """The DaskJob's job runner: metadata and pod spec, reading the run from ``config_map``."""
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
                "valueFrom": {"configMapKeyRef": {"name": config_map, "key": OUT_KEY}},
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
        "metadata": {"labels": pod_labels("job"), "annotations": dict(SAFE_TO_EVICT)},
        "spec": _pod(
            deploy,
            [container],
            volumes,
            restartPolicy="Never",
            activeDeadlineSeconds=deploy.deadline_s,
        ),
    }
