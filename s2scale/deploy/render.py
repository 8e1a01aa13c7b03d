"""The Kubernetes objects of one run, built as plain dicts.

The files of the kustomize base and overlays are written by :mod:`s2scale.deploy.layout`; the run
configuration each variant runs is :mod:`s2scale.deploy.runconfig`, the pod specs
:mod:`s2scale.deploy.pods`.

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

from typing import Any

from s2scale.config import RunConfig
from s2scale.deploy.config import DeployConfig
from s2scale.deploy.pods import (
    DASHBOARD_PORT,
    SCHEDULER_PORT,
    WORKER_DASHBOARD_PORT,
    job_spec,
    pod_labels,
    scheduler_spec,
    scrape_annotations,
    worker_pod,
)
from s2scale.deploy.runconfig import AOI_KEY, OUT_KEY, RUN_KEY, deploy_run_config, run_yaml

__all__ = ["DASK_API", "namespace_objects", "render_objects"]

DASK_API = "kubernetes.dask.org/v1"
"""``apiVersion`` of the Dask operator's objects (DaskJob, DaskWorkerGroup)."""


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
                    **pod_labels(),
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
    meta = {"namespace": deploy.namespace, "labels": pod_labels()}
    data = {RUN_KEY: run_yaml(run_cfg), OUT_KEY: deploy.store}
    if geojson is not None:
        data[AOI_KEY] = geojson
    threads = deploy.worker_threads or cfg.cluster.threads_per_worker
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": config_map, **meta},
            "data": data,
        },
        {
            "apiVersion": DASK_API,
            "kind": "DaskJob",
            "metadata": {"name": name, **meta},
            "spec": {
                "job": job_spec(deploy, config_map),
                "cluster": {
                    "spec": {
                        "idleTimeout": deploy.idle_timeout_s,
                        "worker": {
                            "replicas": deploy.gpu_workers,
                            "metadata": {
                                "labels": pod_labels("gpu-worker"),
                                "annotations": scrape_annotations(WORKER_DASHBOARD_PORT),
                            },
                            "spec": worker_pod(
                                deploy, gpu=True, threads=threads, memory=deploy.worker_memory
                            ),
                        },
                        "scheduler": scheduler_spec(deploy, name),
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
                "apiVersion": DASK_API,
                "kind": "DaskWorkerGroup",
                "metadata": {"name": f"{deploy.name}-io{suffix}", **meta},
                "spec": {
                    "cluster": name,
                    "worker": {
                        "replicas": deploy.cpu_workers,
                        "metadata": {
                            "labels": pod_labels("io-worker"),
                            "annotations": scrape_annotations(WORKER_DASHBOARD_PORT),
                        },
                        "spec": worker_pod(
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
